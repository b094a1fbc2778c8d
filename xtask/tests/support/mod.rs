//! Helpers shared by the lab e2e tests (golden path, drills, deploy).

use stackpilot_core::capability::{self, Capability};
use std::path::{Path, PathBuf};

/// The repo root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Whether the lab can run here (a Docker engine and Vagrant); otherwise prints
/// `SKIP(<capability>): <why>`, and fails under `CI=true`.
pub fn capable() -> bool {
    capability::require(&[Capability::Docker, Capability::Vagrant])
}

/// Undoes a fault a test injected on a node (stopped container, extra container, a stack
/// started the wrong way) when dropped, so a failed assertion on the way does not leave a
/// broken node for the next test. On the normal path `now` undoes it, and a failed undo
/// fails the test there.
#[allow(dead_code)] // not every suite sharing this module injects faults
pub struct Undo<F: FnMut() -> Result<(), String>> {
    what: String,
    undo: F,
    done: bool,
}

#[allow(dead_code)]
impl<F: FnMut() -> Result<(), String>> Undo<F> {
    /// A guard that runs `undo` unless `now` already did.
    pub fn new(what: &str, undo: F) -> Self {
        Undo {
            what: what.to_string(),
            undo,
            done: false,
        }
    }

    /// Undoes the fault now; panics when that fails.
    pub fn now(mut self) {
        self.done = true;
        if let Err(e) = (self.undo)() {
            panic!("undoing {}: {e}", self.what);
        }
    }
}

impl<F: FnMut() -> Result<(), String>> Drop for Undo<F> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Reached only when the test stopped early: say so, never panic again here.
        eprintln!("undoing {} (the test stopped before it did)", self.what);
        if let Err(e) = (self.undo)() {
            eprintln!("could not undo {}: {e}", self.what);
        }
    }
}

/// A command's outcome as the undo of a guard: `Err` with its output when it failed.
#[allow(dead_code)]
pub fn succeeded(o: std::process::Output) -> Result<(), String> {
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "exit {:?}: {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}
