//! `cargo xtask test` (`make test`): prerequisites, repo contracts, format, lint, every test,
//! then the tests that skipped for a missing capability, counted and named (a skipped test
//! is not a passed one; under `CI=true` those tests fail instead).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use stackpilot_core::capability::SKIP_MARKER;

use crate::run::{Error, repo_root, step};
use ::lab::prereq;

/// The nextest profile `make test` runs with: the default one plus a JUnit report that keeps
/// passing tests' output, where the skip markers are (see .config/nextest.toml).
const PROFILE: &str = "make-test";

/// A test that printed a skip marker, with the marker lines.
#[derive(Debug, PartialEq, Eq)]
struct Skipped {
    test: String,
    reasons: Vec<String>,
}

/// Runs the whole test suite the way CI does.
pub fn run() -> Result<(), Error> {
    prereq::ensure(prereq::EntryPoint::Test)?;
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
            Ok(xml) => Some(skips_in_junit(&xml)),
            Err(e) => {
                eprintln!("==> tests: cannot read {}: {e}", junit.display());
                None
            }
        };
        (result, skipped)
    } else {
        eprintln!("==> tests: cargo-nextest not installed, using cargo test");
        // `--show-output` prints passing tests' output too: the skip markers are in it.
        libtest_run()
    };
    match &skipped {
        Some(s) => report(s),
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
    let leftovers = check_no_leftovers(&before, &lab_leftovers());
    result?;
    leftovers
}

/// This checkout's lab resources on the host: containers, networks and volumes labelled
/// with the checkout (`io.stackpilot.checkout`), one `kind name` line each.
fn lab_leftovers() -> Vec<String> {
    let root = repo_root();
    let root = root.canonicalize().unwrap_or(root);
    let filter = format!(
        "label={}={}",
        stackpilot_core::labs::CHECKOUT_LABEL,
        root.display()
    );
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
        ("network", &["network", "ls", "--format", "{{.Name}}"][..]),
        ("volume", &["volume", "ls", "--format", "{{.Name}}"][..]),
    ] {
        let out = Command::new("docker")
            .args(args)
            .args(["--filter", &filter])
            .output();
        if let Some(o) = out.ok().filter(|o| o.status.success()) {
            found.extend(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("{kind} {}", l.trim())),
            );
        }
    }
    found
}

/// The suite must leave no lab resource of this checkout that was not there before it.
fn check_no_leftovers(before: &[String], after: &[String]) -> Result<(), Error> {
    let left: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    if left.is_empty() {
        eprintln!("==> tests: no lab container, network or volume of this checkout left");
        return Ok(());
    }
    Err(Error::StepFailed {
        step: "tests: leftover check".into(),
        cmd: "docker ps/network ls/volume ls --filter label=io.stackpilot.checkout=<this checkout>"
            .into(),
        status: format!(
            "the suite left lab resources of this checkout behind:\n    {}\n  a test did not clean up; remove them with: cargo xtask destroy",
            left.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n    ")
        ),
    })
}

/// Where nextest writes the JUnit report of [`PROFILE`].
fn junit_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("nextest").join(PROFILE).join("junit.xml")
}

fn report(skipped: &[Skipped]) {
    if skipped.is_empty() {
        eprintln!("==> tests: 0 skipped");
        return;
    }
    eprintln!(
        "==> tests: {} skipped (not passed: each lacks a capability; under CI=true they fail):",
        skipped.len()
    );
    for s in skipped {
        eprintln!("  {}", s.test);
        for r in &s.reasons {
            eprintln!("      {r}");
        }
    }
}

/// `cargo test` with output streamed through, scanned for skip markers.
fn libtest_run() -> (Result<(), Error>, Option<Vec<Skipped>>) {
    let args = [
        "test",
        "--workspace",
        "--locked",
        "--no-fail-fast",
        "--",
        "--show-output",
    ];
    let line = format!("cargo {}", args.join(" "));
    eprintln!("==> tests: {line}");
    let failed = |status: String| Error::StepFailed {
        step: "tests".into(),
        cmd: line.clone(),
        status,
    };
    let mut child = match Command::new("cargo")
        .args(args)
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return (Err(failed(format!("could not start: {e}"))), None),
    };
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{l}");
            out.push_str(&l);
            out.push('\n');
        }
    }
    let result = match child.wait() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(failed(s.to_string())),
        Err(e) => Err(failed(e.to_string())),
    };
    (result, Some(skips_in_libtest(&out)))
}

