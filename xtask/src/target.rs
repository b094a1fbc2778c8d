//! What a golden command operates on: NODE and ENV mapped, once, to the checkout, its
//! configuration, the resolved node and the way to run a node-side tool's call there.
//! Argument mapping only: every decision sits in the crates it calls.

use std::path::PathBuf;
use std::time::Duration;

use stackpilot_core::Config;
use stackpilot_core::argv::ToolCall;
use stackpilot_core::config::Mode;
use stackpilot_core::images::ImageLock;
use stackpilot_core::node::NodeHandle;
use stackpilot_core::transport::Transport;

use crate::run::{Error, repo_root};
use ::lab::build;

/// What a golden command operates on: one node, one environment.
#[derive(Debug, Clone)]
pub struct Target {
    /// The repo root on the host.
    pub root: PathBuf,
    /// The lab configuration.
    pub cfg: Config,
    /// The node (`NODE=`).
    pub node: String,
    /// The environment (`ENV=`).
    pub env: String,
    /// The node, resolved once Vagrant has created it (see [`Target::handle`]).
    handle: std::sync::OnceLock<NodeHandle>,
}

impl Target {
    /// Reads stackpilot.toml and checks that NODE and ENV are known.
    pub fn new(node: &str, env: &str) -> Result<Target, Error> {
        let root = repo_root();
        let cfg = Config::load(&root.join(stackpilot_core::config::CONFIG_FILE))?;
        cfg.node(node)?;
        cfg.environment(env)?;
        Ok(Target {
            root,
            cfg,
            node: node.to_string(),
            env: env.to_string(),
            handle: std::sync::OnceLock::new(),
        })
    }

    /// The mode: `MODE=` (`flag`) first, else the environment's `mode` in stackpilot.toml.
    pub fn mode(&self, flag: Option<Mode>) -> Result<Mode, Error> {
        Ok(flag.unwrap_or(self.cfg.environment(&self.env)?.mode))
    }

    /// The same checkout and environment on another node (resolved afresh).
    pub fn on(&self, node: String) -> Target {
        Target {
            node,
            handle: std::sync::OnceLock::new(),
            ..self.clone()
        }
    }

    /// The node, resolved by `lab::resolve`. Once the node is created the handle is kept:
    /// golden commands bring their node up first, so an earlier resolution would lack it.
    pub fn handle(&self) -> Result<NodeHandle, Error> {
        if let Some(h) = self.handle.get() {
            return Ok(h.clone());
        }
        // The configuration as it is now: `lab up` records the lab's subnet.
        let h = ::lab::resolve(&self.root, &self.lab_cfg()?, &self.node)?;
        if h.transport.is_some() {
            let _ = self.handle.set(h.clone());
        }
        Ok(h)
    }

    /// The configuration as it is now: `lab up` may have chosen the lab's subnet after this
    /// target was made, and node addresses come from it.
    pub fn lab_cfg(&self) -> Result<Config, Error> {
        Ok(Config::load(
            &self.root.join(stackpilot_core::config::CONFIG_FILE),
        )?)
    }

    /// How the host runs a command in the node.
    pub fn transport(&self) -> Result<Transport, Error> {
        Ok(self.handle()?.transport()?.clone())
    }

    /// `http://<node address>:<env port>`.
    pub fn base_url(&self) -> Result<String, Error> {
        let env = self.cfg.environment(&self.env)?;
        Ok(format!("http://{}:{}", self.handle()?.address, env.port()))
    }

    pub fn lock(&self) -> Result<(ImageLock, PathBuf), Error> {
        let path = ImageLock::path(&self.root);
        match ImageLock::read(&path)? {
            Some(lock) => Ok((lock, path)),
            None => Err(Error::from(stackpilot_core::step::StepError {
                step: "images".into(),
                cmd: format!("read {}", path.display()),
                status: "no image lock: run `cargo xtask images` (make up does it)".into(),
            })),
        }
    }

    /// Runs a node-side tool's call inside the node from /vagrant, its output streamed to
    /// stderr as progress (stdout stays for the command's own result).
    pub fn node_step(&self, call: &ToolCall) -> Result<(), Error> {
        let bin = build::node_binary(call.tool);
        let argv = call.argv(&bin);
        eprintln!("==> [{}] {}", self.node, argv.join(" "));
        Ok(self.transport()?.stream_progress(&argv)?)
    }

    /// Runs a node-side tool whose output is the command's result (logs), on stdout.
    pub fn node_output(&self, call: &ToolCall) -> Result<(), Error> {
        let bin = build::node_binary(call.tool);
        let argv = call.argv(&bin);
        eprintln!("==> [{}] {}", self.node, argv.join(" "));
        Ok(self.transport()?.stream(&argv)?)
    }

    /// Whether the env has a build receipt on the node (an app image was built there).
    pub fn has_build_receipt(&self) -> Result<bool, Error> {
        let path = stackpilot_core::receipts::env_dir(&self.cfg.state.node_dir, &self.env)
            .join(stackpilot_core::receipts::BUILD_RECEIPT);
        let path = path.display().to_string();
        Ok(self
            .transport()?
            .output(&["test", "-f", &path], Duration::from_secs(30))
            .is_ok())
    }
}
