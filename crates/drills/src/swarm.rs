//! Swarm mode: what the swarm drills need from the lab ([`SwarmOps`], implemented by the
//! host over the lab's swarm, by fakes in tests), an order load spread over every api
//! node the way a client-side balancer would, and the pure judgements over the manager's
//! account of the stack (read with `verify inspect-swarm`, read-only).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use stackpilot_core::http;
use stackpilot_core::time::millis;
use verify::inspection::Fact;
use verify::swarm::SwarmInspection;
use verify::swarm::inspection::SwarmTask;

use crate::lab::LabError;
use crate::probe::{PROBE, post_order};
use crate::samples::{self, LoadSummary, OrderAttempt};

/// The compose service the load goes to.
pub const API: &str = "api";
/// The compose service of the database (one replica, on the manager).
pub const DB: &str = "db";

/// What swarm drills need from the lab, besides [`crate::LabOps`].
pub trait SwarmOps {
    /// The manager's node name.
    fn manager(&self) -> &str;
    /// Every node that should run an api replica, with its service address.
    fn api_nodes(&self) -> Vec<(String, SocketAddr)>;
    /// The manager's account of the stack (`verify inspect-swarm`, read-only).
    fn inspect(&self) -> Result<SwarmInspection, LabError>;
    /// Halts a node (`cargo xtask lab halt NODE`).
    fn halt(&self, node: &str) -> Result<(), LabError>;
    /// Starts a halted node again (`cargo xtask lab up NODE`), nothing else.
    fn start(&self, node: &str) -> Result<(), LabError>;
    /// Restarts a node's Docker engine; returns when the restart was issued.
    fn restart_engine(&self, node: &str) -> Result<(), LabError>;
    /// Builds a new app image, pushes it and rolls it through the api's replicas with the
    /// service's update policy; returns when swarm reports the update complete, with the
    /// new image reference.
    fn roll_new_build(&self) -> Result<String, LabError>;
    /// Sets the desired replicas of the stack's `service`; returns once swarm reports that
    /// many running (0: its last task stopped), with what the manager printed.
    fn scale(&self, service: &str, replicas: u32) -> Result<String, LabError>;
    /// Updates the api service alone with `overrides` in place of the env file's values
    /// (`docker service update --env-add`, on the deployed digest); returns once the
    /// update was issued (swarm then replaces every replica), with the command.
    fn update_api_env(&self, overrides: &[(&str, &str)]) -> Result<String, LabError>;
    /// Deploys the stack again as the host recorded it (`docker stack deploy` with the
    /// deployed digest and the env file's values); returns once every replica runs.
    fn redeploy(&self) -> Result<String, LabError>;
}

/// The swarm of a lab in swarm mode, or the error a swarm drill gives in compose mode.
pub(crate) fn require(lab: &dyn crate::LabOps) -> Result<&dyn SwarmOps, LabError> {
    lab.swarm().ok_or_else(|| {
        LabError::new(
            "swarm drill",
            format!(
                "environment {} does not run in swarm mode: run it with MODE=swarm (make drill NAME=… MODE=swarm)",
                lab.env()
            ),
        )
    })
}

/// One request of the spread load: which node it went to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAttempt {
    /// The node addressed (the last one, after a failover).
    pub node: String,
    /// The request.
    pub attempt: OrderAttempt,
    /// The nodes that took no connection before (refused, or not accepted in time; nothing
    /// was sent to them), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_by: Vec<String>,
}

/// What a load client does when a node refuses the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// Counts it as a request without an answer.
    Never,
    /// Sends the request to the next node at once, as a balancer in front of the nodes
    /// would, when a node refused the connection or did not accept it within the connect
    /// timeout (safe: nothing was sent); each node is tried once. Like a balancer's health
    /// check, a node that did so is out of rotation until its `/ready` answers 200: a
    /// replica just started takes connections before it can serve orders.
    NeverSent,
}

/// The nodes a [`Failover::NeverSent`] load sends to. Pure but for its lock.
struct Rotation {
    out: Mutex<Vec<bool>>,
}

impl Rotation {
    fn new(nodes: usize) -> Rotation {
        Rotation {
            out: Mutex::new(vec![false; nodes]),
        }
    }

    /// The nodes to try for a request, starting at `first`: those in rotation, or every
    /// node when none is (a request is never dropped unsent).
    fn order(&self, first: usize) -> Vec<usize> {
        let out = self.flags();
        let n = out.len();
        let all: Vec<usize> = (0..n).map(|k| (first + k) % n).collect();
        let live: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| !out.get(i).copied().unwrap_or(false))
            .collect();
        if live.is_empty() { all } else { live }
    }

    fn set_out(&self, node: usize, out: bool) {
        let mut flags = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = flags.get_mut(node) {
            *slot = out;
        }
    }

    /// The flags (a client that panicked holding the lock left them whole).
    fn flags(&self) -> Vec<bool> {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn out(&self) -> Vec<usize> {
        let out = self.flags();
        (0..out.len()).filter(|&i| out[i]).collect()
    }
}

