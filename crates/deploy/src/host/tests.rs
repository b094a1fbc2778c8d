//! The host flows driven by a fake node and a fake build machine: every stage, the
//! rollback, the lock. The fake node answers the node-side protocol (`deploy state`,
//! `switch`, `record`, `lock`, …) from plain data.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use stackpilot_core::Exit;
use stackpilot_core::argv::{self, ToolCall};
use stackpilot_core::exit::ExitStatus;

use super::flow::{LabImage, ReleaseBuild};
use super::*;
use crate::cli::Cmd;
use crate::local::{ComposeVars, LocalReport, LocalSpec, Transcript};
use crate::plan::{Deployed, EnvState, LockInfo, ObservePolicy};

#[derive(Default)]
pub(super) struct FakeNode {
    pub(super) state: RefCell<EnvState>,
    images: RefCell<BTreeMap<String, String>>,
    running: RefCell<Option<String>>,
    pub(super) lock: RefCell<Option<LockInfo>>,
    calls: RefCell<Vec<String>>,
    /// Releases whose switch fails its health gate (stage 3).
    unhealthy: BTreeSet<String>,
    /// Releases that start but fail verify (stage 4).
    failing_verify: BTreeSet<String>,
    beats: Cell<u64>,
}

impl FakeNode {
    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// Calls that change the node's stack or images (not lock, unlock, state).
    fn changes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !["deploy lock", "deploy unlock", "deploy state"].contains(&c.as_str()))
            .collect()
    }

    fn serving_tag(&self) -> Option<String> {
        let id = self.running.borrow().clone()?;
        self.images
            .borrow()
            .iter()
            .find(|(_, i)| **i == id)
            .map(|(t, _)| t.clone())
    }

    fn capture(&self, line: &str, ok: bool, out: String) -> Result<Capture, HostError> {
        Ok(Capture {
            line: line.to_string(),
            ok,
            out,
        })
    }
}

impl NodeOps for FakeNode {
    fn node(&self) -> &str {
        "worker1"
    }

