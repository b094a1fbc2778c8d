//! The host side of the swarm drills: [`SwarmLab`] gives the drills the lab's swarm
//! (`lab::swarm`) and its nodes (`lab::nodes::Lab`), and keeps the manager's node-side
//! steps and the app build with the compose-mode [`LabOps`] of the manager it wraps.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use lab::nodes::Lab;
use lab::swarm::{Stack, Swarm};
use stackpilot_core::Config;
use stackpilot_core::transport::docker_container_id;
use verify::Report;
use verify::setup::Options;
use verify::swarm::SwarmInspection;
use verify::swarm::verdict::ManagerOutcome;

use super::SwarmOps;
use crate::cli::NodeCmd;
use crate::lab::{Golden, LabError, LabOps, Status};

/// How long a scaled service may take to run the new count (the db stops within its 20 s
/// grace period; a new db task runs once Postgres is healthy).
const SCALE_LIMIT: Duration = Duration::from_secs(60);

/// How long the manager's engine may take to stop its containers when it restarts.
const ENGINE_STOP_SECS: &str = "30";

/// The lab in swarm mode, for one environment's stack.
pub struct SwarmLab<'a> {
    manager: &'a dyn LabOps,
    lab: Lab,
    swarm: Swarm,
    stack: Stack,
    api: Vec<(String, SocketAddr)>,
}

impl<'a> SwarmLab<'a> {
    /// The swarm of the checkout at `root` for `manager`'s environment; `manager` is the
    /// host's lab of the control node (its node steps and builds run there).
    pub fn new(manager: &'a dyn LabOps, root: PathBuf, cfg: Config) -> Result<Self, LabError> {
        let swarm = Swarm::of_lab(&root, &cfg).map_err(|e| LabError::new("swarm", e))?;
        if manager.node() != swarm.manager.name {
            return Err(LabError::new(
                "swarm drill",
                format!(
                    "runs from the swarm's manager: NODE={} (not {})",
                    swarm.manager.name,
                    manager.node()
                ),
            ));
        }
        let env = manager.env();
        let stack = Stack::for_env(&cfg, env).map_err(|e| LabError::new("swarm", e))?;
        let port = cfg
            .environment(env)
            .map_err(|e| LabError::new("swarm", e))?
            .port();
        let api = swarm
            .workers()
            .map(|w| (w.name.clone(), SocketAddr::new(IpAddr::V4(w.address), port)))
            .collect();
        Ok(SwarmLab {
            manager,
            lab: Lab::new(root, cfg),
            swarm,
            stack,
            api,
        })
    }
}

impl LabOps for SwarmLab<'_> {
    fn node(&self) -> &str {
        &self.swarm.manager.name
    }

    fn env(&self) -> &str {
        self.manager.env()
    }

    fn service_addr(&self) -> SocketAddr {
        self.api
            .first()
            .map_or_else(|| self.manager.service_addr(), |(_, a)| *a)
    }

    fn verify(&self, wait: Option<Duration>) -> Result<Report, LabError> {
        let (root, cfg) = (self.lab.root(), self.lab.cfg());
        let deployed = verify::swarm::setup::deployed(root, cfg, self.env());
        let opts = Options {
            wait,
            ..Options::default()
        };
        verify::swarm::setup::verify(cfg, &self.swarm.nodes, self.env(), deployed, &opts)
            .map_err(|e| LabError::new("verify", e))
    }

    fn status(&self) -> Result<Status, LabError> {
        Err(LabError::new(
            "lifecycle status",
            "a stack on the swarm has no compose containers: this drill runs in compose mode (MODE=compose)",
        ))
    }

    fn node_step(&self, step: &NodeCmd) -> Result<String, LabError> {
        self.manager.node_step(step)
    }

    /// The normal stack: the manager's build pushed and deployed by digest, every replica
    /// running (no change when that is what runs).
    fn start(&self, overrides: &[(&str, &str)]) -> Result<(), LabError> {
        if !overrides.is_empty() {
            return Err(LabError::new(
                "swarm deploy",
                "compose overrides apply to compose mode only (MODE=compose)",
            ));
        }
        self.stack
            .release(self.lab.root(), self.lab.cfg(), &self.swarm)
            .map(drop)
            .map_err(|e| LabError::new("swarm deploy", e))
    }

    fn golden(&self, step: Golden) -> Result<(), LabError> {
        match step {
            Golden::Up => LabOps::start(self, &[]),
            Golden::Down => self
                .stack
                .remove(&self.swarm)
                .map_err(|e| LabError::new(step.command(), e)),
            Golden::HaltNode | Golden::StartNode | Golden::Build => self.manager.golden(step),
            Golden::Clean | Golden::Demo => Err(LabError::new(
                step.command(),
                "runs a compose stack on one node: this drill runs in compose mode (MODE=compose)",
            )),
        }
    }

    fn swarm(&self) -> Option<&dyn SwarmOps> {
        Some(self)
    }
}

