//! `ctx-guard`: decides, from observed facts, whether a node-side step may run.
//!
//! A node-side step may run only inside a lab node, from `/vagrant`, where `/vagrant` is a
//! real mount of the whole repo checkout the lab was created from. [`decide`] is a pure
//! function over [`Facts`]; [`probe`] gathers the facts from the running system. Node-side
//! binaries hand their work to [`node_main`], which decides first and gives the work the
//! [`Allowed`] token that every node-side library step requires: no other code can make one.
//! It never changes anything.

pub mod cli;
pub mod standin;

use std::path::{Path, PathBuf};

use serde::Serialize;
use stackpilot_core::mountinfo::{self, Mount};
use stackpilot_core::node::{
    FileError, IDENTITY_FILE, Identity, LAB_MARKER, LabMarker, NODE_REPO, vm_shared_folder_types,
};
use stackpilot_core::{Exit, exit::ExitStatus};

/// Entries a complete checkout has at its root; a partial mount lacks some.
pub const REQUIRED_ENTRIES: &[&str] = &[
    LAB_MARKER,
    "stackpilot.toml",
    "Cargo.toml",
    "Makefile",
    "infra/docker-compose.yml",
    "vagrant/Vagrantfile",
    "crates",
];

/// Everything ctx-guard looks at, gathered by [`probe`] or written by a test.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// The working directory with symlinks resolved, or why it could not be read.
    pub cwd: Result<PathBuf, String>,
    /// Whether `/vagrant` itself is a symlink (`None` when it does not exist).
    pub vagrant_is_symlink: Option<bool>,
    /// The text of `/proc/self/mountinfo`.
    #[serde(skip)]
    pub mountinfo: String,
    /// The node identity file, parsed, or why not.
    pub identity: Result<Identity, String>,
    /// The repo's lab marker under `/vagrant`, parsed, or why not.
    pub marker: Result<LabMarker, String>,
    /// Required entries missing under `/vagrant`.
    pub missing_entries: Vec<String>,
}

/// The verdict of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Short rule id, e.g. `cwd`.
    pub id: &'static str,
    /// Whether the rule passed.
    pub pass: bool,
    /// What the rule expects.
    pub expected: String,
    /// What was observed.
    pub found: String,
}

/// All rule verdicts, in order; allowed only when every rule passed.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Each rule's verdict.
    pub rules: Vec<Rule>,
}

impl Decision {
    /// True when every rule passed.
    pub fn allowed(&self) -> bool {
        self.rules.iter().all(|r| r.pass)
    }

    /// The first rule that failed.
    pub fn first_refusal(&self) -> Option<&Rule> {
        self.rules.iter().find(|r| !r.pass)
    }
}

/// Proof that ctx-guard allowed this process to run a node-side step.
/// Only the guard inside [`node_main`] makes one (the field is private); tests of node-side
/// libraries get one from `Allowed::for_tests`, behind the `test-token` feature.
#[derive(Debug)]
pub struct Allowed {
    identity: Identity,
}

impl Allowed {
    /// The identity of the node the step runs on.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A token for tests of node-side libraries, which run on a test host rather than in
    /// a lab node. Only with the `test-token` feature, which only dev-dependencies enable.
    #[cfg(feature = "test-token")]
    pub fn for_tests(identity: Identity) -> Allowed {
        Allowed { identity }
    }
}

/// Why a node-side step was refused.
#[derive(Debug, thiserror::Error)]
#[error("refused: {reason}\n  expected: {expected}\n  found:    {found}\n  instead:  {instead}")]
pub struct Refused {
    /// The rule that refused.
    pub rule: &'static str,
    /// One-line reason.
    pub reason: String,
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub found: String,
    /// What to run instead.
    pub instead: String,
}

impl ExitStatus for Refused {
    fn exit(&self) -> Exit {
        Exit::ContextRefused
    }
}

