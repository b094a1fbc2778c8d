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
