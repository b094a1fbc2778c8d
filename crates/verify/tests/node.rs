//! A whole verification, both binaries' sides real, against a stand-in node: the real
//! `verify inspect` runs in a private mount namespace that looks like a lab node (the repo
//! bind-mounted at /vagrant, a node identity, the engine's socket, the receipts), against
//! a stack of fixture containers on the host engine answering HTTP on loopback. While the
//! verification runs, the engine's events are recorded: none may mutate anything.
//!
//! Needs root and `unshare` (mount namespaces) and a Docker engine: without them the test
//! prints `SKIP(<capability>): <why>` and returns, and fails under `CI=true`. The
//! namespace and its mounts die with the test's process.

mod support;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use ctx_guard::standin::StandIn;
use stackpilot_core::capability::{self, Capability};
use stackpilot_core::facade::models::EventMessage;
use stackpilot_core::http::Timeouts;
use stackpilot_core::node::{LAB_MARKER, LabMarker};
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt};
use stackpilot_core::transport::shell_quote;
use verify::host::{self, NodeRun, NodeRunner, NodeUnderTest, RunConfig};
use verify::inspection::Wiring;
use verify::verdict::Expect;
use verify::{Verdict, events};

use support::{Fixture, compose_labels, free_loopback_port, now, sh};

/// Repo entries the stand-in node's /vagrant holds (what ctx-guard and compose read).
const REPO_FILES: &[&str] = &[
    "Cargo.toml",
    "Makefile",
    "infra/docker-compose.yml",
    "infra/env/dev.env",
    "vagrant/Vagrantfile",
];

/// A root filesystem that passes ctx-guard as node `control`, and the mounts that make it.
struct StandInNode(StandIn);

impl StandInNode {
    fn new(base: &Path, project: &str, port: u16) -> StandInNode {
        let repo = base.join("src/repo");
        let dirs = ["dev", "etc/stackpilot", "tmp", "opt", "root", "var/run"];
        let mut node = StandIn::new(base.join("root"), &dirs).expect("stand-in root");
        let root = node.root.clone();
        fs::create_dir_all(root.join("var/lib/stackpilot/dev")).expect("mkdir");
        node.mounts.push("mount --bind /dev \"$R/dev\"".to_string());
        for f in ["passwd", "group", "hosts", "nsswitch.conf"] {
            let _ = fs::copy(Path::new("/etc").join(f), root.join("etc").join(f));
        }
        // The repo: real files, with the dev environment's project and port made unique so
        // parallel tests on the same engine cannot collide.
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for f in REPO_FILES {
            let to = repo.join(f);
            fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            fs::copy(src.join(f), &to).unwrap_or_else(|e| panic!("copy {f}: {e}"));
        }
        fs::create_dir_all(repo.join("crates")).expect("mkdir crates");
        let config = fs::read_to_string(src.join("stackpilot.toml")).expect("config");
        let config = config
            .replace(
                "project = \"stackpilot-dev\"",
                &format!("project = \"{project}\""),
            )
            .replace("port = 8000", &format!("port = {port}"));
        fs::write(repo.join("stackpilot.toml"), config).expect("config copy");
        let marker = LabMarker {
            lab: "stackpilot".into(),
            lab_id: "verify-e2e".into(),
            ..Default::default()
        };
        fs::write(repo.join(LAB_MARKER), marker.to_toml()).expect("marker");
        node.write_docker_identity("control", ("stackpilot", "verify-e2e"), &repo)
            .expect("identity");
        fs::write(root.join("var/run/docker.sock"), "").expect("socket mount point");
        node.bind_at_vagrant(&repo).expect("mkdir");
        node.mounts
            .push("mount --bind /var/run/docker.sock \"$R/var/run/docker.sock\"".into());
        fs::copy(env!("CARGO_BIN_EXE_verify"), root.join("opt/verify")).expect("copy verify");
        StandInNode(node)
    }
}

impl NodeRunner for StandInNode {
    fn describe(&self) -> String {
        "unshare + chroot".into()
    }

    fn run(&self, argv: &[&str], timeout: Duration) -> NodeRun {
        let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let mut cmd = self
            .0
            .command(&format!("cd /vagrant && exec {}", line.join(" ")));
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root");
        host::run_with_timeout(cmd, timeout)
    }
}

