//! Swarm mode end to end on the docker provider, in two tests, each on a swarm of its own.
//!
//! The first is issue 13's e2e: control, worker1 and worker2 form a real Docker Swarm, the
//! app is built on control, pushed to the lab registry and deployed by digest with `docker
//! stack deploy`; verify passes without a mutating engine event and fails at the fault's
//! layer (a drained worker, a missing task, another digest); the three swarm drills and the
//! db drills against the swarm's db (db-down, db-bad-credentials, db-midflight-loss) pass;
//! then `destroy` leaves nothing of the lab behind.
//!
//! The second: `up` deploys; a deploy pins the registry's digest and one past its health
//! gate rolls back; `down` removes the stack and `halt` stops the nodes, keeping the swarm,
//! registry and data for the next `up`; `demo` rebuilds and deploys on the swarm; `clean`
//! removes the stack and the app images from every node and the registry, keeping the data
//! and the swarm; destroy.
//!
//! Both run in a checkout of their own (`target/swarm-e2e/checkout`) with a lab of its own,
//! one at a time in nextest's `swarm` group, beside the `lab` group's tests in this
//! checkout.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{OwnCheckout, Undo, capable, succeeded};

use stackpilot_core::http::{self, Timeouts};

const STACK: &str = "stackpilot-dev";

/// The swarm lab's checkout: a checkout of HEAD of its own (`target/swarm-e2e/checkout`,
/// [`OwnCheckout`]), prepared once per test process, so the swarm runs beside this
/// checkout's lab (nextest's `swarm` group next to the `lab` group) with a lab of its own:
/// its own name, subnet, nodes and `.stackpilot/`.
fn checkout() -> &'static Path {
    static OWN: OnceLock<OwnCheckout> = OnceLock::new();
    &OWN.get_or_init(|| {
        OwnCheckout::prepare("swarm-e2e", None, |dir| {
            let _ = Command::new(env!("CARGO_BIN_EXE_xtask"))
                .arg("destroy")
                .env("MODE", "swarm")
                .current_dir(dir)
                .status();
        })
    })
    .dir
}

/// Runs `cargo xtask <args>` (the real binary) in swarm mode; output is kept and echoed.
fn xtask(args: &[&str]) -> Output {
    xtask_with(args, &[])
}

/// [`xtask`] with more environment variables.
fn xtask_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .envs(vars.iter().copied())
        .env("NODE", "control")
        .env("ENV", "dev")
        .env("MODE", "swarm")
        .current_dir(checkout())
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
    try_on(node, argv).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a command inside a node container; its stdout, or what went wrong.
