//! Api recreated with a wrong database password: /ready 503 naming authentication. On the
//! swarm the api's environment changes only by updating its service, which replaces every
//! replica: there the drill checks that each replica was replaced exactly once, on its
//! node, and that none restarts afterwards (no restart loop), instead of "not restarted".

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use crate::lab::LabError;
use crate::probe::{
    Sampler, answers_200, describe_nodes, describe_samples, every_node_answers, poll, wait_sample,
    watch_api,
};
use crate::samples::{self, Sample};
use crate::sequence::{Drill, Run, nothing_to_undo};
use crate::swarm::{self, API, SwarmOps};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "db-bad-credentials",
    describe: "api recreated with a wrong db password (lifecycle up --set; swarm: docker service update of the api, each replica replaced once on its node) → /health 200, /ready 503 naming authentication (swarm: on every worker), no restart loop → restore (swarm: stack redeploy of the deployed digest) → /ready 200",
    experiment,
    // The recovery's normal stack (`lifecycle up`, or the swarm's deploy) sets the env
    // file's password again.
    undo: nothing_to_undo,
};

/// The wrong password the bad-credentials drill sets; the db keeps its real one (its data
/// directory exists, so the entrypoint does not initialise it again).
pub const WRONG_PASSWORD: &str = "drill-wrong-password";

/// How long the update may take to put a new replica with the wrong password on every
/// worker: stop-first, one replica at a time, each running once healthy (about 20 s here;
/// generous for a loaded host).
const ROLL_LIMIT: Duration = Duration::from_secs(90);

/// How long the replaced replicas are watched for a restart: more than the api's
/// healthcheck needs to call a replica unhealthy (3 failed checks 2 s apart), so a replica
/// swarm would restart for it shows as a new task within the hold.
const HOLD: Duration = Duration::from_secs(8);

/// A /ready answer that names the failed authentication.
fn auth_503(s: &Sample) -> bool {
    s.is(503) && s.detail.to_ascii_lowercase().contains("auth")
}

fn experiment(r: &mut Run) -> Result<(), LabError> {
    if let Some(ops) = r.lab.swarm() {
        return on_swarm(r, ops);
    }
    let lab = r.lab;
    let t_inj = r.inject("lifecycle up --set POSTGRES_PASSWORD=<wrong>", || {
        lab.start(&[("POSTGRES_PASSWORD", WRONG_PASSWORD)])
            .map(|()| "api recreated with a wrong database password".to_string())
    })?;
    let (api_before, health, ready) = watch_api(r)?;
    let detected = wait_sample(&ready, t_inj, Duration::from_secs(10), auth_503);
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

/// The samplers of one path on every api node.
fn sample_each(r: &Run, nodes: &[(String, SocketAddr)], path: &str) -> Vec<(String, Sampler)> {
    nodes
        .iter()
        .map(|(n, a)| {
            (
                n.clone(),
                Sampler::start(format!("http://{a}{path}"), r.start),
            )
        })
        .collect()
}

/// When each node's samples first satisfied `pred` at or after `from_ms` (the answer's
/// arrival), waiting up to `limit` for all of them.
fn first_on_each(
    samplers: &[(String, Sampler)],
    from_ms: u64,
    limit: Duration,
    pred: fn(&Sample) -> bool,
) -> Vec<(String, Option<u64>)> {
    let at = || -> Vec<(String, Option<u64>)> {
        samplers
            .iter()
            .map(|(n, s)| {
                let first = samples::first_after(&s.snapshot(), from_ms, pred)
                    .map(|x| x.t_ms + x.elapsed_ms);
                (n.clone(), first)
            })
            .collect()
    };
    poll(limit, || {
        at().iter().all(|(_, t)| t.is_some()).then_some(())
    });
    at()
}

/// The latest of every node's time, when each has one.
fn all_at(seen: &[(String, Option<u64>)]) -> Option<u64> {
    seen.iter()
        .map(|(_, t)| *t)
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().max())
}

