//! `cargo xtask ci` (`make ci`): runtime verification with CI authority.
//!
//! Detects what this machine can do and prints it, runs the repo checks always, runs the
//! lab e2e (demo-reviewer on two nodes, drills, a deploy) only when the lab can run here —
//! otherwise records each as "skipped: <capability missing>", never as passed — and always
//! tears the lab down, also after a failure. Writes `ci/logs/`: checks.log, verify.log, one
//! log per step, summary.txt (what ran, what was skipped and why, why each failure
//! occurred) and junit.xml.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::run::{Error, repo_root};

/// Names a step to fail on purpose (proves teardown runs after a failure).
pub const FORCE_FAIL_VAR: &str = "STACKPILOT_CI_FORCE_FAIL";
/// `none` disables the lab capability (a hosted runner's view), recorded as such.
pub const CAPS_VAR: &str = "STACKPILOT_CI_CAPS";

/// What the machine can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Docker engine reachable, or why not.
    pub docker: Result<String, String>,
    /// Vagrant installed, or why not.
    pub vagrant: Result<String, String>,
    /// Node containers start with the lab's flags, or why not.
    pub node_containers: Result<String, String>,
}

impl Capabilities {
    /// Why the lab e2e cannot run here, if it cannot.
    pub fn lab_missing(&self) -> Option<String> {
        [
            ("docker engine", &self.docker),
            ("vagrant", &self.vagrant),
            ("node containers", &self.node_containers),
        ]
        .iter()
        .find_map(|(name, r)| r.as_ref().err().map(|why| format!("{name}: {why}")))
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and passed.
    Passed,
    /// It ran and failed, with why.
    Failed(String),
    /// It did not run, with the missing capability.
    Skipped(String),
}

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

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: one testcase per step; skipped steps carry their reason.
pub fn junit(steps: &[StepRecord]) -> String {
    let failures = steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
        .count();
    let skipped = steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Skipped(_)))
        .count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"stackpilot ci\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        steps.len()
    );
    for st in steps {
        let _ = write!(
            out,
            "    <testcase classname=\"ci\" name=\"{}\" time=\"{:.1}\"",
            xml(&st.id),
            st.seconds
        );
        match &st.outcome {
            Outcome::Passed => out.push_str("/>\n"),
            Outcome::Failed(why) => {
                let _ = write!(
                    out,
                    ">\n      <failure message=\"{}\"/>\n    </testcase>\n",
                    xml(why)
                );
            }
            Outcome::Skipped(why) => {
                let _ = write!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    xml(why)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn probe(cmd: &mut Command) -> Result<String, String> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Looks at the machine: engine, vagrant, and a node container started with the lab's
/// capability flags (from the locked node image, built first when absent).
pub fn detect(root: &Path) -> Capabilities {
    let vagrant = which::which("vagrant")
        .map_err(|_| "not installed (apt-get install vagrant)".to_string())
        .and_then(|_| {
            probe(
                Command::new("vagrant")
                    .arg("--version")
                    .env("VAGRANT_CHECKPOINT_DISABLE", "1"),
            )
        });
    if std::env::var(CAPS_VAR).as_deref() == Ok("none") {
        // A hosted runner's view: no lab. Vagrant stays as found, so teardown still runs.
        let off = format!("disabled by {CAPS_VAR}=none");
        return Capabilities {
            docker: Err(off.clone()),
            vagrant,
            node_containers: Err(off),
        };
    }
    let docker =
        probe(Command::new("docker").args(["info", "--format", "engine {{.ServerVersion}}"]));
    let node_containers = match &docker {
        Err(_) => Err("no docker engine".into()),
        Ok(_) => node_probe(root),
    };
    Capabilities {
        docker,
        vagrant,
        node_containers,
    }
}

fn node_probe(root: &Path) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    probe(Command::new(&exe).arg("images").current_dir(root))
        .map_err(|e| format!("images could not be built: {e}"))?;
    let lock =
        stackpilot_core::images::ImageLock::read(&stackpilot_core::images::ImageLock::path(root))
            .map_err(|e| e.to_string())?
            .ok_or("no image lock")?;
    let tag = lock
        .tag(
            stackpilot_core::images::NODE,
            Path::new(stackpilot_core::images::LOCK_FILE),
        )
        .map_err(|e| e.to_string())?
        .to_string();
    // The flags the Vagrantfile's docker provider uses (NOTES-machine.md): not --privileged.
    probe(Command::new("docker").args([
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "SYS_PTRACE",
        "--cap-add",
        "MKNOD",
        "--cap-add",
        "SYS_CHROOT",
        "--cap-add",
        "NET_RAW",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--security-opt",
        "systempaths=unconfined",
        "--cgroupns=host",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs",
        "/run",
        "--entrypoint",
        "true",
        &tag,
    ]))
    .map(|_| format!("{tag} starts with the lab's flags"))
}

/// Runs `cargo xtask <args>` (this binary) with NODE/ENV, output into `log` and echoed.
fn xtask_step(root: &Path, log: &Path, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return Outcome::Failed(format!("cannot find xtask itself: {e}")),
    };
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(root).stdin(Stdio::null());
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

/// Runs CI; an error when any step failed.
pub fn run() -> Result<(), Error> {
    let root = repo_root();
    let logs = root.join("ci/logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| Error::Usage(format!("cannot create ci/logs: {e}")))?;
    let force = std::env::var(FORCE_FAIL_VAR).unwrap_or_default();
    eprintln!("==> ci: detecting capabilities");
    let caps = detect(&root);
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

    type Plan<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, bool);
    let plan: Vec<Plan> = vec![
        ("checks", vec!["check"], vec![], false),
        (
            "demo-reviewer-control",
            vec!["demo-reviewer"],
            vec![("NODE", "control")],
            true,
        ),
        (
            "verify-control",
            vec!["verify", "--junit", "ci/logs/verify-control.xml"],
            vec![("NODE", "control")],
            true,
        ),
        (
            "demo-reviewer-worker1",
            vec!["demo-reviewer"],
            vec![("NODE", "worker1")],
            true,
        ),
        (
            "drills",
            vec!["drills", "run", "all"],
            vec![("NODE", "control")],
            true,
        ),
        (
            "deploy-staging",
            vec!["deploy"],
            vec![("NODE", "control"), ("ENV", "staging")],
            true,
        ),
    ];
    let mut steps = Vec::new();
    for (id, args, envs, needs_lab) in plan {
        let log_name = match id {
            "checks" => "checks.log".to_string(),
            "verify-control" => "verify.log".to_string(),
            _ => format!("{id}.log"),
        };
        let log = logs.join(&log_name);
        let rel = format!("ci/logs/{log_name}");
        let start = Instant::now();
        let outcome = if needs_lab && let Some(why) = &lab_missing {
            Outcome::Skipped(format!("capability missing: {why}"))
        } else if force == id {
            let _ = std::fs::write(&log, format!("forced failure ({FORCE_FAIL_VAR}={id})\n"));
            Outcome::Failed(format!("forced failure ({FORCE_FAIL_VAR}={id})"))
        } else {
            eprintln!("\n==> ci step {id}");
            xtask_step(&root, &log, &args, &envs)
        };
        steps.push(StepRecord {
            id: id.to_string(),
            outcome,
            seconds: start.elapsed().as_secs_f64(),
            log: rel,
        });
    }
    // Teardown always runs when Vagrant is there, failure or not: nothing of the lab stays.
    let start = Instant::now();
    let teardown_log = logs.join("teardown.log");
    let outcome = match &caps.vagrant {
        Ok(_) => {
            eprintln!("\n==> ci teardown: make destroy");
            xtask_step(&root, &teardown_log, &["destroy"], &[])
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
        std::fs::write(logs.join(name), body)
            .map_err(|e| Error::Usage(format!("cannot write ci/logs/{name}: {e}")))
    };
    write("summary.txt", &text)?;
    write("junit.xml", &junit(&steps))?;
    println!("\n{text}");
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
        .map(|s| s.id.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::StepFailed {
            step: "ci".into(),
            cmd: "cargo xtask ci".into(),
            status: format!("failed: {} (see ci/logs/summary.txt)", failed.join(", ")),
        })
    }
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
