//! The host side end to end on loopback: a canned node, real probes, real verdicts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use super::*;
use crate::inspection::{ContainerFact, Declared, Engine, Fact, ImageFact, Inspection, Wiring};
use crate::report::Verdict;
use stackpilot_core::receipts::BuildReceipt;

/// A node that answers `verify inspect` with a fixed document and counts nothing else.
struct CannedNode(NodeRun);

impl NodeRunner for CannedNode {
    fn describe(&self) -> String {
        "canned".into()
    }
    fn run(&self, argv: &[&str], _timeout: Duration) -> NodeRun {
        assert_eq!(argv[1..], ["inspect", "--env", "dev", "--json"]);
        self.0.clone()
    }
}

fn wiring() -> Wiring {
    Wiring {
        compose_file: "/vagrant/infra/docker-compose.yml".into(),
        working_dir: "/vagrant/infra".into(),
        env_file: "/vagrant/infra/env/dev.env".into(),
    }
}

fn inspection(port: u16) -> Inspection {
    let c = |service: &str| ContainerFact {
        id: service.into(),
        name: service.into(),
        project: Some("stackpilot-dev".into()),
        service: Some(service.into()),
        state: "running".into(),
        health: Some("healthy".into()),
        image_id: "sha256:aa".into(),
        working_dir: Some("/vagrant/infra".into()),
        config_files: Some("/vagrant/infra/docker-compose.yml".into()),
        environment_file: Some("/vagrant/infra/env/dev.env".into()),
        published_ports: vec![port],
        ..ContainerFact::default()
    };
    Inspection {
        node: "control".into(),
        lab: "stackpilot".into(),
        env: "dev".into(),
        project: "stackpilot-dev".into(),
        port,
        expected: wiring(),
        engine: Fact::Found(Engine {
            version: "20.10".into(),
            api_version: "1.41".into(),
        }),
        declared: Fact::Found(Declared {
            command: "docker-compose".into(),
            services: vec!["api".into(), "db".into()],
        }),
        containers: vec![c("api"), c("db")],
        port_publishers: vec![c("api")],
        hidden: vec![],
        api_image: Some(Fact::Found(ImageFact {
            id: "sha256:aa".into(),
            created: "2026-11-25T18:00:00Z".into(),
            repo_tags: vec![],
            build_id: Some("b7".into()),
        })),
        build_receipt: Fact::Found(BuildReceipt {
            env: "dev".into(),
            image_id: "sha256:aa".into(),
            tag: "stackpilot/mock-exchange:s-b7".into(),
            build_id: "b7".into(),
            built_at: "2026-11-25T18:00:01Z".into(),
            git_sha: "s".into(),
            dirty: false,
        }),
        clean_receipt: Fact::Absent("none".into()),
    }
}

fn node_for(port: u16) -> CannedNode {
    CannedNode(NodeRun::Ran {
        code: Some(0),
        stdout: serde_json::to_string(&inspection(port)).expect("json"),
        stderr: String::new(),
    })
}

fn target(addr: SocketAddr) -> NodeUnderTest {
    NodeUnderTest {
        expect: Expect {
            node: "control".into(),
            lab: "stackpilot".into(),
            env: "dev".into(),
            project: "stackpilot-dev".into(),
            target: addr.to_string(),
            wiring: wiring(),
        },
        addr,
    }
}

fn cfg() -> RunConfig {
    RunConfig {
        node_verify: "/vagrant/verify".into(),
        node_timeout: Duration::from_secs(5),
        probe: Timeouts {
            connect: Duration::from_millis(500),
            total: Duration::from_millis(1000),
        },
    }
}

/// A loopback HTTP service answering each request with `respond(path)`.
fn service(respond: fn(&str) -> Option<(u16, &'static str)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve(stream, respond);
        }
    });
    addr
}

