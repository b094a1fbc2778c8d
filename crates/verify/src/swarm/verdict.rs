//! Swarm-mode verdicts: a pure function from what the manager reported and what the host
//! probed to the same [`Report`] compose mode gives (table, JSON, JUnit).
//!
//! Layers, in order, the first failed one marking the layers above it "not run":
//! 1 swarm (the manager answers, is itself and leads; every lab node Ready and Active),
//! 2 services (exactly the compose file's services; every desired replica running, on the
//! node it should; no update in flight), 3 tcp and 4 http on every node that should publish
//! the api, 5 provenance (every api replica runs the deployed registry digest). The
//! scheduler's own account comes first: a drained node or a missing task is named as such,
//! not as the closed port it leads to.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use stackpilot_core::http::{HttpProbe, TcpOutcome, TcpProbe};

use crate::inspection::Fact;
use crate::report::{Check, Report, ServiceState, Verdict};
use crate::verdict::{API_SERVICE, json_field, no_answer, one_line, short};

use super::inspection::{SwarmInspection, SwarmNode, SwarmService, SwarmTask};

/// A lab node the swarm must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedNode {
    /// The inventory name.
    pub name: String,
}

/// The app the host deployed (its deployment record): what every api replica must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedApp {
    /// The image reference services pin, `<registry>/<repo>@sha256:…`.
    pub image: String,
    /// The build id of that image (what `/version` reports).
    pub build_id: String,
}

/// What the verified swarm and stack must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmExpect {
    /// The manager's inventory name (where `verify inspect-swarm` runs).
    pub manager: String,
    /// The lab's name.
    pub lab: String,
    /// The environment.
    pub env: String,
    /// The stack's name.
    pub stack: String,
    /// Every lab node, all of which must be swarm members, Ready and Active.
    pub nodes: Vec<ExpectedNode>,
    /// Per compose service, the nodes that must each run exactly one of its replicas.
    pub placement: BTreeMap<String, Vec<String>>,
    /// What was deployed; `None` when the host has no record (provenance then fails).
    pub deployed: Option<DeployedApp>,
}

impl SwarmExpect {
    /// The nodes that must publish the api's port.
    pub fn api_nodes(&self) -> &[String] {
        self.placement
            .get(API_SERVICE)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// How running `verify inspect-swarm` on the manager went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerOutcome {
    /// The transport could not run anything on the manager.
    Unreachable(String),
    /// The command ran but printed no document.
    Failed {
        /// Its exit code (`None` when killed or timed out).
        code: Option<i32>,
        /// What it said.
        stderr: String,
    },
    /// The document.
    Inspected(Box<SwarmInspection>),
}

/// The manager-side observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerObservation {
    /// The transport, for messages.
    pub via: String,
    /// Round trip, ms.
    pub elapsed_ms: u64,
    /// What came back.
    pub outcome: ManagerOutcome,
}

/// What the host probed on one node's published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProbes {
    /// The node.
    pub node: String,
    /// `address:port` probed.
    pub addr: SocketAddr,
    /// Layer 3.
    pub tcp: Option<TcpProbe>,
    /// `GET /health`.
    pub health: Option<HttpProbe>,
    /// `GET /ready`.
    pub ready: Option<HttpProbe>,
    /// `GET /version`.
    pub version: Option<HttpProbe>,
}

/// Everything observed; `None`/empty for what a failed lower layer kept from being observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmObservations {
    /// Layers 1, 2 and 5.
    pub manager: Option<ManagerObservation>,
    /// Layers 3 and 4, one entry per api node.
    pub probes: Vec<NodeProbes>,
}

/// Layer names, by number.
const LAYER_NAMES: [&str; 5] = ["swarm", "services", "tcp", "http", "provenance"];

/// A check before placement: id, verdict, reason, timing.
struct Eval {
    id: String,
    verdict: Verdict,
    reason: String,
    ms: Option<u64>,
}

