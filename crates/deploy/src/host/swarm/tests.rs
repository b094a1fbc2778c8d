//! The swarm deploy and rollback driven by a fake swarm (plus the compose-mode fakes of
//! the manager's lock and the build machine): the gate, the registry check, the
//! service's rollback, the records.

use std::cell::RefCell;

use super::*;
use crate::host::tests::{BY, FakeBuild, FakeNode, failure};

fn task(node: &str, image: &str, state: &str) -> TaskView {
    TaskView {
        node: node.into(),
        image: image.into(),
        state: state.into(),
    }
}

fn view(state: &str, spec: &str, tasks: Vec<TaskView>) -> ServiceView {
    ServiceView {
        service: "p_api".into(),
        update_state: state.into(),
        spec_image: spec.into(),
        previous_image: "r@old".into(),
        desired: 2,
        tasks,
    }
}

#[test]
fn convergence_waits_for_every_replica_on_the_reference() {
    let new = |n| task(n, "r@new", "Running 2 seconds ago");
    let done = view("completed", "r@new", vec![new("worker1"), new("worker2")]);
    assert!(
        matches!(convergence(&done, "r@new"), Convergence::Done(d) if d.contains("worker1, worker2"))
    );
    let half = view(
        "completed",
        "r@new",
        vec![new("worker1"), task("worker2", "r@old", "Running")],
    );
    assert!(matches!(
        convergence(&half, "r@new"),
        Convergence::Waiting(_)
    ));
    let starting = view(
        "",
        "r@new",
        vec![
            new("worker1"),
            task("worker2", "r@new", "Starting 1 second ago"),
        ],
    );
    assert!(matches!(
        convergence(&starting, "r@new"),
        Convergence::Waiting(_)
    ));
    let updating = view("updating", "r@new", vec![new("worker1"), new("worker2")]);
    assert!(matches!(
        convergence(&updating, "r@new"),
        Convergence::Waiting(_)
    ));
}

#[test]
fn convergence_fails_when_swarm_went_back_or_paused() {
    let old = view(
        "rollback_completed",
        "r@old",
        vec![task("worker1", "r@old", "Running")],
    );
    assert!(
        matches!(convergence(&old, "r@new"), Convergence::Failed(w) if w.contains("rolled the update back itself"))
    );
    let paused = view("paused", "r@new", vec![]);
    assert!(
        matches!(convergence(&paused, "r@new"), Convergence::Failed(w) if w.contains("paused"))
    );
}

/// A swarm of two api replicas as plain data.
#[derive(Default)]
struct FakeSwarm {
    spec: RefCell<String>,
    previous: RefCell<String>,
    state: RefCell<String>,
    tasks: RefCell<String>,
    registry: RefCell<std::collections::BTreeMap<String, String>>,
    record: RefCell<(Option<Pinned>, Option<Pinned>)>,
    calls: RefCell<Vec<String>>,
    /// The registry serves another digest than the push reported.
    registry_lies: bool,
    /// Updates whose replicas never converge (stage 3's health gate).
    stuck: bool,
    /// References that fail swarm verify (stage 4).
    failing: Vec<&'static str>,
}

fn deployed_before(reference: &str, tag: &str) -> Pinned {
    Pinned {
        reference: reference.into(),
        release: Release {
            tag: tag.into(),
            image_id: format!("sha256:{tag}"),
            build_id: tag.into(),
            git_sha: "abc".into(),
            dirty: false,
            built_at: String::new(),
            source_digest: String::new(),
            config_digest: String::new(),
            overrides: vec![],
        },
    }
}

impl FakeSwarm {
    /// A swarm running `r@b0`, which replaced `r@a0`.
    fn running_b0() -> FakeSwarm {
        let s = FakeSwarm::default();
        *s.spec.borrow_mut() = "r@b0".into();
        *s.previous.borrow_mut() = "r@a0".into();
        *s.state.borrow_mut() = "completed".into();
        *s.tasks.borrow_mut() = "r@b0".into();
        *s.record.borrow_mut() = (
            Some(deployed_before("r@b0", "t:b0")),
            Some(deployed_before("r@a0", "t:a0")),
        );
        s
    }

    fn current(&self) -> Option<String> {
        self.record.borrow().0.as_ref().map(|p| p.reference.clone())
    }

    fn called(&self, what: &str) -> bool {
        self.calls.borrow().iter().any(|c| c == what)
    }
}

