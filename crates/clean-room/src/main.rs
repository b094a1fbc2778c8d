//! The `clean-room` binary: parses arguments and hands over to the `clean_room` library.

use clap::Parser;

/// Remove the stack's containers, locally built app images and build cache on a node; volumes are kept. Not yet implemented: see the golden-path issue.
#[derive(Parser)]
#[command(name = "clean-room", version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
