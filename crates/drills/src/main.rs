//! The `drills` binary: parses arguments and hands over to the `drills` library.

use clap::Parser;

/// Failure drills with measured recovery. Not yet implemented: see the drills issue.
#[derive(Parser)]
#[command(name = "drills", version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
