//! Named labs: several labs on one host, like kind's named clusters.
//!
//! A lab's node containers, network, engine volumes and docker subnet all derive from one
//! lab name (by default from the checkout's lab id, `LAB=` overrides). The chosen subnet is
//! recorded in the checkout's marker; the host keeps one record per lab (which checkout owns
//! it, which provider) under its state directory, so `lab status` can list every lab and a
//! second VM lab can be refused naming its owner. Pure naming and choice logic lives here;
//! the lab crate gathers the facts (used subnets, records) and acts.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable naming the lab explicitly (`LAB=ci make demo-reviewer`).
pub const LAB_ENV: &str = "LAB";

/// Label every lab container, network and volume carries: `io.stackpilot.lab=<lab name>`.
pub const LAB_LABEL: &str = "io.stackpilot.lab";

/// Label naming the checkout (absolute path) a lab resource belongs to.
pub const CHECKOUT_LABEL: &str = "io.stackpilot.checkout";

/// Label naming the node a container is.
pub const NODE_LABEL: &str = "io.stackpilot.node";

/// Environment variable overriding the host state directory (tests, CI runners).
pub const STATE_ENV: &str = "STACKPILOT_STATE_HOME";

/// Longest lab name: container names `<lab>-<node>-docker` stay well under 63 characters.
const MAX_NAME: usize = 40;

/// Why a lab name, subnet or record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The name is not a valid lab name.
    #[error(
        "{source_of} names lab '{name}'\n  expected: 1-{MAX_NAME} lowercase letters, digits or '-', starting with a letter, e.g. LAB=ci-1"
    )]
    InvalidName {
        /// The name as given.
        name: String,
        /// Where it came from (`$LAB`, the marker).
        source_of: String,
    },
    /// A subnet is not an IPv4 `/24`.
    #[error("subnet '{0}': expected an IPv4 /24 such as 172.30.56.0/24")]
    InvalidSubnet(String),
    /// No free `/24` is left for the lab network.
    #[error(
        "no free /24 for the lab network: every 172.30.x.0/24 overlaps a Docker network on this host\n  list them with: docker network ls; remove labs you no longer need with `cargo xtask lab destroy` in their checkouts"
    )]
    NoFreeSubnet,
    /// A host record cannot be read or written.
    #[error("lab record {path}: {message}")]
    Record {
        /// The record file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Another checkout owns this host's VM lab (192.168.56.x holds one lab).
    #[error(
        "the VM lab '{lab}' of checkout {checkout} ({provider}) already uses 192.168.56.x on this host\n  expected: one VM lab per host; destroy it from its checkout (cd {checkout} && cargo xtask lab destroy) or use the docker provider (STACKPILOT_PROVIDER=docker)"
    )]
    VmLabTaken {
        /// The owning lab's name.
        lab: String,
        /// The owning checkout.
        checkout: String,
        /// Its provider.
        provider: String,
    },
}

impl crate::exit::ExitStatus for LabError {
    fn exit(&self) -> crate::Exit {
        match self {
            LabError::InvalidName { .. } | LabError::InvalidSubnet(_) => crate::Exit::Usage,
            _ => crate::Exit::Failed,
        }
    }
}

/// A validated lab name, from which every host-side resource name derives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabName(String);

