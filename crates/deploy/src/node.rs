//! Node-side steps of a deploy (run by the `deploy` binary inside a node, after
//! ctx-guard): switch the environment's stack to a release through lifecycle, record it
//! as deployed (with per-environment retention), run the release's self-check inside the
//! running api container, show logs and state; hold the environment's deploy lock for the
//! host (in the node's state dir, so it covers every checkout and operator).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lifecycle::{LifecycleError, PinnedImage, Site, UpReport, UpRequest};
use stackpilot_core::Config;
use stackpilot_core::admin::{DockerAdmin, Removal};
use stackpilot_core::compose::{ONEOFF_LABEL, Project, SERVICE_LABEL};
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt};

use crate::DeployError;
use crate::plan::{self, Deployed, EnvState, Release, Running};

/// The deploy state file of an environment, next to its build receipt.
pub const STATE_FILE: &str = "deploy-state.json";

/// Where the deploy state of `env` lives on the node.
pub fn state_path(site: &Site, env: &str) -> PathBuf {
    site.env_dir(env).join(STATE_FILE)
}

/// Reads the deploy state of `env` (empty when nothing was ever deployed).
pub fn read_state(site: &Site, env: &str) -> Result<EnvState, DeployError> {
    let path = state_path(site, env);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| DeployError::State {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EnvState::default()),
        Err(e) => Err(DeployError::State {
            path,
            reason: e.to_string(),
        }),
    }
}

fn write_state(site: &Site, env: &str, state: &EnvState) -> Result<(), DeployError> {
    let path = state_path(site, env);
    let err = |e: String| DeployError::State {
        path: path.clone(),
        reason: e,
    };
    let text = serde_json::to_string_pretty(state).map_err(|e| err(e.to_string()))?;
    stackpilot_core::files::write_atomically(&path, &text).map_err(|e| err(e.to_string()))
}

/// The build receipt lifecycle starts from, for a release loaded (not built) here.
pub fn receipt_for(env: &str, r: &Release) -> BuildReceipt {
    BuildReceipt {
        env: env.to_string(),
        image_id: r.image_id.clone(),
        tag: r.tag.clone(),
        build_id: r.build_id.clone(),
        built_at: r.built_at.clone(),
        git_sha: r.git_sha.clone(),
        dirty: r.dirty,
    }
}

/// Switches the stack of `env` to `release`: the image must be in this node's engine
/// with the release's id; the env's build receipt is pointed at it, then `lifecycle up`
/// starts it (compose recreates only what changed: the db and its volume stay) and waits
/// until every container is healthy, at most `timeout`.
pub fn switch(
    allowed: &ctx_guard::Allowed,
    cfg: &Config,
    site: &Site,
    env: &str,
    release: &Release,
    timeout: Duration,
) -> Result<UpReport, DeployError> {
    cfg.environment(env)?;
    let admin = DockerAdmin::connect().map_err(LifecycleError::from)?;
    match admin.image_id(&release.tag).map_err(LifecycleError::from)? {
        Some(id) if id == release.image_id => {}
        found => {
            return Err(DeployError::ImageMismatch {
                tag: release.tag.clone(),
                expected: release.image_id.clone(),
                found: found.unwrap_or_else(|| "no such image".into()),
            });
        }
    }
    let dir = site.env_dir(env);
    std::fs::create_dir_all(&dir).map_err(|e| DeployError::State {
        path: dir.clone(),
        reason: e.to_string(),
    })?;
    receipts::write(&dir.join(BUILD_RECEIPT), &receipt_for(env, release))
        .map_err(LifecycleError::from)?;
    eprintln!(
        "deploy: switching {env} to {} (health gate timeout {} s)",
        release.tag,
        timeout.as_secs()
    );
    let req = UpRequest {
        env: env.to_string(),
        recreate: false,
        db_image: PinnedImage::from_lock(&site.repo, lifecycle::LOCK_POSTGRES)?,
        overrides: release.overrides.clone(),
        timeout,
    };
    Ok(lifecycle::up(allowed, cfg, site, &req)?)
}

