//! Swarm mode's deploy and rollback (`MODE=swarm`): the same four stages, gate, evidence
//! bundle, lock and audit line as compose mode ([`super::flow`]); what differs is how the
//! release reaches the nodes. Stage 2 adds the lab registry: the verified image is pushed
//! and the registry's own digest must be the one the push reported. Stage 3 updates the
//! stack on the manager to that digest and waits until every replica runs it. Stage 4 is
//! swarm verify (every node's /health, /ready, /version of the new build, every replica's
//! image). A failure after the switch rolls back with the service's own rollback.

use std::time::{Duration, Instant};

use serde::Serialize;

pub use lab::swarm::stack::{ServiceView, TaskView};

use super::flow::{RollbackSummary, Summary};
use super::ops::{BuildOps, HostError, NodeOps, Verified};
use super::{Acted, Acting, DeployRequest, Records, guarded, stages};
use crate::evidence::{self, Bundle};
use crate::plan::{self, Gate, Release, Stage, StageResult};
use stackpilot_core::step::timed;

/// A release as the swarm pins it: the registry reference and the build it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// `<registry>/<project>/mock-exchange@sha256:…`.
    pub reference: String,
    /// The build behind it.
    pub release: Release,
}

/// The digests a swarm deploy proved, in `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Digests {
    /// The reference the service was updated to.
    pub reference: Option<String>,
    /// The digest the lab registry serves for the verified build's tag.
    pub registry_digest: Option<String>,
    /// The reference the service ran before.
    pub previous: Option<String>,
}

/// The swarm, as the swarm flows drive it: the lab registry, the stack on the manager,
/// the host's record of what is deployed, swarm verify.
pub trait SwarmOps {
    /// Copies the verified image into the manager's engine (its id checked) and pushes it
    /// to the lab registry: the transcript and the pinned reference the push reported.
    fn push(&self, release: &Release) -> Result<(String, String), HostError>;
    /// The digest the lab registry itself serves for the release's tag.
    fn registry_digest(&self, release: &Release) -> Result<String, HostError>;
    /// What the host recorded as deployed, and the deployment it replaced.
    fn deployed(&self) -> (Option<Pinned>, Option<Pinned>);
    /// Deploys the stack with the api pinned to `to` and records it as deployed, replacing
    /// the current record; does not wait. Returns the transcript.
    fn update(&self, to: &Pinned) -> Result<String, HostError>;
    /// Records `current` as deployed, with `previous` as the deployment it replaced.
    fn record(&self, current: &Pinned, previous: Option<&Pinned>) -> Result<(), HostError>;
    /// `docker service rollback` of the api; does not wait. Returns the transcript.
    fn rollback(&self) -> Result<String, HostError>;
    /// The api service as the manager reports it now.
    fn view(&self) -> Result<ServiceView, HostError>;
    /// Removes the stack (volumes kept). Returns the transcript.
    fn remove(&self) -> Result<String, HostError>;
    /// Swarm verify of the environment against the record, optionally waiting.
    fn verify(&self, wait: Option<Duration>) -> Result<Verified, HostError>;
}

/// Where a service is on its way to running `reference` on every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Convergence {
    /// Every wanted replica runs `reference`, no update in progress.
    Done(String),
    /// Not yet: an update is in progress or tasks are still starting.
    Waiting(String),
    /// It will not get there by itself: the spec pins another image, or swarm paused.
    Failed(String),
}

