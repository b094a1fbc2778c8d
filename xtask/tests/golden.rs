//! The golden path end to end on the docker provider, real everything: Vagrant nodes
//! running their own Docker engine, the app compiled from source, built on the node,
//! started by compose, verified from the host.
//!
//! Test names start with `e2e_`: nextest runs them one at a time (.config/nextest.toml)
//! because they share the lab's nodes.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{Undo, capable, last_panic, ok, succeeded, text};

use stackpilot_core::http::{self, Timeouts};

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Runs `cargo xtask <args>` (the real binary) for NODE in ENV=dev; output echoed.
fn xtask(node: &str, args: &[&str]) -> Output {
    support::xtask(node, args, &[("ENV", "dev")])
}

/// Runs a shell snippet inside the node (test-side fault injection and inspection).
fn on_node(node: &str, script: &str) -> Output {
    support::in_node(node)
        .args(["sh", "-c", script])
        .output()
        .expect("docker exec runs")
}

fn on_node_ok(node: &str, script: &str) -> String {
    let o = on_node(node, script);
    assert!(o.status.success(), "`{script}` on {node}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn receipt(node: &str) -> serde_json::Value {
    let s = on_node_ok(node, "cat /var/lib/stackpilot/dev/build-receipt.json");
    serde_json::from_str(&s).expect("receipt is JSON")
}

fn verify_json(node: &str) -> (bool, serde_json::Value) {
    let o = xtask(node, &["verify", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}): {}", text(&o)));
    (o.status.success(), report)
}

fn check<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no check {id} in {report}"))
}

fn first_failure(report: &serde_json::Value) -> serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["verdict"] == "fail"))
        .cloned()
        .unwrap_or_else(|| panic!("no failed check in {report}"))
}

/// The node's service URL, at the address its lab was given: named labs choose a free
/// subnet, so it is asked of the lab (`lab status --json`), never assumed.
fn base_url(node: &str) -> String {
    let out = xtask(node, &["lab", "status", "--json", node]);
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("lab status --json is one JSON document");
    let addr = doc["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node"] == node))
        .and_then(|n| n["address"].as_str())
        .filter(|a| *a != "-")
        .unwrap_or_else(|| panic!("{node} has no address in {doc}"))
        .to_string();
    format!("http://{addr}:8000")
}

