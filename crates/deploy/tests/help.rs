//! What the binary says about itself: `--help` of it and of every subcommand, pinned
//! (each exits 0; a changed text shows up as a snapshot diff to review).

use stackpilot_core::output::{broke_on_closed_stdout, run_with_closed_stdout};
use std::process::Command;

#[test]
fn help_texts_are_pinned() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_deploy"));
    insta::assert_snapshot!("help", stackpilot_core::cli_help::transcript(bin));
}

#[test]
fn every_subcommand_on_a_closed_stdout_exits_quietly_with_its_code() {
    for args in [
        &["state", "--env", "dev"][..],
        &["logs", "--env", "dev"][..],
        &["self-check", "--env", "dev"][..],
        &["discard", "--tag", "stackpilot/app:a-1"][..],
    ] {
        let out = run_with_closed_stdout(
            Command::new(env!("CARGO_BIN_EXE_deploy"))
                .args(args)
                .current_dir(std::env::temp_dir()),
        )
        .expect("binary runs");
        assert_eq!(broke_on_closed_stdout(&out), None, "deploy {args:?}");
        assert_eq!(out.status.code(), Some(3), "{args:?}");
    }
}