impl LabName {
    /// Validates a name; `source_of` says where it came from, for the message.
    pub fn parse(name: &str, source_of: &str) -> Result<LabName, LabError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(LabName(name.to_string()))
        } else {
            Err(LabError::InvalidName {
                name: name.to_string(),
                source_of: source_of.to_string(),
            })
        }
    }

    /// The default name of a checkout's lab: the project's lab name plus the first eight
    /// characters of the checkout's lab id, so two checkouts never collide.
    pub fn from_lab_id(project: &str, lab_id: &str) -> Result<LabName, LabError> {
        let short: String = lab_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .take(8)
            .collect();
        let name = if short.is_empty() {
            project.to_string()
        } else {
            format!("{project}-{short}")
        };
        LabName::parse(&name, "the lab id of .stackpilot-lab")
    }

    /// The lab name: `$LAB` when set and not empty, else the one the checkout recorded,
    /// else the default from its lab id.
    pub fn resolve(
        env: Option<&str>,
        recorded: Option<&str>,
        project: &str,
        lab_id: &str,
    ) -> Result<LabName, LabError> {
        match (env.map(str::trim).filter(|s| !s.is_empty()), recorded) {
            (Some(name), _) => LabName::parse(name, &format!("${LAB_ENV}")),
            (None, Some(name)) => LabName::parse(name, ".stackpilot-lab"),
            (None, None) => LabName::from_lab_id(project, lab_id),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A docker-provider node's container.
    pub fn container(&self, node: &str) -> String {
        format!("{}-{node}", self.0)
    }

    /// The docker provider's lab network.
    pub fn network(&self) -> String {
        format!("{}-lab", self.0)
    }

    /// The named volume holding a docker node's inner engine state.
    pub fn engine_volume(&self, node: &str) -> String {
        format!("{}-{node}-docker", self.0)
    }

    /// `io.stackpilot.lab=<name>`, for `--label` and `--filter label=…`.
    pub fn label(&self) -> String {
        format!("{LAB_LABEL}={}", self.0)
    }
}

impl std::fmt::Display for LabName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IPv4 `/24`: lab networks keep the inventory's host numbers (.10, .11, .12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet([u8; 3]);

impl Subnet {
    /// Parses `a.b.c.0/24`.
    pub fn parse(text: &str) -> Result<Subnet, LabError> {
        let bad = || LabError::InvalidSubnet(text.to_string());
        let (addr, len) = text.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let o = addr.octets();
        if len != "24" || o[3] != 0 {
            return Err(bad());
        }
        Ok(Subnet([o[0], o[1], o[2]]))
    }

    /// The address with host number `host` in this subnet.
    pub fn address(self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.0[0], self.0[1], self.0[2], host)
    }

    /// The first and last address as integers.
    fn range(self) -> (u32, u32) {
        let first = u32::from(self.address(0));
        (first, first + 255)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/24", self.address(0))
    }
}

/// `(first, last)` address of a CIDR such as `172.17.0.0/16`; `None` for IPv6 or garbage.
fn cidr_range(text: &str) -> Option<(u32, u32)> {
    let (addr, len) = text.trim().split_once('/')?;
    let addr = u32::from(addr.parse::<Ipv4Addr>().ok()?);
    let len: u32 = len.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((addr & mask, (addr & mask) | !mask))
}

/// The subnet for a new lab: `preferred` (the inventory's) when it overlaps none of the
/// host's `used` subnets (CIDRs of every Docker network), else the next free `/24` in the
/// preferred one's `/16`, counting up and wrapping.
pub fn choose_subnet(preferred: Subnet, used: &[String]) -> Result<Subnet, LabError> {
    let used: Vec<(u32, u32)> = used.iter().filter_map(|u| cidr_range(u)).collect();
    let free = |s: Subnet| {
        let (a, b) = s.range();
        used.iter().all(|&(c, d)| b < c || d < a)
    };
    let [x, y, z] = preferred.0;
    (0..=255u16)
        .map(|i| Subnet([x, y, ((u16::from(z) + i) % 256) as u8]))
        .find(|s| free(*s))
        .ok_or(LabError::NoFreeSubnet)
}

/// The host's directory for StackPilot state shared by every checkout: `$STACKPILOT_STATE_HOME`,
/// else `$XDG_STATE_HOME/stackpilot`, else `~/.local/state/stackpilot`, else (no home, as for
/// some root services) `/var/lib/stackpilot`.
pub fn host_state_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var(STATE_ENV) {
        return PathBuf::from(d);
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return PathBuf::from(d).join("stackpilot");
    }
    match var("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/stackpilot"),
        None => PathBuf::from("/var/lib/stackpilot"),
    }
}