/// What `record` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordReport {
    /// The state after recording.
    pub state: EnvState,
    /// Release images removed by retention.
    pub pruned: Vec<String>,
    /// Release images retention wanted to remove but the engine refused (in use).
    pub kept_in_use: Vec<String>,
}

/// Records `deployed` as the current release of `env`, then removes this environment's
/// release images beyond the last `keep`, never one another environment keeps.
pub fn record(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    site: &Site,
    env: &str,
    deployed: Deployed,
    keep: usize,
) -> Result<RecordReport, DeployError> {
    let mut state = read_state(site, env)?;
    state.record(deployed);
    write_state(site, env, &state)?;
    let mut histories = BTreeMap::new();
    for e in cfg.environments.keys() {
        let s = if e == env {
            state.clone()
        } else {
            read_state(site, e)?
        };
        histories.insert(
            e.clone(),
            s.history.iter().map(|r| r.tag.clone()).collect::<Vec<_>>(),
        );
    }
    let admin = DockerAdmin::connect().map_err(LifecycleError::from)?;
    let mut report = RecordReport {
        state,
        pruned: vec![],
        kept_in_use: vec![],
    };
    for tag in plan::prune(&histories, env, keep) {
        match admin.remove_image(&tag).map_err(LifecycleError::from)? {
            Removal::Refused(_) => report.kept_in_use.push(tag),
            _ => report.pruned.push(tag),
        }
    }
    let s = &mut report.state;
    let keep_tags: Vec<String> = s.history.iter().take(keep).map(|r| r.tag.clone()).collect();
    s.history
        .retain(|r| keep_tags.contains(&r.tag) || report.kept_in_use.contains(&r.tag));
    write_state(site, env, &report.state)?;
    Ok(report)
}

fn project_containers(
    cfg: &Config,
    site: &Site,
    env: &str,
) -> Result<Vec<stackpilot_core::admin::ContainerInfo>, DeployError> {
    let project = Project::for_env(cfg, &site.repo, env)?;
    let admin = DockerAdmin::connect().map_err(LifecycleError::from)?;
    Ok(admin
        .containers(&project.label_filter())
        .map_err(LifecycleError::from)?
        .into_iter()
        .filter(|c| c.labels.get(ONEOFF_LABEL).map(String::as_str) != Some("True"))
        .collect())
}

/// What runs now for `env` (read-only).
pub fn running(cfg: &Config, site: &Site, env: &str) -> Result<Running, DeployError> {
    let containers = project_containers(cfg, site, env)?;
    let api = containers
        .iter()
        .find(|c| c.labels.get(SERVICE_LABEL).map(String::as_str) == Some("api"));
    Ok(Running {
        api_image_id: api.map(|c| c.image_id.clone()),
        all_healthy: !containers.is_empty()
            && containers
                .iter()
                .all(|c| c.state == "running" && c.health == "healthy"),
    })
}

/// The id of the running container of `service` in `env`'s stack.
pub fn service_container(
    cfg: &Config,
    site: &Site,
    env: &str,
    service: &str,
) -> Result<String, DeployError> {
    project_containers(cfg, site, env)?
        .into_iter()
        .find(|c| c.labels.get(SERVICE_LABEL).map(String::as_str) == Some(service))
        .map(|c| c.id)
        .ok_or_else(|| DeployError::NoContainer {
            env: env.to_string(),
            service: service.to_string(),
        })
}

/// The production command's self-check, inside the running api container.
pub const SELF_CHECK: &[&str] = &["/app/mock-exchange", "self-check"];

