//! The `drills` binary: `list` anywhere; `node …` inside a lab node (ctx-guard first).
//! Drills are run from the host with `cargo xtask drills run` (`make drill`, `make drills`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stackpilot_core::{Config, Exit};

/// Failure drills with measured recovery: list them, or run a node-side injection step.
///
/// Run drills from the host: `make drill NAME=db-down NODE=worker2`, `make drills`
/// (`cargo xtask drills run <name>|all`). The `node` subcommands run inside a lab node from
/// /vagrant after ctx-guard (exit 3 when refused). Exit codes: 0 ok, 1 step failed,
/// 2 usage/configuration, 3 context refused, 4 prerequisite missing.
#[derive(Parser)]
#[command(name = "drills", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the drills with the fault and the expected outcome.
    List,
    /// Node-side injection steps (inside a lab node, from /vagrant).
    #[command(subcommand)]
    Node(NodeCmd),
}

#[derive(Subcommand)]
enum NodeCmd {
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

#[derive(clap::Args)]
struct Service {
    /// Environment.
    #[arg(long, default_value = "dev")]
    env: String,
    /// Compose service (`api`, `db`).
    #[arg(long)]
    service: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let node = match cli.command {
        Cmd::List => {
            for d in drills::ALL {
                stackpilot_core::outln!("{:<20} {}", d.name(), d.describe());
            }
            return Exit::Ok.into();
        }
        Cmd::Node(n) => n,
    };
    ctx_guard::node_main("drills", "make drill NAME=<drill> NODE=<node>", |allowed| {
        let msg = run_node(allowed, node)?;
        stackpilot_core::outln!("{msg}");
        Ok::<(), drills::node::NodeError>(())
    })
}

fn run_node(allowed: &ctx_guard::Allowed, cmd: NodeCmd) -> Result<String, drills::node::NodeError> {
    use drills::node;
    let cfg = || {
        let repo = std::path::Path::new(stackpilot_core::node::NODE_REPO);
        Config::load(&repo.join(stackpilot_core::config::CONFIG_FILE))
    };
    match cmd {
        NodeCmd::Stop(s) => node::stop(allowed, &cfg()?, &s.env, &s.service),
        NodeCmd::Start(s) => node::start(allowed, &cfg()?, &s.env, &s.service),
        NodeCmd::Kill(s) => node::kill(allowed, &cfg()?, &s.env, &s.service),
        NodeCmd::BlockPort { port, expire_after } => node::block_port(allowed, port, expire_after),
        NodeCmd::UnblockPort { port } => node::unblock_port(allowed, port),
    }
}
