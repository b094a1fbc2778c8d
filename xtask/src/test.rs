//! `cargo xtask test` (`make test`): prerequisites, repo contracts, format, lint, every test.

use std::process::Command;

use crate::prereq;
use crate::run::{Error, step};

/// Runs the whole test suite the way CI does.
pub fn run() -> Result<(), Error> {
    prereq::ensure_test_packages()?;
    crate::check::contracts()?;
    crate::check::format_and_lint()?;
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nextest {
        step(
            "tests",
            Command::new("cargo").args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
                "--success-output",
                "never",
                "--failure-output",
                "final",
            ]),
        )
    } else {
        eprintln!("==> tests: cargo-nextest not installed, using cargo test");
        step(
            "tests",
            Command::new("cargo").args(["test", "--workspace", "--locked", "--no-fail-fast"]),
        )
    }
}
