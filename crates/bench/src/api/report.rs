//! The API benchmark's figures: wrk's output read into numbers, and the published text.

use std::fmt::Write as _;
use std::time::Duration;

use stackpilot_core::time;

use super::SECTION;
use crate::host;

/// One wrk run's figures.
#[derive(Debug, Default, Clone)]
pub(crate) struct Load {
    pub(crate) route: &'static str,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) non_2xx: u64,
    pub(crate) socket_errors: String,
}

pub(crate) fn parse_wrk(route: &'static str, text: &str) -> Option<Load> {
    let mut load = Load {
        route,
        ..Load::default()
    };
    let mut rps = None;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("50%") {
            load.p50_ms = duration_ms(v.trim())?;
        } else if let Some(v) = line.strip_prefix("99%") {
            load.p99_ms = duration_ms(v.trim())?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.non_2xx = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            load.socket_errors = v.trim().to_string();
        }
    }
    load.rps = rps?;
    Some(load)
}

/// wrk prints `635.00us`, `2.41ms`, `1.02s`, `1.50m`.
fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    match unit {
        "us" => Some(n / 1000.0),
        "ms" => Some(n),
        "s" => Some(n * 1000.0),
        "m" => Some(n * 60_000.0),
        _ => None,
    }
}

/// Everything one run measured.
pub(crate) struct Report {
    pub(crate) command: String,
    pub(crate) loads: Vec<Load>,
    pub(crate) pg_insert: f64,
    pub(crate) pg_select: f64,
    pub(crate) first_health: Duration,
    pub(crate) rss_idle: Option<u64>,
    pub(crate) rss_peak: Option<u64>,
    pub(crate) still_ready: bool,
    pub(crate) pg_version: String,
    pub(crate) connections: u32,
    pub(crate) seconds: u32,
    pub(crate) orders: u64,
    pub(crate) load_before: String,
}

impl Report {
    pub(crate) fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{SECTION}\n");
        let _ = writeln!(
            s,
            "Measured {} UTC on a machine with {} cores and {} of memory, PostgreSQL {} \
             (private server from Debian's package, fsync on), release build, default \
             service configuration (pool of 16, JSON request log on), stdout discarded. \
             Load average just before the runs: {} (anything above 0 is other work sharing \
             the cores).\n",
            time::utc_minute(time::now_utc()),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            host::mem_total(),
            self.pg_version,
            self.load_before
        );
        let _ = writeln!(s, "Command:\n\n    {}\n", self.command);
        let _ = writeln!(
            s,
            "Load: `wrk -t 2 -c {} -d {}s --latency` on loopback, one route per run; \
             `GET /orders/{{id}}` picks ids at random among the {} orders the POST run stored. \
             Ceiling: `pgbench -n -M prepared -c {} -j 2 -T {}` with the service's own \
             statements as custom scripts.\n",
            self.connections, self.seconds, self.orders, self.connections, self.seconds
        );
        let _ = writeln!(
            s,
            "| route | req/s | p50 ms | p99 ms | non-2xx | Postgres alone (stmt/s) | share of ceiling | goal |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
        for l in &self.loads {
            let (ceiling, goal) = match l.route {
                "POST /order" => (Some(self.pg_insert), 6_000.0),
                "GET /orders/{id}" => (Some(self.pg_select), 12_000.0),
                _ => (None, 40_000.0),
            };
            let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
            let _ = writeln!(
                s,
                "| `{}` | {:.0} | {:.2} | {:.2} | {} | {} | {} | ≥ {goal:.0} req/s: {}; p99 < 25 ms: {}; 0 non-2xx: {} |",
                l.route,
                l.rps,
                l.p50_ms,
                l.p99_ms,
                l.non_2xx,
                ceiling.map_or_else(|| "-".into(), |c| format!("{c:.0}")),
                ceiling.map_or_else(|| "-".into(), |c| format!("{:.0} %", 100.0 * l.rps / c)),
                verdict(l.rps >= goal),
                verdict(l.p99_ms < 25.0),
                verdict(l.non_2xx == 0),
            );
        }
        let errors: Vec<String> = self
            .loads
            .iter()
            .filter(|l| !l.socket_errors.is_empty())
            .map(|l| format!("{}: {}", l.route, l.socket_errors))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "\nwrk socket errors: {}", errors.join("; "));
        }
        let mib = |k: Option<u64>| {
            k.map_or_else(
                || "unknown".into(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0),
            )
        };
        let rss_met = self.rss_peak.is_some_and(|k| k < 40 * 1024);
        let health_met = self.first_health <= Duration::from_millis(200);
        let _ = writeln!(
            s,
            "\nResident memory: {} idle, {} peak under load (goal < 40 MiB: {}). \
             `/health` answered {} ms after the process was spawned (goal ≤ 200 ms: {}). \
             `/ready` after the load: {}.",
            mib(self.rss_idle),
            mib(self.rss_peak),
            if rss_met { "met" } else { "**missed**" },
            self.first_health.as_millis(),
            if health_met { "met" } else { "**missed**" },
            if self.still_ready {
                "200"
            } else {
                "**not 200**"
            },
        );
        let _ = writeln!(
            s,
            "\nThe load generator, the service and PostgreSQL share the same cores, so these \
             figures are a floor for the service on a dedicated host, and the ceiling column is \
             Postgres with the same core budget and no HTTP in front."
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "\
Running 10s test @ http://127.0.0.1:8000
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   1.20ms  500.00us  20.00ms   90.00%
  Latency Distribution
     50%  635.00us
     75%    1.10ms
     90%    2.00ms
     99%    4.41ms
  100000 requests in 10.00s, 12.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  10000.50
Transfer/sec:      1.20MB
";

    #[test]
    fn wrk_output_is_parsed_into_rate_percentiles_and_errors() {
        let l = parse_wrk("GET /health", WRK).expect("parsed");
        assert_eq!(l.rps, 10000.5);
        assert!((l.p50_ms - 0.635).abs() < 1e-9);
        assert!((l.p99_ms - 4.41).abs() < 1e-9);
        assert_eq!(l.non_2xx, 3);
    }
}
