//! The shared sequence over a fake lab: what runs, in which order, and the verdict.

use std::cell::RefCell;
use std::net::SocketAddr;

use verify::report::{Check, ServiceState, Verdict as CheckVerdict};

use super::*;
use stackpilot_core::argv::ToArgv;

use crate::cli::{NodeCmd, Service};
use crate::drills::{ALL, SWARM, db_bad_credentials, db_down, node_loss, port_unreachable};
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
    fn node_step(&self, cmd: &NodeCmd) -> Result<String, LabError> {
        // The fake drill's parts are named for what they do; a real drill's by subcommand.
        let step = match cmd {
            NodeCmd::Stop(_) => "break".to_string(),
            NodeCmd::Start(_) => "fix".to_string(),
            NodeCmd::Kill(_) => "undo".to_string(),
            real => real.call().args[1].clone(),
        };
        let step = step.as_str();
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
    let j = run(port_unreachable::DRILL, &lab, &Options::default());
    assert_eq!(j.verdict, Verdict::Refused);
    assert!(j.recovery.is_none());
    assert_eq!(*lab.calls.borrow(), ["verify wait=false"]);
}

#[test]
fn recovery_runs_after_a_failed_injection_and_its_failure_is_the_verdict() {
    let lab = Fake::new(&[true, false], &["block-port", "start"]);
    let j = run(port_unreachable::DRILL, &lab, &Options::default());
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
    let j = run(port_unreachable::DRILL, &lab, &Options::default());
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
    let j = run(port_unreachable::DRILL, &lab, &opts);
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
    let rec = recover_only(port_unreachable::DRILL, &lab, &Options::default());
    assert!(rec.verified);
    assert_eq!(
        *lab.calls.borrow(),
        ["unblock-port", "start", "verify wait=true"]
    );
}

#[test]
fn drills_are_found_by_their_names() {
    for &d in ALL {
        assert_eq!(Drill::by_name(d.name()), Some(d));
    }
    assert_eq!(Drill::by_name("nope"), None);
}

/// A drill made of parts the tests choose: what the experiment does and what undo does.
fn drill(
    experiment: fn(&mut Run) -> Result<(), LabError>,
    undo: fn(&dyn LabOps) -> Undone,
) -> Drill {
    Drill {
        name: "fake",
        describe: "a drill of test parts",
        experiment,
        undo,
    }
}

/// Injects `break`, checks one thing (passing), restores with `fix`.
fn inject_check_restore(r: &mut Run) -> Result<(), LabError> {
    r.inject_on("break", NodeCmd::Stop, "db")?;
    r.check("it broke", true, "broken", "broken");
    r.restore_on("fix", NodeCmd::Start, "db")?;
    Ok(())
}

fn undo_step(lab: &dyn LabOps) -> Undone {
    Some((
        "undo".into(),
        lab.node_step(&NodeCmd::Kill(Service::new("dev", "api"))),
    ))
}

#[test]
fn the_sequence_is_steady_state_experiment_undo_stack_then_waiting_verify() {
    let lab = Fake::new(&[true, true], &[]);
    let j = run(
        drill(inject_check_restore, undo_step),
        &lab,
        &Options::default(),
    );
    assert_eq!(
        *lab.calls.borrow(),
        [
            "verify wait=false",
            "break",
            "fix",
            "undo",
            "start",
            "verify wait=true"
        ]
    );
    assert_eq!(j.verdict, Verdict::Passed, "{}", j.reason);
    assert_eq!(j.drill, "fake");
    let steps: Vec<&str> = j.injection.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(steps, ["break", "fix"]);
    let actions: Vec<&str> = j
        .recovery
        .as_ref()
        .map(|r| r.actions.iter().map(|a| a.what.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(actions, ["undo", "lifecycle up", "verify"]);
}

#[test]
fn a_drill_without_undo_recovers_with_the_stack_alone() {
    let lab = Fake::new(&[true], &[]);
    let rec = recover_only(
        drill(inject_check_restore, nothing_to_undo),
        &lab,
        &Options::default(),
    );
    assert!(rec.verified, "{}", rec.reason);
    assert_eq!(*lab.calls.borrow(), ["start", "verify wait=true"]);
}

#[test]
fn keep_fault_skips_the_restore_and_the_undo_whatever_the_drill() {
    let lab = Fake::new(&[true, false], &[]);
    let opts = Options {
        keep_fault: true,
        ..Options::default()
    };
    let j = run(drill(inject_check_restore, undo_step), &lab, &opts);
    assert_eq!(
        *lab.calls.borrow(),
        ["verify wait=false", "break", "verify wait=false"]
    );
    assert_eq!(j.verdict, Verdict::RecoveryFailed, "{}", j.reason);
    assert!(
        j.observations
            .iter()
            .any(|e| e.what == "fix" && e.detail.contains("--keep-fault"))
    );
}

#[test]
fn an_experiment_that_checks_nothing_fails_even_when_recovered() {
    fn silent(_: &mut Run) -> Result<(), LabError> {
        Ok(())
    }
    let lab = Fake::new(&[true, true], &[]);
    let j = run(drill(silent, nothing_to_undo), &lab, &Options::default());
    assert_eq!(j.verdict, Verdict::Failed);
    assert!(j.reason.contains("no observation"), "{}", j.reason);
}

#[test]
fn a_failed_undo_is_recorded_and_the_stack_still_comes_up() {
    let lab = Fake::new(&[true, true], &["undo"]);
    let j = run(
        drill(inject_check_restore, undo_step),
        &lab,
        &Options::default(),
    );
    assert!(lab.called("start"), "{:?}", lab.calls.borrow());
    let rec = j.recovery.expect("recovery recorded");
    assert!(
        rec.actions
            .iter()
            .any(|a| a.what == "undo" && a.detail.starts_with("FAILED")),
        "{:?}",
        rec.actions
    );
}

#[test]
fn the_registry_lists_each_drill_once_under_a_unique_name() {
    let mut names: Vec<&str> = ALL.iter().map(|d| d.name()).collect();
    assert_eq!(names.len(), 10);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ALL.len());
}

#[test]
fn the_swarm_drills_are_marked_and_refuse_a_compose_stack_by_naming_mode_swarm() {
    let names: Vec<&str> = SWARM.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["node-loss", "rolling-update", "manager-restart"]);
    assert!(node_loss::DRILL.swarm_only() && !port_unreachable::DRILL.swarm_only());
    let lab = Fake::new(&[true, true], &[]);
    let j = run(node_loss::DRILL, &lab, &Options::default());
    assert_eq!(j.verdict, Verdict::Failed);
    assert!(j.reason.contains("MODE=swarm"), "{}", j.reason);
    assert!(
        !lab.called("golden"),
        "nothing injected: {:?}",
        lab.calls.borrow()
    );
}

