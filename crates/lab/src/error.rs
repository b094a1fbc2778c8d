//! The lab's errors, each mapped to the exit code of ARCHITECTURE.md by [`Error::exit`].

use stackpilot_core::Exit;
use stackpilot_core::exit::ExitStatus;
use stackpilot_core::step::{HostError, StepError};

/// Errors of lab operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host step failed, or a program it needs is missing and could not be installed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Configuration problem.
    #[error(transparent)]
    Core(#[from] stackpilot_core::Error),
    /// Running a step inside a node failed.
    #[error(transparent)]
    Transport(#[from] stackpilot_core::transport::TransportError),
    /// The image lock is missing an entry or unreadable.
    #[error(transparent)]
    Images(#[from] stackpilot_core::images::LockError),
    /// The swarm stack file could not be rendered from the compose file and override.
    #[error("swarm stack file: {0}")]
    Render(#[from] crate::swarm::render::RenderError),
}

impl Error {
    /// The exit status for this error (ARCHITECTURE.md).
    pub fn exit(&self) -> Exit {
        match self {
            Error::Host(e) => e.exit(),
            Error::Core(_) => Exit::Usage,
            Error::Transport(e) => e.exit(),
            Error::Images(e) => e.exit(),
            Error::Render(_) => Exit::Usage,
        }
    }
}

impl From<StepError> for Error {
    fn from(e: StepError) -> Self {
        Error::Host(HostError::Step(e))
    }
}

/// A failed step from its parts.
pub(crate) fn failed(step: &str, cmd: &str, status: &str) -> Error {
    StepError::new(step, cmd, status).into()
}
