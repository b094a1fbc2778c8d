//! Helpers shared by the lab e2e tests (golden path, drills, deploy).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repo root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Whether the lab can run here; otherwise says why (and fails under CI, where it must).
pub fn capable(suite: &str) -> bool {
    let docker = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let vagrant = which::which("vagrant").is_ok();
    if docker && vagrant {
        return true;
    }
    let why = format!("docker engine reachable: {docker}, vagrant installed: {vagrant}");
    assert!(
        std::env::var_os("CI").is_none(),
        "the {suite} e2e needs Docker and Vagrant in CI ({why}); `make test` installs vagrant as root"
    );
    eprintln!("SKIP: {suite} e2e needs a Docker engine and Vagrant ({why})");
    false
}
