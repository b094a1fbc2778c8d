//! The four proof stages of a deploy, one function each, each returning its
//! [`StageResult`] and the evidence it leaves. Stages 1 and 2 run on the build machine
//! and never touch the node; 3 and 4 run on the node.

use std::time::Duration;

use stackpilot_core::argv::ToArgv;
use stackpilot_core::images;

use super::ops::{BuildOps, NodeOps};
use super::{DeployRequest, last_error, switch};
use crate::cli::Cmd as DeployCmd;
use crate::evidence::{self, Artifact};
use crate::local::{ComposeVars, LocalSpec, Transcript};
use crate::plan::{self, Observation, ObservePolicy, Release, Stage, StageResult};

/// What stage 1 leaves: its result, the release it built (when it built one), the
/// transcript.
#[derive(Debug, Clone)]
pub struct LocalStage {
    /// Passed or why not.
    pub result: StageResult,
    /// The release image built and run locally.
    pub release: Option<Release>,
    /// Every command with its full output.
    pub transcript: String,
}

/// Stage 1: compile the release from source, build its image FROM the locked runtime
/// image and run it against a throwaway database on the build machine.
pub fn local_verification<B: BuildOps + ?Sized>(build: &B, req: &DeployRequest) -> LocalStage {
    let r = &req.release;
    let report = match build.compile() {
        Err(e) => {
            // A compile failure is stage 1 failing, with its evidence.
            let mut transcript = Transcript::default();
            transcript.note(&format!("compiling the release from source failed: {e}"));
            crate::local::LocalReport {
                tag: r.tag.clone(),
                image_id: None,
                transcript,
                failure: Some(format!("compile from source failed: {e}")),
            }
        }
        Ok(()) => {
            let var = |k: &str| req.vars.get(k).cloned().unwrap_or_default();
            let spec = LocalSpec {
                root: build.root().to_path_buf(),
                binary: build.root().join(&req.binary),
                build_id: r.build_id.clone(),
                git_sha: r.git_sha.clone(),
                dirty: r.dirty,
                runtime_image: req.runtime.tag.clone(),
                postgres_image: req.postgres.tag.clone(),
                db_user: var("POSTGRES_USER"),
                db_password: var("POSTGRES_PASSWORD"),
                db_name: var("POSTGRES_DB"),
                timeout: Duration::from_secs(60),
            };
            build.run_locally(&spec, &r.tag)
        }
    };
    let release = report.image_id.as_ref().map(|id| Release {
        tag: r.tag.clone(),
        image_id: id.clone(),
        build_id: r.build_id.clone(),
        git_sha: r.git_sha.clone(),
        dirty: r.dirty,
        built_at: r.built_at.clone(),
        source_digest: req.source_digest.clone(),
        config_digest: req.config_digest(),
        overrides: req.overrides.clone(),
    });
    LocalStage {
        result: StageResult {
            stage: Stage::LocalVerification,
            passed: report.failure.is_none(),
            detail: report.failure.unwrap_or_else(|| {
                format!(
                    "{} built FROM {} and served /health, /ready and a smoke order against a throwaway {}",
                    r.tag, req.runtime.tag, req.postgres.tag
                )
            }),
        },
        release,
        transcript: report.transcript.text().to_string(),
    }
}

