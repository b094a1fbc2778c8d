//! The deploy's decisions on plain data: env file completeness, stage gates, rollback,
//! idempotency, retention, the lock and the observability verdict. No I/O here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Keys every environment's env file must set (the Postgres image's env contract).
pub const REQUIRED_KEYS: &[&str] = &["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"];

/// Releases kept per environment on a node (the deployed one included).
pub const KEEP_RELEASES: usize = 3;

/// The environment that asks for an explicit confirmation.
pub const CONFIRMED_ENV: &str = "live";
/// The variable that confirms a deploy to [`CONFIRMED_ENV`] (`CONFIRM_LIVE=yes`).
pub const CONFIRM_VAR: &str = "CONFIRM_LIVE";

/// Parses an env file: `KEY=VALUE` lines; blank lines and `#` comments ignored.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The required keys an env file lacks or leaves empty.
pub fn missing_keys(vars: &BTreeMap<String, String>) -> Vec<String> {
    REQUIRED_KEYS
        .iter()
        .filter(|k| vars.get(**k).is_none_or(|v| v.is_empty()))
        .map(|k| k.to_string())
        .collect()
}

/// Whether a deploy to `env` may go ahead given the confirmation variable's value.
pub fn confirmed(env: &str, confirm: Option<&str>) -> bool {
    env != CONFIRMED_ENV || confirm == Some("yes")
}

/// One release: an immutable image tag and what it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// `stackpilot/mock-exchange:<git sha>-<build id>`.
    pub tag: String,
    /// The image id (same on the build machine and the node: the image is loaded).
    pub image_id: String,
    /// The build id baked into the binary and labelled on the image.
    pub build_id: String,
    /// Git commit of the source.
    pub git_sha: String,
    /// The work tree had uncommitted changes.
    pub dirty: bool,
    /// When the image was built (RFC 3339).
    pub built_at: String,
    /// sha256 over the sources the release is built from.
    pub source_digest: String,
    /// sha256 over the configuration it runs with (env file, compose file, migrations,
    /// overrides).
    pub config_digest: String,
    /// Compose variable overrides it was started with (drills and tests only).
    #[serde(default)]
    pub overrides: Vec<(String, String)>,
}

impl Release {
    /// The short name used in evidence folders: the tag's suffix after `:`.
    pub fn short(&self) -> &str {
        self.tag
            .rsplit_once(':')
            .map_or(self.tag.as_str(), |(_, t)| t)
    }
}

/// The release deployed in one environment, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// The release.
    pub release: Release,
    /// When it was recorded as deployed (RFC 3339).
    pub at: String,
    /// Who deployed it (`user@host`).
    pub by: String,
    /// `deploy` or `rollback`.
    pub how: String,
}

/// Deploy state of one environment on a node: what runs and what can be rolled back to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvState {
    /// The deployed release, if any.
    pub current: Option<Deployed>,
    /// Releases recorded as deployed, most recent first (the current one first).
    pub history: Vec<Release>,
}

impl EnvState {
    /// The release a rollback switches to: the most recent one before the current.
    pub fn previous(&self) -> Option<&Release> {
        let current = self.current.as_ref().map(|d| d.release.tag.as_str());
        self.history
            .iter()
            .find(|r| Some(r.tag.as_str()) != current)
    }

    /// Records `deployed` as current and moves its release to the front of the history.
    pub fn record(&mut self, deployed: Deployed) {
        self.history.retain(|r| r.tag != deployed.release.tag);
        self.history.insert(0, deployed.release.clone());
        self.current = Some(deployed);
    }
}

/// The deploy's stages, in their mandatory order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// 1: the release runs on the build machine against a throwaway Postgres.
    LocalVerification,
    /// 2: every artifact present, checksummed, resolvable.
    ArtifactIntegrity,
    /// 3: the release runs on the node and passes its self-check there.
    RemoteExecution,
    /// 4: logs, heartbeat, error rate and verify after the switch.
    Observability,
}

impl Stage {
    /// All stages in order.
    pub const ALL: [Stage; 4] = [
        Stage::LocalVerification,
        Stage::ArtifactIntegrity,
        Stage::RemoteExecution,
        Stage::Observability,
    ];

    /// 1-4.
    pub fn number(self) -> u8 {
        self as u8 + 1
    }

