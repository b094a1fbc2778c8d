//! The lab's errors, each mapped to the exit code of ARCHITECTURE.md by [`Error::exit`].

use stackpilot_core::Exit;
use stackpilot_core::exit::ExitStatus;

/// Errors of lab operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host command of a lab step failed.
    #[error("step '{step}' failed: `{cmd}` {status}")]
    StepFailed {
        /// The step's name.
        step: String,
        /// The command line.
        cmd: String,
        /// How it ended.
        status: String,
    },
    /// A host step could not start or exited non-zero.
    #[error(transparent)]
    Step(#[from] stackpilot_core::step::StepError),
    /// A required program is missing and could not be installed.
    #[error("prerequisite missing: {what}\n  install it with: {install}")]
    Prereq {
        /// What is missing.
        what: String,
        /// How to install it.
        install: String,
    },
    /// Configuration problem.
    #[error(transparent)]
    Core(#[from] stackpilot_core::Error),
    /// Running a step inside a node failed.
    #[error(transparent)]
    Transport(#[from] stackpilot_core::transport::TransportError),
    /// The image lock is missing an entry or unreadable.
    #[error(transparent)]
    Images(#[from] stackpilot_core::images::LockError),
}

impl Error {
    /// The exit status for this error (ARCHITECTURE.md).
    pub fn exit(&self) -> Exit {
        match self {
            Error::StepFailed { .. } | Error::Step(_) => Exit::Failed,
            Error::Prereq { .. } => Exit::PrereqMissing,
            Error::Core(_) => Exit::Usage,
            Error::Transport(e) => e.exit(),
            Error::Images(e) => e.exit(),
        }
    }
}

/// A failed step from its parts.
pub(crate) fn failed(step: &str, cmd: &str, status: &str) -> Error {
    Error::StepFailed {
        step: step.into(),
        cmd: cmd.into(),
        status: status.into(),
    }
}