fn eval(id: impl Into<String>, verdict: Verdict, reason: impl Into<String>) -> Eval {
    Eval {
        id: id.into(),
        verdict,
        reason: reason.into(),
        ms: None,
    }
}

fn pass(id: impl Into<String>, reason: impl Into<String>) -> Eval {
    eval(id, Verdict::Pass, reason)
}

fn fail(id: impl Into<String>, reason: impl Into<String>) -> Eval {
    eval(id, Verdict::Fail, reason)
}

fn not_run(id: impl Into<String>, reason: impl Into<String>) -> Eval {
    eval(id, Verdict::NotRun, format!("not run: {}", reason.into()))
}

impl Eval {
    fn timed(mut self, ms: u64) -> Eval {
        self.ms = Some(ms);
        self
    }
}

/// The check ids of layer `n`, for a layer that is not run.
fn layer_ids(n: u8, expect: &SwarmExpect) -> Vec<String> {
    let per_node = |checks: &[&str]| -> Vec<String> {
        expect
            .api_nodes()
            .iter()
            .flat_map(|node| checks.iter().map(move |c| format!("{c}@{node}")))
            .collect()
    };
    match n {
        1 => [
            "swarm.manager-reachable",
            "swarm.manager-identity",
            "swarm.manager",
            "swarm.nodes",
        ]
        .map(String::from)
        .to_vec(),
        2 => [
            "services.declared",
            "services.replicas",
            "services.placement",
            "services.update",
        ]
        .map(String::from)
        .to_vec(),
        3 => per_node(&["tcp.connect"]),
        4 => per_node(&["http.health", "http.ready", "http.version"]),
        _ => ["provenance.service-image", "provenance.replica-digest"]
            .map(String::from)
            .to_vec(),
    }
}

/// Whether layer `n` failed (a check failed or was not run).
pub fn layer_failed(n: u8, expect: &SwarmExpect, obs: &SwarmObservations) -> bool {
    evaluate(expect, obs, 0)
        .checks
        .iter()
        .any(|c| c.layer == n && matches!(c.verdict, Verdict::Fail | Verdict::NotRun))
}

/// Turns the observations into the report. Pure.
pub fn evaluate(expect: &SwarmExpect, obs: &SwarmObservations, elapsed_ms: u64) -> Report {
    let doc = match obs.manager.as_ref().map(|m| &m.outcome) {
        Some(ManagerOutcome::Inspected(d)) => Some(d.as_ref()),
        _ => None,
    };
    let mut checks = Vec::new();
    let mut blocked: Option<String> = None;
    for n in 1..=5u8 {
        let name = LAYER_NAMES[usize::from(n - 1)];
        let evals = match &blocked {
            Some(why) => layer_ids(n, expect)
                .into_iter()
                .map(|id| not_run(id, why.clone()))
                .collect(),
            None => match (n, doc) {
                (1, _) => swarm_layer(expect, obs.manager.as_ref()),
                (_, None) => layer_ids(n, expect)
                    .into_iter()
                    .map(|id| not_run(id, "no manager inspection"))
                    .collect(),
                (2, Some(d)) => services_layer(expect, d),
                (3, Some(_)) => tcp_layer(expect, &obs.probes),
                (4, Some(_)) => http_layer(expect, &obs.probes),
                (_, Some(d)) => provenance_layer(expect, d),
            },
        };
        for e in evals {
            if blocked.is_none() && matches!(e.verdict, Verdict::Fail | Verdict::NotRun) {
                let cause = e.reason.split(';').next().unwrap_or_default();
                blocked = Some(format!("layer {n} ({name}) failed at {}: {cause}", e.id));
            }
            checks.push(Check {
                id: e.id,
                layer: n,
                layer_name: name.to_string(),
                verdict: e.verdict,
                reason: e.reason,
                ms: e.ms,
            });
        }
    }
    let passed_layer = |n: u8| {
        checks
            .iter()
            .filter(|c| c.layer == n)
            .all(|c| c.verdict == Verdict::Pass)
    };
    let passed_ids = |prefix: &str| {
        let mut of = checks
            .iter()
            .filter(|c| c.id.starts_with(prefix))
            .peekable();
        of.peek().is_some() && of.all(|c| c.verdict == Verdict::Pass)
    };
    let passed = !checks.is_empty()
        && checks
            .iter()
            .all(|c| matches!(c.verdict, Verdict::Pass | Verdict::Unverified));
    let summary = ServiceState {
        reachable: passed_layer(1),
        tcp_reachable: passed_ids("tcp.connect@"),
        alive: passed_ids("http.health@"),
        ready: passed_ids("http.ready@"),
        healthy: passed_layer(2),
        usable: passed,
    };
    Report {
        node: expect.manager.clone(),
        env: expect.env.clone(),
        target: format!(
            "stack {} on the swarm of {} ({} nodes)",
            expect.stack,
            expect.manager,
            expect.nodes.len()
        ),
        passed,
        summary,
        checks,
        elapsed_ms,
    }
}

