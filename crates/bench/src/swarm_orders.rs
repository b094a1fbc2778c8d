//! `POST /order` through the swarm's replicas (`cargo xtask bench swarm-orders`): in one
//! run, wrk against one node's published port and wrk spread over every api node's
//! published port, interleaved, several runs each, medians side by side, rendered as the
//! section [`SECTION`] of docs/benchmarks.md.
//!
//! Without IPVS there is no routing mesh: each worker publishes its own replica's port in
//! host mode, so "spread" is what a client-side balancer does: wrk's threads are pinned
//! one per node address (`setup(thread)` sets `thread.addr`), and wrk merges their
//! latency histograms into one. Both cases use the same threads and connections. The
//! nodes and the addresses are handed in by xtask; this module only sends HTTP to them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::api::report::Load;
use crate::api::{POST_ORDER_LUA, WorkDir, ensure_wrk, http_status, wrk_run};
use crate::{Error, failed, host, step_failed};

/// The section of docs/benchmarks.md these figures own.
pub const SECTION: &str = "## Swarm mode: POST /order through two replicas";

/// Knobs and targets of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace root (where wrk is installed from, if missing).
    pub root: PathBuf,
    /// The exact command that runs this benchmark, for the published text.
    pub command: String,
    /// Seconds per measured wrk run.
    pub seconds: u32,
    /// Concurrent connections of each wrk run, split evenly over its threads.
    pub connections: u32,
    /// Measured runs of each case.
    pub runs: u32,
    /// Every api node (name, published address); the one-node case loads the first.
    pub nodes: Vec<(String, SocketAddr)>,
    /// The node the stack's single Postgres runs on.
    pub db_node: String,
}

/// One case's measured runs.
#[derive(Debug, Clone, Default)]
pub struct Case {
    /// The nodes loaded, by name.
    pub nodes: Vec<String>,
    /// Each run, in order.
    pub runs: Vec<Run>,
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Run {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Answers other than 2xx/3xx.
    pub non_2xx: u64,
}

impl From<&Load> for Run {
    fn from(l: &Load) -> Run {
        Run {
            rps: l.rps,
            p50_ms: l.p50_ms,
            p99_ms: l.p99_ms,
            non_2xx: l.non_2xx,
        }
    }
}

/// What one run of the benchmark measured, with its context.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The exact command.
    pub command: String,
    /// Load averages just before the first run.
    pub load_before: String,
    /// Load averages just after the last run.
    pub load_after: String,
    /// wrk's threads in both cases: one per spread node.
    pub threads: usize,
    /// Concurrent connections per wrk run.
    pub connections: u32,
    /// Seconds per wrk run.
    pub seconds: u32,
    /// The node of the single Postgres.
    pub db_node: String,
    /// wrk against one node's port.
    pub one: Case,
    /// wrk spread over every api node's port.
    pub spread: Case,
    /// wrk socket errors seen, per run (`case run n: text`).
    pub socket_errors: Vec<String>,
}

