//! From a resolved node and an environment to a runnable verification: the node's address
//! and transport come from its `NodeHandle` (resolved once, by `lab::resolve`), the
//! environment from `stackpilot.toml`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use stackpilot_core::Config;
use stackpilot_core::compose::{COMPOSE_FILE, PROJECT_DIR};
use stackpilot_core::exit::{Exit, ExitStatus};
use stackpilot_core::http::Timeouts;
use stackpilot_core::node::{NODE_REPO, NodeHandle};
use stackpilot_core::transport::Transport;

use crate::host::{self, NodeRun, NodeRunner, NodeUnderTest, RunConfig};
use crate::inspection::Wiring;
use crate::report::Report;
use crate::verdict::Expect;

/// Where `cargo xtask` puts the static node binaries; the node sees the repo at /vagrant.
pub const DEFAULT_NODE_VERIFY: &str = "/vagrant/target/x86_64-unknown-linux-gnu/release/verify";

/// Choices a caller may make; everything else comes from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Probe this address instead of the inventory's (e.g. a loopback publish).
    pub address: Option<IpAddr>,
    /// The `verify` binary inside the node; default [`DEFAULT_NODE_VERIFY`].
    pub node_verify: Option<String>,
    /// Verify again until everything passes or this much time has passed.
    pub wait: Option<Duration>,
}

impl Options {
    /// Where the service of `node` is probed: the override address, else the node's own.
    pub(crate) fn service_addr(&self, node: &NodeHandle, port: u16) -> SocketAddr {
        SocketAddr::new(self.address.unwrap_or(IpAddr::V4(node.address)), port)
    }

    /// How the host runs the node side and probes the service, for one node or a swarm.
    pub(crate) fn run_config(&self) -> RunConfig {
        RunConfig {
            node_verify: self
                .node_verify
                .clone()
                .unwrap_or_else(|| DEFAULT_NODE_VERIFY.to_string()),
            node_timeout: Duration::from_secs(30),
            probe: Timeouts::default(),
        }
    }
}

/// Why a verification could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration, node or environment is wrong.
    #[error(transparent)]
    Config(#[from] stackpilot_core::Error),
}

impl ExitStatus for SetupError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// How the host reaches a node: its transport, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRunner {
    /// The node's transport.
    Transport(Transport),
    /// The node cannot be reached (e.g. not created); verify reports it at layer 1.
    Missing(String),
}

impl NodeRunner for HostRunner {
    fn describe(&self) -> String {
        match self {
            HostRunner::Transport(t) => t.describe(),
            HostRunner::Missing(_) => "no transport".into(),
        }
    }

    fn run(&self, argv: &[&str], timeout: Duration) -> NodeRun {
        match self {
            HostRunner::Transport(t) => t.run(argv, timeout),
            HostRunner::Missing(why) => NodeRun::Unreachable(why.clone()),
        }
    }
}

/// The target, transport and run configuration for `env` on the resolved `node`.
pub fn prepare(
    cfg: &Config,
    node: &NodeHandle,
    env: &str,
    opts: &Options,
) -> Result<(NodeUnderTest, HostRunner, RunConfig), SetupError> {
    let e = cfg.environment(env)?;
    let addr = opts.service_addr(node, e.port());
    let repo = Path::new(NODE_REPO);
    let expect = Expect {
        node: node.name.clone(),
        lab: cfg.lab.name.clone(),
        env: env.to_string(),
        project: e.project().to_string(),
        target: addr.to_string(),
        wiring: Wiring {
            compose_file: repo.join(COMPOSE_FILE).display().to_string(),
            working_dir: repo.join(PROJECT_DIR).display().to_string(),
            env_file: repo.join(&e.env_file).display().to_string(),
        },
    };
    let mut run = opts.run_config();
    let runner = match node.transport() {
        Ok(t) => {
            run.node_timeout = t.command_limit(run.node_timeout);
            HostRunner::Transport(t.clone())
        }
        Err(e) => HostRunner::Missing(e.to_string()),
    };
    Ok((NodeUnderTest { expect, addr }, runner, run))
}