fn wait_healthy(ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states: Vec<String> = ids
            .iter()
            .map(|id| sh(&["inspect", "-f", "{{.State.Health.Status}}", id]))
            .collect();
        if states.iter().all(|s| s == "healthy") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "fixtures not healthy: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn engine_full_verify_of_a_healthy_stand_in_node_passes_and_mutates_nothing() {
    if !capability::require(&[Capability::Unshare, Capability::Docker]) {
        return;
    }
    let mut fx = Fixture::new("node");
    let project = format!("verify-e2e-{}", fx.run.replace('.', "-"));
    let port = free_loopback_port();
    let publish = format!("127.0.0.1:{port}:8000");
    // The engine's own health probes every second make `healthy` reachable in the test.
    let api = fx.container_cmd(
        true,
        &compose_labels(&project, "api"),
        &["-p", &publish, "--health-interval", "1s"],
        &["--serve"],
    );
    let db = fx.container(
        true,
        &compose_labels(&project, "db"),
        &["--health-interval", "1s"],
    );
    wait_healthy(&[&api, &db]);

    let node = StandInNode::new(&fx.dir.join("node"), &project, port);
    let receipt = BuildReceipt {
        env: "dev".into(),
        image_id: sh(&["inspect", "-f", "{{.Image}}", &api]),
        tag: fx.image.clone(),
        build_id: fx.build_id(),
        built_at: "2026-11-25T18:00:00Z".into(),
        git_sha: "0000000".into(),
        dirty: false,
    };
    receipts::write(
        &node
            .0
            .root
            .join("var/lib/stackpilot/dev")
            .join(BUILD_RECEIPT),
        &receipt,
    )
    .expect("receipt");

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let target = NodeUnderTest {
        expect: Expect {
            node: "control".into(),
            lab: "stackpilot".into(),
            env: "dev".into(),
            project: project.clone(),
            target: addr.to_string(),
            wiring: Wiring {
                compose_file: "/vagrant/infra/docker-compose.yml".into(),
                working_dir: "/vagrant/infra".into(),
                env_file: "/vagrant/infra/env/dev.env".into(),
            },
        },
        addr,
    };
    let cfg = RunConfig {
        node_verify: "/opt/verify".into(),
        node_timeout: Duration::from_secs(60),
        probe: Timeouts::default(),
    };

    let docker = stackpilot_core::facade::ReadOnlyDocker::connect().expect("engine");
    let start = now();
    let report = host::run(&target, &node, &cfg);
    let end = now();
    // A wider window than the run, to see the creation of probe execs ending inside it.
    let recorded = fx.event_messages(&docker, start - 5.0, end + 1.0);

    eprintln!(
        "full verification of the stand-in node: {} ms",
        report.elapsed_ms
    );
    let shown = serde_json::to_string_pretty(&report).unwrap_or_default();
    assert!(report.passed, "{shown}");
    for c in &report.checks {
        let expected = if c.id == "provenance.after-clean" {
            Verdict::Unverified
        } else {
            Verdict::Pass
        };
        assert_eq!(c.verdict, expected, "{c:?}");
    }
    // The engine runs the fixtures' healthchecks as execs of its own; those are the
    // engine's, not verify's (the facade has no exec call): they are known by the command
    // their exec was created with, and set aside by exec id.
    let attr = |e: &EventMessage, k: &str| {
        e.actor
            .as_ref()
            .and_then(|a| a.attributes.as_ref())
            .and_then(|m| m.get(k).cloned())
    };
    let probes: HashSet<String> = recorded
        .iter()
        .filter(|e| {
            e.action
                .as_deref()
                .is_some_and(|a| a.starts_with("exec_") && a.ends_with("/sleeper --check"))
        })
        .filter_map(|e| attr(e, "execID"))
        .collect();
    let window = (start * 1e9) as i64..=((end + 1.0) * 1e9) as i64;
    let during: Vec<String> = recorded
        .iter()
        .filter(|e| e.time_nano.is_some_and(|t| window.contains(&t)))
        .filter(|e| attr(e, "execID").is_none_or(|id| !probes.contains(&id)))
        .filter_map(|e| e.action.clone())
        .collect();
    let mutating = events::mutating(&during);
    assert!(
        mutating.is_empty(),
        "the verification caused mutating engine events: {mutating:?}"
    );
    // The recorder saw the probes, so it would have seen verify's events too.
    assert!(!probes.is_empty(), "no health probe seen: {recorded:?}");
}
