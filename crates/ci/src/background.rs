//! A step of `make test` that runs beside the others, its output in a log file rather than
//! interleaved with theirs, waited for at the end: its failure is the run's, with the
//! log's last lines shown.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::thread::JoinHandle;
use std::time::Instant;

use stackpilot_core::step::StepError;

/// How many of the log's last lines a failure shows.
const TAIL: usize = 30;

/// A running background step.
#[derive(Debug)]
pub struct Background {
    name: String,
    what: String,
    /// Waits for the child in its own thread, so the step's time is its own, not how late
    /// [`Background::finish`] was called.
    waiter: JoinHandle<(std::io::Result<ExitStatus>, f64)>,
    log: PathBuf,
}

impl Background {
    /// Starts `cmd` (`what`: how to say it, e.g. `cargo xtask images`) with stdout and
    /// stderr to `log`; says so. `Err`: why it could not start.
    pub fn start(name: &str, what: &str, mut cmd: Command, log: PathBuf) -> Result<Self, String> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        }
        let out =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{what}: {e}"))?;
        let started = Instant::now();
        let waiter = std::thread::spawn(move || (child.wait(), started.elapsed().as_secs_f64()));
        eprintln!(
            "==> {name}: {what} started in the background (log: {})",
            log.display()
        );
        Ok(Background {
            name: name.to_string(),
            what: what.to_string(),
            waiter,
            log,
        })
    }

    /// Waits for it; its seconds since the start, or the step error with the log's end
    /// printed.
    pub fn finish(self) -> Result<f64, StepError> {
        let (status, took) = self.waiter.join().unwrap_or_else(|_| {
            (
                Err(std::io::Error::other("its waiting thread panicked")),
                0.0,
            )
        });
        let failure = match status {
            Ok(s) if s.success() => {
                eprintln!("==> {}: done in {took:.1}s", self.name);
                return Ok(took);
            }
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for l in &lines[lines.len().saturating_sub(TAIL)..] {
            eprintln!("    {l}");
        }
        Err(StepError::new(
            &format!("{} (background)", self.name),
            &format!("{} (log: {})", self.what, self.log.display()),
            &failure,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_finished_step_keeps_its_output_in_the_log_and_a_failed_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("sp-background-{}", std::process::id()));
        let ok = Background::start(
            "ok",
            "sh",
            sh("echo made; echo said >&2"),
            dir.join("ok.log"),
        )
        .expect("starts");
        assert!(ok.finish().is_ok());
        let log = std::fs::read_to_string(dir.join("ok.log")).expect("log");
        assert!(log.contains("made") && log.contains("said"), "{log}");
        let bad = Background::start("bad", "sh", sh("echo why; exit 3"), dir.join("bad.log"))
            .expect("starts");
        let e = bad.finish().expect_err("exit 3 is a failure");
        let said = e.to_string();
        assert!(
            said.contains("bad (background)") && said.contains("bad.log"),
            "{said}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
