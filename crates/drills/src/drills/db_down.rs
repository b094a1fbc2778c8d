//! Stop the db: /ready 503 fast, /health 200, no api restart; start it: ready again. On the
//! swarm the db service is scaled to 0 and back to 1 (see docs/runbooks/drill-db-down.md).

use std::thread;
use std::time::Duration;

use stackpilot_core::http::{self, TcpOutcome};
use stackpilot_core::time::millis;

use crate::lab::LabError;
use crate::probe::{
    check_status_within, describe_nodes, describe_samples, every_node_answers, watch_api,
};
use crate::samples::{self, POLL_MS};
use crate::sequence::{Drill, Run, nothing_to_undo};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "db-down",
    describe: "stop db (swarm: scale it to 0) → TCP open, /health 200, /ready 503 within 1 s on every api node, api not restarted → start db (swarm: scale to 1) → /ready 200 on every api node within 2 s (swarm: 15 s)",
    experiment,
    undo: nothing_to_undo,
};

/// How soon `/ready` must answer 503 after the stop returned and 200 after the start
/// began. On the swarm the start schedules a new db task: Postgres starts and must be
/// healthy before swarm runs it, then the api reconnects.
fn limits(swarm: bool) -> (Duration, Duration) {
    match swarm {
        false => (Duration::from_secs(1), Duration::from_secs(2)),
        true => (Duration::from_secs(1), Duration::from_secs(15)),
    }
}

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let swarm = r.lab.swarm().is_some();
    let (detect, recover) = limits(swarm);
    let (api_before, health, ready) = watch_api(r)?;
    let t_inj = r.stop_db()?;
    r.figures.detection_latency_ms = check_status_within(
        r,
        &format!("/ready 503 within {} s of the db stop", detect.as_secs()),
        &ready,
        t_inj,
        503,
        (detect, Duration::from_secs(5)),
    );
    // Hold the fault: the api must stay alive and must not be restarted.
    thread::sleep(Duration::from_millis(1500));
    let (all_down, seen) = every_node_answers(r, "/ready", 503, Duration::from_secs(5));
    r.check(
        "/ready 503 on every api node while the db is down",
        all_down.is_some(),
        "503 from each api node",
        describe_nodes(&seen, t_inj),
    );
    let tcp = http::tcp_connect(r.lab.service_addr(), Duration::from_secs(1));
    r.check(
        "service port reachable while the db is down",
        tcp.outcome == TcpOutcome::Connected,
        "TCP connection accepted",
        format!("{:?}", tcp.outcome),
    );
    let t_restore = r.start_db()?;
    let mut recovered_at = None;
    if let Some(t) = t_restore {
        let rec = check_status_within(
            r,
            &format!("/ready 200 within {} s of the db start", recover.as_secs()),
            &ready,
            t,
            200,
            (recover, Duration::from_secs(60)),
        );
        let (all_up, seen) = every_node_answers(r, "/ready", 200, Duration::from_secs(60));
        r.check(
            "/ready 200 on every api node after the db start",
            all_up.is_some_and(|at| at.saturating_sub(t) <= millis(recover)),
            format!("200 from each api node within {} s", recover.as_secs()),
            describe_nodes(&seen, t),
        );
        // On the swarm the service is back when every node is; in compose mode there is one.
        let rec = match swarm {
            true => all_up.map(|at| at.saturating_sub(t)),
            false => rec,
        };
        r.figures.recovery_ms = rec;
        recovered_at = rec.map(|d| t + d);
    }
    let end = recovered_at.unwrap_or_else(|| r.now_ms());
    let health = health.finish();
    let ready_samples = ready.finish();
    let bad = samples::violations(&health, t_inj, end, |s| s.is(200));
    r.check(
        "/health 200 throughout the outage",
        bad.is_empty() && samples::count_between(&health, t_inj, end) > 0,
        "every /health probe 200",
        format!(
            "{} probes, {} not 200{}",
            samples::count_between(&health, t_inj, end),
            bad.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!(": {}", describe_samples(&bad))
            }
        ),
    );
    r.observe(
        "probes",
        format!(
            "{} /ready and {} /health probes at {POLL_MS} ms",
            ready_samples.len(),
            health.len()
        ),
    );
    r.timeline("/ready", &ready_samples);
    r.timeline("/health", &health);
    r.check_api_not_restarted("api not restarted (no crash loop)", &api_before)?;
    Ok(())
}