/// Runs [`SELF_CHECK`] inside `env`'s running api container (the container's own
/// environment: its DATABASE_URL, its network). Returns the command and its full output;
/// a non-zero exit is an error carrying that output.
pub fn self_check(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    site: &Site,
    env: &str,
) -> Result<(String, String), DeployError> {
    let id = service_container(cfg, site, env, "api")?;
    let mut argv = vec!["exec".to_string(), id.chars().take(12).collect()];
    argv.extend(SELF_CHECK.iter().map(|s| s.to_string()));
    let line = format!("docker {}", argv.join(" "));
    let out = Command::new("docker")
        .args(&argv)
        .output()
        .map_err(|e| DeployError::Command {
            command: line.clone(),
            status: e.to_string(),
            output: String::new(),
        })?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok((line, output))
    } else {
        Err(DeployError::Command {
            command: line,
            status: out.status.to_string(),
            output,
        })
    }
}

/// `docker logs` of the asked service's container: `--timestamps`, the last `lines`
/// (`all` for everything), since `since` (RFC 3339) when given, following when `follow`.
pub fn logs_command(
    cfg: &Config,
    site: &Site,
    logs: &crate::cli::Logs,
) -> Result<Command, DeployError> {
    let id = service_container(cfg, site, &logs.env, &logs.service)?;
    let mut cmd = Command::new("docker");
    cmd.args(["logs", "--timestamps", "--tail", &logs.lines]);
    if let Some(s) = &logs.since {
        cmd.args(["--since", s]);
    }
    if logs.follow {
        cmd.arg("--follow");
    }
    cmd.arg(&id);
    Ok(cmd)
}

/// The site of the real node.
pub fn site(cfg: &Config) -> Site {
    Site::on_node(cfg)
}

/// The repo on the node.
pub fn node_repo() -> &'static Path {
    Path::new(stackpilot_core::node::NODE_REPO)
}

/// Removes a release image that failed its deploy from this node, unless an
/// environment still keeps it (its deploy history) or runs it (its build receipt).
/// Returns what happened, for the evidence.
pub fn discard(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    site: &Site,
    tag: &str,
) -> Result<String, DeployError> {
    for env in cfg.environments.keys() {
        if read_state(site, env)?.history.iter().any(|r| r.tag == tag) {
            return Ok(format!("{tag} kept: environment {env} keeps it"));
        }
        match receipts::read::<BuildReceipt>(&site.env_dir(env).join(BUILD_RECEIPT)) {
            Ok(r) if r.tag == tag => {
                return Ok(format!(
                    "{tag} kept: environment {env}'s build receipt names it"
                ));
            }
            _ => {}
        }
    }
    let admin = DockerAdmin::connect().map_err(LifecycleError::from)?;
    Ok(
        match admin.remove_image(tag).map_err(LifecycleError::from)? {
            Removal::Refused(why) => format!("{tag} kept: the engine refused ({why})"),
            Removal::Absent => format!("{tag} was not on this node"),
            _ => format!("{tag} removed: it failed its deploy and no environment keeps it"),
        },
    )
}

/// The deploy lock of `env` on this node.
pub fn lock_path(site: &Site, env: &str) -> PathBuf {
    site.env_dir(env).join(crate::evidence::LOCK_FILE)
}

/// Takes `env`'s deploy lock for `info` (a host-side action's owner, pid and purpose)
/// and keeps it after this process ends; a live lock held by anyone refuses, naming
/// its owner and expiry.
pub fn lock(
    _allowed: &ctx_guard::Allowed,
    site: &Site,
    env: &str,
    info: plan::LockInfo,
) -> Result<plan::LockInfo, DeployError> {
    Ok(crate::evidence::lock(&lock_path(site, env), info)?.keep())
}

/// Releases `env`'s deploy lock if it is still `info`'s.
pub fn unlock(
    _allowed: &ctx_guard::Allowed,
    site: &Site,
    env: &str,
    info: &plan::LockInfo,
) -> Result<String, DeployError> {
    let path = lock_path(site, env);
    if crate::evidence::unlock(&path, info)? {
        Ok(format!("released {}", path.display()))
    } else {
        Err(DeployError::Io {
            path,
            reason: format!(
                "not released: it is no longer held by {} (taken over after its expiry, or removed)",
                info.owner
            ),
        })
    }
}
