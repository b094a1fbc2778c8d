//! ctx-guard against the real kernel: each test builds a small root filesystem, enters a
//! private mount namespace (`unshare`), mounts (or copies) a temporary copy of the repo at
//! `/vagrant` as the scenario needs, chroots into it and runs the real binary.
//! Nothing outside the test's temp dir is touched: the mounts die with the namespace.
//! Needs root and `unshare` (mount namespaces): without them each test prints
//! `SKIP(unshare): <why>` and returns, and fails under `CI=true`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use ctx_guard::standin::StandIn;
use stackpilot_core::capability::{self, Capability};
use stackpilot_core::node::{Identity, LAB_MARKER, LabMarker};

const REPO_ENTRIES: &[&str] = &[
    "stackpilot.toml",
    "Cargo.toml",
    "Makefile",
    "infra/docker-compose.yml",
    "vagrant/Vagrantfile",
    "crates/ctx-guard/Cargo.toml",
];

struct Lab {
    tmp: tempfile::TempDir,
    node: StandIn,
}

/// Returns None (after saying why) when the test cannot run here.
fn lab() -> Option<Lab> {
    if !capability::require(&[Capability::Unshare]) {
        return None;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let dirs = ["etc/stackpilot", "home/vagrant", "tmp", "opt", "srv"];
    let node = StandIn::new(tmp.path().join("root"), &dirs).expect("stand-in root");
    fs::copy(
        env!("CARGO_BIN_EXE_ctx-guard"),
        node.root.join("opt/ctx-guard"),
    )
    .expect("copy binary");
    let lab = Lab { tmp, node };
    make_repo_copy(&lab.repo(), "lab-1");
    lab.write_identity("stackpilot", "lab-1");
    Some(lab)
}

fn make_repo_copy(dest: &Path, lab_id: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for e in REPO_ENTRIES {
        let to = dest.join(e);
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        // Entries another issue has not written yet are stood in for by an empty file:
        // the guard looks at the mount and the entries' presence, not their content.
        if fs::copy(src.join(e), &to).is_err() {
            fs::write(&to, "").expect("write entry");
        }
    }
    let marker = LabMarker {
        lab: "stackpilot".into(),
        lab_id: lab_id.into(),
        ..Default::default()
    };
    fs::write(dest.join(LAB_MARKER), marker.to_toml()).expect("marker");
}

impl Lab {
    fn root(&self) -> PathBuf {
        self.node.root.clone()
    }

    /// The "host checkout" the lab was created from, outside the new root.
    fn repo(&self) -> PathBuf {
        self.tmp.path().join("src/repo")
    }

    fn write_identity(&self, lab: &str, lab_id: &str) {
        self.node
            .write_docker_identity("control", (lab, lab_id), &self.repo())
            .expect("identity");
    }

    /// The identity a VM node of `provider` gets from provisioning (no repo source).
    fn write_vm_identity(&self, provider: &str) {
        let id = Identity {
            node: "control".into(),
            lab: "stackpilot".into(),
            lab_id: "lab-1".into(),
            provider: provider.into(),
            repo_source: None,
        };
        self.node.write_identity(&id).expect("identity");
    }

    fn bind_at_vagrant(&mut self, src: &Path) {
        self.node.bind_at_vagrant(src).expect("mkdir");
    }

    /// Runs `ctx-guard --explain` chrooted, from `cwd` (inside the new root).
    fn run(&self, cwd: &str) -> Output {
        let out = self
            .node
            .command(&format!(
                "cd {cwd} && exec /opt/ctx-guard --explain --instead \"make demo\""
            ))
            .output()
            .expect("unshare runs");
        // Shown by the test runner when a test fails, and with --nocapture.
        eprintln!("--- ctx-guard from {cwd}:\n{}", text(&out));
        out
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts exit 3, the refusal's parts, and that `rule` is among the refused rules; the
/// refusal as users read it (from `ctx-guard: refused:` on; the `--explain` facts above it
/// are this machine's mounts) is pinned by a snapshot named after the test, with the
/// test's temporary directory and the host's filesystem type redacted.
fn assert_refused(lab: &Lab, o: &Output, rule: &str, found: &str) {
    let t = text(o);
    let test = std::thread::current()
        .name()
        .unwrap_or("refusal")
        .rsplit("::")
        .next()
        .unwrap_or("refusal")
        .to_string();
    let tmp = lab.tmp.path().display().to_string();
    let refusal = t
        .find("ctx-guard: refused:")
        .map(|at| t[at..].replace(&tmp, "[tmp]"))
        .unwrap_or_else(|| panic!("no refusal message:\n{t}"));
    let host_fs = vec![(r"a \S+ mount of \[tmp\]", "a [fs] mount of [tmp]")];
    insta::with_settings!({filters => host_fs}, {
        insta::assert_snapshot!(test, refusal);
    });
    assert_eq!(o.status.code(), Some(3), "expected exit 3:\n{t}");
    for part in ["refused:", "expected:", "found:", "instead:", "make demo"] {
        assert!(t.contains(part), "missing '{part}':\n{t}");
    }
    let refused_line = t
        .lines()
        .find(|l| l.starts_with(rule) && l.contains("REFUSE"))
        .unwrap_or_else(|| panic!("rule {rule} not refused:\n{t}"));
    assert!(
        refused_line.contains(found),
        "rule {rule} should mention '{found}':\n{t}"
    );
}

#[test]
fn whole_repo_bind_mounted_at_vagrant_is_allowed() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    let o = lab.run("/vagrant");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("REFUSE"), "{}", text(&o));
}

#[test]
fn without_node_identity_it_is_not_a_lab_node() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    fs::remove_file(lab.root().join("etc/stackpilot/node-identity.toml")).expect("rm");
    assert_refused(
        &lab,
        &lab.run("/vagrant"),
        "node-identity",
        "not a lab node",
    );
}