    /// Reads the call with the tools' own clap definitions, as their binaries would.
    fn run_tool(&self, call: &ToolCall) -> Result<Capture, HostError> {
        let line = format!(
            "{} {}",
            call.tool,
            call.args.first().map_or("", String::as_str)
        );
        self.calls.borrow_mut().push(line.clone());
        let cmd = match call.tool {
            "deploy" => argv::parse::<crate::cli::Cli>(call).map(|c| c.command),
            "lifecycle" => {
                return match argv::parse::<lifecycle::cli::Cli>(call).map(|c| c.command) {
                    Ok(lifecycle::cli::Cmd::Down { .. }) => {
                        *self.running.borrow_mut() = None;
                        self.capture(&line, true, "stopped\n".into())
                    }
                    _ => self.capture(&line, false, format!("unknown step {line}")),
                };
            }
            _ => return self.capture(&line, false, format!("unknown tool {line}")),
        };
        let cmd = match cmd {
            Ok(cmd) => cmd,
            Err(e) => return self.capture(&line, false, format!("usage: {e}")),
        };
        match cmd {
            Cmd::Lock {
                owner,
                purpose,
                pid,
                ..
            } => {
                let now = evidence::unix_now() as u64;
                if let Some(l) = self.lock.borrow().as_ref().filter(|l| l.expires_at > now) {
                    let e = crate::DeployError::Locked {
                        path: PathBuf::from("/var/lib/stackpilot/dev/deploy.lock"),
                        owner: l.owner.clone(),
                        pid: l.pid,
                        purpose: l.purpose.clone(),
                        expires: "2026-11-30T20:00:00Z".into(),
                        expires_at: l.expires_at,
                    };
                    return self.capture(&line, false, format!("deploy: error: {e}\n"));
                }
                let info = LockInfo {
                    owner,
                    pid,
                    purpose,
                    acquired_at: now,
                    expires_at: now + 60,
                };
                let json = serde_json::to_string(&info).unwrap_or_default();
                *self.lock.borrow_mut() = Some(info);
                self.capture(&line, true, format!("{json}\n"))
            }
            Cmd::Unlock { lock, .. } => {
                let mine: Option<LockInfo> = serde_json::from_str(&lock).ok();
                let ok = *self.lock.borrow() == mine;
                if ok {
                    *self.lock.borrow_mut() = None;
                }
                self.capture(&line, ok, String::new())
            }
            Cmd::State { .. } => {
                let running = self.running.borrow().clone();
                let state = if running.is_some() {
                    "running"
                } else {
                    "exited"
                };
                let v = serde_json::json!({
                    "state": *self.state.borrow(),
                    "api_image_id": running,
                    "all_healthy": running.is_some(),
                    "containers": [
                        {"service": "api", "name": "api_1", "state": state, "health": "healthy", "restarts": 0, "image": "x"},
                    ],
                });
                self.capture(&line, true, format!("{v}\n"))
            }
            Cmd::Switch { release, .. } => {
                let r: Release =
                    serde_json::from_str(&release).map_err(|e| HostError::Usage(e.to_string()))?;
                if self.images.borrow().get(&r.tag) != Some(&r.image_id) {
                    return self.capture(&line, false, "error: image not loaded\n".into());
                }
                *self.running.borrow_mut() = Some(r.image_id.clone());
                if self.unhealthy.contains(&r.tag) {
                    return self.capture(
                        &line,
                        false,
                        "error: not healthy after 40 s (the timeout)\n".into(),
                    );
                }
                self.capture(&line, true, "switched\n".into())
            }
            Cmd::Record { deployed, .. } => {
                let d: Deployed =
                    serde_json::from_str(&deployed).map_err(|e| HostError::Usage(e.to_string()))?;
                self.state.borrow_mut().record(d);
                self.capture(&line, true, "{}\n".into())
            }
            Cmd::Discard { tag } => {
                self.images.borrow_mut().remove(&tag);
                self.capture(&line, true, "removed\n".into())
            }
            Cmd::Logs(_) => self.capture(
                &line,
                true,
                "{\"level\":\"INFO\",\"msg\":\"listening\"}\n".into(),
            ),
            Cmd::SelfCheck { .. } | Cmd::InstallService { .. } => {
                self.capture(&line, true, "ok\n".into())
            }
        }
    }

    fn image_id(&self, tag: &str) -> Result<Option<String>, HostError> {
        Ok(self.images.borrow().get(tag).cloned())
    }

    fn load_image(&self, tag: &str, id: &str) -> Result<String, HostError> {
        self.calls.borrow_mut().push(format!("load {tag}"));
        self.images
            .borrow_mut()
            .insert(tag.to_string(), id.to_string());
        Ok(format!("loaded {tag}\n"))
    }

    fn verify(&self, _env: &str, _wait: Option<Duration>) -> Result<Verified, HostError> {
        let passed = self
            .serving_tag()
            .is_some_and(|t| !self.failing_verify.contains(&t) && !self.unhealthy.contains(&t));
        Ok(Verified {
            passed,
            report: format!("verify: {}\n", if passed { "PASS" } else { "FAIL" }),
        })
    }

    fn http_get(&self, _env: &str, path: &str) -> Result<(u16, String), String> {
        if self.running.borrow().is_none() {
            return Err("connection refused".into());
        }
        match path {
            "/metrics" => {
                // Each scrape sees a later beat, after any switch.
                self.beats.set(self.beats.get() + 1);
                let at = evidence::unix_now() + 1000.0 + self.beats.get() as f64;
                Ok((200, format!("{} {at}\n", crate::plan::HEARTBEAT_METRIC)))
            }
            _ => Ok((200, "ready".into())),
        }
    }
}

fn image_id_of(tag: &str) -> String {
    format!("sha256:{}", evidence::sha256_hex(tag.as_bytes()))
}

