//! Build script: only the migrations. Build metadata (`STACKPILOT_*`) is read with
//! `option_env!` in main.rs, which rustc tracks itself; declaring it here would rerun this
//! script and recompile the whole package for every new build id.

fn main() {
    // refinery embeds migrations/ at compile time; rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
}
