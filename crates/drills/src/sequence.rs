//! The sequence every drill shares, written once: steady state (verify must pass, else
//! the drill is refused) → the drill's experiment (inject, observe, check, restore) →
//! recovery, always (the drill's own undo, then the normal stack, then a waiting verify)
//! → verdict and journal. A drill only supplies its [`Drill`] parts.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stackpilot_core::time::{millis, now_rfc3339};
use verify::report::Report;

use crate::cli::{NodeCmd, Service};
use crate::journal::{self, Assertion, Event, Figures, Journal, Recovery, SteadyState};
use crate::lab::{Golden, LabError, LabOps};
use crate::samples::{self, Sample};

/// One drill as data: its name, what it proves, its experiment and the undo of its fault.
#[derive(Clone, Copy)]
pub struct Drill {
    /// The name on the command line (`make drill NAME=…`).
    pub(crate) name: &'static str,
    /// One line: the fault and the expected outcome (`drills list`).
    pub(crate) describe: &'static str,
    /// Inject the fault, observe, check, and restore (skipped by `--keep-fault`), recording
    /// into the [`Run`]. An error is a step that could not run; the recovery still runs.
    pub(crate) experiment: fn(&mut Run) -> Result<(), LabError>,
    /// The idempotent undo of this drill's fault, run first in every recovery, before the
    /// normal stack is brought up: the action's name and result, or `None` when nothing is
    /// left to undo.
    pub(crate) undo: fn(&dyn LabOps) -> Undone,
}

/// What an undo did: the action's name and its result, or `None` when nothing was left.
pub(crate) type Undone = Option<(String, Result<String, LabError>)>;

/// For drills whose fault the normal stack (`lifecycle up`) undoes by itself.
pub(crate) fn nothing_to_undo(_: &dyn LabOps) -> Undone {
    None
}

impl Drill {
    /// The drill's name on the command line.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// One line: the fault and the expected outcome.
    pub fn describe(self) -> &'static str {
        self.describe
    }

    /// Whether only a stack in swarm mode can run it.
    pub fn swarm_only(self) -> bool {
        crate::drills::SWARM.contains(&self)
    }

    /// The drill named `name`.
    pub fn by_name(name: &str) -> Option<Drill> {
        crate::drills::ALL.iter().copied().find(|d| d.name == name)
    }

    /// The drill named `name`, or the message naming every drill.
    pub fn named(name: &str) -> Result<Drill, String> {
        Drill::by_name(name).ok_or_else(|| {
            format!(
                "no drill named '{name}': expected one of {} (cargo xtask drills list)",
                names(crate::drills::ALL)
            )
        })
    }

    /// Whether a stack of that mode runs it: compose mode runs every drill but the swarm
    /// drills; swarm mode runs the swarm drills and the compose drills marked for it.
    pub fn runs_in(self, swarm: bool) -> bool {
        match swarm {
            false => !self.swarm_only(),
            true => self.swarm_only() || crate::drills::SWARM_TOO.contains(&self),
        }
    }

    /// What `drills run NAME` runs in a mode: `all` is every drill that mode runs (in
    /// registry order), else the one drill, if that mode runs it.
    pub fn select(name: &str, swarm: bool) -> Result<Vec<Drill>, String> {
        let in_mode = |d: &Drill| d.runs_in(swarm);
        if name == "all" {
            return Ok(crate::drills::ALL.iter().copied().filter(in_mode).collect());
        }
        let d = Drill::named(name)?;
        if !swarm || in_mode(&d) {
            return Ok(vec![d]);
        }
        let on_swarm: Vec<Drill> = crate::drills::ALL.iter().copied().filter(in_mode).collect();
        Err(format!(
            "drill {name} runs on a compose stack only (MODE=compose); on the swarm: {}",
            names(&on_swarm)
        ))
    }
}

