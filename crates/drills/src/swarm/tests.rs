use verify::inspection::Fact;
use verify::swarm::inspection::{SwarmNode, SwarmService, SwarmTask};

use super::*;
use crate::samples::Sample;

fn attempt(node: &str, t_ms: u64, status: Option<u16>, id: Option<&str>) -> NodeAttempt {
    NodeAttempt {
        node: node.into(),
        attempt: OrderAttempt {
            sample: Sample {
                t_ms,
                status,
                detail: if status.is_some() { "{}" } else { "refused" }.into(),
                elapsed_ms: 10,
            },
            order_id: id.map(String::from),
        },
        refused_by: vec![],
    }
}

fn node(name: &str, id: &str, state: &str) -> SwarmNode {
    SwarmNode {
        id: id.into(),
        hostname: name.into(),
        state: state.into(),
        availability: "active".into(),
        ..SwarmNode::default()
    }
}

fn task(slot: i64, node_id: &str, state: &str, timestamp: &str, message: &str) -> SwarmTask {
    SwarmTask {
        id: format!("t{slot}{node_id}{state}"),
        service_id: "s-api".into(),
        slot: Some(slot),
        node_id: node_id.into(),
        desired_state: "running".into(),
        state: state.into(),
        message: message.into(),
        timestamp: timestamp.into(),
        ..SwarmTask::default()
    }
}

/// worker2 lost: its replica pending, a stale worker2 entry down beside the new ready one.
fn doc(tasks: Vec<SwarmTask>) -> SwarmInspection {
    SwarmInspection {
        node: "control".into(),
        lab: "stackpilot".into(),
        env: "dev".into(),
        stack: "stackpilot-dev".into(),
        engine: Fact::Absent("not needed".into()),
        declared: Fact::Absent("not needed".into()),
        nodes: Fact::Found(vec![
            node("worker1", "n1", "ready"),
            node("worker2", "n2-old", "down"),
            node("worker2", "n2", "ready"),
        ]),
        services: Fact::Found(vec![SwarmService {
            id: "s-api".into(),
            service: "api".into(),
            replicas: Some(2),
            ..SwarmService::default()
        }]),
        tasks: Fact::Found(tasks),
    }
}

#[test]
fn the_load_is_summed_per_node_and_failures_are_told_apart() {
    let a = [
        attempt("worker1", 0, Some(201), Some("1")),
        attempt("worker2", 100, None, None),
        attempt("worker2", 200, Some(503), None),
        attempt("worker1", 990, Some(201), Some("2")),
    ];
    let per = by_node(&a);
    assert_eq!(per["worker1"].acknowledged, 2);
    assert_eq!(per["worker2"].no_answer, 1);
    assert_eq!(non_2xx(&a), 1);
    assert_eq!(unanswered(&a), 1);
    assert_eq!(acknowledged(&a), ["1", "2"]);
    // 4 requests from t=0 to t=1000 (the last answered after 10 ms).
    assert_eq!(rate_per_s(&a), Some(4.0));
    assert_eq!(rate_per_s(&[]), None);
}

#[test]
fn a_rejoined_node_is_ready_despite_its_stale_entry() {
    let d = doc(vec![]);
    assert_eq!(node_state(&d, "worker2").as_deref(), Some("ready"));
    assert_eq!(node_state(&d, "worker1").as_deref(), Some("ready"));
    assert_eq!(node_state(&d, "worker9"), None);
}

#[test]
fn whole_means_every_desired_replica_running_on_the_nodes_named() {
    let both = doc(vec![
        task(1, "n1", "running", "t1", "started"),
        task(2, "n2", "running", "t1", "started"),
    ]);
    let workers = ["worker1".to_string(), "worker2".to_string()];
    assert!(whole(&both, API, &workers));
    assert!(whole(&both, API, &[]));
    assert_eq!(running_on(&both, API), workers);

    let one = doc(vec![
        task(1, "n1", "running", "t1", "started"),
        task(
            2,
            "",
            "pending",
            "t2",
            "no suitable node (max replicas per node limit exceed)",
        ),
        task(2, "n2-old", "shutdown", "t0", "node is down"),
    ]);
    assert!(!whole(&one, API, &workers));
    assert_eq!(running_on(&one, API), ["worker1"]);
    assert_eq!(
        pending_reason(&one, API).as_deref(),
        Some("task 2 pending: no suitable node (max replicas per node limit exceed)")
    );
}

#[test]
fn two_replicas_on_one_node_are_not_whole_where_one_per_node_is_asked() {
    let d = doc(vec![
        task(1, "n1", "running", "t1", "started"),
        task(2, "n1", "running", "t1", "started"),
    ]);
    assert!(whole(&d, API, &[]));
    assert!(!whole(&d, API, &["worker1".into(), "worker2".into()]));
}

/// A loopback api that acknowledges every order (its own id each), until the test ends.
fn acknowledging_api() -> SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
                    break;
                }
            }
            let body = format!(r#"{{"order_id":"o-{n}"}}"#);
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 201 Created\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// An address nothing listens on: bound once, then released.
fn refusing_address() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("addr")
}

