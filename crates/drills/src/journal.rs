//! The run journal: what a drill did and saw, with timestamps, its figures and verdict.
//! Plain data, written as JSON under the host state dir (`<state.host_dir>/runs/`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stackpilot_core::junit;
use stackpilot_core::output::{Render, Table};

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every assertion held and the recovery was verified.
    Passed,
    /// An assertion failed or a step could not be run; the recovery was verified.
    Failed,
    /// The recovery did not bring the stack back to a verified state: the node needs
    /// repair (`make demo-reviewer`).
    RecoveryFailed,
    /// The steady state did not hold before the drill: nothing was injected.
    Refused,
}

impl Verdict {
    /// How tables show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "FAILED",
            Verdict::RecoveryFailed => "RECOVERY FAILED",
            Verdict::Refused => "refused",
        }
    }
}

/// One timestamped event: an injection step, an observation or a recovery action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the drill started.
    pub t_ms: u64,
    /// What happened, short.
    pub what: String,
    /// Details (outcome, error, numbers).
    pub detail: String,
}

/// One assertion about the degraded or recovered behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assertion {
    /// What must hold, in an operator's words.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub found: String,
}

/// The numbers a drill reports; `None` when the drill does not measure it or could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    /// From the injection until the degraded behaviour was first observed.
    pub detection_latency_ms: Option<u64>,
    /// From the restoring action until the service answered ready again.
    pub recovery_ms: Option<u64>,
    /// Api container restarts counted by the engine during the fault.
    pub api_restarts_during_fault: Option<i64>,
    /// Orders acknowledged with 201 during the drill.
    pub orders_acknowledged: Option<u64>,
    /// Acknowledged orders that could not be read back afterwards.
    pub orders_lost: Option<u64>,
    /// Requests the drill's load sent (swarm drills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_sent: Option<u64>,
    /// Of those, answered with a status outside 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_non_2xx: Option<u64>,
    /// Of those, without any HTTP answer (refused, reset, timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_unanswered: Option<u64>,
    /// The load's request rate, per second (rounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate_per_s: Option<u64>,
}

/// The steady-state check before anything is injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteadyState {
    /// `verify` passed.
    pub passed: bool,
    /// What verify said (the first failure, or that every check passed).
    pub reason: String,
}

/// The recovery that always runs after the injection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Actions taken, in order, with their outcomes.
    pub actions: Vec<Event>,
    /// `verify` passed afterwards.
    pub verified: bool,
    /// What verify said afterwards.
    pub reason: String,
}

/// One drill run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Drill name.
    pub drill: String,
    /// Node it ran on.
    pub node: String,
    /// Environment it ran against.
    pub env: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Wall time of the whole drill, recovery included.
    pub duration_ms: u64,
    /// The steady state before the drill.
    pub steady_state: SteadyState,
    /// Injection steps.
    pub injection: Vec<Event>,
    /// What was observed, in time order.
    pub observations: Vec<Event>,
    /// The assertions and whether they held.
    pub assertions: Vec<Assertion>,
    /// The recovery (absent when the drill was refused before injecting).
    pub recovery: Option<Recovery>,
    /// The figures.
    pub figures: Figures,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in one line.
    pub reason: String,
}

/// Decides a drill's verdict from what happened. Pure.
///
/// A failed recovery outranks everything after injection: a drill whose assertions all held
/// but that left the stack broken did not pass.
pub fn decide(
    steady: &SteadyState,
    assertions: &[Assertion],
    step_error: Option<&str>,
    recovery: Option<&Recovery>,
) -> (Verdict, String) {
    if !steady.passed {
        return (
            Verdict::Refused,
            format!(
                "steady state not met, nothing injected: {}; bring the stack up first (make up, or make demo-reviewer)",
                steady.reason
            ),
        );
    }
    match recovery {
        Some(r) if r.verified => {}
        Some(r) => {
            return (
                Verdict::RecoveryFailed,
                format!(
                    "recovery failed: {}; repair the node with make demo-reviewer",
                    r.reason
                ),
            );
        }
        None => {
            return (
                Verdict::RecoveryFailed,
                "no recovery was run; repair the node with make demo-reviewer".into(),
            );
        }
    }
    if let Some(e) = step_error {
        return (Verdict::Failed, format!("a drill step failed: {e}"));
    }
    let failed: Vec<&str> = assertions
        .iter()
        .filter(|a| !a.passed)
        .map(|a| a.name.as_str())
        .collect();
    if assertions.is_empty() {
        return (Verdict::Failed, "no assertion was made".into());
    }
    if failed.is_empty() {
        (
            Verdict::Passed,
            format!("{} assertions held; recovery verified", assertions.len()),
        )
    } else {
        (
            Verdict::Failed,
            format!("assertion failed: {}", failed.join("; ")),
        )
    }
}

