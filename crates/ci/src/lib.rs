//! `make ci`: runtime verification with CI authority.
//!
//! Owns what CI runs and how it is recorded: it detects what this machine can do and
//! prints it, runs the repo checks always, runs the lab e2e (demo-reviewer on two nodes,
//! drills, a deploy) only when the lab can run here — otherwise records each as
//! "skipped: <capability missing>", never as passed — and always tears the lab down, also
//! after a failure. It writes `ci/logs/`: checks.log, verify.log, one log per step,
//! summary.txt (what ran, what was skipped and why, why each failure occurred) and
//! junit.xml. For `make test` it owns the accounting of skipped tests ([`suite`]): read
//! from the runner's own output, counted and named, never passed.
//!
//! It may not do any step's work itself: every step is a `cargo xtask` golden command run
//! as a child process (the binary is handed in), so CI proves exactly what an operator
//! types. It never reads the environment: the xtask edge maps variables into [`Config`].

pub mod background;
pub mod caps;
pub mod report;
pub mod suite;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use stackpilot_core::Exit;
use stackpilot_core::exit::ExitStatus;

pub use caps::{Capabilities, detect};
pub use report::{Outcome, StepRecord, junit, summary};

/// Names a step to fail on purpose (proves teardown runs after a failure).
pub const FORCE_FAIL_VAR: &str = "STACKPILOT_CI_FORCE_FAIL";
/// `none` disables the lab capability (a hosted runner's view), recorded as such.
pub const CAPS_VAR: &str = "STACKPILOT_CI_CAPS";

/// How one CI run is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace root; logs go to `ci/logs/` below it.
    pub root: PathBuf,
    /// The xtask binary that runs each step (`cargo xtask …`).
    pub xtask: PathBuf,
    /// The step to fail on purpose ([`FORCE_FAIL_VAR`]), if any.
    pub force_fail: Option<String>,
    /// The lab capability switched off ([`CAPS_VAR`]`=none`).
    pub lab_disabled: bool,
}

/// Why CI did not pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A log could not be written.
    #[error("cannot write {path}: {source}")]
    Logs {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Some steps failed.
    #[error("step 'ci' failed: `cargo xtask ci` failed: {} (see ci/logs/summary.txt)", .0.join(", "))]
    Failed(Vec<String>),
}

impl ExitStatus for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Logs { .. } => Exit::Usage,
            Error::Failed(_) => Exit::Failed,
        }
    }
}

/// One planned CI step: its id, the xtask arguments, its environment, and whether it
/// needs the lab.
struct Planned {
    id: &'static str,
    args: &'static [&'static str],
    envs: &'static [(&'static str, &'static str)],
    needs_lab: bool,
}

const PLAN: &[Planned] = &[
    Planned {
        id: "checks",
        args: &["check"],
        envs: &[],
        needs_lab: false,
    },
    Planned {
        id: "demo-reviewer-control",
        args: &["demo-reviewer"],
        envs: &[("NODE", "control")],
        needs_lab: true,
    },
    Planned {
        id: "verify-control",
        args: &["verify", "--junit", "ci/logs/verify-control.xml"],
        envs: &[("NODE", "control")],
        needs_lab: true,
    },
    Planned {
        id: "demo-reviewer-worker1",
        args: &["demo-reviewer"],
        envs: &[("NODE", "worker1")],
        needs_lab: true,
    },
    Planned {
        id: "drills",
        args: &["drills", "run", "all"],
        envs: &[("NODE", "control")],
        needs_lab: true,
    },
    Planned {
        id: "deploy-staging",
        args: &["deploy"],
        envs: &[("NODE", "control"), ("ENV", "staging")],
        needs_lab: true,
    },
];

/// The log file of a step, in ci/logs/ (checks and verify keep their well-known names).
fn log_name(id: &str) -> String {
    match id {
        "checks" => "checks.log".to_string(),
        "verify-control" => "verify.log".to_string(),
        _ => format!("{id}.log"),
    }
}

/// What a step does when it comes up: skip it for a missing capability, fail it on
/// purpose, or run it.
fn decide(step: &Planned, lab_missing: Option<&str>, force_fail: Option<&str>) -> Option<Outcome> {
    if step.needs_lab
        && let Some(why) = lab_missing
    {
        Some(Outcome::Skipped(format!("capability missing: {why}")))
    } else if force_fail == Some(step.id) {
        Some(Outcome::Failed(format!(
            "forced failure ({FORCE_FAIL_VAR}={})",
            step.id
        )))
    } else {
        None
    }
}