fn try_on(node: &str, argv: &[&str]) -> Result<String, String> {
    let p = checkout().join(format!("vagrant/.vagrant/machines/{node}/docker/id"));
    let id = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let out = Command::new("docker")
        .arg("exec")
        .arg(id.trim())
        .args(argv)
        .output()
        .map_err(|e| format!("docker exec: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{node}: {argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A node's address from `lab status --json` (named labs choose their own subnet).
fn address(node: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "status", "--json"])
        .current_dir(checkout())
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
    let label = format!("label=io.stackpilot.checkout={}", checkout().display());
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
    let teardown = Undo::new("the swarm lab", || succeeded(xtask(&["destroy"])));
    let out = xtask(&["demo-reviewer"]);
    assert!(out.status.success(), "make demo-reviewer MODE=swarm failed");

    // Formed: three Ready members, each labelled with its inventory role.
    let nodes = members();
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
    let tasks = running_tasks();
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
        // A task pulled by digest has no tag to inspect: ask its container for the image id.
        let container = on(
            w,
            &[
                "docker",
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.stack.namespace={STACK}"),
            ],
        );
        let pulled = on(
            w,
            &[
                "docker",
                "inspect",
                "--format",
                "{{.Image}}",
                container.trim(),
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

    // Verify is read-only: no engine of the swarm records a mutating event while it runs.
    verify_mutates_nothing();

    // Verify names the layer of the fault, and passes again once the fault is undone.
    let api = format!("{STACK}_api");
    fails_at(
        "a drained worker",
        &[
            "docker",
            "node",
            "update",
            "--availability",
            "drain",
            "worker2",
        ],
        1,
        &[
            "docker",
            "node",
            "update",
            "--availability",
            "active",
            "worker2",
        ],
    );
    fails_at(
        "a missing api task",
        &[
            "docker",
            "service",
            "scale",
            "--detach",
            &format!("{api}=1"),
        ],
        2,
        &[
            "docker",
            "service",
            "scale",
            "--detach",
            &format!("{api}=2"),
        ],
    );
    let other = other_digest(image.trim());
    let deployed = image.trim();
    let update = [
        "docker",
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
    ];
    fails_at(
        "an api replica on another digest",
        &[&update[..], &["--image", &other, &api]].concat(),
        5,
        &[&update[..], &["--image", deployed, &api]].concat(),
    );

    // The swarm drills pass, with their figures, and so do the db drills against the
    // swarm's db (`all` in swarm mode runs both).
    let out = xtask(&["drills", "run", "all", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = text
        .find("{\n")
        .and_then(|i| serde_json::from_str(&text[i..]).ok())
        .unwrap_or_else(|| panic!("drills --json printed no JSON document: {text}"));
    for j in doc["journals"].as_array().expect("journals") {
        eprintln!(
            "drill {} {}: {} figures {}",
            j["drill"], j["verdict"], j["reason"], j["figures"]
        );
    }
    assert!(out.status.success(), "make drills MODE=swarm failed");
    let names: Vec<&str> = doc["journals"]
        .as_array()
        .map(|js| js.iter().filter_map(|j| j["drill"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "db-down",
            "db-bad-credentials",
            "db-midflight-loss",
            "node-loss",
            "rolling-update",
            "manager-restart"
        ]
    );
    // The api service updated with a wrong password: each replica replaced once, 503
    // naming authentication on every worker, no task restarted over the hold, back to 200
    // after the stack's redeploy.
    let creds = doc["journals"]
        .as_array()
        .and_then(|js| js.iter().find(|j| j["drill"] == "db-bad-credentials"))
        .expect("db-bad-credentials journal");
    assert_eq!(creds["verdict"], "passed", "{creds}");
    let figures = &creds["figures"];
    assert!(
        figures["detection_latency_ms"].as_u64().is_some()
            && figures["recovery_ms"].as_u64().is_some(),
        "{figures}"
    );
    assert_eq!(figures["api_restarts_during_fault"], 0, "{figures}");

    destroy_leaves_nothing();
    teardown.dismiss();
}

/// The swarm golden paths beyond the e2e above, on a swarm of their own (a second
/// lab cycle keeps that e2e within its 8 minutes): `make up MODE=swarm` builds and deploys;
/// a deploy pins the registry's digest and a failing one rolls back; `down`, `halt` and
/// `up` keep the swarm and the data; `demo` rebuilds and deploys; `clean` keeps only the
/// swarm and the data; destroy leaves nothing.
#[test]
fn e2e_swarm_deploy_rolls_back_and_down_halt_up_demo_keep_the_swarm() {
    if !capable() {
        return;
    }
    let teardown = Undo::new("the swarm lab", || succeeded(xtask(&["destroy"])));
    let out = xtask(&["up"]);
    assert!(out.status.success(), "make up MODE=swarm failed");

    // Deploy MODE=swarm pins the registry's digest of the verified build on every replica;
    // a deploy failing after the switch goes back to it with the service's own rollback.
    deploy_by_digest_then_roll_back(&format!("{STACK}_api"));

    // Down, halt, up: the stack goes and comes back on the same swarm, nothing lost.
    down_halt_up_keep_the_swarm_and_the_data();

    // Demo MODE=swarm: a forced rebuild on control, deployed by digest, the demo order
    // placed and read back on each worker.
    demo_rebuilds_and_deploys_on_the_swarm();

    // Clean MODE=swarm: the clean room on every node and in the registry, data kept.
    clean_room_keeps_only_the_swarm_and_the_data();

    destroy_leaves_nothing();
    teardown.dismiss();
}

/// `make clean MODE=swarm`: no container of the stack and no app image on any node, the
/// environment's repository gone from the lab registry; the db volume and the swarm kept.
fn clean_room_keeps_only_the_swarm_and_the_data() {
    let repo = format!("/var/lib/docker-registry/docker/registry/v2/repositories/{STACK}");
    let registry = ["docker", "exec", "stackpilot-registry", "test", "-e", &repo];
    // Every app image carries the app label (stackpilot_core::admin::APP_LABEL).
    let app = "label=stackpilot.app=mock-exchange";
    // The checks below can fail: the repository and the app images are there before.
    try_on("control", &registry).unwrap_or_else(|e| panic!("{repo} before clean: {e}"));
    for n in ["control", "worker1", "worker2"] {
        let images = on(n, &["docker", "images", "-q", "--filter", app]);
        assert_ne!(images.trim(), "", "an app image on {n} before clean");
    }
    let out = xtask(&["clean"]);
    assert!(out.status.success(), "make clean MODE=swarm failed");
    let stack = format!("label=com.docker.stack.namespace={STACK}");
    for n in ["control", "worker1", "worker2"] {
        let left = on(n, &["docker", "ps", "-aq", "--filter", &stack]);
        assert_eq!(left.trim(), "", "a container of the stack left on {n}");
        let images = on(n, &["docker", "images", "-q", "--filter", app]);
        assert_eq!(images.trim(), "", "an app image left on {n}");
    }
    assert!(
        try_on("control", &registry).is_err(),
        "{repo} left in the lab registry"
    );
    let volumes = on("control", &["docker", "volume", "ls", "-q"]);
    let volume = format!("{STACK}_db-data");
    assert!(
        volumes.lines().any(|v| v == volume),
        "db volume kept: {volumes}"
    );
    let listed = members();
    assert_eq!(
        listed.matches(" Ready").count(),
        3,
        "the swarm stays: {listed}"
    );
}

/// Destroy: no node, engine volume (swarm state, registry, db data) or network is left.
fn destroy_leaves_nothing() {
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

/// The image the api service's spec pins.
fn spec_image(api: &str) -> String {
    let format = "{{.Spec.TaskTemplate.ContainerSpec.Image}}";
    on(
        "control",
        &["docker", "service", "inspect", "--format", format, api],
    )
    .trim()
    .to_string()
}

/// The images of the api's running tasks, as the manager reports them.
fn running_task_images(api: &str) -> Vec<String> {
    let argv = [
        "docker",
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Image}} {{.CurrentState}}",
        api,
    ];
    on("control", &argv)
        .lines()
        .filter(|l| l.contains(" Running "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// The image id of each worker's running api container.
fn worker_image_ids() -> Vec<String> {
    ["worker1", "worker2"]
        .iter()
        .map(|w| {
            let label = format!("label=com.docker.stack.namespace={STACK}");
            let c = on(w, &["docker", "ps", "-q", "--filter", &label]);
            on(
                w,
                &["docker", "inspect", "--format", "{{.Image}}", c.trim()],
            )
            .trim()
            .to_string()
        })
        .collect()
}

/// The newest swarm deploy's summary.json and the last audit line.
fn newest_evidence() -> (serde_json::Value, serde_json::Value) {
    let deploys = checkout().join(".stackpilot/deploys");
    let mut dirs: Vec<_> = std::fs::read_dir(deploys.join("swarm/dev"))
        .expect("swarm evidence")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let read = |p: std::path::PathBuf| std::fs::read_to_string(&p).unwrap_or_default();
    let summary = dirs.last().map(|d| read(d.join("summary.json")));
    let audit = read(deploys.join("audit.log"));
    let last = audit.lines().last().unwrap_or("{}");
    (
        serde_json::from_str(&summary.unwrap_or_default()).expect("summary.json"),
        serde_json::from_str(last).expect("audit line"),
    )
}

/// What the host recorded as deployed in swarm mode.
fn swarm_record() -> serde_json::Value {
    let p = checkout().join(".stackpilot/swarm/dev.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("swarm record")).expect("JSON")
}

fn deploy_by_digest_then_roll_back(api: &str) {
    let before = spec_image(api);
    let out = xtask(&["deploy"]);
    assert!(out.status.success(), "make deploy MODE=swarm failed");
    let (s, audit) = newest_evidence();
    assert_eq!(
        (s["outcome"].as_str(), audit["outcome"].as_str()),
        (Some("deployed"), Some("deployed")),
        "{s}"
    );
    let reference = s["swarm"]["reference"]
        .as_str()
        .expect("reference")
        .to_string();
    let digest = s["swarm"]["registry_digest"]
        .as_str()
        .expect("registry digest");
    assert!(reference.ends_with(&format!("@{digest}")), "{s}");
    assert_eq!(s["swarm"]["previous"].as_str(), Some(before.as_str()));
    // The registry itself serves that digest for the verified build's tag.
    let tag = s["release"]["tag"].as_str().expect("tag");
    let version = tag.rsplit_once(':').map_or(tag, |(_, v)| v);
    let served = http::head_header(
        &format!(
            "http://{}:5000/v2/{STACK}/mock-exchange/manifests/{version}",
            address("control")
        ),
        "application/vnd.docker.distribution.manifest.v2+json",
        "docker-content-digest",
        timeouts(),
    );
    assert_eq!(served.as_deref(), Ok(digest));
    assert_eq!(spec_image(api), reference);
    assert_eq!(running_task_images(api), [reference.as_str(); 2]);
    let built = s["release"]["image_id"].as_str().expect("image id");
    assert_eq!(
        worker_image_ids(),
        [built; 2],
        "every replica runs the verified build"
    );
    assert_eq!(
        swarm_record()["app_image"].as_str(),
        Some(reference.as_str())
    );

    // A health gate no update can meet: stage 3 fails after the switch, the service rolls back.
    let out = xtask_with(&["deploy"], &[("HEALTH_TIMEOUT", "1")]);
    assert!(
        !out.status.success(),
        "a deploy past its health gate must fail"
    );
    let (s, audit) = newest_evidence();
    assert_eq!(
        (s["outcome"].as_str(), audit["outcome"].as_str()),
        (Some("rolled-back"), Some("rolled-back")),
        "{s}"
    );
    assert_eq!(s["failed_stage"], "remote-execution", "{s}");
    assert_eq!(s["rollback"]["passed"], true, "{s}");
    assert_eq!(s["swarm"]["previous"].as_str(), Some(reference.as_str()));
    assert_ne!(
        s["swarm"]["reference"].as_str(),
        Some(reference.as_str()),
        "a new digest was tried"
    );
    assert_eq!(
        spec_image(api),
        reference,
        "the service is back on the previous digest"
    );
    assert_eq!(running_task_images(api), [reference.as_str(); 2]);
    assert_eq!(worker_image_ids(), [built; 2]);
    assert_eq!(
        swarm_record()["app_image"].as_str(),
        Some(reference.as_str())
    );
}

/// `xtask verify --json` in swarm mode: its exit status and report.
fn verify_json() -> (bool, serde_json::Value) {
    let o = xtask(&["verify", "--json"]);
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    (o.status.success(), report)
}

/// The first failed check of a report (id and layer), if any.
fn first_failure(report: &serde_json::Value) -> Option<(String, u64)> {
    let c = report["checks"]
        .as_array()?
        .iter()
        .find(|c| c["verdict"] == "fail")?;
    Some((c["id"].as_str()?.to_string(), c["layer"].as_u64()?))
}

/// Verifies until the report passes (`layer` None) or its first failure is at `layer`;
/// panics with the last report after `limit`.
fn verify_until(layer: Option<u64>, limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (passed, report) = verify_json();
        let at = first_failure(&report).map(|(_, l)| l);
        if (layer.is_none() && passed) || (layer.is_some() && !passed && at == layer) {
            return report;
        }
        assert!(
            started.elapsed() < limit,
            "verify: wanted {}, last report: {report}",
            layer.map_or("a pass".into(), |l| format!("a failure at layer {l}"))
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Applies `fault` on the manager, asserts that verify fails first at `layer`, undoes it
/// with `undo` and waits for verify to pass again.
fn fails_at(what: &str, fault: &[&str], layer: u64, undo: &[&str]) {
    let undone = Undo::new(what, || try_on("control", undo).map(drop));
    on("control", fault);
    let report = verify_until(Some(layer), Duration::from_secs(120));
    let (id, _) = first_failure(&report).expect("a failure");
    eprintln!("--- {what}: verify fails first at layer {layer}, {id}");
    undone.now();
    verify_until(None, Duration::from_secs(180));
}

/// Another image than `deployed` in the lab registry (the same build with one more label),
/// by digest.
fn other_digest(deployed: &str) -> String {
    let repo = deployed.split('@').next().expect("a repository");
    let tag = format!("{repo}:e2e-other");
    let dockerfile = format!("FROM {deployed}\nLABEL io.stackpilot.e2e=other\n");
    on(
        "control",
        &[
            "sh",
            "-c",
            &format!(
                "printf '{dockerfile}' | docker build -q -t {tag} - && docker push {tag} >/dev/null"
            ),
        ],
    );
    let digest = on(
        "control",
        &[
            "docker",
            "image",
            "inspect",
            "--format",
            "{{index .RepoDigests 0}}",
            &tag,
        ],
    );
    digest.trim().to_string()
}

/// Records every node engine's events around one verify run; none may mutate. The engines'
/// own healthchecks (exec_create/exec_start naming the healthcheck command, exec_die) are
/// allowed, as in compose mode.
fn verify_mutates_nothing() {
    let nodes = ["control", "worker1", "worker2"];
    let since: Vec<String> = nodes
        .iter()
        .map(|n| on(n, &["date", "+%s.%N"]).trim().to_string())
        .collect();
    let (passed, report) = verify_json();
    assert!(passed, "make verify MODE=swarm failed: {report}");
    for (n, since) in nodes.iter().zip(&since) {
        let until = on(n, &["date", "+%s.%N"]);
        let events = on(
            n,
            &[
                "docker",
                "events",
                "--since",
                since,
                "--until",
                until.trim(),
                "--format",
                "{{.Type}} {{.Action}}",
            ],
        );
        assert_eq!(
            support::mutating_events(&events),
            Vec::<String>::new(),
            "verify caused mutating events on {n}'s engine: {events}"
        );
    }
}

/// The stack's running tasks as the manager lists them (`name node state` lines).
fn running_tasks() -> String {
    on(
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
    )
}

/// The swarm's members as the manager lists them (`hostname status` lines).
fn members() -> String {
    let format = "{{.Hostname}} {{.Status}}";
    on("control", &["docker", "node", "ls", "--format", format])
}

/// An order acknowledged before `down` and `halt` is read back through both workers after
/// `up MODE=swarm`. Down: no task or service of the stack left, the registry running, the
/// db volume and the swarm kept. Halt: no node of the lab running. Up: the same manager,
/// three Ready members, db and both replicas running, verify passing.
fn down_halt_up_keep_the_swarm_and_the_data() {
    let created = http::post_json(
        &format!(
            "http://{}:8000/order?symbol=ETH&side=sell&qty=2",
            address("worker2")
        ),
        "",
        timeouts(),
    );
    let (status, body) = created.answer().expect("worker2 answers");
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(body).expect("order JSON")["order_id"]
        .to_string()
        .replace('"', "");
    let manager = |what: &str| on("control", &["docker", "info", "--format", what]);
    let swarm_id = manager("{{.Swarm.Cluster.ID}}");

    let out = xtask(&["down"]);
    assert!(out.status.success(), "make down MODE=swarm failed");
    let label = format!("label=com.docker.stack.namespace={STACK}");
    for n in ["control", "worker1", "worker2"] {
        let left = on(n, &["docker", "ps", "-aq", "--filter", &label]);
        assert_eq!(left.trim(), "", "a container of the stack left on {n}");
    }
    let services = on(
        "control",
        &["docker", "service", "ls", "-q", "--filter", &label],
    );
    assert_eq!(services.trim(), "", "services of the stack left");
    let registry = ["docker", "inspect", "--format", "{{.State.Running}}"];
    let registry = [&registry[..], &["stackpilot-registry"]].concat();
    assert_eq!(on("control", &registry).trim(), "true", "registry kept");
    let volume = format!("{STACK}_db-data");
    let volumes = on("control", &["docker", "volume", "ls", "-q"]);
    assert!(
        volumes.lines().any(|v| v == volume),
        "db volume kept: {volumes}"
    );
    assert_eq!(
        manager("{{.Swarm.Cluster.ID}}"),
        swarm_id,
        "the swarm stays"
    );
    let listed = members();
    assert_eq!(listed.matches(" Ready").count(), 3, "{listed}");

    let out = xtask(&["halt"]);
    assert!(out.status.success(), "make halt (swarm formed) failed");
    assert_eq!(lab_objects(&["ps"]), "", "a lab node still runs after halt");

    let out = xtask(&["up"]);
    assert!(out.status.success(), "make up MODE=swarm after halt failed");
    assert_eq!(manager("{{.Swarm.Cluster.ID}}"), swarm_id, "the same swarm");
    assert_eq!(
        manager("{{.Swarm.ControlAvailable}}").trim(),
        "true",
        "control manages it again"
    );
    let listed = members();
    for n in ["control", "worker1", "worker2"] {
        assert!(listed.contains(&format!("{n} Ready")), "{listed}");
    }
    assert_eq!(listed.lines().count(), 3, "no stale member: {listed}");
    let tasks = running_tasks();
    for (svc, node) in [("db", "control"), ("api", "worker1"), ("api", "worker2")] {
        assert!(
            tasks
                .lines()
                .any(|l| l.starts_with(&format!("{STACK}_{svc}."))
                    && l.contains(&format!(" {node} Running"))),
            "{svc} on {node}: {tasks}"
        );
    }
    for w in ["worker1", "worker2"] {
        let read = http::get(
            &format!("http://{}:8000/orders/{id}", address(w)),
            timeouts(),
        );
        assert_eq!(
            read.answer().map(|(s, _)| s),
            Some(200),
            "order {id} acknowledged before down and halt, read through {w}: {read:?}"
        );
    }
    let (passed, report) = verify_json();
    assert!(passed, "make verify MODE=swarm after up failed: {report}");
}

/// `make demo MODE=swarm`: a new build on control (a new build id in its receipt), every
/// replica running it by registry digest, the demo order placed and read back on each worker.
fn demo_rebuilds_and_deploys_on_the_swarm() {
    let receipt = || -> serde_json::Value {
        let path = "/var/lib/stackpilot/dev/build-receipt.json";
        serde_json::from_str(&on("control", &["cat", path])).expect("build receipt JSON")
    };
    let before = receipt();
    let out = xtask(&["demo"]);
    assert!(out.status.success(), "make demo MODE=swarm failed");
    let after = receipt();
    assert_ne!(after["build_id"], before["build_id"], "a forced rebuild");
    let image = after["image_id"].as_str().expect("image_id");
    assert_eq!(
        worker_image_ids(),
        [image; 2],
        "every replica runs the new build"
    );
    let api = format!("{STACK}_api");
    let registry = format!("{}:5000/{STACK}/mock-exchange@sha256:", address("control"));
    assert!(spec_image(&api).starts_with(&registry), "pinned by digest");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("demo order read back:").count(),
        2,
        "one per worker: {err}"
    );
}
