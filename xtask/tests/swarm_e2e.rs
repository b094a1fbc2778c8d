//! Swarm mode end to end on the docker provider: control, worker1 and worker2 form a real
//! Docker Swarm, the app is built on control, pushed to the lab registry and deployed by
//! digest with `docker stack deploy`; then `destroy` leaves nothing of the lab behind.
//!
//! The test name starts with `e2e_`: nextest runs it alone in the `lab` group.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{Undo, capable, root, succeeded};

use stackpilot_core::http::{self, Timeouts};

const STACK: &str = "stackpilot-dev";

/// Runs `cargo xtask <args>` (the real binary) in swarm mode; output is kept and echoed.
fn xtask(args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("NODE", "control")
        .env("ENV", "dev")
        .env("MODE", "swarm")
        .current_dir(root())
        .output()
        .expect("xtask runs");
    eprintln!(
        "--- xtask {} (MODE=swarm) exit {:?} after {:.1}s\n{}{}",
        args.join(" "),
        out.status.code(),
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command inside a node container; its stdout, or a panic with its stderr.
fn on(node: &str, argv: &[&str]) -> String {
    let p = root().join(format!("vagrant/.vagrant/machines/{node}/docker/id"));
    let id = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let out = Command::new("docker")
        .arg("exec")
        .arg(id.trim())
        .args(argv)
        .output()
        .expect("docker exec runs");
    assert!(
        out.status.success(),
        "{node}: {argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A node's address from `lab status --json` (named labs choose their own subnet).
fn address(node: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "status", "--json"])
        .current_dir(root())
        .output()
        .expect("lab status runs");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    status["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node"] == node))
        .and_then(|n| n["address"].as_str())
        .unwrap_or_else(|| panic!("no address for {node} in {status}"))
        .to_string()
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    }
}

/// Docker objects of this checkout's lab on the host, of one kind (`ps -a`, `volume ls`,
/// `network ls`), by the checkout label every lab object carries.
fn lab_objects(kind: &[&str]) -> String {
    let label = format!("label=io.stackpilot.checkout={}", root().display());
    let out = Command::new("docker")
        .args(kind)
        .args(["-q", "--filter", &label])
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn e2e_swarm_demo_reviewer_spans_the_nodes_then_destroy_leaves_nothing() {
    if !capable() {
        return;
    }
    // A failed assertion must not leave a swarm stack holding the workers' ports for the
    // next lab test: destroy (idempotent) runs again when the test stops anywhere.
    let _teardown = Undo::new("the swarm lab", || succeeded(xtask(&["destroy"])));
    let out = xtask(&["demo-reviewer"]);
    assert!(out.status.success(), "make demo-reviewer MODE=swarm failed");

    // Formed: three Ready members, each labelled with its inventory role.
    let nodes = on(
        "control",
        &[
            "docker",
            "node",
            "ls",
            "--format",
            "{{.Hostname}} {{.Status}}",
        ],
    );
    for n in ["control", "worker1", "worker2"] {
        assert!(nodes.contains(&format!("{n} Ready")), "{nodes}");
        let role = on(
            "control",
            &[
                "docker",
                "node",
                "inspect",
                "--format",
                "{{index .Spec.Labels \"io.stackpilot.role\"}}",
                n,
            ],
        );
        let want = if n == "control" { "control" } else { "worker" };
        assert_eq!(role.trim(), want, "{n}'s role label");
    }

    // Placed: the db on control, one api replica on each worker, all running.
    let tasks = on(
        "control",
        &[
            "docker",
            "stack",
            "ps",
            STACK,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Name}} {{.Node}} {{.CurrentState}}",
        ],
    );
    let running = |svc: &str, node: &str| {
        tasks.lines().any(|l| {
            l.starts_with(&format!("{STACK}_{svc}.")) && l.contains(&format!(" {node} Running"))
        })
    };
    assert!(running("db", "control"), "{tasks}");
    assert!(
        running("api", "worker1") && running("api", "worker2"),
        "{tasks}"
    );
    assert_eq!(tasks.lines().count(), 3, "{tasks}");

    // Pinned: the api service runs the build of control's receipt, by registry digest.
    let receipt: serde_json::Value = serde_json::from_str(&on(
        "control",
        &["cat", "/var/lib/stackpilot/dev/build-receipt.json"],
    ))
    .expect("build receipt JSON");
    let image = on(
        "control",
        &[
            "docker",
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            &format!("{STACK}_api"),
        ],
    );
    let registry = format!("{}:5000/{STACK}/mock-exchange@sha256:", address("control"));
    assert!(image.trim().starts_with(&registry), "{image}");
    for w in ["worker1", "worker2"] {
        let ids = on(
            w,
            &[
                "docker",
                "ps",
                "--filter",
                &format!("label=com.docker.stack.namespace={STACK}"),
                "--format",
                "{{.Image}}",
            ],
        );
        let pulled = on(
            w,
            &[
                "docker",
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                ids.trim(),
            ],
        );
        assert_eq!(
            pulled.trim(),
            receipt["image_id"].as_str().expect("image_id"),
            "{w} runs the build of the receipt"
        );
    }

    // One service across nodes: an order written through worker1 is read through worker2.
    let port = 8000;
    let created = http::post_json(
        &format!(
            "http://{}:{port}/order?symbol=BTC&side=buy&qty=1",
            address("worker1")
        ),
        "",
        timeouts(),
    );
    let (status, body) = created.answer().expect("worker1 answers");
    assert_eq!(status, 201, "{body}");
    let order: serde_json::Value = serde_json::from_str(body).expect("order JSON");
    let id = order["order_id"].to_string().replace('"', "");
    let read = http::get(
        &format!("http://{}:{port}/orders/{id}", address("worker2")),
        timeouts(),
    );
    assert_eq!(read.answer().map(|(s, _)| s), Some(200), "{read:?}");

    // Destroy: no node, engine volume (swarm state, registry, db data) or network is left.
    let out = xtask(&["destroy"]);
    assert!(out.status.success(), "make destroy MODE=swarm failed");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("left the swarm") && text.contains("registry and its volume removed"),
        "destroy leaves the swarm and removes the registry first"
    );
    assert_eq!(lab_objects(&["ps", "-a"]), "", "lab containers left");
    assert_eq!(lab_objects(&["volume", "ls"]), "", "lab volumes left");
    assert_eq!(lab_objects(&["network", "ls"]), "", "lab network left");
}
