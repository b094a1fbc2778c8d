//! The `drills` binary on the host (not a lab node): `list` works anywhere and is pinned;
//! every node-side step is refused (exit 3) before touching anything; malformed arguments
//! are usage errors (exit 2).

use stackpilot_core::output::{broke_on_closed_stdout, run_with_closed_stdout};
use std::process::{Command, Output};

fn drills(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drills"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("binary runs")
}

#[test]
fn list_names_every_drill_with_its_expected_outcome() {
    let out = drills(&["list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    insta::assert_snapshot!("list", text);
}

#[test]
fn every_node_step_is_refused_outside_a_lab_node() {
    for args in [
        &["node", "stop", "--service", "db"][..],
        &["node", "start", "--service", "db"][..],
        &["node", "kill", "--service", "api"][..],
        &["node", "block-port", "--port", "8000"][..],
        &["node", "unblock-port", "--port", "8000"][..],
    ] {
        let out = drills(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains("refused"), "{args:?}: {err}");
        assert!(err.contains("make drill"), "{args:?}: {err}");
    }
}

#[test]
fn a_port_that_is_not_a_number_is_a_usage_error() {
    let out = drills(&["node", "block-port", "--port", "http"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn list_and_refusals_on_a_closed_stdout_exit_quietly_with_their_code() {
    let out = run_with_closed_stdout(
        Command::new(env!("CARGO_BIN_EXE_drills"))
            .arg("list")
            .current_dir(std::env::temp_dir()),
    )
    .expect("binary runs");
    assert_eq!(broke_on_closed_stdout(&out), None, "{}", "drills list");
    assert_eq!(out.status.code(), Some(0));
    let out = run_with_closed_stdout(
        Command::new(env!("CARGO_BIN_EXE_drills"))
            .args(["node", "stop", "--service", "db"])
            .current_dir(std::env::temp_dir()),
    )
    .expect("binary runs");
    assert_eq!(broke_on_closed_stdout(&out), None, "{}", "drills node stop");
    assert_eq!(out.status.code(), Some(3));
}
