//! From the lab's resolved nodes, an environment and what the host deployed to a runnable
//! swarm verification: the manager is the inventory's control node (where `verify
//! inspect-swarm` runs), every node must be a Ready and Active member, the db runs on the
//! control node and one api replica on each worker (the swarm override's placement).

use std::collections::BTreeMap;
use std::path::Path;

use stackpilot_core::Config;
use stackpilot_core::config::Role;
use stackpilot_core::node::NodeHandle;

use super::host::{self, SwarmTarget};
use super::verdict::{DeployedApp, ExpectedNode, SwarmExpect};
use crate::host::RunConfig;
use crate::report::Report;
use crate::setup::{HostRunner, Options, SetupError};
use crate::verdict::API_SERVICE;

/// The compose service pinned to the control node.
pub const DB_SERVICE: &str = "db";

/// The target, the manager's transport and the run configuration for `env`'s stack on the
/// swarm of `nodes` (every node of the lab, from `lab::resolve`).
pub fn prepare(
    cfg: &Config,
    nodes: &[NodeHandle],
    env: &str,
    deployed: Option<DeployedApp>,
    opts: &Options,
) -> Result<(SwarmTarget, HostRunner, RunConfig), SetupError> {
    let e = cfg.environment(env)?;
    let of_role = |role: Role| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.name.clone())
            .collect()
    };
    let manager = nodes.iter().find(|n| n.role == Role::Control);
    let runner = match manager.map(NodeHandle::transport) {
        Some(Ok(t)) => HostRunner::Transport(t.clone()),
        Some(Err(e)) => HostRunner::Missing(e.to_string()),
        None => HostRunner::Missing(
            "the lab has no node with role = \"control\" to act as the swarm's manager".into(),
        ),
    };
    let expect = SwarmExpect {
        manager: manager.map_or_else(|| "control".into(), |m| m.name.clone()),
        lab: cfg.lab.name.clone(),
        env: env.to_string(),
        stack: e.project().to_string(),
        nodes: nodes
            .iter()
            .map(|n| ExpectedNode {
                name: n.name.clone(),
            })
            .collect(),
        placement: BTreeMap::from([
            (API_SERVICE.to_string(), of_role(Role::Worker)),
            (DB_SERVICE.to_string(), of_role(Role::Control)),
        ]),
        deployed,
    };
    let addrs = nodes
        .iter()
        .map(|n| (n.name.clone(), opts.service_addr(n, e.port())))
        .collect();
    Ok((SwarmTarget { expect, addrs }, runner, opts.run_config()))
}

/// What the host recorded as deployed for `env` (`lab::swarm::Stack::deployed`), as the
/// app every api replica must run; `None` without a record (provenance then fails).
pub fn deployed(root: &Path, cfg: &Config, env: &str) -> Option<DeployedApp> {
    let stack = lab::swarm::Stack::for_env(cfg, env).ok()?;
    let d = stack.deployed(root, cfg)?;
    Some(DeployedApp {
        image: d.app_image,
        build_id: d.build.build_id,
    })
}

/// Verifies `env`'s stack on the swarm of `nodes`: the one call xtask makes.
pub fn verify(
    cfg: &Config,
    nodes: &[NodeHandle],
    env: &str,
    deployed: Option<DeployedApp>,
    opts: &Options,
) -> Result<Report, SetupError> {
    let (target, runner, run) = prepare(cfg, nodes, env, deployed, opts)?;
    Ok(crate::host::until_passed(opts.wait, || {
        host::run(&target, &runner, &run)
    }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use stackpilot_core::node::ProviderFacts;

    use super::*;
    use crate::setup::DEFAULT_NODE_VERIFY;

    fn cfg() -> Config {
        let text = include_str!("../../../../stackpilot.toml");
        Config::parse(text, Path::new("stackpilot.toml")).expect("repo config parses")
    }

    fn node(name: &str, role: Role, last: u8) -> NodeHandle {
        NodeHandle {
            name: name.into(),
            role,
            provider: ProviderFacts {
                name: "docker".into(),
                is_vm: false,
                shared_folder_types: vec![],
            },
            address: [172, 30, 56, last].into(),
            transport: None,
            repo_source: None,
            machine_dir: PathBuf::from("/repo/vagrant/.vagrant/machines").join(name),
        }
    }

    #[test]
    fn the_hosts_deployment_record_is_what_every_api_replica_must_run() {
        let root = std::env::temp_dir().join(format!("sp-swarm-deployed-{}", std::process::id()));
        let cfg = cfg();
        assert_eq!(
            deployed(&root, &cfg, "dev"),
            None,
            "no record, no expectation"
        );
        let stack = lab::swarm::Stack::for_env(&cfg, "dev").expect("dev stack");
        let record = lab::swarm::stack::Deployed {
            stack: stack.name.clone(),
            app_image: "10.0.0.10:5000/stackpilot-dev/mock-exchange@sha256:ab".into(),
            build: stackpilot_core::receipts::BuildReceipt {
                env: "dev".into(),
                image_id: "sha256:cd".into(),
                tag: "stackpilot/mock-exchange:0123456-b7".into(),
                build_id: "b7".into(),
                built_at: "2026-12-01T00:00:00Z".into(),
                git_sha: "0123456".into(),
                dirty: false,
            },
            deployed_at: "2026-12-01T00:01:00Z".into(),
            previous: None,
        };
        stack.record(&root, &cfg, &record).expect("record");
        let found = deployed(&root, &cfg, "dev");
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(
            found,
            Some(DeployedApp {
                image: record.app_image,
                build_id: "b7".into(),
            })
        );
    }

    #[test]
    fn the_db_goes_to_control_one_api_to_each_worker_and_control_manages() {
        let nodes = [
            node("control", Role::Control, 10),
            node("worker1", Role::Worker, 11),
            node("worker2", Role::Worker, 12),
        ];
        let (t, runner, run) =
            prepare(&cfg(), &nodes, "staging", None, &Options::default()).expect("prepare");
        assert_eq!(t.expect.manager, "control");
        assert_eq!(t.expect.stack, "stackpilot-staging");
        assert_eq!(t.expect.api_nodes(), ["worker1", "worker2"]);
        assert_eq!(t.expect.placement[DB_SERVICE], ["control"]);
        assert_eq!(t.addrs["worker2"].to_string(), "172.30.56.12:8001");
        assert_eq!(run.node_verify, DEFAULT_NODE_VERIFY);
        // Not created: verify reports it at layer 1 rather than refusing to start.
        assert!(matches!(runner, HostRunner::Missing(ref why) if why.contains("control")));
    }
}