/// Runs CI; an error when any step failed.
pub fn run(cfg: &Config) -> Result<(), Error> {
    let logs = cfg.root.join("ci/logs");
    std::fs::create_dir_all(&logs).map_err(|source| Error::Logs {
        path: "ci/logs".into(),
        source,
    })?;
    eprintln!("==> ci: detecting capabilities");
    let caps = detect(&cfg.root, &cfg.xtask, cfg.lab_disabled);
    eprint!(
        "{}",
        summary(&caps, &[])
            .split("\n\n")
            .take(2)
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    eprintln!();
    let lab_missing = caps.lab_missing();

    let mut steps = Vec::new();
    for step in PLAN {
        let name = log_name(step.id);
        let log = logs.join(&name);
        let start = Instant::now();
        let outcome = match decide(step, lab_missing.as_deref(), cfg.force_fail.as_deref()) {
            Some(Outcome::Failed(why)) => {
                let _ = std::fs::write(&log, format!("{why}\n"));
                Outcome::Failed(why)
            }
            Some(decided) => decided,
            None => {
                eprintln!("\n==> ci step {}", step.id);
                xtask_step(cfg, &log, step.args, step.envs)
            }
        };
        steps.push(StepRecord {
            id: step.id.to_string(),
            outcome,
            seconds: start.elapsed().as_secs_f64(),
            log: format!("ci/logs/{name}"),
        });
    }
    // Teardown always runs when Vagrant is there, failure or not: nothing of the lab stays.
    let start = Instant::now();
    let outcome = match &caps.vagrant {
        Ok(_) => {
            eprintln!("\n==> ci teardown: make destroy");
            xtask_step(cfg, &logs.join("teardown.log"), &["destroy"], &[])
        }
        Err(why) => Outcome::Skipped(format!(
            "capability missing: vagrant: {why} (no lab was started)"
        )),
    };
    steps.push(StepRecord {
        id: "teardown".into(),
        outcome,
        seconds: start.elapsed().as_secs_f64(),
        log: "ci/logs/teardown.log".into(),
    });

    let text = summary(&caps, &steps);
    let write = |name: &str, body: &str| -> Result<(), Error> {
        std::fs::write(logs.join(name), body).map_err(|source| Error::Logs {
            path: format!("ci/logs/{name}"),
            source,
        })
    };
    write("summary.txt", &text)?;
    write("junit.xml", &junit(&steps))?;
    stackpilot_core::outln!("\n{text}");
    let failed: Vec<String> = steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
        .map(|s| s.id.clone())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(failed))
    }
}

/// Runs `cargo xtask <args>` with NODE/ENV, output into `log` and echoed.
fn xtask_step(cfg: &Config, log: &Path, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(&cfg.xtask);
    cmd.args(args).current_dir(&cfg.root).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    match cmd.output() {
        Err(e) => Outcome::Failed(format!("could not start: {e}")),
        Ok(o) => {
            let mut text = format!("$ cargo xtask {}\n", args.join(" "));
            text.push_str(&String::from_utf8_lossy(&o.stdout));
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            let _ = std::fs::write(log, &text);
            eprint!("{text}");
            if o.status.success() {
                Outcome::Passed
            } else {
                let last = text
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("xtask:") || l.contains("FAIL") || l.contains("error"))
                    .unwrap_or("see the log")
                    .trim()
                    .to_string();
                Outcome::Failed(format!("exit {:?}: {last}", o.status.code()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str) -> &'static Planned {
        PLAN.iter().find(|p| p.id == id).expect("planned")
    }

    #[test]
    fn lab_steps_are_skipped_with_the_missing_capability_and_checks_still_run() {
        let missing = Some("vagrant: not installed");
        assert_eq!(
            decide(step("drills"), missing, None),
            Some(Outcome::Skipped(
                "capability missing: vagrant: not installed".into()
            ))
        );
        assert_eq!(decide(step("checks"), missing, None), None);
    }

    #[test]
    fn a_forced_failure_fails_only_the_named_step() {
        assert_eq!(
            decide(step("checks"), None, Some("checks")),
            Some(Outcome::Failed(
                "forced failure (STACKPILOT_CI_FORCE_FAIL=checks)".into()
            ))
        );
        assert_eq!(decide(step("drills"), None, Some("checks")), None);
    }

    #[test]
    fn checks_and_verify_keep_their_well_known_log_names() {
        assert_eq!(log_name("checks"), "checks.log");
        assert_eq!(log_name("verify-control"), "verify.log");
        assert_eq!(log_name("drills"), "drills.log");
    }
}
