//! `cargo xtask`: the golden paths of StackPilot, composed from the tool libraries.
//!
//! Every Makefile target is one `cargo xtask …` call; this binary is where the flows live.

mod prereq;
mod run;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stackpilot_core::Exit;

/// StackPilot's golden paths. Use the Makefile targets; they call these.
#[derive(Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the test suite needs, then format check, clippy (warnings denied) and
    /// every test of the workspace (`make test`).
    Test,
    /// List the Makefile targets with their one-line descriptions (`make help`).
    HelpTargets,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Test => test::run(),
        Cmd::HelpTargets => help_targets(),
    };
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("xtask: {e}");
            e.exit().into()
        }
    }
}

/// Prints the `## ` descriptions of the Makefile's targets.
fn help_targets() -> Result<(), run::Error> {
    let path = run::repo_root().join("Makefile");
    let text = std::fs::read_to_string(&path).map_err(|e| run::Error::StepFailed {
        step: "help".into(),
        cmd: format!("read {}", path.display()),
        status: e.to_string(),
    })?;
    for line in text.lines() {
        if let Some((target, rest)) = line.split_once(':')
            && let Some((_, doc)) = rest.split_once("## ")
            && !target.starts_with('.')
        {
            println!("  make {target:<16} {doc}");
        }
    }
    Ok(())
}