fn rule(
    id: &'static str,
    pass: bool,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Rule {
    Rule {
        id,
        pass,
        expected: expected.into(),
        found: found.into(),
    }
}

/// Applies every rule to the facts. Pure: no I/O.
pub fn decide(facts: &Facts) -> Decision {
    let vagrant = Path::new(NODE_REPO);
    let mounts = mountinfo::parse(&facts.mountinfo);
    let mount = mountinfo::mount_at(&mounts, vagrant);
    let mut rules = Vec::new();

    rules.push(match &facts.identity {
        Ok(id) => rule(
            "node-identity",
            true,
            format!("a node identity file at {IDENTITY_FILE}"),
            format!("node '{}' of lab '{}' ({})", id.node, id.lab, id.provider),
        ),
        Err(e) => rule(
            "node-identity",
            false,
            format!(
                "to run inside a lab node (identity file {IDENTITY_FILE} written by provisioning)"
            ),
            format!("not a lab node: {e}"),
        ),
    });

    rules.push(match &facts.cwd {
        Ok(cwd) if cwd == vagrant => rule("cwd", true, "working directory /vagrant", "/vagrant"),
        Ok(cwd) => {
            let what = if cwd.starts_with("/home/vagrant") {
                " (the vagrant user's home, not the repo mount)"
            } else if cwd.starts_with(vagrant) {
                " (a subdirectory of /vagrant)"
            } else if cwd.join("stackpilot.toml").exists() {
                " (a copy of the repo)"
            } else {
                ""
            };
            rule(
                "cwd",
                false,
                "working directory /vagrant (symlinks resolved)",
                format!("{}{what}", cwd.display()),
            )
        }
        Err(e) => rule(
            "cwd",
            false,
            "working directory /vagrant",
            format!("unreadable: {e}"),
        ),
    });

    rules.push(match facts.vagrant_is_symlink {
        Some(false) => rule(
            "vagrant-not-symlink",
            true,
            "/vagrant is a directory",
            "a directory",
        ),
        Some(true) => rule(
            "vagrant-not-symlink",
            false,
            "/vagrant is the mount itself, not a symlink",
            "/vagrant is a symlink",
        ),
        None => rule(
            "vagrant-not-symlink",
            false,
            "/vagrant exists",
            "/vagrant does not exist",
        ),
    });

    rules.push(match mount {
        Some(m) => rule(
            "vagrant-mounted",
            true,
            "/vagrant is a mount point",
            format!("{} mount of {}", m.fstype, m.source),
        ),
        None => rule(
            "vagrant-mounted",
            false,
            "/vagrant is a mount point (the synced or bind-mounted repo)",
            "/vagrant is not a mount point (a copied folder placed there)",
        ),
    });

    rules.push(mount_source_rule(
        &mounts,
        mount,
        facts.identity.as_ref().ok(),
    ));

    rules.push(if facts.missing_entries.is_empty() {
        rule(
            "repo-complete",
            true,
            format!(
                "/vagrant holds the whole repo ({})",
                REQUIRED_ENTRIES.join(", ")
            ),
            "all present",
        )
    } else {
        rule(
            "repo-complete",
            false,
            format!(
                "/vagrant holds the whole repo ({})",
                REQUIRED_ENTRIES.join(", ")
            ),
            format!(
                "partial mount: missing {}",
                facts.missing_entries.join(", ")
            ),
        )
    });

    rules.push(match (&facts.identity, &facts.marker) {
        (Ok(id), Ok(marker)) if id.lab != marker.lab => rule(
            "same-lab",
            false,
            format!("the repo's lab '{}'", marker.lab),
            format!("this node belongs to lab '{}'", id.lab),
        ),
        (Ok(id), Ok(marker)) if id.lab_id != marker.lab_id => rule(
            "same-lab",
            false,
            format!(
                "the checkout the lab was created from (lab id {})",
                id.lab_id
            ),
            format!(
                "a different checkout at /vagrant (lab id {})",
                marker.lab_id
            ),
        ),
        (Ok(id), Ok(_)) => rule(
            "same-lab",
            true,
            "the checkout the lab was created from",
            format!("lab '{}' id {}", id.lab, id.lab_id),
        ),
        (_, Err(e)) => rule(
            "same-lab",
            false,
            "the repo's lab marker under /vagrant",
            e.clone(),
        ),
        (Err(_), _) => rule(
            "same-lab",
            false,
            "a node identity to compare with",
            "no node identity",
        ),
    });

    Decision { rules }
}

fn mount_source_rule(mounts: &[Mount], mount: Option<&Mount>, identity: Option<&Identity>) -> Rule {
    let expected = "the whole repo checkout the lab was created from";
    let Some(m) = mount else {
        return rule("mount-source", false, expected, "no mount at /vagrant");
    };
    let Some(id) = identity else {
        return rule(
            "mount-source",
            false,
            expected,
            format!(
                "a {} mount of {} and no node identity saying which provider's mount to expect",
                m.fstype,
                m.root.display()
            ),
        );
    };
    // The provider recorded at provisioning decides what /vagrant may be: a filesystem type
    // alone proves nothing (a docker node's own root is fuse-overlayfs on some hosts).
    match vm_shared_folder_types(&id.provider) {
        Some(types) => vm_shared_folder_rule(m, &id.provider, types),
        None => bind_of_repo_rule(mounts, m, id),
    }
}

/// A VM node: `/vagrant` is the root of the provider's synced folder, nothing stacked on it.
fn vm_shared_folder_rule(m: &Mount, provider: &str, types: &[&str]) -> Rule {
    let expected = format!(
        "the {provider} synced folder ({}) of the whole repo",
        types.join(" or ")
    );
    if !types.contains(&m.fstype.as_str()) {
        return rule(
            "mount-source",
            false,
            expected,
            format!(
                "a {} mount of {} (a copy or another directory, not the synced repo)",
                m.fstype,
                m.root.display()
            ),
        );
    }
    if m.root != Path::new("/") {
        return rule(
            "mount-source",
            false,
            expected,
            format!(
                "partial mount: {} of the synced folder, not its root",
                m.root.display()
            ),
        );
    }
    rule(
        "mount-source",
        true,
        expected,
        format!("VM shared folder ({}, {})", m.fstype, m.source),
    )
}

/// A docker node: `/vagrant` is a bind of exactly the recorded repo directory, from a
/// filesystem other than the node's own root (a same-named copy inside the node is not it).
fn bind_of_repo_rule(mounts: &[Mount], m: &Mount, id: &Identity) -> Rule {
    let expected = "the whole repo checkout the lab was created from";
    let Some(src) = id.repo_source.as_deref() else {
        return rule(
            "mount-source",
            false,
            expected,
            format!(
                "a {} mount of {} and no repo source recorded in the node identity to compare with",
                m.fstype,
                m.root.display()
            ),
        );
    };
    let src = Path::new(src);
    let node_root = mountinfo::mount_at(mounts, Path::new("/"));
    if node_root.is_some_and(|r| r.device == m.device) {
        return rule(
            "mount-source",
            false,
            format!(
                "a bind mount of the repo root {} from the host",
                src.display()
            ),
            format!(
                "a {} mount of {} from the node's own filesystem (a copy inside the node)",
                m.fstype,
                m.root.display()
            ),
        );
    }
    if m.root == src {
        rule(
            "mount-source",
            true,
            expected,
            format!("bind mount of {}", m.root.display()),
        )
    } else if m.root.starts_with(src) {
        rule(
            "mount-source",
            false,
            format!("a bind mount of the repo root {}", src.display()),
            format!(
                "partial mount: a subdirectory of the repo ({})",
                m.root.display()
            ),
        )
    } else {
        rule(
            "mount-source",
            false,
            format!("a bind mount of the repo root {}", src.display()),
            format!(
                "a {} mount of {} (a copy or another directory, not the repo)",
                m.fstype,
                m.root.display()
            ),
        )
    }
}

/// Reads the facts from the running system: cwd, `/proc/self/mountinfo`, the identity file,
/// and the marker and required entries under `/vagrant`.
pub fn probe() -> Facts {
    let vagrant = Path::new(NODE_REPO);
    let cwd = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .map_err(|e| e.to_string());
    let vagrant_is_symlink = std::fs::symlink_metadata(vagrant)
        .ok()
        .map(|m| m.file_type().is_symlink());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let identity = Identity::read(Path::new(IDENTITY_FILE)).map_err(|e| describe(&e));
    let marker = LabMarker::read(&vagrant.join(LAB_MARKER)).map_err(|e| describe(&e));
    let missing_entries = REQUIRED_ENTRIES
        .iter()
        .filter(|e| std::fs::symlink_metadata(vagrant.join(e)).is_err())
        .map(|e| e.to_string())
        .collect();
    Facts {
        cwd,
        vagrant_is_symlink,
        mountinfo,
        identity,
        marker,
        missing_entries,
    }
}

fn describe(e: &FileError) -> String {
    e.to_string()
}

/// The node's identity when the decision allows the step, else the refusal to print.
/// `instead` names the host command that does the step right (e.g. `make up`). It gives no
/// [`Allowed`] token: only [`node_main`] does.
pub fn judge(decision: &Decision, facts: &Facts, instead: &str) -> Result<Identity, Refused> {
    match (decision.first_refusal(), &facts.identity) {
        (None, Ok(identity)) => Ok(identity.clone()),
        (Some(r), _) => Err(Refused {
            rule: r.id,
            reason: reason(r.id).to_string(),
            expected: r.expected.clone(),
            found: r.found.clone(),
            instead: format!(
                "run `{instead}` on the host; it runs this step inside the node from /vagrant"
            ),
        }),
        (None, Err(e)) => Err(Refused {
            rule: "node-identity",
            reason: reason("node-identity").to_string(),
            expected: "a node identity".into(),
            found: e.clone(),
            instead: format!("run `{instead}` on the host"),
        }),
    }
}

fn reason(id: &str) -> &'static str {
    match id {
        "node-identity" => "not inside a lab node",
        "cwd" => "not running from /vagrant",
        "vagrant-not-symlink" => "/vagrant is a symlink, not the repo mount",
        "vagrant-mounted" => "/vagrant is not a mount point",
        "mount-source" => "/vagrant is not a mount of the whole repo",
        "repo-complete" => "/vagrant is a partial repo",
        "same-lab" => "/vagrant is not the checkout this lab was created from",
        _ => "execution context refused",
    }
}

/// Probes the system and decides. Private: [`node_main`] is the one way in.
fn guard(instead: &str) -> Result<Allowed, Refused> {
    let facts = probe();
    let decision = decide(&facts);
    judge(&decision, &facts, instead).map(|identity| Allowed { identity })
}

/// The body of every node-side binary's entry point: decide first, then run the step with
/// the [`Allowed`] token, and turn the outcome into the process exit code.
///
/// A refusal prints `<tool>: refused: …` and exits 3 before `run` is called; an error of
/// `run` prints `<tool>: error: …` and exits with the error's code.
pub fn node_main<E>(
    tool: &str,
    instead: &str,
    run: impl FnOnce(&Allowed) -> Result<(), E>,
) -> std::process::ExitCode
where
    E: std::fmt::Display + ExitStatus,
{
    let allowed = match guard(instead) {
        Ok(a) => a,
        Err(refused) => {
            eprintln!("{tool}: {refused}");
            return refused.exit().into();
        }
    };
    match run(&allowed) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("{tool}: error: {e}");
            e.exit().into()
        }
    }
}

#[cfg(test)]
mod tests;
