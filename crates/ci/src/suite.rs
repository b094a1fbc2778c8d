//! What `make test` records besides pass and fail: the tests that skipped for a missing
//! capability (read from the runner's own output, counted and named, never passed), and
//! the lab resources a suite left behind.

use stackpilot_core::capability::SKIP_MARKER;
use stackpilot_core::step::StepError;

/// A test that printed a skip marker, with the marker lines.
#[derive(Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The test (`<binary> <name>`).
    pub test: String,
    /// Its marker lines (`SKIP(<capability>): <why>`).
    pub reasons: Vec<String>,
}

/// The skipped tests as the run's closing lines.
pub fn skipped_report(skipped: &[Skipped]) -> String {
    if skipped.is_empty() {
        return "==> tests: 0 skipped\n".into();
    }
    let mut s = format!(
        "==> tests: {} skipped (not passed: each lacks a capability; under CI=true they fail):\n",
        skipped.len()
    );
    for sk in skipped {
        s.push_str(&format!("  {}\n", sk.test));
        for r in &sk.reasons {
            s.push_str(&format!("      {r}\n"));
        }
    }
    s
}

/// make test's last check: the suite must leave no lab resource of this checkout (`after`)
/// that was not there before it (`before`).
pub fn no_leftovers(before: &[String], after: &[String]) -> Result<(), StepError> {
    let left = left_behind(before, after);
    if left.is_empty() {
        eprintln!("==> tests: no lab container, network or volume of this checkout left");
        return Ok(());
    }
    Err(StepError::new(
        "tests: leftover check",
        "docker ps/network ls/volume ls --filter label=io.stackpilot.checkout=<this checkout>",
        format!(
            "the suite left lab resources of this checkout behind:\n    {}\n  a test did not clean up; remove them with: cargo xtask destroy",
            left.join("\n    ")
        ),
    ))
}

/// The lab resources in `after` that were not there `before`: what the suite left.
pub fn left_behind<'a>(before: &[String], after: &'a [String]) -> Vec<&'a str> {
    after
        .iter()
        .filter(|r| !before.contains(r))
        .map(String::as_str)
        .collect()
}

/// Tests whose captured output in nextest's JUnit report holds a skip marker.
pub fn skips_in_junit(xml: &str) -> Vec<Skipped> {
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
/// `cargo test` of the workspace at `root` (no nextest), its output streamed through and
/// scanned for skip markers: the run's failure (what to show) and the skipped tests.
pub fn libtest_run(root: &std::path::Path) -> (Result<(), String>, Vec<Skipped>) {
    use std::io::{BufRead, BufReader};
    // `--show-output` prints passing tests' output too: the skip markers are in it.
    let args = [
        "test",
        "--workspace",
        "--locked",
        "--no-fail-fast",
        "--",
        "--show-output",
    ];
    eprintln!("==> tests: cargo {}", args.join(" "));
    let spawned = std::process::Command::new("cargo")
        .args(args)
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return (Err(format!("could not start: {e}")), vec![]),
    };
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            stackpilot_core::outln!("{l}");
            out.push_str(&l);
            out.push('\n');
        }
    }
    let result = match child.wait() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(s.to_string()),
        Err(e) => Err(e.to_string()),
    };
    (result, skips_in_libtest(&out))
}

pub fn skips_in_libtest(out: &str) -> Vec<Skipped> {
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
    fn only_resources_the_suite_left_are_left_behind() {
        let before = vec!["container dev-control".to_string()];
        assert!(left_behind(&before, &before).is_empty(), "already there");
        let after = vec![
            "container dev-control".to_string(),
            "network dev-lab".to_string(),
        ];
        assert_eq!(left_behind(&before, &after), vec!["network dev-lab"]);
    }

    #[test]
    fn skipped_tests_are_counted_and_named_with_their_reasons() {
        assert_eq!(skipped_report(&[]), "==> tests: 0 skipped\n");
        let text = skipped_report(&skips_in_junit(JUNIT));
        assert!(
            text.starts_with("==> tests: 2 skipped (not passed"),
            "{text}"
        );
        assert!(
            text.contains("  xtask::lab e2e_lab_cycle\n      SKIP(docker)"),
            "{text}"
        );
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