#[test]
fn identity_of_another_lab_is_refused() {
    let Some(mut lab) = lab() else { return };
    lab.write_identity("someone-elses-lab", "lab-1");
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    assert_refused(&lab, &lab.run("/vagrant"), "same-lab", "someone-elses-lab");
}

#[test]
fn home_directory_is_refused() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    assert_refused(&lab, &lab.run("/home/vagrant"), "cwd", "/home/vagrant");
}

#[test]
fn copy_of_the_repo_elsewhere_is_refused() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    make_repo_copy(&lab.root().join("srv/copy"), "lab-1");
    assert_refused(&lab, &lab.run("/srv/copy"), "cwd", "a copy of the repo");
}

#[test]
fn any_other_directory_is_refused() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    assert_refused(&lab, &lab.run("/tmp"), "cwd", "/tmp");
}

#[test]
fn subdirectory_of_vagrant_is_refused() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    assert_refused(
        &lab,
        &lab.run("/vagrant/infra"),
        "cwd",
        "subdirectory of /vagrant",
    );
}

#[test]
fn copied_folder_at_vagrant_is_not_a_mount() {
    let Some(lab) = lab() else { return };
    make_repo_copy(&lab.root().join("vagrant"), "lab-1");
    assert_refused(
        &lab,
        &lab.run("/vagrant"),
        "vagrant-mounted",
        "not a mount point",
    );
}

#[test]
fn symlinked_vagrant_is_refused() {
    let Some(mut lab) = lab() else { return };
    fs::create_dir_all(lab.root().join("srv/repo")).expect("mkdir");
    let repo = lab.repo();
    lab.node.mounts.push(format!(
        "mount --bind \"{}\" \"$R/srv/repo\"",
        repo.display()
    ));
    symlink("/srv/repo", lab.root().join("vagrant")).expect("symlink");
    assert_refused(&lab, &lab.run("/vagrant"), "vagrant-not-symlink", "symlink");
}

#[test]
fn mounting_a_repo_subdirectory_is_a_partial_mount() {
    let Some(mut lab) = lab() else { return };
    let infra = lab.repo().join("infra");
    lab.bind_at_vagrant(&infra);
    assert_refused(&lab, &lab.run("/vagrant"), "mount-source", "partial mount");
}

#[test]
fn repo_missing_required_entries_is_a_partial_mount() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    fs::remove_file(repo.join("vagrant/Vagrantfile")).expect("rm");
    lab.bind_at_vagrant(&repo);
    assert_refused(
        &lab,
        &lab.run("/vagrant"),
        "repo-complete",
        "vagrant/Vagrantfile",
    );
}

#[test]
fn bind_mounted_copy_of_the_repo_is_refused() {
    let Some(mut lab) = lab() else { return };
    let copy = lab.tmp.path().join("src/copy");
    make_repo_copy(&copy, "lab-1");
    lab.bind_at_vagrant(&copy);
    assert_refused(&lab, &lab.run("/vagrant"), "mount-source", "not the repo");
}

#[test]
fn another_checkout_at_vagrant_is_refused_by_lab_id() {
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    make_repo_copy(&repo, "lab-from-another-checkout");
    lab.bind_at_vagrant(&repo);
    assert_refused(
        &lab,
        &lab.run("/vagrant"),
        "same-lab",
        "lab-from-another-checkout",
    );
}

#[test]
fn copy_bind_mounted_over_the_repo_mount_is_refused() {
    // Judged by the topmost mount at /vagrant, not by the repo bind underneath.
    let Some(mut lab) = lab() else { return };
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    let copy = lab.tmp.path().join("src/copy");
    make_repo_copy(&copy, "lab-1");
    lab.bind_at_vagrant(&copy);
    assert_refused(&lab, &lab.run("/vagrant"), "mount-source", "not the repo");
}

#[test]
fn vm_node_refuses_a_bind_mount_that_is_not_its_synced_folder() {
    // A libvirt node syncs /vagrant by 9p; a bind of a local directory (here even the
    // repo itself) is not the host's folder.
    let Some(mut lab) = lab() else { return };
    lab.write_vm_identity("libvirt");
    let repo = lab.repo();
    lab.bind_at_vagrant(&repo);
    assert_refused(
        &lab,
        &lab.run("/vagrant"),
        "mount-source",
        "not the synced repo",
    );
}
