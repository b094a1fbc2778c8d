//! Build metadata of the running binary: version, git sha, build id and build time.
//!
//! The binary (`main.rs`) bakes `STACKPILOT_GIT_SHA`, `STACKPILOT_BUILD_ID` and
//! `STACKPILOT_BUILD_TIME` in at compile time and registers them here at start-up. They
//! live in the binary rather than this library so that a new build id recompiles only
//! `main.rs`, not the whole service ("unknown" when the build did not set them).

use std::sync::OnceLock;

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the binary was built from.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// The git commit.
    pub git_sha: &'static str,
    /// The build id; the golden path uses the same id for the image label `stackpilot.build-id`.
    pub build_id: &'static str,
    /// When the binary was built (RFC 3339, as given by the build).
    pub build_time: &'static str,
}

static INFO: OnceLock<BuildInfo> = OnceLock::new();

/// Registers the binary's build metadata; the first call wins.
pub fn set(info: BuildInfo) {
    let _ = INFO.set(info);
}

fn get() -> BuildInfo {
    INFO.get().copied().unwrap_or(BuildInfo {
        git_sha: "unknown",
        build_id: "unknown",
        build_time: "unknown",
    })
}

/// The git commit the binary was built from.
pub fn git_sha() -> &'static str {
    get().git_sha
}

/// The build id.
pub fn build_id() -> &'static str {
    get().build_id
}

/// When the binary was built.
pub fn build_time() -> &'static str {
    get().build_time
}

/// The value, or "unknown" when unset or empty (for `option_env!`).
pub const fn or_unknown(v: Option<&'static str>) -> &'static str {
    match v {
        Some(v) if !v.is_empty() => v,
        _ => "unknown",
    }
}