fn swarm_layer(expect: &SwarmExpect, manager: Option<&ManagerObservation>) -> Vec<Eval> {
    let ids = layer_ids(1, expect);
    let Some(m) = manager else {
        return ids
            .into_iter()
            .map(|id| not_run(id, "the manager was not contacted"))
            .collect();
    };
    let reached = |e: Eval| e.timed(m.elapsed_ms);
    let doc = match &m.outcome {
        ManagerOutcome::Unreachable(why) => {
            return vec![
                reached(fail(
                    &ids[0],
                    format!(
                        "manager '{}' not reachable via {}: {}",
                        expect.manager,
                        m.via,
                        one_line(why)
                    ),
                )),
                not_run(&ids[1], "the manager is not reachable"),
                not_run(&ids[2], "the manager is not reachable"),
                not_run(&ids[3], "the manager is not reachable"),
            ];
        }
        ManagerOutcome::Failed { code, stderr } => {
            let code = code.map_or("no exit code (killed)".into(), |c| format!("exit {c}"));
            let said = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .map_or(String::new(), |l| format!(": {}", l.trim()));
            return vec![
                reached(pass(
                    &ids[0],
                    format!("node-side command ran via {}", m.via),
                )),
                fail(
                    &ids[1],
                    format!(
                        "`verify inspect-swarm` on '{}' printed no document ({code}){said}",
                        expect.manager
                    ),
                ),
                not_run(&ids[2], "no manager inspection"),
                not_run(&ids[3], "no manager inspection"),
            ];
        }
        ManagerOutcome::Inspected(d) => d,
    };
    let identity = if doc.node != expect.manager || doc.lab != expect.lab {
        fail(
            &ids[1],
            format!(
                "expected node '{}' of lab '{}', found node '{}' of lab '{}': the transport reaches another node",
                expect.manager, expect.lab, doc.node, doc.lab
            ),
        )
    } else if doc.env != expect.env || doc.stack != expect.stack {
        fail(
            &ids[1],
            format!(
                "expected env '{}' (stack {}), the manager inspected env '{}' (stack {})",
                expect.env, expect.stack, doc.env, doc.stack
            ),
        )
    } else {
        pass(&ids[1], format!("node '{}' of lab '{}'", doc.node, doc.lab))
    };
    let (manager, nodes) = match &doc.nodes {
        Fact::Found(nodes) => (
            manager_check(&ids[2], &expect.manager, nodes),
            nodes_check(&ids[3], expect, nodes),
        ),
        Fact::Absent(why) | Fact::Error(why) => (
            fail(
                &ids[2],
                format!(
                    "the manager's engine lists no swarm nodes: {}",
                    one_line(why)
                ),
            ),
            fail(&ids[3], "no swarm node list"),
        ),
    };
    vec![
        reached(pass(
            &ids[0],
            format!("node-side command ran via {}", m.via),
        )),
        identity,
        manager,
        nodes,
    ]
}

