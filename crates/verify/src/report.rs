//! The verification report and its three renderings: a human table, JSON and JUnit XML.

use serde::{Deserialize, Serialize};
use stackpilot_core::junit;
use stackpilot_core::output::{Render, Table};

/// One check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The check held.
    Pass,
    /// The check did not hold.
    Fail,
    /// The check was not run because a layer below it failed.
    NotRun,
    /// The fact cannot be observed on this node (e.g. compose v1 keeps no env-file label);
    /// reported, not counted as a failure.
    Unverified,
}

impl Verdict {
    /// How the table shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::NotRun => "not run",
            Verdict::Unverified => "unverified",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id, e.g. `http.ready`.
    pub id: String,
    /// Layer number, 1 (node) to 5 (provenance).
    pub layer: u8,
    /// Layer name.
    pub layer_name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Expected and found, or why it was not run.
    pub reason: String,
    /// Time the observation behind it took, when it was timed.
    pub ms: Option<u64>,
}

/// The distinctions operators ask for, each true only when its checks passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The node answered through its transport and is who it should be.
    pub reachable: bool,
    /// A TCP connection to the service port was accepted.
    pub tcp_reachable: bool,
    /// `/health` answered 200 alive.
    pub alive: bool,
    /// `/ready` answered 200.
    pub ready: bool,
    /// Every declared service container runs and its healthcheck says healthy (false
    /// also when a lower layer failed and it was not judged).
    pub healthy: bool,
    /// Every check passed: the service can be used and is the build the receipt names.
    pub usable: bool,
}

/// The whole verification result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The node verified.
    pub node: String,
    /// The environment verified.
    pub env: String,
    /// The service address probed, `ip:port`.
    pub target: String,
    /// True only when no check failed and none was left unrun.
    pub passed: bool,
    /// The operator's distinctions.
    pub summary: ServiceState,
    /// Every check, in layer order.
    pub checks: Vec<Check>,
    /// Wall time of the whole verification, in milliseconds.
    pub elapsed_ms: u64,
}

impl Report {
    /// The first failed check, the one to read first.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.verdict == Verdict::Fail)
    }

    /// JUnit XML: one testsuite, one testcase per check; not-run and unverified checks are
    /// skipped with their reason.
    pub fn junit(&self) -> String {
        junit::Suite {
            name: format!("verify {} {}", self.node, self.env),
            seconds: Some(self.elapsed_ms as f64 / 1000.0),
            cases: self
                .checks
                .iter()
                .map(|c| junit::Case {
                    classname: format!("verify.layer{}.{}", c.layer, c.layer_name),
                    name: c.id.clone(),
                    seconds: c.ms.unwrap_or(0) as f64 / 1000.0,
                    outcome: match c.verdict {
                        Verdict::Pass => junit::Outcome::Passed,
                        Verdict::Fail => junit::Outcome::Failed(c.reason.clone()),
                        Verdict::NotRun | Verdict::Unverified => {
                            junit::Outcome::Skipped(c.reason.clone())
                        }
                    },
                })
                .collect(),
        }
        .render()
    }
}