impl Drill {
    /// The one drill `drills recover NAME` recovers in a mode: not `all`, and a swarm
    /// drill only with the swarm (its recovery goes through it).
    pub fn select_one(name: &str, swarm: bool) -> Result<Drill, String> {
        if name == "all" {
            return Err(format!(
                "recover one drill at a time: name it (cargo xtask drills list), not `{name}`"
            ));
        }
        let d = Drill::select(name, swarm)?
            .pop()
            .ok_or_else(|| format!("no drill named '{name}'"))?;
        if d.swarm_only() && !swarm {
            return Err(format!(
                "drill {name} runs on the lab's swarm: recover it with MODE=swarm (or --mode swarm)"
            ));
        }
        Ok(d)
    }
}

fn names(drills: &[Drill]) -> String {
    let names: Vec<&str> = drills.iter().map(|d| d.name).collect();
    names.join(", ")
}

// By name: two drills are the same drill when they answer to the same name.
impl PartialEq for Drill {
    fn eq(&self, other: &Drill) -> bool {
        self.name == other.name
    }
}

impl Eq for Drill {}

impl fmt::Debug for Drill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Drill({})", self.name)
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

/// The recorder a drill writes into: timestamps relative to the drill's start.
pub(crate) struct Run<'a> {
    pub(crate) lab: &'a dyn LabOps,
    pub(crate) start: Instant,
    pub(crate) injection: Vec<Event>,
    pub(crate) observations: Vec<Event>,
    pub(crate) assertions: Vec<Assertion>,
    pub(crate) figures: Figures,
    pub(crate) keep_fault: bool,
}

