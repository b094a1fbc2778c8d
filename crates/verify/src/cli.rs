//! `verify`'s command line, shared by its binary (which parses it) and the host side
//! (which renders `inspect` and `inspect-swarm` to the argv it runs on a node). Only clap and std here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use stackpilot_core::argv::{Args, ToArgv};

/// Host-driven, read-only verification of one environment on a lab node: the definition
/// of "working".
///
/// Layers, in order, each failure marking the layers above it "not run": 1 node reachable
/// and itself; 2 TCP connect to the service port; 3 /health alive, /ready ready, /version
/// equal to the build receipt; 4 node-side inspection (containers running and healthy,
/// compose wiring, no hidden containers); 5 provenance (running image = receipt, created
/// after the last clean room, build-id label). Exit 0 only when every check passed, 1 when
/// one failed, 2 on usage or configuration errors, 3 when `inspect` runs outside a node's
/// /vagrant, 4 when a prerequisite (Docker) is missing.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "verify", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Node to verify (default: the control node).
    #[arg(long, value_name = "NODE", env = "NODE")]
    pub node: Option<String>,
    /// Environment to verify.
    #[arg(long, value_name = "ENV", default_value = "dev")]
    pub env: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Probe this address instead of the node's inventory address for the provider in use
    /// (the provider comes from STACKPILOT_PROVIDER, else how the node was created).
    #[arg(long, value_name = "IP")]
    pub address: Option<std::net::IpAddr>,
    /// Verify again until every check passes or SECS seconds have passed; prints only the
    /// final report.
    #[arg(long, value_name = "SECS")]
    pub wait: Option<u64>,
    /// Path of the verify binary inside the node.
    #[arg(long, value_name = "PATH", env = "STACKPILOT_NODE_VERIFY")]
    pub node_verify: Option<String>,
}

/// The node-side subcommands; the host renders it with [`ToArgv`].
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Node side: print the environment's facts from the node's engine, compose and
    /// receipts as one JSON document (read-only; refused outside a node's /vagrant).
    Inspect {
        /// Environment to inspect.
        #[arg(long, value_name = "ENV", default_value = "dev")]
        env: String,
        /// Print JSON (the only format; accepted for symmetry with the host side).
        #[arg(long)]
        json: bool,
    },
    /// Node side, on the swarm's manager: print the environment's stack as the manager
    /// reports it (services, tasks, nodes) and the compose file's services, as one JSON
    /// document (read-only; refused outside a node's /vagrant).
    InspectSwarm {
        /// Environment whose stack to inspect.
        #[arg(long, value_name = "ENV", default_value = "dev")]
        env: String,
        /// Print JSON (the only format).
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// `inspect --env ENV --json`, what the host runs on the node.
    pub fn inspect(env: &str) -> Command {
        Command::Inspect {
            env: env.to_string(),
            json: true,
        }
    }

    /// `inspect-swarm --env ENV --json`, what the host runs on the swarm's manager.
    pub fn inspect_swarm(env: &str) -> Command {
        Command::InspectSwarm {
            env: env.to_string(),
            json: true,
        }
    }
}

impl ToArgv for Command {
    const TOOL: &'static str = "verify";

    fn render(&self, out: &mut Args) {
        match self {
            Command::Inspect { env, json } => {
                out.word("inspect").opt("env", env).flag("json", *json);
            }
            Command::InspectSwarm { env, json } => {
                out.word("inspect-swarm")
                    .opt("env", env)
                    .flag("json", *json);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackpilot_core::argv::round_trip;

    #[test]
    fn every_node_side_subcommand_round_trips_through_its_argv() {
        let values = [
            Command::inspect("prod"),
            Command::inspect_swarm("prod"),
            Command::Inspect {
                env: "dev".into(),
                json: false,
            },
        ];
        assert_eq!(round_trip::<Cli, _>(&values, |c| c.command), Ok(()));
    }
}
