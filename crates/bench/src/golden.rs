//! The golden path's figures (`cargo xtask bench golden`): a warm `demo-reviewer` with its
//! per-phase timings and the median of the verifications of the healthy node, rendered as
//! the `## Golden path` section of docs/benchmarks.md. The flow that measures them is
//! xtask's; this module only turns the measured durations into the published text.

use std::fmt::Write as _;
use std::time::Duration;

use stackpilot_core::time;

/// The section of docs/benchmarks.md these figures own.
pub const SECTION: &str = "## Golden path";
/// How many verifications of the healthy node are measured.
pub const VERIFY_RUNS: usize = 10;

/// What one `bench golden` run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The node measured.
    pub node: String,
    /// Load averages just before the runs.
    pub load_before: String,
    /// Each phase of the measured `demo-reviewer`, in order.
    pub phases: Vec<(String, Duration)>,
    /// Each full verification of the healthy node.
    pub verifies: Vec<Duration>,
}

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    match d.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => d[n / 2],
        n => (d[n / 2 - 1] + d[n / 2]) / 2,
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// The markdown section for `figures`, measured at `measured` (UTC).
pub fn render(figures: &Figures, measured: &str) -> String {
    let Figures {
        node,
        load_before,
        phases,
        verifies,
    } = figures;
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION}\n");
    let _ = writeln!(
        s,
        "Measured {measured} UTC on the shared 2-core machine, docker provider, node `{node}`, env `dev`. Load average before: {load_before}.\n"
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
    for (name, d) in phases {
        let _ = writeln!(s, "| {name} | {} |", time::secs(*d));
    }
    let total: Duration = phases.iter().map(|(_, d)| *d).sum();
    let _ = writeln!(
        s,
        "| **total** (goal ≤ 60 s: {}) | **{}** |\n",
        verdict(total <= Duration::from_secs(60)),
        time::secs(total)
    );
    let med = median(verifies.clone());
    let (min, max) = (
        verifies.iter().min().copied().unwrap_or_default(),
        verifies.iter().max().copied().unwrap_or_default(),
    );
    let _ = writeln!(
        s,
        "Full verification of a healthy node (17 checks, 5 layers): median {} ms of {} (min {} ms, max {} ms); goal ≤ 1000 ms: {}.",
        med.as_millis(),
        verifies.len(),
        min.as_millis(),
        max.as_millis(),
        verdict(med <= Duration::from_secs(1))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(ms(&[30, 10, 20])), Duration::from_millis(20));
        assert_eq!(median(ms(&[40, 10, 20, 30])), Duration::from_millis(25));
        assert_eq!(median(vec![]), Duration::ZERO);
    }

    #[test]
    fn a_slow_total_and_a_slow_median_are_reported_missed() {
        let f = Figures {
            node: "worker1".into(),
            load_before: "0.50 0.40 0.30".into(),
            phases: vec![
                ("clean".into(), Duration::from_secs(50)),
                ("build".into(), Duration::from_secs(20)),
            ],
            verifies: ms(&[900, 1200, 1100]),
        };
        let text = render(&f, "2026-11-30 18:00");
        assert!(
            text.contains("| **total** (goal ≤ 60 s: **missed**) | **70.0** |"),
            "{text}"
        );
        assert!(
            text.contains(
                "median 1100 ms of 3 (min 900 ms, max 1200 ms); goal ≤ 1000 ms: **missed**."
            ),
            "{text}"
        );
        assert!(
            text.contains("NODE=worker1 cargo xtask bench golden"),
            "{text}"
        );
    }
}
