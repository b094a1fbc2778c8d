//! The `clean-room` binary on the host (not a lab node): it explains itself and refuses to
//! run (exit 3) before touching the engine.

use stackpilot_core::output::{broke_on_closed_stdout, run_with_closed_stdout};
use std::process::{Command, Output};

fn clean_room(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    Command::new(env!("CARGO_BIN_EXE_clean-room"))
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("binary runs")
}

#[test]
fn help_says_volumes_are_kept_and_names_the_exit_codes() {
    let out = clean_room(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("volumes are kept"), "{text}");
    assert!(text.contains("3 context refused"), "{text}");
}

#[test]
fn refused_outside_a_lab_node_with_the_host_command() {
    let out = clean_room(&["--env", "dev"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("make clean"), "{err}");
}

#[test]
fn a_closed_stdout_exits_quietly_with_its_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_with_closed_stdout(
        Command::new(env!("CARGO_BIN_EXE_clean-room"))
            .args(["--json"])
            .current_dir(dir.path()),
    )
    .expect("binary runs");
    assert_eq!(
        broke_on_closed_stdout(&out),
        None,
        "{}",
        "clean-room --json"
    );
    assert_eq!(out.status.code(), Some(3));
}