/// The entry of `name` among `nodes`; a node that left and joined again keeps a stale
/// `down` entry under the same name, so a ready one wins.
fn node_named<'a>(nodes: &'a [SwarmNode], name: &str) -> Option<&'a SwarmNode> {
    let mut of = nodes.iter().filter(|n| n.name() == name);
    let first = of.next()?;
    Some(
        std::iter::once(first)
            .chain(of)
            .find(|n| n.state == "ready")
            .unwrap_or(first),
    )
}

fn manager_check(id: &str, manager: &str, nodes: &[SwarmNode]) -> Eval {
    match node_named(nodes, manager) {
        None => fail(
            id,
            format!("the swarm has no node '{manager}': the manager is not a member of it"),
        ),
        Some(n) if n.role != "manager" => fail(
            id,
            format!("'{manager}' is a swarm {}, expected the manager", n.role),
        ),
        Some(n) if n.reachability.as_deref() != Some("reachable") => fail(
            id,
            format!(
                "manager '{manager}' reports reachability {}",
                n.reachability.as_deref().unwrap_or("none")
            ),
        ),
        Some(n) if !n.leader => fail(
            id,
            format!("manager '{manager}' is reachable but does not lead the swarm"),
        ),
        Some(n) => pass(
            id,
            format!("'{manager}' is the swarm's reachable leader ({})", n.addr),
        ),
    }
}

fn nodes_check(id: &str, expect: &SwarmExpect, nodes: &[SwarmNode]) -> Eval {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for want in &expect.nodes {
        match node_named(nodes, &want.name) {
            None => bad.push(format!("{} is not a member of the swarm", want.name)),
            Some(n) if n.state != "ready" => {
                bad.push(format!("{} is {} (expected ready)", want.name, n.state))
            }
            Some(n) if n.availability != "active" => bad.push(format!(
                "{} is ready but {} (expected active: the scheduler places nothing there)",
                want.name, n.availability
            )),
            Some(_) => ok.push(want.name.as_str()),
        }
    }
    if bad.is_empty() {
        pass(id, format!("{} ready and active", ok.join(", ")))
    } else {
        fail(id, bad.join("; "))
    }
}

