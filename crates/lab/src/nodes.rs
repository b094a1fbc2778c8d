//! The nodes' lifecycle through Vagrant: up, provision, status, halt, destroy.
//!
//! Vagrant is the lab engine for every provider; this module writes the repo's lab marker
//! once, builds and loads the images docker nodes need, writes their identity, and waits
//! for each node's engine. `verify` asserts; it changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stackpilot_core::argv::ToArgv;
use stackpilot_core::images::{self, ImageLock, NODE_LOADS};
use stackpilot_core::node::{IDENTITY_FILE, Identity, LAB_MARKER, LabMarker, NODE_REPO};
use stackpilot_core::output::Table;
use stackpilot_core::time;
use stackpilot_core::transport::{self, Transport, VAGRANT_DIR};
use stackpilot_core::{Config, Provider};

use crate::error::{Error, failed};
use crate::images as build;
use crate::inventory::{INVENTORY_FILE, inventory_text};
use crate::named;
use crate::process::step;
use stackpilot_core::labs::{
    self as labs, CHECKOUT_LABEL, LAB_ENV, LabName, LabRecord, Subnet, host_state_dir,
};

/// How long a node's inner engine may take to answer after the node starts.
const ENGINE_WAIT: Duration = Duration::from_secs(90);

/// Whether provisioning changed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Already as wanted.
    None,
    /// Written or loaded now.
    Changed,
}

/// One checkout's lab: its root and configuration.
pub struct Lab {
    root: PathBuf,
    cfg: Config,
}

impl Lab {
    /// The lab of the checkout at `root`, configured by `cfg`.
    pub fn new(root: PathBuf, cfg: Config) -> Lab {
        Lab { root, cfg }
    }

    /// The checkout's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lab configuration.
    pub fn cfg(&self) -> &Config {
        &self.cfg
    }

    /// Vagrant's working directory (the Vagrantfile's).
    pub fn vagrant_dir(&self) -> PathBuf {
        self.root.join(VAGRANT_DIR)
    }

    /// Named nodes (validated against the inventory) or all of them.
    pub fn nodes(&self, names: &[String]) -> Result<Vec<String>, Error> {
        if names.is_empty() {
            return Ok(self.cfg.node_names());
        }
        for n in names {
            self.cfg.node(n)?;
        }
        Ok(names.to_vec())
    }

    /// The lab's provider: the one its nodes were created with, else the configured choice
    /// (`STACKPILOT_PROVIDER`, else the automatic one).
    pub fn provider(&self) -> Result<Provider, Error> {
        let vagrant_dir = self.vagrant_dir();
        match self
            .cfg
            .node_names()
            .iter()
            .find_map(|n| transport::created_provider(&vagrant_dir, n))
        {
            Some(p) => Ok(p),
            None => crate::provider::from_env(),
        }
    }

    /// A `vagrant` call on `nodes`, pinned to `provider`.
    fn vagrant(&self, provider: Provider, args: &[&str], nodes: &[String]) -> Command {
        let mut c = transport::vagrant_command(&self.vagrant_dir(), provider);
        c.args(args).args(nodes);
        c
    }

    /// The libvirt domain names of this lab's nodes (the Vagrantfile's `default_prefix`).
    fn domain_names(&self) -> Vec<String> {
        self.cfg
            .node_names()
            .iter()
            .map(|n| format!("{}-{n}", self.cfg.lab.name))
            .collect()
    }

    /// The named nodes (all by default) that Vagrant has a machine for under `provider`.
    fn created(&self, names: &[String], provider: Provider) -> Result<Vec<String>, Error> {
        let vagrant_dir = self.vagrant_dir();
        Ok(self
            .nodes(names)?
            .into_iter()
            .filter(|n| transport::created_provider(&vagrant_dir, n) == Some(provider))
            .collect())
    }

    /// Stops nodes, keeping them and their engine volumes.
    pub fn halt(&self, names: &[String]) -> Result<(), Error> {
        self.nodes(names)?;
        let provider = self.provider()?;
        let nodes = self.created(names, provider)?;
        if nodes.is_empty() {
            eprintln!("==> lab: no node is created: nothing to halt");
            return Ok(());
        }
        crate::swarm::before_halt(&self.root, &self.cfg, &nodes);
        self.vagrant_step(provider, "halt", &["halt"], &nodes)
    }

    fn vagrant_step(
        &self,
        provider: Provider,
        name: &str,
        args: &[&str],
        nodes: &[String],
    ) -> Result<(), Error> {
        require_vagrant()?;
        let mut cmd = self.vagrant(provider, args, nodes);
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

    /// Writes vagrant/inventory.json from stackpilot.toml (`check`: fail if it drifted).
    pub fn inventory(&self, check: bool) -> Result<(), Error> {
        let path = self.root.join(INVENTORY_FILE);
        let want = inventory_text(&self.tracked_cfg()?);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            stackpilot_core::outln!("{INVENTORY_FILE}: up to date with stackpilot.toml");
            return Ok(());
        }
        if check {
            return Err(Error::from(stackpilot_core::step::StepError {
                step: "lab inventory".into(),
                cmd: format!("compare {INVENTORY_FILE} with stackpilot.toml"),
                status: format!(
                    "{INVENTORY_FILE} has drifted from stackpilot.toml\n  regenerate it with: cargo xtask lab inventory"
                ),
            }));
        }
        std::fs::write(&path, want).map_err(|e| {
            Error::from(stackpilot_core::step::StepError {
                step: "lab inventory".into(),
                cmd: format!("write {}", path.display()),
                status: e.to_string(),
            })
        })?;
        stackpilot_core::outln!("{INVENTORY_FILE}: written from stackpilot.toml");
        Ok(())
    }

