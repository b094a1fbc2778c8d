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
fn vm_shared_folders_are_accepted() {
    for (name, sample) in [
        ("vboxsf", include_str!("mountinfo/vboxsf.txt")),
        ("nfs", include_str!("mountinfo/nfs.txt")),
        ("9p", include_str!("mountinfo/9p.txt")),
        ("virtiofs", include_str!("mountinfo/virtiofs.txt")),
        ("fuse", include_str!("mountinfo/fuse.txt")),
    ] {
        let mut f = facts(sample);
        f.identity = Ok(identity(None));
        assert_eq!(refused_by(&f), None, "{name}: {:?}", decide(&f));
    }
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
    let refusal = allow(&decide(&f), &f, "make up").expect_err("refused");
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