fn services_layer(expect: &SwarmExpect, doc: &SwarmInspection) -> Vec<Eval> {
    let ids = layer_ids(2, expect);
    let (services, tasks, nodes) = match (&doc.services, &doc.tasks, &doc.nodes) {
        (Fact::Found(s), Fact::Found(t), Fact::Found(n)) => (s, t, n),
        (s, t, _) => {
            let why = [s.why_missing(), t.why_missing()]
                .into_iter()
                .flatten()
                .map(one_line)
                .collect::<Vec<_>>()
                .join("; ");
            let why = format!("the manager could not list the stack's services or tasks: {why}");
            return ids.into_iter().map(|id| fail(id, why.clone())).collect();
        }
    };
    let node_name = |node_id: &str| -> String {
        nodes
            .iter()
            .find(|n| n.id == node_id)
            .map_or_else(|| format!("node {node_id}"), |n| n.name().to_string())
    };
    let running_of = |s: &SwarmService| -> Vec<&SwarmTask> {
        tasks
            .iter()
            .filter(|t| t.service_id == s.id && t.running())
            .collect()
    };
    let declared = match &doc.declared {
        Fact::Found(d) if d.services.is_empty() => fail(
            &ids[0],
            format!("`{} config --services` lists no services", d.command),
        ),
        Fact::Found(d) => {
            let mut found: Vec<&str> = services.iter().map(|s| s.service.as_str()).collect();
            found.sort_unstable();
            let missing: Vec<&str> = d
                .services
                .iter()
                .map(String::as_str)
                .filter(|s| !found.contains(s))
                .collect();
            let extra: Vec<&str> = found
                .iter()
                .copied()
                .filter(|s| !d.services.iter().any(|x| x == s))
                .collect();
            if missing.is_empty() && extra.is_empty() {
                pass(
                    &ids[0],
                    format!(
                        "stack {} has exactly the compose file's services: {}",
                        doc.stack,
                        found.join(", ")
                    ),
                )
            } else {
                let mut why = Vec::new();
                if !missing.is_empty() {
                    why.push(format!("missing from the stack: {}", missing.join(", ")));
                }
                if !extra.is_empty() {
                    why.push(format!(
                        "in the stack but not in the compose file: {}",
                        extra.join(", ")
                    ));
                }
                fail(
                    &ids[0],
                    format!(
                        "stack {}: {}; the compose file declares {}",
                        doc.stack,
                        why.join("; "),
                        d.services.join(", ")
                    ),
                )
            }
        }
        Fact::Absent(why) | Fact::Error(why) => fail(
            &ids[0],
            format!("cannot read the compose file's services: {}", one_line(why)),
        ),
    };
    let mut run_ok = Vec::new();
    let mut run_bad = Vec::new();
    for s in services {
        let running = running_of(s);
        match s.replicas {
            Some(want) if running.len() as u64 == want => {
                run_ok.push(format!("{} {}/{want}", s.service, running.len()))
            }
            Some(want) => {
                // Why the others are not running: the newest task of each slot that is not.
                let mut why: Vec<String> = tasks
                    .iter()
                    .filter(|t| {
                        t.service_id == s.id && !t.running() && t.desired_state == "running"
                    })
                    .map(|t| {
                        format!(
                            "task {} {} ({})",
                            t.slot.map_or("-".into(), |s| s.to_string()),
                            t.state,
                            if t.message.is_empty() {
                                "no message"
                            } else {
                                &t.message
                            }
                        )
                    })
                    .collect();
                why.dedup();
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join(", "))
                };
                run_bad.push(format!(
                    "{} has {} of {want} replicas running{why}",
                    s.service,
                    running.len()
                ))
            }
            None => run_ok.push(format!("{} global, {} running", s.service, running.len())),
        }
    }
    let replicas = if services.is_empty() {
        fail(&ids[1], format!("stack {} has no services", doc.stack))
    } else if run_bad.is_empty() {
        pass(&ids[1], run_ok.join(", "))
    } else {
        fail(&ids[1], run_bad.join("; "))
    };
    let mut place_ok = Vec::new();
    let mut place_bad = Vec::new();
    for (service, want) in &expect.placement {
        let Some(s) = services.iter().find(|s| &s.service == service) else {
            place_bad.push(format!("{service}: no such service in stack {}", doc.stack));
            continue;
        };
        let mut on: Vec<String> = running_of(s)
            .iter()
            .map(|t| node_name(&t.node_id))
            .collect();
        on.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        if on == want_sorted {
            place_ok.push(format!("{service} on {}", on.join(", ")));
        } else {
            let missing: Vec<&str> = want_sorted
                .iter()
                .filter(|n| !on.contains(n))
                .map(String::as_str)
                .collect();
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!("no running replica on {}", missing.join(", ")));
            }
            let mut seen: Vec<&str> = Vec::new();
            for n in &on {
                if !want_sorted.contains(n) {
                    why.push(format!("a replica runs on {n}, where it should not"));
                } else if seen.contains(&n.as_str()) {
                    why.push(format!("more than one replica on {n}"));
                }
                seen.push(n);
            }
            place_bad.push(format!(
                "{service}: expected one running replica on each of {}; {}",
                want_sorted.join(", "),
                why.join(", ")
            ));
        }
    }
    let placement = if place_bad.is_empty() {
        pass(&ids[2], place_ok.join("; "))
    } else {
        fail(&ids[2], place_bad.join("; "))
    };
    let in_flight: Vec<String> = services
        .iter()
        .filter_map(|s| match s.update_state.as_deref() {
            Some(st @ ("updating" | "paused" | "rollback_started" | "rollback_paused")) => {
                Some(format!("{} update {st}", s.service))
            }
            _ => None,
        })
        .collect();
    let update = if in_flight.is_empty() {
        pass(&ids[3], "no update in progress or paused")
    } else {
        fail(&ids[3], in_flight.join(", "))
    };
    vec![declared, replicas, placement, update]
}

