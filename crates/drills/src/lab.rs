//! What a drill needs from the lab, as a trait: the host side (xtask) implements it with the
//! golden path (lifecycle up/down, clean room, demo, lab halt/up, verify, node-side steps
//! through the transport); tests implement it with fakes.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use verify::report::Report;

use crate::cli::NodeCmd;

/// A golden-path step, as the operator would type it with `make`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Golden {
    /// `make up`: nodes up, stack started.
    Up,
    /// `make down`: stack stopped, images and volumes kept.
    Down,
    /// `make clean`: clean room, volumes kept.
    Clean,
    /// `make demo`: forced rebuild from source, recreate, demo order.
    Demo,
    /// `make demo`'s build alone: compile from source, `docker build --no-cache` on the
    /// node, build receipt; nothing started (swarm mode rolls it out).
    Build,
    /// Halt the node (`cargo xtask lab halt NODE`).
    HaltNode,
    /// Start the node again (`cargo xtask lab up NODE`), nothing else.
    StartNode,
}

impl Golden {
    /// The command an operator would type.
    pub fn command(self) -> &'static str {
        match self {
            Golden::Up => "make up",
            Golden::Down => "make down",
            Golden::Clean => "make clean",
            Golden::Demo => "make demo",
            Golden::Build => "make demo (its build phases)",
            Golden::HaltNode => "cargo xtask lab halt NODE",
            Golden::StartNode => "cargo xtask lab up NODE",
        }
    }
}

/// A lab step that failed, with what was run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {detail}")]
pub struct LabError {
    /// The step (`make down`, `drills node stop`, …).
    pub step: String,
    /// The error.
    pub detail: String,
}

impl LabError {
    /// An error of `step`.
    pub fn new(step: impl Into<String>, detail: impl ToString) -> LabError {
        LabError {
            step: step.into(),
            detail: detail.to_string(),
        }
    }
}

/// One container of the stack, as `lifecycle status --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Container {
    /// Compose service.
    pub service: String,
    /// Short container id.
    pub id: String,
    /// Engine state.
    pub state: String,
    /// Health.
    pub health: String,
    /// Restart count.
    pub restarts: i64,
}

/// `lifecycle status --json`, the part drills read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    /// The stack's containers.
    pub containers: Vec<Container>,
}

impl Status {
    /// The container of `service`, if any.
    pub fn service(&self, service: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.service == service)
    }
}

/// The lab as drills see it: one node, one environment.
pub trait LabOps {
    /// The node's name.
    fn node(&self) -> &str;
    /// The environment.
    fn env(&self) -> &str;
    /// The service's published address on the node.
    fn service_addr(&self) -> SocketAddr;
    /// `verify`, optionally waiting up to `wait` for everything to pass; one final report.
    fn verify(&self, wait: Option<Duration>) -> Result<Report, LabError>;
    /// The stack's containers (`lifecycle status --json`, read-only).
    fn status(&self) -> Result<Status, LabError>;
    /// Runs `drills node …` inside the node (ctx-guard first); returns what it printed.
    fn node_step(&self, step: &NodeCmd) -> Result<String, LabError>;
    /// `lifecycle up` with compose variable overrides for this run (none: the normal stack).
    fn start(&self, overrides: &[(&str, &str)]) -> Result<(), LabError>;
    /// A golden-path step.
    fn golden(&self, step: Golden) -> Result<(), LabError>;
    /// The lab's swarm, when the environment runs in swarm mode (the swarm drills need it;
    /// `service_addr` is then the first api node's).
    fn swarm(&self) -> Option<&dyn crate::swarm::SwarmOps> {
        None
    }
    /// `http://<address>:<port>`.
    fn base_url(&self) -> String {
        format!("http://{}", self.service_addr())
    }
}