/// Stage 2: every artifact present, checksummed and resolvable. Returns the result and
/// the manifest (sha256 of each artifact, each check).
pub fn artifact_integrity<B: BuildOps + ?Sized>(
    build: &B,
    req: &DeployRequest,
    release: Option<&Release>,
) -> (StageResult, serde_json::Value) {
    let root = build.root();
    let mut checks: Vec<serde_json::Value> = Vec::new();
    let mut failure: Option<String> = None;
    let mut check = |what: &str, r: Result<String, String>| {
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        eprintln!(
            "deploy: stage 2 {} {what}: {detail}",
            if ok { "ok  " } else { "FAIL" }
        );
        if !ok && failure.is_none() {
            failure = Some(format!("{what}: {detail}"));
        }
        checks.push(serde_json::json!({"check": what, "passed": ok, "detail": detail}));
    };
    match release {
        None => check("release image", Err("stage 1 built no image".into())),
        Some(r) => check(
            "release image",
            match build.image_id(&r.tag) {
                Ok(id) if id == r.image_id => Ok(format!("{} is {id}", r.tag)),
                Ok(id) => Err(format!("{} is {id}, expected {}", r.tag, r.image_id)),
                Err(e) => Err(format!("{} absent: {e}", r.tag)),
            },
        ),
    }
    for (name, img) in [
        ("runtime image", &req.runtime),
        ("postgres image", &req.postgres),
    ] {
        check(
            name,
            match build.image_id(&img.tag) {
                Ok(id) if id == img.id => Ok(format!("{} is {id} (as locked)", img.tag)),
                Ok(id) => Err(format!(
                    "{} is {id}, the image lock says {}",
                    img.tag, img.id
                )),
                Err(e) => Err(format!("{} absent: {e}", img.tag)),
            },
        );
    }
    let env_file = &req.env_file;
    check(
        "env file complete",
        std::fs::read_to_string(root.join(env_file))
            .map_err(|e| format!("{env_file}: {e}"))
            .and_then(|text| {
                let missing = plan::missing_keys(&plan::parse_env_file(&text));
                if missing.is_empty() {
                    Ok(format!(
                        "{env_file} sets {}",
                        plan::REQUIRED_KEYS.join(", ")
                    ))
                } else {
                    Err(format!("{env_file} lacks {}", missing.join(", ")))
                }
            }),
    );
    let migrations = req
        .config_artifacts
        .iter()
        .filter(|a| a.kind == "migration")
        .count();
    check(
        "migrations present",
        if migrations > 0 {
            Ok(format!("{migrations} migrations checksummed"))
        } else {
            Err("no migration files under apps/mock-exchange/migrations".into())
        },
    );
    let mut arts: Vec<Artifact> = req.config_artifacts.clone();
    for (kind, p) in [
        ("binary", req.binary.as_str()),
        ("dockerfile", lifecycle::DOCKERFILE),
        ("image lock", images::LOCK_FILE),
        ("config", stackpilot_core::config::CONFIG_FILE),
    ] {
        match evidence::artifact(root, kind, p) {
            Ok(a) => arts.push(a),
            Err(e) => check(kind, Err(e.to_string())),
        }
    }
    let compose_cfg = build.compose_config(&ComposeVars {
        env: &req.env,
        app: release.map(|r| r.tag.as_str()).unwrap_or("none:none"),
        db: &req.postgres.tag,
        overrides: &req.overrides,
    });
    check(
        "compose file resolves",
        compose_cfg
            .as_ref()
            .map(|(line, _)| format!("`{line}` exit 0"))
            .map_err(|e| e.clone()),
    );
    let manifest = serde_json::json!({
        "release": release,
        "images": {
            "release": release.map(|r| serde_json::json!({"tag": r.tag, "id": r.image_id})),
            "runtime": {"tag": req.runtime.tag, "id": req.runtime.id},
            "postgres": {"tag": req.postgres.tag, "id": req.postgres.id},
        },
        "artifacts": arts,
        "checks": checks,
        "compose_config": compose_cfg.ok().map(|(line, out)| serde_json::json!({"command": line, "output": out})),
        "passed": failure.is_none(),
    });
    let result = StageResult {
        stage: Stage::ArtifactIntegrity,
        passed: failure.is_none(),
        detail: failure.unwrap_or_else(|| {
            "image id, env file, migrations and compose file checked; sha256 of each in the manifest".into()
        }),
    };
    (result, manifest)
}

/// What stage 3 leaves: its result, the transcript, and the unix time the switch ended.
#[derive(Debug, Clone)]
pub struct RemoteStage {
    /// Passed or why not.
    pub result: StageResult,
    /// Load, switch and self-check, each with its output.
    pub log: String,
    /// Unix seconds when the switch finished.
    pub switched_at: f64,
}

/// Stage 3: the release loaded into the node (same image id), switched through
/// lifecycle behind the health gate, self-checked inside the running api container.
pub fn remote_execution<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    release: &Release,
    health_timeout: u64,
) -> RemoteStage {
    let mut log = String::new();
    let failure = remote(node, env, release, health_timeout, &mut log);
    let switched_at = evidence::unix_now();
    RemoteStage {
        result: StageResult {
            stage: Stage::RemoteExecution,
            passed: failure.is_none(),
            detail: failure.unwrap_or_else(|| {
                format!(
                    "{} loaded (same image id), {env} switched through lifecycle, self-check passed inside the api container",
                    release.tag
                )
            }),
        },
        log,
        switched_at,
    }
}