fn serve(mut s: TcpStream, respond: fn(&str) -> Option<(u16, &'static str)>) {
    let mut buf = [0u8; 2048];
    let n = s.read(&mut buf).unwrap_or(0);
    let request = String::from_utf8_lossy(&buf[..n]).to_string();
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    if let Some((status, body)) = respond(&path) {
        let _ = write!(
            s,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    // None: close without answering, like a port proxy with no backend.
}

fn healthy_service(path: &str) -> Option<(u16, &'static str)> {
    match path {
        "/health" => Some((200, r#"{"status":"alive"}"#)),
        "/ready" => Some((200, r#"{"status":"ready"}"#)),
        "/version" => Some((200, r#"{"build_id":"b7","git_sha":"s","version":"0.1.0"}"#)),
        _ => Some((404, "{}")),
    }
}

#[test]
fn a_healthy_loopback_service_passes_end_to_end() {
    let addr = service(healthy_service);
    let report = run(&target(addr), &node_for(addr.port()), &cfg());
    assert!(report.passed, "{report:#?}");
    assert!(report.summary.usable);
}

#[test]
fn a_closed_port_is_never_sent_http() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a released port");
    let obs = observe(&target(addr), &node_for(addr.port()), &cfg());
    assert!(obs.tcp.is_some());
    assert_eq!(obs.health, None);
    assert_eq!(obs.ready, None);
    assert_eq!(obs.version, None);
}

#[test]
fn a_service_that_accepts_then_closes_is_tcp_reachable_but_not_alive() {
    let addr = service(|_| None);
    let report = run(&target(addr), &node_for(addr.port()), &cfg());
    assert!(!report.passed);
    assert!(report.summary.tcp_reachable && !report.summary.alive);
    let health = report
        .checks
        .iter()
        .find(|c| c.id == "http.health")
        .expect("health check");
    assert_eq!(health.verdict, Verdict::Fail);
    assert!(
        health
            .reason
            .starts_with("TCP-reachable but not answering HTTP"),
        "{health:?}"
    );
}

#[test]
fn ready_503_with_health_200_on_the_wire_is_alive_but_not_ready() {
    let addr = service(|path| match path {
        "/ready" => Some((
            503,
            r#"{"status":"not ready","reason":"database unreachable"}"#,
        )),
        other => healthy_service(other),
    });
    let report = run(&target(addr), &node_for(addr.port()), &cfg());
    assert!(report.summary.alive && !report.summary.ready);
    assert_eq!(
        report.first_failure().map(|c| c.reason.as_str()),
        Some("alive but not ready: /ready answered 503: database unreachable")
    );
}

#[test]
fn an_unreachable_node_gets_no_probe_at_all() {
    let addr = service(healthy_service);
    let node = CannedNode(NodeRun::Unreachable("container is not running".into()));
    let obs = observe(&target(addr), &node, &cfg());
    assert_eq!(obs.tcp, None);
}

#[test]
fn garbage_from_the_node_is_a_failed_inspection_with_its_stderr() {
    let addr = service(healthy_service);
    let node = CannedNode(NodeRun::Ran {
        code: Some(127),
        stdout: String::new(),
        stderr: "exec: /vagrant/verify: not found".into(),
    });
    let report = run(&target(addr), &node, &cfg());
    assert_eq!(
        report.first_failure().map(|c| c.id.as_str()),
        Some("node.identity")
    );
    assert!(
        report.checks[1]
            .reason
            .contains("(exit 127): exec: /vagrant/verify: not found (no runnable verify binary"),
        "{:?}",
        report.checks[1]
    );
}

#[test]
fn a_docker_exec_error_on_stdout_is_kept() {
    let addr = service(healthy_service);
    let node = CannedNode(NodeRun::Ran {
        code: Some(126),
        stdout: "OCI runtime exec failed: exec failed: stat /vagrant/verify: no such file".into(),
        stderr: String::new(),
    });
    let report = run(&target(addr), &node, &cfg());
    assert!(
        report.checks[1]
            .reason
            .contains("(exit 126): OCI runtime exec failed"),
        "{:?}",
        report.checks[1]
    );
}

#[test]
fn a_node_command_past_its_timeout_is_stopped() {
    let mut cmd = Command::new("sleep");
    cmd.arg("5");
    let start = Instant::now();
    let ran = run_with_timeout(cmd, Duration::from_millis(200));
    assert!(start.elapsed() < Duration::from_secs(2));
    match ran {
        NodeRun::Ran { code, stderr, .. } => {
            assert_eq!(code, None);
            assert!(stderr.contains("did not finish within"), "{stderr}");
        }
        other => panic!("expected a stopped run, got {other:?}"),
    }
}

#[test]
fn a_missing_host_program_is_unreachable() {
    let ran = run_with_timeout(
        Command::new("/nonexistent/transport"),
        Duration::from_secs(1),
    );
    assert!(
        matches!(ran, NodeRun::Unreachable(ref why) if why.contains("cannot start")),
        "{ran:?}"
    );
}

/// A node unreachable for its first `n` calls, then answering like `node_for`.
struct FlakyNode {
    calls: std::cell::Cell<u32>,
    n: u32,
    then: CannedNode,
}

impl NodeRunner for FlakyNode {
    fn describe(&self) -> String {
        "flaky".into()
    }
    fn run(&self, argv: &[&str], timeout: Duration) -> NodeRun {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() <= self.n {
            NodeRun::Unreachable("booting".into())
        } else {
            self.then.run(argv, timeout)
        }
    }
}

#[test]
fn a_waiting_verify_returns_one_report_once_everything_passes() {
    let addr = service(healthy_service);
    let node = FlakyNode {
        calls: std::cell::Cell::new(0),
        n: 2,
        then: node_for(addr.port()),
    };
    let report = run_waiting(&target(addr), &node, &cfg(), Duration::from_secs(10));
    assert!(report.passed, "{report:#?}");
    assert_eq!(node.calls.get(), 3);
}

#[test]
fn a_waiting_verify_gives_up_with_the_last_report_when_time_is_up() {
    let addr = service(healthy_service);
    let node = CannedNode(NodeRun::Unreachable("gone".into()));
    let start = Instant::now();
    let report = run_waiting(&target(addr), &node, &cfg(), Duration::from_millis(700));
    assert!(!report.passed);
    assert!(start.elapsed() >= Duration::from_millis(700));
    assert!(report.elapsed_ms >= 700, "{}", report.elapsed_ms);
}
