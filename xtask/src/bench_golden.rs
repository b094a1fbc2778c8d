//! `cargo xtask bench golden`: the golden path's figures on NODE — a warm `demo-reviewer`
//! with its per-phase timings, and the median of 10 full verifications of the healthy
//! node — written to docs/benchmarks.md with the command.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::bench::{load_average, utc_now, write_named_section};
use crate::golden::{self, Target};
use crate::run::{Error, repo_root};

const SECTION: &str = "## Golden path";
const VERIFY_RUNS: usize = 10;

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    match d.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => d[n / 2],
        n => (d[n / 2 - 1] + d[n / 2]) / 2,
    }
}

/// Runs the benchmark on NODE (env NODE, default control) and ENV dev.
pub fn run(no_write: bool) -> Result<(), Error> {
    let node = std::env::var("NODE").unwrap_or_else(|_| "control".into());
    let t = Target::new(&node, "dev")?;
    let load_before = load_average();
    // One run first so the next is warm (nodes up, dependencies compiled).
    eprintln!("==> bench golden: warming up with one demo-reviewer on {node}");
    golden::demo_reviewer_timed(&t).1?;
    eprintln!("==> bench golden: measured demo-reviewer on {node}");
    let (phases, result) = golden::demo_reviewer_timed(&t);
    result?;
    let mut verifies = Vec::with_capacity(VERIFY_RUNS);
    let opts = verify::setup::Options::default();
    for i in 0..VERIFY_RUNS {
        let start = Instant::now();
        let report = verify::setup::verify(&t.root, &t.cfg, &t.node, &t.env, &opts)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let took = start.elapsed();
        if !report.passed {
            return Err(Error::StepFailed {
                step: "bench golden".into(),
                cmd: format!("verify run {}", i + 1),
                status: "verification failed on a node that had just passed".into(),
            });
        }
        verifies.push(took);
    }
    let total: Duration = phases.rows().iter().map(|(_, d)| *d).sum();
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}\n");
    let _ = writeln!(
        s,
        "Measured {} UTC on the shared 2-core machine, docker provider, node `{node}`, env `dev`. Load average before: {load_before}.\n",
        utc_now()
    );
    let _ = writeln!(s, "Command:\n\n    NODE={node} cargo xtask bench golden\n");
    let _ = writeln!(
        s,
        "It runs `demo-reviewer` once to warm up, then measures a second `demo-reviewer` (clean room, compile, image build, start, healthy, verify) and {VERIFY_RUNS} verifications of the healthy node through the verify library (the same call `make verify` makes, without cargo's start-up).\n"
    );
    let _ = writeln!(
        s,
        "| phase of a warm `demo-reviewer` | seconds |\n|---|---:|"
    );
    for (name, d) in phases.rows() {
        let _ = writeln!(s, "| {name} | {:.1} |", d.as_secs_f64());
    }
    let _ = writeln!(
        s,
        "| **total** (goal ≤ 60 s: {}) | **{:.1}** |\n",
        if total <= Duration::from_secs(60) {
            "met"
        } else {
            "**missed**"
        },
        total.as_secs_f64()
    );
    let med = median(verifies.clone());
    let (min, max) = (
        verifies.iter().min().copied().unwrap_or_default(),
        verifies.iter().max().copied().unwrap_or_default(),
    );
    let _ = writeln!(
        s,
        "Full verification of a healthy node (17 checks, 5 layers): median {} ms of {VERIFY_RUNS} (min {} ms, max {} ms); goal ≤ 1000 ms: {}.",
        med.as_millis(),
        min.as_millis(),
        max.as_millis(),
        if med <= Duration::from_secs(1) {
            "met"
        } else {
            "**missed**"
        }
    );
    println!("{s}");
    if !no_write {
        write_named_section(&repo_root().join("docs/benchmarks.md"), SECTION, &s)?;
        eprintln!("==> wrote docs/benchmarks.md ({SECTION})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(median(ms(&[30, 10, 20])), Duration::from_millis(20));
        assert_eq!(median(ms(&[40, 10, 20, 30])), Duration::from_millis(25));
        assert_eq!(median(vec![]), Duration::ZERO);
    }
}
