use std::time::Duration;

use stackpilot_core::http::HttpOutcome;

use super::*;
use crate::inspection::{Declared, Engine};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const IMAGE: &str = "172.30.56.10:5000/stackpilot-dev/mock-exchange";

fn expect() -> SwarmExpect {
    SwarmExpect {
        manager: "control".into(),
        lab: "stackpilot".into(),
        env: "dev".into(),
        stack: "stackpilot-dev".into(),
        nodes: ["control", "worker1", "worker2"]
            .map(|n| ExpectedNode { name: n.into() })
            .to_vec(),
        placement: BTreeMap::from([
            ("api".to_string(), vec!["worker1".into(), "worker2".into()]),
            ("db".to_string(), vec!["control".into()]),
        ]),
        deployed: Some(DeployedApp {
            image: format!("{IMAGE}@{DIGEST}"),
            build_id: "b-42".into(),
        }),
    }
}

fn node(name: &str, manager: bool) -> SwarmNode {
    SwarmNode {
        id: format!("id-{name}"),
        hostname: name.into(),
        inventory_name: Some(name.into()),
        role_label: Some(if manager { "control" } else { "worker" }.into()),
        role: if manager { "manager" } else { "worker" }.into(),
        state: "ready".into(),
        availability: "active".into(),
        addr: "172.30.56.10".into(),
        reachability: manager.then(|| "reachable".into()),
        leader: manager,
    }
}

fn task(service: &str, slot: i64, on: &str, image: &str) -> SwarmTask {
    SwarmTask {
        id: format!("t-{service}-{slot}"),
        service_id: format!("s-{service}"),
        slot: Some(slot),
        node_id: format!("id-{on}"),
        desired_state: "running".into(),
        state: "running".into(),
        image: image.into(),
        container_id: Some("c0ffee".into()),
        message: "started".into(),
        timestamp: "2026-11-30T21:00:00Z".into(),
    }
}

fn service(name: &str, replicas: u64, image: &str) -> SwarmService {
    SwarmService {
        id: format!("s-{name}"),
        name: format!("stackpilot-dev_{name}"),
        service: name.into(),
        image: image.into(),
        replicas: Some(replicas),
        max_per_node: Some(1),
        constraints: vec![],
        endpoint_mode: "dnsrr".into(),
        ports: vec![],
        update_state: None,
    }
}

fn pinned() -> String {
    format!("{IMAGE}:abc-b-42@{DIGEST}")
}

/// The healthy stack: db on control, one api on each worker, all on the deployed digest.
fn doc() -> SwarmInspection {
    SwarmInspection {
        node: "control".into(),
        lab: "stackpilot".into(),
        env: "dev".into(),
        stack: "stackpilot-dev".into(),
        engine: Fact::Found(Engine {
            version: "20.10.24+dfsg1".into(),
            api_version: "1.41".into(),
        }),
        declared: Fact::Found(Declared {
            command: "docker-compose".into(),
            services: vec!["api".into(), "db".into()],
        }),
        nodes: Fact::Found(vec![
            node("control", true),
            node("worker1", false),
            node("worker2", false),
        ]),
        services: Fact::Found(vec![
            service("api", 2, &pinned()),
            service("db", 1, "stackpilot/postgres:bookworm-1"),
        ]),
        tasks: Fact::Found(vec![
            task("api", 1, "worker1", &pinned()),
            task("api", 2, "worker2", &pinned()),
            task("db", 1, "control", "stackpilot/postgres:bookworm-1"),
        ]),
    }
}

fn answered(path: &str, status: u16, body: &str) -> HttpProbe {
    HttpProbe {
        url: format!("http://x{path}"),
        outcome: HttpOutcome::Answered {
            status,
            body: body.into(),
        },
        elapsed_ms: 3,
    }
}

