use super::*;

fn identity(repo_source: Option<&str>) -> Identity {
    Identity {
        node: "control".into(),
        lab: "stackpilot".into(),
        lab_id: "lab-1".into(),
        provider: "docker".into(),
        repo_source: repo_source.map(str::to_string),
    }
}

/// The identity of a VM node of `provider` (no repo source: nothing is bind-mounted).
fn vm_identity(provider: &str) -> Identity {
    Identity {
        provider: provider.into(),
        ..identity(None)
    }
}

/// The facts of a VM node of `provider` on the given mountinfo sample.
fn vm_facts(provider: &str, mountinfo: &str) -> Facts {
    Facts {
        identity: Ok(vm_identity(provider)),
        ..facts(mountinfo)
    }
}

fn marker() -> LabMarker {
    LabMarker {
        lab: "stackpilot".into(),
        lab_id: "lab-1".into(),
        ..Default::default()
    }
}

/// A good context on the given mountinfo sample; tests change one fact at a time.
fn facts(mountinfo: &str) -> Facts {
    Facts {
        cwd: Ok(PathBuf::from("/vagrant")),
        vagrant_is_symlink: Some(false),
        mountinfo: mountinfo.to_string(),
        identity: Ok(identity(Some("/work/main"))),
        marker: Ok(marker()),
        missing_entries: vec![],
    }
}

fn refused_by(f: &Facts) -> Option<&'static str> {
    decide(f).first_refusal().map(|r| r.id)
}

#[test]
fn vm_shared_folders_of_the_nodes_provider_are_accepted() {
    for (provider, sample) in [
        ("virtualbox", include_str!("mountinfo/vboxsf.txt")),
        ("libvirt", include_str!("mountinfo/9p.txt")),
        ("libvirt", include_str!("mountinfo/virtiofs.txt")),
    ] {
        let f = vm_facts(provider, sample);
        assert_eq!(refused_by(&f), None, "{provider}: {:?}", decide(&f));
    }
}

#[test]
fn another_providers_shared_folder_is_refused() {
    for (provider, sample) in [
        ("virtualbox", include_str!("mountinfo/9p.txt")),
        ("libvirt", include_str!("mountinfo/vboxsf.txt")),
        // The libvirt lab syncs by 9p: an NFS /vagrant is not what the lab set up.
        ("libvirt", include_str!("mountinfo/nfs.txt")),
        ("virtualbox", include_str!("mountinfo/fuse.txt")),
    ] {
        let f = vm_facts(provider, sample);
        assert_eq!(refused_by(&f), Some("mount-source"), "{provider}");
    }
}

#[test]
fn a_shared_folder_type_on_a_docker_node_is_refused() {
    for sample in [
        include_str!("mountinfo/9p.txt"),
        include_str!("mountinfo/vboxsf.txt"),
        include_str!("mountinfo/fuse.txt"),
    ] {
        assert_eq!(refused_by(&facts(sample)), Some("mount-source"));
    }
}

#[test]
fn copy_bind_mounted_over_a_vm_shared_folder_is_refused() {
    let d = decide(&vm_facts("libvirt", include_str!("mountinfo/9p-copy.txt")));
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "mount-source");
    assert!(r.found.contains("/home/vagrant/copy"), "{}", r.found);
}

#[test]
fn docker_node_on_fuse_overlayfs_accepts_the_bind_of_the_repo() {
    let f = facts(include_str!("mountinfo/docker-fuse-overlayfs-bind.txt"));
    assert_eq!(refused_by(&f), None, "{:?}", decide(&f));
}

#[test]
fn docker_node_on_fuse_overlayfs_refuses_a_copy_bind_mounted_over_vagrant() {
    // Recorded in a container of a fuse-overlayfs engine: the copy's mount is listed last
    // but has the lower id, and its type is the node root's own fuse.fuse-overlayfs.
    let d = decide(&facts(include_str!(
        "mountinfo/docker-fuse-overlayfs-copy.txt"
    )));
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "mount-source");
    assert!(r.found.contains("/tmp/copy"), "{}", r.found);
    assert!(!r.found.contains("VM shared folder"), "{}", r.found);
}

#[test]
fn copy_at_the_repo_path_inside_a_docker_node_is_refused() {
    let mut f = facts(include_str!("mountinfo/docker-fuse-overlayfs-copy.txt"));
    f.identity = Ok(identity(Some("/tmp/copy")));
    let d = decide(&f);
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "mount-source");
    assert!(r.found.contains("node's own filesystem"), "{}", r.found);
}

