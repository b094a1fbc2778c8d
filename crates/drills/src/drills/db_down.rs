//! Stop the db: /ready 503 fast, /health 200, no api restart; start it: ready again.

use std::thread;
use std::time::Duration;

use stackpilot_core::http::{self, TcpOutcome};

use crate::lab::LabError;
use crate::probe::{
    Sampler, describe_samples, wait_sample,
};
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
    let lab = r.lab;
    let env = lab.env().to_string();
    let (api_id, restarts_before) = r.api_restarts()?;
    let ready = Sampler::start(r.url("/ready"), r.start);
    let health = Sampler::start(r.url("/health"), r.start);
    let t_inj = r.inject("drills node stop db", || {
        lab.node_step(&["stop", "--env", &env, "--service", "db"])
    })?;
    let detected = wait_sample(&ready, t_inj, Duration::from_secs(5), |s| s.is(503));
    let detection = detected.map(|t| t.saturating_sub(t_inj));
    r.figures.detection_latency_ms = detection;
    r.check(
        "/ready 503 within 1 s of the db stop",
        detection.is_some_and(|d| d <= 1000),
        "503 within 1000 ms",
        detection.map_or("no 503 within 5 s".into(), |d| format!("503 after {d} ms")),
    );
    // Hold the fault: the api must stay alive and must not be restarted.
    thread::sleep(Duration::from_millis(1500));
    let tcp = http::tcp_connect(lab.service_addr(), Duration::from_secs(1));
    r.check(
        "service port reachable while the db is down",
        tcp.outcome == TcpOutcome::Connected,
        "TCP connection accepted",
        format!("{:?}", tcp.outcome),
    );
    let t_restore = r.restore("drills node start db", || {
        lab.node_step(&["start", "--env", &env, "--service", "db"])
    })?;
    let mut recovered_at = None;
    if let Some(t) = t_restore {
        recovered_at = wait_sample(&ready, t, Duration::from_secs(30), |s| s.is(200));
        let rec = recovered_at.map(|x| x.saturating_sub(t));
        r.figures.recovery_ms = rec;
        r.check(
            "/ready 200 within 2 s of the db start",
            rec.is_some_and(|d| d <= 2000),
            "200 within 2000 ms",
            rec.map_or("no 200 within 30 s".into(), |d| format!("200 after {d} ms")),
        );
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
    r.check_api_not_restarted("api not restarted (no crash loop)", (&api_id, restarts_before))?;
    Ok(())
}
