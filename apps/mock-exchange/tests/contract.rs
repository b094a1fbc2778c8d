//! The API contract, checked by a real fuzzer: schemathesis (pinned, from PyPI, installed
//! into a venv under `target/tools/` like the secret scanner) generates requests from
//! `openapi.json`, runs every check against the real service on a private Postgres, and
//! any finding fails the test with schemathesis's own report.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{postgres, ready_service};

/// Pinned fuzzer version.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Examples per operation: enough for every check to see valid, invalid and edge inputs,
/// small enough to keep `make test` short (the run takes about half a minute).
const MAX_EXAMPLES: &str = "50";
/// A fixed seed: a finding reproduces with the same command.
const SEED: &str = "20261130";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv with schemathesis, created on first use (rebuilt when absent).
fn fuzzer() -> PathBuf {
    let venv = workspace_root().join("target/tools/schemathesis");
    let st = venv.join("bin/st");
    let installed = Command::new(&st)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("4.32.5"));
    if installed {
        return st;
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    assert!(
        created.is_ok_and(|s| s.success()),
        "cannot create a Python venv at {}: python3 with its venv module is needed \
         (Debian: apt-get install -y python3 python3-venv python3-pip)",
        venv.display()
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", SCHEMATHESIS])
        .status();
    assert!(
        pip.is_ok_and(|s| s.success()),
        "pip could not install {SCHEMATHESIS} into {} (is PyPI reachable?)",
        venv.display()
    );
    st
}

#[test]
fn schemathesis_finds_nothing_against_the_real_service() {
    let st = fuzzer();
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let report = tempfile::tempdir().expect("tempdir");
    let out = Command::new(&st)
        .arg("run")
        .arg(&spec)
        .args(["--url", &svc.url("")])
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--request-timeout", "15"])
        .args(["--report", "junit", "--report-dir"])
        .arg(report.path())
        // schemathesis keeps a cache of crashes in its working directory: keep it out of
        // the checkout.
        .current_dir(report.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}); reproduce with:\n  {} run {} --url {} --checks all --max-examples {MAX_EXAMPLES} --seed {SEED}\n{stdout}\n{stderr}\nservice logs:\n{}",
        out.status.code(),
        st.display(),
        spec.display(),
        svc.url(""),
        svc.logs().join("\n")
    );
    // A run that tested nothing would also exit 0: every documented operation must have
    // been exercised.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).expect("read openapi.json"))
            .expect("openapi.json is JSON");
    let operations: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|ops| ops.as_object().map_or(0, |o| o.len()))
        .sum();
    assert!(
        stdout.contains(&format!("Tested: {operations}")),
        "schemathesis did not test all {operations} documented operations:\n{stdout}"
    );
}
