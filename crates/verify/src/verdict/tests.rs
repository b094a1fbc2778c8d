//! One test per failure class of the golden-path issue, each a small change to a healthy
//! node's observations.

use std::net::SocketAddr;

use stackpilot_core::http::{HttpOutcome, HttpProbe, TcpOutcome, TcpProbe};
use stackpilot_core::receipts::{BuildReceipt, CleanReceipt};

use super::*;
use crate::inspection::{Declared, Engine, ImageFact};

const IMAGE: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const OLD_IMAGE: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn expect() -> Expect {
    Expect {
        node: "control".into(),
        lab: "stackpilot".into(),
        env: "dev".into(),
        project: "stackpilot-dev".into(),
        target: "172.30.56.10:8000".into(),
        wiring: wiring(),
    }
}

fn wiring() -> Wiring {
    Wiring {
        compose_file: "/vagrant/infra/docker-compose.yml".into(),
        working_dir: "/vagrant/infra".into(),
        env_file: "/vagrant/infra/env/dev.env".into(),
    }
}

fn container(service: &str, image: &str) -> ContainerFact {
    ContainerFact {
        id: format!("{service}-id"),
        name: format!("stackpilot-dev_{service}_1"),
        project: Some("stackpilot-dev".into()),
        service: Some(service.into()),
        state: "running".into(),
        health: Some("healthy".into()),
        restart_count: 0,
        image_id: image.into(),
        image_ref: format!("stackpilot/{service}:abc-b2"),
        working_dir: Some("/vagrant/infra".into()),
        config_files: Some("/vagrant/infra/docker-compose.yml".into()),
        environment_file: Some("/vagrant/infra/env/dev.env".into()),
        oneoff: false,
        published_ports: if service == "api" { vec![8000] } else { vec![] },
    }
}

fn inspection() -> Inspection {
    let api = container("api", IMAGE);
    Inspection {
        node: "control".into(),
        lab: "stackpilot".into(),
        env: "dev".into(),
        project: "stackpilot-dev".into(),
        port: 8000,
        expected: wiring(),
        engine: Fact::Found(Engine {
            version: "20.10.24".into(),
            api_version: "1.41".into(),
        }),
        declared: Fact::Found(Declared {
            command: "docker-compose".into(),
            services: vec!["api".into(), "db".into()],
        }),
        containers: vec![api.clone(), container("db", "sha256:db")],
        port_publishers: vec![api],
        hidden: vec![],
        api_image: Some(Fact::Found(ImageFact {
            id: IMAGE.into(),
            created: "2026-11-25T18:05:00.123456789Z".into(),
            repo_tags: vec!["stackpilot/mock-exchange:abc-b2".into()],
            build_id: Some("b2".into()),
        })),
        build_receipt: Fact::Found(BuildReceipt {
            env: "dev".into(),
            image_id: IMAGE.into(),
            tag: "stackpilot/mock-exchange:abc-b2".into(),
            build_id: "b2".into(),
            built_at: "2026-11-25T18:05:01Z".into(),
            git_sha: "abc".into(),
            dirty: false,
        }),
        clean_receipt: Fact::Found(CleanReceipt {
            env: "dev".into(),
            cleaned_at: "2026-11-25T18:00:00Z".into(),
            removed_containers: vec![],
            removed_images: vec![],
            build_cache_reclaimed_bytes: 0,
        }),
    }
}

fn addr() -> SocketAddr {
    SocketAddr::from(([172, 30, 56, 10], 8000))
}

fn answered(path: &str, status: u16, body: &str) -> Option<HttpProbe> {
    Some(HttpProbe {
        url: format!("http://172.30.56.10:8000{path}"),
        outcome: HttpOutcome::Answered {
            status,
            body: body.into(),
        },
        elapsed_ms: 2,
    })
}

fn healthy() -> Observations {
    Observations {
        node: Some(NodeObservation {
            via: "docker exec 1a2b".into(),
            elapsed_ms: 120,
            outcome: NodeOutcome::Inspected(Box::new(inspection())),
        }),
        tcp: Some(TcpProbe {
            addr: addr(),
            outcome: TcpOutcome::Connected,
            elapsed_ms: 1,
        }),
        health: answered("/health", 200, r#"{"status":"alive"}"#),
        ready: answered("/ready", 200, r#"{"status":"ready"}"#),
        version: answered(
            "/version",
            200,
            r#"{"build_id":"b2","git_sha":"abc","version":"0.1.0"}"#,
        ),
    }
}

/// Applies `f` to the inspection inside healthy observations.
fn with_inspection(f: impl FnOnce(&mut Inspection)) -> Observations {
    let mut obs = healthy();
    if let Some(NodeObservation {
        outcome: NodeOutcome::Inspected(i),
        ..
    }) = obs.node.as_mut()
    {
        f(i);
    }
    obs
}

fn check<'a>(r: &'a Report, id: &str) -> &'a Check {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {r:#?}"))
}

