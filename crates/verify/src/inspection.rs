//! The node-side inspection document: what `verify inspect --json` prints on a node and
//! the host reads back. Plain data, no behaviour, so both sides share one definition.

use serde::{Deserialize, Serialize};
use stackpilot_core::receipts::{BuildReceipt, CleanReceipt};

/// A fact that may not have been obtainable, with the reason why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact<T> {
    /// The fact was read.
    Found(T),
    /// There is nothing to read (e.g. no receipt written yet).
    Absent(String),
    /// Reading failed.
    Error(String),
}

impl<T> Fact<T> {
    /// The value when found.
    pub fn found(&self) -> Option<&T> {
        match self {
            Fact::Found(v) => Some(v),
            _ => None,
        }
    }

    /// Why the value is missing, when it is.
    pub fn why_missing(&self) -> Option<&str> {
        match self {
            Fact::Found(_) => None,
            Fact::Absent(why) | Fact::Error(why) => Some(why),
        }
    }
}

/// Everything `verify inspect` observed on a node for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// The node's name from its identity file (what ctx-guard allowed).
    pub node: String,
    /// The lab the node belongs to.
    pub lab: String,
    /// The environment inspected.
    pub env: String,
    /// The environment's compose project name.
    pub project: String,
    /// The environment's service port on the node.
    pub port: u16,
    /// The compose wiring the environment must have been started with.
    pub expected: Wiring,
    /// The node's Docker engine.
    pub engine: Fact<Engine>,
    /// The services the compose file declares, read with the same wiring.
    pub declared: Fact<Declared>,
    /// Every container labelled with the project (running or not, one-off or not).
    pub containers: Vec<ContainerFact>,
    /// Running containers of any project publishing the environment's port.
    pub port_publishers: Vec<ContainerFact>,
    /// Containers that run but the compose file does not account for (derived).
    pub hidden: Vec<Hidden>,
    /// The running api container's image, when there is one.
    pub api_image: Option<Fact<ImageFact>>,
    /// The environment's build receipt.
    pub build_receipt: Fact<BuildReceipt>,
    /// The environment's last clean receipt.
    pub clean_receipt: Fact<CleanReceipt>,
}

/// Paths the compose wiring is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wiring {
    /// The compose file.
    pub compose_file: String,
    /// The project directory.
    pub working_dir: String,
    /// The env file.
    pub env_file: String,
}

/// The engine's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    /// Engine version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// API version in use after negotiation.
    pub api_version: String,
}

/// The compose file's services as compose itself reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    /// The compose command used, as typed.
    pub command: String,
    /// Service names, sorted.
    pub services: Vec<String>,
}

/// One container as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerFact {
    /// Container id.
    pub id: String,
    /// Container name (without the leading `/`).
    pub name: String,
    /// `com.docker.compose.project` label.
    pub project: Option<String>,
    /// `com.docker.compose.service` label.
    pub service: Option<String>,
    /// Engine state: `running`, `exited`, `restarting`, …
    pub state: String,
    /// Healthcheck status (`healthy`, `unhealthy`, `starting`), `None` without a healthcheck.
    pub health: Option<String>,
    /// How often the engine restarted it (restart policy).
    pub restart_count: i64,
    /// Id of the image it runs (`sha256:…`).
    pub image_id: String,
    /// The image reference it was created from.
    pub image_ref: String,
    /// `com.docker.compose.project.working_dir` label.
    pub working_dir: Option<String>,
    /// `com.docker.compose.project.config_files` label.
    pub config_files: Option<String>,
    /// `com.docker.compose.project.environment_file` label (compose 1.29+ and v2).
    pub environment_file: Option<String>,
    /// `com.docker.compose.oneoff` label is `True` (a `compose run` container).
    pub oneoff: bool,
    /// Host ports it publishes.
    pub published_ports: Vec<u16>,
}

impl ContainerFact {
    /// Whether the engine reports it running.
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// A container that runs without the compose file accounting for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hidden {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Why it counts as hidden.
    pub why: String,
}

/// The api image as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFact {
    /// Image id.
    pub id: String,
    /// Creation time (RFC 3339 with nanoseconds, UTC).
    pub created: String,
    /// Its tags.
    pub repo_tags: Vec<String>,
    /// `stackpilot.build-id` label.
    pub build_id: Option<String>,
}