impl Run<'_> {
    pub(crate) fn now_ms(&self) -> u64 {
        millis(self.start.elapsed())
    }

    pub(crate) fn event(&self, what: &str, detail: impl Into<String>) -> Event {
        Event {
            t_ms: self.now_ms(),
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn observe(&mut self, what: &str, detail: impl Into<String>) {
        let e = self.event(what, detail);
        eprintln!("drills: [{:>6} ms] {}: {}", e.t_ms, e.what, e.detail);
        self.observations.push(e);
    }

    /// Runs an injection (or restoring) step, recording it; returns when it ended (ms).
    pub(crate) fn inject(
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
    pub(crate) fn restore(
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

    /// Injects the node-side step `step` (e.g. `NodeCmd::Stop`) on `service` of this run's
    /// environment, as [`Run::inject`] does.
    pub(crate) fn inject_on(
        &mut self,
        what: &str,
        step: fn(Service) -> NodeCmd,
        service: &str,
    ) -> Result<u64, LabError> {
        let lab = self.lab;
        let cmd = step(Service::new(lab.env(), service));
        self.inject(what, || lab.node_step(&cmd))
    }

    /// Restores with the node-side step `step` on `service` of this run's environment, as
    /// [`Run::restore`] does (skipped with `keep_fault`).
    pub(crate) fn restore_on(
        &mut self,
        what: &str,
        step: fn(Service) -> NodeCmd,
        service: &str,
    ) -> Result<Option<u64>, LabError> {
        let lab = self.lab;
        let cmd = step(Service::new(lab.env(), service));
        self.restore(what, || lab.node_step(&cmd))
    }

    pub(crate) fn check(
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
    pub(crate) fn timeline(&mut self, probe: &str, samples: &[Sample]) {
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

    /// The api before or after a fault: in compose mode its container and restart count;
    /// on the swarm its running tasks, read from the manager (a restarted replica is a
    /// new task there).
    pub(crate) fn api_state(&self) -> Result<ApiState, LabError> {
        if let Some(ops) = self.lab.swarm() {
            let doc = ops.inspect()?;
            return Ok(ApiState {
                ids: crate::swarm::running_tasks(&doc, crate::swarm::API),
                restarts: 0,
                tasks: true,
            });
        }
        let (id, restarts) = self.api_restarts()?;
        Ok(ApiState {
            ids: vec![id],
            restarts,
            tasks: false,
        })
    }

    /// The api container's id and restart count (compose mode, `lifecycle status`).
    pub(crate) fn api_restarts(&self) -> Result<(String, i64), LabError> {
        let st = self.lab.status()?;
        let api = st
            .service("api")
            .ok_or_else(|| LabError::new("lifecycle status", "no api container"))?;
        Ok((api.id.clone(), api.restarts))
    }

    /// Every node serving the api, with its address: the swarm's api nodes, or this node.
    pub(crate) fn api_nodes(&self) -> Vec<(String, SocketAddr)> {
        match self.lab.swarm() {
            Some(ops) => ops.api_nodes(),
            None => vec![(self.lab.node().to_string(), self.lab.service_addr())],
        }
    }

    /// Stops the database as an injection: `drills node stop db` in compose mode; on the
    /// swarm the db service scaled to 0 (a stopped task's container is replaced by swarm,
    /// and starting the old one again would put two Postgres on one data directory). Either
    /// returns once the db is stopped (swarm: no db task running, as the manager reports).
    pub(crate) fn stop_db(&mut self) -> Result<u64, LabError> {
        let lab = self.lab;
        match lab.swarm() {
            Some(ops) => self.inject(&scale_db(0), || ops.scale(crate::swarm::DB, 0)),
            None => self.inject_on("drills node stop db", NodeCmd::Stop, "db"),
        }
    }

    /// Starts the database again as a restoring step (skipped with `keep_fault`): `drills
    /// node start db`, or on the swarm the db service scaled back to 1 (returns once its
    /// new task runs, i.e. Postgres is healthy).
    pub(crate) fn start_db(&mut self) -> Result<Option<u64>, LabError> {
        let lab = self.lab;
        match lab.swarm() {
            Some(ops) => self.restore(&scale_db(1), || ops.scale(crate::swarm::DB, 1)),
            None => self.restore_on("drills node start db", NodeCmd::Start, "db"),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.lab.base_url())
    }

    /// Runs golden step `step` as an injection.
    pub(crate) fn golden(&mut self, step: Golden) -> Result<u64, LabError> {
        let lab = self.lab;
        self.inject(step.command(), || lab.golden(step).map(|()| String::new()))
    }

    /// Records how often the api restarted since `before` as a figure and checks that it
    /// did not: the same containers or tasks, with the same restart count.
    pub(crate) fn check_api_not_restarted(
        &mut self,
        name: &str,
        before: &ApiState,
    ) -> Result<(), LabError> {
        let after = self.api_state()?;
        self.figures.api_restarts_during_fault = Some(before.restarts_until(&after));
        self.check(
            name,
            after == *before,
            before.to_string(),
            after.to_string(),
        );
        Ok(())
    }
}

fn scale_db(replicas: u32) -> String {
    format!("docker service scale {}={replicas}", crate::swarm::DB)
}

/// The api as a drill sees it: the ids of its containers (compose) or running tasks
/// (swarm), sorted, and their restart count (always 0 for tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiState {
    pub(crate) ids: Vec<String>,
    pub(crate) restarts: i64,
    /// Whether the ids are swarm tasks.
    pub(crate) tasks: bool,
}

impl ApiState {
    /// Restarts between `self` and `later`: each container or task that was not there
    /// before (a replacement) with the restarts the engine counted on it, or, when the
    /// same ones run, the engine's count since. Pure.
    pub(crate) fn restarts_until(&self, later: &ApiState) -> i64 {
        let new = later.ids.iter().filter(|id| !self.ids.contains(id)).count() as i64;
        match new {
            0 => later.restarts - self.restarts,
            _ => new + later.restarts,
        }
    }
}

impl fmt::Display for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tasks {
            true => write!(f, "api tasks {} running", self.ids.join(", ")),
            false => write!(
                f,
                "api container {} with {} restarts",
                self.ids.join(", "),
                self.restarts
            ),
        }
    }
}

impl<'a> Run<'a> {
    fn new(lab: &'a dyn LabOps, keep_fault: bool) -> Run<'a> {
        Run {
            lab,
            start: Instant::now(),
            injection: vec![],
            observations: vec![],
            assertions: vec![],
            figures: Figures::default(),
            keep_fault,
        }
    }
}

pub(crate) fn first_failure(r: &Report) -> String {
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
    let mut r = Run::new(lab, opts.keep_fault);
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
        let outcome = (drill.experiment)(&mut r);
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
    let mut r = Run::new(lab, false);
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
        if let Some((what, res)) = (drill.undo)(lab) {
            act(r, &what, res);
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

#[cfg(test)]
mod tests;
