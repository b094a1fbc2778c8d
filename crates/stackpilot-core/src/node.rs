//! Node identity and the repo's lab marker: how a node knows which lab and checkout it
//! belongs to.
//!
//! `cargo xtask lab up` writes the marker into the repo (untracked, once per checkout) and
//! an identity file into every node; ctx-guard compares the two.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where provisioning writes the node identity file on every node.
pub const IDENTITY_FILE: &str = "/etc/stackpilot/node-identity.toml";

/// The lab marker at the repo root (untracked; created when the lab is first created).
pub const LAB_MARKER: &str = ".stackpilot-lab";

/// Comment prefix of every firewall rule a drill adds on a node; clean-room removes any
/// rule carrying it, so a drill that could not recover leaves nothing `make demo-reviewer`
/// cannot repair.
pub const DRILL_RULE_PREFIX: &str = "stackpilot-drill-";

/// Where the repo is mounted on every node.
pub const NODE_REPO: &str = "/vagrant";

/// What a node knows about itself, written by provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The node's name (its hostname).
    pub node: String,
    /// The lab's name (`[lab] name` of stackpilot.toml).
    pub lab: String,
    /// The lab id from the repo marker the lab was created from.
    pub lab_id: String,
    /// The provider the node runs under.
    pub provider: String,
    /// For bind-mounted repos (docker provider): the repo's path as the host's mount
    /// table names it (filesystem root relative), to tell a whole-repo mount from a
    /// subdirectory or a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_source: Option<String>,
}

/// The repo's lab marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabMarker {
    /// The lab's name.
    pub lab: String,
    /// A random id made when the lab was first created from this checkout.
    pub lab_id: String,
    /// The named lab's name on the host (`crate::labs::LabName`); absent in markers written
    /// before named labs, whose lab keeps the project's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The docker provider's subnet chosen for this lab when it was created (a free /24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_subnet: Option<String>,
}

/// Why an identity or marker file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file does not exist.
    #[error("{path} does not exist")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path} is malformed: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            FileError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            FileError::Unreadable {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    toml::from_str(&text).map_err(|e| FileError::Malformed {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

impl Identity {
    /// Reads an identity file.
    pub fn read(path: &Path) -> Result<Identity, FileError> {
        read_toml(path)
    }

    /// The identity as TOML text.
    pub fn to_toml(&self) -> String {
        // A struct of strings always serialises.
        toml::to_string(self).unwrap_or_default()
    }
}

impl LabMarker {
    /// Reads the marker file.
    pub fn read(path: &Path) -> Result<LabMarker, FileError> {
        read_toml(path)
    }

    /// The marker as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// The filesystem types `/vagrant` has on a VM node of `provider` (its synced folder: the
/// host's folder itself), or `None` for a provider whose nodes bind-mount the repo (docker)
/// or that is unknown. ctx-guard accepts nothing else at `/vagrant` on such a node.
pub fn vm_shared_folder_types(provider: &str) -> Option<&'static [&'static str]> {
    crate::config::Provider::by_name(provider)
        .map(|p| p.desc())
        .filter(|d| d.is_vm)
        .map(|d| d.shared_folder_types)
}

/// The port every lab node listens on for reachability checks (the node engine's metrics
/// endpoint, see verify's lab checks); the inventory hands it to the Vagrantfile.
pub const PROBE_PORT: u16 = 9323;

/// What code outside the lab may know about a node's provider: facts, never a name to
/// match on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFacts {
    /// The provider's name as Vagrant spells it (`docker`, `libvirt`, …).
    pub name: String,
    /// Whether nodes are virtual machines (the repo is a shared folder, the transport ssh).
    pub is_vm: bool,
    /// Filesystem types `/vagrant` may have on such a node (empty: a bind of the checkout).
    pub shared_folder_types: Vec<String>,
}

/// A lab node resolved once, at the edge (`lab::resolve`), and passed everywhere in place
/// of its name: nothing downstream looks the node up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHandle {
    /// The node's name (its hostname).
    pub name: String,
    /// Its role in the lab.
    pub role: crate::config::Role,
    /// Its provider's facts.
    pub provider: ProviderFacts,
    /// Its address on the lab network under that provider.
    pub address: std::net::Ipv4Addr,
    /// How the host runs a command in it; `None` while Vagrant has no machine for it.
    pub transport: Option<crate::transport::Transport>,
    /// For bind-mounted repos (docker provider): the checkout's path as the host's mount
    /// table names it (what the node identity records).
    pub repo_source: Option<String>,
    /// Where Vagrant keeps the node's machine data (named when it is not created).
    pub machine_dir: PathBuf,
}

impl NodeHandle {
    /// The node's transport, or why there is none (the node is not created).
    pub fn transport(
        &self,
    ) -> Result<&crate::transport::Transport, crate::transport::TransportError> {
        self.transport
            .as_ref()
            .ok_or_else(|| crate::transport::TransportError::NotCreated {
                node: self.name.clone(),
                dir: self.machine_dir.clone(),
            })
    }
}
