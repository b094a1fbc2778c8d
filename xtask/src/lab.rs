//! `cargo xtask lab …`: the three-node lab through Vagrant.
//!
//! Vagrant is the lab engine for every provider; this module chooses the provider (docker
//! when no VM provider is usable, `STACKPILOT_PROVIDER` overrides), writes the repo's lab
//! marker once, builds and loads the images docker nodes need, writes their identity, and
//! waits for each node's engine. `verify` asserts; it changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde::Serialize;
use stackpilot_core::config::Role;
use stackpilot_core::images::{self, ImageLock, NODE_LOADS};
use stackpilot_core::mountinfo;
use stackpilot_core::node::{IDENTITY_FILE, Identity, LAB_MARKER, LabMarker};
use stackpilot_core::output::Table;
use stackpilot_core::transport::{self, Transport, VAGRANT_DIR};
use stackpilot_core::{Config, Provider};

use crate::images as build;
use crate::run::{Error, repo_root, step};

/// The generated inventory the Vagrantfile reads, relative to the repo root.
pub const INVENTORY_FILE: &str = "vagrant/inventory.json";

/// Environment variable that overrides the provider choice.
pub const PROVIDER_ENV: &str = "STACKPILOT_PROVIDER";

/// How long a node's inner engine may take to answer after the node starts.
const ENGINE_WAIT: Duration = Duration::from_secs(90);

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
    /// Each node's provider, state, address, engine health and loaded images.
    Status {
        /// Nodes to show (default: every node).
        nodes: Vec<String>,
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
    let lab = Lab { root, cfg };
    match cmd {
        LabCmd::Up { nodes } => lab.up(&nodes),
        LabCmd::Provision { nodes } => lab.provision_cmd(&nodes),
        LabCmd::Status { nodes } => lab.status(&nodes),
        LabCmd::Halt { nodes } => lab.vagrant_step("halt", &["halt"], &nodes),
        LabCmd::Destroy { nodes } => lab.destroy(&nodes),
        LabCmd::Verify { nodes, json } => lab.verify(&nodes, json),
        LabCmd::Inventory { check } => lab.inventory(check),
    }
}

/// The generated inventory: what the Vagrantfile needs from stackpilot.toml.
#[derive(Debug, Serialize)]
pub struct Inventory {
    #[serde(rename = "_generated")]
    generated: &'static str,
    lab: String,
    vm_subnet: String,
    docker_subnet: String,
    /// The docker provider's lab network (created and removed by `cargo xtask lab`).
    docker_network: String,
    /// The TCP port every node listens on for reachability checks.
    probe_port: u16,
    /// Whether `lab destroy` keeps the nodes' engine volumes (it does not).
    engine_volumes_persist: bool,
    nodes: Vec<InventoryNode>,
}

/// One node of the generated inventory.
#[derive(Debug, Serialize)]
pub struct InventoryNode {
    name: String,
    role: Role,
    address: InventoryAddress,
    /// The docker provider's container name.
    container: String,
    /// The docker provider's named volume for the inner engine's /var/lib/docker.
    engine_volume: String,
}

/// A node's address per provider.
#[derive(Debug, Serialize)]
pub struct InventoryAddress {
    virtualbox: String,
    libvirt: String,
    docker: String,
}

/// The container name of a docker-provider node.
pub fn container_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The docker provider's lab network.
pub fn network_name(lab: &str) -> String {
    format!("{lab}-lab")
}

/// Label every lab container and network carries (`io.stackpilot.lab=<lab>`).
pub const LAB_LABEL: &str = "io.stackpilot.lab";

/// The named volume holding a docker-provider node's inner engine state.
pub fn engine_volume(lab: &str, node: &str) -> String {
    format!("{lab}-{node}-docker")
}

/// The inventory the Vagrantfile reads, derived from the configuration.
pub fn inventory(cfg: &Config) -> Inventory {
    let lab = cfg.lab.name.clone();
    Inventory {
        generated: "from stackpilot.toml by `cargo xtask lab inventory`; do not edit",
        vm_subnet: cfg.network.vm_subnet.clone(),
        docker_subnet: cfg.network.docker_subnet.clone(),
        docker_network: network_name(&lab),
        probe_port: verify::lab::PROBE_PORT,
        engine_volumes_persist: false,
        nodes: cfg
            .nodes
            .iter()
            .map(|n| InventoryNode {
                name: n.name().to_string(),
                role: n.role,
                address: InventoryAddress {
                    virtualbox: n.address(Provider::Virtualbox).to_string(),
                    libvirt: n.address(Provider::Libvirt).to_string(),
                    docker: n.address(Provider::Docker).to_string(),
                },
                container: container_name(&lab, n.name()),
                engine_volume: engine_volume(&lab, n.name()),
            })
            .collect(),
        lab,
    }
}

