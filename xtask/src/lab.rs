//! `cargo xtask lab …`: the three-node lab, mapped onto `lab::nodes::Lab`; `lab verify`
//! composes verify's lab report.

use std::path::PathBuf;

use clap::Subcommand;
use lab::nodes::Lab;
use stackpilot_core::Config;
use stackpilot_core::node::{LAB_MARKER, LabMarker};

use crate::run::{Error, repo_root};

/// `cargo xtask lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Create or start nodes (all when none is named), provision them and load the images
    /// they need; builds the images first when absent.
    Up {
        /// Nodes to bring up (default: every node of the inventory).
        nodes: Vec<String>,
    },
    /// Re-run provisioning on running nodes (identity, images; `vagrant provision` on VMs);
    /// a second run reports no change.
    Provision {
        /// Nodes to provision (default: every node).
        nodes: Vec<String>,
    },
    /// The labs on this host and their checkouts (this one's marked), then each node's
    /// provider, state, address, engine health and loaded images.
    Status {
        /// Nodes to show (default: every node).
        nodes: Vec<String>,
        /// Print the status as one JSON document (only JSON on stdout).
        #[arg(long)]
        json: bool,
    },
    /// Stop nodes, keeping them and their engine volumes.
    Halt {
        /// Nodes to stop (default: every node).
        nodes: Vec<String>,
    },
    /// Remove nodes and their engine volumes.
    Destroy {
        /// Nodes to remove (default: every node).
        nodes: Vec<String>,
    },
    /// Milestone 01 verification: reachability, identity, node-to-node, engine (read-only).
    Verify {
        /// Nodes to verify (default: every created node).
        nodes: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write vagrant/inventory.json from stackpilot.toml (`--check`: fail if it drifted).
    Inventory {
        /// Only check that the file matches stackpilot.toml.
        #[arg(long)]
        check: bool,
    },
}

/// Finds the checkout from the working directory (falling back to the one xtask was built
/// from) and loads its configuration.
pub fn discover() -> Result<(PathBuf, Config), Error> {
    let start = std::env::current_dir().unwrap_or_else(|_| repo_root());
    let found = Config::discover(&start).or_else(|_| Config::discover(&repo_root()))?;
    Ok(found)
}

/// Runs a lab subcommand.
pub fn run(cmd: LabCmd) -> Result<(), Error> {
    let (root, cfg) = discover()?;
    let lab = Lab::new(root, cfg);
    match cmd {
        LabCmd::Up { nodes } => lab.up(&nodes)?,
        LabCmd::Provision { nodes } => lab.provision(&nodes)?,
        LabCmd::Status { nodes, json } => lab.status(&nodes, json)?,
        LabCmd::Halt { nodes } => lab.halt(&nodes)?,
        LabCmd::Destroy { nodes } => lab.destroy(&nodes)?,
        LabCmd::Verify { nodes, json } => verify(&lab, &nodes, json)?,
        LabCmd::Inventory { check } => lab.inventory(check)?,
    }
    Ok(())
}

/// Milestone 01 verification of the named nodes (all by default), read-only.
fn verify(lab: &Lab, names: &[String], json: bool) -> Result<(), Error> {
    let nodes = lab.nodes(names)?;
    let marker = LabMarker::read(&lab.root().join(LAB_MARKER)).ok();
    let report = verify::lab::run(&verify::lab::LabContext {
        cfg: lab.cfg(),
        vagrant_dir: &lab.vagrant_dir(),
        nodes: &nodes,
        marker: marker.as_ref(),
    });
    stackpilot_core::output::print(
        &report,
        stackpilot_core::output::Format::from_json_flag(json),
    );
    if report.passed() {
        Ok(())
    } else {
        Err(Error::from(stackpilot_core::step::StepError {
            step: "lab verify".into(),
            cmd: format!("cargo xtask lab verify {}", nodes.join(" ")),
            status: format!("{} check(s) failed", report.failures()),
        }))
    }
}