    /// The evidence file of the stage.
    pub fn file(self) -> &'static str {
        match self {
            Stage::LocalVerification => "stage1-local-verification.log",
            Stage::ArtifactIntegrity => "stage2-artifact-integrity.json",
            Stage::RemoteExecution => "stage3-remote-execution.log",
            Stage::Observability => "stage4-observability.log",
        }
    }

    /// Whether the stage changes the node (a failure there needs a rollback).
    pub fn touches_node(self) -> bool {
        matches!(self, Stage::RemoteExecution | Stage::Observability)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Stage::LocalVerification => "local verification",
            Stage::ArtifactIntegrity => "artifact integrity",
            Stage::RemoteExecution => "remote execution",
            Stage::Observability => "observability",
        };
        write!(f, "stage {} ({name})", self.number())
    }
}

/// How one stage ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageResult {
    /// The stage.
    pub stage: Stage,
    /// Passed or not.
    pub passed: bool,
    /// What was proven, or why it failed.
    pub detail: String,
}

/// What the deploy does once a set of stage results is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Run this stage next.
    Run(Stage),
    /// Every stage passed: record the release as deployed.
    Record,
    /// A stage before the node was touched failed: stop, nothing to undo.
    Stop {
        /// The failed stage.
        failed: Stage,
    },
    /// A stage on the node failed: switch back to the previous release.
    RollBack {
        /// The failed stage.
        failed: Stage,
        /// The release to switch back to.
        to: Release,
    },
    /// A stage on the node failed and there is no previous release: stop the new one.
    StopWithoutPrevious {
        /// The failed stage.
        failed: Stage,
    },
}

/// The gate: results must come in stage order; the first failure decides.
pub fn gate(results: &[StageResult], previous: Option<&Release>) -> Gate {
    for (i, stage) in Stage::ALL.iter().enumerate() {
        match results.get(i) {
            None => return Gate::Run(*stage),
            Some(r) if r.stage != *stage => return Gate::Stop { failed: *stage },
            Some(r) if !r.passed => {
                return match (stage.touches_node(), previous) {
                    (false, _) => Gate::Stop { failed: *stage },
                    (true, Some(p)) => Gate::RollBack {
                        failed: *stage,
                        to: p.clone(),
                    },
                    (true, None) => Gate::StopWithoutPrevious { failed: *stage },
                };
            }
            Some(_) => {}
        }
    }
    Gate::Record
}

/// What the node runs now for an environment, as far as idempotency cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Image id of the api container (None: no api container).
    pub api_image_id: Option<String>,
    /// Every container of the stack is running and healthy.
    pub all_healthy: bool,
}

/// Whether a deploy of (`source_digest`, `config_digest`) is already done: the deployed
/// release was made from the same sources and configuration and is what runs, healthy.
pub fn already_deployed(
    state: &EnvState,
    source_digest: &str,
    config_digest: &str,
    running: &Running,
) -> Option<Release> {
    let d = state.current.as_ref()?;
    let same = d.release.source_digest == source_digest
        && d.release.config_digest == config_digest
        && running.api_image_id.as_deref() == Some(d.release.image_id.as_str())
        && running.all_healthy;
    same.then(|| d.release.clone())
}

/// Release tags of `env` to remove from a node keeping `keep` per environment: the ones
/// beyond the first `keep` of its history that no other environment still keeps.
pub fn prune(histories: &BTreeMap<String, Vec<String>>, env: &str, keep: usize) -> Vec<String> {
    let kept_elsewhere: BTreeSet<&str> = histories
        .iter()
        .filter(|(e, _)| e.as_str() != env)
        .flat_map(|(_, h)| h.iter().take(keep).map(String::as_str))
        .collect();
    histories
        .get(env)
        .map(|h| {
            h.iter()
                .skip(keep)
                .filter(|t| !kept_elsewhere.contains(t.as_str()) && !h[..keep].contains(t))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// A deploy lock: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// `user@host`.
    pub owner: String,
    /// Process id of the holder.
    pub pid: u32,
    /// What it is doing (`deploy dev on worker1`).
    pub purpose: String,
    /// Unix seconds when taken.
    pub acquired_at: u64,
    /// Unix seconds after which it counts as abandoned.
    pub expires_at: u64,
}

/// What to do about an existing lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockDecision {
    /// No lock: take it.
    Free,
    /// A lock whose holder's time is up (a crashed deploy): take it over, saying so.
    Expired(LockInfo),
    /// Held and not expired: refuse, naming the owner and the expiry.
    Held(LockInfo),
}

/// Decides on an existing lock at unix time `now`.
pub fn lock_decision(existing: Option<LockInfo>, now: u64) -> LockDecision {
    match existing {
        None => LockDecision::Free,
        Some(l) if now >= l.expires_at => LockDecision::Expired(l),
        Some(l) => LockDecision::Held(l),
    }
}

/// What the logs since the switch say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogCounts {
    /// Lines written.
    pub lines: usize,
    /// Lines at level ERROR (JSON logs) or not JSON at all and mentioning "panic".
    pub errors: usize,
}

