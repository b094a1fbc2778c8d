//! What the host-side flows need from the world, as two small traits: the node
//! ([`NodeOps`]: run a node-side tool, load an artifact, read state, probe the service)
//! and the build machine ([`BuildOps`]: compile, run the release locally, inspect its
//! engine). xtask implements them over the node transport; tests with fakes.

use std::path::Path;
use std::time::Duration;

use stackpilot_core::Exit;
use stackpilot_core::argv::ToolCall;
use stackpilot_core::exit::ExitStatus;

use crate::DeployError;
use crate::local::{ComposeVars, LocalReport, LocalSpec};

/// Why a host-side action failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Bad input or configuration: nothing was touched (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The action ran and failed (exit 1).
    #[error("{action} failed: {reason}")]
    Failed {
        /// `deploy`, `rollback`, `restart`, `stop`, `status`.
        action: String,
        /// What happened, with what the operator can do.
        reason: String,
    },
    /// A record (evidence, audit, file checksum) could not be written or read.
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl ExitStatus for HostError {
    fn exit(&self) -> Exit {
        match self {
            HostError::Usage(_) => Exit::Usage,
            HostError::Failed { .. } => Exit::Failed,
            HostError::Deploy(e) => e.exit(),
        }
    }
}

impl HostError {
    /// A failure of `action`.
    pub fn failed(action: &str, reason: impl Into<String>) -> HostError {
        HostError::Failed {
            action: action.to_string(),
            reason: reason.into(),
        }
    }
}

/// A node-side tool's run: its command line, whether it succeeded, its whole output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// `[node] /vagrant/…/deploy switch …`.
    pub line: String,
    /// Exit 0.
    pub ok: bool,
    /// stdout then stderr.
    pub out: String,
}

impl Capture {
    /// `$ line` then the output: a transcript entry.
    pub fn transcript(&self) -> String {
        format!("$ {}\n{}", self.line, self.out)
    }
}

/// The verdict of `verify` for an environment, with its human report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Every check passed.
    pub passed: bool,
    /// The report as a human reads it.
    pub report: String,
}

/// One lab node, as the deploy flows drive it. Nothing on the node is changed except
/// through [`NodeOps::run_tool`] (node-side tools run ctx-guard first) and
/// [`NodeOps::load_image`] (a node-side step too).
pub trait NodeOps {
    /// The node's name.
    fn node(&self) -> &str;
    /// Runs a node-side tool's call (`deploy::cli`, `lifecycle::cli` values rendered with
    /// [`ToArgv::call`](stackpilot_core::argv::ToArgv::call)) inside the node, capturing its
    /// output. An error means it could not be started at all.
    fn run_tool(&self, call: &ToolCall) -> Result<Capture, HostError>;
    /// The id of the image `tag` in the node's engine (None: absent). Read-only.
    fn image_id(&self, tag: &str) -> Result<Option<String>, HostError>;
    /// Copies the image `tag` (id `id` on the build machine) into the node's engine
    /// through a node-side step that checks the id; returns the transcript.
    fn load_image(&self, tag: &str, id: &str) -> Result<String, HostError>;
    /// `verify` of `env` on the node, optionally waiting up to `wait` for it to pass.
    fn verify(&self, env: &str, wait: Option<Duration>) -> Result<Verified, HostError>;
    /// `GET <path>` of `env`'s service on the node: status and body, or why no answer.
    fn http_get(&self, env: &str, path: &str) -> Result<(u16, String), String>;
}

/// The build machine: where a release is compiled, built and proven before any node
/// sees it.
pub trait BuildOps {
    /// The repo root (artifacts are checksummed relative to it).
    fn root(&self) -> &Path;
    /// Compiles the release's static binary from source.
    fn compile(&self) -> Result<(), String>;
    /// Stage 1 proper: builds the release image `tag` and runs it against a throwaway
    /// database.
    fn run_locally(&self, spec: &LocalSpec, tag: &str) -> LocalReport;
    /// The id of `reference` in the build machine's engine (Err: why not).
    fn image_id(&self, reference: &str) -> Result<String, String>;
    /// `compose config` with the variables lifecycle sets: the command line and its
    /// output, or why it failed.
    fn compose_config(&self, vars: &ComposeVars<'_>) -> Result<(String, String), String>;
}
