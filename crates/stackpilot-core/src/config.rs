//! The lab configuration, `stackpilot.toml`: nodes, environments, images and state paths.
//!
//! Parsing is strict (unknown fields are errors) and every error names the file, the line
//! and column, the field and what was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::Error;

/// The configuration file's name at the repo root.
pub const CONFIG_FILE: &str = "stackpilot.toml";

/// The whole lab configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The lab's own name and settings.
    pub lab: LabSettings,
    /// How the root image is built.
    pub images: Images,
    /// Where state lives on the host and on nodes.
    pub state: State,
    /// Network ranges of the providers.
    pub network: Network,
    /// The lab's nodes, in inventory order.
    pub nodes: Vec<Node>,
    /// The deployable environments by name.
    pub environments: BTreeMap<String, Environment>,
}

/// The `[lab]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSettings {
    /// Name of the lab, written into each node's identity file.
    pub name: String,
}

/// The `[images]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// Debian suite of the root image.
    pub suite: String,
    /// Mirror URL; empty means the host's apt sources.
    #[serde(default)]
    pub mirror: String,
    /// The box of libvirt nodes: `local` (built by `cargo xtask images` from Debian
    /// packages, booted with QEMU) or `ubuntu-22.04` (the pinned Vagrant Cloud box, for
    /// laptops whose KVM runs guests).
    #[serde(default = "default_libvirt_box")]
    pub libvirt_box: String,
}

/// The libvirt box used when stackpilot.toml names none.
pub const LOCAL_BOX: &str = "local";

/// The `libvirt_box` value choosing the pinned Ubuntu 22.04 box (the Vagrantfile's BOX).
pub const UBUNTU_BOX: &str = "ubuntu-22.04";

fn default_libvirt_box() -> String {
    LOCAL_BOX.to_string()
}

/// The `[state]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Host-side state directory, relative to the repo root.
    pub host_dir: PathBuf,
    /// Node-side state directory (absolute, outside `/vagrant`).
    pub node_dir: PathBuf,
}

/// The `[network]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The VM providers' host-only network, e.g. `192.168.56.0/24`.
    pub vm_subnet: String,
    /// The docker provider's lab network.
    pub docker_subnet: String,
}

/// A node provider the lab can run on. What each one is (its name, how the host reaches
/// its nodes, what `/vagrant` is on them) is written once, in [`Provider::desc`]; code
/// reads those facts and does not match on the provider. The lab's `NodeProvider` trait
/// adds what only the lab needs (whether it can run here, its lifecycle's details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// VirtualBox VMs (the laptop default).
    Virtualbox,
    /// libvirt VMs.
    Libvirt,
    /// Containers running their own Docker engine.
    Docker,
}

/// How the host runs a command in a provider's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// `docker exec` into the node container (its id in Vagrant's machine directory).
    DockerExec,
    /// `vagrant ssh NODE -c …`.
    VagrantSsh,
}

/// What a provider is, for every crate: one entry per provider.
#[derive(Debug, PartialEq, Eq)]
pub struct ProviderDesc {
    /// Its name: `STACKPILOT_PROVIDER`'s value, the nodes' address key in
    /// `stackpilot.toml`, the identity file's `provider`, Vagrant's provider name and the
    /// directory of Vagrant's machine data.
    pub name: &'static str,
    /// How the host reaches its nodes.
    pub reach: Reach,
    /// Whether its nodes are virtual machines: `/vagrant` is a synced folder, not a bind
    /// of the checkout.
    pub is_vm: bool,
    /// The filesystem types `/vagrant` may have on its nodes (empty: a bind of the
    /// checkout); ctx-guard accepts nothing else.
    pub shared_folder_types: &'static [&'static str],
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 3] = [Provider::Virtualbox, Provider::Libvirt, Provider::Docker];

    /// The provider's description (the one place a provider's facts are written).
    pub fn desc(self) -> &'static ProviderDesc {
        match self {
            Provider::Virtualbox => &ProviderDesc {
                name: "virtualbox",
                reach: Reach::VagrantSsh,
                is_vm: true,
                shared_folder_types: &["vboxsf"],
            },
            Provider::Libvirt => &ProviderDesc {
                name: "libvirt",
                reach: Reach::VagrantSsh,
                is_vm: true,
                // The Vagrantfile syncs /vagrant by 9p; virtiofs is libvirt's other real share.
                shared_folder_types: &["9p", "virtiofs"],
            },
            Provider::Docker => &ProviderDesc {
                name: "docker",
                reach: Reach::DockerExec,
                is_vm: false,
                shared_folder_types: &[],
            },
        }
    }

    /// The provider's name (see [`ProviderDesc::name`]).
    pub fn as_str(self) -> &'static str {
        self.desc().name
    }

    /// The provider named `name`.
    pub fn by_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's address per provider, keyed by the provider's name (`docker = "172.30.56.10"`):
