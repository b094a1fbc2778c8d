//! Build metadata baked in at compile time (`STACKPILOT_GIT_SHA`, `STACKPILOT_BUILD_ID`,
//! `STACKPILOT_BUILD_TIME`; "unknown" when the build did not set them).

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from.
pub const GIT_SHA: &str = or_unknown(option_env!("STACKPILOT_GIT_SHA"));
/// The build id; the golden path uses the same id for the image label `stackpilot.build-id`.
pub const BUILD_ID: &str = or_unknown(option_env!("STACKPILOT_BUILD_ID"));
/// When the binary was built (RFC 3339, as given by the build).
pub const BUILD_TIME: &str = or_unknown(option_env!("STACKPILOT_BUILD_TIME"));

const fn or_unknown(v: Option<&'static str>) -> &'static str {
    match v {
        Some(v) if !v.is_empty() => v,
        _ => "unknown",
    }
}
