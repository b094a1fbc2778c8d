//! The shared error type of the core.

use std::path::PathBuf;

use crate::exit::{Exit, ExitStatus};

/// Errors raised by the shared core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error(
        "cannot read {path}: {source}\n  expected: the lab configuration file; run from the repo root or pass its path"
    )]
    ConfigRead {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("invalid configuration in {path}, {message}")]
    ConfigInvalid {
        /// The file that is invalid.
        path: PathBuf,
        /// Line, column, field and what was expected (from the parser).
        message: String,
    },
    /// A NODE that is not in the inventory.
    #[error("unknown node '{name}': known nodes are {}\n  use e.g. NODE={}", known.join(", "), known.first().map(String::as_str).unwrap_or("control"))]
    UnknownNode {
        /// What was asked for.
        name: String,
        /// The nodes the inventory knows.
        known: Vec<String>,
    },
    /// An ENV that is not configured.
    #[error("unknown environment '{name}': known environments are {}\n  use e.g. ENV={}", known.join(", "), known.first().map(String::as_str).unwrap_or("dev"))]
    UnknownEnv {
        /// What was asked for.
        name: String,
        /// The environments the configuration knows.
        known: Vec<String>,
    },
    /// No repository root found above a directory.
    #[error(
        "no stackpilot.toml found in {start} or any parent directory\n  expected: to run inside a StackPilot checkout"
    )]
    RepoNotFound {
        /// Where the search started.
        start: PathBuf,
    },
}

impl ExitStatus for Error {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}