fn remote<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    release: &Release,
    health_timeout: u64,
    log: &mut String,
) -> Option<String> {
    let name = node.node();
    match node.image_id(&release.tag) {
        Ok(Some(id)) if id == release.image_id => log.push_str(&format!(
            "{} already in {name}'s engine as {id}: not loaded again\n",
            release.tag
        )),
        _ => match node.load_image(&release.tag, &release.image_id) {
            Ok(out) => log.push_str(&out),
            Err(e) => return Some(format!("loading the release into {name}: {e}")),
        },
    }
    match node.image_id(&release.tag) {
        Ok(Some(id)) if id == release.image_id => {
            log.push_str(&format!("[{name}] {} is {id}\n", release.tag));
        }
        other => {
            return Some(format!(
                "{} on {name}: expected image id {}, found {other:?}",
                release.tag, release.image_id
            ));
        }
    }
    log.push_str(&format!(
        "health gate: every container healthy within {health_timeout} s\n"
    ));
    match switch(node, env, release, health_timeout) {
        Ok(c) => {
            log.push_str(&c.transcript());
            if !c.ok {
                return Some(format!(
                    "switch through lifecycle failed (health gate timeout {health_timeout} s): {}",
                    last_error(&c.out)
                ));
            }
        }
        Err(e) => return Some(e.to_string()),
    }
    match node.run_tool(&DeployCmd::SelfCheck { env: env.into() }.call()) {
        Ok(c) => {
            log.push_str(&c.transcript());
            if !c.ok {
                return Some(format!(
                    "self-check inside the api container failed: {}",
                    last_error(&c.out)
                ));
            }
        }
        Err(e) => return Some(e.to_string()),
    }
    None
}

fn heartbeat<N: NodeOps + ?Sized>(node: &N, env: &str) -> (Option<f64>, String) {
    match node.http_get(env, "/metrics") {
        Ok((200, body)) => (
            plan::heartbeat(&body),
            body.lines()
                .filter(|l| l.contains("heartbeat"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Ok((code, body)) => (None, format!("{code} {body}")),
        Err(e) => (None, e),
    }
}

/// Stage 4: over the policy's window after the switch, the heartbeat runs and advances,
/// logs were written, errors stay under the threshold, and verify passes. A probe that
/// cannot run is this stage failing (and a rollback), not an abort.
pub fn observability<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    policy: &ObservePolicy,
    switched_at: f64,
    switch_started: &str,
) -> (StageResult, String) {
    let mut log = format!(
        "switch finished at unix {switched_at:.3}; window {} s; error threshold {}\n",
        policy.window_secs, policy.max_errors
    );
    let (before, text) = heartbeat(node, env);
    log.push_str(&format!("GET /metrics (start of window):\n{text}\n"));
    std::thread::sleep(Duration::from_secs(policy.window_secs));
    let (after, text) = heartbeat(node, env);
    log.push_str(&format!("GET /metrics (end of window):\n{text}\n"));
    let logs = node.run_tool(
        &DeployCmd::Logs(crate::cli::Logs {
            env: env.into(),
            service: "api".into(),
            lines: "all".into(),
            since: Some(switch_started.into()),
            follow: false,
        })
        .call(),
    );
    let counts = match &logs {
        Ok(c) => {
            log.push_str(&c.transcript());
            if c.ok {
                plan::count_log_lines(&c.out)
            } else {
                plan::LogCounts {
                    lines: 0,
                    errors: 0,
                }
            }
        }
        Err(e) => {
            log.push_str(&format!("logs could not be read: {e}\n"));
            plan::LogCounts {
                lines: 0,
                errors: 0,
            }
        }
    };
    log.push_str(&format!(
        "log lines since the switch: {}, error lines: {}\n",
        counts.lines, counts.errors
    ));
    let verify_passed = match node.verify(env, Some(Duration::from_secs(30))) {
        Ok(v) => {
            log.push_str(&v.report);
            v.passed
        }
        Err(e) => {
            log.push_str(&format!("verify could not run: {e}\n"));
            false
        }
    };
    let o = Observation {
        switched_at,
        heartbeat_before: before,
        heartbeat_after: after,
        logs: counts,
        verify_passed,
    };
    let fails = plan::observation_failures(&o, policy);
    log.push_str(&format!(
        "verdict: {}\n",
        if fails.is_empty() {
            "passed".to_string()
        } else {
            fails.join("; ")
        }
    ));
    let result = StageResult {
        stage: Stage::Observability,
        passed: fails.is_empty(),
        detail: if fails.is_empty() {
            format!(
                "logs written, heartbeat advanced after the switch, at most {} error lines in {} s, verify passed",
                policy.max_errors, policy.window_secs
            )
        } else {
            fails.join("; ")
        },
    };
    (result, log)
}