/// a provider adds a key, not a field. Validation requires every provider's key on every
/// node, so [`Node::address`] always answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Addresses(BTreeMap<String, Ipv4Addr>);

impl Addresses {
    /// The address under the provider named `provider`.
    pub fn get(&self, provider: &str) -> Option<Ipv4Addr> {
        self.0.get(provider).copied()
    }

    /// Sets the address under the provider named `provider`.
    pub fn set(&mut self, provider: &str, address: Ipv4Addr) {
        self.0.insert(provider.to_string(), address);
    }

    /// `(provider, address)` pairs, by provider name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.0.iter().map(|(p, a)| (p.as_str(), *a))
    }
}

/// One lab node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Node name (also its hostname).
    pub name: Spanned<String>,
    /// `control` or `worker`.
    pub role: Role,
    /// Per-provider addresses.
    pub address: Addresses,
}

impl Node {
    /// The node's name.
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The node's address under a provider (validated present when the file was read).
    pub fn address(&self, provider: Provider) -> Ipv4Addr {
        self.address
            .get(provider.as_str())
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

/// A node's role in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The control node (the default target).
    Control,
    /// A worker node.
    Worker,
}

/// One deployable environment (`dev`, `staging`, `live`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Fixed compose project name.
    pub project: Spanned<String>,
    /// Service port published on the node.
    pub port: Spanned<u16>,
    /// Env file, relative to the repo root.
    pub env_file: PathBuf,
    /// How the stack runs: one copy per node (`compose`, the default) or one stack across
    /// the lab's Docker Swarm (`swarm`); `MODE=` overrides it per command.
    #[serde(default)]
    pub mode: Mode,
}

/// How an environment's stack runs on the lab.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `docker compose` on one node: every node runs its own copy of the stack.
    #[default]
    Compose,
    /// `docker stack deploy` on the lab's swarm: db on control, one api per worker.
    Swarm,
}

impl Mode {
    /// The mode's name as `stackpilot.toml` and `MODE=` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Compose => "compose",
            Mode::Swarm => "swarm",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim() {
            "compose" => Ok(Mode::Compose),
            "swarm" => Ok(Mode::Swarm),
            other => Err(format!(
                "expected `compose` or `swarm`, found '{other}' (e.g. make up MODE=swarm)"
            )),
        }
    }
}

impl Environment {
    /// The compose project name.
    pub fn project(&self) -> &str {
        self.project.get_ref()
    }

    /// The service port on the node.
    pub fn port(&self) -> u16 {
        *self.port.get_ref()
    }
}