/// The ids of the failed checks, in order.
fn failed(r: &Report) -> Vec<&str> {
    r.checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.id.as_str())
        .collect()
}

fn assert_not_run_from(r: &Report, layer: u8) {
    for c in r.checks.iter().filter(|c| c.layer >= layer) {
        assert_eq!(c.verdict, Verdict::NotRun, "{c:?}");
        assert!(c.reason.starts_with("not run: layer "), "{c:?}");
    }
}

#[test]
fn a_healthy_node_passes_every_check() {
    let r = evaluate(&expect(), &healthy(), 10);
    assert!(r.passed, "{r:#?}");
    assert_eq!(failed(&r), Vec::<&str>::new());
    assert!(
        r.checks.iter().all(|c| c.verdict == Verdict::Pass),
        "{r:#?}"
    );
    let s = r.summary;
    assert!(s.reachable && s.tcp_reachable && s.alive && s.ready && s.healthy && s.usable);
    assert_eq!(r.checks.len(), 17);
}

#[test]
fn an_older_image_than_the_receipt_fails_provenance() {
    let obs = with_inspection(|i| {
        i.containers[0].image_id = OLD_IMAGE.into();
    });
    let r = evaluate(&expect(), &obs, 0);
    assert!(!r.passed);
    assert_eq!(failed(&r), vec!["provenance.image-id"]);
    let reason = &check(&r, "provenance.image-id").reason;
    assert!(reason.contains("api runs image 111111111111"), "{reason}");
    assert!(
        reason.contains("the build receipt names 222222222222"),
        "{reason}"
    );
    assert!(r.summary.healthy && !r.summary.usable);
}

