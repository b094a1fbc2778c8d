//! The generated inventory the Vagrantfile reads, and the names of a lab's Docker objects.

use serde::Serialize;
use stackpilot_core::Config;
use stackpilot_core::config::Addresses;
use stackpilot_core::config::Role;

/// The generated inventory the Vagrantfile reads, relative to the repo root.
pub const INVENTORY_FILE: &str = "vagrant/inventory.json";

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
    /// Per provider, by the provider's name.
    address: Addresses,
    /// The docker provider's container name.
    container: String,
    /// The docker provider's named volume for the inner engine's /var/lib/docker.
    engine_volume: String,
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
        probe_port: stackpilot_core::node::PROBE_PORT,
        engine_volumes_persist: false,
        nodes: cfg
            .nodes
            .iter()
            .map(|n| InventoryNode {
                name: n.name().to_string(),
                role: n.role,
                address: n.address.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::repo_root;

    #[test]
    fn inventory_json_matches_stackpilot_toml() {
        let root = repo_root();
        let cfg = Config::load_file(&root.join("stackpilot.toml")).expect("stackpilot.toml loads");
        let have = std::fs::read_to_string(root.join(INVENTORY_FILE)).unwrap_or_default();
        assert!(
            have == inventory_text(&cfg),
            "{INVENTORY_FILE} has drifted from stackpilot.toml; run `cargo xtask lab inventory` and commit it"
        );
    }

    #[test]
    fn inventory_names_every_node_with_its_addresses() {
        let cfg = Config::load_file(&repo_root().join("stackpilot.toml")).expect("config");
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
}
