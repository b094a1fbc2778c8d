//! The host side of a deploy: `make deploy|rollback|restart|stop|status` as flows over two
//! small traits ([`NodeOps`], [`BuildOps`]), so every stage, the rollback and the lock are
//! driven by unit tests with fakes. It changes a node only through node-side steps
//! (ctx-guard first); it never runs `docker`, `systemctl` or `sudo` on a node itself.
//!
//! Every action but `status` runs inside [`guarded`]: the node's deploy lock (owner and
//! expiry, on the node, so it covers every checkout and operator), the node's state, an
//! evidence bundle when the action proves something, and one audit line.

pub mod flow;
pub mod identity;
pub mod ops;
pub mod stages;
pub mod status;
pub mod swarm;
#[cfg(test)]
mod tests;
pub mod workshop;

use std::path::{Path, PathBuf};

pub use flow::{Action, DeployRequest, act, deploy, preflight, status};
pub use ops::{BuildOps, Capture, HostError, NodeOps, Verified};

use stackpilot_core::argv::ToArgv;

use crate::cli::Cmd as DeployCmd;
use crate::evidence::{self, Bundle};
use crate::plan::{AuditEntry, Deployed, EnvState, LockInfo, Release, Running};
use status::StackContainer;

/// Where the host keeps the records of one node + environment.
#[derive(Debug, Clone)]
pub struct Records {
    /// The repo root (paths in messages are relative to it).
    pub root: PathBuf,
    /// The environment.
    pub env: String,
    /// `<host state dir>/deploys/<node>/<env>`: the evidence bundles.
    pub env_dir: PathBuf,
    /// `<host state dir>/deploys/audit.log`.
    pub audit: PathBuf,
}

impl Records {
    /// The records of `env` on `node` under `<root>/<host_dir>/deploys`.
    pub fn new(root: &Path, host_dir: &Path, node: &str, env: &str) -> Records {
        let base = root.join(host_dir).join(evidence::DEPLOYS_DIR);
        Records {
            root: root.to_path_buf(),
            env: env.to_string(),
            env_dir: base.join(node).join(env),
            audit: base.join(evidence::AUDIT_LOG),
        }
    }

    /// `p` relative to the repo root, for messages.
    pub fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

/// What the node says about an environment: its deploy state, what runs, the containers.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// Deployed release and history.
    pub state: EnvState,
    /// The api's image and whether everything is healthy.
    pub running: Running,
    /// The stack's containers.
    pub containers: Vec<StackContainer>,
}

/// Reads `deploy state --env ENV` on the node.
pub fn node_state<N: NodeOps + ?Sized>(node: &N, env: &str) -> Result<NodeState, HostError> {
    let c = node.run_tool(&DeployCmd::State { env: env.into() }.call())?;
    let bad = |why: String| HostError::failed("deploy state", format!("{why}: {}", c.out));
    if !c.ok {
        return Err(bad("failed".into()));
    }
    let json = c
        .out
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| bad("no JSON".into()))?;
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(format!("not JSON ({e})")))?;
    let state: EnvState = serde_json::from_value(v["state"].clone())
        .map_err(|e| bad(format!("state not readable ({e})")))?;
    Ok(NodeState {
        state,
        running: Running {
            api_image_id: v["api_image_id"].as_str().map(str::to_string),
            all_healthy: v["all_healthy"].as_bool().unwrap_or(false),
        },
        containers: serde_json::from_value(v["containers"].clone()).unwrap_or_default(),
    })
}

/// `deploy switch`: the env's stack switched to `release` through lifecycle, health gate
/// `timeout` seconds.
pub fn switch<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    release: &Release,
    timeout: u64,
) -> Result<Capture, HostError> {
    let json =
        serde_json::to_string(release).map_err(|e| HostError::failed("deploy", e.to_string()))?;
    node.run_tool(
        &DeployCmd::Switch {
            env: env.into(),
            release: json,
            timeout,
        }
        .call(),
    )
}

/// `deploy record`: `deployed` becomes the env's current release on the node.
pub fn record<N: NodeOps + ?Sized>(
    node: &N,
    env: &str,
    deployed: &Deployed,
) -> Result<String, HostError> {
    let json =
        serde_json::to_string(deployed).map_err(|e| HostError::failed("deploy", e.to_string()))?;
    let c = node.run_tool(
        &DeployCmd::Record {
            env: env.into(),
            deployed: json,
            keep: crate::plan::KEEP_RELEASES,
        }
        .call(),
    )?;
    if c.ok {
        Ok(c.transcript())
    } else {
        Err(HostError::failed("deploy record", c.out))
    }
}

/// The node's deploy lock of one environment, held while an action runs; released
/// (only if still ours) when dropped.
pub struct NodeLock<'a, N: NodeOps + ?Sized> {
    node: &'a N,
    env: String,
    info: String,
}

