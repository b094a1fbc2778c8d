//! `cargo xtask test` (`make test`): prerequisites, repo contracts, format, lint, every test,
//! then the tests that skipped for a missing capability, counted and named (a skipped test
//! is not a passed one; under `CI=true` those tests fail instead).

use std::path::PathBuf;
use std::process::Command;

use ::ci::background::Background;
use ::ci::suite;
use stackpilot_core::step::StepError;

use crate::run::{Error, repo_root, step};
use ::lab::prereq;

/// The nextest profile `make test` runs with: the default one plus a JUnit report that keeps
/// passing tests' output, where the skip markers are (see .config/nextest.toml).
const PROFILE: &str = "make-test";

/// `make test-vm`: the libvirt VM e2e alone, its output as it runs.
pub fn vm() -> Result<(), Error> {
    prereq::ensure(prereq::EntryPoint::Test)?;
    let _writeback = ::lab::writeback::lower_for_suite();
    let args = "nextest run --locked -p xtask --test vm_libvirt --no-capture";
    step("vm e2e", Command::new("cargo").args(args.split(' ')))
}

/// The suite has tests that talk to libvirt (a plain `vagrant validate` with vagrant-libvirt
/// installed connects to it), so make test installs libvirt and starts its daemons, as the
/// lab does for the libvirt provider. Where it cannot (no root, no apt-get) those tests skip
/// and say why; under CI that is a failure here already.
fn libvirt_host() -> Result<(), Error> {
    match prereq::ensure_libvirt_host() {
        Ok(()) => Ok(()),
        Err(e) if !stackpilot_core::capability::in_ci() => {
            eprintln!(
                "==> prerequisites (libvirt): not set up ({e}); the tests that need libvirt will skip"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The lab images built in the background while the suite compiles: on a fresh host they
/// take minutes of mostly downloads and package installs that would otherwise wait for the
/// first lab test. Tests that need them meanwhile wait on the host's build lock
/// (`lab::host_lock`) and then find them built. (The VM e2e's lab up builds the libvirt box.)
fn images_in_background() -> Option<Background> {
    let mut cmd = Command::new(std::env::current_exe().ok()?);
    cmd.arg("images");
    let log = repo_root().join("target/make-test/images.log");
    Background::start("images", "cargo xtask images", cmd, log)
        .map_err(|e| {
            eprintln!(
                "==> images: not built in the background ({e}); the first lab test builds them"
            )
        })
        .ok()
}

/// Runs the whole test suite the way CI does.
pub fn run() -> Result<(), Error> {
    prereq::ensure(prereq::EntryPoint::Test)?;
    let _writeback = ::lab::writeback::lower_for_suite();
    libvirt_host()?;
    let images = images_in_background();
    crate::check::contracts()?;
    crate::check::format_and_lint()?;
    let before = lab_leftovers();
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let (result, skipped) = if nextest {
        let junit = junit_path();
        // A report of an earlier run must not be counted as this one's.
        let _ = std::fs::remove_file(&junit);
        let result = step(
            "tests",
            Command::new("cargo").args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
                "--profile",
                PROFILE,
                "--failure-output",
                "final",
            ]),
        );
        let skipped = match std::fs::read_to_string(&junit) {
            Ok(xml) => Some(suite::skips_in_junit(&xml)),
            Err(e) => {
                eprintln!("==> tests: cannot read {}: {e}", junit.display());
                None
            }
        };
        (result, skipped)
    } else {
        eprintln!("==> tests: cargo-nextest not installed, using cargo test");
        let (result, skipped) = suite::libtest_run(&repo_root());
        let failed = |status| StepError::new("tests", "cargo test --workspace", status);
        (result.map_err(|s| Error::from(failed(s))), Some(skipped))
    };
    match &skipped {
        Some(s) => eprint!("{}", suite::skipped_report(s)),
        None => eprintln!("==> tests: skipped tests could not be counted"),
    }
    // The e2e suites share this checkout's lab; the suite tears down what it brought up, and
    // the check proves nothing of it is left (a lab the user had before is theirs).
    let left = lab_leftovers();
    if left.iter().any(|r| !before.contains(r)) && before.is_empty() {
        eprintln!(
            "==> tests: the suite brought this checkout's lab up ({} resources): destroying it",
            left.len()
        );
        if let Err(e) = crate::lab::run(crate::lab::LabCmd::Destroy { nodes: vec![] }) {
            eprintln!("==> tests: lab destroy failed: {e}");
        }
    }
    let leftovers = suite::no_leftovers(&before, &lab_leftovers()).map_err(Error::from);
    let images = images.map_or(Ok(0.0), Background::finish);
    result?;
    images?;
    leftovers
}

/// This checkout's lab resources on the host.
fn lab_leftovers() -> Vec<String> {
    ::lab::named::checkout_resources(&repo_root())
}

/// Where nextest writes the JUnit report of [`PROFILE`].
fn junit_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("nextest").join(PROFILE).join("junit.xml")
}
