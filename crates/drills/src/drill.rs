//! The drills: steady state → inject → observe → recover (always) → verify → figures.
//!
//! Each drill is a function over a [`Lab`]; [`run`] wraps it so the steady state is checked
//! first and the recovery runs whatever the drill did (like `finally`), then decides the
//! verdict with [`journal::decide`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use stackpilot_core::http::{self, TcpOutcome, Timeouts};
use stackpilot_core::time::{millis, now_rfc3339};
use verify::report::{Report, Verdict as CheckVerdict};

use crate::journal::{self, Assertion, Event, Figures, Journal, Recovery, SteadyState};
use crate::lab::{Golden, LabError, LabOps};
use crate::samples::{self, OrderAttempt, POLL_MS, Sample};

/// Every drill, in the order `run all` runs them (cheap and local first, the node reboot last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drill {
    /// Stop the db: /ready 503 fast, /health 200, no api restart; start it: ready again.
    DbDown,
    /// Api recreated with a wrong database password: /ready 503 naming authentication.
    DbBadCredentials,
    /// Order load while the db is stopped and started: fast 503s, no acknowledged order lost.
    DbMidflightLoss,
    /// Firewall rule on the node drops the service port: verify fails at TCP.
    PortUnreachable,
    /// SIGKILL the api process: the restart policy brings it back.
    ProcessCrash,
    /// Orders survive `make down` + `make up` and `make clean` + `make demo`.
    RestartPersistence,
    /// Halt the node and start it: the stack comes back by itself, data intact.
    NodeReboot,
}

/// What `drills list` shows: every drill with what it proves.
pub const ALL: [Drill; 7] = [
    Drill::DbDown,
    Drill::DbBadCredentials,
    Drill::DbMidflightLoss,
    Drill::PortUnreachable,
    Drill::ProcessCrash,
    Drill::RestartPersistence,
    Drill::NodeReboot,
];

impl Drill {
    /// The drill's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Drill::DbDown => "db-down",
            Drill::DbBadCredentials => "db-bad-credentials",
            Drill::DbMidflightLoss => "db-midflight-loss",
            Drill::PortUnreachable => "port-unreachable",
            Drill::ProcessCrash => "process-crash",
            Drill::RestartPersistence => "restart-persistence",
            Drill::NodeReboot => "node-reboot",
        }
    }

    /// One line: the fault and the expected outcome.
    pub fn describe(self) -> &'static str {
        match self {
            Drill::DbDown => {
                "stop db → TCP open, /health 200, /ready 503 within 1 s, api not restarted → start db → /ready 200 within 2 s"
            }
            Drill::DbBadCredentials => {
                "api recreated with a wrong db password (lifecycle up --set) → /health 200, /ready 503 naming authentication, no restart loop → restore → ready"
            }
            Drill::DbMidflightLoss => {
                "20 clients post orders while the db is stopped for 3 s → failures are 503 within 1 s, none hang; every 201 readable afterwards; api not restarted"
            }
            Drill::PortUnreachable => {
                "firewall rule on the node drops the service port → verify fails at TCP, HTTP checks not run → unblock → verify passes"
            }
            Drill::ProcessCrash => {
                "SIGKILL the api process → /health fails → restart policy brings it back → /health and /ready 200; time to recover"
            }
            Drill::RestartPersistence => {
                "orders survive make down + make up, and make clean + make demo"
            }
            Drill::NodeReboot => {
                "halt the node and start it → the stack comes back by itself, orders intact, verify passes"
            }
        }
    }

    /// The drill named `name`.
    pub fn by_name(name: &str) -> Option<Drill> {
        ALL.into_iter().find(|d| d.name() == name)
    }
}

/// Choices for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long the final verify may wait for the stack to pass again.
    pub recovery_wait: Duration,
    /// Leave the fault in place for investigation: no restoring step and no recovery run.
    /// The drill then fails as not recovered, and the node needs `make demo-reviewer`.
    pub keep_fault: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            recovery_wait: Duration::from_secs(90),
            keep_fault: false,
        }
    }
}

/// Probe timeouts: a failing request must fail within 1 s; one that does not is a hang.
const PROBE: Timeouts = Timeouts {
    connect: Duration::from_millis(500),
    total: Duration::from_millis(1000),
};