/// The inventory file's text.
pub fn inventory_text(cfg: &Config) -> String {
    // A struct of strings and numbers always serialises.
    let mut s = serde_json::to_string_pretty(&inventory(cfg)).unwrap_or_default();
    s.push('\n');
    s
}

/// The provider to use: `STACKPILOT_PROVIDER` when set, else a usable VM provider, else docker.
pub fn choose_provider(env: Option<&str>) -> Result<Provider, Error> {
    match env.map(str::trim) {
        Some("docker") => Ok(Provider::Docker),
        Some("virtualbox") => Ok(Provider::Virtualbox),
        Some("libvirt") => Ok(Provider::Libvirt),
        Some(other) if !other.is_empty() => {
            Err(Error::Core(stackpilot_core::Error::ConfigInvalid {
                path: PathBuf::from(format!("${PROVIDER_ENV}")),
                message: format!(
                    "expected one of docker, virtualbox, libvirt, found '{other}'\n  e.g. {PROVIDER_ENV}=docker cargo xtask lab up"
                ),
            }))
        }
        _ => {
            let vbox = Command::new("VBoxManage")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            Ok(if vbox {
                Provider::Virtualbox
            } else {
                Provider::Docker
            })
        }
    }
}

/// Whether provisioning changed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Already as wanted.
    None,
    /// Written or loaded now.
    Changed,
}

struct Lab {
    root: PathBuf,
    cfg: Config,
}

impl Lab {
    fn vagrant_dir(&self) -> PathBuf {
        self.root.join(VAGRANT_DIR)
    }

    /// Named nodes (validated against the inventory) or all of them.
    fn nodes(&self, names: &[String]) -> Result<Vec<String>, Error> {
        if names.is_empty() {
            return Ok(self.cfg.node_names());
        }
        for n in names {
            self.cfg.node(n)?;
        }
        Ok(names.to_vec())
    }

    fn vagrant(&self, args: &[&str], nodes: &[String]) -> Command {
        let mut c = Command::new("vagrant");
        c.args(args)
            .args(nodes)
            .env("VAGRANT_CWD", self.vagrant_dir())
            .env("VAGRANT_CHECKPOINT_DISABLE", "1");
        c
    }

    fn vagrant_step(&self, name: &str, args: &[&str], nodes: &[String]) -> Result<(), Error> {
        require_vagrant()?;
        let nodes = self.nodes(nodes)?;
        let mut cmd = self.vagrant(args, &nodes);
        if let Ok(lock) = self.lock() {
            // Commands other than `up` evaluate the Vagrantfile too; give them the same image.
            if let Ok(tag) = lock.tag(images::NODE, &ImageLock::path(&self.root)) {
                cmd.env("STACKPILOT_NODE_IMAGE", tag);
            }
        }
        step(&format!("vagrant {name}"), &mut cmd)
    }

    fn lock(&self) -> Result<ImageLock, Error> {
        let path = ImageLock::path(&self.root);
        ImageLock::read(&path)?.ok_or(Error::Images(images::LockError::NoEntry {
            path,
            name: "root".into(),
        }))
    }