fn create_order(node: &str) -> String {
    let p = http::post_json(
        &format!("{}/order?symbol=ETH&side=sell&qty=2", base_url(node)),
        "",
        Timeouts::default(),
    );
    let (status, body) = p.answer().unwrap_or_else(|| panic!("no answer: {p:?}"));
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(body).expect("json");
    v["order_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v["order_id"].to_string())
}

fn order_status(node: &str, id: &str) -> Option<u16> {
    http::get(
        &format!("{}/orders/{id}", base_url(node)),
        Timeouts::default(),
    )
    .answer()
    .map(|(s, _)| s)
}

/// Waits until verify passes (after a test put things back), up to `secs`.
fn wait_verified(node: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (passed, report) = verify_json(node);
        if passed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "verify did not pass again: {report}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn project_container(node: &str, service: &str) -> String {
    on_node_ok(
        node,
        &format!(
            "docker ps -aq --filter label=com.docker.compose.project=stackpilot-dev --filter label=com.docker.compose.service={service}"
        ),
    )
}

#[test]
fn e2e_demo_reviewer_then_clean_room_rebuilds_and_keeps_data() {
    if !capable() {
        return;
    }
    let node = "control";
    let o = xtask(node, &["demo-reviewer"]);
    ok(&o, "make demo-reviewer");
    let t = text(&o);
    for phase in [
        "clean room",
        "compile app",
        "image build",
        "start + healthy",
        "verify",
        "total",
    ] {
        assert!(
            t.contains(phase),
            "phase '{phase}' missing from the summary"
        );
    }
    assert!(t.contains("Step 1/"), "docker build output is not visible");
    let first = receipt(node);

    let order = create_order(node);

    // make demo twice: a new image each time, and verify names the newest.
    let o = xtask(node, &["demo"]);
    ok(&o, "make demo");
    assert!(
        text(&o).contains("Step 1/"),
        "second build's output is not visible"
    );
    let second = receipt(node);
    assert_ne!(
        first["image_id"], second["image_id"],
        "demo must rebuild the image"
    );
    // Verify mutates nothing: record the node engine's events around a verification.
    // The engine's own healthchecks exec into the containers every few seconds: their
    // exec_create/exec_start name the healthcheck command and are allowed. exec_die names
    // no command; an exec that changed something would show in its exec_create.
    let since = on_node_ok(node, "date +%s.%N");
    let (passed, report) = verify_json(node);
    let until = on_node_ok(node, "date +%s.%N");
    assert!(passed, "{report}");
    let events = on_node_ok(
        node,
        &format!(
            "docker events --since {since} --until {until} --format '{{{{.Type}}}} {{{{.Action}}}}'"
        ),
    );
    assert_eq!(
        support::mutating_events(&events),
        Vec::<String>::new(),
        "verify caused mutating events on the node engine: {events}"
    );
    let image_check = check(&report, "provenance.image-id")["reason"].to_string();
    let short = second["image_id"]
        .as_str()
        .expect("id")
        .trim_start_matches("sha256:")[..12]
        .to_string();
    assert!(
        image_check.contains(&short),
        "verify should name {short}: {image_check}"
    );

    // make clean: no container of the stack, no app image; the volume stays.
    ok(&xtask(node, &["clean"]), "make clean");
    assert_eq!(
        on_node_ok(
            node,
            "docker ps -aq --filter label=com.docker.compose.project=stackpilot-dev"
        ),
        ""
    );
    assert_eq!(
        on_node_ok(
            node,
            "docker images -q --filter label=stackpilot.app=mock-exchange"
        ),
        ""
    );
    assert_ne!(
        on_node_ok(node, "docker volume ls -q --filter name=stackpilot-dev"),
        ""
    );

    // The order survives the clean room and the next rebuild.
    ok(&xtask(node, &["demo"]), "make demo after clean");
    assert_eq!(order_status(node, &order), Some(200), "order {order} lost");

    // Node-side tools refuse to run outside /vagrant.
    let o = on_node(
        node,
        &format!("cd /tmp && /vagrant/target/{TARGET}/release/lifecycle up --env dev"),
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("not running from /vagrant"),
        "{}",
        text(&o)
    );
}

#[test]
fn e2e_verify_fails_at_the_right_layer_for_each_fault() {
    if !capable() {
        return;
    }
    let node = "control";
    ok(&xtask(node, &["up"]), "make up");
    wait_verified(node, 60);

    // /ready 503 while /health 200: the database is stopped.
    let db = project_container(node, "db");
    on_node_ok(node, &format!("docker stop {db}"));
    let db_back = Undo::new("the stopped db", || {
        succeeded(on_node(node, &format!("docker start {db}")))
    });
    let (passed, report) = verify_json(node);
    assert!(!passed);
    assert_eq!(check(&report, "http.health")["verdict"], "pass", "{report}");
    assert_eq!(check(&report, "http.ready")["verdict"], "fail", "{report}");
    assert_eq!(report["summary"]["alive"], true);
    assert_eq!(report["summary"]["ready"], false);
    db_back.now();
    wait_verified(node, 60);

    // The service port closed: TCP fails, HTTP is not run.
    let api = project_container(node, "api");
    on_node_ok(node, &format!("docker stop {api}"));
    let api_back = Undo::new("the stopped api", || {
        succeeded(on_node(node, &format!("docker start {api}")))
    });
    let (passed, report) = verify_json(node);
    assert!(!passed);
    assert_eq!(first_failure(&report)["id"], "tcp.connect", "{report}");
    assert_eq!(
        check(&report, "http.health")["verdict"],
        "not_run",
        "{report}"
    );
    assert!(
        check(&report, "http.health")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("TCP")),
        "{report}"
    );
    api_back.now();
    wait_verified(node, 60);

    // An extra container in the project is a hidden container.
    let db_image = on_node_ok(
        node,
        &format!("docker inspect --format '{{{{.Config.Image}}}}' {db}"),
    );
    on_node_ok(
        node,
        &format!(
            "docker run -d --name intruder --label com.docker.compose.project=stackpilot-dev --label com.docker.compose.service=intruder --entrypoint sleep {db_image} 600"
        ),
    );
    let intruder = Undo::new("the intruder container", || {
        succeeded(on_node(node, "docker rm -f intruder"))
    });
    let (passed, report) = verify_json(node);
    intruder.now();
    assert!(!passed);
    assert_eq!(
        first_failure(&report)["id"],
        "inspect.no-hidden",
        "{report}"
    );
    wait_verified(node, 30);

    // The stack started by compose from another directory and file.
    let app_image = receipt(node)["tag"].as_str().expect("tag").to_string();
    // `make demo` puts the golden stack back after this fault and the next.
    let golden_back = || succeeded(xtask(node, &["demo"]));
    let elsewhere = Undo::new("the stack started from another directory", golden_back);
    on_node_ok(
        node,
        &format!(
            "mkdir -p /tmp/elsewhere && cp infra/docker-compose.yml /tmp/elsewhere/ && cd /tmp/elsewhere && \
             STACKPILOT_APP_IMAGE={app_image} STACKPILOT_DB_IMAGE={db_image} STACKPILOT_PORT=8000 \
             docker-compose -p stackpilot-dev --env-file /vagrant/infra/env/dev.env up -d --force-recreate 2>&1"
        ),
    );
    let (passed, report) = verify_json(node);
    assert!(!passed);
    assert_eq!(
        check(&report, "inspect.wiring-config-file")["verdict"],
        "fail",
        "{report}"
    );
    elsewhere.now();

    // The api runs an older image than the receipt names (a newer build not started).
    let r = receipt(node);
    let newer_build = Undo::new("the newer build receipt", golden_back);
    on_node_ok(
        node,
        &format!(
            "/vagrant/target/{TARGET}/release/lifecycle build --env dev --binary target/{TARGET}/release/mock-exchange \
             --build-id e2e-newer --git-sha {} --runtime-image $(docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' stackpilot/runtime | head -n1) >/dev/null",
            r["git_sha"].as_str().expect("sha")
        ),
    );
    let (passed, report) = verify_json(node);
    assert!(!passed);
    let failure = first_failure(&report);
    assert!(
        failure["id"] == "http.version" || failure["id"] == "provenance.image-id",
        "{report}"
    );
    assert!(
        failure["reason"]
            .as_str()
            .is_some_and(|r| r.contains("e2e-newer")),
        "{report}"
    );
    newer_build.now();
}

