//! The `lifecycle` binary on the host (not a lab node): it explains itself, refuses to run
//! (exit 3) before touching anything, and rejects malformed arguments (exit 2).

use stackpilot_core::output::{broke_on_closed_stdout, run_with_closed_stdout};
use std::process::{Command, Output};

fn lifecycle(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    Command::new(env!("CARGO_BIN_EXE_lifecycle"))
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("binary runs")
}

#[test]
fn help_names_every_subcommand_and_the_exit_codes() {
    let out = lifecycle(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for word in ["build", "up", "down", "status", "3 context refused"] {
        assert!(text.contains(word), "{word} missing from: {text}");
    }
}

#[test]
fn every_subcommand_is_refused_outside_a_lab_node_with_the_host_command() {
    for (args, instead) in [
        (&["up", "--env", "dev"][..], "make up"),
        (&["down", "--env", "dev"][..], "make down"),
        (&["status", "--env", "dev"][..], "make verify"),
        (
            &[
                "build",
                "--env",
                "dev",
                "--binary",
                "/nonexistent",
                "--build-id",
                "b1",
                "--git-sha",
                "0123abc",
            ][..],
            "make demo",
        ),
    ] {
        let out = lifecycle(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains("refused"), "{args:?}: {err}");
        assert!(err.contains(instead), "{args:?}: {err}");
    }
}

#[test]
fn overriding_a_pinned_variable_is_a_usage_error() {
    let out = lifecycle(&["up", "--set", "STACKPILOT_APP_IMAGE=other:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("pinned sources"), "{err}");
}

#[test]
fn every_subcommand_on_a_closed_stdout_exits_quietly_with_its_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["status", "--json"][..],
        &["up", "--json"][..],
        &["down"][..],
        &["load-image", "--tag", "stackpilot/app:a-1", "--json"][..],
    ] {
        let out = run_with_closed_stdout(
            Command::new(env!("CARGO_BIN_EXE_lifecycle"))
                .args(args)
                .current_dir(dir.path()),
        )
        .expect("binary runs");
        assert_eq!(broke_on_closed_stdout(&out), None, "lifecycle {args:?}");
        assert_eq!(out.status.code(), Some(3), "{args:?}");
    }
}
