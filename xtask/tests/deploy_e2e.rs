//! Staged deploys end to end on worker1 of the docker provider, real everything: the
//! release built and run on this machine's engine, loaded into the node, switched through
//! lifecycle, observed, verified; rollback automatic and on demand; a node restart.
//!
//! Test names start with `e2e_`: nextest runs them one at a time (.config/nextest.toml)
//! because they share the lab's nodes. Only worker1 is used.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{capable, echoed, ok, root, stdout, text};

use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::{Config, Provider};

const NODE: &str = "worker1";

/// Runs `make <args>` from the repo root with NODE=worker1 and extra variables.
fn make(args: &[&str], vars: &[(&str, &str)]) -> Output {
    support::make(NODE, args, vars)
}

/// Runs the real `cargo xtask` binary for worker1.
fn xtask(args: &[&str]) -> Output {
    support::xtask(NODE, args, &[])
}

fn base_url(env: &str) -> String {
    let root = root();
    let cfg = Config::load(&root.join("stackpilot.toml")).expect("config");
    let node = cfg.node(NODE).expect("worker1 in the inventory");
    let port = cfg.environment(env).expect("env").port();
    format!("http://{}:{port}", node.address(Provider::Docker))
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    }
}

/// Creates an order in `env` and returns (id, body).
fn create_order(env: &str, qty: u32) -> (String, String) {
    let url = format!("{}/order?symbol=BTC&side=buy&qty={qty}", base_url(env));
    let p = http::post_json(&url, "", timeouts());
    let (status, body) = p.answer().expect("order answered");
    assert_eq!(status, 201, "{url}: {body}");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON order");
    (v["order_id"].to_string(), body.to_string())
}

fn read_order(env: &str, id: &str) -> Option<(u16, String)> {
    let p = http::get(&format!("{}/orders/{id}", base_url(env)), timeouts());
    p.answer().map(|(s, b)| (s, b.to_string()))
}

fn get(env: &str, path: &str) -> Option<u16> {
    http::get(&format!("{}{path}", base_url(env)), timeouts())
        .answer()
        .map(|(s, _)| s)
}

/// Runs `argv` inside worker1's node container; its stdout.
fn in_node(argv: &[&str]) -> String {
    stdout(
        &support::in_node(NODE)
            .args(argv)
            .output()
            .expect("docker exec runs"),
    )
}

/// `<container id> <started at>` of env's api container.
fn api_identity(env: &str) -> String {
    let project = format!("label=com.docker.compose.project=stackpilot-{env}");
    let id = in_node(&[
        "docker",
        "ps",
        "-q",
        "--filter",
        &project,
        "--filter",
        "label=com.docker.compose.service=api",
    ]);
    let started = in_node(&["docker", "inspect", "--format", "{{.State.StartedAt}}", &id]);
    format!("{id} {started}")
}

