//! `cargo xtask check` (`make check`): the repo contracts of the `contracts` crate, then
//! format, lint and the unit tests.

use std::process::Command;

use crate::run::{Error, repo_root, step};

/// `make check`: the contracts, then format, lint and unit tests.
pub fn run() -> Result<(), Error> {
    contracts()?;
    format_and_lint()?;
    step(
        "unit tests",
        Command::new("cargo").args(["test", "--workspace", "--locked", "--lib", "--bins"]),
    )
}

/// `cargo fmt --check` and clippy with warnings denied, shared by `make check` and `make test`.
pub fn format_and_lint() -> Result<(), Error> {
    step(
        "format",
        Command::new("cargo").args(["fmt", "--all", "--check"]),
    )?;
    step(
        "lint",
        Command::new("cargo").args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )
}

/// Runs every repo contract and prints the table; an error when any is violated.
pub fn contracts() -> Result<(), Error> {
    let checked = ::contracts::check(&repo_root())?;
    if !checked.unproven.is_empty() {
        eprintln!(
            "guarantees without an executable proof yet ({}): {}",
            checked.unproven.len(),
            checked.unproven.join(", ")
        );
    }
    for line in checked.violations() {
        eprintln!("{line}");
    }
    stackpilot_core::out!("{}", checked.table());
    match checked.failed() {
        0 => Ok(()),
        failed => Err(Error::from(stackpilot_core::step::StepError {
            step: "repo contracts".into(),
            cmd: "cargo xtask check".into(),
            status: format!("{failed} contract(s) violated (listed above)"),
        })),
    }
}
