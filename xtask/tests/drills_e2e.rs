//! The failure drills end to end on the docker provider, on worker2: the real `cargo xtask`
//! binary, the real node-side `drills`, `lifecycle` and `verify` binaries, Postgres and the
//! service. Test names start with `e2e_`: nextest runs them one at a time
//! (.config/nextest.toml) because they share the lab's nodes.

mod support;

use std::process::Output;
use std::time::Instant;
use support::{capable, ok, root};

use serde_json::Value;

const NODE: &str = "worker2";

/// Runs `cargo xtask <args>` (the real binary) for worker2 in ENV=dev; output echoed.
fn xtask(args: &[&str]) -> Output {
    support::xtask(NODE, args, &[("ENV", "dev")])
}

/// The JSON document a `--json` run printed: stdout holds it alone (the golden steps a
/// drill runs print their progress on stderr), so `… --json | jq` works.
fn json(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out}"))
}

fn journal<'a>(summary: &'a Value, drill: &str) -> &'a Value {
    summary["journals"]
        .as_array()
        .and_then(|js| js.iter().find(|j| j["drill"] == drill))
        .unwrap_or_else(|| panic!("no journal for {drill} in {summary}"))
}

fn figure(j: &Value, name: &str) -> i64 {
    j["figures"][name]
        .as_i64()
        .unwrap_or_else(|| panic!("{} has no figure {name}: {}", j["drill"], j["figures"]))
}

/// Repairs worker2 whatever a failed assertion left behind.
struct Repair;

impl Drop for Repair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = xtask(&["demo-reviewer"]);
        }
    }
}

#[test]
fn e2e_drills_run_all_on_worker2_pass_with_bounded_figures() {
    if !capable() {
        return;
    }
    let _repair = Repair;
    ok(&xtask(&["up"]), "NODE=worker2 make up");
    let junit = std::env::temp_dir().join(format!("drills-e2e-{}.xml", std::process::id()));
    let junit_arg = junit.display().to_string();
    let started = Instant::now();
    let out = xtask(&["drills", "run", "all", "--json", "--junit", &junit_arg]);
    let took = started.elapsed();
    let summary = json(&out);
    ok(&out, "drills run all");
    eprintln!("drills run all took {:.1} s", took.as_secs_f64());

    let journals = summary["journals"].as_array().expect("journals");
    assert_eq!(
        journals.len(),
        // `run all` on a compose stack runs every drill but swarm mode's.
        drills::ALL.len() - drills::SWARM.len(),
        "every drill ran: {summary}"
    );
    for j in journals {
        assert_eq!(j["verdict"], "passed", "{}: {}", j["drill"], j["reason"]);
        assert_eq!(j["recovery"]["verified"], true, "{}", j["drill"]);
        assert_eq!(j["node"], NODE);
    }
    for file in summary["files"].as_array().expect("files") {
        let path = file.as_str().expect("journal path");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let on_disk: Value = serde_json::from_str(&text).expect("journal is JSON");
        assert_eq!(on_disk["verdict"], "passed", "{path}");
        assert!(
            path.starts_with(&root().join(".stackpilot/runs").display().to_string()),
            "{path}"
        );
    }

    let db_down = journal(&summary, "db-down");
    assert!(figure(db_down, "detection_latency_ms") <= 1000);
    assert!(figure(db_down, "recovery_ms") <= 2000);
    for drill in ["db-down", "db-bad-credentials", "db-midflight-loss"] {
        assert_eq!(
            figure(journal(&summary, drill), "api_restarts_during_fault"),
            0,
            "{drill}: the api restarted"
        );
    }
    let midflight = journal(&summary, "db-midflight-loss");
    assert!(figure(midflight, "orders_acknowledged") > 0);
    for drill in ["db-midflight-loss", "restart-persistence", "node-reboot"] {
        assert_eq!(
            figure(journal(&summary, drill), "orders_lost"),
            0,
            "{drill}: acknowledged orders lost"
        );
    }
    assert_eq!(
        figure(
            journal(&summary, "process-crash"),
            "api_restarts_during_fault"
        ),
        1
    );
    assert!(figure(journal(&summary, "process-crash"), "recovery_ms") > 0);

    let xml = std::fs::read_to_string(&junit).expect("junit written");
    let _ = std::fs::remove_file(&junit);
    assert!(
        xml.contains(&format!(
            r#"<testsuite name="drills" tests="{}" failures="0""#,
            drills::ALL.len() - drills::SWARM.len()
        )),
        "{xml}"
    );
}

#[test]
fn e2e_a_drill_whose_recovery_fails_says_so_and_demo_reviewer_repairs_the_node() {
    if !capable() {
        return;
    }
    let _repair = Repair;
    ok(&xtask(&["up"]), "NODE=worker2 make up");
    // --keep-fault: the db stays stopped, so the recovery cannot be verified.
    let out = xtask(&["drills", "run", "db-down", "--keep-fault", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a failed recovery exits 1");
    let summary = json(&out);
    let j = journal(&summary, "db-down");
    assert_eq!(j["verdict"], "recovery_failed", "{j}");
    assert_eq!(j["recovery"]["verified"], false);
    let reason = j["reason"].as_str().expect("reason");
    assert!(reason.contains("make demo-reviewer"), "{reason}");
    // The fault is really still there: verify fails at /ready.
    let verify = xtask(&["verify", "--json"]);
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(json(&verify)["summary"]["ready"], false);

    ok(
        &xtask(&["demo-reviewer"]),
        "NODE=worker2 make demo-reviewer",
    );
    let verify = xtask(&["verify", "--json"]);
    ok(&verify, "verify after demo-reviewer");
    assert_eq!(json(&verify)["passed"], true);
}
