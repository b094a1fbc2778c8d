//! Swarm mode: the lab's nodes form one Docker Swarm (control the manager, the workers
//! joined, each node labelled with its role), a lab registry runs on control, and an
//! environment's stack is deployed with `docker stack deploy` from the same compose file.
//!
//! Docker is the scheduler; this module only forms, labels, starts the registry and hands
//! over the stack file. Everything is idempotent: `form` on a formed swarm changes nothing.
//! Decisions (join, keep, leave first) are pure functions over what `docker info` reports.
//!
//! For callers (verify, drills): [`Swarm::of`] gives the manager's [`NodeHandle`] without
//! changing anything; [`form`], [`leave`] and [`stack::Stack`] change the lab.

pub mod registry;
pub mod render;
pub mod stack;

use std::time::{Duration, Instant};

use stackpilot_core::config::Role;
use stackpilot_core::node::NodeHandle;
use stackpilot_core::transport::Transport;

use crate::error::{Error, failed};

pub use registry::Registry;
pub use stack::Stack;

/// The node label carrying the inventory role (`control`, `worker`): placement reads it.
pub const ROLE_LABEL: &str = "io.stackpilot.role";
/// The node label carrying the inventory name of the node.
pub const NODE_LABEL: &str = "io.stackpilot.node";
/// The swarm's control-plane port on the manager.
pub const MANAGER_PORT: u16 = 2377;

/// How long a deployed stack may take until every replica runs.
pub const CONVERGE: Duration = Duration::from_secs(180);

/// How long one docker CLI call in a node may take.
pub(crate) const CALL: Duration = Duration::from_secs(60);

/// The lab's swarm as the inventory describes it: the manager (the control node) and every
/// member. Making one changes nothing; [`form`] makes the engines agree with it.
#[derive(Debug, Clone)]
pub struct Swarm {
    /// The manager: the inventory's control node.
    pub manager: NodeHandle,
    /// Every node, manager included, in inventory order.
    pub nodes: Vec<NodeHandle>,
}

impl Swarm {
    /// The swarm of these nodes (every node of the lab, from `lab::resolve_all`).
    pub fn of(nodes: Vec<NodeHandle>) -> Result<Swarm, Error> {
        let manager = nodes
            .iter()
            .find(|n| n.role == Role::Control)
            .cloned()
            .ok_or_else(|| {
                failed(
                    "swarm",
                    "find the manager",
                    "no node with role = \"control\" among the nodes given",
                )
            })?;
        Ok(Swarm { manager, nodes })
    }

    /// The swarm of every node of the checkout at `root` (resolved by `lab::resolve_all`).
    pub fn of_lab(root: &std::path::Path, cfg: &stackpilot_core::Config) -> Result<Swarm, Error> {
        Swarm::of(crate::resolve_all(root, cfg)?)
    }

    /// The worker nodes.
    pub fn workers(&self) -> impl Iterator<Item = &NodeHandle> {
        self.nodes.iter().filter(|n| n.role == Role::Worker)
    }

    /// The manager's transport (every swarm-wide command runs there).
    pub fn manager_transport(&self) -> Result<&Transport, Error> {
        Ok(self.manager.transport()?)
    }

    /// `address:port` the manager listens on for joining nodes.
    pub fn manager_addr(&self) -> String {
        format!("{}:{MANAGER_PORT}", self.manager.address)
    }

    /// The lab registry on the manager.
    pub fn registry(&self) -> Registry {
        Registry::on(&self.manager)
    }
}

/// What a node's engine says about its swarm membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// `inactive`, `pending`, `active`, `error`, `locked`.
    pub state: String,
    /// Whether it is a manager.
    pub manager: bool,
    /// Its node id in the swarm (empty when inactive).
    pub node_id: String,
    /// The managers it knows (`addr:port`).
    pub managers: Vec<String>,
}

/// The `docker info` template [`Membership::parse`] reads.
const MEMBERSHIP_FORMAT: &str = "{{.Swarm.LocalNodeState}}|{{.Swarm.ControlAvailable}}|{{.Swarm.NodeID}}|{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}";

impl Membership {
    /// Parses the output of `docker info --format MEMBERSHIP_FORMAT`.
    pub fn parse(text: &str) -> Membership {
        let mut parts = text.trim().split('|');
        let mut next = || parts.next().unwrap_or_default().trim().to_string();
        let state = next();
        let manager = next() == "true";
        let node_id = next();
        let managers = next().split_whitespace().map(String::from).collect();
        Membership {
            state,
            manager,
            node_id,
            managers,
        }
    }