/// Clients posting orders round-robin over every api node until stopped.
pub(crate) struct SpreadLoad {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<NodeAttempt>>>,
    clients: Vec<thread::JoinHandle<()>>,
}

/// How often an out-of-rotation node's `/ready` is asked.
const READMIT_EVERY: Duration = Duration::from_millis(100);

impl SpreadLoad {
    /// Starts `clients` clients, each posting one order, then pausing `pause`, to the next
    /// node in turn (clients start on different nodes), with `failover` on a refusal.
    pub(crate) fn start(
        nodes: &[(String, SocketAddr)],
        clients: usize,
        pause: Duration,
        failover: Failover,
        origin: Instant,
    ) -> SpreadLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let rotation = Arc::new(Rotation::new(nodes.len()));
        let mut handles = Vec::new();
        if failover == Failover::NeverSent {
            let (stop, rotation, nodes) = (stop.clone(), rotation.clone(), nodes.to_vec());
            handles.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for i in rotation.out() {
                        let ready = format!("http://{}/ready", nodes[i].1);
                        if http::get(&ready, PROBE)
                            .answer()
                            .is_some_and(|(c, _)| c == 200)
                        {
                            rotation.set_out(i, false);
                        }
                    }
                    thread::sleep(READMIT_EVERY);
                }
            }));
        }
        for c in 0..clients {
            let (stop, attempts, nodes) = (stop.clone(), attempts.clone(), nodes.to_vec());
            let rotation = rotation.clone();
            handles.push(thread::spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) && !nodes.is_empty() {
                    let first = i;
                    i += 1;
                    let candidates = match failover {
                        Failover::NeverSent => rotation.order(first),
                        Failover::Never => vec![first % nodes.len()],
                    };
                    let mut refused_by = Vec::new();
                    let a = loop {
                        let k = candidates[refused_by.len()];
                        let (node, addr) = &nodes[k];
                        let url = format!("http://{addr}/order?symbol=BTC&side=buy&qty=1");
                        let attempt = post_order(&url, origin);
                        if failover == Failover::NeverSent && attempt.sample.never_sent() {
                            rotation.set_out(k, true);
                            if refused_by.len() + 1 < candidates.len() {
                                refused_by.push(node.clone());
                                continue;
                            }
                        }
                        break NodeAttempt {
                            node: node.clone(),
                            attempt,
                            refused_by,
                        };
                    };
                    if let Ok(mut v) = attempts.lock() {
                        v.push(a);
                    }
                    thread::sleep(pause);
                }
            }));
        }
        SpreadLoad {
            stop,
            attempts,
            clients: handles,
        }
    }

    /// Stops the clients and returns every request made.
    pub(crate) fn finish(mut self) -> Vec<NodeAttempt> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients.drain(..) {
            let _ = c.join();
        }
        self.attempts.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for SpreadLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The load summed up per node. Pure.
pub fn by_node(attempts: &[NodeAttempt]) -> BTreeMap<String, LoadSummary> {
    let mut per: BTreeMap<String, Vec<OrderAttempt>> = BTreeMap::new();
    for a in attempts {
        per.entry(a.node.clone())
            .or_default()
            .push(a.attempt.clone());
    }
    per.into_iter()
        .map(|(n, v)| (n, samples::summarize(&v)))
        .collect()
}

/// Requests that a node did not take and another then did (see [`Failover::NeverSent`]). Pure.
pub fn failed_over(attempts: &[NodeAttempt]) -> u64 {
    attempts.iter().filter(|a| !a.refused_by.is_empty()).count() as u64
}

/// Requests answered with a status outside 2xx. Pure.
pub fn non_2xx(attempts: &[NodeAttempt]) -> u64 {
    attempts
        .iter()
        .filter(|a| {
            a.attempt
                .sample
                .status
                .is_some_and(|s| !(200..300).contains(&s))
        })
        .count() as u64
}

/// Requests that got no HTTP answer at all (refused, reset, timed out). Pure.
pub fn unanswered(attempts: &[NodeAttempt]) -> u64 {
    attempts
        .iter()
        .filter(|a| a.attempt.sample.status.is_none())
        .count() as u64
}

/// Requests without an answer a roll may cost: at most one per [`UNANSWERED_PER`] sent.
/// With stop-first updates on host-mode ports (no IPVS here) a connection the old replica's
/// kernel took in the instant its server stopped is reset; the client cannot tell whether
/// it was processed, so it is not retried. Seen: 0 of 2,598 and 1 of 2,517 in two runs.
pub const UNANSWERED_PER: u64 = 1000;