    /// The configuration as tracked (the inventory is generated from it, never from the
    /// checkout's named lab, so a lab never dirties the tree).
    fn tracked_cfg(&self) -> Result<Config, Error> {
        Ok(Config::load_file(
            &self.root.join(stackpilot_core::config::CONFIG_FILE),
        )?)
    }

    /// The checkout as lab labels and host records name it.
    pub fn checkout(&self) -> String {
        self.root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone())
            .display()
            .to_string()
    }

    fn any_created(&self) -> bool {
        let dir = self.vagrant_dir();
        self.cfg
            .node_names()
            .iter()
            .any(|n| transport::created_provider(&dir, n).is_some())
    }

    /// This checkout's lab name. A marker that recorded one keeps it (`LAB=` may rename the
    /// lab only while no node exists); a marker from before named labs whose nodes exist keeps
    /// the project's name (those nodes carry it); otherwise `LAB=`, else from the lab id.
    pub fn lab_name(&self, marker: Option<&LabMarker>) -> Result<LabName, Error> {
        let env = std::env::var(LAB_ENV).ok();
        let env = env.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let project = &self.cfg.lab.name;
        let named = |r: Result<LabName, labs::LabError>| {
            r.map_err(|e| {
                Error::Core(stackpilot_core::Error::ConfigInvalid {
                    path: PathBuf::from(LAB_MARKER),
                    message: e.to_string(),
                })
            })
        };
        let created = self.any_created();
        match marker {
            Some(m) => match (&m.name, env) {
                (Some(rec), Some(want)) if rec != want && created => Err(Error::from(stackpilot_core::step::StepError {
                    step: "lab name".into(),
                    cmd: format!("{LAB_ENV}={want}"),
                    status: format!(
                        "this checkout's lab is '{rec}' and has nodes; {LAB_ENV}={want} names another
  run without {LAB_ENV}, or destroy it first: cargo xtask lab destroy"
                    ),
                })),
                (None, _) if created => named(LabName::parse(project, "stackpilot.toml [lab] name")),
                (rec, env) => named(LabName::resolve(env, rec.as_deref(), project, &m.lab_id)),
            },
            None => named(LabName::resolve(env, None, project, "")),
        }
    }

    /// This checkout's lab name from its marker, when it has one.
    fn current_name(&self) -> Result<LabName, Error> {
        let marker = LabMarker::read(&self.root.join(LAB_MARKER)).ok();
        self.lab_name(marker.as_ref())
    }

    fn write_marker(&self, marker: &LabMarker) -> Result<(), Error> {
        let path = self.root.join(LAB_MARKER);
        std::fs::write(&path, marker.to_toml()).map_err(|e| {
            Error::from(stackpilot_core::step::StepError {
                step: "lab marker".into(),
                cmd: format!("write {}", path.display()),
                status: e.to_string(),
            })
        })
    }

    /// Names the lab (and, for docker, gives it a network on a free /24), records both in
    /// the marker and the host's lab record. A VM lab is refused while another checkout's
    /// VM lab holds 192.168.56.x.
    fn name_lab(&self, marker: LabMarker, provider: Provider) -> Result<LabMarker, Error> {
        let name = self.lab_name(Some(&marker))?;
        let checkout = self.checkout();
        let state = host_state_dir();
        let record_err = |e: labs::LabError| {
            Error::from(stackpilot_core::step::StepError {
                step: "lab record".into(),
                cmd: format!("{}", state.join("labs").display()),
                status: e.to_string(),
            })
        };
        let mut next = marker.clone();
        let renamed = marker.name.as_deref() != Some(name.as_str());
        next.name = Some(name.to_string());
        let subnet = if !provider.desc().is_vm {
            // A legacy lab's nodes already sit on the inventory's subnet.
            let recorded = match (&marker.docker_subnet, &marker.name) {
                (Some(s), _) if !renamed => Some(Subnet::parse(s).map_err(record_err)?),
                (_, None) if self.any_created() => Some(
                    Subnet::parse(&self.tracked_cfg()?.network.docker_subnet)
                        .map_err(record_err)?,
                ),
                _ => None,
            };
            let subnet = self.ensure_network(&name, recorded)?;
            next.docker_subnet = Some(subnet.to_string());
            Some(subnet.to_string())
        } else {
            let records = crate::named::vm_lab_records(&checkout, &self.domain_names())?;
            labs::check_vm_lab_free(&records, &checkout).map_err(record_err)?;
            None
        };
        if next != marker {
            self.write_marker(&next)?;
        }
        LabRecord {
            name: name.to_string(),
            checkout,
            provider: provider.as_str().to_string(),
            subnet,
        }
        .write(&state)
        .map_err(record_err)?;
        eprintln!(
            "==> lab: '{name}'{} (LAB=<name> names it; `cargo xtask lab status` lists the labs on this host)",
            next.docker_subnet
                .as_deref()
                .map_or(String::new(), |s| format!(" on {s}"))
        );
        Ok(next)
    }

    /// The repo's lab marker, created with a random id when absent.
    fn marker(&self) -> Result<LabMarker, Error> {
        let path = self.root.join(LAB_MARKER);
        match LabMarker::read(&path) {
            Ok(m) if m.lab == self.cfg.lab.name => Ok(m),
            Ok(m) => Err(Error::from(stackpilot_core::step::StepError {
                step: "lab marker".into(),
                cmd: format!("read {}", path.display()),
                status: format!(
                    "the marker names lab '{}', stackpilot.toml names '{}'\n  destroy the old lab (`cargo xtask lab destroy`), remove {LAB_MARKER} and run `cargo xtask lab up`",
                    m.lab, self.cfg.lab.name
                ),
            })),
            Err(stackpilot_core::node::FileError::Missing { .. }) => {
                let marker = LabMarker {
                    lab: self.cfg.lab.name.clone(),
                    lab_id: random_id()?,
                    ..Default::default()
                };
                std::fs::write(&path, marker.to_toml()).map_err(|e| {
                    Error::from(stackpilot_core::step::StepError {
                        step: "lab marker".into(),
                        cmd: format!("write {}", path.display()),
                        status: e.to_string(),
                    })
                })?;
                eprintln!(
                    "==> lab: created {LAB_MARKER} (lab id {}) for this checkout",
                    marker.lab_id
                );
                Ok(marker)
            }
            Err(e) => Err(Error::from(stackpilot_core::step::StepError {
                step: "lab marker".into(),
                cmd: format!("read {}", path.display()),
                status: e.to_string(),
            })),
        }
    }

    /// The identity a node of this checkout should carry.
    fn identity(&self, node: &str, provider: Provider, marker: &LabMarker) -> Identity {
        let repo_source = (!provider.desc().is_vm).then(|| crate::resolve::repo_source(&self.root));
        Identity {
            node: node.to_string(),
            lab: self.cfg.lab.name.clone(),
            lab_id: marker.lab_id.clone(),
            provider: provider.as_str().to_string(),
            repo_source,
        }
    }

    /// Creates or starts nodes (all when none is named), provisions them and loads the
    /// images they need; builds the images first when absent.
    pub fn up(&self, names: &[String]) -> Result<(), Error> {
        let started = Instant::now();
        // Usage errors first: nothing is checked or changed for a wrong command line.
        let nodes = self.nodes(names)?;
        let provider = crate::provider::from_env()?;
        crate::prereq::ensure(crate::prereq::EntryPoint::Lab)?;
        require_vagrant()?;
        eprintln!("==> lab: provider {provider} for {}", nodes.join(", "));
        self.sync_inventory()?;
        let marker = self.marker()?;
        let docker = !provider.desc().is_vm;
        if !docker && self.created(&nodes, provider)?.is_empty() {
            // Refuse a second VM lab before building anything.
            let records = crate::named::vm_lab_records(&self.checkout(), &self.domain_names())?;
            labs::check_vm_lab_free(&records, &self.checkout()).map_err(|e| {
                Error::from(stackpilot_core::step::StepError {
                    step: "lab up".into(),
                    cmd: format!("vagrant up --provider={provider}"),
                    status: e.to_string(),
                })
            })?;
        }
        let lock = if docker || host_has_docker() {
            let (lock, _) = build::ensure(&self.root, &self.cfg)?;
            Some(lock)
        } else {
            eprintln!("==> lab: no Docker engine on the host: images are not loaded into the VMs");
            None
        };
        let marker = self.name_lab(marker, provider)?;
        let name = self.lab_name(Some(&marker))?;
        if docker {
            self.ensure_engine_volumes(&name, &nodes)?;
        }
        if !docker && self.vms_running(&nodes, provider) {
            eprintln!(
                "==> lab: {} running with /vagrant mounted: no `vagrant up` needed",
                nodes.join(", ")
            );
        } else {
            self.boot(provider, &nodes, lock.as_ref())?;
        }
        if let Some(lock) = lock.as_ref().filter(|_| docker) {
            for node in &nodes {
                if let Some(note) = self.outdated_node_image(node, lock) {
                    eprintln!("==> {node}: {note}");
                }
            }
        }
        self.provision_nodes(&nodes, &marker, lock.as_ref())?;
        eprintln!(
            "<== lab up: {} in {}s",
            nodes.join(", "),
            time::secs(started.elapsed())
        );
        // The configuration as it is now, with the lab's recorded subnet.
        let now = Config::load(&self.root.join(stackpilot_core::config::CONFIG_FILE))?;
        // Progress of the command that brought the lab up, not its result: stderr.
        eprint!("{}", Lab::new(self.root.clone(), now).status_table(&nodes)?);
        Ok(())
    }

    /// `vagrant up` of `nodes` under `provider` (created, started, provisioned the first
    /// time).
    fn boot(
        &self,
        provider: Provider,
        nodes: &[String],
        lock: Option<&ImageLock>,
    ) -> Result<(), Error> {
        let mut cmd = self.vagrant(provider, &["up", &format!("--provider={provider}")], nodes);
        for (k, v) in crate::provider::get(provider).up_env(&self.root, &self.cfg)? {
            cmd.env(k, v);
        }
        if let Some(lock) = lock {
            cmd.env(
                "STACKPILOT_NODE_IMAGE",
                lock.tag(images::NODE, &ImageLock::path(&self.root))?,
            );
        }
        // VM nodes load their images with the node-side lifecycle (see `load_images`):
        // compiling it meanwhile takes its minutes off the boot's, which mostly waits on the
        // emulated guest.
        let compiling = (provider.desc().is_vm && lock.is_some()).then(|| {
            let root = self.root.clone();
            std::thread::spawn(move || crate::build::compile_tools(&root))
        });
        let mut booted = step("vagrant up", &mut cmd);
        if booted.is_err() && !provider.desc().is_vm {
            // Vagrant's docker provider lists the host's networks, then inspects each: one
            // that another lab or test removes in between fails it ("No such object").
            eprintln!(
                "==> lab: vagrant up failed (a Docker network another lab removed meanwhile fails it): once more"
            );
            booted = step("vagrant up", &mut cmd);
        }
        if let Some(compiling) = compiling {
            compiling.join().unwrap_or_else(|_| {
                Err(failed(
                    "lab up",
                    "compile node-side tools",
                    "the compile thread panicked",
                ))
            })?;
        }
        booted?;
        Ok(())
    }

    /// Whether every VM node in `nodes` runs with its /vagrant share mounted: a running
    /// VM's `vagrant up` would only repeat the share step, 20–50 s on a TCG guest for each
    /// command that brings the lab up. The provider answers whether the machine runs
    /// without Vagrant (libvirt: its domain state); one node-side command checks the share.
    fn vms_running(&self, nodes: &[String], provider: Provider) -> bool {
        let dir = self.vagrant_dir();
        let p = crate::provider::get(provider);
        nodes.iter().all(|n| {
            transport::created_provider(&dir, n) == Some(provider)
                && p.running(&dir, n)
                && Transport::for_node(&dir, n).is_ok_and(|t| {
                    let limit = t.command_limit(Duration::from_secs(10));
                    t.output(&["mountpoint", "-q", "/vagrant"], limit).is_ok()
                })
        })
    }

    /// The libvirt host set up, the box chosen in stackpilot.toml (the local one built
    /// when absent) and the driver a real boot showed: the environment of `vagrant up`.
    fn sync_inventory(&self) -> Result<(), Error> {
        let path = self.root.join(INVENTORY_FILE);
        let want = inventory_text(&self.tracked_cfg()?);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(&want) {
            eprintln!("==> lab: {INVENTORY_FILE} differs from stackpilot.toml; regenerating it");
            self.inventory(false)?;
        }
        Ok(())
    }

    /// Re-runs provisioning on running nodes (identity, images; `vagrant provision` on VMs).
    pub fn provision(&self, names: &[String]) -> Result<(), Error> {
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
            if let Some(provider) = provider.filter(|p| p.desc().is_vm) {
                step(
                    &format!("vagrant provision {node}"),
                    &mut self.vagrant(provider, &["provision"], std::slice::from_ref(node)),
                )?;
            }
        }
        self.provision_nodes(&nodes, &marker, lock.as_ref())
    }

    /// Per node: wait for its engine, write its identity (docker provider; VMs get theirs
    /// from Vagrant's provisioners), load the images it needs. Nodes are provisioned in
    /// parallel; every node's outcome is reported before the first error is returned.
    fn provision_nodes(
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
                // The lock pins recipes; the id is what this host built for the tag.
                let id = build::host_id(&tag)?;
                wanted.push((tag, id));
            }
        }
        let vagrant_dir = self.vagrant_dir();
        let vm = nodes
            .iter()
            .any(|n| transport::created_provider(&vagrant_dir, n).is_some_and(|p| p.desc().is_vm));
        if vm && !wanted.is_empty() {
            // VM nodes load images with the node-side `lifecycle load-image` from an archive
            // on /vagrant (see `load_images`): it must be compiled for the node first.
            crate::build::compile_tools(&self.root)?;
            // Saved once here, not by each node's thread: nodes share the archives.
            for (tag, id) in &wanted {
                save_archive(&self.root.join(IMAGE_ARCHIVES), &archive_name(tag, id), tag)?;
            }
        }
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
            let identity =
                (!provider.desc().is_vm).then(|| self.identity(node, provider, marker).to_toml());
            let wanted = wanted.clone();
            let state_dir = self.cfg.state.node_dir.display().to_string();
            let root = self.root.clone();
            jobs.push(std::thread::spawn(move || {
                provision_node(&t, &root, identity.as_deref(), &wanted, &state_dir)
            }));
        }
        let mut first = None;
        for j in jobs {
            let r = j.join().unwrap_or_else(|_| {
                Err(Error::from(stackpilot_core::step::StepError {
                    step: "provision".into(),
                    cmd: "provision thread".into(),
                    status: "panicked".into(),
                }))
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

    /// Removes nodes and their engine volumes, then the lab network once unused.
    pub fn destroy(&self, names: &[String]) -> Result<(), Error> {
        let nodes = self.nodes(names)?;
        // Only machines that exist: Vagrant resolves a never-created one under its default
        // provider, which need not be the lab's (and may need an NFS server).
        let provider = self.provider()?;
        let created = self.created(&nodes, provider)?;
        if created.is_empty() {
            eprintln!(
                "==> lab: no node is created under {provider}: nothing for Vagrant to destroy"
            );
        } else {
            crate::swarm::before_destroy(&self.root, &self.cfg, &created);
            self.vagrant_step(provider, "destroy", &["destroy", "-f"], &created)?;
        }
        let name = self.current_name()?;
        if !self.any_created() {
            // The whole lab is gone: the host forgets it and its subnet is free again.
            LabRecord::remove(&host_state_dir(), name.as_str()).map_err(|e| {
                Error::from(stackpilot_core::step::StepError {
                    step: "lab record".into(),
                    cmd: "remove".into(),
                    status: e.to_string(),
                })
            })?;
            if let Ok(mut m) = LabMarker::read(&self.root.join(LAB_MARKER))
                && m.docker_subnet.take().is_some()
            {
                self.write_marker(&m)?;
            }
        }
        if !host_has_docker() {
            return Ok(());
        }
        self.remove_network_if_unused(&name)?;
        // Vagrant leaves named volumes; the inventory says engine volumes do not persist.
        // Only this checkout's: a volume of the same name made by another checkout (a lab
        // from before named labs, say) is its owner's to remove.
        for node in &nodes {
            let volume = name.engine_volume(node);
            match self.owner("volume", &volume) {
                Owner::Absent => {}
                Owner::Here => step(
                    "remove engine volume",
                    Command::new("docker").args(["volume", "rm", &volume]),
                )?,
                Owner::Other(owner) => eprintln!(
                    "==> lab: engine volume {volume} belongs to {owner}, not this checkout: left alone"
                ),
            }
        }
        Ok(())
    }

    /// Who owns a docker volume or network of this name, by its checkout label.
    fn owner(&self, kind: &str, name: &str) -> Owner {
        let out = Command::new("docker")
            .args([kind, "inspect", "--format"])
            .arg(format!("{{{{index .Labels \"{CHECKOUT_LABEL}\"}}}}"))
            .arg(name)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let label = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if label == self.checkout() {
                    Owner::Here
                } else if label.is_empty() || label == "<no value>" {
                    Owner::Other("a checkout that did not label it".into())
                } else {
                    Owner::Other(label)
                }
            }
            _ => Owner::Absent,
        }
    }

    /// A note when a docker node's container runs another image than the lock's node
    /// image (Vagrant does not recreate a container when its image changes).
    fn outdated_node_image(&self, node: &str, lock: &ImageLock) -> Option<String> {
        let id = transport::docker_container_id(&self.vagrant_dir(), node)?;
        let want = lock.derived(images::NODE)?;
        let want_id = build::host_id(&want.tag).ok()?;
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{.Image}}", &id])
            .output()
            .ok()?;
        let running = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && running != want_id).then(|| {
            format!(
                "node image outdated: the container runs {}, the lock's node image is {} ({})\n  recreate it with: cargo xtask lab destroy {node} && cargo xtask lab up {node}",
                build::short_id(&running),
                want.tag,
                build::short_id(&want_id)
            )
        })
    }

    /// The lab network: an existing one must have the recorded subnet; a new one gets the
    /// recorded subnet, else a free /24 (the inventory's when free). Returns its subnet.
    fn ensure_network(&self, lab: &LabName, recorded: Option<Subnet>) -> Result<Subnet, Error> {
        let name = lab.network();
        let bad = |status: String| {
            Error::from(stackpilot_core::step::StepError {
                step: "lab network".into(),
                cmd: format!("docker network inspect {name}"),
                status,
            })
        };
        let out = Command::new("docker")
            .args([
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                &name,
            ])
            .output()
            .map_err(|e| bad(e.to_string()))?;
        if out.status.success() {
            let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let subnet = found.split_whitespace().find_map(|s| Subnet::parse(s).ok());
            return match (subnet, recorded) {
                (Some(s), None) => Ok(s),
                (Some(s), Some(r)) if s == r => Ok(s),
                _ => Err(bad(format!(
                    "network {name} has subnet {found}, the lab recorded {}\n  destroy the lab (`cargo xtask lab destroy`) and remove it: docker network rm {name}",
                    recorded.map_or("none".into(), |r| r.to_string())
                ))),
            };
        }
        let preferred = Subnet::parse(&self.tracked_cfg()?.network.docker_subnet)
            .map_err(|e| bad(e.to_string()))?;
        // Another checkout may take the same free /24 at the same moment: choose again.
        let mut last = String::new();
        for _ in 0..5 {
            let subnet = match recorded {
                Some(r) if last.is_empty() => r,
                _ => labs::choose_subnet(preferred, &named::used_subnets()?)
                    .map_err(|e| bad(e.to_string()))?,
            };
            let out = Command::new("docker")
                .args(["network", "create", "--driver", "bridge"])
                .args(["--subnet", &subnet.to_string()])
                .args(["--label", &lab.label()])
                .args(["--label", &format!("{CHECKOUT_LABEL}={}", self.checkout())])
                .arg(&name)
                .output()
                .map_err(|e| bad(e.to_string()))?;
            if out.status.success() {
                eprintln!("==> lab: network {name} created on {subnet}");
                return Ok(subnet);
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if !last.contains("overlap") {
                break;
            }
        }
        Err(Error::from(stackpilot_core::step::StepError {
            step: "lab network".into(),
            cmd: format!("docker network create {name}"),
            status: last,
        }))
    }

    /// Creates the nodes' engine volumes with the lab's label (Vagrant would create them
    /// unlabelled); an existing volume is kept as it is.
    fn ensure_engine_volumes(&self, lab: &LabName, nodes: &[String]) -> Result<(), Error> {
        let label = lab.label();
        let checkout = format!("{CHECKOUT_LABEL}={}", self.checkout());
        for node in nodes {
            let volume = lab.engine_volume(node);
            let exists = Command::new("docker")
                .args(["volume", "inspect", &volume])
                .output()
                .is_ok_and(|o| o.status.success());
            if !exists {
                step(
                    "engine volume",
                    Command::new("docker")
                        .args(["volume", "create", "--label", &label, "--label", &checkout])
                        .arg(&volume),
                )?;
            }
        }
        Ok(())
    }

    /// Removes the lab network once no container of the lab is left.
    fn remove_network_if_unused(&self, lab: &LabName) -> Result<(), Error> {
        let name = lab.network();
        let label = format!("label={}", lab.label());
        let left = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let exists = Command::new("docker")
            .args(["network", "inspect", &name])
            .output()
            .is_ok_and(|o| o.status.success());
        if exists && left.is_empty() && matches!(self.owner("network", &name), Owner::Here) {
            step(
                "remove lab network",
                Command::new("docker").args(["network", "rm", &name]),
            )?;
        }
        Ok(())
    }

    /// Prints the labs on this host and their checkouts, then each node's provider, state,
    /// address, engine health and loaded images; with `json`, the same as one JSON document
    /// (and nothing else) on stdout.
    pub fn status(&self, names: &[String], json: bool) -> Result<(), Error> {
        let status = self.lab_status(names)?;
        if json {
            let doc = serde_json::to_string_pretty(&status)
                .map_err(|e| failed("lab status", "render JSON", &e.to_string()))?;
            stackpilot_core::outln!("{doc}");
        } else {
            stackpilot_core::out!("{}", status.render(Path::new(&self.checkout())));
        }
        Ok(())
    }

    /// Each node's provider, state, address, engine health and loaded images, as a table.
    pub fn status_table(&self, names: &[String]) -> Result<String, Error> {
        Ok(self.lab_status(names)?.render(Path::new(&self.checkout())))
    }

    /// The labs on this host, this checkout's lab and its nodes.
    pub fn lab_status(&self, names: &[String]) -> Result<LabStatus, Error> {
        require_vagrant()?;
        let nodes = self.nodes(names)?;
        let labs = if host_has_docker() || host_state_dir().join("labs").exists() {
            Some(named::host_labs()?)
        } else {
            None
        };
        let this_lab = self.current_name()?;
        let out = self
            .vagrant(self.provider()?, &["status", "--machine-readable"], &nodes)
            .output()
            .map_err(|e| {
                Error::from(stackpilot_core::step::StepError {
                    step: "lab status".into(),
                    cmd: "vagrant status --machine-readable".into(),
                    status: e.to_string(),
                })
            })?;
        let states = parse_machine_states(&String::from_utf8_lossy(&out.stdout));
        let lock = self.lock().ok();
        let vagrant_dir = self.vagrant_dir();
        let mut rows = Vec::new();
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
            let (engine, mut images) = match Transport::for_node(&vagrant_dir, node) {
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
                images.push_str("; node image outdated");
            }
            rows.push(NodeStatus {
                node: node.clone(),
                provider: provider.map_or("-".into(), |p| p.to_string()),
                state,
                address,
                engine,
                images,
            });
        }
        Ok(LabStatus {
            labs,
            this_lab: this_lab.to_string(),
            nodes: rows,
        })
    }
}