    /// Reads a node's membership.
    pub fn of(node: &NodeHandle) -> Result<Membership, Error> {
        let out = node
            .transport()?
            .output(&["docker", "info", "--format", MEMBERSHIP_FORMAT], CALL)?;
        Ok(Membership::parse(&out))
    }
}

/// What formation does with one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It already is what it should be.
    Keep,
    /// Initialise (manager) or join (worker).
    Create,
    /// Leave a swarm that is not this lab's (or a broken one) first, then create.
    Replace,
}

/// The manager: kept when it manages an active swarm, created when in none, else replaced.
pub fn manager_action(m: &Membership) -> Action {
    match (m.state.as_str(), m.manager) {
        ("active", true) => Action::Keep,
        ("inactive", _) => Action::Create,
        _ => Action::Replace,
    }
}

/// A worker: kept when it is an active worker of `manager_addr` that the manager lists as
/// a member (`members`: node ids the manager knows), created when in no swarm, else replaced.
pub fn worker_action(m: &Membership, manager_addr: &str, members: &[String]) -> Action {
    match m.state.as_str() {
        "inactive" => Action::Create,
        "active"
            if !m.manager
                && m.managers.iter().any(|a| a == manager_addr)
                && members.contains(&m.node_id) =>
        {
            Action::Keep
        }
        _ => Action::Replace,
    }
}

/// One line of `docker node ls` on the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// `Ready` or `Down`.
    pub status: String,
}

/// The swarm's members, as the manager lists them.
pub fn members(swarm: &Swarm) -> Result<Vec<Member>, Error> {
    let out = swarm.manager_transport()?.output(
        &[
            "docker",
            "node",
            "ls",
            "--format",
            "{{.ID}}|{{.Hostname}}|{{.Status}}",
        ],
        CALL,
    )?;
    Ok(parse_members(&out))
}

/// Parses `docker node ls --format '{{.ID}}|{{.Hostname}}|{{.Status}}'`.
pub fn parse_members(text: &str) -> Vec<Member> {
    text.lines()
        .filter_map(|l| {
            let mut p = l.trim().split('|');
            Some(Member {
                id: p.next()?.to_string(),
                hostname: p.next()?.to_string(),
                status: p.next()?.to_string(),
            })
        })
        .collect()
}