/// Whether `unanswered` of `sent` requests is within that budget. Pure.
pub fn unanswered_within_budget(unanswered: u64, sent: u64) -> bool {
    unanswered * UNANSWERED_PER <= sent
}

/// Whether a request failed: no answer, or an answer outside 2xx. Pure.
pub fn failed(a: &NodeAttempt) -> bool {
    a.attempt
        .sample
        .status
        .is_none_or(|s| !(200..300).contains(&s))
}

/// The failed requests (see [`failed`]), one line each: node, when, what happened (the
/// status and the body's first bytes, or why there was no answer). Pure.
pub fn failed_lines<'a>(attempts: impl IntoIterator<Item = &'a NodeAttempt>) -> Vec<String> {
    attempts
        .into_iter()
        .filter(|a| failed(a))
        .map(|a| {
            let s = &a.attempt.sample;
            let tried = if a.refused_by.is_empty() {
                String::new()
            } else {
                format!(" (after {} did not take it)", a.refused_by.join(", "))
            };
            let what = match s.status {
                Some(code) => format!("{code} {}", s.detail),
                None => s.detail.clone(),
            };
            format!(
                "{} at {} ms{tried}: {what} after {} ms",
                a.node, s.t_ms, s.elapsed_ms
            )
        })
        .collect()
}

/// Requests per second over the load's span (first request sent to last answered). Pure.
pub fn rate_per_s(attempts: &[NodeAttempt]) -> Option<f64> {
    let first = attempts.iter().map(|a| a.attempt.sample.t_ms).min()?;
    let last = attempts
        .iter()
        .map(|a| a.attempt.sample.t_ms + a.attempt.sample.elapsed_ms)
        .max()?;
    let span = last.saturating_sub(first);
    (span > 0).then(|| attempts.len() as f64 * 1000.0 / span as f64)
}

/// The acknowledged order ids of the load. Pure.
pub fn acknowledged(attempts: &[NodeAttempt]) -> Vec<String> {
    let v: Vec<OrderAttempt> = attempts.iter().map(|a| a.attempt.clone()).collect();
    samples::acknowledged_ids(&v)
}

/// The state the manager reports for `node` (`ready`, `down`, …), a ready entry winning
/// over a stale one of the same name. Pure.
pub fn node_state(doc: &SwarmInspection, node: &str) -> Option<String> {
    let Fact::Found(nodes) = &doc.nodes else {
        return None;
    };
    let mut of = nodes.iter().filter(|n| n.name() == node);
    let first = of.next()?;
    let ready = std::iter::once(first)
        .chain(of)
        .find(|n| n.state == "ready")
        .unwrap_or(first);
    Some(ready.state.clone())
}

/// The running tasks of `service` (none when the account lacks services or tasks). Pure.
fn running<'a>(doc: &'a SwarmInspection, service: &str) -> Vec<&'a SwarmTask> {
    let (Fact::Found(services), Fact::Found(tasks)) = (&doc.services, &doc.tasks) else {
        return vec![];
    };
    let Some(s) = services.iter().find(|s| s.service == service) else {
        return vec![];
    };
    tasks
        .iter()
        .filter(|t| t.service_id == s.id && t.running())
        .collect()
}

/// The nodes on which `service` has a running replica, sorted (one entry per replica). Pure.
pub fn running_on(doc: &SwarmInspection, service: &str) -> Vec<String> {
    let Fact::Found(nodes) = &doc.nodes else {
        return vec![];
    };
    let mut on: Vec<String> = running(doc, service)
        .into_iter()
        .map(|t| {
            nodes
                .iter()
                .find(|n| n.id == t.node_id)
                .map_or_else(|| t.node_id.clone(), |n| n.name().to_string())
        })
        .collect();
    on.sort();
    on
}

/// The ids of `service`'s running tasks, sorted: a replica that restarts or is replaced
/// runs as a new task, so an unchanged list means no replica restarted. Pure.
pub fn running_tasks(doc: &SwarmInspection, service: &str) -> Vec<String> {
    let mut ids: Vec<String> = running(doc, service)
        .into_iter()
        .map(|t| t.id.clone())
        .collect();
    ids.sort();
    ids
}

/// The tasks of `service` in `after` that `before` did not list (in any state), per node
/// name (`""` while not scheduled), each as `id state`. Swarm never reuses a task id: a
/// replica replaced by an update, or restarted after its container exited or turned
/// unhealthy, shows here as one more task. Pure.
pub fn new_tasks(
    before: &SwarmInspection,
    after: &SwarmInspection,
    service: &str,
) -> BTreeMap<String, Vec<String>> {
    let known: Vec<&str> = tasks_of(before, service)
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in tasks_of(after, service) {
        if known.contains(&t.id.as_str()) {
            continue;
        }
        out.entry(node_name(after, &t.node_id))
            .or_default()
            .push(format!("{} {}", t.id, t.state));
    }
    out
}

