//! Swarm mode: halt a worker under a steady order load. The manager must see the node go
//! down; the lost replica runs again elsewhere, or, where placement forbids that (one api
//! per worker), the service is whole again once the node is back; no acknowledged order is
//! lost.

use std::time::Duration;

use crate::lab::LabError;
use crate::probe::{check_none_lost, spread_load};
use crate::sequence::{Drill, Run, Undone};
use crate::swarm::{self, API, Failover};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "node-loss",
    describe: "swarm: halt a worker under order load → the manager marks it down, the api is whole again (elsewhere, or once the node is back), no acknowledged order lost",
    experiment,
    undo,
};

/// Clients of the load and their pause between orders.
const CLIENTS: usize = 4;
const PAUSE: Duration = Duration::from_millis(100);
/// How long the manager may take to mark the node down (its heartbeat period is 5 s).
const DETECT_LIMIT: Duration = Duration::from_secs(60);
/// How long the lost replica is given to start on another node before placement is taken
/// to forbid it.
const RESCHEDULE_WAIT: Duration = Duration::from_secs(15);
/// How long the service may take to be whole after the node is started again.
const WHOLE_LIMIT: Duration = Duration::from_secs(120);
const EVERY: Duration = Duration::from_millis(250);
/// Failed requests named in the check's verdict (all of them are in the journal).
const SHOWN: usize = 3;

/// The node a drill halts: the last api node (the others keep serving and take the reads).
fn victim(nodes: &[(String, std::net::SocketAddr)]) -> Option<String> {
    nodes.last().map(|(n, _)| n.clone())
}

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let ops = swarm::require(r.lab)?;
    let nodes = ops.api_nodes();
    let victim = victim(&nodes).filter(|_| nodes.len() > 1).ok_or_else(|| {
        LabError::new(
            "node-loss",
            "needs at least two api nodes (two workers) so one can be lost",
        )
    })?;
    let expected: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    // No failover: the requests the lost node cannot take are part of what is measured.
    let load = spread_load(r, &nodes, CLIENTS, PAUSE, Failover::Never);
    let result = (|| -> Result<(), LabError> {
        let t_halt = r.inject(&format!("cargo xtask lab halt {victim}"), || {
            ops.halt(&victim).map(|()| String::new())
        })?;
        let down_at = swarm::wait_inspect(ops, r.start, DETECT_LIMIT, EVERY, |d| {
            swarm::node_state(d, &victim).is_some_and(|s| s != "ready")
        });
        r.figures.detection_latency_ms = down_at.map(|t| t.saturating_sub(t_halt));
        r.check(
            "the manager marked the lost node down",
            down_at.is_some(),
            format!("{victim} not ready within {} s", DETECT_LIMIT.as_secs()),
            down_at.map_or("still ready".into(), |t| {
                format!("down {} ms after the halt", t.saturating_sub(t_halt))
            }),
        );
        // Elsewhere: every desired replica running again without the lost node.
        let elsewhere = swarm::wait_inspect(ops, r.start, RESCHEDULE_WAIT, EVERY, |d| {
            swarm::whole(d, API, &[])
        });
        if let Some(t) = elsewhere {
            r.figures.recovery_ms = Some(t.saturating_sub(t_halt));
            r.observe(
                "rescheduled",
                format!(
                    "the lost replica runs elsewhere {} ms after the halt",
                    t - t_halt
                ),
            );
        } else {
            let why = ops
                .inspect()
                .ok()
                .and_then(|d| swarm::pending_reason(&d, API))
                .unwrap_or_else(|| "no pending task reported".into());
            r.observe(
                "not rescheduled",
                format!(
                    "placement keeps the lost replica off the remaining nodes ({why}); waiting for {victim} to return"
                ),
            );
        }
        let t_start = r.restore(&format!("cargo xtask lab up {victim}"), || {
            ops.start(&victim).map(|()| String::new())
        })?;
        if let (None, Some(t_start)) = (elsewhere, t_start) {
            let back = swarm::wait_inspect(ops, r.start, WHOLE_LIMIT, EVERY, |d| {
                swarm::whole(d, API, &expected)
            });
            r.figures.recovery_ms = back.map(|t| t.saturating_sub(t_start));
            r.check(
                "the api is whole again once the node is back",
                back.is_some(),
                format!(
                    "one running api replica on each of {} within {} s of starting {victim}",
                    expected.join(", "),
                    WHOLE_LIMIT.as_secs()
                ),
                back.map_or("not whole".into(), |t| {
                    format!(
                        "whole {} ms after the start began",
                        t.saturating_sub(t_start)
                    )
                }),
            );
        } else {
            r.check(
                "the lost replica ran again elsewhere",
                elsewhere.is_some(),
                "all desired replicas running without the lost node",
                "yes",
            );
        }
        Ok(())
    })();
    // Keep the load on a moment after the recovery so acknowledged orders straddle it.
    std::thread::sleep(Duration::from_secs(2));
    let attempts = load.finish();
    result?;
    let per = swarm::by_node(&attempts);
    for (node, s) in &per {
        r.observe("load summary", format!("{node}: {s:?}"));
    }
    // Each failure named in the check itself: a CI log may show only the drill's verdict.
    let survivors_failed = swarm::failed_lines(attempts.iter().filter(|a| a.node != victim));
    for line in &survivors_failed {
        r.observe("failed request", line.clone());
    }
    r.check(
        "the surviving replicas kept serving",
        survivors_failed.is_empty(),
        "every order sent to a surviving node acknowledged",
        match survivors_failed.as_slice() {
            [] => "0 failed".to_string(),
            lines => format!(
                "{} failed, first: {}",
                lines.len(),
                lines[..lines.len().min(SHOWN)].join("; ")
            ),
        },
    );
    let ids = swarm::acknowledged(&attempts);
    check_none_lost(r, &ids);
    Ok(())
}

/// Starts every api node the manager does not report ready (idempotent).
fn undo(lab: &dyn crate::LabOps) -> Undone {
    let ops = lab.swarm()?;
    let doc = ops.inspect().ok()?;
    let down: Vec<String> = ops
        .api_nodes()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| swarm::node_state(&doc, n).as_deref() != Some("ready"))
        .collect();
    (!down.is_empty()).then(|| {
        let res = down
            .iter()
            .try_for_each(|n| ops.start(n))
            .map(|()| format!("started {}", down.join(", ")));
        (format!("cargo xtask lab up {}", down.join(" ")), res)
    })
}
