//! `clean-room`'s command line, shared by its binary (which parses it) and the host (which
//! renders a value of it to the argv it runs on a node). Only clap and std here.

use clap::Parser;
use stackpilot_core::argv::{Args, ToArgv};

/// Remove the stack's containers (running, stopped, orphans), every locally built app
/// image and the build cache on a lab node; volumes are kept. Writes a clean receipt.
///
/// Node side only: runs inside a lab node from /vagrant (ctx-guard decides first; exit 3
/// when refused). On the host, use `make clean`. Never starts anything.
/// Exit codes: 0 ok, 1 step failed, 2 usage/configuration, 3 context refused,
/// 4 prerequisite missing.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "clean-room", version)]
pub struct Cli {
    /// Environment (a table of `[environments]` in stackpilot.toml).
    #[arg(long, default_value = "dev")]
    pub env: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The clean room of `env`, summary as a table.
    pub fn env(env: &str) -> Cli {
        Cli {
            env: env.to_string(),
            json: false,
        }
    }
}

impl ToArgv for Cli {
    const TOOL: &'static str = "clean-room";

    fn render(&self, out: &mut Args) {
        let Cli { env, json } = self;
        out.opt("env", env).flag("json", *json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackpilot_core::argv::round_trip;

    #[test]
    fn the_command_round_trips_through_its_argv() {
        let values = [
            Cli {
                env: "prod".into(),
                json: true,
            },
            Cli::env("dev"),
        ];
        assert_eq!(round_trip::<Cli, _>(&values, Some), Ok(()));
    }
}