/// `<runs dir>/<compact UTC timestamp>-<drill>.json`.
pub fn journal_path(runs_dir: &Path, started_at: &str, drill: &str) -> PathBuf {
    let stamp: String = started_at
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    runs_dir.join(format!("{stamp}-{drill}.json"))
}

/// Why a journal could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the drill journal {path}: {detail}")]
pub struct JournalError {
    /// Where it should have gone.
    pub path: PathBuf,
    /// The error.
    pub detail: String,
}

impl Journal {
    /// Writes the journal as pretty JSON into `runs_dir`; returns its path.
    pub fn write(&self, runs_dir: &Path) -> Result<PathBuf, JournalError> {
        let path = journal_path(runs_dir, &self.started_at, &self.drill);
        let err = |detail: String| JournalError {
            path: path.clone(),
            detail,
        };
        std::fs::create_dir_all(runs_dir).map_err(|e| err(e.to_string()))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| err(e.to_string()))?;
        Ok(path)
    }
}

/// The results of a set of drills, as printed at the end of `drills run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillResults {
    /// One journal per drill, in run order.
    pub journals: Vec<Journal>,
    /// Where each journal was written (same order), or why it was not.
    pub files: Vec<String>,
}

impl DrillResults {
    /// True only when every drill passed.
    pub fn passed(&self) -> bool {
        !self.journals.is_empty() && self.journals.iter().all(|j| j.verdict == Verdict::Passed)
    }

