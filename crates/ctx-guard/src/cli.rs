//! `ctx-guard`'s command line, shared by its binary (which parses it) and anyone who runs
//! it on a node (rendering a value of it to argv). Only clap and std here.

use clap::Parser;
use stackpilot_core::argv::{Args, ToArgv};

/// Decide whether node-side StackPilot steps may run here.
///
/// A node-side step runs only inside a lab node, with /vagrant as the working directory,
/// where /vagrant is a real mount of the whole repo checkout the lab was created from.
/// Exit 0: allowed. Exit 3: refused, with what was expected, what was found, and the
/// make target to run on the host instead.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "ctx-guard", version)]
pub struct Cli {
    /// Print every fact looked at and each rule's verdict.
    #[arg(long)]
    pub explain: bool,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
    /// The host command that runs the step right, named in the refusal.
    #[arg(long, value_name = "CMD", default_value = "make up")]
    pub instead: String,
}

impl ToArgv for Cli {
    const TOOL: &'static str = "ctx-guard";

    fn render(&self, out: &mut Args) {
        let Cli {
            explain,
            json,
            instead,
        } = self;
        out.flag("explain", *explain)
            .flag("json", *json)
            .opt("instead", instead);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackpilot_core::argv::round_trip;

    #[test]
    fn the_command_round_trips_through_its_argv() {
        let values = [Cli {
            explain: true,
            json: true,
            instead: "make clean".into(),
        }];
        assert_eq!(round_trip::<Cli, _>(&values, Some), Ok(()));
    }
}
