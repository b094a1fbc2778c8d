//! `cargo xtask ci` (`make ci`): maps the environment into the `ci` crate's run, with this
//! binary as the runner of every step.

use crate::run::{Error, repo_root};

/// Runs CI; an error when any step failed.
pub fn run() -> Result<(), Error> {
    let xtask = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find xtask itself: {e}")))?;
    let cfg = ::ci::Config {
        root: repo_root(),
        xtask,
        force_fail: std::env::var(::ci::FORCE_FAIL_VAR).ok(),
        lab_disabled: std::env::var(::ci::CAPS_VAR).as_deref() == Ok("none"),
    };
    Ok(::ci::run(&cfg)?)
}
