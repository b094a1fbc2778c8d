//! This machine as the deploy flows use it ([`BuildOps`]): where a release is compiled,
//! built into an image and proven locally before any node sees it.

use std::path::{Path, PathBuf};

use lab::build::{self, BuildInfo};
use stackpilot_core::Config;

use super::ops::BuildOps;
use crate::local::{self, LocalReport, LocalSpec};

/// The checkout at `root` with its configuration, building the release `info` names.
pub struct Workshop {
    /// The repo root on the host.
    pub root: PathBuf,
    /// The lab configuration.
    pub cfg: Config,
    /// The identity the build is stamped with.
    pub info: BuildInfo,
}

impl BuildOps for Workshop {
    fn root(&self) -> &Path {
        &self.root
    }

    fn compile(&self) -> Result<(), String> {
        build::compile_for_nodes(&self.root, &self.info).map_err(|e| e.to_string())
    }

    fn run_locally(&self, spec: &LocalSpec, tag: &str) -> LocalReport {
        local::verify(spec, tag)
    }

    fn image_id(&self, reference: &str) -> Result<String, String> {
        let out = std::process::Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn compose_config(&self, vars: &local::ComposeVars<'_>) -> Result<(String, String), String> {
        local::compose_config(&self.cfg, &self.root, vars)
    }
}
