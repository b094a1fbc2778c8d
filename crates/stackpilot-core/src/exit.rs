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