/// Forms the swarm idempotently: each engine trusts the lab registry, the manager runs an
/// active swarm, every worker is joined to it, members the inventory no longer has (a
/// destroyed node's old entry) are removed, and every node carries its role and name labels.
/// Prints one line per node saying what changed.
pub fn form(swarm: &Swarm) -> Result<(), Error> {
    let started = Instant::now();
    let registry = swarm.registry();
    for node in &swarm.nodes {
        registry.trust(node)?;
    }
    let t = swarm.manager_transport()?;
    let m = Membership::of(&swarm.manager)?;
    let action = manager_action(&m);
    if action == Action::Replace {
        t.output(&["docker", "swarm", "leave", "--force"], CALL)?;
    }
    if action != Action::Keep {
        let addr = swarm.manager.address.to_string();
        t.output(
            &[
                "docker",
                "swarm",
                "init",
                "--advertise-addr",
                &addr,
                "--listen-addr",
                &swarm.manager_addr(),
            ],
            CALL,
        )?;
    }
    report(&swarm.manager, action, "manager");
    let token = t
        .output(&["docker", "swarm", "join-token", "-q", "worker"], CALL)?
        .trim()
        .to_string();
    let known: Vec<String> = members(swarm)?.into_iter().map(|m| m.id).collect();
    let mut ids = vec![(Membership::of(&swarm.manager)?.node_id, &swarm.manager)];
    for node in swarm.workers() {
        let m = Membership::of(node)?;
        let action = worker_action(&m, &swarm.manager_addr(), &known);
        let wt = node.transport()?;
        if action == Action::Replace {
            wt.output(&["docker", "swarm", "leave", "--force"], CALL)?;
        }
        if action != Action::Keep {
            let addr = node.address.to_string();
            wt.output(
                &[
                    "docker",
                    "swarm",
                    "join",
                    "--token",
                    &token,
                    "--advertise-addr",
                    &addr,
                    &swarm.manager_addr(),
                ],
                CALL,
            )?;
        }
        report(node, action, "worker");
        ids.push((Membership::of(node)?.node_id, node));
    }
    // A node destroyed and recreated joins as a new member; its old entry stays Down.
    for stale in members(swarm)?
        .iter()
        .filter(|m| !ids.iter().any(|(id, _)| *id == m.id))
    {
        t.output(&["docker", "node", "rm", "--force", &stale.id], CALL)?;
        eprintln!(
            "==> swarm: removed stale member {} ({}, {})",
            stale.id, stale.hostname, stale.status
        );
    }
    for (id, node) in &ids {
        label(t, id, node)?;
    }
    eprintln!(
        "<== swarm: {} nodes formed around {} in {:.1}s",
        ids.len(),
        swarm.manager.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn report(node: &NodeHandle, action: Action, as_what: &str) {
    let what = match action {
        Action::Keep => "no change",
        Action::Create => "joined",
        Action::Replace => "left a stale swarm, then joined",
    };
    eprintln!("==> swarm: {} ({as_what}): {what}", node.name);
}

/// Sets the role and name labels of a member unless it has them.
fn label(t: &Transport, id: &str, node: &NodeHandle) -> Result<(), Error> {
    let role = match node.role {
        Role::Control => "control",
        Role::Worker => "worker",
    };
    let format = format!(
        "{{{{index .Spec.Labels \"{ROLE_LABEL}\"}}}}|{{{{index .Spec.Labels \"{NODE_LABEL}\"}}}}"
    );
    let have = t.output(
        &["docker", "node", "inspect", "--format", &format, id],
        CALL,
    )?;
    if have.trim() == format!("{role}|{}", node.name) {
        return Ok(());
    }
    t.output(
        &[
            "docker",
            "node",
            "update",
            "--label-add",
            &format!("{ROLE_LABEL}={role}"),
            "--label-add",
            &format!("{NODE_LABEL}={}", node.name),
            id,
        ],
        CALL,
    )?;
    eprintln!("==> swarm: {} labelled {ROLE_LABEL}={role}", node.name);
    Ok(())
}

/// Every node leaves the swarm (workers first, then the manager with `--force`); nodes in
/// no swarm are skipped. Nodes without a transport (not created) are skipped too.
pub fn leave(swarm: &Swarm) -> Result<(), Error> {
    // Workers first: a manager leaving first would leave them in a swarm without one.
    let order = swarm
        .nodes
        .iter()
        .filter(|n| n.role == Role::Worker)
        .chain(swarm.nodes.iter().filter(|n| n.role == Role::Control))
        .filter(|n| n.transport.is_some());
    for node in order {
        let m = Membership::of(node)?;
        if m.state == "inactive" {
            continue;
        }
        node.transport()?
            .output(&["docker", "swarm", "leave", "--force"], CALL)?;
        eprintln!("==> swarm: {} left the swarm", node.name);
    }
    Ok(())
}

/// `make up`'s swarm phase: [`form`], then the lab registry running on the manager from
/// the locked image.
pub fn form_with_registry(swarm: &Swarm, root: &std::path::Path) -> Result<(), Error> {
    form(swarm)?;
    let path = stackpilot_core::images::ImageLock::path(root);
    let lock = stackpilot_core::images::ImageLock::read(&path)?.ok_or_else(|| {
        failed(
            "swarm",
            &format!("read {}", path.display()),
            "no image lock: restore it (git checkout -- infra/images/images.lock)",
        )
    })?;
    swarm.registry().ensure(&lock, &path)
}

/// What `destroy` does before the nodes go: every environment's stack removed, the
/// registry and its volume removed, every node out of the swarm. Nodes not created or not
/// running are skipped (their engine volume goes with them).
pub fn teardown(swarm: &Swarm, cfg: &stackpilot_core::Config) -> Result<(), Error> {
    if Membership::of(&swarm.manager).is_ok() {
        for env in cfg.environments.keys() {
            Stack::for_env(cfg, env)?.remove(swarm)?;
        }
        swarm.registry().remove()?;
    }
    let running = Swarm {
        manager: swarm.manager.clone(),
        nodes: swarm
            .nodes
            .iter()
            .filter(|n| Membership::of(n).is_ok())
            .cloned()
            .collect(),
    };
    leave(&running)
}

/// Before `nodes` halt (`lab halt`, `make halt`): when the manager is among them, every
/// environment's stack is removed (the swarm stays formed for the next `up`; a worker
/// halted alone keeps its replica's place, as a lost node would). A failure is reported and
/// the halt goes on: halting must not depend on the engine it stops.
pub fn before_halt(root: &std::path::Path, cfg: &stackpilot_core::Config, nodes: &[String]) {
    let run = || -> Result<(), Error> {
        let swarm = Swarm::of_lab(root, cfg)?;
        if !nodes.contains(&swarm.manager.name) || Membership::of(&swarm.manager).is_err() {
            return Ok(());
        }
        for env in cfg.environments.keys() {
            Stack::for_env(cfg, env)?.remove(&swarm)?;
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("==> swarm: stacks not removed before the halt: {e}");
    }
}

/// Before `nodes` are destroyed (`lab destroy`, `make destroy`): with the manager among
/// them, [`teardown`]; else each of them leaves the swarm (the manager drops its entry at
/// the next `form`). A failure is reported and the destroy goes on: the node's engine
/// volume, which holds its swarm state, is removed with it.
pub fn before_destroy(root: &std::path::Path, cfg: &stackpilot_core::Config, nodes: &[String]) {
    let run = || -> Result<(), Error> {
        let mut swarm = Swarm::of_lab(root, cfg)?;
        if nodes.contains(&swarm.manager.name) {
            return teardown(&swarm, cfg);
        }
        swarm
            .nodes
            .retain(|n| nodes.contains(&n.name) && Membership::of(n).is_ok());
        leave(&swarm)
    };
    if let Err(e) = run() {
        eprintln!(
            "==> swarm: not left cleanly before the destroy (the engine volumes go with the nodes): {e}"
        );
    }
}

/// Polls `check` every half second until it answers `Ok(true)` or `limit` passes.
pub(crate) fn wait_until(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<bool, Error>,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let last = check();
        if matches!(last, Ok(true)) {
            return Ok(());
        }
        if started.elapsed() > limit {
            let why = match last {
                Err(e) => e.to_string(),
                _ => "still not so".into(),
            };
            return Err(failed(
                "swarm",
                what,
                &format!("not within {}s: {why}", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Membership {
        Membership::parse(text)
    }

    #[test]
    fn membership_is_read_from_docker_info() {
        let w = m("active|false|abc|10.0.0.10:2377 \n");
        assert_eq!(w.state, "active");
        assert!(!w.manager);
        assert_eq!(w.node_id, "abc");
        assert_eq!(w.managers, ["10.0.0.10:2377"]);
        assert_eq!(m("inactive|false||").node_id, "");
    }

    #[test]
    fn a_manager_is_kept_created_or_replaced() {
        assert_eq!(manager_action(&m("active|true|a|")), Action::Keep);
        assert_eq!(manager_action(&m("inactive|false||")), Action::Create);
        assert_eq!(manager_action(&m("active|false|a|x:2377")), Action::Replace);
        assert_eq!(manager_action(&m("error|false|a|")), Action::Replace);
    }

    #[test]
    fn a_worker_is_kept_only_in_this_swarm_as_a_known_member() {
        let here = "10.0.0.10:2377";
        let known = vec!["w1".to_string()];
        let joined = m("active|false|w1|10.0.0.10:2377 ");
        assert_eq!(worker_action(&joined, here, &known), Action::Keep);
        assert_eq!(
            worker_action(&m("inactive|false||"), here, &known),
            Action::Create
        );
        let elsewhere = m("active|false|w1|10.9.9.9:2377 ");
        assert_eq!(worker_action(&elsewhere, here, &known), Action::Replace);
        let forgotten = m("active|false|w9|10.0.0.10:2377 ");
        assert_eq!(
            worker_action(&forgotten, here, &known),
            Action::Replace,
            "the manager no longer lists it"
        );
        let a_manager = m("active|true|w1|10.0.0.10:2377 ");
        assert_eq!(worker_action(&a_manager, here, &known), Action::Replace);
    }

    #[test]
    fn members_are_read_from_node_ls() {
        let got = parse_members("a|control|Ready\nb|worker1|Down\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].hostname, "worker1");
        assert_eq!(got[1].status, "Down");
    }
}
