//! Build metadata is baked in at compile time from the environment (see src/build_info.rs).

fn main() {
    for var in [
        "STACKPILOT_GIT_SHA",
        "STACKPILOT_BUILD_ID",
        "STACKPILOT_BUILD_TIME",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // refinery embeds migrations/ at compile time; rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
}
