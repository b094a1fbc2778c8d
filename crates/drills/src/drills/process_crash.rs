//! SIGKILL the api process: the restart policy brings it back.

use std::thread;
use std::time::Duration;

use crate::cli::NodeCmd;
use crate::lab::LabError;
use crate::probe::{describe_samples, wait_sample, watch_api};
use crate::samples::{self, POLL_MS, Sample};
use crate::sequence::{Drill, Run, nothing_to_undo};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "process-crash",
    describe: "SIGKILL the api process → /health fails → restart policy brings it back → /health and /ready 200; time to recover",
    experiment,
    undo: nothing_to_undo,
};

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let (before, health, ready) = watch_api(r)?;
    let (api_id, restarts_before) = (before.ids.join(", "), before.restarts);
    thread::sleep(Duration::from_millis(200));
    let t0 = r.now_ms();
    r.inject_on("drills node kill api (SIGKILL)", NodeCmd::Kill, "api")?;
    let failed_at = wait_sample(&health, t0, Duration::from_secs(10), |s| !s.is(200));
    r.figures.detection_latency_ms = failed_at.map(|t| t.saturating_sub(t0));
    let from = failed_at.unwrap_or(t0);
    let healthy_at = wait_sample(&health, from, Duration::from_secs(60), |s| s.is(200));
    let ready_at = healthy_at.and_then(|t| {
        wait_sample(
            &ready,
            t.saturating_sub(POLL_MS * 4),
            Duration::from_secs(30),
            |s| s.is(200),
        )
    });
    let health_samples = health.finish();
    let ready_samples = ready.finish();
    r.timeline("/health", &health_samples);
    r.timeline("/ready", &ready_samples);
    let down: Vec<&Sample> =
        samples::violations(&health_samples, t0, healthy_at.unwrap_or(u64::MAX), |s| {
            s.is(200)
        });
    r.check(
        "/health fails after the kill",
        failed_at.is_some(),
        "a /health probe without 200",
        format!("{} failed probes: {}", down.len(), describe_samples(&down)),
    );
    let rec = ready_at.map(|t| t.saturating_sub(t0));
    r.figures.recovery_ms = rec;
    r.check(
        "/health and /ready 200 again",
        healthy_at.is_some() && ready_at.is_some(),
        "both 200 within 60 s",
        rec.map_or("not recovered".into(), |d| {
            format!("ready {d} ms after the kill")
        }),
    );
    let (api_after, restarts_after) = r.api_restarts()?;
    r.figures.api_restarts_during_fault = Some(restarts_after - restarts_before);
    r.check(
        "the restart policy restarted the same container once",
        api_after == api_id && restarts_after == restarts_before + 1,
        format!("container {api_id} with {} restarts", restarts_before + 1),
        format!("container {api_after} with {restarts_after} restarts"),
    );
    Ok(())
}
