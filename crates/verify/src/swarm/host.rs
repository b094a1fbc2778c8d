//! Host side of swarm mode: asks the manager for its account (`verify inspect-swarm`),
//! then probes every api node's published port, layer by layer, and hands both to the
//! pure verdicts. Runs nothing on a node but `verify inspect-swarm`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stackpilot_core::argv::ToArgv;
use stackpilot_core::http;
use stackpilot_core::time::millis;

use super::inspection::SwarmInspection;
use super::verdict::{
    self, ManagerObservation, ManagerOutcome, NodeProbes, SwarmExpect, SwarmObservations,
};
use crate::host::{NodeRun, NodeRunner, RunConfig};
use crate::report::Report;

/// Where and how to verify a stack on the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmTarget {
    /// What the swarm and stack must be.
    pub expect: SwarmExpect,
    /// Each lab node's service address (its address, the environment's port).
    pub addrs: BTreeMap<String, SocketAddr>,
}

/// The manager's account of `env`'s stack: `verify inspect-swarm` run on the manager
/// (read-only), its document or why there is none.
pub fn inspect(manager: &dyn NodeRunner, env: &str, cfg: &RunConfig) -> ManagerOutcome {
    let call = crate::cli::Command::inspect_swarm(env).call();
    let argv = call.argv(&cfg.node_verify);
    match manager.run(&argv, cfg.node_timeout) {
        NodeRun::Unreachable(why) => ManagerOutcome::Unreachable(why),
        NodeRun::Ran {
            code,
            stdout,
            stderr,
        } => match serde_json::from_str::<SwarmInspection>(&stdout) {
            Ok(doc) => ManagerOutcome::Inspected(Box::new(doc)),
            Err(_) if stderr.trim().is_empty() => ManagerOutcome::Failed {
                code,
                stderr: stdout,
            },
            Err(_) => ManagerOutcome::Failed { code, stderr },
        },
    }
}

/// Observes the swarm layer by layer; a layer is observed only when the ones below passed.
pub fn observe(
    target: &SwarmTarget,
    manager: &dyn NodeRunner,
    cfg: &RunConfig,
) -> SwarmObservations {
    let mut obs = SwarmObservations::default();
    let start = Instant::now();
    let outcome = inspect(manager, &target.expect.env, cfg);
    obs.manager = Some(ManagerObservation {
        via: manager.describe(),
        elapsed_ms: millis(start.elapsed()),
        outcome,
    });
    for layer in 1..=2 {
        if verdict::layer_failed(layer, &target.expect, &obs) {
            return obs;
        }
    }
    obs.probes = target
        .expect
        .api_nodes()
        .iter()
        .filter_map(|node| {
            let addr = *target.addrs.get(node)?;
            Some(NodeProbes {
                node: node.clone(),
                addr,
                tcp: Some(http::tcp_connect(addr, cfg.probe.connect)),
                health: None,
                ready: None,
                version: None,
            })
        })
        .collect();
    if verdict::layer_failed(3, &target.expect, &obs) {
        return obs;
    }
    for p in &mut obs.probes {
        let url = |path: &str| format!("http://{}{path}", p.addr);
        p.health = Some(http::get(&url("/health"), cfg.probe));
        p.ready = Some(http::get(&url("/ready"), cfg.probe));
        p.version = Some(http::get(&url("/version"), cfg.probe));
    }
    obs
}

/// Verifies the stack on the swarm: observe, then judge. Never mutates anything.
pub fn run(target: &SwarmTarget, manager: &dyn NodeRunner, cfg: &RunConfig) -> Report {
    let start = Instant::now();
    let obs = observe(target, manager, cfg);
    verdict::evaluate(&target.expect, &obs, millis(start.elapsed()))
}

/// Verifies again until every check passes or `wait` has passed; returns the last report.
pub fn run_waiting(
    target: &SwarmTarget,
    manager: &dyn NodeRunner,
    cfg: &RunConfig,
    wait: Duration,
) -> Report {
    crate::host::until_passed(Some(wait), || run(target, manager, cfg))
}
