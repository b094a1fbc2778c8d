//! Running host commands with visible output and clear errors.

use std::path::PathBuf;
use std::process::Command;

use stackpilot_core::Exit;
use stackpilot_core::exit::ExitStatus;
use stackpilot_core::step::StepError;

/// Errors of xtask flows.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step's command failed.
    #[error("step '{step}' failed: `{cmd}` {status}")]
    StepFailed {
        /// The step's name.
        step: String,
        /// The command line.
        cmd: String,
        /// How it ended.
        status: String,
    },
    /// A required program is missing and could not be installed.
    #[error("prerequisite missing: {what}\n  install it with: {install}")]
    Prereq {
        /// What is missing.
        what: String,
        /// How to install it.
        install: String,
    },
    /// Bad usage or configuration, with the message to show.
    #[error("{0}")]
    Usage(String),
    /// Configuration problem.
    #[error(transparent)]
    Core(#[from] stackpilot_core::Error),
    /// Running a step inside a node failed.
    #[error(transparent)]
    Transport(#[from] stackpilot_core::transport::TransportError),
    /// The image lock is missing an entry or unreadable.
    #[error(transparent)]
    Images(#[from] stackpilot_core::images::LockError),
    /// A host tool (benchmark, repo contracts) could not run a step.
    #[error(transparent)]
    Host(#[from] stackpilot_core::step::HostError),
    /// A lab operation failed.
    #[error(transparent)]
    Lab(#[from] ::lab::Error),
    /// `make ci` did not pass.
    #[error(transparent)]
    Ci(#[from] ci::Error),
}

impl From<StepError> for Error {
    fn from(e: StepError) -> Self {
        Error::StepFailed {
            step: e.step,
            cmd: e.cmd,
            status: e.status,
        }
    }
}

impl Error {
    /// The exit status for this error (ARCHITECTURE.md).
    pub fn exit(&self) -> Exit {
        match self {
            Error::StepFailed { .. } => Exit::Failed,
            Error::Prereq { .. } => Exit::PrereqMissing,
            Error::Core(_) | Error::Usage(_) => Exit::Usage,
            Error::Transport(e) => e.exit(),
            Error::Images(e) => e.exit(),
            Error::Host(e) => e.exit(),
            Error::Lab(e) => e.exit(),
            Error::Ci(e) => e.exit(),
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs a command from the repo root with inherited output; a non-zero exit is an error.
pub fn step(name: &str, cmd: &mut Command) -> Result<(), Error> {
    Ok(stackpilot_core::step::run(name, &repo_root(), cmd)?)
}
