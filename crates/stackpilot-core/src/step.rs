//! Running a host program as a named step: its command line and outcome are printed, its
//! output goes to the terminal, a non-zero exit is an error naming the step.

use std::path::Path;
use std::process::Command;

/// A host step that could not start or exited non-zero.
#[derive(Debug, thiserror::Error)]
#[error("step '{step}' failed: `{cmd}` {status}")]
pub struct StepError {
    /// The step's name.
    pub step: String,
    /// The command line.
    pub cmd: String,
    /// How it ended.
    pub status: String,
}

impl StepError {
    /// A failure of `step` described by `cmd` (what was attempted) and `status` (why).
    pub fn new(step: &str, cmd: &str, status: impl std::fmt::Display) -> StepError {
        StepError {
            step: step.into(),
            cmd: cmd.into(),
            status: status.to_string(),
        }
    }
}

/// A host tool's failure: one of its steps failed, or a program it needs is missing.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A step failed or its output was unreadable.
    #[error(transparent)]
    Step(#[from] StepError),
    /// A required program is missing and could not be installed.
    #[error("prerequisite missing: {what}\n  install it with: {install}")]
    Prereq {
        /// What is missing.
        what: String,
        /// How to install it.
        install: String,
    },
}

impl crate::exit::ExitStatus for HostError {
    fn exit(&self) -> crate::Exit {
        match self {
            HostError::Step(_) => crate::Exit::Failed,
            HostError::Prereq { .. } => crate::Exit::PrereqMissing,
        }
    }
}

/// The command line as a user would type it (for messages).
pub fn command_line(cmd: &Command) -> String {
    format!("{cmd:?}").replace('"', "")
}

/// Runs `cmd` from `dir`, its output shown on stderr (it is progress: stdout is kept for a
/// tool's result, e.g. a `--json` document); a non-zero exit is an error.
pub fn run(name: &str, dir: &Path, cmd: &mut Command) -> Result<(), StepError> {
    cmd.stdout(std::process::Stdio::from(std::io::stderr()));
    run_attached(name, dir, cmd)
}

/// Runs `cmd` from `dir` with the terminal's stdout and stderr (an interactive shell); a
/// non-zero exit is an error.
pub fn run_attached(name: &str, dir: &Path, cmd: &mut Command) -> Result<(), StepError> {
    let line = command_line(cmd);
    eprintln!("==> {name}: {line}");
    let started = std::time::Instant::now();
    let status = cmd
        .current_dir(dir)
        .status()
        .map_err(|e| StepError::new(name, &line, format!("could not start: {e}")))?;
    eprintln!(
        "<== {name}: {status} in {}s",
        crate::time::secs(started.elapsed())
    );
    if status.success() {
        Ok(())
    } else {
        Err(StepError::new(name, &line, status))
    }
}

/// Runs `f` as a named phase of a longer command: its start and how long it took go to
/// stderr, with `verdict`'s word for the outcome ("done", "FAILED").
fn announced<T>(
    name: &str,
    f: impl FnOnce() -> T,
    verdict: impl FnOnce(&T) -> &'static str,
) -> (T, std::time::Duration) {
    eprintln!("\n=== phase: {name}");
    let start = std::time::Instant::now();
    let r = f();
    let took = start.elapsed();
    eprintln!(
        "=== phase: {name} {} in {}s",
        verdict(&r),
        crate::time::secs(took)
    );
    (r, took)
}

/// Runs `f` as a named phase (see [`Phases`] for a command made of several, with a summary).
pub fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    announced(name, f, |_| "done").0
}

/// A command's phases as they ran: each announced and timed, then a summary table.
#[derive(Debug)]
pub struct Phases<E> {
    done: Vec<(String, std::time::Duration)>,
    // The command's error type: fixed here so its closures' `?` has one type to convert to.
    error: std::marker::PhantomData<fn() -> E>,
}

impl<E> Default for Phases<E> {
    fn default() -> Self {
        Phases {
            done: Vec::new(),
            error: std::marker::PhantomData,
        }
    }
}

impl<E> Phases<E> {
    /// Runs one phase, timing it; a failed phase is timed too.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let (r, took) = announced(name, f, |r| if r.is_ok() { "done" } else { "FAILED" });
        self.done.push((name.to_string(), took));
        r
    }

    /// Each phase's name and duration, in order.
    pub fn rows(&self) -> &[(String, std::time::Duration)] {
        &self.done
    }

    /// The per-phase timing table, with the total.
    pub fn summary(&self) -> String {
        let mut t = crate::output::Table::new(&["phase", "seconds"]);
        let mut total = std::time::Duration::ZERO;
        for (name, d) in &self.done {
            t.row([name.clone(), crate::time::secs(*d)]);
            total += *d;
        }
        t.row(["total".to_string(), crate::time::secs(total)]);
        t.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_zero_exit_names_the_step_and_the_command() {
        let err =
            run("probe", Path::new("/"), Command::new("false").arg("x")).expect_err("false fails");
        assert_eq!(err.step, "probe");
        assert_eq!(err.cmd, "false x");
        assert!(err.status.contains('1'), "{}", err.status);
    }

    #[test]
    fn a_missing_program_is_reported_as_not_started() {
        let err = run(
            "probe",
            Path::new("/"),
            &mut Command::new("/nonexistent/prog"),
        )
        .expect_err("cannot start");
        assert!(err.status.starts_with("could not start"), "{}", err.status);
    }

    #[test]
    fn phases_time_failed_phases_too_and_sum_them() {
        let mut p = Phases::<String>::default();
        assert_eq!(p.run("one", || Ok::<_, String>(1)), Ok(1));
        assert_eq!(
            p.run("two", || Err::<(), _>("no".to_string())),
            Err("no".into())
        );
        let names: Vec<&str> = p.rows().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        let table = p.summary();
        for row in ["one", "two", "total"] {
            assert!(table.contains(row), "{table}");
        }
        assert_eq!(timed("three", || 3), 3);
    }
}