/// Verifies `env` on the resolved `node`: the one call xtask and the binary make.
pub fn verify(
    cfg: &Config,
    node: &NodeHandle,
    env: &str,
    opts: &Options,
) -> Result<Report, SetupError> {
    let (target, runner, run) = prepare(cfg, node, env, opts)?;
    Ok(host::until_passed(opts.wait, || {
        host::run(&target, &runner, &run)
    }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use stackpilot_core::config::Role;
    use stackpilot_core::node::ProviderFacts;

    use super::*;

    fn cfg() -> Config {
        let text = include_str!("../../../stackpilot.toml");
        Config::parse(text, Path::new("stackpilot.toml")).expect("repo config parses")
    }

    /// A node as `lab::resolve` hands it over, not created yet.
    fn worker1() -> NodeHandle {
        NodeHandle {
            name: "worker1".into(),
            role: Role::Worker,
            provider: ProviderFacts {
                name: "docker".into(),
                is_vm: false,
                shared_folder_types: vec![],
            },
            address: [172, 30, 56, 11].into(),
            transport: None,
            repo_source: Some("/work/repo".into()),
            machine_dir: PathBuf::from("/repo/vagrant/.vagrant/machines/worker1"),
        }
    }

    #[test]
    fn the_handles_address_and_the_env_port_are_probed() {
        let (t, runner, run) =
            prepare(&cfg(), &worker1(), "staging", &Options::default()).expect("prepare");
        assert_eq!(t.addr.to_string(), "172.30.56.11:8001");
        assert_eq!(t.expect.node, "worker1");
        assert_eq!(t.expect.project, "stackpilot-staging");
        assert_eq!(t.expect.wiring.env_file, "/vagrant/infra/env/staging.env");
        assert_eq!(run.node_verify, DEFAULT_NODE_VERIFY);
        assert!(matches!(runner, HostRunner::Missing(ref why) if why.contains("worker1")));
    }

    #[test]
    fn the_address_can_be_overridden() {
        let opts = Options {
            address: Some(IpAddr::from([127, 0, 0, 10])),
            ..Options::default()
        };
        let (t, _, _) = prepare(&cfg(), &worker1(), "dev", &opts).expect("prepare");
        assert_eq!(t.addr.to_string(), "127.0.0.10:8000");
    }

    #[test]
    fn a_created_node_is_reached_through_its_transport() {
        let node = NodeHandle {
            transport: Some(Transport::DockerExec {
                node: "worker1".into(),
                container: "c0ffee".into(),
            }),
            ..worker1()
        };
        let (_, runner, run) = prepare(&cfg(), &node, "dev", &Options::default()).expect("prepare");
        assert!(matches!(runner, HostRunner::Transport(_)));
        assert_eq!(run.node_timeout, Duration::from_secs(30));
    }

    #[test]
    fn a_vm_node_gives_its_node_side_commands_the_vm_limit() {
        // A deploy's verify on a TCG-emulated VM saw 30 s run out on the ssh handshake.
        let node = NodeHandle {
            transport: Some(Transport::VagrantSsh {
                vagrant_dir: PathBuf::from("/repo/vagrant"),
                node: "control".into(),
                provider: stackpilot_core::Provider::Libvirt,
            }),
            ..worker1()
        };
        let (_, _, run) = prepare(&cfg(), &node, "dev", &Options::default()).expect("prepare");
        assert_eq!(
            run.node_timeout,
            stackpilot_core::transport::VM_COMMAND_LIMIT
        );
    }

    #[test]
    fn an_unknown_environment_is_a_usage_error() {
        let err =
            prepare(&cfg(), &worker1(), "nope", &Options::default()).expect_err("unknown env");
        assert_eq!(err.exit(), Exit::Usage);
    }
}