impl SwarmOps for SwarmLab<'_> {
    fn manager(&self) -> &str {
        &self.swarm.manager.name
    }

    fn api_nodes(&self) -> Vec<(String, SocketAddr)> {
        self.api.clone()
    }

    fn inspect(&self) -> Result<SwarmInspection, LabError> {
        let (cfg, env) = (self.lab.cfg(), self.env());
        let (_, manager, run) =
            verify::swarm::setup::prepare(cfg, &self.swarm.nodes, env, None, &Options::default())
                .map_err(|e| LabError::new("verify inspect-swarm", e))?;
        match verify::swarm::host::inspect(&manager, env, &run) {
            ManagerOutcome::Inspected(doc) => Ok(*doc),
            ManagerOutcome::Unreachable(why) => Err(LabError::new("verify inspect-swarm", why)),
            ManagerOutcome::Failed { code, stderr } => Err(LabError::new(
                "verify inspect-swarm",
                format!("exit {code:?}: {}", stderr.trim()),
            )),
        }
    }

    fn halt(&self, node: &str) -> Result<(), LabError> {
        self.lab
            .halt(&[node.to_string()])
            .map_err(|e| LabError::new(format!("cargo xtask lab halt {node}"), e))
    }

    fn start(&self, node: &str) -> Result<(), LabError> {
        self.lab
            .up(&[node.to_string()])
            .map_err(|e| LabError::new(format!("cargo xtask lab up {node}"), e))
    }

    /// A VM's engine restarts through systemd; a docker-provider node's engine is the node
    /// container's first process, so the container restarts (its engine volume, holding the
    /// swarm state, stays).
    fn restart_engine(&self, node: &str) -> Result<(), LabError> {
        let what = format!("restart the engine of {node}");
        let handle = self
            .swarm
            .nodes
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| LabError::new(&what, "not a node of the lab"))?;
        if handle.provider.is_vm {
            let t = handle.transport().map_err(|e| LabError::new(&what, e))?;
            let argv = ["sudo", "-n", "systemctl", "restart", "docker"];
            return t
                .output(&argv, Duration::from_secs(120))
                .map(drop)
                .map_err(|e| LabError::new(&what, e));
        }
        let id = docker_container_id(&self.lab.vagrant_dir(), node)
            .ok_or_else(|| LabError::new(&what, "no node container recorded by Vagrant"))?;
        let mut cmd = std::process::Command::new("docker");
        cmd.args(["restart", "-t", ENGINE_STOP_SECS, &id]);
        lab::step(&what, &mut cmd).map_err(|e| LabError::new(&what, e))
    }

    fn roll_new_build(&self) -> Result<String, LabError> {
        self.manager.golden(Golden::Build)?;
        let d = self
            .stack
            .release(self.lab.root(), self.lab.cfg(), &self.swarm)
            .map_err(|e| LabError::new("swarm deploy", e))?;
        Ok(d.app_image)
    }

    fn scale(&self, service: &str, replicas: u32) -> Result<String, LabError> {
        self.stack
            .scale(&self.swarm, service, replicas, SCALE_LIMIT)
            .map_err(|e| LabError::new(format!("docker service scale {service}={replicas}"), e))
    }

    fn update_api_env(&self, overrides: &[(&str, &str)]) -> Result<String, LabError> {
        self.stack
            .update_api_env(self.lab.root(), self.lab.cfg(), &self.swarm, overrides)
            .map_err(|e| LabError::new("docker service update", e))
    }

    fn redeploy(&self) -> Result<String, LabError> {
        let d = self
            .stack
            .redeploy(self.lab.root(), self.lab.cfg(), &self.swarm)
            .map_err(|e| LabError::new("swarm deploy", e))?;
        Ok(format!(
            "docker stack deploy {} with the api pinned to {}; every replica running",
            self.stack.name, d.app_image
        ))
    }
}