impl Render for Report {
    fn human(&self) -> String {
        let mut t = Table::new(&["check", "layer", "verdict", "reason", "ms"]);
        for c in &self.checks {
            t.row([
                c.id.clone(),
                format!("{} {}", c.layer, c.layer_name),
                c.verdict.as_str().to_string(),
                c.reason.clone(),
                c.ms.map(|m| m.to_string()).unwrap_or_default(),
            ]);
        }
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let s = &self.summary;
        let mut out = format!(
            "verify: node {} env {} at {}\n\n{}\n",
            self.node,
            self.env,
            self.target,
            t.render()
        );
        out.push_str(&format!(
            "reachable {} · tcp-reachable {} · alive {} · ready {} · healthy {} · usable {}\n",
            yes(s.reachable),
            yes(s.tcp_reachable),
            yes(s.alive),
            yes(s.ready),
            yes(s.healthy),
            yes(s.usable)
        ));
        match self.first_failure() {
            None if self.passed => out.push_str(&format!(
                "verify: PASSED ({} checks, {} ms)\n",
                self.checks.len(),
                self.elapsed_ms
            )),
            None => out.push_str("verify: FAILED (checks not run)\n"),
            Some(c) => out.push_str(&format!(
                "verify: FAILED at layer {} ({}): {}: {}\n",
                c.layer,
                c.layer_name,
                c.id,
                c.reason.replace('\n', " ")
            )),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(verdicts: &[(Verdict, &str)]) -> Report {
        Report {
            node: "control".into(),
            env: "dev".into(),
            target: "172.30.56.10:8000".into(),
            passed: verdicts.iter().all(|(v, _)| *v == Verdict::Pass),
            summary: ServiceState::default(),
            checks: verdicts
                .iter()
                .enumerate()
                .map(|(i, (v, r))| Check {
                    id: format!("c{i}"),
                    layer: 1,
                    layer_name: "node".into(),
                    verdict: *v,
                    reason: r.to_string(),
                    ms: Some(1500),
                })
                .collect(),
            elapsed_ms: 2001,
        }
    }

    #[test]
    fn a_failed_check_is_not_hidden_by_an_unwritable_junit_file() {
        let failed = report(&[(Verdict::Fail, "no")]);
        let full = || JunitFile::create(std::path::Path::new("/dev/full")).ok();
        let e = conclude(&failed, full()).err();
        assert!(
            matches!(&e, Some(Unverified::Failed { junit: Some(_) })),
            "{e:?}"
        );
        assert_eq!(
            conclude(&failed, None),
            Err(Unverified::Failed { junit: None })
        );
        let passed = report(&[(Verdict::Pass, "ok")]);
        let e = conclude(&passed, full()).err();
        assert!(matches!(e, Some(Unverified::NotWritten(_))), "{e:?}");
        assert_eq!(conclude(&passed, None), Ok(()));
    }

    #[test]
    fn junit_counts_failures_and_skips_and_escapes_reasons() {
        let xml = report(&[
            (Verdict::Pass, "ok"),
            (Verdict::Fail, "expected \"a\" <b> & c"),
            (Verdict::NotRun, "not run: layer 1 failed"),
        ])
        .junit();
        assert!(
            xml.contains(r#"tests="3" failures="1" skipped="1" time="2.001""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="expected &quot;a&quot; &lt;b&gt; &amp; c"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<skipped message="not run: layer 1 failed"/>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"name="c0" time="1.500"/>"#), "{xml}");
    }

    #[test]
    fn human_view_names_the_first_failure() {
        let text = report(&[(Verdict::Pass, "ok"), (Verdict::Fail, "port closed")]).human();
        assert!(
            text.contains("verify: FAILED at layer 1 (node): c1: port closed"),
            "{text}"
        );
        assert!(text.contains("check  layer   verdict  reason"), "{text}");
    }
}

/// The file a JUnit report will be written to, opened before verifying: an unwritable path
/// is a usage error found before any check runs, never after a verdict it could hide.
#[derive(Debug)]
pub struct JunitFile {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl JunitFile {
    /// Creates (or truncates) the file now.
    pub fn create(path: &std::path::Path) -> Result<JunitFile, String> {
        std::fs::File::create(path)
            .map(|file| JunitFile {
                path: path.to_path_buf(),
                file,
            })
            .map_err(|e| {
                format!(
                    "--junit {}: cannot write the JUnit report there ({e}); nothing was verified",
                    path.display()
                )
            })
    }

    /// Writes the report's JUnit XML.
    pub fn write(mut self, report: &Report) -> Result<(), String> {
        use std::io::Write;
        self.file
            .write_all(report.junit().as_bytes())
            .map_err(|e| format!("cannot write JUnit report {}: {e}", self.path.display()))
    }
}

/// Why a verification that printed its report does not count as passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    /// A check failed; the JUnit file may also have failed to be written.
    #[error("verification failed (see the report above){}", .junit.as_ref().map(|e| format!("; also {e}")).unwrap_or_default())]
    Failed {
        /// Why the JUnit file could not be written, if it could not.
        junit: Option<String>,
    },
    /// Every check passed but the JUnit file asked for could not be written.
    #[error("{0}")]
    NotWritten(String),
}

/// Ends a verification whose report was printed: writes the JUnit file when one was asked
/// for, and passes only when every check passed and the file was written. A failed check is
/// never hidden behind a write error.
pub fn conclude(report: &Report, junit: Option<JunitFile>) -> Result<(), Unverified> {
    let written = junit.map(|j| j.write(report)).transpose();
    match (report.passed, written) {
        (true, Ok(_)) => Ok(()),
        (true, Err(e)) => Err(Unverified::NotWritten(e)),
        (false, written) => Err(Unverified::Failed {
            junit: written.err(),
        }),
    }
}
