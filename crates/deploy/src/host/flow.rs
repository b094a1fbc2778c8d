//! The operator's actions: deploy (stage 1 → 2 → 3 → 4, then record, stop or roll back),
//! rollback, restart, stop and status. Each writes what the operator reads into
//! `report` (stdout) and returns the failure (stderr, exit code).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lifecycle::cli::Cmd as LifecycleCmd;
use serde::Serialize;
use stackpilot_core::argv::ToArgv;

use super::ops::{BuildOps, HostError, NodeOps};
use super::stages;
use super::status::{EnvStatus, Probe};
use super::{Acted, Acting, Records, guarded, last_error, node_state, record, switch};
use crate::cli::Cmd as DeployCmd;
use crate::evidence::{self, Artifact, Bundle};
use crate::plan::{self, Deployed, Gate, ObservePolicy, Release, Stage, StageResult};
use stackpilot_core::step::timed;

/// The release a deploy builds: its tag and build facts.
#[derive(Debug, Clone)]
pub struct ReleaseBuild {
    /// `stackpilot/mock-exchange:<git sha>-<build id>`.
    pub tag: String,
    /// Build id.
    pub build_id: String,
    /// Git commit.
    pub git_sha: String,
    /// Uncommitted changes.
    pub dirty: bool,
    /// Build time (RFC 3339).
    pub built_at: String,
}

/// A locked lab image as this host built it: the lock's tag and the host engine's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabImage {
    /// The tag the image lock pins.
    pub tag: String,
    /// This host's image id for it.
    pub id: String,
}

/// Everything one deploy needs to know before it starts, gathered at the edge.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The environment.
    pub env: String,
    /// Its env file, relative to the repo root.
    pub env_file: String,
    /// The env file's variables (checked by [`preflight`]).
    pub vars: BTreeMap<String, String>,
    /// Compose variable overrides for this release.
    pub overrides: Vec<(String, String)>,
    /// Health gate of the switch, seconds.
    pub health_timeout: u64,
    /// Stage 4's policy.
    pub observe: ObservePolicy,
    /// The release to build.
    pub release: ReleaseBuild,
    /// The compiled binary, relative to the repo root.
    pub binary: String,
    /// The locked runtime image.
    pub runtime: LabImage,
    /// The locked postgres image.
    pub postgres: LabImage,
    /// Digest of what the release is made from.
    pub source_digest: String,
    /// The configuration's artifacts (env file, compose file, migrations).
    pub config_artifacts: Vec<Artifact>,
}

impl DeployRequest {
    /// Digest of the configuration the release runs with.
    pub fn config_digest(&self) -> String {
        super::identity::config_digest(&self.config_artifacts, &self.postgres.id, &self.overrides)
    }

    fn short(&self) -> &str {
        let tag = &self.release.tag;
        tag.rsplit_once(':').map_or(tag.as_str(), |(_, s)| s)
    }
}

/// What can be checked before anything is touched: the env file exists and sets every
/// required key, `live` is confirmed. Returns the env file's variables.
pub fn preflight(
    root: &Path,
    env_file: &Path,
    env: &str,
    confirm: Option<&str>,
) -> Result<BTreeMap<String, String>, HostError> {
    let vars = crate::read_env_file(&root.join(env_file))
        .map_err(|e| HostError::Usage(format!("{e}\n  nothing was touched")))?;
    if !plan::confirmed(env, confirm) {
        return Err(HostError::Usage(format!(
            "deploying to {env} needs an explicit confirmation: {}=yes make deploy ENV={env}; nothing was touched",
            plan::CONFIRM_VAR
        )));
    }
    Ok(vars)
}

/// Everything one deploy run learns: `summary.json` of its bundle.
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) action: String,
    pub(super) node: String,
    pub(super) env: String,
    pub(super) by: String,
    pub(super) started_at: String,
    pub(super) finished_at: String,
    pub(super) release: Option<Release>,
    pub(super) previous: Option<String>,
    pub(super) stages: Vec<StageResult>,
    pub(super) outcome: String,
    pub(super) failed_stage: Option<Stage>,
    pub(super) reason: Option<String>,
    pub(super) rollback: Option<RollbackSummary>,
    /// Swarm mode only: the digests the release was pinned by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) swarm: Option<super::swarm::Digests>,
}