/// The newest evidence bundle's summary of env on worker1.
fn last_summary(env: &str) -> serde_json::Value {
    let dir = root().join(".stackpilot/deploys").join(NODE).join(env);
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("evidence dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    bundles.sort();
    let last = bundles.last().expect("a bundle");
    let text = std::fs::read_to_string(last.join("summary.json")).expect("summary");
    serde_json::from_str(&text).expect("summary JSON")
}

fn wait_ready(env: &str, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if get(env, "/ready") == Some(200) {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}

/// Stops dev and staging on worker1 when the test ends, passed or not.
struct StopStacks;

impl Drop for StopStacks {
    fn drop(&mut self) {
        for env in ["dev", "staging", "live"] {
            let _ = make(&["stop", &format!("ENV={env}")], &[]);
        }
    }
}

#[test]
fn e2e_deploy_staged_idempotent_rollback_restart_and_stop_on_worker1() {
    if !capable() {
        return;
    }
    let _stop = StopStacks;
    let audit = root().join(".stackpilot/deploys/audit.log");
    let audit_lines = || {
        std::fs::read_to_string(&audit)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };

    // On a fresh machine the node does not exist yet: stopping needs it created.
    ok(&xtask(&["lab", "up", NODE]), "lab up worker1");
    // A stopped stack is never "already deployed": this deploy goes through all stages.
    ok(&make(&["stop", "ENV=dev"], &[]), "make stop ENV=dev");
    let before = audit_lines();
    let d = make(&["deploy", "ENV=dev"], &[]);
    ok(&d, "make deploy ENV=dev");
    assert!(text(&d).contains("all four stages passed"), "{}", text(&d));
    assert_eq!(last_summary("dev")["outcome"], "deployed");
    assert_eq!(audit_lines(), before + 1, "one audit line per deploy");
    let (dev_id, dev_order) = create_order("dev", 7);

    // Staging on the same node: its own project, port and data.
    ok(
        &make(&["stop", "ENV=staging"], &[]),
        "make stop ENV=staging",
    );
    ok(
        &make(&["deploy", "ENV=staging"], &[]),
        "make deploy ENV=staging",
    );
    assert_eq!(get("dev", "/ready"), Some(200), "dev still ready");
    assert_eq!(get("staging", "/ready"), Some(200), "staging ready");
    let (staging_id, staging_order) = create_order("staging", 9);
    assert_ne!(
        read_order("staging", &dev_id).map(|(_, b)| b),
        Some(dev_order.clone()),
        "staging must not see dev's order"
    );
    assert_ne!(
        read_order("dev", &staging_id).map(|(_, b)| b),
        Some(staging_order),
        "dev must not see staging's order"
    );

    // The same release again: nothing restarted, and it says so.
    let api_before = api_identity("dev");
    let again = make(&["deploy", "ENV=dev"], &[]);
    ok(&again, "make deploy ENV=dev (again)");
    assert!(
        text(&again).contains("nothing restarted"),
        "{}",
        text(&again)
    );
    assert_eq!(
        api_identity("dev"),
        api_before,
        "the api container was restarted"
    );
    assert_eq!(last_summary("dev")["outcome"], "unchanged");

    // A second good release (different configuration), the rollback target later on.
    let second = xtask(&["deploy", "--env", "dev", "--set", "LOG_LEVEL=debug"]);
    ok(&second, "deploy dev with LOG_LEVEL=debug");
    let second_tag = last_summary("dev")["release"]["tag"].clone();

    // A broken release: readiness never green (the api cannot authenticate to its db).
    let broken = xtask(&[
        "deploy",
        "--env",
        "dev",
        "--set",
        "POSTGRES_PASSWORD=wrong-on-purpose",
        "--health-timeout",
        "40",
    ]);
    assert_eq!(broken.status.code(), Some(1), "a broken deploy exits 1");
    assert!(
        text(&broken).contains("rolled back to"),
        "{}",
        text(&broken)
    );
    let s = last_summary("dev");
    assert_eq!(s["outcome"], "rolled-back", "{s}");
    assert_eq!(s["failed_stage"], "remote-execution", "{s}");
    assert!(
        s["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "the reason is named: {s}"
    );
    assert_eq!(s["rollback"]["to"], second_tag, "{s}");
    assert_eq!(s["rollback"]["passed"], true, "{s}");
    let bad_tag = s["release"]["tag"]
        .as_str()
        .expect("failed release tag")
        .to_string();
    assert_eq!(
        in_node(&["docker", "images", "-q", &bad_tag]),
        "",
        "the failed release image stays on the node"
    );
    assert_eq!(
        get("dev", "/ready"),
        Some(200),
        "the previous release serves"
    );
    assert_eq!(
        read_order("dev", &dev_id),
        Some((200, dev_order.clone())),
        "orders survive a failed deploy and its rollback"
    );
    let status = make(&["status", "ENV=dev"], &[]);
    ok(&status, "make status");
    let second_tag = second_tag.as_str().expect("tag");
    assert!(text(&status).contains(second_tag), "{}", text(&status));

    // Rollback on demand: back to the first release.
    let rb = make(&["rollback", "ENV=dev"], &[]);
    ok(&rb, "make rollback ENV=dev");
    assert!(text(&rb).contains("rolled back dev"), "{}", text(&rb));
    assert_eq!(last_summary("dev")["outcome"], "rolled-back");
    assert_eq!(
        read_order("dev", &dev_id),
        Some((200, dev_order.clone())),
        "orders survive a rollback"
    );

    // Retention: at most 3 releases kept per environment on the node.
    let state = in_node(&["cat", "/var/lib/stackpilot/dev/deploy-state.json"]);
    let state: serde_json::Value = serde_json::from_str(&state).expect("deploy state JSON");
    let kept = state["history"].as_array().map_or(0, Vec::len);
    assert!((1..=3).contains(&kept), "kept {kept} releases: {state}");

    // Logs from the engine's store, printed and done.
    let logs = make(&["logs", "ENV=dev"], &[("TAIL", "5"), ("FOLLOW", "no")]);
    ok(&logs, "make logs");
    assert!(text(&logs).contains("\"level\""), "{}", text(&logs));

    // Restart: stopped cleanly, the deployed release started again, verified.
    ok(&make(&["restart", "ENV=dev"], &[]), "make restart ENV=dev");

    // Node restart: the node's engine starts the stacks again (restart policy).
    ok(&xtask(&["lab", "halt", NODE]), "lab halt worker1");
    ok(&xtask(&["lab", "up", NODE]), "lab up worker1");
    assert!(
        wait_ready("dev", Duration::from_secs(120)),
        "dev did not come back ready after the node restart"
    );
    assert!(
        wait_ready("staging", Duration::from_secs(60)),
        "staging after the node restart"
    );
    ok(
        &make(&["verify", "ENV=dev"], &[]),
        "make verify after the node restart",
    );
    assert_eq!(read_order("dev", &dev_id), Some((200, dev_order)));

    // Stop, then status says so.
    ok(&make(&["stop", "ENV=dev"], &[]), "make stop ENV=dev");
    let st = make(&["status", "ENV=dev"], &[]);
    assert_ne!(
        st.status.code(),
        Some(0),
        "make status on a down stack must fail"
    );
    let json = xtask(&["status", "--env", "dev", "--json"]);
    assert_eq!(json.status.code(), Some(1), "status --json of a down stack");
    let v: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("status --json prints only JSON");
    assert_eq!(v["up"], false, "{v}");
    let st = text(&st);
    assert!(st.contains("exited"), "{st}");
    assert!(st.contains("/ready   no answer"), "{st}");
}

#[test]
fn e2e_deploy_refuses_bad_input_before_touching_anything() {
    if !capable() {
        return;
    }
    let audit = root().join(".stackpilot/deploys/audit.log");
    let before = std::fs::read_to_string(&audit).unwrap_or_default();
    let unknown = xtask(&["deploy", "--env", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("nope"), "{}", text(&unknown));
    let live = echoed(
        "xtask deploy --env live (unconfirmed)",
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["deploy", "--env", "live"])
            .env("NODE", NODE)
            .env_remove("CONFIRM_LIVE")
            .current_dir(root()),
    );
    assert_eq!(live.status.code(), Some(2), "{}", text(&live));
    assert!(text(&live).contains("CONFIRM_LIVE=yes"), "{}", text(&live));
    assert!(!text(&live).contains("phase: lab up"), "{}", text(&live));

    // The deploy lock lives on the node: one held from another checkout (A) refuses this
    // checkout's deploy, naming A's owner and the expiry, and stays.
    ok(&xtask(&["lab", "up", NODE]), "lab up worker1");
    const LOCK: &str = "/var/lib/stackpilot/dev/deploy.lock";
    struct RemoveLock;
    impl Drop for RemoveLock {
        fn drop(&mut self) {
            in_node(&["rm", "-f", LOCK]);
        }
    }
    assert_eq!(
        in_node(&["cat", LOCK]),
        "",
        "a deploy of dev on worker1 is running"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let held = serde_json::json!({
        "owner": "someone@elsewhere (/srv/checkout-a)",
        "pid": 1,
        "purpose": "deploy dev on worker1",
        "acquired_at": now,
        "expires_at": now + 600,
    })
    .to_string();
    in_node(&[
        "sh",
        "-c",
        &format!("mkdir -p /var/lib/stackpilot/dev && printf '%s' '{held}' > {LOCK}"),
    ]);
    let _remove = RemoveLock;
    let locked = xtask(&["deploy", "--env", "dev"]);
    assert_eq!(locked.status.code(), Some(1), "{}", text(&locked));
    assert!(
        text(&locked).contains("held by someone@elsewhere (/srv/checkout-a)")
            && text(&locked).contains("until"),
        "{}",
        text(&locked)
    );
    assert_eq!(
        in_node(&["cat", LOCK]),
        held,
        "someone else's live lock must stay"
    );
    assert_eq!(
        std::fs::read_to_string(&audit).unwrap_or_default(),
        before,
        "a refused deploy writes nothing"
    );
}

/// The commands of docs/DEPLOYMENT.md's ```sh blocks, in order, as written.
fn documented_commands() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/DEPLOYMENT.md")).expect("DEPLOYMENT.md");
    let mut out = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        let l = line.trim();
        if l == "```sh" {
            inside = true;
        } else if l.starts_with("```") {
            inside = false;
        } else if inside && !l.is_empty() && !l.starts_with('#') {
            out.push(l.to_string());
        }
    }
    out
}

#[test]
fn e2e_deployment_doc_commands_run_as_written_on_worker1() {
    if !capable() {
        return;
    }
    let _stop = StopStacks;
    let cmds = documented_commands();
    assert!(
        cmds.iter().any(|c| c.contains("make deploy ENV=dev"))
            && cmds.iter().any(|c| c.contains("make rollback ENV=dev"))
            && cmds
                .iter()
                .any(|c| c.contains("CONFIRM_LIVE=yes make deploy ENV=live")),
        "the doc lost its procedure: {cmds:?}"
    );
    // The rollback section needs a previous release: a different one deployed first.
    ok(
        &xtask(&["deploy", "--env", "dev", "--set", "LOG_LEVEL=debug"]),
        "setup: a previous release",
    );
    for cmd in cmds {
        let out = echoed(
            &cmd,
            Command::new("sh")
                .args(["-c", &cmd])
                .env("NODE", NODE)
                .current_dir(root()),
        );
        ok(&out, &cmd);
    }
    // The documented live deploy serves on its own port, next to the stopped dev.
    let (live_id, live_order) = create_order("live", 3);
    assert_eq!(read_order("live", &live_id), Some((200, live_order)));
    assert_eq!(
        get("dev", "/ready"),
        None,
        "dev was stopped by the doc's last block"
    );
}