fn probe_of<'a>(probes: &'a [NodeProbes], node: &str) -> Option<&'a NodeProbes> {
    probes.iter().find(|p| p.node == node)
}

fn tcp_layer(expect: &SwarmExpect, probes: &[NodeProbes]) -> Vec<Eval> {
    expect
        .api_nodes()
        .iter()
        .map(|node| {
            let id = format!("tcp.connect@{node}");
            let Some(tcp) = probe_of(probes, node).and_then(|p| p.tcp.as_ref()) else {
                return not_run(id, format!("no TCP probe of {node} was made"));
            };
            match &tcp.outcome {
                TcpOutcome::Connected => pass(id, format!("{node}: TCP connection to {} accepted", tcp.addr)),
                TcpOutcome::Refused => fail(
                    id,
                    format!("{node}: port closed, TCP connection to {} refused (host-mode publish: only a node running an api replica listens)", tcp.addr),
                ),
                TcpOutcome::Timeout => fail(
                    id,
                    format!("{node}: no TCP answer from {} within {} ms (port filtered or node down)", tcp.addr, tcp.elapsed_ms),
                ),
                TcpOutcome::Failed { detail } => {
                    fail(id, format!("{node}: TCP connection to {} failed: {detail}", tcp.addr))
                }
            }
            .timed(tcp.elapsed_ms)
        })
        .collect()
}

fn http_layer(expect: &SwarmExpect, probes: &[NodeProbes]) -> Vec<Eval> {
    let mut out = Vec::new();
    for node in expect.api_nodes() {
        let p = probe_of(probes, node);
        let get = |f: fn(&NodeProbes) -> Option<&HttpProbe>| p.and_then(f);
        let health_id = format!("http.health@{node}");
        out.push(match get(|p| p.health.as_ref()) {
            None => not_run(health_id, "/health was not requested"),
            Some(h) => match (no_answer(h), h.answer()) {
                (Some(why), _) => fail(health_id, format!("{node}: {why}")),
                (None, Some((200, body))) if json_field(body, "status").as_deref() == Some("alive") => {
                    pass(health_id, format!("{node}: alive"))
                }
                (None, a) => {
                    let (status, body) = a.unwrap_or((0, ""));
                    fail(
                        health_id,
                        format!("{node}: not alive: expected /health 200 {{\"status\":\"alive\"}}, found {status} {}", short(body)),
                    )
                }
            }
            .timed(h.elapsed_ms),
        });
        let ready_id = format!("http.ready@{node}");
        out.push(match get(|p| p.ready.as_ref()) {
            None => not_run(ready_id, "/ready was not requested"),
            Some(r) => match (no_answer(r), r.answer()) {
                (Some(why), _) => fail(ready_id, format!("{node}: {why}")),
                (None, Some((200, _))) => pass(ready_id, format!("{node}: ready")),
                (None, a) => {
                    let (status, body) = a.unwrap_or((0, ""));
                    let why = json_field(body, "reason").unwrap_or_else(|| short(body));
                    fail(
                        ready_id,
                        format!("{node}: not ready: /ready answered {status}: {why}"),
                    )
                }
            }
            .timed(r.elapsed_ms),
        });
        let version_id = format!("http.version@{node}");
        out.push(match get(|p| p.version.as_ref()) {
            None => not_run(version_id, "/version was not requested"),
            Some(v) => match (no_answer(v), v.answer()) {
                (Some(why), _) => fail(version_id, format!("{node}: {why}")),
                (None, Some((200, body))) => match (json_field(body, "build_id"), &expect.deployed) {
                    (None, _) => fail(version_id, format!("{node}: /version answered without a build_id: {}", short(body))),
                    (Some(_), None) => fail(version_id, no_record(&expect.env)),
                    (Some(found), Some(d)) if found == d.build_id => pass(
                        version_id,
                        format!("{node}: build_id {found} = the deployed build"),
                    ),
                    (Some(found), Some(d)) => fail(
                        version_id,
                        format!("{node}: expected build_id {} (the deployed build), /version reports {found}: this replica runs another build", d.build_id),
                    ),
                },
                (None, a) => {
                    let (status, body) = a.unwrap_or((0, ""));
                    fail(version_id, format!("{node}: expected /version 200, found {status} {}", short(body)))
                }
            }
            .timed(v.elapsed_ms),
        });
    }
    out
}