/// Who a docker volume or network belongs to.
enum Owner {
    /// It does not exist.
    Absent,
    /// This checkout made it.
    Here,
    /// Another checkout (named), or nobody said.
    Other(String),
}

/// What `lab status` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabStatus {
    /// The labs on this host (`None` when neither an engine nor lab records exist here).
    pub labs: Option<Vec<named::HostLab>>,
    /// This checkout's lab.
    pub this_lab: String,
    /// This checkout's nodes.
    pub nodes: Vec<NodeStatus>,
}

/// One node's line of `lab status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// The provider it was created with, `-` when not created.
    pub provider: String,
    /// Vagrant's state (`running`, `not_created`, …).
    pub state: String,
    /// Its address, `-` when not created.
    pub address: String,
    /// Its engine's health, `-` when not running.
    pub engine: String,
    /// The lab images loaded on it, `-` when not running.
    pub images: String,
}

impl LabStatus {
    /// The human form: the host's labs (this checkout's marked), then the node table.
    pub fn render(&self, this_checkout: &Path) -> String {
        let mut text = String::new();
        if let Some(labs) = &self.labs {
            text.push_str("labs on this host (* = this checkout's):\n");
            text.push_str(&named::render(labs, this_checkout));
            text.push('\n');
        }
        text.push_str(&format!("this checkout's lab: {}\n", self.this_lab));
        let mut table = Table::new(&["node", "provider", "state", "address", "engine", "images"]);
        for n in &self.nodes {
            table.row([
                n.node.clone(),
                n.provider.clone(),
                n.state.clone(),
                n.address.clone(),
                n.engine.clone(),
                n.images.clone(),
            ]);
        }
        text.push_str(&table.render());
        text
    }
}