/// Runs the benchmark against the running stack and returns its markdown section.
pub fn run(cfg: &Config) -> Result<String, Error> {
    let Some((first, _)) = cfg.nodes.first() else {
        return Err(step_failed("swarm-orders", "no api node to load"));
    };
    for (name, addr) in &cfg.nodes {
        if http_status(&addr.to_string(), "/ready") != Some(200) {
            return Err(step_failed(
                "swarm-orders",
                &format!(
                    "{name} ({addr}) /ready is not 200: deploy the stack first (MODE=swarm make up)"
                ),
            ));
        }
    }
    let wrk = ensure_wrk(&cfg.root)?;
    let work_dir = WorkDir(std::env::temp_dir().join(format!("mx-swarm-{}", std::process::id())));
    std::fs::create_dir_all(&work_dir.0).map_err(|e| failed("bench", "create work dir", e))?;
    let one_lua = write(&work_dir.0, "one.lua", POST_ORDER_LUA)?;
    let spread_lua = write(&work_dir.0, "spread.lua", &spread_script(&cfg.nodes))?;
    let threads = cfg.nodes.len();
    let mut figures = Figures {
        command: cfg.command.clone(),
        load_before: host::load_average(),
        load_after: String::new(),
        threads,
        connections: cfg.connections,
        seconds: cfg.seconds,
        db_node: cfg.db_node.clone(),
        one: Case {
            nodes: vec![first.clone()],
            runs: vec![],
        },
        spread: Case {
            nodes: cfg.nodes.iter().map(|(n, _)| n.clone()).collect(),
            runs: vec![],
        },
        socket_errors: vec![],
    };
    // The URL only names the first node; the spread script re-points each thread.
    let url = format!("http://{}/", cfg.nodes[0].1);
    let load = |script: &Path| {
        wrk_run(
            &wrk,
            "POST /order",
            &url,
            script,
            threads,
            cfg.connections,
            cfg.seconds,
        )
    };
    // Interleaved, so drift in what else the machine runs falls on both cases alike.
    for i in 1..=cfg.runs {
        eprintln!("==> swarm-orders run {i}/{}", cfg.runs);
        let one = load(&one_lua)?;
        let spread = load(&spread_lua)?;
        for (case, l) in [("one node", &one), ("spread", &spread)] {
            if !l.socket_errors.is_empty() {
                figures
                    .socket_errors
                    .push(format!("{case} run {i}: {}", l.socket_errors));
            }
        }
        figures.one.runs.push(Run::from(&one));
        figures.spread.runs.push(Run::from(&spread));
    }
    figures.load_after = host::load_average();
    Ok(render(
        &figures,
        &stackpilot_core::time::utc_minute(stackpilot_core::time::now_utc()),
    ))
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Error> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| failed("bench", "write wrk script", e))?;
    Ok(p)
}

/// The wrk script that pins thread i to node i (round robin when there are more threads).
fn spread_script(nodes: &[(String, SocketAddr)]) -> String {
    let addrs: Vec<String> = nodes
        .iter()
        .map(|(_, a)| format!("{{\"{}\", \"{}\"}}", a.ip(), a.port()))
        .collect();
    format!(
        "{POST_ORDER_LUA}local nodes = {{{}}}\nlocal turn = 0\n\
         function setup(thread)\n  \
         local n = nodes[turn % #nodes + 1]\n  \
         turn = turn + 1\n  \
         thread.addr = wrk.lookup(n[1], n[2])[1]\n\
         end\n",
        addrs.join(", ")
    )
}

/// The median of some numbers (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A case's medians (rate, p50, p99) and its non-2xx over all runs.
fn summary(case: &Case) -> Run {
    let of = |f: fn(&Run) -> f64| median(case.runs.iter().map(f).collect());
    Run {
        rps: of(|r| r.rps),
        p50_ms: of(|r| r.p50_ms),
        p99_ms: of(|r| r.p99_ms),
        non_2xx: case.runs.iter().map(|r| r.non_2xx).sum(),
    }
}