/// Tests whose captured output in nextest's JUnit report holds a skip marker.
fn skips_in_junit(xml: &str) -> Vec<Skipped> {
    let mut found = Vec::new();
    for case in xml.split("<testcase ").skip(1) {
        let case = case.split("</testcase>").next().unwrap_or(case);
        let reasons = markers(&unescape(case));
        if reasons.is_empty() {
            continue;
        }
        let attr = |name: &str| {
            let key = format!("{name}=\"");
            case.split_once(&key)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(v, _)| unescape(v))
                .unwrap_or_default()
        };
        found.push(Skipped {
            test: format!("{} {}", attr("classname"), attr("name")),
            reasons,
        });
    }
    found
}

/// Tests whose section of `cargo test -- --show-output` holds a skip marker.
fn skips_in_libtest(out: &str) -> Vec<Skipped> {
    let mut found: Vec<Skipped> = Vec::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            current = Some(name.to_string());
            continue;
        }
        let (Some(test), Some(at)) = (&current, line.find(SKIP_MARKER)) else {
            continue;
        };
        let reason = line[at..].to_string();
        match found.last_mut() {
            Some(s) if &s.test == test => s.reasons.push(reason),
            _ => found.push(Skipped {
                test: test.clone(),
                reasons: vec![reason],
            }),
        }
    }
    found
}

/// The marker lines in a test's output (`SKIP(<capability>): <reason>`).
fn markers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find(SKIP_MARKER).map(|at| l[at..].trim().to_string()))
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="0" errors="0">
<testsuite name="ctx-guard::namespace" tests="2" disabled="0" errors="0" failures="0">
<testcase name="refuses_a_host" classname="ctx-guard::namespace" time="0.01">
<system-out></system-out>
<system-err>SKIP(unshare): running as uid 1000, not root (run `make test` as root, as CI does)
</system-err>
</testcase>
<testcase name="allows_a_node" classname="ctx-guard::namespace" time="0.2">
<system-out>ok &lt;node&gt;
</system-out>
</testcase>
</testsuite>
<testsuite name="xtask::lab" tests="1" disabled="0" errors="0" failures="0">
<testcase name="e2e_lab_cycle" classname="xtask::lab" time="0.01">
<system-err>SKIP(docker): no Docker engine answers `docker info`: &quot;refused&quot;
SKIP(vagrant): vagrant not installed
</system-err>
</testcase>
</testsuite>
</testsuites>
"#;

    #[test]
    fn junit_skips_are_the_tests_that_printed_a_marker() {
        assert_eq!(
            skips_in_junit(JUNIT),
            vec![
                Skipped {
                    test: "ctx-guard::namespace refuses_a_host".into(),
                    reasons: vec![
                        "SKIP(unshare): running as uid 1000, not root (run `make test` as root, as CI does)".into()
                    ],
                },
                Skipped {
                    test: "xtask::lab e2e_lab_cycle".into(),
                    reasons: vec![
                        "SKIP(docker): no Docker engine answers `docker info`: \"refused\"".into(),
                        "SKIP(vagrant): vagrant not installed".into(),
                    ],
                },
            ]
        );
    }

    #[test]
    fn only_resources_the_suite_left_fail_the_leftover_check() {
        let before = vec!["container dev-control".to_string()];
        assert!(
            check_no_leftovers(&before, &before).is_ok(),
            "already there"
        );
        let after = vec![
            "container dev-control".to_string(),
            "network dev-lab".to_string(),
        ];
        let err = check_no_leftovers(&before, &after).expect_err("left a network");
        assert!(err.to_string().contains("network dev-lab"), "{err}");
        assert!(!err.to_string().contains("dev-control"), "{err}");
    }

    #[test]
    fn a_junit_report_without_markers_has_no_skips() {
        assert!(skips_in_junit(&JUNIT.replace("SKIP(", "ran(")).is_empty());
    }

    #[test]
    fn libtest_skips_are_found_in_each_tests_output_section() {
        let out = "\
running 2 tests
test a ... ok
test b ... ok

successes:

---- namespace::a stdout ----
SKIP(root): running as uid 1000

---- namespace::b stdout ----
all good

successes:
    namespace::a
    namespace::b
";
        assert_eq!(
            skips_in_libtest(out),
            vec![Skipped {
                test: "namespace::a".into(),
                reasons: vec!["SKIP(root): running as uid 1000".into()],
            }]
        );
    }
}
