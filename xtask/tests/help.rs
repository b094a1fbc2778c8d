//! What the binary says about itself: `--help` of it and of every subcommand, pinned
//! (each exits 0; a changed text shows up as a snapshot diff to review).

use stackpilot_core::output::{broke_on_closed_stdout, run_with_closed_stdout};
use std::process::Command;

#[test]
fn help_texts_are_pinned() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_xtask"));
    insta::assert_snapshot!("help", stackpilot_core::cli_help::transcript(bin));
}

#[test]
fn listings_on_a_closed_stdout_exit_quietly() {
    for args in [
        &["help-targets"][..],
        &["drills", "list"][..],
        &["--help"][..],
        &["lab", "status"][..],
        &["lab", "status", "--json"][..],
    ] {
        let out = run_with_closed_stdout(Command::new(env!("CARGO_BIN_EXE_xtask")).args(args))
            .expect("binary runs");
        assert_eq!(broke_on_closed_stdout(&out), None, "xtask {args:?}");
        // lab status needs Vagrant (exit 4 without it): what matters here is that no
        // listing panics (exit 101) on the closed pipe.
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
}

#[test]
fn a_drill_run_without_a_name_asks_for_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["drills", "run"])
        .env_remove("NAME")
        .output()
        .expect("binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("NAME="), "{err}");
}

#[test]
fn drills_recover_takes_one_drill_of_the_mode_before_touching_the_lab() {
    let recover = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["drills", "recover"])
            .args(args)
            .env_remove("MODE")
            .env_remove("ENV")
            .output()
            .expect("binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A swarm drill on the compose-mode dev env: exit 2 naming MODE=swarm, no lab started.
    let (code, err) = recover(&["node-loss"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("MODE=swarm"), "{err}");
    assert!(
        !err.contains("lab up"),
        "refused before the golden path: {err}"
    );
    // A compose-only drill on the swarm: refused the same way, naming the swarm's drills.
    let (code, err) = recover(&["port-unreachable", "--mode", "swarm"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("node-loss"), "{err}");
    // `all` is not one drill.
    let (code, err) = recover(&["all", "--mode", "swarm"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("one drill at a time"), "{err}");
}

#[test]
fn db_bad_credentials_is_listed_with_what_it_does_on_the_swarm() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["drills", "list"])
        .output()
        .expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("db-bad-credentials"))
        .unwrap_or_else(|| panic!("no db-bad-credentials in: {text}"));
    assert!(
        line.contains("swarm: docker service update") && line.contains("stack redeploy"),
        "{line}"
    );
}