pub(super) struct FakeBuild {
    root: tempfile::TempDir,
    compiles: bool,
    runtime_id: String,
}

impl FakeBuild {
    pub(super) fn new() -> FakeBuild {
        let root = tempfile::tempdir().expect("tempdir");
        let p = root.path();
        for (f, text) in [
            (
                "infra/env/dev.env",
                "POSTGRES_USER=u\nPOSTGRES_PASSWORD=p\nPOSTGRES_DB=d\n",
            ),
            ("infra/env/broken.env", "POSTGRES_USER=u\nPOSTGRES_DB=d\n"),
            ("target/mock-exchange", "binary"),
            (lifecycle::DOCKERFILE, "FROM runtime"),
            (stackpilot_core::images::LOCK_FILE, "lock"),
            (stackpilot_core::config::CONFIG_FILE, "config"),
            (stackpilot_core::compose::COMPOSE_FILE, "services: {}"),
            (
                "apps/mock-exchange/migrations/0001_init.sql",
                "create table t ();",
            ),
        ] {
            let path = p.join(f);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, text).expect("write");
        }
        FakeBuild {
            root,
            compiles: true,
            runtime_id: "sha256:runtime".into(),
        }
    }

    pub(super) fn recs(&self) -> Records {
        Records::new(self.root(), Path::new(".stackpilot"), "worker1", "dev")
    }

    pub(super) fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.recs().audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The newest bundle's summary.json.
    pub(super) fn summary(&self) -> serde_json::Value {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.recs().env_dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs.last()
            .and_then(|d| std::fs::read_to_string(d.join("summary.json")).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub(super) fn request(&self, build_id: &str, overrides: &[(&str, &str)]) -> DeployRequest {
        let image = |name: &str| LabImage {
            tag: format!("stackpilot/{name}:bookworm"),
            id: if name == "runtime" {
                self.runtime_id.clone()
            } else {
                format!("sha256:{name}")
            },
        };
        let overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DeployRequest {
            env: "dev".into(),
            env_file: "infra/env/dev.env".into(),
            vars: BTreeMap::new(),
            overrides: overrides.clone(),
            health_timeout: 40,
            observe: ObservePolicy {
                window_secs: 0,
                max_errors: 0,
            },
            release: ReleaseBuild {
                tag: format!("stackpilot/mock-exchange:abc-{build_id}"),
                build_id: build_id.into(),
                git_sha: "abc".into(),
                dirty: false,
                built_at: "2026-11-30T18:00:00Z".into(),
            },
            binary: "target/mock-exchange".into(),
            runtime: image("runtime"),
            postgres: image("postgres"),
            source_digest: "src".into(),
            config_artifacts: identity::config_artifacts(self.root(), "infra/env/dev.env")
                .expect("config artifacts"),
        }
    }
}

impl BuildOps for FakeBuild {
    fn root(&self) -> &Path {
        self.root.path()
    }

    fn compile(&self) -> Result<(), String> {
        if self.compiles {
            Ok(())
        } else {
            Err("error[E0308]: mismatched types".into())
        }
    }

    fn run_locally(&self, _spec: &LocalSpec, tag: &str) -> LocalReport {
        LocalReport {
            tag: tag.into(),
            image_id: Some(image_id_of(tag)),
            transcript: Transcript::default(),
            failure: None,
        }
    }

    fn image_id(&self, reference: &str) -> Result<String, String> {
        Ok(match reference {
            r if r.starts_with("stackpilot/runtime") => "sha256:runtime".into(),
            r if r.starts_with("stackpilot/postgres") => "sha256:postgres".into(),
            r => image_id_of(r),
        })
    }

    fn compose_config(&self, _vars: &ComposeVars<'_>) -> Result<(String, String), String> {
        Ok(("docker-compose config".into(), "services: {}".into()))
    }
}

pub(super) const BY: &str = "op@host";

fn run_deploy(
    node: &FakeNode,
    build: &FakeBuild,
    req: &DeployRequest,
) -> (Result<(), HostError>, String) {
    let mut report = String::new();
    let r = deploy(node, build, &build.recs(), BY, req, &mut report);
    (r, report)
}

pub(super) fn failure(r: Result<(), HostError>) -> String {
    match r {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_first_deploy_passes_four_stages_and_is_recorded() {
    let (node, build) = (FakeNode::default(), FakeBuild::new());
    let req = build.request("b1", &[]);
    let (r, report) = run_deploy(&node, &build, &req);
    assert!(r.is_ok(), "{}", failure(r));
    assert!(report.contains("all four stages passed"), "{report}");
    assert_eq!(build.summary()["outcome"], "deployed");
    let state = node.state.borrow().clone();
    assert_eq!(
        state.current.map(|d| d.release.tag),
        Some(req.release.tag.clone())
    );
    assert_eq!(build.audit().len(), 1);
    assert!(node.lock.borrow().is_none(), "the lock is released");
    assert!(node.calls().contains(&"deploy install-service".to_string()));
}

#[test]
fn a_stage_1_failure_leaves_the_node_untouched() {
    let (node, mut build) = (FakeNode::default(), FakeBuild::new());
    build.compiles = false;
    let (r, _) = run_deploy(&node, &build, &build.request("b1", &[]));
    let e = failure(r);
    assert!(
        e.contains("stage 1 (local verification) failed before the node was touched"),
        "{e}"
    );
    assert_eq!(node.changes(), Vec::<String>::new());
    assert_eq!(build.summary()["failed_stage"], "local-verification");
    assert_eq!(build.audit()[0]["outcome"], "failed");
}

#[test]
fn a_stage_2_failure_leaves_the_node_untouched() {
    let (node, mut build) = (FakeNode::default(), FakeBuild::new());
    build.runtime_id = "sha256:something-else".into();
    let (r, _) = run_deploy(&node, &build, &build.request("b1", &[]));
    let e = failure(r);
    assert!(e.contains("stage 2 (artifact integrity) failed"), "{e}");
    assert!(
        e.contains("the image lock says sha256:something-else"),
        "{e}"
    );
    assert_eq!(node.changes(), Vec::<String>::new());
}

#[test]
fn a_first_deploy_failing_on_the_node_stops_the_stack_with_no_previous_release() {
    let build = FakeBuild::new();
    let req = build.request("b1", &[]);
    let node = FakeNode {
        unhealthy: [req.release.tag.clone()].into(),
        ..FakeNode::default()
    };
    let (r, _) = run_deploy(&node, &build, &req);
    let e = failure(r);
    assert!(e.contains("no previous release to roll back to"), "{e}");
    assert!(e.contains("health gate timeout 40 s"), "{e}");
    assert_eq!(build.summary()["outcome"], "failed-no-previous-release");
    assert!(
        node.running.borrow().is_none(),
        "the unproven release was stopped"
    );
    assert!(node.state.borrow().current.is_none(), "nothing recorded");
}

#[test]
fn a_stage_3_failure_rolls_back_to_the_previous_release_and_discards_the_bad_one() {
    let build = FakeBuild::new();
    let good = build.request("b1", &[]);
    let bad = build.request("b2", &[("POSTGRES_PASSWORD", "wrong")]);
    let node = FakeNode {
        unhealthy: [bad.release.tag.clone()].into(),
        ..FakeNode::default()
    };
    assert!(run_deploy(&node, &build, &good).0.is_ok());
    let (r, _) = run_deploy(&node, &build, &bad);
    let e = failure(r);
    assert!(
        e.contains(&format!("rolled back to {}", good.release.tag)),
        "{e}"
    );
    let s = build.summary();
    assert_eq!(s["outcome"], "rolled-back", "{s}");
    assert_eq!(s["failed_stage"], "remote-execution", "{s}");
    assert_eq!(s["rollback"]["passed"], true, "{s}");
    assert_eq!(node.serving_tag(), Some(good.release.tag.clone()));
    assert!(
        !node.images.borrow().contains_key(&bad.release.tag),
        "bad release discarded"
    );
    let current = node.state.borrow().current.clone().map(|d| d.release.tag);
    assert_eq!(current, Some(good.release.tag));
}

#[test]
fn a_stage_4_failure_rolls_back_too() {
    let build = FakeBuild::new();
    let good = build.request("b1", &[]);
    let bad = build.request("b2", &[("LOG_LEVEL", "debug")]);
    let node = FakeNode {
        failing_verify: [bad.release.tag.clone()].into(),
        ..FakeNode::default()
    };
    assert!(run_deploy(&node, &build, &good).0.is_ok());
    let e = failure(run_deploy(&node, &build, &bad).0);
    assert!(e.contains("stage 4 (observability) failed"), "{e}");
    assert_eq!(build.summary()["failed_stage"], "observability");
    assert_eq!(node.serving_tag(), Some(good.release.tag));
}

#[test]
fn the_same_release_running_healthy_changes_nothing() {
    let (node, build) = (FakeNode::default(), FakeBuild::new());
    assert!(
        run_deploy(&node, &build, &build.request("b1", &[]))
            .0
            .is_ok()
    );
    let switches = || {
        node.calls()
            .iter()
            .filter(|c| *c == "deploy switch")
            .count()
    };
    let before = switches();
    let (r, report) = run_deploy(&node, &build, &build.request("b2", &[]));
    assert!(r.is_ok(), "{}", failure(r));
    assert!(report.contains("nothing restarted"), "{report}");
    assert_eq!(switches(), before);
    assert_eq!(build.summary()["outcome"], "unchanged");
}

#[test]
fn an_env_file_missing_a_key_is_refused_before_anything() {
    let build = FakeBuild::new();
    let e = preflight(build.root(), Path::new("infra/env/broken.env"), "dev", None).err();
    assert!(
        matches!(&e, Some(HostError::Usage(m)) if m.contains("POSTGRES_PASSWORD") && m.contains("nothing was touched")),
        "{e:?}"
    );
    assert!(preflight(build.root(), Path::new("infra/env/dev.env"), "dev", None).is_ok());
}

#[test]
fn live_without_confirmation_is_refused() {
    let build = FakeBuild::new();
    let e = preflight(build.root(), Path::new("infra/env/dev.env"), "live", None).err();
    assert!(
        matches!(&e, Some(HostError::Usage(m)) if m.contains("CONFIRM_LIVE=yes")),
        "{e:?}"
    );
    assert!(
        preflight(
            build.root(),
            Path::new("infra/env/dev.env"),
            "live",
            Some("yes")
        )
        .is_ok()
    );
}

#[test]
fn a_lock_held_by_another_checkout_refuses_naming_owner_and_expiry() {
    let (node, build) = (FakeNode::default(), FakeBuild::new());
    let theirs = LockInfo {
        owner: "ann@box (/home/ann/stackpilot)".into(),
        pid: 7,
        purpose: "deploy dev on worker1".into(),
        acquired_at: 1,
        expires_at: evidence::unix_now() as u64 + 600,
    };
    *node.lock.borrow_mut() = Some(theirs.clone());
    let e = failure(run_deploy(&node, &build, &build.request("b1", &[])).0);
    assert!(
        e.contains("held by ann@box (/home/ann/stackpilot)") && e.contains("until"),
        "{e}"
    );
    assert_eq!(
        node.calls(),
        vec!["deploy lock".to_string()],
        "nothing else ran"
    );
    assert!(build.audit().is_empty(), "a refused deploy writes nothing");
    assert_eq!(*node.lock.borrow(), Some(theirs), "their lock stays");
}

#[test]
fn rollback_needs_a_previous_release_then_switches_and_records_it() {
    let (node, build) = (FakeNode::default(), FakeBuild::new());
    let recs = build.recs();
    let mut report = String::new();
    let e = failure(act(&node, &recs, BY, Action::Rollback, &mut report));
    assert!(e.contains("no previous release"), "{e}");
    assert!(build.audit().is_empty());
    let first = build.request("b1", &[]);
    assert!(run_deploy(&node, &build, &first).0.is_ok());
    assert!(
        run_deploy(
            &node,
            &build,
            &build.request("b2", &[("LOG_LEVEL", "debug")])
        )
        .0
        .is_ok()
    );
    let r = act(&node, &recs, BY, Action::Rollback, &mut report);
    assert!(r.is_ok(), "{}", failure(r));
    assert!(report.contains("rolled back dev on worker1"), "{report}");
    let current = node.state.borrow().current.clone();
    assert_eq!(current.as_ref().map(|d| d.how.as_str()), Some("rollback"));
    assert_eq!(current.map(|d| d.release.tag), Some(first.release.tag));
    assert_eq!(build.summary()["outcome"], "rolled-back");
}

#[test]
fn restart_needs_a_deployed_release_and_stop_is_audited() {
    let (node, build) = (FakeNode::default(), FakeBuild::new());
    let recs = build.recs();
    let mut report = String::new();
    let e = failure(act(&node, &recs, BY, Action::Restart, &mut report));
    assert!(e.contains("nothing is deployed in dev"), "{e}");
    assert!(
        run_deploy(&node, &build, &build.request("b1", &[]))
            .0
            .is_ok()
    );
    assert!(
        act(&node, &recs, BY, Action::Restart, &mut report).is_ok(),
        "{report}"
    );
    assert!(act(&node, &recs, BY, Action::Stop, &mut report).is_ok());
    assert!(node.running.borrow().is_none());
    let outcomes: Vec<String> = build
        .audit()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(outcomes, ["deployed", "restarted", "stopped"]);
}

#[test]
fn status_of_a_stopped_stack_is_down() {
    let (node, build) = (FakeNode::default(), FakeBuild::new());
    assert!(
        run_deploy(&node, &build, &build.request("b1", &[]))
            .0
            .is_ok()
    );
    let up = status(&node, "dev").expect("status");
    assert!(up.up, "{}", stackpilot_core::output::Render::human(&up));
    *node.running.borrow_mut() = None;
    let down = status(&node, "dev").expect("status");
    assert!(!down.up);
    assert!(down.down_reason().is_some_and(|r| r.contains("api exited")));
}

#[test]
fn a_refusal_is_exit_2_and_a_failure_exit_1() {
    assert_eq!(HostError::Usage("x".into()).exit(), Exit::Usage);
    assert_eq!(HostError::failed("deploy", "x").exit(), Exit::Failed);
}

/// What the operator reads after a deploy (the stage table, the evidence bundle, the
/// outcome), with the bundle's timestamped name redacted.
fn shown_report(report: &str) -> String {
    report
        .lines()
        .map(|l| match l.strip_prefix("evidence: ") {
            Some(_) => "evidence: [bundle]".to_string(),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_deploy_report_shows_every_stage_in_a_table() {
    let (node, build) = (FakeNode::default(), FakeBuild::new());
    let (r, report) = run_deploy(&node, &build, &build.request("b1", &[]));
    assert!(r.is_ok(), "{}", failure(r));
    insta::assert_snapshot!("deploy_report_passed", shown_report(&report));
}

#[test]
fn the_deploy_report_of_a_failed_stage_shows_the_stages_run() {
    let (node, mut build) = (FakeNode::default(), FakeBuild::new());
    build.runtime_id = "sha256:something-else".into();
    let (r, report) = run_deploy(&node, &build, &build.request("b1", &[]));
    insta::assert_snapshot!(
        "deploy_report_stage_2_failed",
        format!("{}\nerror: {}", shown_report(&report), failure(r))
    );
}