/// Whether an update replaced each replica of `service` exactly once between `before` and
/// `after`: on each of `nodes` one new task, running, and no other new task anywhere
/// (a second one on a node is a replica that failed and was restarted). Pure.
pub fn replaced_once(
    before: &SwarmInspection,
    after: &SwarmInspection,
    service: &str,
    nodes: &[String],
) -> bool {
    let new = new_tasks(before, after, service);
    let running: Vec<&str> = running(after, service)
        .into_iter()
        .map(|t| t.id.as_str())
        .collect();
    new.len() == nodes.len()
        && nodes.iter().all(|n| {
            new.get(n).is_some_and(|ts| {
                ts.len() == 1
                    && ts[0]
                        .split_whitespace()
                        .next()
                        .is_some_and(|id| running.contains(&id))
            })
        })
}

/// `node: task state, …; …` for [`new_tasks`], or `none`. Pure.
pub fn describe_new_tasks(new: &BTreeMap<String, Vec<String>>) -> String {
    if new.is_empty() {
        return "none".into();
    }
    new.iter()
        .map(|(n, ts)| {
            let n = if n.is_empty() { "(unscheduled)" } else { n };
            format!("{n}: {}", ts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every task of `service`, in any state. Pure.
fn tasks_of<'a>(doc: &'a SwarmInspection, service: &str) -> Vec<&'a SwarmTask> {
    let (Fact::Found(services), Fact::Found(tasks)) = (&doc.services, &doc.tasks) else {
        return vec![];
    };
    let Some(s) = services.iter().find(|s| s.service == service) else {
        return vec![];
    };
    tasks.iter().filter(|t| t.service_id == s.id).collect()
}

/// The name of the node with id `id` (the id itself when the account lacks it). Pure.
fn node_name(doc: &SwarmInspection, id: &str) -> String {
    match &doc.nodes {
        Fact::Found(nodes) => nodes
            .iter()
            .find(|n| n.id == id)
            .map_or_else(|| id.to_string(), |n| n.name().to_string()),
        _ => id.to_string(),
    }
}

/// The state of `service`'s last update (`updating`, `completed`, …), if any. Pure.
pub fn update_state(doc: &SwarmInspection, service: &str) -> Option<String> {
    match &doc.services {
        Fact::Found(s) => s
            .iter()
            .find(|s| s.service == service)?
            .update_state
            .clone(),
        _ => None,
    }
}

/// The desired replicas of `service`, when it is replicated. Pure.
pub fn desired(doc: &SwarmInspection, service: &str) -> Option<u64> {
    match &doc.services {
        Fact::Found(s) => s.iter().find(|s| s.service == service)?.replicas,
        _ => None,
    }
}

/// Whether `service` runs all its desired replicas, one on each of `nodes` when given. Pure.
pub fn whole(doc: &SwarmInspection, service: &str, nodes: &[String]) -> bool {
    let on = running_on(doc, service);
    let count_ok = desired(doc, service).is_some_and(|d| on.len() as u64 == d);
    let mut want = nodes.to_vec();
    want.sort();
    count_ok && (nodes.is_empty() || on == want)
}

/// Why a pending replica waits, as the manager says (the newest message of a task that
/// should run but does not). Pure.
pub fn pending_reason(doc: &SwarmInspection, service: &str) -> Option<String> {
    let (Fact::Found(services), Fact::Found(tasks)) = (&doc.services, &doc.tasks) else {
        return None;
    };
    let s = services.iter().find(|s| s.service == service)?;
    tasks
        .iter()
        .filter(|t| t.service_id == s.id && t.desired_state == "running" && !t.running())
        .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
        .map(|t| format!("task {} {}: {}", t.slot.unwrap_or(0), t.state, t.message))
}

/// Polls the manager's account every `every` until `pred` holds or `limit` passed; returns
/// the drill time (ms since `origin`) of the first account that satisfied it.
pub(crate) fn wait_inspect(
    ops: &dyn SwarmOps,
    origin: Instant,
    limit: Duration,
    every: Duration,
    pred: impl Fn(&SwarmInspection) -> bool,
) -> Option<u64> {
    let start = Instant::now();
    loop {
        if ops.inspect().is_ok_and(|doc| pred(&doc)) {
            return Some(millis(origin.elapsed()));
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(every);
    }
}

pub mod host;

#[cfg(test)]
mod tests;
