//! The `deploy` binary: parses arguments and hands over to the `deploy` library.

use clap::Parser;

/// Environment-aware staged deploys with evidence and rollback. Not yet implemented: see the deploy issue.
#[derive(Parser)]
#[command(name = "deploy", version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
