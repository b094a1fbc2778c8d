//! The manager-side document of swarm mode: what `verify inspect-swarm --json` prints on
//! the swarm's manager and the host reads back, and its conversion from the engine's
//! models (pure, so recorded engine JSON tests it).

use serde::{Deserialize, Serialize};
use stackpilot_core::facade::{ReadOnlyDocker, models};

use crate::inspection::{Declared, Engine, Fact};

/// Label swarm puts on a stack's services and tasks: the stack's name.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Node label carrying the inventory name of a swarm node (set when the swarm forms).
pub const NODE_LABEL: &str = "io.stackpilot.node";
/// Node label carrying the inventory role of a swarm node.
pub const ROLE_LABEL: &str = "io.stackpilot.role";

/// Everything `verify inspect-swarm` observed on the manager for one environment's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmInspection {
    /// The inspecting node's name from its identity file.
    pub node: String,
    /// Its lab.
    pub lab: String,
    /// The environment.
    pub env: String,
    /// The stack (the environment's project name).
    pub stack: String,
    /// The node's engine.
    pub engine: Fact<Engine>,
    /// The services the compose file declares.
    pub declared: Fact<Declared>,
    /// The swarm's nodes (an error when this engine is no manager).
    pub nodes: Fact<Vec<SwarmNode>>,
    /// The stack's services.
    pub services: Fact<Vec<SwarmService>>,
    /// The stack's tasks, every state (swarm keeps a few finished ones per slot).
    pub tasks: Fact<Vec<SwarmTask>>,
}

/// One swarm node as the manager reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmNode {
    /// Node id.
    pub id: String,
    /// The node's hostname (the inventory name on lab nodes).
    pub hostname: String,
    /// The `io.stackpilot.node` label, when set.
    pub inventory_name: Option<String>,
    /// The `io.stackpilot.role` label, when set.
    pub role_label: Option<String>,
    /// `manager` or `worker`.
    pub role: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// `active`, `pause`, `drain`.
    pub availability: String,
    /// The address the node registered with.
    pub addr: String,
    /// Manager status: `reachable`, `unreachable`, `unknown`; `None` on workers.
    pub reachability: Option<String>,
    /// Whether it leads the managers.
    pub leader: bool,
}

impl SwarmNode {
    /// The name the inventory knows it by: its label, else its hostname.
    pub fn name(&self) -> &str {
        self.inventory_name.as_deref().unwrap_or(&self.hostname)
    }
}

/// One published port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFact {
    /// Port inside the container.
    pub target: u16,
    /// Port on the node.
    pub published: u16,
    /// `host` or `ingress`.
    pub mode: String,
}

/// One service of the stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmService {
    /// Service id.
    pub id: String,
    /// Full name, `<stack>_<service>`.
    pub name: String,
    /// The compose service it came from (the name without the stack prefix).
    pub service: String,
    /// The image its tasks run, as the spec names it (with `@sha256:…` when pinned).
    pub image: String,
    /// Desired replicas; `None` for a global service.
    pub replicas: Option<u64>,
    /// `max_replicas_per_node`, when set.
    pub max_per_node: Option<u64>,
    /// Placement constraints, as written.
    pub constraints: Vec<String>,
    /// `dnsrr` or `vip`.
    pub endpoint_mode: String,
    /// Published ports.
    pub ports: Vec<PortFact>,
    /// The state of the last update (`updating`, `completed`, `rollback_completed`, …).
    pub update_state: Option<String>,
}

/// One task (a replica's slot at one time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmTask {
    /// Task id.
    pub id: String,
    /// The service's id.
    pub service_id: String,
    /// Replica slot (replicated services).
    pub slot: Option<i64>,
    /// The node it was scheduled on (empty while pending).
    pub node_id: String,
    /// What the orchestrator wants: `running`, `shutdown`, …
    pub desired_state: String,
    /// What it is: `running`, `pending`, `failed`, `shutdown`, …
    pub state: String,
    /// The image it runs.
    pub image: String,
    /// Its container on the node, once created.
    pub container_id: Option<String>,
    /// The engine's message and error, joined.
    pub message: String,
    /// When its state last changed.
    pub timestamp: String,
}

impl SwarmTask {
    /// Whether it runs and is meant to.
    pub fn running(&self) -> bool {
        self.state == "running" && self.desired_state == "running"
    }
}

fn text<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A node as the document records it.
pub fn node_fact(n: &models::Node) -> SwarmNode {
    let spec = n.spec.as_ref();
    let labels = spec.and_then(|s| s.labels.as_ref());
    let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
    let manager = n.manager_status.as_ref();
    SwarmNode {
        id: text(n.id.as_ref()),
        hostname: text(n.description.as_ref().and_then(|d| d.hostname.as_ref())),
        inventory_name: label(NODE_LABEL),
        role_label: label(ROLE_LABEL),
        role: text(spec.and_then(|s| s.role.as_ref())),
        state: text(n.status.as_ref().and_then(|s| s.state.as_ref())),
        availability: text(spec.and_then(|s| s.availability.as_ref())),
        addr: text(n.status.as_ref().and_then(|s| s.addr.as_ref())),
        reachability: manager.and_then(|m| m.reachability.as_ref().map(|r| r.to_string())),
        leader: manager.and_then(|m| m.leader).unwrap_or(false),
    }
}