fn no_record(env: &str) -> String {
    format!(
        "no deployment record for env {env} on the host: nothing says which build should run (make up MODE=swarm records it)"
    )
}

/// The digest part of an image reference (`…@sha256:…`), if it is pinned.
pub fn digest_of(reference: &str) -> Option<&str> {
    reference.split_once('@').map(|(_, d)| d)
}

fn provenance_layer(expect: &SwarmExpect, doc: &SwarmInspection) -> Vec<Eval> {
    let ids = layer_ids(5, expect);
    let Some(deployed) = &expect.deployed else {
        return ids
            .into_iter()
            .map(|id| fail(id, no_record(&expect.env)))
            .collect();
    };
    let Some(want) = digest_of(&deployed.image) else {
        let why = format!(
            "the deployment record names {} without a digest: swarm cannot pin what every node runs",
            deployed.image
        );
        return ids.into_iter().map(|id| fail(id, why.clone())).collect();
    };
    let (Fact::Found(services), Fact::Found(tasks), Fact::Found(nodes)) =
        (&doc.services, &doc.tasks, &doc.nodes)
    else {
        let why = "the manager could not list services, tasks or nodes";
        return ids.into_iter().map(|id| fail(id, why)).collect();
    };
    let Some(api) = services.iter().find(|s| s.service == API_SERVICE) else {
        let why = format!("stack {} has no {API_SERVICE} service", doc.stack);
        return ids.into_iter().map(|id| fail(id, why.clone())).collect();
    };
    let service_image = match digest_of(&api.image) {
        Some(d) if d == want => pass(
            &ids[0],
            format!("service {} pins {}", api.name, deployed.image),
        ),
        Some(d) => fail(
            &ids[0],
            format!(
                "service {} pins {d}, the deployment record names {want} ({}): the service was updated to another image",
                api.name, deployed.image
            ),
        ),
        None => fail(
            &ids[0],
            format!(
                "service {} runs {} by tag, not by digest; expected {}",
                api.name, api.image, deployed.image
            ),
        ),
    };
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for t in tasks
        .iter()
        .filter(|t| t.service_id == api.id && t.running())
    {
        let node = nodes
            .iter()
            .find(|n| n.id == t.node_id)
            .map_or(t.node_id.as_str(), SwarmNode::name);
        match digest_of(&t.image) {
            Some(d) if d == want => ok.push(node.to_string()),
            Some(d) => bad.push(format!("the replica on {node} runs {d}")),
            None => bad.push(format!("the replica on {node} runs {} by tag", t.image)),
        }
    }
    let replicas = if !bad.is_empty() {
        fail(
            &ids[1],
            format!("expected every api replica on {want}; {}", bad.join(", ")),
        )
    } else if ok.is_empty() {
        fail(&ids[1], "no running api replica to compare")
    } else {
        pass(
            &ids[1],
            format!("api replicas on {} run {want}", ok.join(", ")),
        )
    };
    vec![service_image, replicas]
}

#[cfg(test)]
mod tests;
