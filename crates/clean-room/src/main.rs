//! The `clean-room` binary: runs ctx-guard first, hands over to the `clean_room` library,
//! prints the summary, and maps errors to exit codes.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use clean_room::cli::Cli;
use clean_room::{CleanError, CleanScope};
use stackpilot_core::Config;
use stackpilot_core::admin::DockerAdmin;
use stackpilot_core::output::{Format, print};

fn main() -> ExitCode {
    let cli = Cli::parse();
    ctx_guard::node_main("clean-room", "make clean", |allowed| run(allowed, &cli))
}

fn run(allowed: &ctx_guard::Allowed, cli: &Cli) -> Result<(), CleanError> {
    let repo = Path::new(stackpilot_core::node::NODE_REPO);
    let cfg = Config::load(&repo.join(stackpilot_core::config::CONFIG_FILE))?;
    let target = CleanScope::for_env(&cfg, &cli.env)?;
    let admin = DockerAdmin::connect()?;
    let summary = clean_room::run(allowed, &admin, &target, &cfg.state.node_dir)?;
    print(&summary, Format::from_json_flag(cli.json));
    Ok(())
}