/// What the host records about one lab (`<state dir>/labs/<name>.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabRecord {
    /// The lab's name.
    pub name: String,
    /// The checkout (absolute path) that owns it.
    pub checkout: String,
    /// The provider its nodes run under.
    pub provider: String,
    /// The docker provider's subnet; none for VM labs (they use 192.168.56.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
}

impl LabRecord {
    /// The record's file for lab `name` under a host state directory.
    pub fn path(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join("labs").join(format!("{name}.toml"))
    }

    /// Whether the lab runs VMs (which share the host-only network 192.168.56.0/24).
    pub fn is_vm(&self) -> bool {
        crate::config::Provider::by_name(&self.provider).is_none_or(|p| p.desc().is_vm)
    }

    /// Writes the record (temporary file, then rename).
    pub fn write(&self, state_dir: &Path) -> Result<(), LabError> {
        let path = LabRecord::path(state_dir, &self.name);
        // A struct of strings always serialises.
        let text = toml::to_string(self).unwrap_or_default();
        crate::files::write_atomically(&path, &text).map_err(|e| LabError::Record {
            path: path.clone(),
            message: e.to_string(),
        })
    }

    /// Removes lab `name`'s record; an absent record is fine.
    pub fn remove(state_dir: &Path, name: &str) -> Result<(), LabError> {
        let path = LabRecord::path(state_dir, name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::Record {
                path,
                message: e.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Every lab recorded on this host, by name; unreadable records are reported, not hidden.
    pub fn list(state_dir: &Path) -> Result<Vec<LabRecord>, LabError> {
        let dir = state_dir.join("labs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(LabError::Record {
                    path: dir,
                    message: e.to_string(),
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| LabError::Record {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let rec: LabRecord = toml::from_str(&text).map_err(|e| LabError::Record {
                path: path.clone(),
                message: e.message().to_string(),
            })?;
            out.push(rec);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Whether `r` is another checkout's VM lab whose checkout is gone: its lab marker no
/// longer exists, so no `lab destroy` can ever run from there and the record would hold
/// 192.168.56.x for good (a deleted clone, a CI workspace removed without a destroy).
pub fn vm_lab_vanished(r: &LabRecord, checkout: &str) -> bool {
    r.is_vm()
        && r.checkout != checkout
        && !Path::new(&r.checkout)
            .join(crate::node::LAB_MARKER)
            .exists()
}

/// A VM lab may be created only when no other checkout's VM lab holds 192.168.56.x.
pub fn check_vm_lab_free(records: &[LabRecord], checkout: &str) -> Result<(), LabError> {
    match records.iter().find(|r| r.is_vm() && r.checkout != checkout) {
        Some(r) => Err(LabError::VmLabTaken {
            lab: r.name.clone(),
            checkout: r.checkout.clone(),
            provider: r.provider.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_every_resource() {
        let lab = LabName::parse("ci-1", "$LAB").expect("valid");
        assert_eq!(lab.container("control"), "ci-1-control");
        assert_eq!(lab.network(), "ci-1-lab");
        assert_eq!(lab.engine_volume("worker2"), "ci-1-worker2-docker");
        assert_eq!(lab.label(), "io.stackpilot.lab=ci-1");
    }

    #[test]
    fn invalid_names_are_usage_errors() {
        for bad in ["", "Ci", "1lab", "a_b", "lab-", &"a".repeat(41)] {
            let err = LabName::parse(bad, "$LAB").expect_err(bad);
            assert_eq!(crate::exit::ExitStatus::exit(&err), crate::Exit::Usage);
            assert!(err.to_string().contains("$LAB"), "{err}");
        }
    }

    #[test]
    fn default_name_comes_from_the_lab_id() {
        let lab = LabName::from_lab_id("stackpilot", "9F3c01aa77").expect("valid");
        assert_eq!(lab.as_str(), "stackpilot-9f3c01aa");
    }

    #[test]
    fn env_beats_the_record_which_beats_the_lab_id() {
        let r = |env, rec| {
            LabName::resolve(env, rec, "stackpilot", "abcdef0123")
                .expect("valid")
                .to_string()
        };
        assert_eq!(r(Some("mine"), Some("old")), "mine");
        assert_eq!(r(Some(" "), Some("old")), "old");
        assert_eq!(r(None, None), "stackpilot-abcdef01");
    }

    #[test]
    fn subnets_keep_host_numbers() {
        let s = Subnet::parse("172.30.57.0/24").expect("valid");
        assert_eq!(s.address(11), Ipv4Addr::new(172, 30, 57, 11));
        assert_eq!(s.to_string(), "172.30.57.0/24");
        for bad in ["172.30.57.0/16", "172.30.57.1/24", "fe80::/64", "x"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_preferred_subnet_is_kept_when_free() {
        let pref = Subnet::parse("172.30.56.0/24").expect("valid");
        let used = ["172.17.0.0/16".to_string(), "fd00::/64".to_string()];
        assert_eq!(choose_subnet(pref, &used).expect("free"), pref);
    }

    #[test]
    fn a_taken_subnet_moves_to_the_next_free_one() {
        let pref = Subnet::parse("172.30.56.0/24").expect("valid");
        let used = ["172.30.56.0/24".to_string(), "172.30.57.128/25".to_string()];
        assert_eq!(
            choose_subnet(pref, &used).expect("free").to_string(),
            "172.30.58.0/24"
        );
        let all = ["172.30.0.0/16".to_string()];
        assert!(matches!(
            choose_subnet(pref, &all),
            Err(LabError::NoFreeSubnet)
        ));
    }

    #[test]
    fn a_vm_lab_whose_checkout_lost_its_marker_has_vanished() {
        let dir = std::env::temp_dir().join(format!("sp-vanished-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp checkout");
        let rec = |checkout: &Path, provider: &str| LabRecord {
            name: "a".into(),
            checkout: checkout.display().to_string(),
            provider: provider.into(),
            subnet: None,
        };
        let gone = dir.join("deleted-clone");
        assert!(vm_lab_vanished(&rec(&gone, "libvirt"), "/src/b"));
        assert!(
            vm_lab_vanished(&rec(&dir, "libvirt"), "/src/b"),
            "no marker"
        );
        std::fs::write(dir.join(crate::node::LAB_MARKER), "").expect("marker");
        assert!(!vm_lab_vanished(&rec(&dir, "libvirt"), "/src/b"), "marker");
        assert!(
            !vm_lab_vanished(&rec(&gone, "docker"), "/src/b"),
            "not a VM lab"
        );
        let own = gone.display().to_string();
        assert!(!vm_lab_vanished(&rec(&gone, "libvirt"), &own), "its own");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_vm_lab_names_the_owner() {
        let rec = |name: &str, checkout: &str, provider: &str| LabRecord {
            name: name.into(),
            checkout: checkout.into(),
            provider: provider.into(),
            subnet: None,
        };
        let records = [rec("a", "/src/a", "docker"), rec("b", "/src/b", "libvirt")];
        assert!(check_vm_lab_free(&records, "/src/b").is_ok(), "its own");
        let err = check_vm_lab_free(&records, "/src/c").expect_err("taken");
        assert!(err.to_string().contains("/src/b"), "{err}");
        assert!(check_vm_lab_free(&records[..1], "/src/c").is_ok());
    }

    #[test]
    fn records_round_trip_on_disk() {
        let dir = std::env::temp_dir().join(format!("sp-labs-{}", std::process::id()));
        let rec = LabRecord {
            name: "ci-1".into(),
            checkout: "/src/a".into(),
            provider: "docker".into(),
            subnet: Some("172.30.57.0/24".into()),
        };
        rec.write(&dir).expect("write");
        assert_eq!(LabRecord::list(&dir).expect("list"), [rec]);
        LabRecord::remove(&dir, "ci-1").expect("remove");
        LabRecord::remove(&dir, "ci-1").expect("absent is fine");
        assert!(LabRecord::list(&dir).expect("list").is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