impl SwarmOps for FakeSwarm {
    fn push(&self, release: &Release) -> Result<(String, String), HostError> {
        self.calls.borrow_mut().push("push".into());
        let digest = format!("sha256:{}", evidence::sha256_hex(release.tag.as_bytes()));
        let served = if self.registry_lies {
            "sha256:other".to_string()
        } else {
            digest.clone()
        };
        self.registry
            .borrow_mut()
            .insert(release.tag.clone(), served);
        Ok((format!("pushed {}\n", release.tag), format!("r@{digest}")))
    }

    fn registry_digest(&self, release: &Release) -> Result<String, HostError> {
        self.registry
            .borrow()
            .get(&release.tag)
            .cloned()
            .ok_or_else(|| HostError::failed("deploy", "no such tag"))
    }

    fn deployed(&self) -> (Option<Pinned>, Option<Pinned>) {
        self.record.borrow().clone()
    }

    fn update(&self, to: &Pinned) -> Result<String, HostError> {
        self.calls.borrow_mut().push("update".into());
        let old = self.spec.replace(to.reference.clone());
        *self.previous.borrow_mut() = old;
        if self.stuck {
            *self.state.borrow_mut() = "updating".into();
        } else {
            *self.state.borrow_mut() = "completed".into();
            *self.tasks.borrow_mut() = to.reference.clone();
        }
        let current = self.record.borrow().0.clone();
        *self.record.borrow_mut() = (Some(to.clone()), current);
        Ok("stack deployed\n".into())
    }

    fn record(&self, current: &Pinned, previous: Option<&Pinned>) -> Result<(), HostError> {
        *self.record.borrow_mut() = (Some(current.clone()), previous.cloned());
        Ok(())
    }

    fn rollback(&self) -> Result<String, HostError> {
        self.calls.borrow_mut().push("rollback".into());
        let previous = self.previous.borrow().clone();
        let spec = self.spec.replace(previous.clone());
        *self.previous.borrow_mut() = spec;
        *self.state.borrow_mut() = "rollback_completed".into();
        *self.tasks.borrow_mut() = previous;
        Ok("rolled back\n".into())
    }

    fn view(&self) -> Result<ServiceView, HostError> {
        let image = self.tasks.borrow().clone();
        Ok(ServiceView {
            service: "p_api".into(),
            update_state: self.state.borrow().clone(),
            spec_image: self.spec.borrow().clone(),
            previous_image: self.previous.borrow().clone(),
            desired: 2,
            tasks: ["worker1", "worker2"]
                .iter()
                .map(|n| task(n, &image, "Running 1 second ago"))
                .collect(),
        })
    }

    fn remove(&self) -> Result<String, HostError> {
        self.calls.borrow_mut().push("remove".into());
        Ok("removed\n".into())
    }

    fn verify(&self, _wait: Option<Duration>) -> Result<Verified, HostError> {
        let spec = self.spec.borrow().clone();
        let passed = *self.tasks.borrow() == spec
            && !self.failing.iter().any(|f| spec.contains(f))
            && self.current().as_deref() == Some(spec.as_str());
        Ok(Verified {
            passed,
            report: format!("swarm verify: {}\n", if passed { "PASS" } else { "FAIL" }),
        })
    }
}

fn run(swarm: &FakeSwarm, build: &FakeBuild, health: u64) -> (Result<(), HostError>, String) {
    let node = FakeNode::default();
    let mut req = build.request("b1", &[]);
    req.health_timeout = health;
    let mut report = String::new();
    let r = deploy(&node, build, swarm, &build.recs(), BY, &req, &mut report);
    assert!(
        node.lock.borrow().is_none(),
        "the manager's lock is released"
    );
    (r, report)
}

#[test]
fn a_swarm_deploy_pins_the_registry_digest_and_records_it() {
    let (swarm, build) = (FakeSwarm::running_b0(), FakeBuild::new());
    let (r, report) = run(&swarm, &build, 5);
    assert!(r.is_ok(), "{}", failure(r));
    assert!(report.contains("all four stages passed"), "{report}");
    let s = build.summary();
    assert_eq!(s["outcome"], "deployed");
    let reference = s["swarm"]["reference"]
        .as_str()
        .expect("reference")
        .to_string();
    let digest = s["swarm"]["registry_digest"].as_str().expect("digest");
    assert!(reference.ends_with(&format!("@{digest}")), "{s}");
    assert_eq!(s["swarm"]["previous"], "r@b0");
    assert_eq!(swarm.current(), Some(reference));
    assert_eq!(
        swarm
            .record
            .borrow()
            .1
            .as_ref()
            .map(|p| p.reference.clone()),
        Some("r@b0".into())
    );
    assert_eq!(build.audit()[0]["outcome"], "deployed");
}

