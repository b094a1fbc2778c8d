//! The `verify` binary: parses arguments and hands over to the `verify` library.

use clap::Parser;

/// Host-driven, read-only verification of a lab node: the definition of "working". Not yet implemented: see the golden-path issue.
#[derive(Parser)]
#[command(name = "verify", version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
