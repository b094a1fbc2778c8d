//! Exit codes shared by every StackPilot tool (ARCHITECTURE.md, "Exit codes").

/// The process exit status of a StackPilot tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Ok = 0,
    /// A check or step failed.
    Failed = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Execution context refused (ctx-guard).
    ContextRefused = 3,
    /// A prerequisite is missing.
    PrereqMissing = 4,
}

impl Exit {
    /// The numeric exit status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// Errors that know which exit status they stand for.
pub trait ExitStatus {
    /// The exit status a binary should end with for this error.
    fn exit(&self) -> Exit;
}

/// An error already turned into its message and exit status: what a binary step returns
/// when it can fail in several libraries' error types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// What went wrong, as printed.
    pub message: String,
    /// The exit status it stands for.
    pub exit: Exit,
}

impl Failure {
    /// A failure with this message and exit status.
    pub fn new(message: impl Into<String>, exit: Exit) -> Failure {
        Failure {
            message: message.into(),
            exit,
        }
    }

    /// The message and exit status of a library error.
    pub fn of<E: std::fmt::Display + ExitStatus>(e: &E) -> Failure {
        Failure::new(e.to_string(), e.exit())
    }
}

impl ExitStatus for Failure {
    fn exit(&self) -> Exit {
        self.exit
    }
}