fn probes(node: &str, build_id: &str) -> NodeProbes {
    let addr: SocketAddr = "172.30.56.11:8000".parse().expect("address");
    NodeProbes {
        node: node.into(),
        addr,
        tcp: Some(TcpProbe {
            addr,
            outcome: TcpOutcome::Connected,
            elapsed_ms: 1,
        }),
        health: Some(answered("/health", 200, r#"{"status":"alive"}"#)),
        ready: Some(answered("/ready", 200, r#"{"status":"ready"}"#)),
        version: Some(answered(
            "/version",
            200,
            &format!(r#"{{"build_id":"{build_id}"}}"#),
        )),
    }
}

fn observed(doc: SwarmInspection) -> SwarmObservations {
    SwarmObservations {
        manager: Some(ManagerObservation {
            via: "docker exec a2df".into(),
            elapsed_ms: 40,
            outcome: ManagerOutcome::Inspected(Box::new(doc)),
        }),
        probes: vec![probes("worker1", "b-42"), probes("worker2", "b-42")],
    }
}

/// The first failed check: its id and reason.
fn first_failure(r: &Report) -> (String, String) {
    let c = r
        .checks
        .iter()
        .find(|c| c.verdict == Verdict::Fail)
        .expect("a failed check");
    (c.id.clone(), c.reason.clone())
}

fn verdict_of<'a>(r: &'a Report, id: &str) -> &'a Check {
    r.checks.iter().find(|c| c.id == id).expect("check present")
}

/// The ids of the checks that did not pass.
fn not_passed(r: &Report) -> Vec<&str> {
    r.checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(|c| c.id.as_str())
        .collect()
}

/// The report on the healthy stack once `change` is made to what the manager reported.
fn evaluated_after(change: impl FnOnce(&mut SwarmInspection)) -> Report {
    let mut d = doc();
    change(&mut d);
    evaluate(&expect(), &observed(d), 0)
}

/// The list of a fact of the healthy document, which finds every one.
fn found<T>(fact: &mut Fact<Vec<T>>) -> &mut Vec<T> {
    match fact {
        Fact::Found(v) => v,
        _ => panic!("the healthy document finds every fact"),
    }
}

#[test]
fn a_healthy_stack_passes_every_layer() {
    let r = evaluate(&expect(), &observed(doc()), 0);
    assert!(r.passed, "{:?}", not_passed(&r));
    assert_eq!(r.checks.len(), 4 + 4 + 2 + 6 + 2);
    assert!(r.summary.usable && r.summary.ready && r.summary.tcp_reachable);
}

#[test]
fn a_drained_node_fails_the_swarm_layer_and_blocks_the_rest() {
    let r = evaluated_after(|d| {
        let nodes = found(&mut d.nodes);
        nodes[2].availability = "drain".into();
    });
    let (id, reason) = first_failure(&r);
    assert_eq!(id, "swarm.nodes");
    assert!(reason.contains("worker2 is ready but drain"), "{reason}");
    let replicas = verdict_of(&r, "services.replicas");
    assert_eq!(replicas.verdict, Verdict::NotRun);
    assert!(
        replicas
            .reason
            .contains("layer 1 (swarm) failed at swarm.nodes")
    );
}

#[test]
fn a_down_node_or_one_missing_from_the_swarm_is_named() {
    let (id, reason) = first_failure(&evaluated_after(|d| {
        let nodes = found(&mut d.nodes);
        nodes[1].state = "down".into();
        nodes.remove(2);
    }));
    assert_eq!(id, "swarm.nodes");
    assert_eq!(
        reason,
        "worker1 is down (expected ready); worker2 is not a member of the swarm"
    );
}

#[test]
fn a_stale_down_entry_of_a_rejoined_node_does_not_count() {
    let r = evaluated_after(|d| {
        let mut stale = node("worker1", false);
        stale.id = "id-old".into();
        stale.state = "down".into();
        found(&mut d.nodes).insert(1, stale);
    });
    assert!(r.passed);
}

#[test]
fn a_manager_that_is_not_the_leader_fails() {
    let (id, _) = first_failure(&evaluated_after(|d| {
        let nodes = found(&mut d.nodes);
        nodes[0].leader = false;
    }));
    assert_eq!(id, "swarm.manager");
}

#[test]
fn a_node_that_is_no_manager_cannot_list_nodes() {
    let (id, reason) = first_failure(&evaluated_after(|d| {
        d.nodes = Fact::Error("This node is not a swarm manager.".into());
    }));
    assert_eq!(id, "swarm.manager");
    assert!(reason.contains("not a swarm manager"), "{reason}");
}

#[test]
fn an_unreachable_manager_fails_first_and_nothing_else_runs() {
    let obs = SwarmObservations {
        manager: Some(ManagerObservation {
            via: "docker exec a2df".into(),
            elapsed_ms: 5,
            outcome: ManagerOutcome::Unreachable("No such container: a2df".into()),
        }),
        probes: vec![],
    };
    let r = evaluate(&expect(), &obs, 0);
    let (id, reason) = first_failure(&r);
    assert_eq!(id, "swarm.manager-reachable");
    assert!(reason.contains("No such container"));
    assert_eq!(
        r.checks
            .iter()
            .filter(|c| c.verdict == Verdict::NotRun)
            .count(),
        r.checks.len() - 1
    );
}

#[test]
fn a_missing_task_fails_the_services_layer_naming_the_node_without_it() {
    let r = evaluated_after(|d| {
        let tasks = found(&mut d.tasks);
        tasks[1].state = "pending".into();
        tasks[1].node_id = String::new();
        tasks[1].message = "no suitable node (max replicas per node limit exceed)".into();
    });
    let (id, reason) = first_failure(&r);
    assert_eq!(id, "services.replicas");
    assert!(
        reason.contains("api has 1 of 2 replicas running"),
        "{reason}"
    );
    assert!(
        reason.contains("task 2 pending (no suitable node"),
        "{reason}"
    );
    let placement = verdict_of(&r, "services.placement");
    assert!(
        placement.reason.contains("no running replica on worker2"),
        "{}",
        placement.reason
    );
    assert_eq!(
        verdict_of(&r, "tcp.connect@worker1").verdict,
        Verdict::NotRun
    );
}

#[test]
fn a_service_scaled_down_is_caught_by_placement() {
    let (id, reason) = first_failure(&evaluated_after(|d| {
        found(&mut d.services)[0].replicas = Some(1);
        found(&mut d.tasks).remove(1);
    }));
    assert_eq!(id, "services.placement");
    assert_eq!(
        reason,
        "api: expected one running replica on each of worker1, worker2; no running replica on worker2"
    );
}

#[test]
fn a_replica_on_the_wrong_node_is_named() {
    let (_, reason) = first_failure(&evaluated_after(|d| {
        let tasks = found(&mut d.tasks);
        tasks[0].node_id = "id-control".into();
    }));
    assert!(
        reason.contains("a replica runs on control, where it should not"),
        "{reason}"
    );
}

#[test]
fn services_must_be_exactly_those_of_the_compose_file() {
    let r = evaluated_after(|d| {
        let services = found(&mut d.services);
        services.push(service("debug", 1, "busybox"));
        services.retain(|s| s.service != "db");
    });
    let (id, reason) = first_failure(&r);
    assert_eq!(id, "services.declared");
    assert!(
        reason.contains(
            "missing from the stack: db; in the stack but not in the compose file: debug"
        ),
        "{reason}"
    );
}

#[test]
fn an_update_in_flight_fails() {
    let (id, reason) = first_failure(&evaluated_after(|d| {
        let services = found(&mut d.services);
        services[0].update_state = Some("updating".into());
    }));
    assert_eq!(
        (id.as_str(), reason.as_str()),
        ("services.update", "api update updating")
    );
}

#[test]
fn a_closed_port_on_one_worker_fails_tcp_for_that_worker_only() {
    let mut obs = observed(doc());
    if let Some(tcp) = obs.probes[1].tcp.as_mut() {
        tcp.outcome = TcpOutcome::Refused;
    }
    let r = evaluate(&expect(), &obs, 0);
    assert_eq!(verdict_of(&r, "tcp.connect@worker1").verdict, Verdict::Pass);
    let (id, _) = first_failure(&r);
    assert_eq!(id, "tcp.connect@worker2");
    assert_eq!(
        verdict_of(&r, "http.ready@worker1").verdict,
        Verdict::NotRun
    );
    assert!(!r.summary.tcp_reachable);
}

#[test]
fn a_replica_answering_another_build_fails_at_http_version() {
    let mut obs = observed(doc());
    obs.probes[0] = probes("worker1", "b-41");
    let (id, reason) = first_failure(&evaluate(&expect(), &obs, 0));
    assert_eq!(id, "http.version@worker1");
    assert!(reason.contains("expected build_id b-42"), "{reason}");
}

#[test]
fn a_replica_running_another_digest_fails_at_provenance() {
    let r = evaluated_after(|d| {
        let tasks = found(&mut d.tasks);
        tasks[1].image = format!("{IMAGE}:abc-b-42@{OTHER}");
    });
    let (id, reason) = first_failure(&r);
    assert_eq!(id, "provenance.replica-digest");
    assert!(
        reason.contains(&format!("the replica on worker2 runs {OTHER}")),
        "{reason}"
    );
    assert_eq!(
        verdict_of(&r, "provenance.service-image").verdict,
        Verdict::Pass
    );
    assert!(r.summary.ready && !r.summary.usable);
}

#[test]
fn a_service_run_by_tag_is_not_pinned() {
    let (id, reason) = first_failure(&evaluated_after(|d| {
        let services = found(&mut d.services);
        services[0].image = format!("{IMAGE}:abc-b-42");
    }));
    assert_eq!(id, "provenance.service-image");
    assert!(reason.contains("by tag, not by digest"), "{reason}");
}

#[test]
fn without_a_deployment_record_the_build_cannot_be_told() {
    let mut e = expect();
    e.deployed = None;
    let (id, reason) = first_failure(&evaluate(&e, &observed(doc()), 0));
    assert_eq!(id, "http.version@worker1");
    assert!(
        reason.contains("no deployment record for env dev"),
        "{reason}"
    );
}

#[test]
fn observe_stops_at_the_first_failed_layer() {
    struct Manager(String);
    impl crate::host::NodeRunner for Manager {
        fn describe(&self) -> String {
            "fake".into()
        }
        fn run(&self, _argv: &[&str], _t: Duration) -> crate::host::NodeRun {
            crate::host::NodeRun::Ran {
                code: Some(0),
                stdout: self.0.clone(),
                stderr: String::new(),
            }
        }
    }
    let mut d = doc();
    found(&mut d.nodes)[1].availability = "drain".into();
    let target = crate::swarm::SwarmTarget {
        expect: expect(),
        // A port nothing listens on: probing it would fail layer 3, not layer 1.
        addrs: BTreeMap::from([("worker1".to_string(), "127.0.0.1:9".parse().expect("addr"))]),
    };
    let cfg = crate::host::RunConfig {
        node_verify: "verify".into(),
        node_timeout: Duration::from_secs(1),
        probe: stackpilot_core::http::Timeouts::default(),
    };
    let doc_json = serde_json::to_string(&d).expect("serialises");
    let obs = crate::swarm::host::observe(&target, &Manager(doc_json), &cfg);
    assert!(
        obs.probes.is_empty(),
        "no port probed after a failed swarm layer"
    );
    let (id, _) = first_failure(&evaluate(&expect(), &obs, 0));
    assert_eq!(id, "swarm.nodes");
}

/// The engine's JSON as a real swarm of lab nodes reported it (`docker node inspect`,
/// `docker service inspect`, `docker inspect --type task`: the API's own objects; Env
/// dropped), read back through the same conversions `verify inspect-swarm` uses.
mod recorded {
    use stackpilot_core::facade::models;

    use super::*;
    use crate::swarm::inspection::{node_fact, service_fact, task_fact};

    fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
        serde_json::from_str(text).expect("recorded engine JSON parses as bollard models")
    }

    #[test]
    fn nodes_convert_with_role_state_availability_and_leadership() {
        let nodes: Vec<_> = parse::<models::Node>(include_str!("../fixtures/nodes.json"))
            .iter()
            .map(node_fact)
            .collect();
        let control = nodes
            .iter()
            .find(|n| n.name() == "control")
            .expect("control");
        assert_eq!(
            (
                control.role.as_str(),
                control.state.as_str(),
                control.availability.as_str()
            ),
            ("manager", "ready", "active")
        );
        assert!(control.leader);
        assert_eq!(control.reachability.as_deref(), Some("reachable"));
        let worker = nodes
            .iter()
            .find(|n| n.name() == "worker2")
            .expect("worker2");
        assert_eq!((worker.role.as_str(), worker.leader), ("worker", false));
        assert_eq!(worker.addr, "172.30.56.12");
    }

    #[test]
    fn services_convert_with_replicas_placement_dnsrr_and_host_ports() {
        let services: Vec<_> = parse::<models::Service>(include_str!("../fixtures/services.json"))
            .iter()
            .map(|s| service_fact(s, "stackpilot-dev"))
            .collect();
        let api = services.iter().find(|s| s.service == "api").expect("api");
        assert_eq!(api.name, "stackpilot-dev_api");
        assert_eq!((api.replicas, api.max_per_node), (Some(2), Some(1)));
        assert_eq!(api.endpoint_mode, "dnsrr");
        assert_eq!(api.ports.len(), 1);
        assert_eq!(
            (
                api.ports[0].target,
                api.ports[0].published,
                api.ports[0].mode.as_str()
            ),
            (8000, 8000, "host")
        );
        assert!(
            api.image.starts_with("stackpilot/mock-exchange:"),
            "{}",
            api.image
        );
        let db = services.iter().find(|s| s.service == "db").expect("db");
        assert_eq!(db.replicas, Some(1));
        assert_eq!(db.constraints.len(), 1);
    }

    // The recorded tasks' container ids are redacted (`redacted-container-N`): 64-hex ids
    // read as secrets to the repo's secret scan, and no verdict looks at them.
    #[test]
    fn tasks_convert_and_the_recorded_stack_is_placed_as_swarm_mode_wants() {
        let nodes: Vec<_> = parse::<models::Node>(include_str!("../fixtures/nodes.json"))
            .iter()
            .map(node_fact)
            .collect();
        let services: Vec<_> = parse::<models::Service>(include_str!("../fixtures/services.json"))
            .iter()
            .map(|s| service_fact(s, "stackpilot-dev"))
            .collect();
        let tasks: Vec<_> = parse::<models::Task>(include_str!("../fixtures/tasks.json"))
            .iter()
            .map(task_fact)
            .collect();
        assert_eq!(tasks.len(), 3);
        assert!(
            tasks
                .iter()
                .all(|t| t.running() && t.container_id.is_some())
        );
        let mut doc = doc();
        doc.nodes = Fact::Found(nodes);
        doc.services = Fact::Found(services);
        doc.tasks = Fact::Found(tasks);
        // Recorded before the lab registry existed: the app ran by tag, so layers 1 and 2
        // pass on it and provenance names the missing digest.
        let r = evaluate(&expect(), &observed(doc), 0);
        assert_eq!(
            not_passed(&r),
            ["provenance.service-image", "provenance.replica-digest"]
        );
    }
}