    fn inventory(&self, check: bool) -> Result<(), Error> {
        let path = self.root.join(INVENTORY_FILE);
        let want = inventory_text(&self.cfg);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            println!("{INVENTORY_FILE}: up to date with stackpilot.toml");
            return Ok(());
        }
        if check {
            return Err(Error::StepFailed {
                step: "lab inventory".into(),
                cmd: format!("compare {INVENTORY_FILE} with stackpilot.toml"),
                status: format!(
                    "{INVENTORY_FILE} has drifted from stackpilot.toml\n  regenerate it with: cargo xtask lab inventory"
                ),
            });
        }
        std::fs::write(&path, want).map_err(|e| Error::StepFailed {
            step: "lab inventory".into(),
            cmd: format!("write {}", path.display()),
            status: e.to_string(),
        })?;
        println!("{INVENTORY_FILE}: written from stackpilot.toml");
        Ok(())
    }

    /// The repo's lab marker, created with a random id when absent.
    fn marker(&self) -> Result<LabMarker, Error> {
        let path = self.root.join(LAB_MARKER);
        match LabMarker::read(&path) {
            Ok(m) if m.lab == self.cfg.lab.name => Ok(m),
            Ok(m) => Err(Error::StepFailed {
                step: "lab marker".into(),
                cmd: format!("read {}", path.display()),
                status: format!(
                    "the marker names lab '{}', stackpilot.toml names '{}'\n  destroy the old lab (`cargo xtask lab destroy`), remove {LAB_MARKER} and run `cargo xtask lab up`",
                    m.lab, self.cfg.lab.name
                ),
            }),
            Err(stackpilot_core::node::FileError::Missing { .. }) => {
                let marker = LabMarker {
                    lab: self.cfg.lab.name.clone(),
                    lab_id: random_id()?,
                    ..Default::default()
                };
                std::fs::write(&path, marker.to_toml()).map_err(|e| Error::StepFailed {
                    step: "lab marker".into(),
                    cmd: format!("write {}", path.display()),
                    status: e.to_string(),
                })?;
                eprintln!(
                    "==> lab: created {LAB_MARKER} (lab id {}) for this checkout",
                    marker.lab_id
                );
                Ok(marker)
            }
            Err(e) => Err(Error::StepFailed {
                step: "lab marker".into(),
                cmd: format!("read {}", path.display()),
                status: e.to_string(),
            }),
        }
    }

    /// The identity a node of this checkout should carry.
    fn identity(&self, node: &str, provider: Provider, marker: &LabMarker) -> Identity {
        let repo_source = (provider == Provider::Docker).then(|| {
            let mounts = mountinfo::parse(
                &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
            );
            // The mount table names real paths; a symlinked checkout path would not match.
            let root = self
                .root
                .canonicalize()
                .unwrap_or_else(|_| self.root.clone());
            mountinfo::filesystem_path(&mounts, &root)
                .unwrap_or(root)
                .display()
                .to_string()
        });
        Identity {
            node: node.to_string(),
            lab: self.cfg.lab.name.clone(),
            lab_id: marker.lab_id.clone(),
            provider: provider.as_str().to_string(),
            repo_source,
        }
    }

    fn up(&self, names: &[String]) -> Result<(), Error> {
        let started = Instant::now();
        // Usage errors first: nothing is checked or changed for a wrong command line.
        let nodes = self.nodes(names)?;
        let provider = choose_provider(std::env::var(PROVIDER_ENV).ok().as_deref())?;
        require_vagrant()?;
        eprintln!("==> lab: provider {provider} for {}", nodes.join(", "));
        self.sync_inventory()?;
        let marker = self.marker()?;
        let docker = provider == Provider::Docker;
        let lock = if docker || host_has_docker() {
            let (lock, _) = build::ensure(&self.root, &self.cfg)?;
            Some(lock)
        } else {
            eprintln!("==> lab: no Docker engine on the host: images are not loaded into the VMs");
            None
        };
        if docker {
            self.ensure_network()?;
            self.ensure_engine_volumes(&nodes)?;
        }
        let mut cmd = self.vagrant(&["up", &format!("--provider={provider}")], &nodes);
        if let Some(lock) = &lock {
            cmd.env(
                "STACKPILOT_NODE_IMAGE",
                lock.tag(images::NODE, &ImageLock::path(&self.root))?,
            );
        }
        step("vagrant up", &mut cmd)?;
        if let Some(lock) = lock.as_ref().filter(|_| docker) {
            for node in &nodes {
                if let Some(note) = self.outdated_node_image(node, lock) {
                    eprintln!("==> {node}: {note}");
                }
            }
        }
        self.provision(&nodes, &marker, lock.as_ref())?;
        eprintln!(
            "<== lab up: {} in {:.1}s",
            nodes.join(", "),
            started.elapsed().as_secs_f64()
        );
        self.status(&nodes)
    }

    fn sync_inventory(&self) -> Result<(), Error> {
        let path = self.root.join(INVENTORY_FILE);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(&inventory_text(&self.cfg)) {
            eprintln!("==> lab: {INVENTORY_FILE} differs from stackpilot.toml; regenerating it");
            self.inventory(false)?;
        }
        Ok(())
    }

    fn provision_cmd(&self, names: &[String]) -> Result<(), Error> {
        let nodes = self.nodes(names)?;
        let marker = self.marker()?;
        let lock = if host_has_docker() {
            Some(self.lock()?)
        } else {
            None
        };
        // VMs: their shell provisioners again (`vagrant up` ran them when it created the VM).
        let vagrant_dir = self.vagrant_dir();
        for node in &nodes {
            let provider = transport::created_provider(&vagrant_dir, node);
            if provider.is_some_and(|p| p != Provider::Docker) {
                step(
                    &format!("vagrant provision {node}"),
                    &mut self.vagrant(&["provision"], std::slice::from_ref(node)),
                )?;
            }
        }
        self.provision(&nodes, &marker, lock.as_ref())
    }

    /// Per node: wait for its engine, write its identity (docker provider; VMs get theirs
    /// from Vagrant's provisioners), load the images it needs. Nodes are provisioned in
    /// parallel; every node's outcome is reported before the first error is returned.
    fn provision(
        &self,
        nodes: &[String],
        marker: &LabMarker,
        lock: Option<&ImageLock>,
    ) -> Result<(), Error> {
        let lock_path = ImageLock::path(&self.root);
        let mut wanted = Vec::new();
        if let Some(lock) = lock {
            for name in NODE_LOADS {
                let tag = lock.tag(name, &lock_path)?.to_string();
                let id = lock.derived(name).map(|d| d.id.clone()).unwrap_or_default();
                wanted.push((tag, id));
            }
        }
        let vagrant_dir = self.vagrant_dir();
        let mut jobs = Vec::new();
        for node in nodes {
            let provider = transport::created_provider(&vagrant_dir, node);
            let Some(provider) = provider else {
                return Err(Error::Transport(transport::TransportError::NotCreated {
                    node: node.clone(),
                    dir: transport::machine_dir(&vagrant_dir, node),
                }));
            };
            let t = Transport::for_node(&vagrant_dir, node)?;
            let identity = (provider == Provider::Docker)
                .then(|| self.identity(node, provider, marker).to_toml());
            let wanted = wanted.clone();
            jobs.push(std::thread::spawn(move || {
                provision_node(&t, identity.as_deref(), &wanted)
            }));
        }
        let mut first = None;
        for j in jobs {
            let r = j.join().unwrap_or_else(|_| {
                Err(Error::StepFailed {
                    step: "provision".into(),
                    cmd: "provision thread".into(),
                    status: "panicked".into(),
                })
            });
            if let Err(e) = r {
                eprintln!("xtask: {e}");
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn destroy(&self, names: &[String]) -> Result<(), Error> {
        let nodes = self.nodes(names)?;
        self.vagrant_step("destroy", &["destroy", "-f"], &nodes)?;
        if !host_has_docker() {
            return Ok(());
        }
        self.remove_network_if_unused()?;
        // Vagrant leaves named volumes; the inventory says engine volumes do not persist.
        for node in &nodes {
            let volume = engine_volume(&self.cfg.lab.name, node);
            let exists = Command::new("docker")
                .args(["volume", "inspect", &volume])
                .output()
                .is_ok_and(|o| o.status.success());
            if exists {
                step(
                    "remove engine volume",
                    Command::new("docker").args(["volume", "rm", &volume]),
                )?;
            }
        }
        Ok(())
    }

    /// A note when a docker node's container runs another image than the lock's node
    /// image (Vagrant does not recreate a container when its image changes).
    fn outdated_node_image(&self, node: &str, lock: &ImageLock) -> Option<String> {
        let id = transport::docker_container_id(&self.vagrant_dir(), node)?;
        let want = lock.derived(images::NODE)?;
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{.Image}}", &id])
            .output()
            .ok()?;
        let running = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && running != want.id).then(|| {
            format!(
                "node image outdated: the container runs {}, the lock's node image is {} ({})\n  recreate it with: cargo xtask lab destroy {node} && cargo xtask lab up {node}",
                build::short_id(&running),
                want.tag,
                build::short_id(&want.id)
            )
        })
    }

    /// Creates the lab network when absent; an existing one must have the configured subnet.
    fn ensure_network(&self) -> Result<(), Error> {
        let name = network_name(&self.cfg.lab.name);
        let subnet = &self.cfg.network.docker_subnet;
        let out = Command::new("docker")
            .args([
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                &name,
            ])
            .output()
            .map_err(|e| Error::StepFailed {
                step: "lab network".into(),
                cmd: format!("docker network inspect {name}"),
                status: e.to_string(),
            })?;
        if out.status.success() {
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if found.split_whitespace().any(|s| s == subnet) {
                return Ok(());
            }
            return Err(Error::StepFailed {
                step: "lab network".into(),
                cmd: format!("docker network inspect {name}"),
                status: format!(
                    "network {name} has subnet {found}, stackpilot.toml says {subnet}\n  destroy the lab (`cargo xtask lab destroy`) and remove it: docker network rm {name}"
                ),
            });
        }
        step(
            "lab network",
            Command::new("docker").args([
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                subnet,
                "--label",
                &format!("{LAB_LABEL}={}", self.cfg.lab.name),
                &name,
            ]),
        )
    }

    /// Creates the nodes' engine volumes with the lab's label (Vagrant would create them
    /// unlabelled); an existing volume is kept as it is.
    fn ensure_engine_volumes(&self, nodes: &[String]) -> Result<(), Error> {
        let label = format!("{LAB_LABEL}={}", self.cfg.lab.name);
        for node in nodes {
            let volume = engine_volume(&self.cfg.lab.name, node);
            let exists = Command::new("docker")
                .args(["volume", "inspect", &volume])
                .output()
                .is_ok_and(|o| o.status.success());
            if !exists {
                step(
                    "engine volume",
                    Command::new("docker").args(["volume", "create", "--label", &label, &volume]),
                )?;
            }
        }
        Ok(())
    }

    /// Removes the lab network once no container of the lab is left.
    fn remove_network_if_unused(&self) -> Result<(), Error> {
        let name = network_name(&self.cfg.lab.name);
        let label = format!("label={LAB_LABEL}={}", self.cfg.lab.name);
        let left = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let exists = Command::new("docker")
            .args(["network", "inspect", &name])
            .output()
            .is_ok_and(|o| o.status.success());
        if exists && left.is_empty() {
            step(
                "remove lab network",
                Command::new("docker").args(["network", "rm", &name]),
            )?;
        }
        Ok(())
    }

    fn status(&self, names: &[String]) -> Result<(), Error> {
        require_vagrant()?;
        let nodes = self.nodes(names)?;
        let out = self
            .vagrant(&["status", "--machine-readable"], &nodes)
            .output()
            .map_err(|e| Error::StepFailed {
                step: "lab status".into(),
                cmd: "vagrant status --machine-readable".into(),
                status: e.to_string(),
            })?;
        let states = parse_machine_states(&String::from_utf8_lossy(&out.stdout));
        let lock = self.lock().ok();
        let vagrant_dir = self.vagrant_dir();
        let mut table = Table::new(&["node", "provider", "state", "address", "engine", "images"]);
        for node in &nodes {
            let provider = transport::created_provider(&vagrant_dir, node);
            let state = states
                .iter()
                .find(|(n, _)| n == node)
                .map_or("unknown".to_string(), |(_, s)| s.clone());
            let address = match (provider, self.cfg.node(node)) {
                (Some(p), Ok(n)) => n.address(p).to_string(),
                _ => "-".into(),
            };
            let (engine, mut loaded) = match Transport::for_node(&vagrant_dir, node) {
                Ok(t) if state == "running" => (
                    engine_health(&t),
                    lock.as_ref()
                        .map_or("no image lock".into(), |l| images_loaded(&t, l)),
                ),
                _ => ("-".to_string(), "-".to_string()),
            };
            if let Some(l) = lock.as_ref()
                && self.outdated_node_image(node, l).is_some()
            {
                loaded.push_str("; node image outdated");
            }
            table.row([
                node.clone(),
                provider.map_or("-".into(), |p| p.to_string()),
                state,
                address,
                engine,
                loaded,
            ]);
        }
        print!("{}", table.render());
        Ok(())
    }

    fn verify(&self, names: &[String], json: bool) -> Result<(), Error> {
        let nodes = self.nodes(names)?;
        let marker = LabMarker::read(&self.root.join(LAB_MARKER)).ok();
        let report = verify::lab::run(&verify::lab::LabContext {
            cfg: &self.cfg,
            vagrant_dir: &self.vagrant_dir(),
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
            Err(Error::StepFailed {
                step: "lab verify".into(),
                cmd: format!("cargo xtask lab verify {}", nodes.join(" ")),
                status: format!("{} check(s) failed", report.failures()),
            })
        }
    }
}

/// Waits for the node's engine, writes its identity when given, loads the wanted images.
fn provision_node(
    t: &Transport,
    identity: Option<&str>,
    wanted: &[(String, String)],
) -> Result<(), Error> {
    let node = t.node();
    wait_for_engine(t)?;
    if let Some(identity) = identity {
        match write_identity(t, identity)? {
            Change::None => eprintln!("==> {node}: identity: no change"),
            Change::Changed => eprintln!("==> {node}: identity: written to {IDENTITY_FILE}"),
        }
    }
    if !wanted.is_empty() {
        match load_images(t, wanted)? {
            Change::None => eprintln!(
                "==> {node}: images: no change ({} already loaded)",
                wanted.len()
            ),
            Change::Changed => eprintln!("==> {node}: images: loaded"),
        }
    }
    Ok(())
}

/// Polls the node's engine until it answers.
fn wait_for_engine(t: &Transport) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        let answer = t.output(
            &["docker", "version", "--format", "{{.Server.Version}}"],
            Duration::from_secs(10),
        );
        match answer {
            Ok(v) => {
                eprintln!(
                    "==> {}: engine {} up after {:.1}s",
                    t.node(),
                    v.trim(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Err(e) if started.elapsed() > ENGINE_WAIT => {
                return Err(Error::StepFailed {
                    step: "wait for engine".into(),
                    cmd: format!("{} docker version", t.node()),
                    status: format!(
                        "the node's engine did not answer within {}s: {e}",
                        ENGINE_WAIT.as_secs()
                    ),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Writes the identity file unless it already holds exactly `identity`.
pub fn write_identity(t: &Transport, identity: &str) -> Result<Change, Error> {
    let current = t.output(&["cat", IDENTITY_FILE], Duration::from_secs(15));
    if current.as_deref().ok() == Some(identity) {
        return Ok(Change::None);
    }
    let dir = Path::new(IDENTITY_FILE)
        .parent()
        .map_or("/etc".into(), |p| p.display().to_string());
    let script = format!(
        "mkdir -p {dir} && cat > {IDENTITY_FILE}.tmp && mv {IDENTITY_FILE}.tmp {IDENTITY_FILE}"
    );
    t.output_with_input(
        &["sh", "-c", &script],
        identity.as_bytes(),
        Duration::from_secs(15),
    )?;
    Ok(Change::Changed)
}

/// Loads each `(tag, id)` into the node's engine unless it already has that id.
fn load_images(t: &Transport, wanted: &[(String, String)]) -> Result<Change, Error> {
    let mut change = Change::None;
    for (tag, id) in wanted {
        let inside = t
            .output(
                &["docker", "image", "inspect", "--format", "{{.Id}}", tag],
                Duration::from_secs(15),
            )
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if &inside == id {
            continue;
        }
        let started = Instant::now();
        eprintln!("==> {}: loading {tag}", t.node());
        t.pipe_from(
            Command::new("docker").args(["save", tag]),
            &["docker", "load", "--quiet"],
        )?;
        eprintln!(
            "<== {}: loaded {tag} in {:.1}s",
            t.node(),
            started.elapsed().as_secs_f64()
        );
        change = Change::Changed;
    }
    Ok(change)
}

fn engine_health(t: &Transport) -> String {
    match t.output(
        &["docker", "version", "--format", "{{.Server.Version}}"],
        Duration::from_secs(10),
    ) {
        Ok(v) => format!("up {}", v.trim()),
        Err(_) => "down".into(),
    }
}

fn images_loaded(t: &Transport, lock: &ImageLock) -> String {
    let mut missing = Vec::new();
    for name in NODE_LOADS {
        let Some(entry) = lock.derived(name) else {
            missing.push(name.to_string());
            continue;
        };
        let inside = t
            .output(
                &[
                    "docker", "image", "inspect", "--format", "{{.Id}}", &entry.tag,
                ],
                Duration::from_secs(10),
            )
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if inside != entry.id {
            missing.push(name.to_string());
        }
    }
    if missing.is_empty() {
        format!("{}/{} loaded", NODE_LOADS.len(), NODE_LOADS.len())
    } else {
        format!("missing {}", missing.join(", "))
    }
}

/// `(node, state)` pairs from `vagrant status --machine-readable`.
pub fn parse_machine_states(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            (f.len() == 4 && f[2] == "state" && !f[1].is_empty())
                .then(|| (f[1].to_string(), f[3].trim().to_string()))
        })
        .collect()
}

fn require_vagrant() -> Result<(), Error> {
    if which::which("vagrant").is_err() {
        return Err(Error::Prereq {
            what: "vagrant (the lab engine for every provider)".into(),
            install: "apt-get install -y vagrant".into(),
        });
    }
    Ok(())
}

fn host_has_docker() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// 128 random bits as hex, from the kernel.
fn random_id() -> Result<String, Error> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::StepFailed {
            step: "lab marker".into(),
            cmd: "read /dev/urandom".into(),
            status: e.to_string(),
        })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_json_matches_stackpilot_toml() {
        let root = repo_root();
        let cfg = Config::load(&root.join("stackpilot.toml")).expect("stackpilot.toml loads");
        let have = std::fs::read_to_string(root.join(INVENTORY_FILE)).unwrap_or_default();
        assert!(
            have == inventory_text(&cfg),
            "{INVENTORY_FILE} has drifted from stackpilot.toml; run `cargo xtask lab inventory` and commit it"
        );
    }

    #[test]
    fn inventory_names_every_node_with_its_addresses() {
        let cfg = Config::load(&repo_root().join("stackpilot.toml")).expect("config");
        let inv: serde_json::Value =
            serde_json::from_str(&inventory_text(&cfg)).expect("inventory is JSON");
        assert_eq!(inv["lab"], "stackpilot");
        assert_eq!(inv["nodes"][1]["name"], "worker1");
        assert_eq!(inv["nodes"][1]["address"]["docker"], "172.30.56.11");
        assert_eq!(inv["nodes"][1]["container"], "stackpilot-worker1");
        assert_eq!(
            inv["nodes"][1]["engine_volume"],
            "stackpilot-worker1-docker"
        );
    }

    #[test]
    fn provider_override_is_validated() {
        assert_eq!(
            choose_provider(Some("docker")).expect("docker"),
            Provider::Docker
        );
        let err = choose_provider(Some("hyperv")).expect_err("unknown provider");
        assert!(err.to_string().contains("hyperv"), "{err}");
        assert_eq!(err.exit(), stackpilot_core::Exit::Usage);
    }

    #[test]
    fn machine_readable_states_are_parsed() {
        let text = "\
1732550000,control,metadata,provider,docker
1732550000,control,state,running
1732550000,worker1,state,not_created
1732550000,,ui,info,Current machine states:
";
        assert_eq!(
            parse_machine_states(text),
            [
                ("control".to_string(), "running".to_string()),
                ("worker1".to_string(), "not_created".to_string())
            ]
        );
    }

    #[test]
    fn vagrantfile_validates() {
        let root = repo_root();
        let out = Command::new("vagrant")
            .arg("validate")
            .env("VAGRANT_CWD", root.join(VAGRANT_DIR))
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .output()
            .expect(
                "vagrant is installed (apt-get install -y vagrant; `cargo xtask test` installs it)",
            );
        assert!(
            out.status.success(),
            "vagrant validate failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn provisioning_scripts_pass_bash_and_shellcheck() {
        let dir = repo_root().join("vagrant/provision");
        let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("vagrant/provision exists")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sh"))
            .collect();
        scripts.sort();
        assert!(
            scripts.len() >= 2,
            "provisioning scripts found: {scripts:?}"
        );
        for s in &scripts {
            let ok = Command::new("bash").arg("-n").arg(s).status();
            assert!(ok.is_ok_and(|s| s.success()), "bash -n {}", s.display());
        }
        let sc = Command::new("shellcheck")
            .args(&scripts)
            .output()
            .expect("shellcheck is installed (apt-get install -y shellcheck; `cargo xtask test` installs it)");
        assert!(
            sc.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&sc.stdout)
        );
    }
}
