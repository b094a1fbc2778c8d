//! What `make ci` records: each step's outcome, the summary and the JUnit XML.

use std::fmt::Write as _;

use stackpilot_core::junit;
pub use stackpilot_core::junit::Outcome;

use crate::caps::Capabilities;

/// One step's record.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// Step id.
    pub id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Seconds it took.
    pub seconds: f64,
    /// Its log file, relative to the repo root.
    pub log: String,
}

/// The summary's text: every step with its outcome and reason.
pub fn summary(caps: &Capabilities, steps: &[StepRecord]) -> String {
    let mut s = String::from("StackPilot CI summary\n\ncapabilities:\n");
    for (name, r) in [
        ("docker engine", &caps.docker),
        ("vagrant", &caps.vagrant),
        ("node containers", &caps.node_containers),
    ] {
        let _ = writeln!(
            s,
            "  {name:<16} {}",
            match r {
                Ok(v) => format!("yes ({v})"),
                Err(why) => format!("no ({why})"),
            }
        );
    }
    let mut t = stackpilot_core::output::Table::new(&["step", "result", "seconds", "log"]);
    for st in steps {
        t.row([
            st.id.clone(),
            match &st.outcome {
                Outcome::Passed => "passed".into(),
                Outcome::Failed(why) => format!("FAILED: {why}"),
                Outcome::Skipped(why) => format!("skipped: {why}"),
            },
            format!("{:.1}", st.seconds),
            st.log.clone(),
        ]);
    }
    let ran = steps
        .iter()
        .filter(|s| !matches!(s.outcome, Outcome::Skipped(_)))
        .count();
    let failed = steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
        .count();
    let skipped = steps.len() - ran;
    let _ = write!(
        s,
        "\n{}\n{ran} ran, {failed} failed, {skipped} skipped\n",
        t.render()
    );
    s
}

/// JUnit XML: one testcase per step; skipped steps carry their reason.
pub fn junit(steps: &[StepRecord]) -> String {
    junit::Suite {
        name: "stackpilot ci".into(),
        seconds: None,
        cases: steps
            .iter()
            .map(|st| junit::Case {
                classname: "ci".into(),
                name: st.id.clone(),
                seconds: st.seconds,
                outcome: st.outcome.clone(),
            })
            .collect(),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(lab: bool) -> Capabilities {
        Capabilities {
            docker: Ok("engine 20.10".into()),
            vagrant: if lab {
                Ok("Vagrant 2.3.4".into())
            } else {
                Err("not installed".into())
            },
            node_containers: Ok("starts".into()),
        }
    }

    #[test]
    fn a_missing_capability_names_itself() {
        assert_eq!(caps(true).lab_missing(), None);
        assert_eq!(
            caps(false).lab_missing().as_deref(),
            Some("vagrant: not installed")
        );
    }

    #[test]
    fn summary_and_junit_tell_passed_failed_and_skipped_apart() {
        let steps = vec![
            StepRecord {
                id: "checks".into(),
                outcome: Outcome::Passed,
                seconds: 1.0,
                log: "ci/logs/checks.log".into(),
            },
            StepRecord {
                id: "drills".into(),
                outcome: Outcome::Skipped("capability missing: vagrant".into()),
                seconds: 0.0,
                log: "x".into(),
            },
            StepRecord {
                id: "teardown".into(),
                outcome: Outcome::Failed("exit Some(1): boom".into()),
                seconds: 2.0,
                log: "y".into(),
            },
        ];
        let s = summary(&caps(false), &steps);
        assert!(s.contains("skipped: capability missing: vagrant"), "{s}");
        assert!(s.contains("FAILED: exit Some(1): boom"), "{s}");
        assert!(s.contains("2 ran, 1 failed, 1 skipped"), "{s}");
        let j = junit(&steps);
        assert!(j.contains("failures=\"1\" skipped=\"1\""), "{j}");
        assert!(
            j.contains("<skipped message=\"capability missing: vagrant\"/>"),
            "{j}"
        );
    }
}
