//! Halt the node and start it: the stack comes back by itself, data intact.

use std::time::Duration;

use stackpilot_core::http::{self, TcpOutcome};

use crate::lab::{Golden, LabError, LabOps};
use crate::probe::{Sampler, check_orders, create_orders, wait_sample};
use crate::sequence::{Drill, Run, Undone};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "node-reboot",
    describe: "halt the node and start it → the stack comes back by itself, orders intact, verify passes",
    experiment,
    undo,
};

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let ids = create_orders(r, 3)?;
    r.figures.orders_acknowledged = Some(ids.len() as u64);
    let (api_id, _) = r.api_restarts()?;
    let t_halt = r.golden(Golden::HaltNode)?;
    let tcp = http::tcp_connect(lab.service_addr(), Duration::from_millis(500));
    r.figures.detection_latency_ms = Some(r.now_ms() - t_halt);
    r.check(
        "service unreachable while the node is halted",
        tcp.outcome != TcpOutcome::Connected,
        "no TCP connection",
        format!("{:?}", tcp.outcome),
    );
    // Probe /ready from before the node starts, so the figure is when the stack answered,
    // not when `lab up` returned.
    let ready = Sampler::start(r.url("/ready"), r.start);
    let t = r.restore(Golden::StartNode.command(), || {
        lab.golden(Golden::StartNode).map(|()| String::new())
    })?;
    if t.is_some() {
        let started = r.injection.last().map_or(0, |e| e.t_ms);
        let ready_at = wait_sample(&ready, started, Duration::from_secs(120), |s| s.is(200));
        let ready_samples = ready.finish();
        r.timeline("/ready", &ready_samples);
        let rec = ready_at.map(|t| t.saturating_sub(started));
        r.figures.recovery_ms = rec;
        r.check(
            "the stack came back by itself",
            rec.is_some(),
            "/ready 200 within 120 s of starting the node, without lifecycle up",
            rec.map_or("not ready".into(), |d| {
                format!("ready {d} ms after the node start began")
            }),
        );
        let (api_after, _) = r.api_restarts()?;
        r.check(
            "the same api container came back (restart policy, not a recreate)",
            api_after == api_id,
            format!("container {api_id}"),
            format!("container {api_after}"),
        );
        r.figures.orders_lost = Some(0);
        check_orders(r, "the node restart", &ids);
    }
    Ok(())
}

/// Starts the node, only when its engine does not answer: starting a running node costs a
/// full `lab up`.
fn undo(lab: &dyn LabOps) -> Undone {
    lab.status().is_err().then(|| {
        (
            Golden::StartNode.command().to_string(),
            lab.golden(Golden::StartNode).map(|()| String::new()),
        )
    })
}