impl<N: NodeOps + ?Sized> Drop for NodeLock<'_, N> {
    fn drop(&mut self) {
        let released = self.node.run_tool(
            &DeployCmd::Unlock {
                env: self.env.clone(),
                lock: self.info.clone(),
            }
            .call(),
        );
        if !released.as_ref().is_ok_and(|c| c.ok) {
            eprintln!(
                "deploy: the lock of {} on {} could not be released ({}); it expires by itself",
                self.env,
                self.node.node(),
                released.map_or_else(|e| e.to_string(), |c| c.out)
            );
        }
    }
}

/// Who holds a lock taken from this checkout: `user@host (checkout)`.
pub fn lock_owner(by: &str, root: &Path) -> String {
    format!("{by} ({})", root.display())
}

/// Takes the node's deploy lock of `env` for `purpose`; a live lock held by anyone else
/// refuses, naming its owner and expiry.
pub fn lock<'a, N: NodeOps + ?Sized>(
    node: &'a N,
    env: &str,
    owner: &str,
    action: &str,
) -> Result<NodeLock<'a, N>, HostError> {
    let purpose = format!("{action} {env} on {}", node.node());
    let c = node.run_tool(
        &DeployCmd::Lock {
            env: env.into(),
            owner: owner.into(),
            purpose,
            pid: std::process::id(),
        }
        .call(),
    )?;
    let info = c
        .out
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .filter(|l| serde_json::from_str::<LockInfo>(l).is_ok());
    match info {
        Some(info) if c.ok => Ok(NodeLock {
            node,
            env: env.to_string(),
            info: info.trim().to_string(),
        }),
        _ => Err(HostError::failed(action, c.out.trim().to_string())),
    }
}

/// What an action did, for the audit line and the operator.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The release it acted on.
    pub release: Option<String>,
    /// The audit outcome (`deployed`, `rolled-back`, `stopped`, …).
    pub outcome: String,
    /// Why it failed, for the audit.
    pub reason: Option<String>,
    /// What the operator reads: stdout when it passed, the error when it did not.
    pub message: String,
    /// Whether the action succeeded.
    pub passed: bool,
}

/// An action in progress inside [`guarded`]: the node's state, the records, the bundle.
pub struct Acting<'r> {
    /// What the node said when the lock was taken.
    pub node: NodeState,
    /// The records.
    pub recs: &'r Records,
    /// Who acts.
    pub by: String,
    bundle: Option<Bundle>,
    extra: String,
}

impl Acting<'_> {
    /// Creates the action's evidence bundle `name` (once).
    pub fn bundle(&mut self, name: &str) -> Result<Bundle, HostError> {
        if let Some(b) = &self.bundle {
            return Ok(b.clone());
        }
        let b = Bundle::create(&self.recs.env_dir, name)?;
        eprintln!("==> evidence bundle: {}", self.recs.rel(&b.dir));
        self.bundle = Some(b.clone());
        Ok(b)
    }

    /// Adds `text` to what the operator reads, before the action's message.
    pub fn extra(&mut self, text: String) {
        self.extra.push_str(&text);
        self.extra.push('\n');
    }
}

/// The sequence every changing action shares: lock (on the node) → state (from the node)
/// → the action, which may open an evidence bundle → one audit line. An action that
/// refuses (returns Err) writes no audit line; the lock is released either way.
pub fn guarded<N: NodeOps + ?Sized>(
    node: &N,
    recs: &Records,
    action: &str,
    by: &str,
    report: &mut String,
    body: impl FnOnce(&N, &mut Acting<'_>) -> Result<Acted, HostError>,
) -> Result<(), HostError> {
    let _lock = lock(node, &recs.env, &lock_owner(by, &recs.root), action)?;
    let state = node_state(node, &recs.env)?;
    let mut acting = Acting {
        node: state,
        recs,
        by: by.to_string(),
        bundle: None,
        extra: String::new(),
    };
    let acted = body(node, &mut acting)?;
    let evidence = acting.bundle.as_ref().map(|b| recs.rel(&b.dir));
    evidence::audit(
        &recs.audit,
        &AuditEntry {
            at: evidence::stamps().0,
            by: by.to_string(),
            action: action.into(),
            node: node.node().to_string(),
            env: recs.env.clone(),
            release: acted.release.clone(),
            outcome: acted.outcome.clone(),
            evidence: evidence.clone(),
            reason: acted.reason.clone(),
        },
    )?;
    report.push_str(&acting.extra);
    if let Some(e) = evidence {
        report.push_str(&format!("evidence: {e}\n"));
    }
    if acted.passed {
        report.push_str(&acted.message);
        report.push('\n');
        Ok(())
    } else {
        Err(HostError::failed(action, acted.message))
    }
}

/// The most telling line of a tool's output: the last one naming an error or failure.
pub fn last_error(out: &str) -> String {
    out.lines()
        .rev()
        .find(|l| l.contains("error") || l.contains("FAIL") || l.contains("fail"))
        .unwrap_or_else(|| out.lines().last().unwrap_or(""))
        .trim()
        .to_string()
}