impl Summary {
    /// A deploy's summary as it starts: no outcome, failure, rollback or swarm digests yet.
    pub(super) fn deploy(
        node: &str,
        env: &str,
        by: &str,
        started_at: String,
        release: Option<Release>,
        previous: Option<String>,
        stages: Vec<StageResult>,
    ) -> Summary {
        Summary {
            action: "deploy".into(),
            node: node.to_string(),
            env: env.to_string(),
            by: by.to_string(),
            started_at,
            finished_at: String::new(),
            release,
            previous,
            stages,
            outcome: String::new(),
            failed_stage: None,
            reason: None,
            rollback: None,
            swarm: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct RollbackSummary {
    pub(super) to: String,
    pub(super) passed: bool,
    pub(super) detail: String,
}

/// `make deploy`: refuses bad input first ([`preflight`] is the caller's), then under
/// the node's lock: nothing to do when the same release runs healthy; else stages 1 → 4,
/// recorded only when all passed; a failure on the node rolls back to the previous release.
pub fn deploy<N: NodeOps + ?Sized, B: BuildOps + ?Sized>(
    node: &N,
    build: &B,
    recs: &Records,
    by: &str,
    req: &DeployRequest,
    report: &mut String,
) -> Result<(), HostError> {
    guarded(node, recs, "deploy", by, report, |node, a| {
        let started_at = evidence::stamps().0;
        let compact = evidence::stamps().1;
        let cfg_digest = req.config_digest();
        if let Some(current) = plan::already_deployed(
            &a.node.state,
            &req.source_digest,
            &cfg_digest,
            &a.node.running,
        ) {
            return unchanged(node, a, req, current, &started_at, &compact);
        }
        let previous = a.node.state.current.as_ref().map(|d| d.release.clone());
        let bundle = a.bundle(&plan::evidence_name(&compact, req.short()))?;
        let mut results: Vec<StageResult> = Vec::new();
        let mut release: Option<Release> = None;
        let mut switched_at = 0.0;
        let mut switch_started = String::new();
        loop {
            match plan::gate(&results, previous.as_ref()) {
                Gate::Run(Stage::LocalVerification) => {
                    let s = timed("stage 1: local verification", || {
                        stages::local_verification(build, req)
                    });
                    bundle.write(Stage::LocalVerification.file(), &s.transcript)?;
                    release = s.release;
                    results.push(s.result);
                }
                Gate::Run(Stage::ArtifactIntegrity) => {
                    let (r, manifest) = timed("stage 2: artifact integrity", || {
                        stages::artifact_integrity(build, req, release.as_ref())
                    });
                    bundle.write_json(Stage::ArtifactIntegrity.file(), &manifest)?;
                    results.push(r);
                }
                Gate::Run(Stage::RemoteExecution) => {
                    let Some(r) = release.as_ref() else {
                        return Err(HostError::failed("deploy", "no release after stage 1"));
                    };
                    switch_started = evidence::stamps().0;
                    let s = timed("stage 3: remote execution", || {
                        stages::remote_execution(node, &req.env, r, req.health_timeout)
                    });
                    switched_at = s.switched_at;
                    bundle.write(Stage::RemoteExecution.file(), &s.log)?;
                    results.push(s.result);
                }
                Gate::Run(Stage::Observability) => {
                    let (r, log) = timed("stage 4: observability", || {
                        stages::observability(
                            node,
                            &req.env,
                            &req.observe,
                            switched_at,
                            &switch_started,
                        )
                    });
                    bundle.write(Stage::Observability.file(), &log)?;
                    results.push(r);
                }
                gate => {
                    let mut summary = Summary::deploy(
                        node.node(),
                        &req.env,
                        &a.by,
                        started_at,
                        release.clone(),
                        previous.as_ref().map(|p| p.tag.clone()),
                        results,
                    );
                    let acted = finish(node, &req.env, &bundle, gate, &mut summary)?;
                    summary.finished_at = evidence::stamps().0;
                    a.extra(stage_table(&summary.stages));
                    bundle.write_json("summary.json", &summary)?;
                    return Ok(acted);
                }
            }
        }
    })
}

/// The same release already runs healthy: verify it, record that nothing changed.
fn unchanged<N: NodeOps + ?Sized>(
    node: &N,
    a: &mut Acting<'_>,
    req: &DeployRequest,
    current: Release,
    started_at: &str,
    compact: &str,
) -> Result<Acted, HostError> {
    let bundle = a.bundle(&plan::evidence_name(
        compact,
        &format!("unchanged-{}", current.short()),
    ))?;
    let verified = timed("verify", || node.verify(&req.env, None))?;
    bundle.write("verify.txt", &verified.report)?;
    let d = a.node.state.current.as_ref();
    let summary = Summary {
        finished_at: evidence::stamps().0,
        outcome: if verified.passed {
            "unchanged"
        } else {
            "unchanged-verify-failed"
        }
        .into(),
        reason: (!verified.passed).then(|| "verify failed".to_string()),
        ..Summary::deploy(
            node.node(),
            &req.env,
            &a.by,
            started_at.to_string(),
            Some(current.clone()),
            None,
            vec![],
        )
    };
    bundle.write_json("summary.json", &summary)?;
    Ok(Acted {
        release: Some(current.tag.clone()),
        outcome: summary.outcome.clone(),
        reason: summary.reason.clone(),
        message: if verified.passed {
            format!(
                "{} is already deployed in {} on {} (deployed {} by {}); same sources and configuration, running healthy: nothing changed, nothing restarted",
                current.tag,
                req.env,
                node.node(),
                d.map_or("?", |d| d.at.as_str()),
                d.map_or("?", |d| d.by.as_str())
            )
        } else {
            "the deployed release fails verify (see the evidence)".into()
        },
        passed: verified.passed,
    })
}

/// The stage table the operator reads at the end of a deploy.
pub fn stage_table(stages: &[StageResult]) -> String {
    let mut table = stackpilot_core::output::Table::new(&["stage", "result", "detail"]);
    for s in stages {
        table.row([
            s.stage.to_string(),
            if s.passed { "PASS" } else { "FAIL" }.to_string(),
            s.detail.lines().next().unwrap_or("").to_string(),
        ]);
    }
    table.render()
}

/// The end of a deploy: record, stop, or roll back.
fn finish<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    bundle: &Bundle,
    gate: Gate,
    summary: &mut Summary,
) -> Result<Acted, HostError> {
    let name = node.node().to_string();
    let reason_of = |s: Stage, stages: &[StageResult]| {
        stages
            .iter()
            .find(|r| r.stage == s)
            .map(|r| r.detail.clone())
            .unwrap_or_else(|| "not run".into())
    };
    let tag = summary.release.as_ref().map(|r| r.tag.clone());
    let acted = |outcome: &str, passed: bool, message: String, summary: &mut Summary| {
        summary.outcome = outcome.into();
        Acted {
            release: tag.clone(),
            outcome: outcome.into(),
            reason: summary.reason.clone(),
            message,
            passed,
        }
    };
    match gate {
        Gate::Record => {
            let Some(release) = summary.release.clone() else {
                return Err(HostError::failed("deploy", "no release to record"));
            };
            let deployed = Deployed {
                release: release.clone(),
                at: evidence::stamps().0,
                by: summary.by.clone(),
                how: "deploy".into(),
            };
            let out = timed("record deployed", || record(node, env, &deployed))?;
            bundle.write("record.log", &out)?;
            let svc = timed("service management", || {
                node.run_tool(&DeployCmd::InstallService { env: env.into() }.call())
            })?;
            bundle.write("service.log", &svc.transcript())?;
            if !svc.ok {
                summary.reason = Some(format!("service management: {}", last_error(&svc.out)));
                return Ok(acted(
                    "deployed-service-failed",
                    false,
                    format!(
                        "{} is deployed to {env} on {name} but would not come back after a node restart: {}",
                        release.tag,
                        last_error(&svc.out)
                    ),
                    summary,
                ));
            }
            Ok(acted(
                "deployed",
                true,
                format!(
                    "deployed {} to {env} on {name}: all four stages passed",
                    release.tag
                ),
                summary,
            ))
        }
        Gate::Stop { failed: stage } => {
            let why = reason_of(stage, &summary.stages);
            summary.failed_stage = Some(stage);
            summary.reason = Some(format!("{stage} failed: {why}"));
            Ok(acted(
                "failed",
                false,
                format!(
                    "{stage} failed before the node was touched; nothing changed on {name}: {why}"
                ),
                summary,
            ))
        }
        Gate::StopWithoutPrevious { failed: stage } => {
            let why = reason_of(stage, &summary.stages);
            summary.failed_stage = Some(stage);
            summary.reason = Some(format!("{stage} failed: {why}"));
            // Nothing to switch back to: the unproven release must not keep serving.
            let stop = node.run_tool(&LifecycleCmd::down(env).call());
            let stopped = stop.as_ref().is_ok_and(|c| c.ok);
            summary.rollback = Some(RollbackSummary {
                to: "none (first deploy): the stack was stopped".into(),
                passed: stopped,
                detail: match &stop {
                    Ok(c) if c.ok => "stopped".into(),
                    Ok(c) => last_error(&c.out),
                    Err(e) => e.to_string(),
                },
            });
            Ok(acted(
                "failed-no-previous-release",
                false,
                format!(
                    "{stage} failed on {name} and there is no previous release to roll back to; the stack of {env} was stopped: {why}"
                ),
                summary,
            ))
        }
        Gate::RollBack { failed: stage, to } => {
            let why = reason_of(stage, &summary.stages);
            summary.failed_stage = Some(stage);
            summary.reason = Some(format!("{stage} failed: {why}"));
            eprintln!(
                "==> {stage} failed: {why}\n==> automatic rollback to {}",
                to.tag
            );
            let (log, ok) = timed("automatic rollback", || rollback_to(node, env, &to));
            bundle.write("rollback.log", &log)?;
            if ok && let Some(bad) = &summary.release {
                // The failed release is not a rollback target: it does not stay on the node.
                let c = node.run_tool(
                    &DeployCmd::Discard {
                        tag: bad.tag.clone(),
                    }
                    .call(),
                )?;
                bundle.write("discard.log", &c.transcript())?;
            }
            summary.rollback = Some(RollbackSummary {
                to: to.tag.clone(),
                passed: ok,
                detail: if ok {
                    "switched back, self-check and verify passed".into()
                } else {
                    "the previous release did not verify (see rollback.log)".into()
                },
            });
            Ok(if ok {
                acted(
                    "rolled-back",
                    false,
                    format!(
                        "{stage} failed: {why}\n  rolled back to {} automatically; it serves and verifies",
                        to.tag
                    ),
                    summary,
                )
            } else {
                acted(
                    "rollback-failed",
                    false,
                    format!(
                        "{stage} failed: {why}\n  AND the rollback to {} failed verification: see rollback.log in the evidence",
                        to.tag
                    ),
                    summary,
                )
            })
        }
        Gate::Run(_) => Err(HostError::failed(
            "deploy",
            "internal: finish called with stages left",
        )),
    }
}

/// Appends a node command's transcript (or why it could not run) to `log`; true when it
/// ran and passed.
fn transcript(log: &mut String, what: &str, r: Result<super::Capture, HostError>) -> bool {
    match r {
        Ok(c) => {
            log.push_str(&format!(
                "{}# exit: {}\n",
                c.transcript(),
                if c.ok { "ok" } else { "failed" }
            ));
            c.ok
        }
        Err(e) => {
            log.push_str(&format!("{what} failed: {e}\n"));
            false
        }
    }
}

/// Switches back to `to`, runs its self-check and verify. Returns the transcript and
/// whether all passed.
pub fn rollback_to<N: NodeOps + ?Sized>(node: &N, env: &str, to: &Release) -> (String, bool) {
    let mut log = String::new();
    let mut ok = transcript(&mut log, "switch", switch(node, env, to, 120));
    if ok {
        ok &= transcript(
            &mut log,
            "self-check",
            node.run_tool(&DeployCmd::SelfCheck { env: env.into() }.call()),
        );
        match node.verify(env, Some(Duration::from_secs(30))) {
            Ok(v) => {
                log.push_str(&v.report);
                ok &= v.passed;
            }
            Err(e) => {
                log.push_str(&format!("verify could not run: {e}\n"));
                ok = false;
            }
        }
    }
    (log, ok)
}

/// The node actions besides deploy (`make rollback|restart|stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Switch back to the previous release, prove it, record it.
    Rollback,
    /// Stop the stack cleanly, start the deployed release again, verify.
    Restart,
    /// Stop the stack's containers; images, volumes and the record stay.
    Stop,
}

impl Action {
    /// The action's name in the lock's purpose, the audit line and errors.
    pub fn name(self) -> &'static str {
        match self {
            Action::Rollback => "rollback",
            Action::Restart => "restart",
            Action::Stop => "stop",
        }
    }
}

