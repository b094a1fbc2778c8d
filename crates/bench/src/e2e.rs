//! An e2e test's wall time (`cargo xtask bench swarm-e2e`): the test built once, then run
//! alone by nextest several times, warm (images built, code compiled), each run's wall time
//! and the median against the goal, rendered as a section of docs/benchmarks.md.
//! A failed run is an error naming its log: a time is published only for a passing test.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use stackpilot_core::time;

use crate::golden::median;
use crate::{Error, failed, host};

/// One e2e test and its goal.
#[derive(Debug, Clone, Copy)]
pub struct Test {
    /// The section of docs/benchmarks.md its figures own.
    pub section: &'static str,
    /// The package and the test binary (`cargo nextest run -p <package> --test <binary>`).
    pub package: &'static str,
    pub binary: &'static str,
    /// The test's full name in that binary.
    pub name: &'static str,
    /// What it covers, for the published text.
    pub covers: &'static str,
    /// The goal for a warm run.
    pub goal: Duration,
}

/// The swarm e2e of issue 13: under 8 minutes warm.
pub const SWARM: Test = Test {
    section: "## Swarm mode: the e2e's wall time",
    package: "xtask",
    binary: "swarm_e2e",
    name: "e2e_swarm_demo_reviewer_spans_the_nodes_then_destroy_leaves_nothing",
    covers: "`demo-reviewer MODE=swarm` on control, worker1 and worker2 (docker provider), the placement, digest and cross-node order checks, verify's read-only audit and its three faults (a drained worker, a missing task, another digest), `drills run all` in swarm mode (db-down, db-bad-credentials, db-midflight-loss, node-loss, rolling-update, manager-restart) and destroy",
    goal: Duration::from_secs(8 * 60),
};

/// `cargo xtask bench swarm-e2e --runs N`: [`SWARM`] in the workspace at `root`; its
/// section heading and text.
pub fn swarm(root: PathBuf, runs: u32) -> Result<(&'static str, String), Error> {
    let command = format!("cargo xtask bench swarm-e2e --runs {runs}");
    let text = run(
        &SWARM,
        &Config {
            root,
            command,
            runs,
        },
    )?;
    Ok((SWARM.section, text))
}

/// What to run and where.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace root (where nextest runs, and `target/bench/` keeps each run's log).
    pub root: PathBuf,
    /// The exact command that runs this benchmark, for the published text.
    pub command: String,
    /// Measured runs.
    pub runs: u32,
}

/// What one benchmark measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Load averages before the first run and after the last.
    pub load_before: String,
    pub load_after: String,
    /// Each run's wall time, in order.
    pub runs: Vec<Duration>,
}

/// The nextest arguments that run `t` alone.
fn nextest_args(t: &Test) -> Vec<String> {
    let filter = format!("test(={})", t.name);
    [
        "nextest", "run", "--locked", "-p", t.package, "--test", t.binary, "-E", &filter,
    ]
    .map(String::from)
    .to_vec()
}

/// Builds the test once, then runs it `cfg.runs` times; the rendered section.
pub fn run(t: &Test, cfg: &Config) -> Result<String, Error> {
    let logs = cfg.root.join("target/bench");
    std::fs::create_dir_all(&logs).map_err(|e| failed("bench", "mkdir target/bench", e))?;
    let mut build = nextest_args(t);
    build.push("--no-run".into());
    run_logged(
        cfg,
        "build",
        &build,
        &logs.join(format!("{}-build.log", t.binary)),
    )?;
    let load_before = host::load_average();
    let mut runs = Vec::new();
    for i in 1..=cfg.runs.max(1) {
        eprintln!("==> bench {}: run {i} of {}", t.binary, cfg.runs.max(1));
        let log = logs.join(format!("{}-run{i}.log", t.binary));
        let started = Instant::now();
        run_logged(cfg, &format!("run {i}"), &nextest_args(t), &log)?;
        let took = started.elapsed();
        eprintln!(
            "==> bench {}: run {i} passed in {}s",
            t.binary,
            time::secs(took)
        );
        runs.push(took);
    }
    let figures = Figures {
        load_before,
        load_after: host::load_average(),
        runs,
    };
    Ok(render(
        t,
        &figures,
        &cfg.command,
        &time::utc_minute(time::now_utc()),
    ))
}

/// `cargo <args>` in the workspace, its output to `log`; an error names the log.
fn run_logged(
    cfg: &Config,
    what: &str,
    args: &[String],
    log: &std::path::Path,
) -> Result<(), Error> {
    let cmd = format!("cargo {} > {}", args.join(" "), log.display());
    let out = std::fs::File::create(log).map_err(|e| failed("bench", &cmd, e))?;
    let err = out.try_clone().map_err(|e| failed("bench", &cmd, e))?;
    let status = Command::new("cargo")
        .args(args)
        .current_dir(&cfg.root)
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| failed(what, &cmd, e))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(what, &cmd, format!("{status}: see the log")))
    }
}

/// The markdown section for `figures`, measured at `measured` (UTC).
pub fn render(t: &Test, figures: &Figures, command: &str, measured: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", t.section);
    let _ = writeln!(
        s,
        "Measured {measured} UTC on the shared 2-core machine, warm: lab images built, the test and the node tools compiled (one `--no-run` build first, not counted). Load average before: {}; after: {}.\n",
        figures.load_before, figures.load_after
    );
    let _ = writeln!(s, "Command:\n\n    {command}\n");
    let _ = writeln!(
        s,
        "Each run is `cargo {}` alone, as `make test` runs it: {}.\n",
        nextest_args(t).join(" "),
        t.covers
    );
    let _ = writeln!(s, "| run | wall seconds |\n|---|---:|");
    for (i, d) in figures.runs.iter().enumerate() {
        let _ = writeln!(s, "| {} | {} |", i + 1, time::secs(*d));
    }
    let med = median(figures.runs.clone());
    let met = med <= t.goal;
    let _ = writeln!(
        s,
        "| **median** (goal ≤ {} s: {}) | **{}** |",
        t.goal.as_secs(),
        if met { "met" } else { "**missed**" },
        time::secs(med)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_judged_against_the_goal() {
        let figures = |secs: &[u64]| Figures {
            load_before: "1.0 1.0 1.0".into(),
            load_after: "2.0 2.0 2.0".into(),
            runs: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
        };
        let cmd = "cargo xtask bench swarm-e2e --runs 3";
        let met = render(&SWARM, &figures(&[500, 400, 420]), cmd, "2026-12-02 07:00");
        assert!(met.contains("goal ≤ 480 s: met) | **420.0**"), "{met}");
        assert!(met.contains("| 1 | 500.0 |"), "{met}");
        assert!(met.starts_with(SWARM.section), "{met}");
        assert!(met.contains(&format!("test(={})", SWARM.name)), "{met}");
        let missed = render(&SWARM, &figures(&[500, 490, 420]), cmd, "2026-12-02 07:00");
        assert!(missed.contains("**missed**) | **490.0**"), "{missed}");
    }
}
