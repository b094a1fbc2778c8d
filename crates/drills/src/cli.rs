//! `drills`' command line, shared by its binary (which parses it) and the drills' host
//! side (which renders a node step to the argv it runs on a node). Only clap and std here.

use clap::{Parser, Subcommand};
use stackpilot_core::argv::{Args, ToArgv};

/// Failure drills with measured recovery: list them, or run a node-side injection step.
///
/// Run drills from the host: `make drill NAME=db-down NODE=worker2`, `make drills`
/// (`cargo xtask drills run <name>|all`). The `node` subcommands run inside a lab node from
/// /vagrant after ctx-guard (exit 3 when refused). Exit codes: 0 ok, 1 step failed,
/// 2 usage/configuration, 3 context refused, 4 prerequisite missing.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "drills", version, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// List the drills with the fault and the expected outcome.
    List,
    /// Node-side injection steps (inside a lab node, from /vagrant).
    #[command(subcommand)]
    Node(NodeCmd),
}

/// The node-side steps; the host renders them with [`ToArgv`].
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum NodeCmd {
    /// Stop a service's container of ENV (found by compose labels).
    Stop(Service),
    /// Start a service's stopped container of ENV.
    Start(Service),
    /// SIGKILL the main process of a service's container (a crash, not an engine stop).
    Kill(Service),
    /// Drop TCP to PORT in the node's network layer (removed automatically after a while).
    BlockPort {
        /// The published service port.
        #[arg(long)]
        port: u16,
        /// Seconds after which the rule removes itself even if nobody unblocks it.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        expire_after: u64,
    },
    /// Remove every drill rule for PORT.
    UnblockPort {
        /// The published service port.
        #[arg(long)]
        port: u16,
    },
}

/// One service of one environment.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Environment.
    #[arg(long, default_value = "dev")]
    pub env: String,
    /// Compose service (`api`, `db`).
    #[arg(long)]
    pub service: String,
}

impl Service {
    /// `service` of `env`.
    pub fn new(env: &str, service: &str) -> Service {
        Service {
            env: env.to_string(),
            service: service.to_string(),
        }
    }

    fn render(&self, out: &mut Args) {
        let Service { env, service } = self;
        out.opt("env", env).opt("service", service);
    }
}

impl NodeCmd {
    /// The step's name as journals and errors show it (`drills node stop`).
    pub fn step(&self) -> String {
        let call = self.call();
        let words: Vec<&str> = call.args.iter().take(2).map(String::as_str).collect();
        format!("drills {}", words.join(" "))
    }
}

impl ToArgv for NodeCmd {
    const TOOL: &'static str = "drills";

    fn render(&self, out: &mut Args) {
        out.word("node");
        match self {
            NodeCmd::Stop(s) => s.render(out.word("stop")),
            NodeCmd::Start(s) => s.render(out.word("start")),
            NodeCmd::Kill(s) => s.render(out.word("kill")),
            NodeCmd::BlockPort { port, expire_after } => {
                out.word("block-port")
                    .opt("port", port)
                    .opt("expire-after", expire_after);
            }
            NodeCmd::UnblockPort { port } => {
                out.word("unblock-port").opt("port", port);
            }
        }
    }
}

impl ToArgv for Cmd {
    const TOOL: &'static str = "drills";

    fn render(&self, out: &mut Args) {
        match self {
            Cmd::List => {
                out.word("list");
            }
            Cmd::Node(n) => n.render(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackpilot_core::argv::round_trip;

    #[test]
    fn every_subcommand_round_trips_through_its_argv() {
        let s = || Service::new("prod", "db");
        let values = [
            Cmd::List,
            Cmd::Node(NodeCmd::Stop(s())),
            Cmd::Node(NodeCmd::Start(s())),
            Cmd::Node(NodeCmd::Kill(s())),
            Cmd::Node(NodeCmd::BlockPort {
                port: 8001,
                expire_after: 7,
            }),
            Cmd::Node(NodeCmd::UnblockPort { port: 8001 }),
        ];
        assert_eq!(round_trip::<Cli, _>(&values, |c| Some(c.command)), Ok(()));
    }

    #[test]
    fn a_node_step_renders_as_the_drills_node_command() {
        let stop = NodeCmd::Stop(Service::new("dev", "db"));
        assert_eq!(
            stop.call().line(),
            "drills node stop --env dev --service db"
        );
        assert_eq!(stop.step(), "drills node stop");
    }
}
