//! Stop the db: /ready 503 fast, /health 200, no api restart; start it: ready again.

use std::thread;
use std::time::Duration;

use stackpilot_core::http::{self, TcpOutcome};

use crate::cli::NodeCmd;
use crate::lab::LabError;
use crate::probe::{check_status_within, describe_samples, watch_api};
use crate::samples::{self, POLL_MS};
use crate::sequence::{Drill, Run, nothing_to_undo};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "db-down",
    describe: "stop db → TCP open, /health 200, /ready 503 within 1 s, api not restarted → start db → /ready 200 within 2 s",
    experiment,
    undo: nothing_to_undo,
};

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let ((api_id, restarts_before), health, ready) = watch_api(r)?;
    let t_inj = r.inject_on("drills node stop db", NodeCmd::Stop, "db")?;
    r.figures.detection_latency_ms = check_status_within(
        r,
        "/ready 503 within 1 s of the db stop",
        &ready,
        t_inj,
        503,
        (Duration::from_secs(1), Duration::from_secs(5)),
    );
    // Hold the fault: the api must stay alive and must not be restarted.
    thread::sleep(Duration::from_millis(1500));
    let tcp = http::tcp_connect(r.lab.service_addr(), Duration::from_secs(1));
    r.check(
        "service port reachable while the db is down",
        tcp.outcome == TcpOutcome::Connected,
        "TCP connection accepted",
        format!("{:?}", tcp.outcome),
    );
    let t_restore = r.restore_on("drills node start db", NodeCmd::Start, "db")?;
    let mut recovered_at = None;
    if let Some(t) = t_restore {
        let rec = check_status_within(
            r,
            "/ready 200 within 2 s of the db start",
            &ready,
            t,
            200,
            (Duration::from_secs(2), Duration::from_secs(30)),
        );
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
    r.check_api_not_restarted(
        "api not restarted (no crash loop)",
        (&api_id, restarts_before),
    )?;
    Ok(())
}