#[test]
fn e2e_demo_reviewer_on_worker1_then_destroy_leaves_nothing_running() {
    if !capable() {
        return;
    }
    ok(
        &xtask("worker1", &["demo-reviewer"]),
        "NODE=worker1 make demo-reviewer",
    );
    let (passed, report) = verify_json("worker1");
    assert!(passed, "{report}");
    // The node containers, by the ids Vagrant recorded (named labs name their containers
    // after the lab, so a name filter would check nothing).
    let machines = support::root().join("vagrant/.vagrant/machines");
    let ids: Vec<String> = ["control", "worker1", "worker2"]
        .iter()
        .filter_map(|n| std::fs::read_to_string(machines.join(n).join("docker/id")).ok())
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .collect();
    assert!(
        !ids.is_empty(),
        "no node container recorded under {} before destroy",
        machines.display()
    );
    ok(&xtask("control", &["destroy"]), "make destroy");
    for id in &ids {
        let left = Command::new("docker")
            .args(["ps", "-aq", "--no-trunc", "--filter", &format!("id={id}")])
            .output()
            .expect("docker ps");
        assert_eq!(
            String::from_utf8_lossy(&left.stdout).trim(),
            "",
            "node container {id} is still there after destroy"
        );
    }
}

#[test]
fn an_injected_fault_is_undone_once_whether_the_test_fails_or_not() {
    let undone = std::cell::Cell::new(0);
    let count = || {
        undone.set(undone.get() + 1);
        Ok(())
    };
    Undo::new("a fault", count).now();
    assert_eq!(
        undone.get(),
        1,
        "undone on the normal path, and not again on drop"
    );
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = Undo::new("a fault", count);
        panic!("an assertion failed before the test undid its fault");
    }));
    assert!(failed.is_err());
    assert_eq!(
        undone.get(),
        2,
        "undone by the guard when the test stopped early"
    );
    // The guard says the reason again after its cleanup's output (its last line).
    let reason = last_panic().unwrap_or_default();
    assert!(
        reason.contains("an assertion failed before the test undid its fault"),
        "{reason}"
    );
    Undo::new("a fault", count).dismiss();
    assert_eq!(undone.get(), 2, "a dismissed guard undoes nothing");
}
