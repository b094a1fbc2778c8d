//! `make ci` keeps its promises when things go wrong: a failed step is reported with its
//! reason, lab steps without the capability are recorded as skipped (never passed), and
//! teardown (`make destroy`) still runs. The lab capability is switched off here so the
//! test stays short; the failure is forced in the first step.

use std::path::Path;
use std::process::Command;

use stackpilot_core::capability::{self, Capability};

#[test]
fn e2e_ci_records_skips_and_tears_down_after_a_forced_failure() {
    // Teardown needs vagrant even when the lab capability is switched off.
    if !capability::require(&[Capability::Vagrant]) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("ci")
        .env("STACKPILOT_CI_FORCE_FAIL", "checks")
        .env("STACKPILOT_CI_CAPS", "none")
        .current_dir(root)
        .output()
        .expect("xtask ci runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    let summary = std::fs::read_to_string(root.join("ci/logs/summary.txt")).expect("summary");
    assert!(
        summary.contains("FAILED: forced failure (STACKPILOT_CI_FORCE_FAIL=checks)"),
        "{summary}"
    );
    for step in [
        "demo-reviewer-control",
        "demo-reviewer-worker1",
        "drills",
        "deploy-staging",
    ] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("{step} missing: {summary}"));
        assert!(line.contains("skipped: capability missing"), "{line}");
    }
    let teardown = summary
        .lines()
        .find(|l| l.starts_with("teardown"))
        .expect("teardown line");
    assert!(
        teardown.contains("passed"),
        "teardown must run and pass: {summary}"
    );
    let teardown_log =
        std::fs::read_to_string(root.join("ci/logs/teardown.log")).expect("teardown log");
    assert!(
        teardown_log.contains("$ cargo xtask destroy"),
        "{teardown_log}"
    );
    let junit = std::fs::read_to_string(root.join("ci/logs/junit.xml")).expect("junit");
    assert!(junit.contains("failures=\"1\""), "{junit}");
    assert!(
        junit.contains("<skipped message=\"capability missing"),
        "{junit}"
    );
}
