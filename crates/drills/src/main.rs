//! The `drills` binary: `list` anywhere; `node …` inside a lab node (ctx-guard first).
//! Drills are run from the host with `cargo xtask drills run` (`make drill`, `make drills`).

use std::process::ExitCode;

use clap::Parser;
use drills::cli::{Cli, Cmd, NodeCmd};
use stackpilot_core::{Config, Exit};

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
    use drills::node::{self, ContainerFault as Fault};
    let cfg = || {
        let repo = std::path::Path::new(stackpilot_core::node::NODE_REPO);
        Config::load(&repo.join(stackpilot_core::config::CONFIG_FILE))
    };
    match cmd {
        NodeCmd::Stop(s) => node::container(allowed, &cfg()?, &s.env, &s.service, Fault::Stop),
        NodeCmd::Start(s) => node::container(allowed, &cfg()?, &s.env, &s.service, Fault::Start),
        NodeCmd::Kill(s) => node::container(allowed, &cfg()?, &s.env, &s.service, Fault::Kill),
        NodeCmd::BlockPort { port, expire_after } => node::block_port(allowed, port, expire_after),
        NodeCmd::UnblockPort { port } => node::unblock_port(allowed, port),
    }
}