fn run_load(failover: Failover) -> Vec<NodeAttempt> {
    let nodes = vec![
        ("worker1".to_string(), refusing_address()),
        ("worker2".to_string(), acknowledging_api()),
    ];
    let load = SpreadLoad::start(
        &nodes,
        2,
        Duration::from_millis(20),
        failover,
        Instant::now(),
    );
    thread::sleep(Duration::from_millis(400));
    load.finish()
}

#[test]
fn with_failover_a_refused_request_is_taken_by_the_next_node_and_counted() {
    let attempts = run_load(Failover::NeverSent);
    assert!(attempts.len() >= 4, "{attempts:?}");
    assert_eq!(unanswered(&attempts), 0, "{attempts:?}");
    assert_eq!(non_2xx(&attempts), 0, "{attempts:?}");
    assert!(attempts.iter().all(|a| a.node == "worker2"), "{attempts:?}");
    let moved = failed_over(&attempts);
    assert!(moved >= 1, "{attempts:?}");
    assert!(
        attempts
            .iter()
            .filter(|a| !a.refused_by.is_empty())
            .all(|a| a.refused_by == ["worker1"]),
        "{attempts:?}"
    );
    assert_eq!(acknowledged(&attempts).len(), attempts.len());
}

/// A loopback api on `addr` that starts `after` and is ready from `ready_at` on: before,
/// /ready and orders answer 503, as a replica whose request pool is still cold.
fn api_ready_from(addr: SocketAddr, after: Duration, ready_at: Instant) {
    use std::io::{BufRead, BufReader, Write};
    thread::sleep(after);
    let listener = std::net::TcpListener::bind(addr).expect("bind the refused address again");
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
                    break;
                }
            }
            let ready = Instant::now() >= ready_at;
            let (status, body) = match (request.contains(" /ready "), ready) {
                (_, false) => (
                    "503 Service Unavailable",
                    r#"{"reason":"warming"}"#.to_string(),
                ),
                (true, true) => ("200 OK", r#"{"status":"ready"}"#.to_string()),
                (false, true) => ("201 Created", format!(r#"{{"order_id":"r-{n}"}}"#)),
            };
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

#[test]
fn with_failover_a_node_that_refused_gets_orders_again_only_once_it_is_ready() {
    let back = refusing_address();
    let nodes = vec![
        ("worker1".to_string(), back),
        ("worker2".to_string(), acknowledging_api()),
    ];
    let start = Instant::now();
    let load = SpreadLoad::start(
        &nodes,
        2,
        Duration::from_millis(20),
        Failover::NeverSent,
        start,
    );
    // worker1 refuses for 300 ms, then listens but is not ready until 700 ms.
    api_ready_from(
        back,
        Duration::from_millis(300),
        start + Duration::from_millis(700),
    );
    thread::sleep(Duration::from_millis(1200));
    let attempts = load.finish();
    assert_eq!(non_2xx(&attempts), 0, "{attempts:?}");
    assert_eq!(unanswered(&attempts), 0, "{attempts:?}");
    assert!(failed_over(&attempts) >= 1, "{attempts:?}");
    let back_in: Vec<&NodeAttempt> = attempts.iter().filter(|a| a.node == "worker1").collect();
    assert!(!back_in.is_empty(), "worker1 was taken back: {attempts:?}");
    assert!(
        back_in.iter().all(|a| a.attempt.sample.t_ms >= 700),
        "worker1 got orders only once ready: {back_in:?}"
    );
}

#[test]
fn without_failover_a_refused_request_stays_unanswered() {
    let attempts = run_load(Failover::Never);
    assert!(unanswered(&attempts) >= 1, "{attempts:?}");
    assert_eq!(failed_over(&attempts), 0, "{attempts:?}");
    assert!(
        attempts
            .iter()
            .filter(|a| a.node == "worker1")
            .all(|a| a.attempt.sample.refused()),
        "{attempts:?}"
    );
}

#[test]
fn running_tasks_are_the_running_replicas_of_the_service_only() {
    let mut stopped = task(1, "n1", "shutdown", "t0", "");
    stopped.desired_state = "shutdown".into();
    let d = doc(vec![
        task(2, "n2", "running", "t1", ""),
        task(1, "n1", "running", "t1", ""),
        stopped,
        task(3, "n2", "pending", "t1", "no suitable node"),
    ]);
    assert_eq!(running_tasks(&d, API), ["t1n1running", "t2n2running"]);
    assert!(running_tasks(&d, DB).is_empty());
}

#[test]
fn unanswered_requests_have_a_budget_of_one_per_thousand_and_failed_ones_are_each_named() {
    assert!(unanswered_within_budget(0, 0));
    assert!(unanswered_within_budget(0, 2517));
    assert!(unanswered_within_budget(1, 2517));
    assert!(unanswered_within_budget(2, 2517));
    assert!(!unanswered_within_budget(3, 2517));
    assert!(!unanswered_within_budget(1, 999));
    let mut failed_over = attempt("worker2", 900, None, None);
    failed_over.refused_by = vec!["worker1".into()];
    let attempts = [
        attempt("worker1", 100, Some(201), Some("o1")),
        failed_over,
        attempt("worker1", 950, Some(503), None),
    ];
    assert_eq!(
        failed_lines(&attempts),
        [
            "worker2 at 900 ms (after worker1 did not take it): refused after 10 ms",
            "worker1 at 950 ms: 503 {} after 10 ms"
        ]
    );
    assert_eq!(
        failed_lines(attempts.iter().filter(|a| a.node == "worker1")),
        ["worker1 at 950 ms: 503 {} after 10 ms"]
    );
}

/// A task of the api with its own id, as swarm lists it after an update: the replaced one
/// wanted `shutdown`, its successor `running`.
fn api_task(id: &str, slot: i64, node_id: &str, desired: &str, state: &str) -> SwarmTask {
    SwarmTask {
        id: id.into(),
        desired_state: desired.into(),
        ..task(slot, node_id, state, "", "")
    }
}

/// worker1 (n1) and worker2 (n2), each running its api replica (a1, a2).
fn steady() -> Vec<SwarmTask> {
    vec![
        api_task("a1", 1, "n1", "running", "running"),
        api_task("a2", 2, "n2", "running", "running"),
    ]
}

fn workers() -> Vec<String> {
    vec!["worker1".into(), "worker2".into()]
}

#[test]
fn an_update_that_replaced_each_replica_once_on_its_node_is_told_apart() {
    let before = doc(steady());
    let replaced = |more: Vec<SwarmTask>| {
        let mut t = vec![
            api_task("a1", 1, "n1", "shutdown", "shutdown"),
            api_task("a2", 2, "n2", "shutdown", "shutdown"),
        ];
        t.extend(more);
        doc(t)
    };
    let once = replaced(vec![
        api_task("b1", 1, "n1", "running", "running"),
        api_task("b2", 2, "n2", "running", "running"),
    ]);
    assert!(replaced_once(&before, &once, API, &workers()));
    assert_eq!(
        describe_new_tasks(&new_tasks(&before, &once, API)),
        "worker1: b1 running; worker2: b2 running"
    );
    // A replica that failed with the wrong password and was started again: two new tasks.
    let restarted = replaced(vec![
        api_task("b1", 1, "n1", "shutdown", "failed"),
        api_task("c1", 1, "n1", "running", "running"),
        api_task("b2", 2, "n2", "running", "running"),
    ]);
    assert!(!replaced_once(&before, &restarted, API, &workers()));
    // Still rolling: worker2's new replica not running yet.
    let rolling = replaced(vec![
        api_task("b1", 1, "n1", "running", "running"),
        api_task("b2", 2, "n2", "running", "starting"),
    ]);
    assert!(!replaced_once(&before, &rolling, API, &workers()));
    // Not replaced at all.
    assert!(!replaced_once(&before, &before, API, &workers()));
    // Moved: both new replicas on worker1.
    let moved = replaced(vec![
        api_task("b1", 1, "n1", "running", "running"),
        api_task("b2", 2, "n1", "running", "running"),
    ]);
    assert!(!replaced_once(&before, &moved, API, &workers()));
}

#[test]
fn a_stable_task_list_shows_no_restart_and_a_new_task_is_one() {
    let held = doc(steady());
    assert!(new_tasks(&held, &held, API).is_empty());
    assert_eq!(describe_new_tasks(&new_tasks(&held, &held, API)), "none");
    let mut looping = steady();
    looping[1] = api_task("a2", 2, "n2", "shutdown", "failed");
    looping.push(api_task("c2", 2, "n2", "running", "starting"));
    let new = new_tasks(&held, &doc(looping), API);
    assert_eq!(describe_new_tasks(&new), "worker2: c2 starting");
}

/// The manager's account recorded on the lab (2026-12-01, docker provider) around `docker
/// service update --env-add DATABASE_URL=<wrong password> stackpilot-dev_api`: before it,
/// once a new task ran on both workers (8 s later), and 8 s after that.
fn recorded(name: &str) -> SwarmInspection {
    let text = match name {
        "before" => include_str!("fixtures/bad-credentials-before.json"),
        "replaced" => include_str!("fixtures/bad-credentials-replaced.json"),
        _ => include_str!("fixtures/bad-credentials-held.json"),
    };
    serde_json::from_str(text).expect("a recorded inspection")
}

#[test]
fn a_recorded_wrong_password_update_replaced_each_replica_once_and_then_held() {
    let (before, replaced, held) = (recorded("before"), recorded("replaced"), recorded("held"));
    assert!(replaced_once(&before, &replaced, API, &workers()));
    assert_eq!(running_on(&replaced, API), workers());
    assert_eq!(update_state(&replaced, API).as_deref(), Some("updating"));
    // No restart over the hold; the update then completed.
    assert!(new_tasks(&replaced, &held, API).is_empty());
    assert!(whole(&held, API, &workers()));
    assert_eq!(update_state(&held, API).as_deref(), Some("completed"));
    // Before the roll nothing is new, and the db was not touched by it.
    assert!(!replaced_once(&before, &before, API, &workers()));
    assert!(new_tasks(&before, &held, DB).is_empty());
}
