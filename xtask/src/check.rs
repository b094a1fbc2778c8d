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

/// Where the drill modules are (see [`format_and_lint`]).
const DRILL_MODULES: &str = "crates/drills/src/drills";

/// `cargo fmt --check` and clippy with warnings denied, shared by `make check` and `make test`.
pub fn format_and_lint() -> Result<(), Error> {
    step(
        "format",
        Command::new("cargo").args(["fmt", "--all", "--check"]),
    )?;
    // The drills' modules are declared inside the `registry!` macro, where `cargo fmt`
    // does not follow them: they are checked by name.
    let drills = repo_root().join(DRILL_MODULES);
    let mut files: Vec<_> = std::fs::read_dir(&drills)
        .map_err(|e| {
            Error::from(stackpilot_core::step::StepError::new(
                "format",
                &format!("read {}", drills.display()),
                e,
            ))
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    step(
        "format (drill modules)",
        Command::new("rustfmt")
            .args(["--check", "--edition", "2024"])
            .args(&files),
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
