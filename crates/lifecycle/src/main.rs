//! The `lifecycle` binary: parses arguments and hands over to the `lifecycle` library.

use clap::Parser;

/// Build, start, stop and report the service stack on a lab node (node side, after ctx-guard). Not yet implemented: see the golden-path issue.
#[derive(Parser)]
#[command(name = "lifecycle", version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