/// The recorder a drill writes into: timestamps relative to the drill's start.
struct Run<'a> {
    lab: &'a dyn LabOps,
    start: Instant,
    injection: Vec<Event>,
    observations: Vec<Event>,
    assertions: Vec<Assertion>,
    figures: Figures,
    keep_fault: bool,
}

impl Run<'_> {
    fn now_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }

    fn event(&self, what: &str, detail: impl Into<String>) -> Event {
        Event {
            t_ms: self.now_ms(),
            what: what.into(),
            detail: detail.into(),
        }
    }

    fn observe(&mut self, what: &str, detail: impl Into<String>) {
        let e = self.event(what, detail);
        eprintln!("drills: [{:>6} ms] {}: {}", e.t_ms, e.what, e.detail);
        self.observations.push(e);
    }

    /// Runs an injection (or restoring) step, recording it; returns when it ended (ms).
    fn inject(
        &mut self,
        what: &str,
        f: impl FnOnce() -> Result<String, LabError>,
    ) -> Result<u64, LabError> {
        let t0 = self.now_ms();
        let r = f();
        let mut e = self.event(what, "");
        e.t_ms = t0;
        e.detail = match &r {
            Ok(out) => format!("ok in {} ms: {}", self.now_ms() - t0, out.trim()),
            Err(err) => format!("FAILED after {} ms: {err}", self.now_ms() - t0),
        };
        eprintln!("drills: [{:>6} ms] inject {}: {}", e.t_ms, e.what, e.detail);
        self.injection.push(e);
        r.map(|_| self.now_ms())
    }

    /// A restoring step that is part of the experiment; skipped with `keep_fault`. Returns
    /// when the step *began*: recovery times count from there (the conservative end; the
    /// step itself, e.g. starting a container through the transport, is part of recovering).
    fn restore(
        &mut self,
        what: &str,
        f: impl FnOnce() -> Result<String, LabError>,
    ) -> Result<Option<u64>, LabError> {
        if self.keep_fault {
            self.observe(what, "skipped: --keep-fault leaves the fault in place");
            return Ok(None);
        }
        let began = self.now_ms();
        self.inject(what, f).map(|_| Some(began))
    }

    fn check(
        &mut self,
        name: &str,
        passed: bool,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) {
        let a = Assertion {
            name: name.into(),
            passed,
            expected: expected.into(),
            found: found.into(),
        };
        eprintln!(
            "drills: [{:>6} ms] {} {}: found {}",
            self.now_ms(),
            if passed { "ok  " } else { "FAIL" },
            a.name,
            a.found
        );
        self.assertions.push(a);
    }

    /// Records a probe's timeline (every change of outcome) as observations.
    fn timeline(&mut self, probe: &str, samples: &[Sample]) {
        for s in samples::transitions(samples) {
            let body: String = s.detail.chars().take(120).collect();
            self.observations.push(Event {
                t_ms: s.t_ms,
                what: probe.to_string(),
                detail: match s.status {
                    Some(code) => format!("{code} in {} ms {body}", s.elapsed_ms),
                    None => format!("{} after {} ms", s.detail, s.elapsed_ms),
                },
            });
        }
    }

    fn api_restarts(&self) -> Result<(String, i64), LabError> {
        let st = self.lab.status()?;
        let api = st
            .service("api")
            .ok_or_else(|| LabError::new("lifecycle status", "no api container"))?;
        Ok((api.id.clone(), api.restarts))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.lab.base_url())
    }
}

