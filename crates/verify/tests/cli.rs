//! The `verify` binary's exit codes and outputs, driven as a user would.

use stackpilot_core::output::{broke_on_closed_stdout, run_with_closed_stdout};
use std::path::PathBuf;
use std::process::{Command, Output};

fn verify(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verify"))
        .args(args)
        .current_dir(cwd)
        .env_remove("STACKPILOT_PROVIDER")
        .env_remove("STACKPILOT_NODE_VERIFY")
        .env_remove("NODE")
        .output()
        .expect("run verify")
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A directory holding only the repo's stackpilot.toml: no Vagrant machines, so no node
/// is created and nothing is contacted. Removed when dropped, pass or fail.
struct BareCheckout(PathBuf);

impl Drop for BareCheckout {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for BareCheckout {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

fn bare_checkout(name: &str) -> BareCheckout {
    // A path of fixed length: reports quote it, and the snapshot of the table (redacted
    // path, padded columns) must not depend on the process id's digits.
    let dir = PathBuf::from(format!("/tmp/verify-cli-{name}-{:07}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(
        repo_root().join("stackpilot.toml"),
        dir.join("stackpilot.toml"),
    )
    .expect("copy config");
    BareCheckout(dir)
}

#[test]
fn inspect_outside_a_node_is_refused_with_exit_3() {
    let dir = bare_checkout("refused");
    let out = verify(&["inspect", "--env", "dev", "--json"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no facts are gathered before the guard"
    );
}

#[test]
fn an_unknown_node_or_env_is_a_usage_error() {
    let dir = bare_checkout("usage");
    let out = verify(&["--node", "nope"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown node 'nope'"));
    let out = verify(&["--env", "nope"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown environment 'nope'"));
}

#[test]
fn a_bad_provider_variable_is_a_usage_error() {
    let dir = bare_checkout("provider");
    let out = Command::new(env!("CARGO_BIN_EXE_verify"))
        .current_dir(&*dir)
        .env("STACKPILOT_PROVIDER", "hyperv")
        .output()
        .expect("run verify");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STACKPILOT_PROVIDER=hyperv"));
}

#[test]
fn a_node_that_is_not_created_fails_layer_one_with_one_json_report_and_junit() {
    let dir = bare_checkout("absent");
    let junit = dir.join("verify.xml");
    let junit_arg = junit.display().to_string();
    let out = verify(
        &["--node", "worker2", "--json", "--junit", &junit_arg],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(report["passed"], false);
    assert_eq!(report["node"], "worker2");
    assert_eq!(report["target"], "172.30.56.12:8000");
    assert_eq!(report["checks"][0]["id"], "node.reachable");
    assert_eq!(report["checks"][0]["verdict"], "fail");
    let reason = report["checks"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("not created"), "{reason}");
    assert_eq!(report["checks"][2]["verdict"], "not_run");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains(r#"tests="17" failures="1" skipped="16""#),
        "{xml}"
    );
}

#[test]
fn the_human_report_is_a_table_with_the_first_failure_last() {
    let dir = bare_checkout("human");
    let out = verify(&["--node", "worker2"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("check"), "{text}");
    assert!(text.contains("reachable NO · tcp-reachable NO"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("verify: FAILED at layer 1 (node): node.reachable: node 'worker2' not reachable via no transport"),
        "{last}"
    );
    // The table users read, pinned; durations and the temporary checkout redacted.
    let shown = text.replace(&dir.display().to_string(), "[checkout]");
    // The ms column: its values and the width they give its separator.
    let ms = vec![(r"(?m)  \d+$", "  [ms]"), (r"(?m)  -+$", "  --")];
    insta::with_settings!({filters => ms}, {
        insta::assert_snapshot!("report_node_not_created", shown);
    });
}

#[test]
fn a_closed_stdout_ends_verify_quietly_and_keeps_the_failed_verdict() {
    let dir = bare_checkout("closed");
    for args in [
        &["--node", "worker2", "--json"][..],
        &["--node", "worker2"][..],
    ] {
        let out = run_with_closed_stdout(
            Command::new(env!("CARGO_BIN_EXE_verify"))
                .args(args)
                .current_dir(&*dir)
                .env_remove("STACKPILOT_PROVIDER")
                .env_remove("NODE"),
        )
        .expect("binary runs");
        assert_eq!(broke_on_closed_stdout(&out), None, "verify {args:?}");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    let out = run_with_closed_stdout(
        Command::new(env!("CARGO_BIN_EXE_verify"))
            .args(["inspect", "--json"])
            .current_dir(&*dir),
    )
    .expect("binary runs");
    assert_eq!(broke_on_closed_stdout(&out), None, "{}", "verify inspect");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn the_node_comes_from_the_node_variable() {
    let dir = bare_checkout("node-var");
    let run = |node: &str| {
        Command::new(env!("CARGO_BIN_EXE_verify"))
            .arg("--json")
            .current_dir(&*dir)
            .env_remove("STACKPILOT_PROVIDER")
            .env("NODE", node)
            .output()
            .expect("run verify")
    };
    let out = run("worker2");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(report["node"], "worker2");
    let out = run("nope");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown node 'nope'"));
}

#[test]
fn an_unwritable_junit_path_is_refused_before_verifying() {
    let dir = bare_checkout("junit-unwritable");
    let junit = dir.join("no-such-dir").join("verify.xml");
    let junit_arg = junit.display().to_string();
    let out = verify(&["--node", "worker2", "--junit", &junit_arg], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing was verified"), "{err}");
    assert!(out.stdout.is_empty(), "no report: nothing was verified");
}