/// Judges a service view against the reference every replica must run (pure).
pub fn convergence(v: &ServiceView, reference: &str) -> Convergence {
    if v.spec_image != reference {
        let why = if v.update_state.starts_with("rollback") {
            " (swarm rolled the update back itself: a new task failed within update_config's monitor)"
        } else {
            ""
        };
        return Convergence::Failed(format!(
            "{} pins {}, not {reference}; update state {:?}{why}",
            v.service, v.spec_image, v.update_state
        ));
    }
    if v.update_state.ends_with("paused") {
        return Convergence::Failed(format!(
            "{}: swarm paused the update ({})",
            v.service, v.update_state
        ));
    }
    let running: Vec<&TaskView> = v
        .tasks
        .iter()
        .filter(|t| t.image == reference && t.state.starts_with("Running"))
        .collect();
    let others = v.tasks.iter().filter(|t| t.image != reference).count();
    if matches!(v.update_state.as_str(), "updating" | "rollback_started") {
        return Convergence::Waiting(format!("update state {}", v.update_state));
    }
    if running.len() as u32 != v.desired || others > 0 {
        return Convergence::Waiting(format!(
            "{}/{} replicas run it, {others} task(s) on another image",
            running.len(),
            v.desired
        ));
    }
    let nodes: Vec<&str> = running.iter().map(|t| t.node.as_str()).collect();
    Convergence::Done(format!(
        "{}/{} replicas run {reference} ({})",
        running.len(),
        v.desired,
        nodes.join(", ")
    ))
}