/// The markdown section for `f`, measured at `measured` (UTC).
pub fn render(f: &Figures, measured: &str) -> String {
    let (one, spread) = (summary(&f.one), summary(&f.spread));
    let runs = f.one.runs.len().max(f.spread.runs.len());
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}\n");
    let _ = writeln!(
        s,
        "Measured {measured} UTC on the shared 2-core machine, docker provider, the stack \
         deployed in swarm mode (api one replica per worker, `endpoint_mode: dnsrr`, port \
         published `mode: host`; db on {}). Load average before: {}; after: {}.\n",
        f.db_node, f.load_before, f.load_after
    );
    let _ = writeln!(s, "Command:\n\n    {}\n", f.command);
    let _ = writeln!(
        s,
        "Load: `wrk -t {} -c {} -d {}s --latency`, `POST /order`, from the host, {runs} runs of \
         each case interleaved (one node, spread, one node, …); medians of the runs, non-2xx \
         summed. \"Spread\" pins wrk's threads one per node's published port (no routing \
         mesh without IPVS: a client-side balancer), so each replica gets {} connections.\n",
        f.threads,
        f.connections,
        f.seconds,
        f.connections / u32::try_from(f.threads.max(1)).unwrap_or(1)
    );
    let _ = writeln!(
        s,
        "| case | nodes | req/s (median) | p50 ms | p99 ms | non-2xx | req/s of each run |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---|");
    for (name, case, m) in [
        ("one node", &f.one, one),
        ("spread over the replicas", &f.spread, spread),
    ] {
        let each: Vec<String> = case.runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
        let _ = writeln!(
            s,
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            case.nodes.join(", "),
            m.rps,
            m.p50_ms,
            m.p99_ms,
            m.non_2xx,
            each.join(", ")
        );
    }
    let ratio = if one.rps > 0.0 {
        format!("{:.2}×", spread.rps / one.rps)
    } else {
        "not defined (no request answered on one node)".into()
    };
    let _ = writeln!(
        s,
        "\nSpread over one node: {ratio} the requests per second, with {} replicas.",
        f.spread.nodes.len()
    );
    if !f.socket_errors.is_empty() {
        let _ = writeln!(s, "\nwrk socket errors: {}.", f.socket_errors.join("; "));
    }
    let _ = writeln!(
        s,
        "\nWhat bounds these figures: every order is an `INSERT` into the one Postgres on {} \
         (fsync on), whichever replica takes it, so adding replicas cannot raise the rate above \
         what that one Postgres commits; and wrk, both replicas, Postgres and the three node \
         containers' engines share the same 2 cores (plus the overlay network between the \
         workers and {}). So this shows whether a second replica helps on this host, not what \
         two replicas on two machines would do.",
        f.db_node, f.db_node
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rps: f64, p99_ms: f64, non_2xx: u64) -> Run {
        Run {
            rps,
            p50_ms: p99_ms / 4.0,
            p99_ms,
            non_2xx,
        }
    }

    fn figures() -> Figures {
        Figures {
            command: "cargo xtask bench swarm-orders --runs 3".into(),
            load_before: "1.00 1.00 1.00".into(),
            load_after: "2.00 1.50 1.00".into(),
            threads: 2,
            connections: 32,
            seconds: 10,
            db_node: "control".into(),
            one: Case {
                nodes: vec!["worker1".into()],
                runs: vec![
                    run(1000.0, 40.0, 0),
                    run(1200.0, 20.0, 1),
                    run(1100.0, 30.0, 0),
                ],
            },
            spread: Case {
                nodes: vec!["worker1".into(), "worker2".into()],
                runs: vec![
                    run(1500.0, 50.0, 0),
                    run(1700.0, 30.0, 0),
                    run(1650.0, 35.0, 2),
                ],
            },
            socket_errors: vec![],
        }
    }

    #[test]
    fn both_cases_are_rendered_side_by_side_with_medians_and_summed_non_2xx() {
        let text = render(&figures(), "2026-12-01 04:00");
        assert!(
            text.contains("| one node | worker1 | 1100 | 7.50 | 30.00 | 1 | 1000, 1200, 1100 |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| spread over the replicas | worker1, worker2 | 1650 | 8.75 | 35.00 | 2 | 1500, 1700, 1650 |"
            ),
            "{text}"
        );
        assert!(text.contains("1.50× the requests per second"), "{text}");
        assert!(text.contains("    cargo xtask bench swarm-orders --runs 3\n"));
        assert!(text.starts_with(SECTION));
    }

    #[test]
    fn no_answer_on_one_node_gives_no_ratio() {
        let mut f = figures();
        f.one.runs = vec![run(0.0, 0.0, 0)];
        assert!(render(&f, "t").contains("not defined"));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn the_spread_script_pins_threads_to_every_node_in_turn() {
        let nodes = [
            (
                "worker1".to_string(),
                "172.30.56.11:8000".parse().expect("addr"),
            ),
            (
                "worker2".to_string(),
                "172.30.56.12:8000".parse().expect("addr"),
            ),
        ];
        let lua = spread_script(&nodes);
        assert!(lua.starts_with(POST_ORDER_LUA));
        assert!(lua.contains(
            "local nodes = {{\"172.30.56.11\", \"8000\"}, {\"172.30.56.12\", \"8000\"}}"
        ));
        assert!(lua.contains("thread.addr = wrk.lookup(n[1], n[2])[1]"));
    }
}
