//! Running host commands with visible output and clear errors, and timing a golden
//! command's phases.

use std::path::PathBuf;
use std::process::Command;

use stackpilot_core::Exit;
use stackpilot_core::exit::ExitStatus;
use stackpilot_core::step::{HostError, StepError};

/// Errors of xtask flows.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or configuration, with the message to show.
    #[error("{0}")]
    Usage(String),
    /// A lab operation failed, or a failure of the platform's core (configuration, a step
    /// inside a node, the image lock, a host step), which the lab's error already names.
    #[error(transparent)]
    Lab(#[from] ::lab::Error),
    /// `make ci` did not pass.
    #[error(transparent)]
    Ci(#[from] ci::Error),
}

/// The core's errors go through [`lab::Error`], so the message and exit code of each is
/// written once, there.
macro_rules! through_lab {
    ($($error:ty),*) => {
        $(impl From<$error> for Error {
            fn from(e: $error) -> Self {
                Error::Lab(e.into())
            }
        })*
    };
}

through_lab!(
    stackpilot_core::Error,
    stackpilot_core::transport::TransportError,
    stackpilot_core::images::LockError,
    HostError,
    StepError
);

impl Error {
    /// The exit status for this error (ARCHITECTURE.md).
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Lab(e) => e.exit(),
            Error::Ci(e) => e.exit(),
        }
    }
}

/// The checkout xtask acts on: the one the working directory is in (found by its
/// stackpilot.toml), else the one xtask was built from. `cargo xtask` runs from inside the
/// checkout it built, so both agree there; a test drives its own copy of the checkout (its
/// own lab, marker and target/) by running this binary with the copy as working directory.
pub fn repo_root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let built = built.parent().map(PathBuf::from).unwrap_or(built);
    std::env::current_dir()
        .ok()
        .and_then(|d| stackpilot_core::config::find_repo_root(&d).ok())
        .unwrap_or(built)
}

/// Runs a command from the repo root with inherited output; a non-zero exit is an error.
pub fn step(name: &str, cmd: &mut Command) -> Result<(), Error> {
    Ok(stackpilot_core::step::run(name, &repo_root(), cmd)?)
}

/// A golden command's phases: timed, with a summary at the end.
pub type Phases = stackpilot_core::step::Phases<Error>;