#[test]
fn all_selects_the_drills_of_the_mode_and_a_compose_only_drill_is_refused_on_the_swarm() {
    let of = |name: &str, swarm: bool| -> Vec<&str> {
        let drills = Drill::select(name, swarm).expect("selected");
        drills.iter().map(|d| d.name()).collect()
    };
    assert_eq!(
        of("all", true),
        [
            "db-down",
            "db-bad-credentials",
            "db-midflight-loss",
            "node-loss",
            "rolling-update",
            "manager-restart"
        ]
    );
    assert_eq!(of("all", false).len(), ALL.len() - SWARM.len());
    assert!(!of("all", false).contains(&"node-loss"));
    assert_eq!(of("db-down", false), ["db-down"]);
    assert_eq!(of("db-down", true), ["db-down"]);
    assert_eq!(of("node-loss", true), ["node-loss"]);
    let refused = Drill::select("port-unreachable", true).expect_err("compose-only drill");
    assert!(
        refused.contains("MODE=compose") && refused.contains("node-loss, rolling-update"),
        "{refused}"
    );
    let unknown = Drill::select("nope", false).expect_err("unknown drill");
    assert!(
        unknown.contains("no drill named 'nope'") && unknown.contains("db-down"),
        "{unknown}"
    );
}

#[test]
fn db_bad_credentials_runs_in_both_modes_and_says_what_it_does_on_the_swarm() {
    assert_eq!(
        Drill::select("db-bad-credentials", true).map(|v| v.len()),
        Ok(1)
    );
    assert!(db_bad_credentials::DRILL.runs_in(false) && db_bad_credentials::DRILL.runs_in(true));
    let says = db_bad_credentials::DRILL.describe();
    assert!(
        says.contains("swarm: docker service update")
            && says.contains("replaced once")
            && says.contains("stack redeploy of the deployed digest"),
        "{says}"
    );
    assert!(db_down::DRILL.runs_in(true) && db_down::DRILL.runs_in(false));
    assert!(!node_loss::DRILL.runs_in(false));
}

fn api(ids: &[&str], restarts: i64) -> ApiState {
    ApiState {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        restarts,
        tasks: false,
    }
}

#[test]
fn api_restarts_count_the_engines_restarts_and_each_replacement() {
    assert_eq!(api(&["c1"], 2).restarts_until(&api(&["c1"], 2)), 0);
    assert_eq!(api(&["c1"], 2).restarts_until(&api(&["c1"], 3)), 1);
    // A recreated container starts its own count.
    assert_eq!(api(&["c1"], 2).restarts_until(&api(&["c2"], 0)), 1);
    // Swarm: one of two replicas replaced by a new task.
    assert_eq!(
        api(&["t1", "t2"], 0).restarts_until(&api(&["t1", "t3"], 0)),
        1
    );
    assert_eq!(
        api(&["t1", "t2"], 0).restarts_until(&api(&["t1", "t2"], 0)),
        0
    );
}

#[test]
fn recover_takes_one_drill_and_a_swarm_drill_only_with_the_swarm() {
    let one = |name: &str, swarm: bool| Drill::select_one(name, swarm).map(|d| d.name());
    assert_eq!(one("db-down", false), Ok("db-down"));
    assert_eq!(one("db-down", true), Ok("db-down"));
    assert_eq!(one("node-loss", true), Ok("node-loss"));
    let compose = one("node-loss", false).expect_err("a swarm drill without the swarm");
    assert!(compose.contains("MODE=swarm"), "{compose}");
    let all = one("all", true).expect_err("all is not one drill");
    assert!(all.contains("one drill at a time"), "{all}");
    let other_mode = one("port-unreachable", true).expect_err("compose-only on the swarm");
    assert!(other_mode.contains("MODE=compose"), "{other_mode}");
    assert!(one("nope", false).is_err());
}
