//! From names to a runnable verification: node and environment from `stackpilot.toml`,
//! the node's address under the provider in use, and the transport to reach it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use stackpilot_core::Config;
use stackpilot_core::compose::{COMPOSE_FILE, PROJECT_DIR};
use stackpilot_core::config::Provider;
use stackpilot_core::exit::{Exit, ExitStatus};
use stackpilot_core::http::Timeouts;
use stackpilot_core::node::NODE_REPO;
use stackpilot_core::transport::{self, Transport, VAGRANT_DIR};

use crate::host::{self, NodeRun, NodeRunner, NodeUnderTest, RunConfig};
use crate::inspection::Wiring;
use crate::report::Report;
use crate::verdict::Expect;

/// Where `cargo xtask` puts the static node binaries; the node sees the repo at /vagrant.
pub const DEFAULT_NODE_VERIFY: &str = "/vagrant/target/x86_64-unknown-linux-gnu/release/verify";

/// Variable that names the provider whose node addresses are used.
pub const PROVIDER_VAR: &str = "STACKPILOT_PROVIDER";

/// Choices a caller may make; everything else comes from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Provider whose addresses to use; default: the one the node was created with, else
    /// the docker provider.
    pub provider: Option<Provider>,
    /// Probe this address instead of the inventory's (e.g. a loopback publish).
    pub address: Option<IpAddr>,
    /// The `verify` binary inside the node; default [`DEFAULT_NODE_VERIFY`].
    pub node_verify: Option<String>,
    /// Verify again until everything passes or this much time has passed.
    pub wait: Option<Duration>,
}

/// Why a verification could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The configuration, node or environment is wrong.
    #[error(transparent)]
    Config(#[from] stackpilot_core::Error),
    /// The provider variable names no provider.
    #[error("{PROVIDER_VAR}={found}: expected one of virtualbox, libvirt, docker")]
    Provider {
        /// What the variable said.
        found: String,
    },
}

impl ExitStatus for SetupError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// The provider named by `STACKPILOT_PROVIDER`, if set.
pub fn provider_from_env() -> Result<Option<Provider>, SetupError> {
    match std::env::var(PROVIDER_VAR) {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => match v.as_str() {
            "virtualbox" => Ok(Some(Provider::Virtualbox)),
            "libvirt" => Ok(Some(Provider::Libvirt)),
            "docker" => Ok(Some(Provider::Docker)),
            _ => Err(SetupError::Provider { found: v }),
        },
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

/// The target, transport and run configuration for `node` and `env` of the repo at `root`.
pub fn prepare(
    root: &Path,
    cfg: &Config,
    node: &str,
    env: &str,
    opts: &Options,
) -> Result<(NodeUnderTest, HostRunner, RunConfig), SetupError> {
    let n = cfg.node(node)?;
    let e = cfg.environment(env)?;
    let vagrant_dir = root.join(VAGRANT_DIR);
    let provider = opts
        .provider
        .or_else(|| transport::created_provider(&vagrant_dir, node))
        .unwrap_or(Provider::Docker);
    let ip = opts
        .address
        .unwrap_or_else(|| IpAddr::V4(n.address(provider)));
    let addr = SocketAddr::new(ip, e.port());
    let repo = Path::new(NODE_REPO);
    let expect = Expect {
        node: node.to_string(),
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
    let runner = match Transport::for_node(&vagrant_dir, node) {
        Ok(t) => HostRunner::Transport(t),
        Err(e) => HostRunner::Missing(e.to_string()),
    };
    let run = RunConfig {
        node_verify: opts
            .node_verify
            .clone()
            .unwrap_or_else(|| DEFAULT_NODE_VERIFY.to_string()),
        node_timeout: Duration::from_secs(30),
        probe: Timeouts::default(),
    };
    Ok((NodeUnderTest { expect, addr }, runner, run))
}

/// Verifies `env` on `node`: the one call xtask and the binary make.
pub fn verify(
    root: &Path,
    cfg: &Config,
    node: &str,
    env: &str,
    opts: &Options,
) -> Result<Report, SetupError> {
    let (target, runner, run) = prepare(root, cfg, node, env, opts)?;
    Ok(match opts.wait {
        Some(wait) => host::run_waiting(&target, &runner, &run, wait),
        None => host::run(&target, &runner, &run),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let text = include_str!("../../../stackpilot.toml");
        Config::parse(text, Path::new("stackpilot.toml")).expect("repo config parses")
    }

    #[test]
    fn docker_provider_addresses_and_env_port_by_default() {
        let root = Path::new("/nonexistent-repo");
        let (t, runner, run) =
            prepare(root, &cfg(), "worker1", "staging", &Options::default()).expect("prepare");
        assert_eq!(t.addr.to_string(), "172.30.56.11:8001");
        assert_eq!(t.expect.project, "stackpilot-staging");
        assert_eq!(t.expect.wiring.env_file, "/vagrant/infra/env/staging.env");
        assert_eq!(run.node_verify, DEFAULT_NODE_VERIFY);
        assert!(matches!(runner, HostRunner::Missing(ref why) if why.contains("worker1")));
    }

    #[test]
    fn provider_and_address_can_be_overridden() {
        let root = Path::new("/nonexistent-repo");
        let opts = Options {
            provider: Some(Provider::Virtualbox),
            ..Options::default()
        };
        let (t, _, _) = prepare(root, &cfg(), "control", "dev", &opts).expect("prepare");
        assert_eq!(t.addr.to_string(), "192.168.56.10:8000");
        let opts = Options {
            address: Some(IpAddr::from([127, 0, 0, 10])),
            ..Options::default()
        };
        let (t, _, _) = prepare(root, &cfg(), "control", "dev", &opts).expect("prepare");
        assert_eq!(t.addr.to_string(), "127.0.0.10:8000");
    }

    #[test]
    fn an_unknown_node_is_a_usage_error() {
        let err = prepare(Path::new("/x"), &cfg(), "nope", "dev", &Options::default())
            .expect_err("unknown node");
        assert_eq!(err.exit(), Exit::Usage);
    }
}