/// Counts lines and error lines of the service's JSON logs (`docker logs` output; a
/// leading timestamp from `--timestamps` is skipped).
pub fn count_log_lines(text: &str) -> LogCounts {
    let mut counts = LogCounts {
        lines: 0,
        errors: 0,
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        counts.lines += 1;
        let json = line.find('{').map_or("", |i| &line[i..]);
        let is_error = match serde_json::from_str::<serde_json::Value>(json) {
            Ok(v) => v["level"]
                .as_str()
                .is_some_and(|l| l.eq_ignore_ascii_case("error")),
            Err(_) => line.contains("panicked"),
        };
        if is_error {
            counts.errors += 1;
        }
    }
    counts
}

/// The heartbeat gauge the service exports (unix time of the last successful beat).
pub const HEARTBEAT_METRIC: &str = "mock_exchange_heartbeat_last_success_timestamp_seconds";

/// Reads [`HEARTBEAT_METRIC`] from a Prometheus text exposition.
pub fn heartbeat(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(HEARTBEAT_METRIC))
        .and_then(|rest| rest.trim().parse().ok())
}

/// The observability policy of stage 4.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ObservePolicy {
    /// Seconds watched after the switch.
    pub window_secs: u64,
    /// Most error lines allowed in the window.
    pub max_errors: usize,
}

impl Default for ObservePolicy {
    fn default() -> Self {
        ObservePolicy {
            window_secs: 12,
            max_errors: 0,
        }
    }
}

/// What stage 4 observed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// Unix seconds of the switch.
    pub switched_at: f64,
    /// Heartbeat at the start of the window.
    pub heartbeat_before: Option<f64>,
    /// Heartbeat at the end of the window.
    pub heartbeat_after: Option<f64>,
    /// Logs since the switch.
    pub logs: LogCounts,
    /// Whether verify passed for the environment.
    pub verify_passed: bool,
}

/// Stage 4's verdict: every failed condition, named (empty: passed).
pub fn observation_failures(o: &Observation, policy: &ObservePolicy) -> Vec<String> {
    let mut fails = Vec::new();
    if o.logs.lines == 0 {
        fails.push("no log lines were written since the switch".to_string());
    }
    match (o.heartbeat_before, o.heartbeat_after) {
        (_, None) => fails.push(format!("{HEARTBEAT_METRIC} missing from /metrics")),
        (before, Some(after)) => {
            if after <= o.switched_at {
                fails.push(format!(
                    "heartbeat did not run after the switch (last success {after}, switch {})",
                    o.switched_at
                ));
            } else if before.is_some_and(|b| after <= b) {
                fails.push(format!(
                    "heartbeat did not advance during the {} s window (stayed at {after})",
                    policy.window_secs
                ));
            }
        }
    }
    if o.logs.errors > policy.max_errors {
        fails.push(format!(
            "{} error lines in the logs since the switch (threshold {})",
            o.logs.errors, policy.max_errors
        ));
    }
    if !o.verify_passed {
        fails.push("verify failed for the environment (see the report in the evidence)".into());
    }
    fails
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who (`user@host`).
    pub by: String,
    /// `deploy`, `rollback`, `restart`, `stop`.
    pub action: String,
    /// The node.
    pub node: String,
    /// The environment.
    pub env: String,
    /// The release acted on (tag), if any.
    pub release: Option<String>,
    /// `deployed`, `unchanged`, `rolled-back`, `failed`, `stopped`, …
    pub outcome: String,
    /// The evidence folder, relative to the repo root.
    pub evidence: Option<String>,
    /// One-line reason for a failure.
    pub reason: Option<String>,
}

/// An evidence folder name: `<compact time>-<release short name>`.
pub fn evidence_name(compact_time: &str, release_short: &str) -> String {
    let safe: String = release_short
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{compact_time}-{safe}")
}

#[cfg(test)]
mod tests;