#[test]
fn vm_node_without_identity_cannot_judge_its_mount() {
    let mut f = facts(include_str!("mountinfo/9p.txt"));
    f.identity = Err("missing".into());
    let d = decide(&f);
    let r = d
        .rules
        .iter()
        .find(|r| r.id == "mount-source")
        .expect("rule");
    assert!(!r.pass);
}

#[test]
fn docker_provider_bind_of_the_repo_is_accepted() {
    assert_eq!(
        refused_by(&facts(include_str!("mountinfo/docker-bind.txt"))),
        None
    );
}

#[test]
fn bind_of_a_repo_subdirectory_is_a_partial_mount() {
    let f = facts(include_str!("mountinfo/bind-subdir.txt"));
    let d = decide(&f);
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "mount-source");
    assert!(r.found.contains("partial mount"), "{}", r.found);
}

#[test]
fn bind_of_a_copy_is_refused() {
    let d = decide(&facts(include_str!("mountinfo/bind-copy.txt")));
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "mount-source");
    assert!(r.found.contains("/tmp/stackpilot-copy"), "{}", r.found);
}

#[test]
fn overlay_at_vagrant_is_not_the_repo() {
    assert_eq!(
        refused_by(&facts(include_str!("mountinfo/overlay.txt"))),
        Some("mount-source")
    );
}

#[test]
fn no_mount_at_vagrant_is_a_copied_folder() {
    let d = decide(&facts(include_str!("mountinfo/no-mount.txt")));
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "vagrant-mounted");
    assert!(r.found.contains("copied folder"), "{}", r.found);
}

#[test]
fn bind_mount_without_recorded_source_is_refused() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.identity = Ok(identity(None));
    assert_eq!(refused_by(&f), Some("mount-source"));
}

#[test]
fn missing_identity_means_not_a_lab_node() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.identity = Err("/etc/stackpilot/node-identity.toml does not exist".into());
    assert_eq!(refused_by(&f), Some("node-identity"));
    let refusal = judge(&decide(&f), &f, "make up").expect_err("refused");
    assert!(refusal.to_string().contains("not inside a lab node"));
    assert!(refusal.to_string().contains("make up"));
    assert_eq!(refusal.exit(), Exit::ContextRefused);
}

#[test]
fn home_directory_is_refused_and_named() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.cwd = Ok(PathBuf::from("/home/vagrant"));
    let d = decide(&f);
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "cwd");
    assert!(r.found.contains("/home/vagrant"), "{}", r.found);
}

#[test]
fn subdirectory_of_vagrant_is_refused() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.cwd = Ok(PathBuf::from("/vagrant/infra"));
    assert_eq!(refused_by(&f), Some("cwd"));
}

#[test]
fn symlinked_vagrant_is_refused() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.vagrant_is_symlink = Some(true);
    assert_eq!(refused_by(&f), Some("vagrant-not-symlink"));
}

#[test]
fn missing_required_entries_are_a_partial_mount() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.missing_entries = vec!["vagrant/Vagrantfile".into()];
    let d = decide(&f);
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "repo-complete");
    assert!(r.found.contains("vagrant/Vagrantfile"));
}

#[test]
fn another_checkout_is_refused_by_lab_id() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.marker = Ok(LabMarker {
        lab: "stackpilot".into(),
        lab_id: "lab-2".into(),
        ..Default::default()
    });
    let d = decide(&f);
    let r = d.first_refusal().expect("refused");
    assert_eq!(r.id, "same-lab");
    assert!(r.found.contains("lab-2"));
}

#[test]
fn identity_of_another_lab_is_refused() {
    let mut f = facts(include_str!("mountinfo/docker-bind.txt"));
    f.identity = Ok(Identity {
        lab: "other".into(),
        ..identity(Some("/work/main"))
    });
    assert_eq!(refused_by(&f), Some("same-lab"));
}

#[test]
fn every_rule_is_reported_even_after_a_refusal() {
    let mut f = facts(include_str!("mountinfo/no-mount.txt"));
    f.cwd = Ok(PathBuf::from("/tmp"));
    let d = decide(&f);
    assert_eq!(d.rules.len(), 7);
    assert!(!d.allowed());
}
