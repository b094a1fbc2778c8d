//! Api recreated with a wrong database password: /ready 503 naming authentication.

use std::thread;
use std::time::Duration;

use crate::lab::LabError;
use crate::probe::{answers_200, describe_samples, wait_sample, watch_api};
use crate::samples::{self, Sample};
use crate::sequence::{Drill, Run, nothing_to_undo};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "db-bad-credentials",
    describe: "api recreated with a wrong db password (lifecycle up --set) → /health 200, /ready 503 naming authentication, no restart loop → restore → ready",
    experiment,
    undo: nothing_to_undo,
};

/// Why it does not run on the swarm: the api's environment changes only by updating the
/// service, which replaces every replica, so "no restart" cannot hold and would be untrue.
pub const NOT_ON_SWARM: &str = "on the swarm the api's password changes only through `docker service update --env-add`, which replaces every api replica, so its check that the api is not restarted cannot hold";

/// The wrong password the bad-credentials drill sets; the db keeps its real one (its data
/// directory exists, so the entrypoint does not initialise it again).
pub const WRONG_PASSWORD: &str = "drill-wrong-password";

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let t_inj = r.inject("lifecycle up --set POSTGRES_PASSWORD=<wrong>", || {
        lab.start(&[("POSTGRES_PASSWORD", WRONG_PASSWORD)])
            .map(|()| "api recreated with a wrong database password".to_string())
    })?;
    let (api_before, health, ready) = watch_api(r)?;
    let auth = |s: &Sample| s.is(503) && s.detail.to_ascii_lowercase().contains("auth");
    let detected = wait_sample(&ready, t_inj, Duration::from_secs(10), auth);
    let detection = detected.map(|t| t.saturating_sub(t_inj));
    r.figures.detection_latency_ms = detection;
    let last = ready
        .snapshot()
        .last()
        .map(|s| format!("{:?} {}", s.status, s.detail));
    r.check(
        "/ready 503 naming authentication",
        detection.is_some(),
        "503 with a reason mentioning authentication",
        match detection {
            Some(d) => format!("after {d} ms: {}", last.unwrap_or_default()),
            None => format!("not within 10 s; last: {}", last.unwrap_or_default()),
        },
    );
    // Hold the fault long enough for a restart loop to show (healthcheck every 2 s).
    thread::sleep(Duration::from_secs(4));
    let t_hold_end = r.now_ms();
    let health_samples = health.finish();
    r.timeline("/health", &health_samples);
    let bad = samples::violations(&health_samples, t_inj, t_hold_end, |s| s.is(200));
    r.check(
        "/health 200 with the wrong password",
        bad.is_empty() && !health_samples.is_empty(),
        "every /health probe 200",
        format!(
            "{} probes, {} not 200 {}",
            health_samples.len(),
            bad.len(),
            describe_samples(&bad)
        ),
    );
    r.check_api_not_restarted("api not restarted (no restart loop)", &api_before)?;
    let t_restore = r.restore("lifecycle up (env file's password)", || {
        lab.start(&[])
            .map(|()| "api recreated with the env file's password".to_string())
    })?;
    if let Some(t) = t_restore {
        let rec = answers_200(&r.url("/ready"), Duration::from_secs(30)).map(|()| r.now_ms() - t);
        // Counted from the restoring command's start: it recreates both containers.
        r.figures.recovery_ms = rec;
        r.check(
            "/ready 200 after restoring the password",
            rec.is_some(),
            "200 within 30 s",
            rec.map_or("no 200 within 30 s".into(), |d| {
                format!("200 {d} ms after the restore began")
            }),
        );
    }
    let ready_samples = ready.finish();
    r.timeline("/ready", &ready_samples);
    Ok(())
}