/// Polls `probe` every [`POLL_MS`] until it returns `Some` or `limit` passed.
fn poll<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
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
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(url: String, origin: Instant) -> Sampler {
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

    fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn finish(mut self) -> Vec<Sample> {
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
fn wait_sample(
    s: &Sampler,
    from_ms: u64,
    limit: Duration,
    pred: impl Fn(&Sample) -> bool,
) -> Option<u64> {
    poll(limit, || {
        samples::first_after(&s.snapshot(), from_ms, &pred).map(|x| x.t_ms + x.elapsed_ms)
    })
}

fn describe_samples(v: &[&Sample]) -> String {
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

fn first_failure(r: &Report) -> String {
    match r.first_failure() {
        Some(c) => format!("{}: {}", c.id, c.reason),
        None if r.passed => "every check passed".into(),
        None => "checks not run".into(),
    }
}

/// Runs one drill: steady state, the drill, recovery (always), verdict. Never panics on lab
/// failures: they end up in the journal.
pub fn run(drill: Drill, lab: &dyn LabOps, opts: &Options) -> Journal {
    let started_at = now_rfc3339();
    let mut r = Run {
        lab,
        start: Instant::now(),
        injection: vec![],
        observations: vec![],
        assertions: vec![],
        figures: Figures::default(),
        keep_fault: opts.keep_fault,
    };
    eprintln!(
        "\n=== drill {} on {} ({})",
        drill.name(),
        lab.node(),
        lab.env()
    );
    let steady = match lab.verify(None) {
        Ok(rep) => SteadyState {
            passed: rep.passed,
            reason: first_failure(&rep),
        },
        Err(e) => SteadyState {
            passed: false,
            reason: e.to_string(),
        },
    };
    r.observe("steady state", steady.reason.clone());
    let (mut step_error, recovery) = if steady.passed {
        let outcome = match drill {
            Drill::DbDown => db_down(&mut r),
            Drill::DbBadCredentials => db_bad_credentials(&mut r),
            Drill::DbMidflightLoss => db_midflight_loss(&mut r),
            Drill::PortUnreachable => port_unreachable(&mut r),
            Drill::ProcessCrash => process_crash(&mut r),
            Drill::RestartPersistence => restart_persistence(&mut r),
            Drill::NodeReboot => node_reboot(&mut r),
        };
        let recovery = recover(drill, &mut r, opts);
        (outcome.err().map(|e| e.to_string()), Some(recovery))
    } else {
        (None, None)
    };
    if step_error.is_none() && steady.passed && r.assertions.is_empty() {
        step_error = Some("the drill made no observation".into());
    }
    r.observations.sort_by_key(|e| e.t_ms);
    let (verdict, reason) = journal::decide(
        &steady,
        &r.assertions,
        step_error.as_deref(),
        recovery.as_ref(),
    );
    eprintln!("=== drill {}: {}: {reason}", drill.name(), verdict.as_str());
    Journal {
        drill: drill.name().into(),
        node: lab.node().into(),
        env: lab.env().into(),
        started_at,
        duration_ms: r.now_ms(),
        steady_state: steady,
        injection: r.injection,
        observations: r.observations,
        assertions: r.assertions,
        recovery,
        figures: r.figures,
        verdict,
        reason,
    }
}

/// Only the recovery of `drill` (idempotent): for a node a drill left broken, e.g. after
/// `--keep-fault` or an interrupted run. Nothing is injected.
pub fn recover_only(drill: Drill, lab: &dyn LabOps, opts: &Options) -> Recovery {
    let mut r = Run {
        lab,
        start: Instant::now(),
        injection: vec![],
        observations: vec![],
        assertions: vec![],
        figures: Figures::default(),
        keep_fault: false,
    };
    let opts = Options {
        keep_fault: false,
        ..opts.clone()
    };
    recover(drill, &mut r, &opts)
}

/// The recovery that always runs: undo the drill's fault idempotently, the normal stack
/// through the golden path, then verify (waiting) must pass.
fn recover(drill: Drill, r: &mut Run, opts: &Options) -> Recovery {
    let lab = r.lab;
    let mut actions = Vec::new();
    let port = lab.service_addr().port().to_string();
    let mut act = |r: &Run, what: &str, res: Result<String, LabError>| {
        let e = r.event(
            what,
            match res {
                Ok(out) => format!("ok: {}", out.trim()),
                Err(e) => format!("FAILED: {e}"),
            },
        );
        eprintln!(
            "drills: [{:>6} ms] recover {}: {}",
            e.t_ms, e.what, e.detail
        );
        actions.push(e);
    };
    if opts.keep_fault {
        act(r, "recovery", Ok("skipped: --keep-fault".into()));
    } else {
        match drill {
            Drill::PortUnreachable => act(
                r,
                "drills node unblock-port",
                lab.node_step(&["unblock-port", "--port", &port]),
            ),
            // Only when the node's engine does not answer: starting a running node costs
            // a full `lab up`.
            Drill::NodeReboot if lab.status().is_err() => act(
                r,
                Golden::StartNode.command(),
                lab.golden(Golden::StartNode).map(|()| String::new()),
            ),
            _ => {}
        }
        act(r, "lifecycle up", lab.start(&[]).map(|()| String::new()));
    }
    let wait = if opts.keep_fault {
        None
    } else {
        Some(opts.recovery_wait)
    };
    let (verified, reason) = match lab.verify(wait) {
        Ok(rep) => (rep.passed, first_failure(&rep)),
        Err(e) => (false, e.to_string()),
    };
    act(r, "verify", Ok(reason.clone()));
    Recovery {
        actions,
        verified,
        reason,
    }
}

fn db_down(r: &mut Run) -> Result<(), LabError> {
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
    let (api_after, restarts_after) = r.api_restarts()?;
    r.figures.api_restarts_during_fault = Some(restarts_after - restarts_before);
    r.check(
        "api not restarted (no crash loop)",
        api_after == api_id && restarts_after == restarts_before,
        format!("container {api_id} with {restarts_before} restarts"),
        format!("container {api_after} with {restarts_after} restarts"),
    );
    Ok(())
}

/// The wrong password the bad-credentials drill sets; the db keeps its real one (its data
/// directory exists, so the entrypoint does not initialise it again).
pub const WRONG_PASSWORD: &str = "drill-wrong-password";

fn db_bad_credentials(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let t_inj = r.inject("lifecycle up --set POSTGRES_PASSWORD=<wrong>", || {
        lab.start(&[("POSTGRES_PASSWORD", WRONG_PASSWORD)])
            .map(|()| "api recreated with a wrong database password".to_string())
    })?;
    let (api_id, restarts_before) = r.api_restarts()?;
    let ready = Sampler::start(r.url("/ready"), r.start);
    let health = Sampler::start(r.url("/health"), r.start);
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
    let (api_after, restarts_after) = r.api_restarts()?;
    r.figures.api_restarts_during_fault = Some(restarts_after - restarts_before);
    r.check(
        "api not restarted (no restart loop)",
        api_after == api_id && restarts_after == restarts_before,
        format!("container {api_id} with {restarts_before} restarts"),
        format!("container {api_after} with {restarts_after} restarts"),
    );
    let t_restore = r.restore("lifecycle up (env file's password)", || {
        lab.start(&[])
            .map(|()| "api recreated with the env file's password".to_string())
    })?;
    if let Some(t) = t_restore {
        let rec = poll(Duration::from_secs(30), || {
            http::get(&r.url("/ready"), PROBE)
                .answer()
                .filter(|(c, _)| *c == 200)
                .map(|_| ())
        })
        .map(|()| r.now_ms() - t);
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

fn db_midflight_loss(r: &mut Run) -> Result<(), LabError> {
    const CLIENTS: usize = 20;
    let lab = r.lab;
    let env = lab.env().to_string();
    let (api_id, restarts_before) = r.api_restarts()?;
    let stop = Arc::new(AtomicBool::new(false));
    let attempts: Arc<Mutex<Vec<OrderAttempt>>> = Arc::new(Mutex::new(Vec::new()));
    let url = r.url("/order?symbol=BTC&side=buy&qty=1");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (stop, attempts, url, origin) = (stop.clone(), attempts.clone(), url.clone(), r.start);
        clients.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t_ms = millis(origin.elapsed());
                let probe = http::post_json(&url, "", PROBE);
                let order_id = probe
                    .answer()
                    .filter(|(c, _)| *c == 201)
                    .and_then(|(_, b)| samples::order_id(b));
                let a = OrderAttempt {
                    sample: Sample::of(t_ms, &probe),
                    order_id,
                };
                if let Ok(mut v) = attempts.lock() {
                    v.push(a);
                }
                thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    r.observe(
        "load",
        format!("{CLIENTS} clients posting orders, 100 ms pause each"),
    );
    thread::sleep(Duration::from_secs(2));
    let result = (|| -> Result<(u64, Option<u64>), LabError> {
        let t_stop = r.inject("drills node stop db", || {
            lab.node_step(&["stop", "--env", &env, "--service", "db"])
        })?;
        thread::sleep(Duration::from_secs(3));
        let t_start = r.restore("drills node start db", || {
            lab.node_step(&["start", "--env", &env, "--service", "db"])
        })?;
        Ok((t_stop, t_start))
    })();
    let recovered = match &result {
        Ok((_, Some(t))) => {
            let url = r.url("/ready");
            let ok = poll(Duration::from_secs(30), || {
                http::get(&url, PROBE)
                    .answer()
                    .filter(|(c, _)| *c == 200)
                    .map(|_| ())
            });
            ok.map(|()| r.now_ms() - t)
        }
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
        "200 within 30 s",
        recovered.map_or("no 200 within 30 s".into(), |d| format!("after {d} ms")),
    );
    let ids = samples::acknowledged_ids(&attempts);
    let lost = read_back(r, &ids);
    r.figures.orders_acknowledged = Some(ids.len() as u64);
    r.figures.orders_lost = Some(lost.len() as u64);
    r.check(
        "no acknowledged order lost",
        lost.is_empty(),
        format!("all {} acknowledged orders readable", ids.len()),
        if lost.is_empty() {
            "all readable".into()
        } else {
            format!(
                "{} not readable: {}",
                lost.len(),
                lost.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )
        },
    );
    let (api_after, restarts_after) = r.api_restarts()?;
    r.figures.api_restarts_during_fault = Some(restarts_after - restarts_before);
    r.check(
        "api not restarted",
        api_after == api_id && restarts_after == restarts_before,
        format!("container {api_id} with {restarts_before} restarts"),
        format!("container {api_after} with {restarts_after} restarts"),
    );
    Ok(())
}

/// GETs every order; returns the ids that did not answer 200 (with why).
fn read_back(r: &Run, ids: &[String]) -> Vec<String> {
    let base = r.lab.base_url();
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    };
    let chunks: Vec<Vec<String>> = ids
        .chunks(ids.len().div_ceil(8).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let base = base.clone();
            thread::spawn(move || {
                chunk
                    .into_iter()
                    .filter_map(|id| {
                        let p = http::get(&format!("{base}/orders/{id}"), timeouts);
                        match p.answer() {
                            Some((200, _)) => None,
                            Some((c, _)) => Some(format!("{id} ({c})")),
                            None => Some(format!("{id} ({:?})", p.outcome)),
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

fn port_unreachable(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let addr: SocketAddr = lab.service_addr();
    let port = addr.port().to_string();
    let t_inj = r.inject("drills node block-port", || {
        lab.node_step(&["block-port", "--port", &port, "--expire-after", "300"])
    })?;
    let detected = poll(Duration::from_secs(5), || {
        let p = http::tcp_connect(addr, Duration::from_millis(300));
        (p.outcome != TcpOutcome::Connected).then_some(p)
    });
    let detection = detected.as_ref().map(|_| r.now_ms() - t_inj);
    r.figures.detection_latency_ms = detection;
    r.check(
        "TCP connect to the service port fails",
        detected.is_some(),
        "no TCP connection within 5 s of the block",
        detected.map_or("still connecting".into(), |p| {
            format!("{:?} after {} ms", p.outcome, detection.unwrap_or(0))
        }),
    );
    match lab.verify(None) {
        Ok(rep) => {
            let first = rep
                .first_failure()
                .map(|c| c.id.clone())
                .unwrap_or_default();
            r.check(
                "verify fails at the TCP layer",
                !rep.passed && first == "tcp.connect",
                "first failure tcp.connect",
                format!(
                    "passed={}, first failure: {}",
                    rep.passed,
                    first_failure(&rep)
                ),
            );
            let http: Vec<_> = rep.checks.iter().filter(|c| c.layer == 3).collect();
            let all_not_run = !http.is_empty()
                && http.iter().all(|c| {
                    c.verdict == CheckVerdict::NotRun
                        && c.reason.contains("not run")
                        && c.reason.contains("tcp")
                });
            r.check(
                "HTTP checks not run because TCP is unreachable",
                all_not_run,
                "every layer-3 check 'not run: … tcp …'",
                http.iter()
                    .map(|c| format!("{} {}: {}", c.id, c.verdict.as_str(), c.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        Err(e) => r.check(
            "verify fails at the TCP layer",
            false,
            "a verify report",
            e.to_string(),
        ),
    }
    let t_restore = r.restore("drills node unblock-port", || {
        lab.node_step(&["unblock-port", "--port", &port])
    })?;
    if let Some(t) = t_restore {
        let back = poll(Duration::from_secs(10), || {
            (http::tcp_connect(addr, Duration::from_millis(300)).outcome == TcpOutcome::Connected)
                .then_some(())
        });
        let rec = back.map(|()| r.now_ms() - t);
        r.figures.recovery_ms = rec;
        r.check(
            "TCP reachable again after the unblock",
            rec.is_some(),
            "TCP connection within 10 s",
            rec.map_or("not reachable".into(), |d| format!("after {d} ms")),
        );
    }
    Ok(())
}

fn process_crash(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let env = lab.env().to_string();
    let (api_id, restarts_before) = r.api_restarts()?;
    let health = Sampler::start(r.url("/health"), r.start);
    let ready = Sampler::start(r.url("/ready"), r.start);
    thread::sleep(Duration::from_millis(200));
    let t0 = r.now_ms();
    r.inject("drills node kill api (SIGKILL)", || {
        lab.node_step(&["kill", "--env", &env, "--service", "api"])
    })?;
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

/// Creates `n` orders; returns their ids (a failure to create is an error of the drill).
fn create_orders(r: &mut Run, n: usize) -> Result<Vec<String>, LabError> {
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
fn check_orders(r: &mut Run, when: &str, ids: &[String]) {
    let url = r.url("/ready");
    let ready = poll(Duration::from_secs(60), || {
        http::get(&url, PROBE)
            .answer()
            .filter(|(c, _)| *c == 200)
            .map(|_| ())
    });
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

fn restart_persistence(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let ids = create_orders(r, 5)?;
    r.figures.orders_acknowledged = Some(ids.len() as u64);
    r.figures.orders_lost = Some(0);
    r.inject(Golden::Down.command(), || {
        lab.golden(Golden::Down).map(|()| String::new())
    })?;
    let t = r.inject(Golden::Up.command(), || {
        lab.golden(Golden::Up).map(|()| String::new())
    })?;
    let up_started = r.injection.last().map_or(t, |e| e.t_ms);
    check_orders(r, "make down + make up", &ids);
    r.figures.recovery_ms = Some(r.now_ms() - up_started);
    r.inject(Golden::Clean.command(), || {
        lab.golden(Golden::Clean).map(|()| String::new())
    })?;
    r.inject(Golden::Demo.command(), || {
        lab.golden(Golden::Demo).map(|()| String::new())
    })?;
    check_orders(r, "make clean + make demo", &ids);
    Ok(())
}

fn node_reboot(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let ids = create_orders(r, 3)?;
    r.figures.orders_acknowledged = Some(ids.len() as u64);
    let (api_id, _) = r.api_restarts()?;
    let t_halt = r.inject(Golden::HaltNode.command(), || {
        lab.golden(Golden::HaltNode).map(|()| String::new())
    })?;
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use verify::report::{Check, ServiceState};

    use super::*;
    use crate::journal::Verdict;
    use crate::lab::{Container, Status};

    /// A lab that records every call; verify answers from a script, in order.
    struct Fake {
        calls: RefCell<Vec<String>>,
        verdicts: RefCell<Vec<bool>>,
        fail_steps: Vec<&'static str>,
    }

    impl Fake {
        fn new(verdicts: &[bool], fail_steps: &[&'static str]) -> Fake {
            Fake {
                calls: RefCell::new(vec![]),
                verdicts: RefCell::new(verdicts.iter().rev().copied().collect()),
                fail_steps: fail_steps.to_vec(),
            }
        }

        fn called(&self, what: &str) -> bool {
            self.calls.borrow().iter().any(|c| c.starts_with(what))
        }
    }

    fn report(passed: bool) -> Report {
        let check = |id: &str, layer: u8, verdict: CheckVerdict, reason: &str| Check {
            id: id.into(),
            layer,
            layer_name: "x".into(),
            verdict,
            reason: reason.into(),
            ms: None,
        };
        let checks = if passed {
            vec![check("tcp.connect", 2, CheckVerdict::Pass, "accepted")]
        } else {
            vec![
                check("tcp.connect", 2, CheckVerdict::Fail, "no TCP answer"),
                check(
                    "http.ready",
                    3,
                    CheckVerdict::NotRun,
                    "not run: layer 2 (tcp) failed",
                ),
            ]
        };
        Report {
            node: "n".into(),
            env: "dev".into(),
            target: "127.0.0.1:1".into(),
            passed,
            summary: ServiceState::default(),
            checks,
            elapsed_ms: 1,
        }
    }

    impl LabOps for Fake {
        fn node(&self) -> &str {
            "n"
        }
        fn env(&self) -> &str {
            "dev"
        }
        fn service_addr(&self) -> SocketAddr {
            // Port 1 on loopback: refused at once, so probes fail fast.
            SocketAddr::from(([127, 0, 0, 1], 1))
        }
        fn verify(&self, wait: Option<Duration>) -> Result<Report, LabError> {
            self.calls
                .borrow_mut()
                .push(format!("verify wait={}", wait.is_some()));
            let passed = self.verdicts.borrow_mut().pop().unwrap_or(false);
            Ok(report(passed))
        }
        fn status(&self) -> Result<Status, LabError> {
            Ok(Status {
                containers: vec![Container {
                    service: "api".into(),
                    id: "a".into(),
                    state: "running".into(),
                    health: "healthy".into(),
                    restarts: 0,
                }],
            })
        }
        fn node_step(&self, args: &[&str]) -> Result<String, LabError> {
            let step = args.first().copied().unwrap_or_default();
            self.calls.borrow_mut().push(step.to_string());
            if self.fail_steps.contains(&step) {
                Err(LabError::new(step, "exit status 1"))
            } else {
                Ok(format!("{step} ok"))
            }
        }
        fn start(&self, _overrides: &[(&str, &str)]) -> Result<(), LabError> {
            self.calls.borrow_mut().push("start".into());
            if self.fail_steps.contains(&"start") {
                Err(LabError::new("lifecycle up", "timeout"))
            } else {
                Ok(())
            }
        }
        fn golden(&self, step: Golden) -> Result<(), LabError> {
            self.calls.borrow_mut().push(step.command().into());
            Ok(())
        }
    }

    #[test]
    fn a_broken_steady_state_refuses_and_injects_nothing() {
        let lab = Fake::new(&[false], &[]);
        let j = run(Drill::PortUnreachable, &lab, &Options::default());
        assert_eq!(j.verdict, Verdict::Refused);
        assert!(j.recovery.is_none());
        assert_eq!(*lab.calls.borrow(), ["verify wait=false"]);
    }

    #[test]
    fn recovery_runs_after_a_failed_injection_and_its_failure_is_the_verdict() {
        let lab = Fake::new(&[true, false], &["block-port", "start"]);
        let j = run(Drill::PortUnreachable, &lab, &Options::default());
        assert!(lab.called("unblock-port"), "{:?}", lab.calls.borrow());
        assert!(lab.called("start"), "{:?}", lab.calls.borrow());
        assert!(lab.called("verify wait=true"), "{:?}", lab.calls.borrow());
        assert_eq!(j.verdict, Verdict::RecoveryFailed, "{}", j.reason);
        let rec = j.recovery.expect("recovery recorded");
        assert!(!rec.verified);
        assert!(
            rec.actions
                .iter()
                .any(|a| a.detail.contains("FAILED: lifecycle up: timeout"))
        );
    }

    #[test]
    fn a_failed_injection_with_a_verified_recovery_fails_the_drill() {
        let lab = Fake::new(&[true, true], &["block-port"]);
        let j = run(Drill::PortUnreachable, &lab, &Options::default());
        assert_eq!(j.verdict, Verdict::Failed);
        assert!(j.reason.contains("block-port"), "{}", j.reason);
    }

    #[test]
    fn keep_fault_skips_restoring_and_fails_as_not_recovered() {
        // steady state passes, verify during the fault fails at TCP, verify after too.
        let lab = Fake::new(&[true, false, false], &[]);
        let opts = Options {
            keep_fault: true,
            ..Options::default()
        };
        let j = run(Drill::PortUnreachable, &lab, &opts);
        assert!(!lab.called("unblock-port"), "{:?}", lab.calls.borrow());
        assert!(!lab.called("start"), "{:?}", lab.calls.borrow());
        assert_eq!(j.verdict, Verdict::RecoveryFailed, "{}", j.reason);
        assert!(
            j.assertions
                .iter()
                .any(|a| a.name == "verify fails at the TCP layer" && a.passed)
        );
    }

    #[test]
    fn recover_only_undoes_the_fault_and_verifies_without_injecting() {
        let lab = Fake::new(&[true], &[]);
        let rec = recover_only(Drill::PortUnreachable, &lab, &Options::default());
        assert!(rec.verified);
        assert_eq!(
            *lab.calls.borrow(),
            ["unblock-port", "start", "verify wait=true"]
        );
    }

    #[test]
    fn drills_are_found_by_their_names() {
        for d in ALL {
            assert_eq!(Drill::by_name(d.name()), Some(d));
        }
        assert_eq!(Drill::by_name("nope"), None);
    }
}
