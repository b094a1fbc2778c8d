//! From a node's name to its [`NodeHandle`], once, at the edge.

use std::path::Path;

use stackpilot_core::node::NodeHandle;
use stackpilot_core::transport::{self, Transport, VAGRANT_DIR};
use stackpilot_core::{Config, Provider, mountinfo};

use crate::error::Error;
use crate::provider;

/// Resolves `node` of the checkout at `root`: its provider (the one it was created with,
/// else the lab's choice), address, transport and repo source.
pub fn resolve(root: &Path, cfg: &Config, node: &str) -> Result<NodeHandle, Error> {
    let chosen = provider::from_env()?;
    resolve_with(root, cfg, node, chosen)
}

/// Resolves every node of the inventory, in its order (`STACKPILOT_PROVIDER` read once).
pub fn resolve_all(root: &Path, cfg: &Config) -> Result<Vec<NodeHandle>, Error> {
    let chosen = provider::from_env()?;
    cfg.node_names()
        .iter()
        .map(|n| resolve_with(root, cfg, n, chosen))
        .collect()
}

/// The inventory's nodes whose engine answers now (created and running), in order. A node
/// that cannot be resolved or whose engine does not answer within 20 s is not running.
pub fn running(root: &Path, cfg: &Config) -> Vec<NodeHandle> {
    resolve_all(root, cfg)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            n.transport().is_ok_and(|t| {
                t.output(
                    &["docker", "info", "--format", "{{.ID}}"],
                    std::time::Duration::from_secs(20),
                )
                .is_ok()
            })
        })
        .collect()
}

/// Resolves `node`; `chosen` is the provider for a node Vagrant has not created yet.
pub fn resolve_with(
    root: &Path,
    cfg: &Config,
    node: &str,
    chosen: Provider,
) -> Result<NodeHandle, Error> {
    let n = cfg.node(node)?;
    let vagrant_dir = root.join(VAGRANT_DIR);
    let kind = transport::created_provider(&vagrant_dir, node).unwrap_or(chosen);
    let provider = provider::get(kind);
    Ok(NodeHandle {
        name: node.to_string(),
        role: n.role,
        address: n.address(kind),
        transport: Transport::for_node(&vagrant_dir, node).ok(),
        repo_source: (!kind.desc().is_vm).then(|| repo_source(root)),
        provider: provider.facts(),
        machine_dir: transport::machine_dir(&vagrant_dir, node),
    })
}

/// The checkout's path as the host's mount table names it: what a bind mount of it shows
/// as its source inside a node container.
pub fn repo_source(root: &Path) -> String {
    let mounts =
        mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
    // The mount table names real paths; a symlinked checkout path would not match.
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    mountinfo::filesystem_path(&mounts, &root)
        .unwrap_or(root)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::repo_root;

    fn cfg() -> Config {
        Config::load_file(&repo_root().join("stackpilot.toml")).expect("config")
    }

    #[test]
    fn a_node_not_created_takes_the_chosen_provider_and_has_no_transport() {
        let root = Path::new("/nonexistent-checkout");
        let h = resolve_with(root, &cfg(), "worker1", Provider::Libvirt).expect("resolve");
        assert_eq!(h.name, "worker1");
        assert_eq!(h.provider.name, "libvirt");
        assert!(h.provider.is_vm);
        assert_eq!(h.address.to_string(), "192.168.56.11");
        assert_eq!(h.repo_source, None, "a VM's repo is a shared folder");
        let err = h.transport().expect_err("not created");
        assert!(
            err.to_string().contains("cargo xtask lab up worker1"),
            "{err}"
        );
    }

    #[test]
    fn a_created_node_keeps_its_provider_whatever_the_choice() {
        let root = std::env::temp_dir().join(format!("sp-resolve-{}", std::process::id()));
        let machine = transport::machine_dir(&root.join(VAGRANT_DIR), "control").join("docker");
        std::fs::create_dir_all(&machine).expect("temp dir");
        std::fs::write(machine.join("id"), "c0ffee\n").expect("write id");
        let h = resolve_with(&root, &cfg(), "control", Provider::Virtualbox).expect("resolve");
        assert_eq!(h.provider.name, "docker");
        assert_eq!(h.address.to_string(), "172.30.56.10");
        assert!(
            h.repo_source.is_some(),
            "a docker node records its bind source"
        );
        assert!(matches!(
            h.transport(),
            Ok(Transport::DockerExec { container, .. }) if container == "c0ffee"
        ));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_unknown_node_is_a_usage_error() {
        let err = resolve_with(Path::new("/x"), &cfg(), "worker9", Provider::Docker)
            .expect_err("unknown");
        assert_eq!(err.exit(), stackpilot_core::Exit::Usage);
    }
}