/// A service as the document records it; `stack` strips the name's prefix.
pub fn service_fact(s: &models::Service, stack: &str) -> SwarmService {
    let spec = s.spec.as_ref();
    let name = text(spec.and_then(|s| s.name.as_ref()));
    let template = spec.and_then(|s| s.task_template.as_ref());
    let placement = template.and_then(|t| t.placement.as_ref());
    let endpoint = spec.and_then(|s| s.endpoint_spec.as_ref());
    let prefix = format!("{stack}_");
    SwarmService {
        id: text(s.id.as_ref()),
        service: name.strip_prefix(&prefix).unwrap_or(&name).to_string(),
        name,
        image: text(
            template
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.image.as_ref()),
        ),
        replicas: spec
            .and_then(|s| s.mode.as_ref())
            .and_then(|m| m.replicated.as_ref())
            .map(|r| r.replicas.unwrap_or(1).max(0) as u64),
        max_per_node: placement
            .and_then(|p| p.max_replicas)
            .filter(|m| *m > 0)
            .map(|m| m as u64),
        constraints: placement
            .and_then(|p| p.constraints.clone())
            .unwrap_or_default(),
        endpoint_mode: text(endpoint.and_then(|e| e.mode.as_ref())),
        ports: endpoint
            .and_then(|e| e.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| PortFact {
                        target: p.target_port.unwrap_or(0).clamp(0, 65535) as u16,
                        published: p.published_port.unwrap_or(0).clamp(0, 65535) as u16,
                        mode: text(p.publish_mode.as_ref()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        update_state: s
            .update_status
            .as_ref()
            .and_then(|u| u.state.as_ref())
            .map(|st| st.to_string()),
    }
}

/// A task as the document records it.
pub fn task_fact(t: &models::Task) -> SwarmTask {
    let status = t.status.as_ref();
    let message: Vec<String> = [
        status.and_then(|s| s.message.clone()),
        status.and_then(|s| s.err.clone()),
    ]
    .into_iter()
    .flatten()
    .filter(|m| !m.is_empty())
    .collect();
    SwarmTask {
        id: text(t.id.as_ref()),
        service_id: text(t.service_id.as_ref()),
        slot: t.slot,
        node_id: text(t.node_id.as_ref()),
        desired_state: text(t.desired_state.as_ref()),
        state: text(status.and_then(|s| s.state.as_ref())),
        image: text(
            t.spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.image.as_ref()),
        ),
        container_id: status
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.clone()),
        message: message.join(": "),
        timestamp: text(status.and_then(|s| s.timestamp.as_ref())),
    }
}

/// What to inspect: one environment's stack, from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmScope {
    /// This node's name (from its identity).
    pub node: String,
    /// The lab's name.
    pub lab: String,
    /// The environment.
    pub env: String,
    /// The stack's name.
    pub stack: String,
}

/// Gathers the document through the read-only facade; `engine` is the facade or why it
/// could not connect (the document is still produced, so the host can say which fact is
/// missing).
pub fn gather(
    scope: &SwarmScope,
    engine: Result<&ReadOnlyDocker, String>,
    declared: Fact<Declared>,
) -> SwarmInspection {
    let mut doc = SwarmInspection {
        node: scope.node.clone(),
        lab: scope.lab.clone(),
        env: scope.env.clone(),
        stack: scope.stack.clone(),
        engine: Fact::Error("not asked".into()),
        declared,
        nodes: Fact::Error("not asked".into()),
        services: Fact::Error("not asked".into()),
        tasks: Fact::Error("not asked".into()),
    };
    let docker = match engine {
        Ok(d) => d,
        Err(why) => {
            doc.engine = Fact::Error(why.clone());
            doc.nodes = Fact::Error(why.clone());
            doc.services = Fact::Error(why.clone());
            doc.tasks = Fact::Error(why);
            return doc;
        }
    };
    doc.engine = match docker.version() {
        Ok(v) => Fact::Found(Engine {
            version: v.version.unwrap_or_default(),
            api_version: docker.api_version(),
        }),
        Err(e) => Fact::Error(e.to_string()),
    };
    let stack_label = format!("{NAMESPACE_LABEL}={}", scope.stack);
    doc.nodes = match docker.list_nodes() {
        Ok(nodes) => Fact::Found(nodes.iter().map(node_fact).collect()),
        Err(e) => Fact::Error(format!(
            "{e} (only a swarm manager lists nodes: is this node the manager, is the swarm formed? make up MODE=swarm)"
        )),
    };
    doc.services = match docker.list_services(&[&stack_label]) {
        Ok(s) => Fact::Found(s.iter().map(|s| service_fact(s, &scope.stack)).collect()),
        Err(e) => Fact::Error(e.to_string()),
    };
    doc.tasks = match docker.list_tasks(&[&stack_label]) {
        Ok(t) => Fact::Found(t.iter().map(task_fact).collect()),
        Err(e) => Fact::Error(e.to_string()),
    };
    doc
}
