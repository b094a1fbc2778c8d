//! Order load while the db is stopped and started (on the swarm: scaled to 0 and back to 1):
//! fast 503s, no acknowledged order lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::journal::Event;
use crate::lab::LabError;
use crate::probe::{check_none_lost, every_node_answers, post_order};
use crate::samples::{self, OrderAttempt};
use crate::sequence::{Drill, Run, nothing_to_undo};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "db-midflight-loss",
    describe: "20 clients post orders while the db is stopped (swarm: scaled to 0) for 3 s → failures are 503 within 1 s, none hang; /ready 200 on every api node again; every 201 readable afterwards; api not restarted",
    experiment,
    undo: nothing_to_undo,
};

fn experiment(r: &mut Run) -> Result<(), LabError> {
    const CLIENTS: usize = 20;
    let api_before = r.api_state()?;
    let stop = Arc::new(AtomicBool::new(false));
    let attempts: Arc<Mutex<Vec<OrderAttempt>>> = Arc::new(Mutex::new(Vec::new()));
    let url = r.url("/order?symbol=BTC&side=buy&qty=1");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, attempts, url, origin) = (stop.clone(), attempts.clone(), url.clone(), r.start);
        clients.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let a = post_order(&url, origin);
                if let Ok(mut v) = attempts.lock() {
                    v.push(a);
                }
                thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    r.observe(
        "load",
        format!(
            "{CLIENTS} clients posting orders to {}, 100 ms pause each",
            r.lab.service_addr()
        ),
    );
    thread::sleep(Duration::from_secs(2));
    let result = (|| -> Result<(u64, Option<u64>), LabError> {
        let t_stop = r.stop_db()?;
        thread::sleep(Duration::from_secs(3));
        let t_start = r.start_db()?;
        Ok((t_stop, t_start))
    })();
    let recovered = match &result {
        Ok((_, Some(t))) => every_node_answers(r, "/ready", 200, Duration::from_secs(30))
            .0
            .map(|at| at.saturating_sub(*t)),
        _ => None,
    };
    // Keep the load on after the recovery so acknowledged writes straddle both sides.
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let (t_stop, _) = result?;
    let attempts = attempts.lock().map(|v| v.clone()).unwrap_or_default();
    let sum = samples::summarize(&attempts);
    r.observe("load summary", format!("{sum:?}"));
    let failed = attempts.iter().filter(|a| !a.sample.is(201));
    let first = failed.clone().min_by_key(|a| a.sample.t_ms);
    let last = failed.max_by_key(|a| a.sample.t_ms);
    for (what, a) in [("first failed order", first), ("last failed order", last)] {
        if let Some(a) = a {
            r.observations.push(Event {
                t_ms: a.sample.t_ms,
                what: what.into(),
                detail: format!(
                    "{} in {} ms {}",
                    samples::label(&a.sample),
                    a.sample.elapsed_ms,
                    a.sample.detail.chars().take(120).collect::<String>()
                ),
            });
        }
    }
    let detection = attempts
        .iter()
        .filter(|a| a.sample.t_ms >= t_stop && !a.sample.is(201))
        .map(|a| a.sample.t_ms + a.sample.elapsed_ms - t_stop)
        .min();
    r.figures.detection_latency_ms = detection;
    r.figures.recovery_ms = recovered;
    r.check(
        "orders were acknowledged",
        sum.acknowledged > 0,
        "at least one 201",
        format!("{} acknowledged of {} sent", sum.acknowledged, sum.sent),
    );
    r.check(
        "the outage was seen as 503",
        sum.unavailable > 0,
        "at least one 503 during the outage",
        format!("{} x 503", sum.unavailable),
    );
    r.check(
        "failures were fast 503s, none hung",
        sum.hung == 0
            && sum.no_answer == 0
            && sum.other_status == 0
            && sum.slowest_failure_ms <= 1000,
        "only 503 answers within 1000 ms",
        format!(
            "{} hung, {} without answer, {} other statuses, slowest failure {} ms",
            sum.hung, sum.no_answer, sum.other_status, sum.slowest_failure_ms
        ),
    );
    r.check(
        "/ready 200 again after the db start",
        recovered.is_some(),
        "200 from each api node within 30 s",
        recovered.map_or("no 200 within 30 s".into(), |d| format!("after {d} ms")),
    );
    let ids = samples::acknowledged_ids(&attempts);
    check_none_lost(r, &ids);
    r.check_api_not_restarted("api not restarted", &api_before)?;
    Ok(())
}