/// `make rollback|restart|stop`: `action` on the records' env, under the node's lock
/// ([`guarded`]), with one audit line.
pub fn act<N: NodeOps + ?Sized>(
    node: &N,
    recs: &Records,
    by: &str,
    action: Action,
    report: &mut String,
) -> Result<(), HostError> {
    let env = recs.env.as_str();
    guarded(
        node,
        recs,
        action.name(),
        by,
        report,
        |node, a| match action {
            Action::Rollback => rollback(node, env, a),
            Action::Restart => restart(node, env, a),
            Action::Stop => stop(node, env),
        },
    )
}

/// Switches back to the previous release, proves it, records it.
fn rollback<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    a: &mut Acting<'_>,
) -> Result<Acted, HostError> {
    let state = &a.node.state;
    let Some(to) = state.previous().cloned() else {
        return Err(HostError::failed(
            "rollback",
            format!(
                "{env} on {} has no previous release to roll back to (history: {})",
                node.node(),
                state.history.len()
            ),
        ));
    };
    let from = state.current.as_ref().map(|d| d.release.tag.clone());
    let compact = evidence::stamps().1;
    let bundle = a.bundle(&plan::evidence_name(
        &compact,
        &format!("rollback-{}", to.short()),
    ))?;
    let (log, ok) = timed("rollback", || rollback_to(node, env, &to));
    bundle.write("rollback.log", &log)?;
    if ok {
        let deployed = Deployed {
            release: to.clone(),
            at: evidence::stamps().0,
            by: a.by.clone(),
            how: "rollback".into(),
        };
        bundle.write("record.log", &record(node, env, &deployed)?)?;
    }
    let outcome = if ok { "rolled-back" } else { "rollback-failed" };
    bundle.write_json(
        "summary.json",
        &serde_json::json!({"action": "rollback", "node": node.node(), "env": env, "from": from, "to": to.tag, "outcome": outcome}),
    )?;
    Ok(Acted {
        release: Some(to.tag.clone()),
        outcome: outcome.into(),
        reason: (!ok).then(|| "the previous release did not verify".to_string()),
        message: if ok {
            format!(
                "rolled back {env} on {} from {} to {}: self-check and verify passed",
                node.node(),
                from.as_deref().unwrap_or("-"),
                to.tag
            )
        } else {
            format!(
                "rolled back to {} but it did not verify: see {}",
                to.tag,
                a.recs.rel(&bundle.dir)
            )
        },
        passed: ok,
    })
}

