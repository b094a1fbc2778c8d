//! `make deploy|status|restart|logs|stop|rollback`: staged deploys composed from the
//! `deploy` library (decisions, local proof, evidence) and its node-side steps (switch,
//! record, self-check), with lifecycle and verify.
//!
//! Order of a deploy: refuse bad input before touching anything (env, env file, live
//! confirmation), take the lock, then stage 1 → 2 → 3 → 4; only when all four passed is
//! the release recorded as deployed. A failure in stage 3 or 4 switches back to the
//! previous release and verifies it. Every action writes its evidence bundle and one line
//! of the audit log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use deploy::evidence::{self, Bundle};
use deploy::local::{self, LocalSpec};
use deploy::plan::{
    self, AuditEntry, Deployed, EnvState, Gate, Observation, ObservePolicy, Release, Running,
    Stage, StageResult,
};
use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::images;
use stackpilot_core::output::Render;

use crate::golden::{self, Phases, Target};
use crate::run::Error;
use ::lab::build::{self, BuildInfo};

/// Choices of one deploy.
#[derive(Debug, Clone)]
pub struct DeployOpts {
    /// Compose variable overrides for this release (tests and drills: e.g. a broken one).
    pub overrides: Vec<(String, String)>,
    /// Health gate of the switch, seconds.
    pub health_timeout: u64,
    /// The observability policy of stage 4.
    pub observe: ObservePolicy,
    /// The live confirmation variable's value.
    pub confirm: Option<String>,
}

/// Paths of the host-side deploy records.
struct Records {
    /// `.stackpilot/deploys/<node>/<env>`.
    env_dir: PathBuf,
    /// `.stackpilot/deploys/audit.log`.
    audit: PathBuf,
}

fn records(t: &Target) -> Records {
    let base = t
        .root
        .join(&t.cfg.state.host_dir)
        .join(evidence::DEPLOYS_DIR);
    Records {
        env_dir: base.join(&t.node).join(&t.env),
        audit: base.join(evidence::AUDIT_LOG),
    }
}

fn failed(step: &str, status: impl Into<String>) -> Error {
    Error::StepFailed {
        step: step.into(),
        cmd: format!("cargo xtask {step}"),
        status: status.into(),
    }
}

fn derr(step: &str) -> impl FnOnce(deploy::DeployError) -> Error + '_ {
    move |e| {
        use stackpilot_core::exit::ExitStatus;
        match e.exit() {
            stackpilot_core::Exit::Usage => Error::Usage(e.to_string()),
            stackpilot_core::Exit::PrereqMissing => Error::Prereq {
                what: e.to_string(),
                install: "see docs/DEPLOYMENT.md, prerequisites".into(),
            },
            _ => failed(step, e.to_string()),
        }
    }
}

fn rel(t: &Target, p: &Path) -> String {
    p.strip_prefix(&t.root).unwrap_or(p).display().to_string()
}

// ---------------------------------------------------------------- preflight (no side effects)

/// Checks what can be checked before anything is touched: the env file exists and sets
/// every required key, live is confirmed. Returns the env file's variables.
pub fn preflight(
    t: &Target,
    confirm: Option<&str>,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let env = t.cfg.environment(&t.env)?;
    let vars = deploy::read_env_file(&t.root.join(&env.env_file))
        .map_err(|e| Error::Usage(format!("{e}\n  nothing was touched")))?;
    if !plan::confirmed(&t.env, confirm) {
        return Err(Error::Usage(format!(
            "deploying to {} needs an explicit confirmation: {}=yes make deploy ENV={}; nothing was touched",
            t.env,
            plan::CONFIRM_VAR,
            t.env
        )));
    }
    Ok(vars)
}

// ---------------------------------------------------------------- node steps, captured

/// Runs a node-side tool, capturing stdout+stderr (echoed after). Returns the command
/// line, whether it succeeded and its full output.
fn node_capture(t: &Target, tool: &str, args: &[&str]) -> Result<(String, bool, String), Error> {
    let bin = build::node_binary(tool);
    let mut argv = vec![bin.as_str()];
    argv.extend_from_slice(args);
    let line = format!("[{}] {}", t.node, argv.join(" "));
    eprintln!("==> {line}");
    let out = t
        .transport()?
        .command(&argv, false)
        .output()
        .map_err(|e| failed(tool, format!("could not start `{line}`: {e}")))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    eprint!("{text}");
    Ok((line, out.status.success(), text))
}

/// What the node says about the environment: deploy state and what runs.
fn node_state(t: &Target) -> Result<(EnvState, Running, serde_json::Value), Error> {
    let bin = build::node_binary("deploy");
    let out = t
        .transport()?
        .output(&[&bin, "state", "--env", &t.env], Duration::from_secs(60))?;
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .map_err(|e| failed("deploy state", format!("not JSON ({e}): {out}")))?;
    let state: EnvState = serde_json::from_value(v["state"].clone())
        .map_err(|e| failed("deploy state", format!("state not readable ({e}): {out}")))?;
    let running = Running {
        api_image_id: v["api_image_id"].as_str().map(str::to_string),
        all_healthy: v["all_healthy"].as_bool().unwrap_or(false),
    };
    Ok((state, running, v))
}

fn switch(t: &Target, release: &Release, timeout: u64) -> Result<(String, bool, String), Error> {
    let json = serde_json::to_string(release).map_err(|e| failed("deploy", e.to_string()))?;
    let timeout = timeout.to_string();
    node_capture(
        t,
        "deploy",
        &[
            "switch",
            "--env",
            &t.env,
            "--release",
            &json,
            "--timeout",
            &timeout,
        ],
    )
}