    /// JUnit XML: one testcase per drill; the reason is the failure message.
    pub fn junit(&self) -> String {
        let total: u64 = self.journals.iter().map(|j| j.duration_ms).sum();
        junit::Suite {
            name: "drills".into(),
            seconds: Some(total as f64 / 1000.0),
            cases: self
                .journals
                .iter()
                .map(|j| junit::Case {
                    classname: format!("drills.{}", j.node),
                    name: j.drill.clone(),
                    seconds: j.duration_ms as f64 / 1000.0,
                    outcome: if j.verdict == Verdict::Passed {
                        junit::Outcome::Passed
                    } else {
                        junit::Outcome::Failed(format!("{}: {}", j.verdict.as_str(), j.reason))
                    },
                })
                .collect(),
        }
        .render()
    }
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

impl Render for DrillResults {
    fn human(&self) -> String {
        let mut t = Table::new(&[
            "drill",
            "verdict",
            "detect ms",
            "recover ms",
            "api restarts",
            "orders acked",
            "orders lost",
            "seconds",
        ]);
        for j in &self.journals {
            let f = &j.figures;
            t.row([
                j.drill.clone(),
                j.verdict.as_str().to_string(),
                opt(f.detection_latency_ms),
                opt(f.recovery_ms),
                opt(f.api_restarts_during_fault),
                opt(f.orders_acknowledged),
                opt(f.orders_lost),
                secs(j.duration_ms),
            ]);
        }
        let mut out = t.render();
        for (j, file) in self.journals.iter().zip(&self.files) {
            if j.verdict != Verdict::Passed {
                out.push_str(&format!(
                    "{}: {}: {}\n",
                    j.drill,
                    j.verdict.as_str(),
                    j.reason
                ));
                for a in j.assertions.iter().filter(|a| !a.passed) {
                    out.push_str(&format!(
                        "  - {}: expected {}, found {}\n",
                        a.name, a.expected, a.found
                    ));
                }
            }
            out.push_str(&format!("journal {}: {file}\n", j.drill));
        }
        let passed = self
            .journals
            .iter()
            .filter(|j| j.verdict == Verdict::Passed)
            .count();
        out.push_str(&format!(
            "drills: {passed} of {} passed\n",
            self.journals.len()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(passed: bool) -> SteadyState {
        SteadyState {
            passed,
            reason: if passed {
                "every check passed".into()
            } else {
                "tcp.connect: refused".into()
            },
        }
    }

    fn held(name: &str, passed: bool) -> Assertion {
        Assertion {
            name: name.into(),
            passed,
            expected: "x".into(),
            found: "y".into(),
        }
    }

    fn recovered(verified: bool) -> Recovery {
        Recovery {
            actions: vec![],
            verified,
            reason: if verified {
                "verify passed".into()
            } else {
                "http.ready: 503".into()
            },
        }
    }

    #[test]
    fn all_assertions_held_and_recovery_verified_passes() {
        let (v, _) = decide(
            &steady(true),
            &[held("a", true)],
            None,
            Some(&recovered(true)),
        );
        assert_eq!(v, Verdict::Passed);
    }

    #[test]
    fn a_failed_recovery_outranks_held_assertions() {
        let (v, why) = decide(
            &steady(true),
            &[held("a", true)],
            None,
            Some(&recovered(false)),
        );
        assert_eq!(v, Verdict::RecoveryFailed);
        assert!(why.contains("http.ready: 503"), "{why}");
        assert!(why.contains("make demo-reviewer"), "{why}");
    }

    #[test]
    fn a_failed_assertion_fails_a_recovered_drill() {
        let (v, why) = decide(
            &steady(true),
            &[held("ready 503 within 1 s", false), held("b", true)],
            None,
            Some(&recovered(true)),
        );
        assert_eq!(v, Verdict::Failed);
        assert!(why.contains("ready 503 within 1 s"), "{why}");
    }

    #[test]
    fn a_broken_steady_state_refuses_with_its_reason() {
        let (v, why) = decide(&steady(false), &[], None, None);
        assert_eq!(v, Verdict::Refused);
        assert!(why.contains("tcp.connect: refused"), "{why}");
    }

    #[test]
    fn a_step_error_fails_and_no_assertions_is_not_a_pass() {
        let (v, why) = decide(
            &steady(true),
            &[],
            Some("stop db: exit 1"),
            Some(&recovered(true)),
        );
        assert_eq!(v, Verdict::Failed);
        assert!(why.contains("stop db"), "{why}");
        let (v, _) = decide(&steady(true), &[], None, Some(&recovered(true)));
        assert_eq!(v, Verdict::Failed);
    }

    fn journal(drill: &str, verdict: Verdict, figures: Figures, failed: Option<&str>) -> Journal {
        Journal {
            drill: drill.into(),
            node: "worker2".into(),
            env: "dev".into(),
            started_at: "2026-11-25T19:00:00Z".into(),
            duration_ms: 7102,
            steady_state: steady(true),
            injection: vec![],
            observations: vec![],
            assertions: failed.map_or_else(Vec::new, |n| vec![held(n, false)]),
            recovery: Some(recovered(verdict != Verdict::RecoveryFailed)),
            figures,
            verdict,
            reason: failed.map_or("5 assertions held; recovery verified".into(), |n| {
                format!("assertion failed: {n}")
            }),
        }
    }

    #[test]
    fn the_summary_table_shows_figures_failures_and_journals() {
        let s = DrillResults {
            journals: vec![
                journal(
                    "db-down",
                    Verdict::Passed,
                    Figures {
                        detection_latency_ms: Some(50),
                        recovery_ms: Some(135),
                        api_restarts_during_fault: Some(0),
                        ..Figures::default()
                    },
                    None,
                ),
                journal(
                    "db-midflight-loss",
                    Verdict::Failed,
                    Figures {
                        orders_acknowledged: Some(732),
                        orders_lost: Some(2),
                        ..Figures::default()
                    },
                    Some("no acknowledged order lost"),
                ),
            ],
            files: vec!["/r/a.json".into(), "/r/b.json".into()],
        };
        assert!(!s.passed());
        insta::assert_snapshot!("summary", s.human());
        let xml = s.junit();
        assert!(xml.contains(r#"tests="2" failures="1""#), "{xml}");
        assert!(
            xml.contains(
                r#"<failure message="FAILED: assertion failed: no acknowledged order lost"/>"#
            ),
            "{xml}"
        );
    }

    #[test]
    fn journal_file_name_is_timestamp_then_drill() {
        let p = journal_path(Path::new("/r"), "2026-11-25T19:00:00Z", "db-down");
        assert_eq!(p, Path::new("/r/20261125T190000Z-db-down.json"));
    }
}