/// The swarm variant: the api service updated with a wrong password, every replica
/// replaced once, 503 naming authentication on every worker, no restart over the hold,
/// then the recorded deployment redeployed.
fn on_swarm(r: &mut Run, ops: &dyn SwarmOps) -> Result<(), LabError> {
    let nodes = ops.api_nodes();
    let workers: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let before = ops.inspect()?;
    let health = sample_each(r, &nodes, "/health");
    let ready = sample_each(r, &nodes, "/ready");
    let t_inj = r.inject(
        "docker service update of the api with POSTGRES_PASSWORD=<wrong>",
        || ops.update_api_env(&[("POSTGRES_PASSWORD", WRONG_PASSWORD)]),
    )?;

    // Every worker's new replica answers /ready 503 naming authentication.
    let seen = first_on_each(&ready, t_inj, ROLL_LIMIT, auth_503);
    let detected = all_at(&seen);
    r.figures.detection_latency_ms = detected.map(|t| t.saturating_sub(t_inj));
    r.check(
        "/ready 503 naming authentication on every worker",
        detected.is_some(),
        format!(
            "503 with a reason mentioning authentication from each of {} within {} s",
            workers.join(", "),
            ROLL_LIMIT.as_secs()
        ),
        describe_nodes(&seen, t_inj),
    );

    // Each replica replaced once, on its node: a new running task per worker.
    let settled = swarm::wait_inspect(ops, r.start, ROLL_LIMIT, Duration::from_millis(500), |d| {
        let new = swarm::new_tasks(&before, d, API);
        let running = swarm::running_tasks(d, API);
        workers.iter().all(|w| {
            new.get(w).is_some_and(|ts| {
                ts.iter().any(|t| {
                    t.split_whitespace()
                        .next()
                        .is_some_and(|id| running.iter().any(|r| r == id))
                })
            })
        })
    });
    let replaced = ops.inspect()?;
    let new = swarm::new_tasks(&before, &replaced, API);
    r.observe(
        "api replicas replaced",
        match settled {
            Some(t) => format!(
                "a new running task on every worker {} ms after the update was issued; new tasks: {}",
                t.saturating_sub(t_inj),
                swarm::describe_new_tasks(&new)
            ),
            None => format!(
                "not on every worker within {} s; new tasks: {}",
                ROLL_LIMIT.as_secs(),
                swarm::describe_new_tasks(&new)
            ),
        },
    );
    r.check(
        "every api replica replaced exactly once, on the same nodes",
        swarm::replaced_once(&before, &replaced, API, &workers),
        format!(
            "one new task, running, on each of {} and no other",
            workers.join(", ")
        ),
        format!(
            "new tasks: {}; running on {}",
            swarm::describe_new_tasks(&new),
            swarm::running_on(&replaced, API).join(", ")
        ),
    );

    // The hold: no replica restarts with the wrong password.
    let t_hold = r.now_ms();
    thread::sleep(HOLD);
    let held = ops.inspect()?;
    let t_hold_end = r.now_ms();
    let restarted = swarm::new_tasks(&replaced, &held, API);
    let since_before: usize = swarm::new_tasks(&before, &held, API)
        .values()
        .map(Vec::len)
        .sum();
    r.figures.api_restarts_during_fault = Some(since_before.saturating_sub(workers.len()) as i64);
    r.check(
        "no api task restarted over the hold (no restart loop)",
        restarted.is_empty() && swarm::whole(&held, API, &workers),
        format!(
            "the same running tasks {} s later, one on each of {}",
            HOLD.as_secs(),
            workers.join(", ")
        ),
        format!(
            "new tasks over {} ms: {}; running on {}",
            t_hold_end - t_hold,
            swarm::describe_new_tasks(&restarted),
            swarm::running_on(&held, API).join(", ")
        ),
    );

    // /health 200 on every worker from its new replica's first answer to the hold's end
    // (before that the node's port is closed while its replica is replaced: the update,
    // not the fault), and /ready still naming authentication at the end.
    let mut found = Vec::new();
    let mut all_ok = true;
    for ((node, h), (_, since)) in health.iter().zip(&seen) {
        let v = h.snapshot();
        let from = since.unwrap_or(t_hold_end);
        let bad = samples::violations(&v, from, t_hold_end, |s| s.is(200));
        let n = samples::count_between(&v, from, t_hold_end);
        all_ok &= since.is_some() && bad.is_empty() && n > 0;
        found.push(format!(
            "{node}: {n} probes, {} not 200 {}",
            bad.len(),
            describe_samples(&bad)
        ));
    }
    r.check(
        "/health 200 on every worker with the wrong password",
        all_ok,
        "every /health probe 200 from the new replica's first answer to the hold's end",
        found.join("; "),
    );
    let last: Vec<(String, Option<Sample>)> = ready
        .iter()
        .map(|(n, s)| (n.clone(), s.snapshot().last().cloned()))
        .collect();
    r.check(
        "/ready still 503 naming authentication at the hold's end",
        last.iter().all(|(_, s)| s.as_ref().is_some_and(auth_503)),
        "503 naming authentication from each worker",
        last.iter()
            .map(|(n, s)| match s {
                Some(s) => format!(
                    "{n}: {:?} {}",
                    s.status,
                    s.detail.chars().take(80).collect::<String>()
                ),
                None => format!("{n}: no probe"),
            })
            .collect::<Vec<_>>()
            .join("; "),
    );

    let t_restore = r.restore(
        "docker stack deploy (the deployed digest, the env file's password)",
        || ops.redeploy(),
    )?;
    if let Some(t) = t_restore {
        // From the samplers, which ran through the redeploy: the redeploy itself returns
        // only after the update's monitor period.
        let back = first_on_each(&ready, t, Duration::from_secs(30), |s| s.is(200));
        let rec = all_at(&back).map(|at| at.saturating_sub(t));
        r.figures.recovery_ms = rec;
        let (all_up, seen_up) = every_node_answers(r, "/ready", 200, Duration::from_secs(30));
        r.check(
            "/ready 200 on every worker after the redeploy",
            rec.is_some() && all_up.is_some(),
            "200 from each worker within 30 s of the redeploy's end",
            format!(
                "first 200: {}; after the redeploy: {}",
                describe_nodes(&back, t),
                describe_nodes(&seen_up, t)
            ),
        );
    }
    for (node, s) in health {
        r.timeline(&format!("{node} /health"), &s.finish());
    }
    for (node, s) in ready {
        r.timeline(&format!("{node} /ready"), &s.finish());
    }
    Ok(())
}