/// Stops the env's stack through lifecycle on the node; a failure is the action's.
fn down<N: NodeOps + ?Sized>(node: &N, env: &str, action: &str) -> Result<(), HostError> {
    let c = timed("stop", || node.run_tool(&LifecycleCmd::down(env).call()))?;
    eprint!("{}", c.transcript());
    if c.ok {
        Ok(())
    } else {
        Err(HostError::failed(
            action,
            format!("stopping {env}: {}", last_error(&c.out)),
        ))
    }
}

/// Stops the stack cleanly, starts the deployed release again, verifies.
fn restart<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    a: &mut Acting<'_>,
) -> Result<Acted, HostError> {
    let Some(current) = a.node.state.current.clone() else {
        return Err(HostError::failed(
            "restart",
            format!(
                "nothing is deployed in {env} on {}: make deploy ENV={env}",
                node.node()
            ),
        ));
    };
    down(node, env, "restart")?;
    let started = timed("start deployed release", || {
        switch(node, env, &current.release, 120)
    })?;
    let verified =
        started.ok && timed("verify", || node.verify(env, Some(Duration::from_secs(30))))?.passed;
    let why = last_error(&started.out);
    Ok(Acted {
        release: Some(current.release.tag.clone()),
        outcome: if verified {
            "restarted"
        } else {
            "restart-failed"
        }
        .into(),
        reason: (!verified).then(|| why.clone()),
        message: if verified {
            format!(
                "restarted {env} on {} ({}): verify passed",
                node.node(),
                current.release.tag
            )
        } else {
            format!("{} did not come back healthy: {why}", current.release.tag)
        },
        passed: verified,
    })
}

/// Stops the stack's containers; images, volumes and the record stay.
fn stop<N: NodeOps + ?Sized>(node: &N, env: &str) -> Result<Acted, HostError> {
    down(node, env, "stop")?;
    Ok(Acted {
        release: None,
        outcome: "stopped".into(),
        reason: None,
        message: format!(
            "stopped {env} on {}; images, volumes and the deploy record kept (make restart ENV={env} starts it again)",
            node.node()
        ),
        passed: true,
    })
}

/// `make status`: what the env runs on the node and whether it is up (read-only, no lock).
pub fn status<N: NodeOps + ?Sized>(node: &N, env: &str) -> Result<EnvStatus, HostError> {
    let s = node_state(node, env)?;
    let probes = ["/health", "/ready"]
        .into_iter()
        .map(|path| match node.http_get(env, path) {
            Ok((code, body)) => Probe {
                path: path.into(),
                code: Some(code),
                detail: body,
            },
            Err(why) => Probe {
                path: path.into(),
                code: None,
                detail: why,
            },
        })
        .collect();
    Ok(EnvStatus::new(
        node.node(),
        env,
        &s.state,
        s.containers,
        probes,
    ))
}