#[test]
fn a_registry_serving_another_digest_stops_before_the_service_is_touched() {
    let swarm = FakeSwarm {
        registry_lies: true,
        ..FakeSwarm::running_b0()
    };
    let build = FakeBuild::new();
    let e = failure(run(&swarm, &build, 5).0);
    assert!(e.contains("stage 2") && e.contains("sha256:other"), "{e}");
    assert!(!swarm.called("update") && !swarm.called("rollback"));
    assert_eq!(swarm.current().as_deref(), Some("r@b0"));
    assert_eq!(build.summary()["outcome"], "failed");
}

#[test]
fn a_failed_observability_rolls_the_service_back_to_the_previous_digest() {
    let swarm = FakeSwarm {
        failing: vec!["@sha256:"],
        ..FakeSwarm::running_b0()
    };
    let build = FakeBuild::new();
    let e = failure(run(&swarm, &build, 5).0);
    assert!(e.contains("stage 4") && e.contains("r@b0"), "{e}");
    assert!(swarm.called("rollback"));
    assert_eq!(*swarm.spec.borrow(), "r@b0");
    let record = swarm.record.borrow().clone();
    assert_eq!(record.0.map(|p| p.reference), Some("r@b0".into()));
    assert_eq!(
        record.1.map(|p| p.reference),
        Some("r@a0".into()),
        "the record as before"
    );
    let s = build.summary();
    assert_eq!(
        (s["outcome"].as_str(), s["rollback"]["passed"].as_bool()),
        (Some("rolled-back"), Some(true))
    );
    assert_eq!(build.audit()[0]["outcome"], "rolled-back");
}

#[test]
fn a_health_gate_timeout_rolls_back_and_names_the_limit() {
    let swarm = FakeSwarm {
        stuck: true,
        ..FakeSwarm::running_b0()
    };
    let build = FakeBuild::new();
    let e = failure(run(&swarm, &build, 1).0);
    assert!(
        e.contains("stage 3") && e.contains("health gate of 1 s"),
        "{e}"
    );
    assert!(swarm.called("rollback"));
    assert_eq!(*swarm.spec.borrow(), "r@b0");
}

#[test]
fn a_first_swarm_deploy_failing_on_the_swarm_removes_the_stack() {
    let swarm = FakeSwarm {
        failing: vec!["@sha256:"],
        ..FakeSwarm::default()
    };
    let build = FakeBuild::new();
    let e = failure(run(&swarm, &build, 5).0);
    assert!(e.contains("nothing was deployed before"), "{e}");
    assert!(swarm.called("remove") && !swarm.called("rollback"));
}

#[test]
fn rollback_goes_to_the_recorded_previous_digest_through_the_services_rollback() {
    let (swarm, build) = (FakeSwarm::running_b0(), FakeBuild::new());
    let node = FakeNode::default();
    let mut report = String::new();
    let r = rollback(&node, &swarm, &build.recs(), BY, &mut report);
    assert!(r.is_ok(), "{}", failure(r));
    assert!(swarm.called("rollback"));
    assert_eq!(*swarm.spec.borrow(), "r@a0");
    let record = swarm.record.borrow().clone();
    assert_eq!(record.0.map(|p| p.reference), Some("r@a0".into()));
    assert_eq!(
        record.1.map(|p| p.reference),
        Some("r@b0".into()),
        "swapped, as swarm's specs"
    );
    assert_eq!(build.audit()[0]["outcome"], "rolled-back");
}

#[test]
fn rollback_refuses_when_the_services_previous_spec_is_another_digest() {
    let (swarm, build) = (FakeSwarm::running_b0(), FakeBuild::new());
    *swarm.previous.borrow_mut() = "r@elsewhere".into();
    let node = FakeNode::default();
    let e = failure(rollback(
        &node,
        &swarm,
        &build.recs(),
        BY,
        &mut String::new(),
    ));
    assert!(
        e.contains("r@elsewhere") && e.contains("nothing was changed"),
        "{e}"
    );
    assert!(!swarm.called("rollback"));
    assert_eq!(*swarm.spec.borrow(), "r@b0");
}