fn record(t: &Target, deployed: &Deployed) -> Result<String, Error> {
    let json = serde_json::to_string(deployed).map_err(|e| failed("deploy", e.to_string()))?;
    let (line, ok, out) = node_capture(
        t,
        "deploy",
        &["record", "--env", &t.env, "--deployed", &json],
    )?;
    if ok {
        Ok(format!("$ {line}\n{out}"))
    } else {
        Err(failed("deploy record", out))
    }
}

// ---------------------------------------------------------------- identity

/// Files the release image is made from (the app's sources, the lock file, the
/// workspace manifest): their content decides whether a release is new.
fn source_files(root: &Path) -> Result<Vec<String>, Error> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "apps/mock-exchange",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| failed("deploy", format!("git ls-files: {e}")))?;
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // Tests, the test harness and docs do not go into the image.
        .filter(|f| {
            !f.starts_with("apps/mock-exchange/tests/")
                && !f.starts_with("apps/mock-exchange/pg-harness/")
                && !f.ends_with(".md")
                && root.join(f).is_file()
        })
        .map(str::to_string)
        .collect();
    files.sort();
    Ok(files)
}

/// The locked dependency closure of the app (`cargo tree`): a dependency bump is a new
/// release, a change elsewhere in the workspace's lock file is not.
fn dependency_closure(root: &Path) -> Result<String, Error> {
    let out = Command::new("cargo")
        .args([
            "tree",
            "--locked",
            "-p",
            "mock-exchange",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--target",
            build::TARGET,
        ])
        .current_dir(root)
        .output()
        .map_err(|e| failed("deploy", format!("cargo tree: {e}")))?;
    if !out.status.success() {
        return Err(failed(
            "deploy",
            format!(
                "cargo tree -p mock-exchange: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(" (*)").to_string())
        .collect();
    lines.sort();
    lines.dedup();
    Ok(lines.join("\n"))
}

fn source_digest(root: &Path, runtime_id: &str) -> Result<String, Error> {
    let mut parts = vec![
        format!("runtime {runtime_id}"),
        format!(
            "dependencies {}",
            evidence::sha256_hex(dependency_closure(root)?.as_bytes())
        ),
    ];
    for f in source_files(root)? {
        let a = evidence::artifact(root, "source", &f).map_err(derr("deploy"))?;
        parts.push(format!("{} {}", a.sha256, a.path));
    }
    Ok(evidence::combined_digest(parts.iter().map(String::as_str)))
}

/// The configuration a release runs with: env file, compose file, migrations, the db
/// image, overrides.
fn config_artifacts(t: &Target) -> Result<Vec<evidence::Artifact>, Error> {
    let env = t.cfg.environment(&t.env)?;
    let mut out = vec![
        evidence::artifact(&t.root, "env file", &env.env_file.display().to_string())
            .map_err(derr("deploy"))?,
        evidence::artifact(
            &t.root,
            "compose file",
            stackpilot_core::compose::COMPOSE_FILE,
        )
        .map_err(derr("deploy"))?,
    ];
    for m in evidence::files_with_ext(&t.root, "apps/mock-exchange/migrations", "sql")
        .map_err(derr("deploy"))?
    {
        out.push(evidence::artifact(&t.root, "migration", &m).map_err(derr("deploy"))?);
    }
    Ok(out)
}

fn config_digest(
    arts: &[evidence::Artifact],
    db_id: &str,
    overrides: &[(String, String)],
) -> String {
    let mut parts: Vec<String> = arts
        .iter()
        .map(|a| format!("{} {}", a.sha256, a.path))
        .collect();
    parts.push(format!("db {db_id}"));
    parts.extend(overrides.iter().map(|(k, v)| format!("set {k}={v}")));
    evidence::combined_digest(parts.iter().map(String::as_str))
}

// ---------------------------------------------------------------- deploy

/// Everything one deploy run learns, for the summary.
#[derive(Debug, serde::Serialize)]
struct Summary {
    action: String,
    node: String,
    env: String,
    by: String,
    started_at: String,
    finished_at: String,
    release: Option<Release>,
    previous: Option<String>,
    stages: Vec<StageResult>,
    outcome: String,
    failed_stage: Option<Stage>,
    reason: Option<String>,
    rollback: Option<RollbackSummary>,
}

#[derive(Debug, serde::Serialize)]
struct RollbackSummary {
    to: String,
    passed: bool,
    detail: String,
}

/// `make deploy ENV=…`.
pub fn deploy(t: &Target, opts: &DeployOpts) -> Result<(), Error> {
    let vars = preflight(t, opts.confirm.as_deref())?;
    let recs = records(t);
    let _lock = evidence::lock(
        &recs.env_dir.join(evidence::LOCK_FILE),
        &format!("deploy {} on {}", t.env, t.node),
    )
    .map_err(derr("deploy"))?;
    let mut phases = Phases::default();
    golden::prepare(t, &mut phases)?;
    let (lock, lock_path) = t.lock()?;
    let runtime = lock.derived(images::RUNTIME).cloned();
    let postgres = lock.derived(images::POSTGRES).cloned();
    let (Some(runtime), Some(postgres)) = (runtime, postgres) else {
        return Err(failed(
            "deploy",
            format!(
                "{} lacks the runtime or postgres entry: run `cargo xtask images`",
                lock_path.display()
            ),
        ));
    };
    // The lock pins recipes and tags; the ids are what this host built for them.
    let runtime = HostImage::of(runtime)?;
    let postgres = HostImage::of(postgres)?;
    let (started_at, compact) = evidence::stamps();
    let by = evidence::who();

    // Idempotency: same sources, same configuration, running healthy → nothing to do.
    let src = source_digest(&t.root, &runtime.id)?;
    let cfg_arts = config_artifacts(t)?;
    let cfg_digest = config_digest(&cfg_arts, &postgres.id, &opts.overrides);
    let (state, running, _) = phases.run("read node state", || node_state(t))?;
    if let Some(current) = plan::already_deployed(&state, &src, &cfg_digest, &running) {
        let bundle = Bundle::create(
            &recs.env_dir,
            &plan::evidence_name(&compact, &format!("unchanged-{}", current.short())),
        )
        .map_err(derr("deploy"))?;
        let report = phases.run("verify", || run_verify(t, None))?;
        let d = state.current.as_ref();
        let msg = format!(
            "{} is already deployed in {} on {} (deployed {} by {}); same sources and configuration, running healthy: nothing changed, nothing restarted",
            current.tag,
            t.env,
            t.node,
            d.map_or("?", |d| d.at.as_str()),
            d.map_or("?", |d| d.by.as_str())
        );
        bundle
            .write("verify.txt", &report.human())
            .map_err(derr("deploy"))?;
        let summary = Summary {
            action: "deploy".into(),
            node: t.node.clone(),
            env: t.env.clone(),
            by: by.clone(),
            started_at: started_at.clone(),
            finished_at: evidence::stamps().0,
            release: Some(current.clone()),
            previous: None,
            stages: vec![],
            outcome: if report.passed {
                "unchanged"
            } else {
                "unchanged-verify-failed"
            }
            .into(),
            failed_stage: None,
            reason: (!report.passed).then(|| "verify failed".to_string()),
            rollback: None,
        };
        bundle
            .write_json("summary.json", &summary)
            .map_err(derr("deploy"))?;
        audit(
            t,
            &recs,
            "deploy",
            Some(&current.tag),
            &summary.outcome,
            Some(&bundle),
            summary.reason.clone(),
        )?;
        println!("{msg}\nevidence: {}", rel(t, &bundle.dir));
        eprint!("{}", phases.summary());
        return if report.passed {
            Ok(())
        } else {
            Err(failed(
                "deploy",
                "the deployed release fails verify (see the evidence)",
            ))
        };
    }
    let previous = state.current.as_ref().map(|d| d.release.clone());

    // Stage 1: compile the release from source, then build and run it locally.
    let info = BuildInfo::collect(&t.root)?;
    let tag = deploy::lifecycle::image_tag(&info.git_sha, &info.build_id)
        .map_err(|e| failed("deploy", e.to_string()))?;
    let short = tag
        .rsplit_once(':')
        .map_or(tag.as_str(), |(_, s)| s)
        .to_string();
    let bundle = Bundle::create(&recs.env_dir, &plan::evidence_name(&compact, &short))
        .map_err(derr("deploy"))?;
    eprintln!("==> evidence bundle: {}", rel(t, &bundle.dir));
    let mut results: Vec<StageResult> = Vec::new();
    let mut release: Option<Release> = None;
    let mut switched_at = 0.0;
    let mut switch_started = String::new();
    let binary = t
        .root
        .join(format!("target/{}/release/mock-exchange", build::TARGET));

    loop {
        match plan::gate(&results, previous.as_ref()) {
            Gate::Run(Stage::LocalVerification) => {
                let r = phases.run("stage 1: local verification", || {
                    if let Err(e) = build::compile_for_nodes(&t.root, &info) {
                        // A compile failure is stage 1 failing, with its evidence.
                        let mut transcript = local::Transcript::default();
                        transcript.note(&format!("compiling the release from source failed: {e}"));
                        return Ok(local::LocalReport {
                            tag: tag.clone(),
                            image_id: None,
                            transcript,
                            failure: Some(format!("compile from source failed: {e}")),
                        });
                    }
                    let spec = LocalSpec {
                        root: t.root.clone(),
                        binary: binary.clone(),
                        build_id: info.build_id.clone(),
                        git_sha: info.git_sha.clone(),
                        dirty: info.dirty,
                        runtime_image: runtime.tag.clone(),
                        postgres_image: postgres.tag.clone(),
                        db_user: vars.get("POSTGRES_USER").cloned().unwrap_or_default(),
                        db_password: vars.get("POSTGRES_PASSWORD").cloned().unwrap_or_default(),
                        db_name: vars.get("POSTGRES_DB").cloned().unwrap_or_default(),
                        timeout: Duration::from_secs(60),
                    };
                    Ok(local::verify(&spec, &tag))
                })?;
                bundle
                    .write(Stage::LocalVerification.file(), r.transcript.text())
                    .map_err(derr("deploy"))?;
                if let Some(id) = &r.image_id {
                    release = Some(Release {
                        tag: tag.clone(),
                        image_id: id.clone(),
                        build_id: info.build_id.clone(),
                        git_sha: info.git_sha.clone(),
                        dirty: info.dirty,
                        built_at: info.build_time.clone(),
                        source_digest: src.clone(),
                        config_digest: cfg_digest.clone(),
                        overrides: opts.overrides.clone(),
                    });
                }
                results.push(StageResult {
                    stage: Stage::LocalVerification,
                    passed: r.failure.is_none(),
                    detail: r.failure.unwrap_or_else(|| format!("{tag} built FROM {} and served /health, /ready and a smoke order against a throwaway {}", runtime.tag, postgres.tag)),
                });
            }
            Gate::Run(Stage::ArtifactIntegrity) => {
                let r = phases.run("stage 2: artifact integrity", || {
                    Ok(artifacts(
                        t,
                        release.as_ref(),
                        &binary,
                        &cfg_arts,
                        &runtime,
                        &postgres,
                        &opts.overrides,
                    ))
                })?;
                let (manifest, failure) = r;
                bundle
                    .write_json(Stage::ArtifactIntegrity.file(), &manifest)
                    .map_err(derr("deploy"))?;
                results.push(StageResult {
                    stage: Stage::ArtifactIntegrity,
                    passed: failure.is_none(),
                    detail: failure.unwrap_or_else(|| "image id, env file, migrations and compose file checked; sha256 of each in the manifest".into()),
                });
            }
            Gate::Run(Stage::RemoteExecution) => {
                let Some(rel_) = release.clone() else {
                    return Err(failed("deploy", "no release after stage 1"));
                };
                switch_started = evidence::stamps().0;
                let (log, failure, at) = phases.run("stage 3: remote execution", || {
                    Ok(remote(t, &rel_, opts.health_timeout))
                })?;
                switched_at = at;
                bundle
                    .write(Stage::RemoteExecution.file(), &log)
                    .map_err(derr("deploy"))?;
                results.push(StageResult {
                    stage: Stage::RemoteExecution,
                    passed: failure.is_none(),
                    detail: failure.unwrap_or_else(|| format!("{} loaded (same image id), {} switched through lifecycle, self-check passed inside the api container", rel_.tag, t.env)),
                });
            }
            Gate::Run(Stage::Observability) => {
                let (log, failures) = phases.run("stage 4: observability", || {
                    // A probe that cannot run is stage 4 failing (and a rollback), not an abort.
                    Ok(
                        observe(t, &opts.observe, switched_at, &switch_started).unwrap_or_else(
                            |e| (format!("stage 4 could not run: {e}\n"), vec![e.to_string()]),
                        ),
                    )
                })?;
                bundle
                    .write(Stage::Observability.file(), &log)
                    .map_err(derr("deploy"))?;
                results.push(StageResult {
                    stage: Stage::Observability,
                    passed: failures.is_empty(),
                    detail: if failures.is_empty() {
                        format!("logs written, heartbeat advanced after the switch, at most {} error lines in {} s, verify passed", opts.observe.max_errors, opts.observe.window_secs)
                    } else {
                        failures.join("; ")
                    },
                });
            }
            gate => {
                let rel_ = release.clone();
                let mut summary = Summary {
                    action: "deploy".into(),
                    node: t.node.clone(),
                    env: t.env.clone(),
                    by: by.clone(),
                    started_at: started_at.clone(),
                    finished_at: String::new(),
                    release: rel_.clone(),
                    previous: previous.as_ref().map(|p| p.tag.clone()),
                    stages: results.clone(),
                    outcome: String::new(),
                    failed_stage: None,
                    reason: None,
                    rollback: None,
                };
                let result = finish(t, &bundle, &mut phases, gate, &mut summary, &by);
                summary.finished_at = evidence::stamps().0;
                print_stages(&summary.stages);
                bundle
                    .write_json("summary.json", &summary)
                    .map_err(derr("deploy"))?;
                audit(
                    t,
                    &recs,
                    "deploy",
                    rel_.as_ref().map(|r| r.tag.as_str()),
                    &summary.outcome,
                    Some(&bundle),
                    summary.reason.clone(),
                )?;
                println!("evidence: {}", rel(t, &bundle.dir));
                eprint!("{}", phases.summary());
                return result;
            }
        }
    }
}

fn print_stages(stages: &[StageResult]) {
    let mut table = stackpilot_core::output::Table::new(&["stage", "result", "detail"]);
    for s in stages {
        table.row([
            s.stage.to_string(),
            if s.passed { "PASS" } else { "FAIL" }.to_string(),
            s.detail.lines().next().unwrap_or("").to_string(),
        ]);
    }
    println!("{}", table.render());
}

/// The end of a deploy: record, stop, or roll back.
fn finish(
    t: &Target,
    bundle: &Bundle,
    phases: &mut Phases,
    gate: Gate,
    summary: &mut Summary,
    by: &str,
) -> Result<(), Error> {
    let reason_of = |s: Stage| {
        summary
            .stages
            .iter()
            .find(|r| r.stage == s)
            .map(|r| r.detail.clone())
            .unwrap_or_else(|| "not run".into())
    };
    match gate {
        Gate::Record => {
            let Some(release) = summary.release.clone() else {
                return Err(failed("deploy", "no release to record"));
            };
            let deployed = Deployed {
                release: release.clone(),
                at: evidence::stamps().0,
                by: by.to_string(),
                how: "deploy".into(),
            };
            let out = phases.run("record deployed", || record(t, &deployed))?;
            bundle.write("record.log", &out).map_err(derr("deploy"))?;
            let svc = phases.run("service management", || service_management(t))?;
            bundle.write("service.log", &svc).map_err(derr("deploy"))?;
            summary.outcome = "deployed".into();
            println!(
                "deployed {} to {} on {}: all four stages passed",
                release.tag, t.env, t.node
            );
            Ok(())
        }
        Gate::Stop { failed: stage } => {
            let why = reason_of(stage);
            summary.outcome = "failed".into();
            summary.failed_stage = Some(stage);
            summary.reason = Some(format!("{stage} failed: {why}"));
            Err(failed(
                "deploy",
                format!(
                    "{stage} failed before the node was touched; nothing changed on {}: {why}",
                    t.node
                ),
            ))
        }
        Gate::StopWithoutPrevious { failed: stage } => {
            let why = reason_of(stage);
            summary.failed_stage = Some(stage);
            summary.reason = Some(format!("{stage} failed: {why}"));
            summary.outcome = "failed-no-previous-release".into();
            // Nothing to switch back to: the unproven release must not keep serving.
            let stop = t.node_step("lifecycle", &["down", "--env", &t.env]);
            summary.rollback = Some(RollbackSummary {
                to: "none (first deploy): the stack was stopped".into(),
                passed: stop.is_ok(),
                detail: match &stop {
                    Ok(()) => "stopped".into(),
                    Err(e) => e.to_string(),
                },
            });
            Err(failed(
                "deploy",
                format!(
                    "{stage} failed on {} and there is no previous release to roll back to; the stack of {} was stopped: {why}",
                    t.node, t.env
                ),
            ))
        }
        Gate::RollBack { failed: stage, to } => {
            let why = reason_of(stage);
            summary.failed_stage = Some(stage);
            summary.reason = Some(format!("{stage} failed: {why}"));
            eprintln!(
                "==> {stage} failed: {why}\n==> automatic rollback to {}",
                to.tag
            );
            let (log, ok) = phases.run("automatic rollback", || Ok(rollback_to(t, &to)))?;
            bundle.write("rollback.log", &log).map_err(derr("deploy"))?;
            if ok && let Some(bad) = &summary.release {
                // The failed release is not a rollback target: it does not stay on the node.
                let (line, _, out) = node_capture(t, "deploy", &["discard", "--tag", &bad.tag])?;
                bundle
                    .write("discard.log", &format!("$ {line}\n{out}"))
                    .map_err(derr("deploy"))?;
            }
            summary.outcome = if ok { "rolled-back" } else { "rollback-failed" }.into();
            summary.rollback = Some(RollbackSummary {
                to: to.tag.clone(),
                passed: ok,
                detail: if ok {
                    "switched back, self-check and verify passed".into()
                } else {
                    "the previous release did not verify (see rollback.log)".into()
                },
            });
            if ok {
                Err(failed(
                    "deploy",
                    format!(
                        "{stage} failed: {why}\n  rolled back to {} automatically; it serves and verifies",
                        to.tag
                    ),
                ))
            } else {
                Err(failed(
                    "deploy",
                    format!(
                        "{stage} failed: {why}\n  AND the rollback to {} failed verification: see rollback.log in the evidence",
                        to.tag
                    ),
                ))
            }
        }
        Gate::Run(_) => Err(failed("deploy", "internal: finish called with stages left")),
    }
}

/// Appends a node command's transcript (or why it could not run) to `log`; true when it
/// ran and passed.
fn transcript(log: &mut String, what: &str, r: Result<(String, bool, String), Error>) -> bool {
    match r {
        Ok((line, passed, out)) => {
            log.push_str(&format!(
                "$ {line}\n{out}# exit: {}\n",
                if passed { "ok" } else { "failed" }
            ));
            passed
        }
        Err(e) => {
            log.push_str(&format!("{what} failed: {e}\n"));
            false
        }
    }
}

/// Switches back to `to`, runs its self-check and verify. Returns the transcript and
/// whether all passed.
fn rollback_to(t: &Target, to: &Release) -> (String, bool) {
    let mut log = String::new();
    let mut ok = transcript(&mut log, "switch", switch(t, to, 120));
    if ok {
        ok &= transcript(
            &mut log,
            "self-check",
            node_capture(t, "deploy", &["self-check", "--env", &t.env]),
        );
        match run_verify(t, Some(Duration::from_secs(30))) {
            Ok(r) => {
                log.push_str(&r.human());
                ok &= r.passed;
            }
            Err(e) => {
                log.push_str(&format!("verify could not run: {e}\n"));
                ok = false;
            }
        }
    }
    (log, ok)
}

/// A lab image as the deploy evidence records it: the lock's tag and this host's id.
struct HostImage {
    tag: String,
    id: String,
}

impl HostImage {
    fn of(entry: images::DerivedImage) -> Result<HostImage, Error> {
        let id = ::lab::images::host_id(&entry.tag)?;
        Ok(HostImage { tag: entry.tag, id })
    }
}

/// Stage 2: returns the manifest and the first failure.
fn artifacts(
    t: &Target,
    release: Option<&Release>,
    binary: &Path,
    cfg_arts: &[evidence::Artifact],
    runtime: &HostImage,
    postgres: &HostImage,
    overrides: &[(String, String)],
) -> (serde_json::Value, Option<String>) {
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
    let inspect = |reference: &str| -> Result<String, String> {
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    };
    match release {
        None => check("release image", Err("stage 1 built no image".into())),
        Some(r) => check(
            "release image",
            match inspect(&r.tag) {
                Ok(id) if id == r.image_id => Ok(format!("{} is {id}", r.tag)),
                Ok(id) => Err(format!("{} is {id}, expected {}", r.tag, r.image_id)),
                Err(e) => Err(format!("{} absent: {e}", r.tag)),
            },
        ),
    }
    for (name, img) in [("runtime image", runtime), ("postgres image", postgres)] {
        check(
            name,
            match inspect(&img.tag) {
                Ok(id) if id == img.id => Ok(format!("{} is {id} (as locked)", img.tag)),
                Ok(id) => Err(format!(
                    "{} is {id}, the image lock says {}",
                    img.tag, img.id
                )),
                Err(e) => Err(format!("{} absent: {e}", img.tag)),
            },
        );
    }
    let env = t.cfg.environment(&t.env).ok();
    let env_file = env
        .map(|e| e.env_file.display().to_string())
        .unwrap_or_default();
    check(
        "env file complete",
        std::fs::read_to_string(t.root.join(&env_file))
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
    let migrations = cfg_arts.iter().filter(|a| a.kind == "migration").count();
    check(
        "migrations present",
        if migrations > 0 {
            Ok(format!("{migrations} migrations checksummed"))
        } else {
            Err("no migration files under apps/mock-exchange/migrations".into())
        },
    );
    let mut arts: Vec<evidence::Artifact> = cfg_arts.to_vec();
    match evidence::artifact(&t.root, "binary", &rel(t, binary)) {
        Ok(a) => arts.push(a),
        Err(e) => check("binary", Err(e.to_string())),
    }
    for (kind, p) in [
        ("dockerfile", deploy::lifecycle::DOCKERFILE),
        ("image lock", images::LOCK_FILE),
        ("config", stackpilot_core::config::CONFIG_FILE),
    ] {
        match evidence::artifact(&t.root, kind, p) {
            Ok(a) => arts.push(a),
            Err(e) => check(kind, Err(e.to_string())),
        }
    }
    let compose_cfg = compose_config(
        t,
        release.map(|r| r.tag.as_str()).unwrap_or("none:none"),
        &postgres.tag,
        overrides,
    );
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
            "runtime": {"tag": runtime.tag, "id": runtime.id},
            "postgres": {"tag": postgres.tag, "id": postgres.id},
        },
        "artifacts": arts,
        "checks": checks,
        "compose_config": compose_cfg.ok().map(|(line, out)| serde_json::json!({"command": line, "output": out})),
        "passed": failure.is_none(),
    });
    (manifest, failure)
}

/// `compose config` of the env on this machine, with the variables lifecycle sets.
fn compose_config(
    t: &Target,
    app: &str,
    db: &str,
    overrides: &[(String, String)],
) -> Result<(String, String), String> {
    let project = stackpilot_core::compose::Project::for_env(&t.cfg, &t.root, &t.env)
        .map_err(|e| e.to_string())?;
    let compose = stackpilot_core::compose::detect().map_err(|e| e.to_string())?;
    let vars = deploy::lifecycle::compose_vars(app, db, project.port);
    let env = stackpilot_core::compose::process_env(std::env::vars_os(), &vars, overrides);
    let sub = vec![std::ffi::OsString::from("config")];
    let mut cmd = stackpilot_core::compose::command(&compose, &project, &sub, &env);
    let line = local::render(&cmd);
    let out = cmd.output().map_err(|e| format!("`{line}`: {e}"))?;
    if out.status.success() {
        Ok((line, String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Err(format!(
            "`{line}` {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Stage 3: load, switch, self-check. Returns the transcript, the failure, and the unix
/// time the switch finished.
fn remote(t: &Target, release: &Release, health_timeout: u64) -> (String, Option<String>, f64) {
    let mut log = String::new();
    let at = || evidence::unix_now();
    let tr = match t.transport() {
        Ok(tr) => tr,
        Err(e) => return (log, Some(e.to_string()), at()),
    };
    let present = tr
        .output(
            &[
                "docker",
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                &release.tag,
            ],
            Duration::from_secs(30),
        )
        .map(|s| s.trim().to_string());
    if present.as_deref().ok() == Some(release.image_id.as_str()) {
        log.push_str(&format!(
            "{} already in {}'s engine as {}: not loaded again\n",
            release.tag, t.node, release.image_id
        ));
    } else {
        let mut save = Command::new("docker");
        save.args(["save", &release.tag]);
        let line = format!("docker save {} | [{}] docker load", release.tag, t.node);
        eprintln!("==> {line}");
        match tr.pipe_from(&mut save, &["docker", "load"]) {
            Ok(out) => log.push_str(&format!("$ {line}\n{out}")),
            Err(e) => {
                return (
                    log,
                    Some(format!("loading the release into {}: {e}", t.node)),
                    at(),
                );
            }
        }
    }
    let cmd = [
        "docker",
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        release.tag.as_str(),
    ];
    match tr.output(&cmd, Duration::from_secs(30)) {
        Ok(id) if id.trim() == release.image_id => {
            log.push_str(&format!(
                "$ [{}] {}\n{}\n",
                t.node,
                cmd.join(" "),
                id.trim()
            ));
        }
        other => {
            return (
                log,
                Some(format!(
                    "{} on {}: expected image id {}, found {other:?}",
                    release.tag, t.node, release.image_id
                )),
                at(),
            );
        }
    }
    log.push_str(&format!(
        "health gate: every container healthy within {health_timeout} s\n"
    ));
    match switch(t, release, health_timeout) {
        Ok((line, ok, out)) => {
            log.push_str(&format!("$ {line}\n{out}"));
            if !ok {
                return (
                    log,
                    Some(format!(
                        "switch through lifecycle failed (health gate timeout {health_timeout} s): {}",
                        last_error(&out)
                    )),
                    at(),
                );
            }
        }
        Err(e) => return (log, Some(e.to_string()), at()),
    }
    let switched = at();
    match node_capture(t, "deploy", &["self-check", "--env", &t.env]) {
        Ok((line, ok, out)) => {
            log.push_str(&format!("$ {line}\n{out}"));
            if !ok {
                return (
                    log,
                    Some(format!(
                        "self-check inside the api container failed: {}",
                        last_error(&out)
                    )),
                    switched,
                );
            }
        }
        Err(e) => return (log, Some(e.to_string()), switched),
    }
    (log, None, switched)
}

fn last_error(out: &str) -> String {
    out.lines()
        .rev()
        .find(|l| l.contains("error") || l.contains("FAIL") || l.contains("fail"))
        .unwrap_or_else(|| out.lines().last().unwrap_or(""))
        .trim()
        .to_string()
}

fn metrics_heartbeat(base: &str) -> (Option<f64>, String) {
    let p = http::get(&format!("{base}/metrics"), Timeouts::default());
    match p.answer() {
        Some((200, body)) => (
            plan::heartbeat(body),
            body.lines()
                .filter(|l| l.contains("heartbeat"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => (None, format!("{:?}", p.outcome)),
    }
}

/// Stage 4: returns the transcript and the failed conditions.
fn observe(
    t: &Target,
    policy: &ObservePolicy,
    switched_at: f64,
    switch_started: &str,
) -> Result<(String, Vec<String>), Error> {
    let base = t.base_url()?;
    let mut log = format!(
        "switch finished at unix {switched_at:.3}; window {} s; error threshold {}\n",
        policy.window_secs, policy.max_errors
    );
    let (before, text) = metrics_heartbeat(&base);
    log.push_str(&format!("GET {base}/metrics (start of window):\n{text}\n"));
    std::thread::sleep(Duration::from_secs(policy.window_secs));
    let (after, text) = metrics_heartbeat(&base);
    log.push_str(&format!("GET {base}/metrics (end of window):\n{text}\n"));
    let (line, ok, logs) = node_capture(
        t,
        "deploy",
        &[
            "logs",
            "--env",
            &t.env,
            "--lines",
            "all",
            "--since",
            switch_started,
        ],
    )?;
    log.push_str(&format!("$ {line}\n{logs}"));
    let counts = if ok {
        plan::count_log_lines(&logs)
    } else {
        plan::LogCounts {
            lines: 0,
            errors: 0,
        }
    };
    log.push_str(&format!(
        "log lines since the switch: {}, error lines: {}\n",
        counts.lines, counts.errors
    ));
    let report = run_verify(t, Some(Duration::from_secs(30)))?;
    log.push_str(&report.human());
    let o = Observation {
        switched_at,
        heartbeat_before: before,
        heartbeat_after: after,
        logs: counts,
        verify_passed: report.passed,
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
    Ok((log, fails))
}

fn run_verify(t: &Target, wait: Option<Duration>) -> Result<verify::report::Report, Error> {
    let opts = verify::setup::Options {
        wait,
        ..Default::default()
    };
    verify::setup::verify(&t.lab_cfg()?, &t.handle()?, &t.env, &opts)
        .map_err(|e| Error::Usage(e.to_string()))
}

fn audit(
    t: &Target,
    recs: &Records,
    action: &str,
    release: Option<&str>,
    outcome: &str,
    bundle: Option<&Bundle>,
    reason: Option<String>,
) -> Result<(), Error> {
    let entry = AuditEntry {
        at: evidence::stamps().0,
        by: evidence::who(),
        action: action.into(),
        node: t.node.clone(),
        env: t.env.clone(),
        release: release.map(str::to_string),
        outcome: outcome.into(),
        evidence: bundle.map(|b| rel(t, &b.dir)),
        reason,
    };
    evidence::audit(&recs.audit, &entry).map_err(derr("deploy"))
}

// ---------------------------------------------------------------- rollback, status, logs, restart, stop

/// `make rollback ENV=…`: switch back to the previous release, prove it, record it.
pub fn rollback(t: &Target) -> Result<(), Error> {
    let recs = records(t);
    let _lock = evidence::lock(
        &recs.env_dir.join(evidence::LOCK_FILE),
        &format!("rollback {} on {}", t.env, t.node),
    )
    .map_err(derr("rollback"))?;
    let mut phases = Phases::default();
    golden::tools(&mut phases)?;
    let (state, _, _) = node_state(t)?;
    let Some(to) = state.previous().cloned() else {
        return Err(failed(
            "rollback",
            format!(
                "{} on {} has no previous release to roll back to (history: {})",
                t.env,
                t.node,
                state.history.len()
            ),
        ));
    };
    let from = state.current.as_ref().map(|d| d.release.tag.clone());
    let (_, compact) = evidence::stamps();
    let bundle = Bundle::create(
        &recs.env_dir,
        &plan::evidence_name(&compact, &format!("rollback-{}", to.short())),
    )
    .map_err(derr("rollback"))?;
    let (log, ok) = phases.run("rollback", || Ok(rollback_to(t, &to)))?;
    bundle
        .write("rollback.log", &log)
        .map_err(derr("rollback"))?;
    if ok {
        let deployed = Deployed {
            release: to.clone(),
            at: evidence::stamps().0,
            by: evidence::who(),
            how: "rollback".into(),
        };
        let out = record(t, &deployed)?;
        bundle.write("record.log", &out).map_err(derr("rollback"))?;
    }
    let outcome = if ok { "rolled-back" } else { "rollback-failed" };
    bundle
        .write_json("summary.json", &serde_json::json!({"action": "rollback", "node": t.node, "env": t.env, "from": from, "to": to.tag, "outcome": outcome}))
        .map_err(derr("rollback"))?;
    audit(
        t,
        &recs,
        "rollback",
        Some(&to.tag),
        outcome,
        Some(&bundle),
        (!ok).then(|| "the previous release did not verify".to_string()),
    )?;
    println!("evidence: {}", rel(t, &bundle.dir));
    eprint!("{}", phases.summary());
    if ok {
        println!(
            "rolled back {} on {} from {} to {}: self-check and verify passed",
            t.env,
            t.node,
            from.as_deref().unwrap_or("-"),
            to.tag
        );
        Ok(())
    } else {
        Err(failed(
            "rollback",
            format!(
                "rolled back to {} but it did not verify: see {}",
                to.tag,
                rel(t, &bundle.dir)
            ),
        ))
    }
}

/// `make status ENV=…`: deployed release, when and by whom, containers, health, readiness;
/// fails (exit 1) when the stack is down.
pub fn status(t: &Target, json: bool) -> Result<(), Error> {
    use deploy::host::status::{EnvStatus, Probe, StackContainer};
    let mut phases = Phases::default();
    golden::tools(&mut phases)?;
    let (state, _, v) = node_state(t)?;
    let containers: Vec<StackContainer> =
        serde_json::from_value(v["containers"].clone()).unwrap_or_default();
    let base = t.base_url()?;
    let probes = ["/health", "/ready"]
        .into_iter()
        .map(|path| {
            let p = http::get(&format!("{base}{path}"), Timeouts::default());
            match p.answer() {
                Some((code, body)) => Probe {
                    path: path.into(),
                    code: Some(code),
                    detail: body.to_string(),
                },
                None => Probe {
                    path: path.into(),
                    code: None,
                    detail: format!("{:?}", p.outcome),
                },
            }
        })
        .collect();
    let report = EnvStatus::new(&t.node, &t.env, &state, containers, probes);
    stackpilot_core::output::print(
        &report,
        stackpilot_core::output::Format::from_json_flag(json),
    );
    match report.down_reason() {
        None => Ok(()),
        Some(why) => Err(failed(
            "status",
            format!("{} on {} is down: {why}", t.env, t.node),
        )),
    }
}

/// `make logs ENV=… [TAIL=n]`: the api's logs from the node engine's log store.
pub fn logs(t: &Target, lines: &str, follow: bool) -> Result<(), Error> {
    let mut phases = Phases::default();
    golden::tools(&mut phases)?;
    let mut args = vec!["logs", "--env", &t.env, "--lines", lines];
    if follow {
        args.push("--follow");
    }
    t.node_step("deploy", &args)
}

/// `make restart ENV=…`: stop the stack cleanly, start the deployed release again, check.
pub fn restart(t: &Target) -> Result<(), Error> {
    let recs = records(t);
    let _lock = evidence::lock(
        &recs.env_dir.join(evidence::LOCK_FILE),
        &format!("restart {} on {}", t.env, t.node),
    )
    .map_err(derr("restart"))?;
    let mut phases = Phases::default();
    golden::tools(&mut phases)?;
    let (state, _, _) = node_state(t)?;
    let Some(current) = state.current.clone() else {
        return Err(failed(
            "restart",
            format!(
                "nothing is deployed in {} on {}: make deploy ENV={}",
                t.env, t.node, t.env
            ),
        ));
    };
    phases.run("stop", || {
        t.node_step("lifecycle", &["down", "--env", &t.env])
    })?;
    let (_, ok, out) = phases.run("start deployed release", || {
        switch(t, &current.release, 120)
    })?;
    let verified = ok
        && phases
            .run("verify", || run_verify(t, Some(Duration::from_secs(30))))?
            .passed;
    let outcome = if verified {
        "restarted"
    } else {
        "restart-failed"
    };
    audit(
        t,
        &recs,
        "restart",
        Some(&current.release.tag),
        outcome,
        None,
        (!verified).then(|| last_error(&out)),
    )?;
    eprint!("{}", phases.summary());
    if verified {
        println!(
            "restarted {} on {} ({}): verify passed",
            t.env, t.node, current.release.tag
        );
        Ok(())
    } else {
        Err(failed(
            "restart",
            format!(
                "{} did not come back healthy: {}",
                current.release.tag,
                last_error(&out)
            ),
        ))
    }
}

/// `make stop ENV=…`: stop the stack's containers (they stay stopped across node restarts).
pub fn stop(t: &Target) -> Result<(), Error> {
    let recs = records(t);
    let _lock = evidence::lock(
        &recs.env_dir.join(evidence::LOCK_FILE),
        &format!("stop {} on {}", t.env, t.node),
    )
    .map_err(derr("stop"))?;
    let mut phases = Phases::default();
    golden::tools(&mut phases)?;
    phases.run("stop", || {
        t.node_step("lifecycle", &["down", "--env", &t.env])
    })?;
    audit(t, &recs, "stop", None, "stopped", None, None)?;
    println!(
        "stopped {} on {}; images, volumes and the deploy record kept (make restart ENV={} starts it again)",
        t.env, t.node, t.env
    );
    Ok(())
}

/// Parses `--set KEY=VALUE` as lifecycle does.
pub fn parse_set(s: &str) -> Result<(String, String), String> {
    deploy::lifecycle::parse_override(s)
}

/// Makes the environment start on boot and stop cleanly with the node. VM nodes: the
/// systemd template unit installed and `stackpilot@ENV` enabled. Docker-provider nodes
/// have no systemd: the compose restart policy (unless-stopped) brings the stack back
/// when the node container's engine starts; that is checked here, not assumed.
fn service_management(t: &Target) -> Result<String, Error> {
    let tr = t.transport()?;
    if !t.handle()?.provider.is_vm {
        {
            let project = &t.cfg.environment(&t.env)?.project;
            let filter = format!("label=com.docker.compose.project={}", project.as_ref());
            let out = tr.output(
                &[
                    "docker",
                    "ps",
                    "-a",
                    "--filter",
                    &filter,
                    "--format",
                    "{{.Names}}",
                ],
                Duration::from_secs(30),
            )?;
            let mut log = String::new();
            for name in out.lines().filter(|l| !l.is_empty()) {
                let policy = tr.output(
                    &[
                        "docker",
                        "inspect",
                        "--format",
                        "{{.HostConfig.RestartPolicy.Name}}",
                        name,
                    ],
                    Duration::from_secs(30),
                )?;
                let policy = policy.trim();
                log.push_str(&format!("{name}: restart policy {policy}\n"));
                if policy != "unless-stopped" && policy != "always" {
                    return Err(failed(
                        "deploy",
                        format!(
                            "{name} has restart policy '{policy}': it would not come back after a node restart"
                        ),
                    ));
                }
            }
            log.push_str("docker provider: no systemd in the node; the node container runs dockerd as its command, which restarts these containers on node start\n");
            eprint!("{log}");
            Ok(log)
        }
    } else {
        {
            let template = std::fs::read_to_string(t.root.join(deploy::systemd::TEMPLATE))
                .map_err(|e| failed("deploy", format!("{}: {e}", deploy::systemd::TEMPLATE)))?;
            let unit = deploy::systemd::unit_name(&t.env);
            tr.output_with_input(
                &["sudo", "tee", deploy::systemd::INSTALL_PATH],
                template.as_bytes(),
                Duration::from_secs(30),
            )?;
            tr.output(
                &["sudo", "systemctl", "daemon-reload"],
                Duration::from_secs(60),
            )?;
            tr.output(
                &["sudo", "systemctl", "enable", &unit],
                Duration::from_secs(60),
            )?;
            let state = tr.output(&["systemctl", "is-enabled", &unit], Duration::from_secs(30))?;
            let log = format!(
                "installed {} and enabled {unit}: {}\n",
                deploy::systemd::INSTALL_PATH,
                state.trim()
            );
            eprint!("{log}");
            Ok(log)
        }
    }
}
