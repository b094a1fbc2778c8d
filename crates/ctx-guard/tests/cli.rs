//! The `ctx-guard` binary on the host (not a lab node): refuses with exit 3, prints its
//! decision as one JSON document with `--json`, and exits quietly on a closed stdout.

use stackpilot_core::output::{broke_on_closed_stdout, run_with_closed_stdout};
use std::process::Command;

fn ctx_guard(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctx-guard"));
    cmd.args(args).current_dir(std::env::temp_dir());
    cmd
}

#[test]
fn json_is_one_document_alone_on_stdout() {
    let out = ctx_guard(&["--json"]).output().expect("binary runs");
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["allowed"], false);
}

#[test]
fn every_mode_on_a_closed_stdout_exits_quietly_with_its_code() {
    for args in [&["--json"][..], &["--explain"][..], &[][..]] {
        let out = run_with_closed_stdout(&mut ctx_guard(args)).expect("binary runs");
        assert_eq!(broke_on_closed_stdout(&out), None, "ctx-guard {args:?}");
        assert_eq!(out.status.code(), Some(3), "{args:?}");
    }
}