#[test]
fn an_image_created_before_the_last_clean_room_fails_provenance() {
    let obs = with_inspection(|i| {
        if let Some(Fact::Found(img)) = i.api_image.as_mut() {
            img.created = "2026-11-25T17:59:59.999Z".into();
        }
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["provenance.after-clean"]);
    assert!(
        check(&r, "provenance.after-clean")
            .reason
            .contains("survived the clean room")
    );
}

#[test]
fn without_a_clean_receipt_the_clean_room_order_is_unverified_not_failed() {
    let obs = with_inspection(|i| {
        i.clean_receipt =
            Fact::Absent("no receipt at /var/lib/stackpilot/dev/clean-receipt.json".into());
    });
    let r = evaluate(&expect(), &obs, 0);
    assert!(r.passed, "{r:#?}");
    assert_eq!(
        check(&r, "provenance.after-clean").verdict,
        Verdict::Unverified
    );
}

#[test]
fn a_build_id_label_other_than_the_receipt_fails_provenance() {
    let obs = with_inspection(|i| {
        if let Some(Fact::Found(img)) = i.api_image.as_mut() {
            img.build_id = Some("b1".into());
        }
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["provenance.build-id"]);
}

#[test]
fn an_extra_container_in_the_project_is_hidden() {
    let obs = with_inspection(|i| {
        let mut extra = container("debug", "sha256:dbg");
        extra.name = "intruder".into();
        extra.service = None;
        i.containers.push(extra);
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["inspect.no-hidden"]);
    let reason = &check(&r, "inspect.no-hidden").reason;
    assert!(
        reason.contains("intruder (carries the project label but no service label)"),
        "{reason}"
    );
    assert_not_run_from(&r, 5);
}

#[test]
fn an_undeclared_service_started_by_hand_is_hidden_not_a_wiring_fault() {
    let obs = with_inspection(|i| {
        let mut extra = container("intruder", "sha256:i");
        extra.name = "intruder".into();
        extra.working_dir = None;
        extra.config_files = None;
        extra.environment_file = None;
        extra.published_ports = vec![];
        i.containers.push(extra);
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["inspect.no-hidden"]);
    assert!(
        check(&r, "inspect.no-hidden")
            .reason
            .contains("intruder (service 'intruder' is not declared by the compose file)")
    );
}

#[test]
fn undeclared_one_off_and_second_containers_are_hidden() {
    let mut undeclared = container("cache", "sha256:c");
    undeclared.name = "cache".into();
    let mut oneoff = container("api", IMAGE);
    oneoff.name = "oneoff".into();
    oneoff.oneoff = true;
    let mut second = container("db", "sha256:db");
    second.name = "db2".into();
    let stopped = ContainerFact {
        state: "exited".into(),
        name: "stopped".into(),
        ..container("old", "sha256:o")
    };
    let base = inspection();
    let containers = [
        base.containers.clone(),
        vec![undeclared, oneoff, second, stopped],
    ]
    .concat();
    let declared = ["api".to_string(), "db".to_string()];
    let hidden = hidden_containers(
        "stackpilot-dev",
        &containers,
        &base.port_publishers,
        Some(&declared),
    );
    let names: Vec<&str> = hidden.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, vec!["cache", "oneoff", "db2"]);
}

#[test]
fn a_foreign_container_publishing_the_port_fails_wiring_and_is_hidden() {
    let obs = with_inspection(|i| {
        let mut foreign = container("api", "sha256:f");
        foreign.name = "squatter".into();
        foreign.project = None;
        foreign.service = None;
        i.port_publishers = vec![foreign];
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(
        failed(&r),
        vec!["inspect.wiring-project", "inspect.no-hidden"]
    );
    assert!(
        check(&r, "inspect.wiring-project")
            .reason
            .contains("squatter (project none, service none)")
    );
}

#[test]
fn a_stack_started_from_another_directory_and_file_fails_wiring() {
    let obs = with_inspection(|i| {
        for c in &mut i.containers {
            c.working_dir = Some("/tmp/copy/infra".into());
            c.config_files = Some("/tmp/copy/infra/docker-compose.yml".into());
        }
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(
        failed(&r),
        vec!["inspect.wiring-config-file", "inspect.wiring-working-dir"]
    );
    let reason = &check(&r, "inspect.wiring-working-dir").reason;
    assert!(
        reason.contains("expected working directory /vagrant/infra"),
        "{reason}"
    );
    assert!(
        reason.contains("stackpilot-dev_api_1 was started with working directory /tmp/copy/infra"),
        "{reason}"
    );
    assert_not_run_from(&r, 5);
}

#[test]
fn a_stack_started_with_another_env_file_fails_wiring() {
    let obs = with_inspection(|i| {
        for c in &mut i.containers {
            c.environment_file = Some("/vagrant/infra/env/live.env".into());
        }
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["inspect.wiring-env-file"]);
}

#[test]
fn without_an_env_file_label_the_env_file_is_unverified_not_failed() {
    let obs = with_inspection(|i| {
        for c in &mut i.containers {
            c.environment_file = None;
        }
    });
    let r = evaluate(&expect(), &obs, 0);
    assert!(r.passed, "{r:#?}");
    assert_eq!(
        check(&r, "inspect.wiring-env-file").verdict,
        Verdict::Unverified
    );
}

#[test]
fn a_closed_port_fails_tcp_and_nothing_above_runs() {
    let mut obs = healthy();
    obs.tcp = Some(TcpProbe {
        addr: addr(),
        outcome: TcpOutcome::Refused,
        elapsed_ms: 0,
    });
    obs.health = None;
    obs.ready = None;
    obs.version = None;
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["tcp.connect"]);
    assert_eq!(
        check(&r, "tcp.connect").reason,
        "port closed: TCP connection to 172.30.56.10:8000 refused; on the node the api container stackpilot-dev_api_1 is running"
    );
    assert_not_run_from(&r, 3);
    assert_eq!(
        check(&r, "provenance.image-id").reason,
        "not run: layer 2 (tcp) failed at tcp.connect: port closed: TCP connection to 172.30.56.10:8000 refused"
    );
    assert!(r.summary.reachable && !r.summary.tcp_reachable);
}

#[test]
fn a_closed_port_names_what_the_node_shows_behind_it() {
    let mut obs = with_inspection(|i| {
        i.containers[0].state = "exited".into();
    });
    obs.tcp = Some(TcpProbe {
        addr: addr(),
        outcome: TcpOutcome::Refused,
        elapsed_ms: 0,
    });
    let r = evaluate(&expect(), &obs, 0);
    assert!(
        check(&r, "tcp.connect")
            .reason
            .ends_with("refused; on the node: stackpilot-dev_api_1 exited"),
        "{:?}",
        check(&r, "tcp.connect")
    );
}

#[test]
fn ready_503_while_health_200_is_alive_but_not_ready() {
    let mut obs = healthy();
    obs.ready = answered(
        "/ready",
        503,
        r#"{"status":"not ready","reason":"database unreachable"}"#,
    );
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["http.ready"]);
    assert_eq!(
        check(&r, "http.ready").reason,
        "alive but not ready: /ready answered 503: database unreachable"
    );
    assert!(r.summary.alive && !r.summary.ready && !r.summary.usable);
    assert_not_run_from(&r, 4);
}

#[test]
fn accepted_then_reset_is_tcp_reachable_but_not_alive() {
    let mut obs = healthy();
    let reset = |path: &str| {
        Some(HttpProbe {
            url: format!("http://172.30.56.10:8000{path}"),
            outcome: HttpOutcome::ResetWithoutAnswer {
                detail: "connection reset by peer".into(),
            },
            elapsed_ms: 1,
        })
    };
    obs.health = reset("/health");
    obs.ready = reset("/ready");
    obs.version = reset("/version");
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(
        failed(&r),
        vec!["http.health", "http.ready", "http.version"]
    );
    assert!(
        check(&r, "http.health")
            .reason
            .starts_with("TCP-reachable but not answering HTTP")
    );
    assert!(r.summary.tcp_reachable && !r.summary.alive);
}

#[test]
fn a_version_other_than_the_receipt_fails_http() {
    let mut obs = healthy();
    obs.version = answered("/version", 200, r#"{"build_id":"b1"}"#);
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["http.version"]);
    assert!(
        check(&r, "http.version")
            .reason
            .contains("expected build_id b2")
    );
}

#[test]
fn an_unreachable_node_stops_at_layer_one() {
    let obs = Observations {
        node: Some(NodeObservation {
            via: "docker exec 1a2b".into(),
            elapsed_ms: 30,
            outcome: NodeOutcome::Unreachable("container 1a2b is not running".into()),
        }),
        ..Observations::default()
    };
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["node.reachable"]);
    assert_eq!(check(&r, "node.identity").verdict, Verdict::NotRun);
    assert_not_run_from(&r, 2);
    assert!(!r.summary.reachable);
}

#[test]
fn a_refused_node_side_context_fails_identity_with_its_message() {
    let obs = Observations {
        node: Some(NodeObservation {
            via: "docker exec 1a2b".into(),
            elapsed_ms: 30,
            outcome: NodeOutcome::Failed {
                code: Some(3),
                stderr: "verify: refused: not running from /vagrant\n  expected: …".into(),
            },
        }),
        ..Observations::default()
    };
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["node.identity"]);
    assert_eq!(
        check(&r, "node.identity").reason,
        "`verify inspect` on node 'control' produced no inspection (exit 3): verify: refused: not running from /vagrant"
    );
}

#[test]
fn another_node_answering_fails_identity() {
    let obs = with_inspection(|i| i.node = "worker1".into());
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["node.identity"]);
}

#[test]
fn an_unhealthy_or_stopped_service_fails_inspection() {
    let obs = with_inspection(|i| {
        i.containers[1].health = Some("unhealthy".into());
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(failed(&r), vec!["inspect.services-healthy"]);
    assert_eq!(
        check(&r, "inspect.services-healthy").reason,
        "db is unhealthy"
    );

    let obs = with_inspection(|i| {
        i.containers[1].state = "exited".into();
        i.containers[1].restart_count = 4;
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(
        failed(&r),
        vec!["inspect.services-running", "inspect.services-healthy"]
    );
    assert!(
        check(&r, "inspect.services-running")
            .reason
            .starts_with("db: not running (container exited)")
    );
}

#[test]
fn restart_counts_are_reported() {
    let obs = with_inspection(|i| i.containers[0].restart_count = 2);
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(
        check(&r, "inspect.services-running").reason,
        "api running (restarts 2), db running (restarts 0)"
    );
}

#[test]
fn an_unreadable_compose_file_fails_services_checks() {
    let obs = with_inspection(|i| {
        i.declared =
            Fact::Error("`docker-compose config --services` failed (exit status: 1)".into());
    });
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(
        failed(&r),
        vec!["inspect.services-running", "inspect.services-healthy"]
    );
}

#[test]
fn layer_failed_tells_the_gatherer_when_to_stop() {
    let mut obs = healthy();
    assert!(!layer_failed(2, &expect(), &obs));
    obs.tcp = Some(TcpProbe {
        addr: addr(),
        outcome: TcpOutcome::Timeout,
        elapsed_ms: 2000,
    });
    assert!(layer_failed(2, &expect(), &obs));
}