/// Polls the service until every replica runs `reference`, for at most `limit`; the
/// transcript and the verdict (Err names the limit, so a timeout is found).
fn converge<S: SwarmOps + ?Sized>(
    swarm: &S,
    reference: &str,
    limit: Duration,
    log: &mut String,
) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let last = match swarm.view().map(|v| convergence(&v, reference)) {
            Ok(Convergence::Done(d)) => {
                log.push_str(&format!(
                    "converged after {:.1} s: {d}\n",
                    started.elapsed().as_secs_f64()
                ));
                return Ok(d);
            }
            Ok(Convergence::Failed(why)) => return Err(why),
            Ok(Convergence::Waiting(why)) => why,
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= limit {
            return Err(format!(
                "not every replica ran {reference} within the health gate of {} s (HEALTH_TIMEOUT): {last}",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Stage 2 in swarm mode: the build machine's checks of compose mode, then the verified
/// image pushed to the lab registry, whose own digest must be the one the push reported.
fn artifact_integrity<B: BuildOps + ?Sized, S: SwarmOps + ?Sized>(
    build: &B,
    swarm: &S,
    req: &DeployRequest,
    release: Option<&Release>,
    digests: &mut Digests,
) -> (StageResult, serde_json::Value) {
    let (mut result, mut manifest) = stages::artifact_integrity(build, req, release);
    let Some(r) = release.filter(|_| result.passed) else {
        return (result, manifest);
    };
    let registry = (|| {
        let (log, reference) = swarm.push(r)?;
        let pushed = reference.rsplit_once('@').map(|(_, d)| d.to_string());
        let served = swarm.registry_digest(r)?;
        Ok::<_, HostError>((log, reference, pushed, served))
    })();
    let (passed, detail, json) = match registry {
        Err(e) => (
            false,
            format!("lab registry: {e}"),
            serde_json::json!({"error": e.to_string()}),
        ),
        Ok((log, reference, pushed, served)) => {
            let same = pushed.as_deref() == Some(served.as_str());
            digests.reference = Some(reference.clone());
            digests.registry_digest = Some(served.clone());
            let detail = if same {
                format!(
                    "{} pushed to the lab registry as {reference}; the registry serves {served} for it",
                    r.tag
                )
            } else {
                format!(
                    "the push reported {reference} but the lab registry serves {served} for {}",
                    r.tag
                )
            };
            (
                same,
                detail,
                serde_json::json!({
                    "image_id": r.image_id, "reference": reference, "pushed_digest": pushed,
                    "registry_digest": served, "passed": same, "transcript": log,
                }),
            )
        }
    };
    manifest["registry"] = json;
    manifest["passed"] = serde_json::Value::Bool(passed);
    result.passed = passed;
    result.detail = format!("{}; {detail}", result.detail);
    (result, manifest)
}

/// Stage 3 in swarm mode: the stack updated on the manager with the api pinned to the
/// pushed digest, then every replica running it within the health gate.
fn remote_execution<S: SwarmOps + ?Sized>(
    swarm: &S,
    to: &Pinned,
    health_timeout: u64,
) -> (StageResult, String) {
    let mut log = String::new();
    let verdict = swarm.update(to).map_err(|e| e.to_string()).and_then(|out| {
        log.push_str(&out);
        log.push_str(&format!(
            "health gate: every replica running {} within {health_timeout} s\n",
            to.reference
        ));
        converge(
            swarm,
            &to.reference,
            Duration::from_secs(health_timeout),
            &mut log,
        )
    });
    log.push_str(&format!("{verdict:?}\n"));
    let result = StageResult {
        stage: Stage::RemoteExecution,
        passed: verdict.is_ok(),
        detail: match verdict {
            Ok(d) => format!("stack updated on the manager by digest; {d}"),
            Err(why) => why,
        },
    };
    (result, log)
}

/// Stage 4 in swarm mode: swarm verify of the new record passes (waiting up to 30 s):
/// every node's published port answers /health, /ready and /version of the new build,
/// every replica runs its digest, the stack is what the compose file says.
fn observability<S: SwarmOps + ?Sized>(swarm: &S) -> (StageResult, String) {
    let (passed, log) = match swarm.verify(Some(Duration::from_secs(30))) {
        Ok(v) => (v.passed, v.report),
        Err(e) => (false, format!("swarm verify could not run: {e}\n")),
    };
    let result = StageResult {
        stage: Stage::Observability,
        passed,
        detail: if passed {
            "swarm verify passed: every node's /health, /ready and /version of the new build, every replica on its digest".into()
        } else {
            "swarm verify failed (see the report in the evidence)".into()
        },
    };
    (result, log)
}

/// Back to `to` with the service's own rollback (unless swarm already went back itself),
/// waited on, recorded as deployed with `then` before it, and swarm-verified. Returns
/// the transcript and why it failed (None: all passed).
fn roll_back<S: SwarmOps + ?Sized>(
    swarm: &S,
    to: &Pinned,
    then: Option<&Pinned>,
) -> (String, Option<String>) {
    let mut log = String::new();
    let step = (|| {
        let v = swarm.view()?;
        if v.spec_image == to.reference {
            log.push_str(&format!(
                "{} already pins {} (update state {:?}): no rollback call needed\n",
                v.service, to.reference, v.update_state
            ));
        } else if v.previous_image == to.reference {
            log.push_str(&swarm.rollback()?);
        } else {
            // Swarm's rollback goes to the service's previous spec, whatever it pins.
            return Err(HostError::failed(
                "rollback",
                format!(
                    "{}'s previous spec pins {:?}, not {}: swarm's rollback would not go there; nothing was changed (deploy that build again instead)",
                    v.service, v.previous_image, to.reference
                ),
            ));
        }
        converge(swarm, &to.reference, lab::swarm::CONVERGE, &mut log)
            .map_err(|why| HostError::failed("rollback", why))?;
        swarm.record(to, then)?;
        log.push_str(&format!("recorded {} as deployed\n", to.reference));
        let v = swarm.verify(Some(Duration::from_secs(30)))?;
        log.push_str(&v.report);
        if v.passed {
            Ok(())
        } else {
            Err(HostError::failed(
                "rollback",
                "swarm verify failed after the rollback",
            ))
        }
    })();
    let why = step.err().map(|e| e.to_string());
    if let Some(why) = &why {
        log.push_str(&format!("{why}\n"));
    }
    (log, why)
}

/// `make deploy MODE=swarm`: under the manager's deploy lock, stages 1 → 4 with the
/// compose-mode gate; a failure after the switch rolls the service back to the digest it
/// ran before. Always a new release: each build has its own digest.
pub fn deploy<N, B, S>(
    manager: &N,
    build: &B,
    swarm: &S,
    recs: &Records,
    by: &str,
    req: &DeployRequest,
    report: &mut String,
) -> Result<(), HostError>
where
    N: NodeOps + ?Sized,
    B: BuildOps + ?Sized,
    S: SwarmOps + ?Sized,
{
    guarded(manager, recs, "deploy", by, report, |manager, a| {
        let (started_at, compact) = evidence::stamps();
        let (current, before) = swarm.deployed();
        let short = req
            .release
            .tag
            .rsplit_once(':')
            .map_or("release", |(_, s)| s);
        let bundle = a.bundle(&plan::evidence_name(&compact, short))?;
        let mut digests = Digests {
            previous: current.as_ref().map(|p| p.reference.clone()),
            ..Digests::default()
        };
        let mut results: Vec<StageResult> = Vec::new();
        let mut release: Option<Release> = None;
        let gate = loop {
            let gate = plan::gate(&results, current.as_ref().map(|p| &p.release));
            let (r, file, text) = match gate {
                Gate::Run(Stage::LocalVerification) => {
                    let s = timed("stage 1: local verification", || {
                        stages::local_verification(build, req)
                    });
                    release = s.release;
                    (s.result, Stage::LocalVerification.file(), s.transcript)
                }
                Gate::Run(Stage::ArtifactIntegrity) => {
                    let (r, manifest) = timed("stage 2: artifact integrity", || {
                        artifact_integrity(build, swarm, req, release.as_ref(), &mut digests)
                    });
                    let text = serde_json::to_string_pretty(&manifest)
                        .map_err(|e| HostError::failed("deploy", e.to_string()))?;
                    (r, Stage::ArtifactIntegrity.file(), text)
                }
                Gate::Run(Stage::RemoteExecution) => {
                    let (Some(r), Some(reference)) = (&release, &digests.reference) else {
                        return Err(HostError::failed(
                            "deploy",
                            "no pushed release after stage 2",
                        ));
                    };
                    let to = Pinned {
                        reference: reference.clone(),
                        release: r.clone(),
                    };
                    let (r, log) = timed("stage 3: remote execution", || {
                        remote_execution(swarm, &to, req.health_timeout)
                    });
                    (r, Stage::RemoteExecution.file(), log)
                }
                Gate::Run(Stage::Observability) => {
                    let (r, log) = timed("stage 4: observability", || observability(swarm));
                    (r, Stage::Observability.file(), log)
                }
                gate => break gate,
            };
            bundle.write(file, &text)?;
            results.push(r);
        };
        let mut summary = Summary {
            swarm: Some(digests),
            ..Summary::deploy(
                manager.node(),
                &req.env,
                &a.by,
                started_at,
                release,
                current.as_ref().map(|p| p.release.tag.clone()),
                results,
            )
        };
        let acted = finish(swarm, &bundle, gate, before.as_ref(), &mut summary)?;
        summary.outcome = acted.outcome.clone();
        summary.finished_at = evidence::stamps().0;
        a.extra(super::flow::stage_table(&summary.stages));
        bundle.write_json("summary.json", &summary)?;
        Ok(acted)
    })
}

/// The end of a swarm deploy: recorded already (stage 3), stopped, or rolled back.
fn finish<S: SwarmOps + ?Sized>(
    swarm: &S,
    bundle: &Bundle,
    gate: Gate,
    before: Option<&Pinned>,
    summary: &mut Summary,
) -> Result<Acted, HostError> {
    let env = summary.env.clone();
    let tag = summary.release.as_ref().map(|r| r.tag.clone());
    let reference = summary.swarm.as_ref().and_then(|d| d.reference.clone());
    let previous = summary.swarm.as_ref().and_then(|d| d.previous.clone());
    let failed = |stage: Stage, summary: &mut Summary| {
        let why = summary
            .stages
            .iter()
            .find(|r| r.stage == stage)
            .map_or_else(|| "not run".to_string(), |r| r.detail.clone());
        summary.failed_stage = Some(stage);
        summary.reason = Some(format!("{stage} failed: {why}"));
        why
    };
    let acted = |outcome: &str, passed: bool, message: String, reason: Option<String>| Acted {
        release: tag.clone(),
        outcome: outcome.into(),
        reason,
        message,
        passed,
    };
    match gate {
        Gate::Record => Ok(acted(
            "deployed",
            true,
            format!(
                "deployed {} to {env} on the swarm as {}: all four stages passed",
                tag.as_deref().unwrap_or("-"),
                reference.as_deref().unwrap_or("-")
            ),
            None,
        )),
        Gate::Stop { failed: stage } => {
            let why = failed(stage, summary);
            Ok(acted(
                "failed",
                false,
                format!(
                    "{stage} failed before the service was touched; nothing changed on the swarm: {why}"
                ),
                summary.reason.clone(),
            ))
        }
        Gate::StopWithoutPrevious { failed: stage } => {
            let why = failed(stage, summary);
            // Nothing to go back to: the unproven release must not keep serving.
            let removed = swarm.remove();
            bundle.write(
                "rollback.log",
                &removed
                    .as_ref()
                    .map_or_else(|e| e.to_string(), Clone::clone),
            )?;
            summary.rollback = Some(RollbackSummary {
                to: "none (first deploy): the stack was removed".into(),
                passed: removed.is_ok(),
                detail: removed.map_or_else(|e| e.to_string(), |_| "removed".into()),
            });
            Ok(acted(
                "failed-no-previous-release",
                false,
                format!(
                    "{stage} failed on the swarm and nothing was deployed before; the stack of {env} was removed: {why}"
                ),
                summary.reason.clone(),
            ))
        }
        Gate::RollBack { failed: stage, to } => {
            let why = failed(stage, summary);
            let to = Pinned {
                reference: previous.unwrap_or_default(),
                release: to,
            };
            eprintln!(
                "==> {stage} failed: {why}\n==> automatic rollback of the service to {}",
                to.reference
            );
            let (log, failure) = timed("automatic rollback", || roll_back(swarm, &to, before));
            bundle.write("rollback.log", &log)?;
            summary.rollback = Some(RollbackSummary {
                to: to.reference.clone(),
                passed: failure.is_none(),
                detail: failure.clone().unwrap_or_else(|| {
                    "docker service rollback: every replica back on the previous digest, swarm verify passed".into()
                }),
            });
            let (outcome, then) = match &failure {
                None => (
                    "rolled-back",
                    "rolled back to it automatically; it serves and verifies".to_string(),
                ),
                Some(why) => (
                    "rollback-failed",
                    format!("AND the rollback to it failed: {why}"),
                ),
            };
            Ok(acted(
                outcome,
                false,
                format!(
                    "{stage} failed: {why}\n  previous digest {}: {then}",
                    to.reference
                ),
                summary.reason.clone(),
            ))
        }
        Gate::Run(_) => Err(HostError::failed(
            "deploy",
            "internal: finish called with stages left",
        )),
    }
}

/// `make rollback MODE=swarm`: the service's own rollback to the deployment the current
/// one replaced, proven by swarm verify and recorded (the two swap, as swarm's specs do).
pub fn rollback<N: NodeOps + ?Sized, S: SwarmOps + ?Sized>(
    manager: &N,
    swarm: &S,
    recs: &Records,
    by: &str,
    report: &mut String,
) -> Result<(), HostError> {
    let env = recs.env.clone();
    guarded(
        manager,
        recs,
        "rollback",
        by,
        report,
        |_, a: &mut Acting<'_>| {
            let (Some(current), Some(to)) = swarm.deployed() else {
                return Err(HostError::failed(
                    "rollback",
                    format!(
                        "{env} on the swarm has no recorded previous deployment to roll back to (make deploy MODE=swarm records one)"
                    ),
                ));
            };
            let compact = evidence::stamps().1;
            let bundle = a.bundle(&plan::evidence_name(
                &compact,
                &format!("rollback-{}", to.release.short()),
            ))?;
            let (log, failure) = timed("rollback", || roll_back(swarm, &to, Some(&current)));
            bundle.write("rollback.log", &log)?;
            let ok = failure.is_none();
            let outcome = if ok { "rolled-back" } else { "rollback-failed" };
            bundle.write_json(
            "summary.json",
            &serde_json::json!({"action": "rollback", "mode": "swarm", "env": env, "from": current.reference, "to": to.reference, "outcome": outcome}),
        )?;
            Ok(Acted {
                release: Some(to.release.tag.clone()),
                outcome: outcome.into(),
                reason: failure.clone(),
                message: if ok {
                    format!(
                        "rolled back {env} on the swarm from {} to {}: every replica runs it, swarm verify passed",
                        current.reference, to.reference
                    )
                } else {
                    format!(
                        "rollback to {} failed: {}\n  see {}",
                        to.reference,
                        failure.clone().unwrap_or_default(),
                        a.recs.rel(&bundle.dir)
                    )
                },
                passed: ok,
            })
        },
    )
}

pub mod on_lab;

#[cfg(test)]
mod tests;
