//! What the drills share to probe and load the service: polling, background samplers,
//! order creation and read-back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::time::millis;

use crate::lab::LabError;
use crate::samples::{self, OrderAttempt, POLL_MS, Sample};
use crate::sequence::{ApiState, Run};
use crate::swarm::{Failover, SpreadLoad};

/// Probe timeouts: a failing request must fail within 1 s; one that does not is a hang.
pub(crate) const PROBE: Timeouts = Timeouts {
    connect: Duration::from_millis(500),
    total: Duration::from_millis(1000),
};

/// Polls `probe` every [`POLL_MS`] until it returns `Some` or `limit` passed.
pub(crate) fn poll<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        let tick = Instant::now();
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() >= limit {
            return None;
        }
        let spent = tick.elapsed();
        let interval = Duration::from_millis(POLL_MS);
        if spent < interval {
            thread::sleep(interval - spent);
        }
    }
}

/// Background probes of one URL every [`POLL_MS`], timestamped from the drill's start.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    pub(crate) fn start(url: String, origin: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let handle = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let t_ms = millis(origin.elapsed());
                let sample = Sample::of(t_ms, &http::get(&url, PROBE));
                if let Ok(mut v) = out.lock() {
                    v.push(sample);
                }
                let spent = tick.elapsed();
                if spent < Duration::from_millis(POLL_MS) {
                    thread::sleep(Duration::from_millis(POLL_MS) - spent);
                }
            }
        });
        Sampler {
            stop,
            samples,
            handle: Some(handle),
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.snapshot()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits until the latest sample satisfies `pred`; returns that sample's arrival (ms).
pub(crate) fn wait_sample(
    s: &Sampler,
    from_ms: u64,
    limit: Duration,
    pred: impl Fn(&Sample) -> bool,
) -> Option<u64> {
    poll(limit, || {
        samples::first_after(&s.snapshot(), from_ms, &pred).map(|x| x.t_ms + x.elapsed_ms)
    })
}

/// What a drill watches through its fault: the api's containers or tasks before it, and
/// the `/health` and `/ready` samplers, running in the background from now on.
pub(crate) type Watch = (ApiState, Sampler, Sampler);

/// Starts watching the api: see [`Watch`].
pub(crate) fn watch_api(r: &Run) -> Result<Watch, LabError> {
    Ok((
        r.api_state()?,
        Sampler::start(r.url("/health"), r.start),
        Sampler::start(r.url("/ready"), r.start),
    ))
}

/// Waits up to `wait` after `from_ms` for `sampler` to answer `status`, and checks that it
/// did within `limit`. Returns the delay (ms) when it answered at all.
pub(crate) fn check_status_within(
    r: &mut Run,
    name: &str,
    sampler: &Sampler,
    from_ms: u64,
    status: u16,
    (limit, wait): (Duration, Duration),
) -> Option<u64> {
    let delay =
        wait_sample(sampler, from_ms, wait, |s| s.is(status)).map(|t| t.saturating_sub(from_ms));
    let limit_ms = millis(limit);
    r.check(
        name,
        delay.is_some_and(|d| d <= limit_ms),
        format!("{status} within {limit_ms} ms"),
        delay.map_or_else(
            || format!("no {status} within {} s", wait.as_secs()),
            |d| format!("{status} after {d} ms"),
        ),
    );
    delay
}

/// Polls `path` on every api node until each has answered `status` once, for up to
/// `limit`; returns the drill time (ms) when the last one did, and each node's outcome
/// (`None`: never within the limit).
pub(crate) fn every_node_answers(
    r: &Run,
    path: &str,
    status: u16,
    limit: Duration,
) -> (Option<u64>, Vec<(String, Option<u64>)>) {
    let nodes = r.api_nodes();
    let mut seen: Vec<(String, Option<u64>)> =
        nodes.iter().map(|(n, _)| (n.clone(), None)).collect();
    let done = poll(limit, || {
        for ((_, addr), (_, at)) in nodes.iter().zip(seen.iter_mut()) {
            if at.is_none()
                && http::get(&format!("http://{addr}{path}"), PROBE)
                    .answer()
                    .is_some_and(|(c, _)| c == status)
            {
                *at = Some(millis(r.start.elapsed()));
            }
        }
        seen.iter().map(|(_, at)| *at).collect::<Option<Vec<u64>>>()
    });
    (done.and_then(|v| v.into_iter().max()), seen)
}

/// `node at t ms, …` or `node never` for [`every_node_answers`]'s outcomes.
pub(crate) fn describe_nodes(seen: &[(String, Option<u64>)], from_ms: u64) -> String {
    seen.iter()
        .map(|(n, at)| match at {
            Some(t) => format!("{n} after {} ms", t.saturating_sub(from_ms)),
            None => format!("{n} never"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn describe_samples(v: &[&Sample]) -> String {
    v.iter()
        .take(5)
        .map(|s| {
            format!(
                "t={} ms {}",
                s.t_ms,
                s.status.map_or_else(|| s.detail.clone(), |c| c.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long reads that could not tell (a 5xx, no answer) are retried. A service just back
/// (an api started at a VM's boot, making its first database connections under emulation)
/// may answer 503 to its first reads; only a 404 says an order is gone. The bound is shared
/// by all reads, so a database that stays down costs it once, not once per order.
const READ_BACK_RETRY: Duration = Duration::from_secs(20);

/// GETs every order; returns the ids that did not answer 200 (with why): a 404 at once,
/// any other answer only when it still was not 200 after [`READ_BACK_RETRY`].
pub(crate) fn read_back(r: &Run, ids: &[String]) -> Vec<String> {
    read_back_at(&r.lab.base_url(), ids, READ_BACK_RETRY)
}

fn read_back_at(base: &str, ids: &[String], retry: Duration) -> Vec<String> {
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    };
    let deadline = Instant::now() + retry;
    let chunks: Vec<Vec<String>> = ids
        .chunks(ids.len().div_ceil(8).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let base = base.to_string();
            thread::spawn(move || {
                chunk
                    .into_iter()
                    .filter_map(|id| {
                        loop {
                            let p = http::get(&format!("{base}/orders/{id}"), timeouts);
                            let answer = p.answer().map(|(c, _)| c);
                            match answer {
                                Some(200) => break None,
                                Some(404) => break Some(format!("{id} (404)")),
                                _ if Instant::now() < deadline => {
                                    thread::sleep(Duration::from_millis(500));
                                }
                                Some(c) => break Some(format!("{id} ({c})")),
                                None => break Some(format!("{id} ({:?})", p.outcome)),
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| {
            h.join()
                .unwrap_or_else(|_| vec!["read-back thread panicked".into()])
        })
        .collect()
}

/// Posts one order to `url` (the order endpoint of a node or the service), timed from
/// `origin`: one request of an order load.
pub(crate) fn post_order(url: &str, origin: Instant) -> OrderAttempt {
    let t_ms = millis(origin.elapsed());
    let probe = http::post_json(url, "", PROBE);
    let order_id = probe
        .answer()
        .filter(|(c, _)| *c == 201)
        .and_then(|(_, b)| samples::order_id(b));
    OrderAttempt {
        sample: Sample::of(t_ms, &probe),
        order_id,
    }
}

/// Starts `clients` clients posting orders round-robin over the api `nodes`, each pausing
/// `pause`, says so in the journal, and gives the load 2 s to be steady before the fault.
pub(crate) fn spread_load(
    r: &mut Run,
    nodes: &[(String, SocketAddr)],
    clients: usize,
    pause: Duration,
    failover: Failover,
) -> SpreadLoad {
    let load = SpreadLoad::start(nodes, clients, pause, failover, r.start);
    let names: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    r.observe(
        "load",
        format!(
            "{clients} clients posting orders round-robin to {}, {} ms pause each{}",
            names.join(", "),
            pause.as_millis(),
            match failover {
                Failover::Never => "",
                Failover::NeverSent => {
                    "; a connection a node does not take goes to the next node"
                }
            }
        ),
    );
    thread::sleep(Duration::from_secs(2));
    load
}

/// Reads every acknowledged order back and checks that none is lost. Without any
/// acknowledged order the load proved nothing, so that fails too.
pub(crate) fn check_none_lost(r: &mut Run, ids: &[String]) {
    let lost = read_back(r, ids);
    r.figures.orders_acknowledged = Some(ids.len() as u64);
    r.figures.orders_lost = Some(lost.len() as u64);
    r.check(
        "no acknowledged order lost",
        !ids.is_empty() && lost.is_empty(),
        "at least one order acknowledged, every acknowledged order readable",
        format!(
            "{} acknowledged, {} not readable{}",
            ids.len(),
            lost.len(),
            if lost.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    lost.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                )
            }
        ),
    );
}

/// Creates `n` orders; returns their ids (a failure to create is an error of the drill).
pub(crate) fn create_orders(r: &mut Run, n: usize) -> Result<Vec<String>, LabError> {
    let url = r.url("/order?symbol=ETH&side=sell&qty=2");
    let mut ids = Vec::new();
    for _ in 0..n {
        let p = http::post_json(&url, "", Timeouts::default());
        match p.answer() {
            Some((201, body)) => match samples::order_id(body) {
                Some(id) => ids.push(id),
                None => {
                    return Err(LabError::new(
                        "create order",
                        format!("201 without order_id: {body}"),
                    ));
                }
            },
            other => {
                return Err(LabError::new(
                    "create order",
                    format!("{other:?} / {:?}", p.outcome),
                ));
            }
        }
    }
    r.observe("orders created", ids.join(", "));
    Ok(ids)
}

/// Waits until /ready answers 200 (after a golden step), then reads the orders back.
pub(crate) fn check_orders(r: &mut Run, when: &str, ids: &[String]) {
    let ready = answers_200(&r.url("/ready"), Duration::from_secs(60));
    let lost = read_back(r, ids);
    let acc = r.figures.orders_lost.unwrap_or(0);
    r.figures.orders_lost = Some(acc + lost.len() as u64);
    r.check(
        &format!("orders intact after {when}"),
        ready.is_some() && lost.is_empty(),
        format!("/ready 200 and all {} orders readable", ids.len()),
        if ready.is_none() {
            "/ready not 200 within 60 s".into()
        } else if lost.is_empty() {
            "all readable".into()
        } else {
            format!("not readable: {}", lost.join(", "))
        },
    );
}

/// Polls `url` until it answers 200 or `limit` passed.
pub(crate) fn answers_200(url: &str, limit: Duration) -> Option<()> {
    poll(limit, || {
        http::get(url, PROBE)
            .answer()
            .filter(|(c, _)| *c == 200)
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, Write};

    /// A loopback service answering `GET /orders/{id}` from a script per id (the last
    /// status repeats); returns its base URL and how often each id was asked.
    fn orders_service(script: &[(&str, &[u16])]) -> (String, Arc<Mutex<HashMap<String, usize>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let script: HashMap<String, Vec<u16>> = script
            .iter()
            .map(|(id, s)| (id.to_string(), s.to_vec()))
            .collect();
        let asked = Arc::new(Mutex::new(HashMap::new()));
        let log = asked.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = std::io::BufReader::new(stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                }
                let id = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/orders/"))
                    .unwrap_or("")
                    .to_string();
                let n = {
                    let mut log = log.lock().expect("log");
                    let n = log.entry(id.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let statuses = script.get(&id).cloned().unwrap_or_else(|| vec![500]);
                let status = statuses[(n - 1).min(statuses.len() - 1)];
                let _ = write!(
                    reader.get_mut(),
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
            }
        });
        (base, asked)
    }

    #[test]
    fn a_503_is_read_again_and_a_404_is_lost_at_once() {
        let (base, asked) = orders_service(&[("1", &[503, 503, 200]), ("2", &[404])]);
        let ids = vec!["1".to_string(), "2".to_string()];
        assert_eq!(
            read_back_at(&base, &ids, Duration::from_secs(10)),
            ["2 (404)"]
        );
        let asked = asked.lock().expect("log");
        assert_eq!(asked["1"], 3, "the 503s were asked again until 200");
        assert_eq!(asked["2"], 1, "a 404 is not asked again");
    }

    #[test]
    fn a_read_still_503_after_the_bound_is_reported_with_its_status() {
        let (base, asked) = orders_service(&[("3", &[503])]);
        let lost = read_back_at(&base, &["3".to_string()], Duration::from_secs(1));
        assert_eq!(lost, ["3 (503)"]);
        assert!(
            asked.lock().expect("log")["3"] > 1,
            "asked again within the bound"
        );
    }
}
