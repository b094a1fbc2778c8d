//! Compiling what nodes run, on the host, from source: the app and the node-side tools,
//! statically linked so they do not depend on the node's glibc.

use std::path::Path;
use std::process::Command;

use stackpilot_core::time;

use crate::error::Error;
use crate::process::step;

/// The target triple of the static build; its output lands in `target/<triple>/release`.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Packages whose binaries run inside nodes (the app first, then the tools).
pub const NODE_PACKAGES: &[&str] = &[
    "mock-exchange",
    "ctx-guard",
    "lifecycle",
    "clean-room",
    "verify",
    "deploy",
    "drills",
];

/// What identifies one build: baked into the binary and labelled on the image.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Short git commit of HEAD.
    pub git_sha: String,
    /// Uncommitted changes in the work tree.
    pub dirty: bool,
    /// Unique id of this build.
    pub build_id: String,
    /// When the build started (RFC 3339, UTC).
    pub build_time: String,
}

fn git(root: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| {
            Error::from(stackpilot_core::step::HostError::Prereq {
                what: format!("git ({e})"),
                install: "apt-get install -y git".into(),
            })
        })?;
    if !out.status.success() {
        return Err(Error::from(stackpilot_core::step::StepError {
            step: "git".into(),
            cmd: format!("git {}", args.join(" ")),
            status: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl BuildInfo {
    /// Reads the git state of the checkout at `root` and makes a fresh build id.
    pub fn collect(root: &Path) -> Result<BuildInfo, Error> {
        let git_sha = git(root, &["rev-parse", "--short=12", "HEAD"])?;
        let dirty = !git(root, &["status", "--porcelain", "--untracked-files=no"])?.is_empty();
        let now = time::now_utc();
        // 20261125T184501: sortable and valid in an image tag.
        let compact = time::compact(now);
        // Time for ordering, plus randomness so two builds in one second still differ.
        let random = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map(|u| u.trim().replace('-', "")[..8].to_string())
            .unwrap_or_else(|_| format!("{:08x}", std::process::id()));
        Ok(BuildInfo {
            git_sha,
            dirty,
            build_id: format!("{compact}-{random}"),
            build_time: time::rfc3339(now),
        })
    }
}

fn static_build(root: &Path, packages: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    // Nodes run the binaries from /vagrant/target (see `node_binary`): the output goes there
    // whatever CARGO_TARGET_DIR or a cargo config's target-dir says.
    let target_dir = root.join("target");
    cmd.args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // Static (glibc static-pie): runs on any node whatever its glibc version.
    cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
    cmd
}

/// Compiles the node-side tools (without the app) of the checkout at `root`, statically,
/// output visible.
pub fn compile_tools(root: &Path) -> Result<(), Error> {
    step(
        "compile node-side tools (static, release)",
        &mut static_build(root, &NODE_PACKAGES[1..]),
    )
}

/// Compiles the app and the node-side tools of the checkout at `root` statically in
/// release mode, output visible.
pub fn compile_for_nodes(root: &Path, info: &BuildInfo) -> Result<(), Error> {
    let mut cmd = static_build(root, NODE_PACKAGES);
    cmd.env("STACKPILOT_GIT_SHA", &info.git_sha)
        .env("STACKPILOT_BUILD_ID", &info.build_id)
        .env("STACKPILOT_BUILD_TIME", &info.build_time);
    step("compile (static, release)", &mut cmd)
}

/// Where a node-side binary is, as seen from inside a node (the repo is at /vagrant).
pub fn node_binary(name: &str) -> String {
    format!("/vagrant/target/{TARGET}/release/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_build_writes_where_nodes_run_it_whatever_the_callers_target_dir() {
        let cmd = static_build(Path::new("/repo"), &["ctx-guard"]);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.windows(2)
                .any(|w| w == ["--target-dir", "/repo/target"]),
            "{args:?}"
        );
        // The node reads /vagrant/target/<TARGET>/release, /vagrant being the repo.
        assert_eq!(
            node_binary("ctx-guard"),
            format!("/vagrant/target/{TARGET}/release/ctx-guard")
        );
    }
}