/// Waits for the node's engine, writes its identity when given, loads the wanted images
/// (VM nodes from archives under the checkout at `root`, their /vagrant).
fn provision_node(
    t: &Transport,
    root: &Path,
    identity: Option<&str>,
    wanted: &[(String, String)],
    state_dir: &str,
) -> Result<(), Error> {
    let node = t.node();
    wait_for_engine(t)?;
    state_dir_for_transport_user(t, state_dir)?;
    if let Some(identity) = identity {
        match write_identity(t, identity)? {
            Change::None => eprintln!("==> {node}: identity: no change"),
            Change::Changed => eprintln!("==> {node}: identity: written to {IDENTITY_FILE}"),
        }
    }
    if !wanted.is_empty() {
        match load_images(t, root, wanted)? {
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
/// The node state directory, owned by the user node-side steps run as (root in docker
/// nodes, `vagrant` on VMs, which gets root only through `sudo -n`), then proven writable.
const STATE_DIR_SCRIPT: &str = r#"set -e
u=$(id -un)
if [ "$u" = root ]; then install -d -m 0755 "$1"
elif [ ! -w "$1" ]; then sudo -n install -d -o "$u" -g "$(id -gn)" -m 0755 "$1"; sudo -n chown -R "$u:$(id -gn)" "$1"
fi
test -w "$1" || { echo "$1 is not writable by $u" >&2; exit 1; }
echo "$u""#;

fn state_dir_for_transport_user(t: &Transport, dir: &str) -> Result<(), Error> {
    let user = t.output(
        &["sh", "-c", STATE_DIR_SCRIPT, "sh", dir],
        transport_waits(t).0,
    )?;
    eprintln!(
        "==> {}: node state {dir}: writable by {}",
        t.node(),
        user.trim()
    );
    Ok(())
}

/// How long one command through the transport may take, and the engine wait in all: a
/// `vagrant ssh` to a TCG-emulated VM on a loaded host takes 15 s or more on its own.
fn transport_waits(t: &Transport) -> (Duration, Duration) {
    let engine_wait = match t {
        Transport::DockerExec { .. } => ENGINE_WAIT,
        Transport::VagrantSsh { .. } => Duration::from_secs(300),
    };
    (t.command_limit(Duration::from_secs(10)), engine_wait)
}

fn wait_for_engine(t: &Transport) -> Result<(), Error> {
    let started = Instant::now();
    let (attempt, engine_wait) = transport_waits(t);
    loop {
        let answer = t.output(
            &["docker", "version", "--format", "{{.Server.Version}}"],
            attempt,
        );
        match answer {
            Ok(v) => {
                eprintln!(
                    "==> {}: engine {} up after {}s",
                    t.node(),
                    v.trim(),
                    time::secs(started.elapsed())
                );
                return Ok(());
            }
            Err(e) if started.elapsed() > engine_wait => {
                return Err(Error::from(stackpilot_core::step::StepError {
                    step: "wait for engine".into(),
                    cmd: format!("{} docker version", t.node()),
                    status: format!(
                        "the node's engine did not answer within {}s: {e}",
                        engine_wait.as_secs()
                    ),
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Writes the identity file unless it already holds exactly `identity`.
pub fn write_identity(t: &Transport, identity: &str) -> Result<Change, Error> {
    let current = t.output(&["cat", IDENTITY_FILE], transport_waits(t).0);
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
        transport_waits(t).0,
    )?;
    Ok(Change::Changed)
}

/// Where VM nodes' image archives are written, relative to the checkout (their /vagrant).
pub const IMAGE_ARCHIVES: &str = "target/lab-images";

/// The archive file of an image: its tag and id, so a stale archive is never reused.
pub fn archive_name(tag: &str, id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    let short = id.get(..12).unwrap_or(id);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{tag}-{short}.tar")
}

/// Loads each `(tag, id)` into the node's engine unless it already has that id: docker
/// nodes through `docker exec -i`; VM nodes from an archive on the 9p /vagrant share with
/// the node-side `lifecycle load-image`, because `vagrant ssh` under TCG moves data at
/// well under 1 MB/s (ssh crypto on an emulated CPU without AES-NI) and 9p at about 13.
pub(crate) fn load_images(
    t: &Transport,
    root: &Path,
    wanted: &[(String, String)],
) -> Result<Change, Error> {
    let mut change = Change::None;
    for (tag, id) in wanted {
        let inside = t
            .output(
                &["docker", "image", "inspect", "--format", "{{.Id}}", tag],
                transport_waits(t).0,
            )
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if &inside == id {
            continue;
        }
        let started = Instant::now();
        eprintln!("==> {}: loading {tag}", t.node());
        match t {
            Transport::DockerExec { .. } => {
                t.pipe_from(
                    Command::new("docker").args(["save", tag]),
                    &["docker", "load", "--quiet"],
                )?;
            }
            Transport::VagrantSsh { .. } => {
                let name = archive_name(tag, id);
                save_archive(&root.join(IMAGE_ARCHIVES), &name, tag)?;
                let on_node = format!("{NODE_REPO}/{IMAGE_ARCHIVES}/{name}");
                let load = lifecycle::cli::Cmd::LoadImage {
                    tag: tag.clone(),
                    file: Some(on_node.into()),
                    expect_id: Some(id.clone()),
                    json: false,
                }
                .call();
                let bin = crate::build::node_binary(load.tool);
                t.output(&load.argv(&bin), ARCHIVE_LOAD_WAIT)?;
            }
        }
        eprintln!(
            "<== {}: loaded {tag} in {}s",
            t.node(),
            time::secs(started.elapsed())
        );
        change = Change::Changed;
    }
    Ok(change)
}

/// How long loading one archive into a VM may take (587 MB at 13 MB/s is 45 s; a loaded
/// host under TCG is several times slower).
const ARCHIVE_LOAD_WAIT: Duration = Duration::from_secs(20 * 60);

/// `docker save` of `tag` into `dir/name`, unless that archive (named by tag and id) is
/// already there; written under a temporary name first so a cut save is never reused.
fn save_archive(dir: &Path, name: &str, tag: &str) -> Result<(), Error> {
    let path = dir.join(name);
    if path.is_file() {
        eprintln!("==> images: {} present", path.display());
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        failed(
            "images",
            &format!("mkdir {}", dir.display()),
            &e.to_string(),
        )
    })?;
    // Archives of other ids are stale: each is hundreds of MB.
    if let Ok(entries) = std::fs::read_dir(dir) {
        let prefix = name.rsplit_once('-').map_or(name, |(p, _)| p);
        for e in entries.filter_map(Result::ok) {
            let n = e.file_name().to_string_lossy().into_owned();
            if n != name && n.starts_with(prefix) && !n.ends_with(".partial") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // One partial file per thread: nodes provisioned in parallel may save the same image.
    let partial = dir.join(format!(
        "{name}.{}-{:?}.partial",
        std::process::id(),
        std::thread::current().id()
    ));
    step(
        &format!("docker save {tag}"),
        Command::new("docker")
            .args(["save", "--output"])
            .arg(&partial)
            .arg(tag),
    )?;
    // `docker save --output` writes mode 0600; the VM reads the file through 9p as QEMU's
    // user (libvirt-qemu), not as the host user that saved it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).map_err(|e| {
        failed(
            "images",
            &format!("chmod 0644 {}", partial.display()),
            &e.to_string(),
        )
    })?;
    std::fs::rename(&partial, &path).map_err(|e| {
        failed(
            "images",
            &format!("mv {} {}", partial.display(), path.display()),
            &e.to_string(),
        )
    })
}

fn engine_health(t: &Transport) -> String {
    match t.output(
        &["docker", "version", "--format", "{{.Server.Version}}"],
        transport_waits(t).0,
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
        let Ok(want) = build::host_id(&entry.tag) else {
            missing.push(name.to_string());
            continue;
        };
        let inside = t
            .output(
                &[
                    "docker", "image", "inspect", "--format", "{{.Id}}", &entry.tag,
                ],
                transport_waits(t).0,
            )
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if inside != want {
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
        return Err(Error::from(stackpilot_core::step::HostError::Prereq {
            what: "vagrant (the lab engine for every provider)".into(),
            install: "apt-get install -y vagrant".into(),
        }));
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
        .map_err(|e| {
            Error::from(stackpilot_core::step::StepError {
                step: "lab marker".into(),
                cmd: "read /dev/urandom".into(),
                status: e.to_string(),
            })
        })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::repo_root;

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
    fn an_image_archive_is_named_by_its_tag_and_id() {
        assert_eq!(
            archive_name(
                "stackpilot/postgres:bookworm-11a1eb772ea7",
                "sha256:702860deb8e4f00d"
            ),
            "stackpilot_postgres_bookworm-11a1eb772ea7-702860deb8e4.tar"
        );
    }

    #[test]
    fn only_nodes_created_under_the_provider_are_handed_to_vagrant() {
        let root = std::env::temp_dir().join(format!("sp-lab-created-{}", std::process::id()));
        let cfg = Config::load_file(&repo_root().join("stackpilot.toml")).expect("config");
        let lab = Lab::new(root.clone(), cfg);
        let machine = transport::machine_dir(&lab.vagrant_dir(), "worker1").join("docker");
        std::fs::create_dir_all(&machine).expect("temp dir");
        std::fs::write(machine.join("id"), "f00d\n").expect("write id");
        assert_eq!(
            lab.created(&[], Provider::Docker).expect("created"),
            ["worker1"]
        );
        assert!(
            lab.created(&[], Provider::Libvirt)
                .expect("created")
                .is_empty()
        );
        assert_eq!(lab.provider().expect("provider"), Provider::Docker);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn vagrantfile_validates() {
        let root = repo_root();
        // Pinned like every lab call: with vagrant-libvirt installed Vagrant's default
        // provider is libvirt, whatever the lab uses. Its machine data in a directory of
        // its own: a lab test running beside it holds this checkout's machines locked
        // ("Vagrant can't use the requested machine because it is locked").
        let dotfile = std::env::temp_dir().join(format!("sp-validate-{}", std::process::id()));
        let out = transport::vagrant_command(&root.join(VAGRANT_DIR), Provider::Docker)
            .env("VAGRANT_DOTFILE_PATH", &dotfile)
            .arg("validate")
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
        let _ = std::fs::remove_dir_all(&dotfile);
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