impl Config {
    /// Reads and validates the configuration file at `path`, then applies the checkout's
    /// named lab: when the lab marker next to it recorded a docker subnet, the docker
    /// addresses move into it (host numbers kept), so every tool reaches this checkout's lab.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let mut cfg = Config::load_file(path)?;
        let marker = path
            .parent()
            .map(|d| d.join(crate::node::LAB_MARKER))
            .and_then(|m| crate::node::LabMarker::read(&m).ok());
        if let Some(subnet) = marker.and_then(|m| m.docker_subnet) {
            let subnet = crate::labs::Subnet::parse(&subnet).map_err(|e| Error::ConfigInvalid {
                path: PathBuf::from(crate::node::LAB_MARKER),
                message: format!("field `docker_subnet`: {e}"),
            })?;
            cfg.apply_docker_subnet(subnet);
        }
        Ok(cfg)
    }

    /// Reads and validates the configuration file as tracked, without the checkout's lab.
    pub fn load_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Moves the docker provider's network and node addresses into `subnet`, keeping each
    /// node's host number (.10, .11, .12).
    pub fn apply_docker_subnet(&mut self, subnet: crate::labs::Subnet) {
        self.network.docker_subnet = subnet.to_string();
        for n in &mut self.nodes {
            let docker = Provider::Docker.as_str();
            if let Some(old) = n.address.get(docker) {
                n.address.set(docker, subnet.address(old.octets()[3]));
            }
        }
    }

    /// Finds `stackpilot.toml` in `start` or a parent directory and loads it.
    /// Returns the repo root with the configuration.
    pub fn discover(start: &Path) -> Result<(PathBuf, Config), Error> {
        let root = find_repo_root(start)?;
        let cfg = Config::load(&root.join(CONFIG_FILE))?;
        Ok((root, cfg))
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let invalid = |message| Error::ConfigInvalid {
            path: path.to_path_buf(),
            message,
        };
        let de = toml::Deserializer::parse(text).map_err(|e| invalid(parse_error(&e, None)))?;
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            invalid(parse_error(e.inner(), Some(&field)))
        })?;
        cfg.validate(text).map_err(invalid)?;
        Ok(cfg)
    }

    fn validate(&self, text: &str) -> Result<(), String> {
        let at = |span: std::ops::Range<usize>| {
            let (line, col) = line_col(text, span.start);
            format!("line {line}, column {col}")
        };
        if self.nodes.is_empty() {
            return Err("field `nodes`: expected at least one [[nodes]] entry".into());
        }
        let mut names = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let name = n.name();
            let valid = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return Err(format!(
                    "{}: field `nodes[{i}].name`: expected a hostname (lowercase letters, digits, '-'), found '{name}'",
                    at(n.name.span())
                ));
            }
            if !names.insert(name) {
                return Err(format!(
                    "{}: field `nodes[{i}].name`: expected unique node names, '{name}' appears twice",
                    at(n.name.span())
                ));
            }
        }
        if !self.nodes.iter().any(|n| n.role == Role::Control) {
            return Err(
                "field `nodes`: expected exactly one node with role = \"control\", found none"
                    .into(),
            );
        }
        for p in Provider::ALL {
            let mut seen = BTreeSet::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if n.address.get(p.as_str()).is_none() {
                    return Err(format!(
                        "{}: field `nodes[{i}].address`: expected an address for provider {p}, found none",
                        at(n.name.span())
                    ));
                }
                if !seen.insert(n.address(p)) {
                    return Err(format!(
                        "{}: field `nodes[{i}].address.{p}`: expected a unique address per provider, {} is used twice",
                        at(n.name.span()),
                        n.address(p)
                    ));
                }
            }
        }
        if self.environments.is_empty() {
            return Err(
                "field `environments`: expected at least one [environments.<name>] table".into(),
            );
        }
        let mut ports = BTreeSet::new();
        let mut projects = BTreeSet::new();
        for (name, env) in &self.environments {
            if env.port() == 0 {
                return Err(format!(
                    "{}: field `environments.{name}.port`: expected a port 1-65535, found 0",
                    at(env.port.span())
                ));
            }
            if !ports.insert(env.port()) {
                return Err(format!(
                    "{}: field `environments.{name}.port`: expected a port of its own per environment, {} is used twice",
                    at(env.port.span()),
                    env.port()
                ));
            }
            let project = env.project();
            let valid = !project.is_empty()
                && project
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid {
                return Err(format!(
                    "{}: field `environments.{name}.project`: expected a compose project name (lowercase letters, digits, '-', '_'), found '{project}'",
                    at(env.project.span())
                ));
            }
            if !projects.insert(project) {
                return Err(format!(
                    "{}: field `environments.{name}.project`: expected a project of its own per environment, '{project}' is used twice",
                    at(env.project.span())
                ));
            }
        }
        let node_dir = &self.state.node_dir;
        if !node_dir.is_absolute() || node_dir.starts_with("/vagrant") {
            return Err(format!(
                "field `state.node_dir`: expected an absolute path outside /vagrant, found '{}'",
                node_dir.display()
            ));
        }
        if self.state.host_dir.is_absolute() {
            return Err(format!(
                "field `state.host_dir`: expected a path relative to the repo root, found '{}'",
                self.state.host_dir.display()
            ));
        }
        Ok(())
    }

    /// Looks a node up by name; an unknown name is refused with the known ones.
    pub fn node(&self, name: &str) -> Result<&Node, Error> {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .ok_or_else(|| Error::UnknownNode {
                name: name.to_string(),
                known: self.node_names(),
            })
    }

    /// Looks an environment up by name; an unknown name is refused with the known ones.
    pub fn environment(&self, name: &str) -> Result<&Environment, Error> {
        self.environments
            .get(name)
            .ok_or_else(|| Error::UnknownEnv {
                name: name.to_string(),
                known: self.environments.keys().cloned().collect(),
            })
    }

    /// Node names in inventory order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name().to_string()).collect()
    }

    /// The control node.
    pub fn control(&self) -> &Node {
        // validate() guarantees one control node exists.
        self.nodes
            .iter()
            .find(|n| n.role == Role::Control)
            .unwrap_or(&self.nodes[0])
    }
}

/// Walks up from `start` to the directory holding `stackpilot.toml`.
pub fn find_repo_root(start: &Path) -> Result<PathBuf, Error> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join(CONFIG_FILE).is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(Error::RepoNotFound {
        start: start.to_path_buf(),
    })
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// "line L, column C: field `F`: message" from toml's error (which spans several lines).
fn parse_error(e: &toml::de::Error, field: Option<&str>) -> String {
    let text = e.to_string();
    // toml's Display starts with "TOML parse error at line L, column C"; reuse its position.
    let pos = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("TOML parse error at "))
        .map(|p| format!("{p}: "))
        .unwrap_or_default();
    // Spanned<T> fields add a private segment to the path; it means nothing to a user.
    let field = field.map(|f| f.replace(".$__serde_spanned_private_value", ""));
    let field = match field.as_deref() {
        Some(f) if !f.is_empty() && f != "." => format!("field `{f}`: "),
        _ => String::new(),
    };
    format!("{pos}{field}{}", e.message())
}

#[cfg(test)]
mod tests;
