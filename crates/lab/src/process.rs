//! Running host commands as named steps (through `stackpilot_core::step`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// Runs a command with inherited output, timing it; a non-zero exit is an error.
/// It runs from the directory the caller set on it, else from the current one.
pub fn step(name: &str, cmd: &mut Command) -> Result<(), Error> {
    let dir = cmd
        .get_current_dir()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok(stackpilot_core::step::run(name, &dir, cmd)?)
}

/// The workspace root this crate was built in (crates/lab is two levels below it): the
/// repo tests read its tracked files.
#[cfg(test)]
pub(crate) fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}
