//! `cargo xtask bench`: runs a benchmark of the `bench` crate, prints its figures and
//! writes them into docs/benchmarks.md. The golden path's timings are measured here,
//! because they come from xtask's own flows; the `bench` crate renders them. For
//! `swarm-orders` xtask brings the swarm's stack up and hands the api nodes' addresses in.

use std::time::Instant;

use ::bench::golden::{Figures, VERIFY_RUNS};
use stackpilot_core::time;

use crate::golden;
use crate::run::{Error, repo_root};
use crate::target::Target;

/// What to benchmark.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Which {
    /// mock-exchange's HTTP API.
    Api,
    /// The golden path on NODE: a warm `demo-reviewer` and 10 verifications.
    Golden,
    /// `POST /order` against one worker's replica and spread over both, on ENV's stack
    /// deployed in swarm mode (`MODE=swarm make up` first, done here).
    SwarmOrders,
    /// The swarm e2e's wall time (issue 13: under 8 minutes warm), `--runs` times.
    SwarmE2e,
}

/// Knobs of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What to benchmark.
    #[arg(value_enum)]
    pub target: Which,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Concurrent connections (wrk and pgbench alike).
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Measured runs of each case (`swarm-orders`, `swarm-e2e`; medians are published).
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// Print only; leave docs/benchmarks.md alone.
    #[arg(long)]
    pub no_write: bool,
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<(), Error> {
    let (section, text) = match args.target {
        Which::Api => (
            ::bench::api::SECTION,
            ::bench::api::run(&::bench::api::Config {
                root: repo_root(),
                seconds: args.seconds,
                connections: args.connections,
            })?,
        ),
        Which::Golden => (::bench::golden::SECTION, golden_figures()?),
        Which::SwarmOrders => (::bench::swarm_orders::SECTION, swarm_orders(args)?),
        Which::SwarmE2e => ::bench::e2e::swarm(repo_root(), args.runs)?,
    };
    stackpilot_core::outln!("\n{text}");
    if !args.no_write {
        ::bench::section::write_named_section(
            &repo_root().join("docs/benchmarks.md"),
            section,
            &text,
        )?;
        eprintln!("==> wrote docs/benchmarks.md ({section})");
    }
    Ok(())
}

/// A warm `demo-reviewer` and the verifications of the healthy node, on NODE (env NODE,
/// default control) and ENV dev.
fn golden_figures() -> Result<String, Error> {
    let node = std::env::var("NODE").unwrap_or_else(|_| "control".into());
    let t = Target::new(&node, "dev")?;
    let load_before = ::bench::load_average();
    // One run first so the next is warm (nodes up, dependencies compiled).
    eprintln!("==> bench golden: warming up with one demo-reviewer on {node}");
    golden::demo_reviewer_timed(&t).1?;
    eprintln!("==> bench golden: measured demo-reviewer on {node}");
    let (phases, result) = golden::demo_reviewer_timed(&t);
    result?;
    let mut verifies = Vec::with_capacity(VERIFY_RUNS);
    let opts = verify::setup::Options::default();
    let handle = t.handle()?;
    for i in 0..VERIFY_RUNS {
        let start = Instant::now();
        let report = verify::setup::verify(&t.cfg, &handle, &t.env, &opts)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let took = start.elapsed();
        if !report.passed {
            return Err(Error::from(stackpilot_core::step::StepError {
                step: "bench golden".into(),
                cmd: format!("verify run {}", i + 1),
                status: "verification failed on a node that had just passed".into(),
            }));
        }
        verifies.push(took);
    }
    let figures = Figures {
        node,
        load_before,
        phases: phases.rows().to_vec(),
        verifies,
    };
    Ok(::bench::golden::render(
        &figures,
        &time::utc_minute(time::now_utc()),
    ))
}

/// The stack of ENV (default dev) brought up in swarm mode, then `POST /order` against the
/// first worker's published port and spread over every worker's.
fn swarm_orders(args: &BenchArgs) -> Result<String, Error> {
    let env = std::env::var("ENV").unwrap_or_else(|_| "dev".into());
    let t = Target::new("control", &env)?;
    eprintln!("==> bench swarm-orders: the {env} stack up in swarm mode");
    crate::swarm::up(&t)?;
    let s = ::lab::swarm::Swarm::of_lab(&t.root, &t.lab_cfg()?)?;
    let port = t.cfg.environment(&env)?.port();
    let nodes = s
        .workers()
        .map(|w| (w.name.clone(), (w.address, port).into()))
        .collect();
    let env_prefix = if env == "dev" {
        String::new()
    } else {
        format!("ENV={env} ")
    };
    Ok(::bench::swarm_orders::run(
        &::bench::swarm_orders::Config {
            root: repo_root(),
            command: format!(
                "{env_prefix}cargo xtask bench swarm-orders --seconds {} --connections {} --runs {}",
                args.seconds, args.connections, args.runs
            ),
            seconds: args.seconds,
            connections: args.connections,
            runs: args.runs,
            nodes,
            db_node: s.manager.name.clone(),
        },
    )?)
}
