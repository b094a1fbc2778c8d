//! `cargo xtask bench api`: mock-exchange's throughput and latency on loopback, against
//! a private PostgreSQL, with Postgres's own rate for the same statements as the ceiling.
//!
//! Builds the release binary, starts a private PostgreSQL (pg-harness, fsync on) and the
//! service, loads each route with wrk from a second process, runs pgbench with the
//! service's statements at the same concurrency, prints the figures and writes them with
//! the exact command into docs/benchmarks.md (section `## mock-exchange API`).
//! A benchmark, not a test: goals are reported as met or missed, never asserted.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pg_harness::{Options, PgServer};

use crate::run::{Error, repo_root, step};

/// What to benchmark.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Target {
    /// mock-exchange's HTTP API.
    Api,
    /// The golden path on NODE: a warm `demo-reviewer` and 10 verifications.
    Golden,
}

/// Knobs of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What to benchmark.
    #[arg(value_enum)]
    pub target: Target,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Concurrent connections (wrk and pgbench alike).
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Print only; leave docs/benchmarks.md alone.
    #[arg(long)]
    pub no_write: bool,
}

const SECTION: &str = "## mock-exchange API";
// The service's statements (apps/mock-exchange/src/db.rs) with pgbench variables.
const SQL_INSERT: &str =
    "INSERT INTO orders (symbol, side, qty) VALUES ('BTC', 'buy', 1) RETURNING id, created_at;";
const SQL_SELECT: &str = "SELECT symbol, side, qty, created_at FROM orders WHERE id = :id;";

/// One wrk run's figures.
#[derive(Debug, Default, Clone)]
struct Load {
    route: &'static str,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    socket_errors: String,
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<(), Error> {
    if let Target::Golden = args.target {
        return crate::bench_golden::run(args.no_write);
    }
    let command_line = format!(
        "cargo xtask bench api --seconds {} --connections {}",
        args.seconds, args.connections
    );
    let bin = build_release()?;
    let load_before = load_average();
    let wrk = ensure_wrk()?;
    let work_dir = WorkDir(std::env::temp_dir().join(format!("mx-bench-{}", std::process::id())));
    std::fs::create_dir_all(&work_dir.0).map_err(|e| failed("bench", "create work dir", e))?;
    let work = work_dir.0.as_path();

    let pg = PgServer::start(&Options {
        fsync: true,
        max_connections: 200,
    })
    .map_err(|e| failed("postgres", "start a private PostgreSQL", e))?;
    let pg_version = pg
        .psql("postgres", "SHOW server_version")
        .unwrap_or_else(|_| "unknown".into());
    let port = pg_harness::free_port().map_err(|e| failed("service", "pick a port", e))?;
    let addr = format!("127.0.0.1:{port}");
    eprintln!("==> service: {} on {addr}", bin.display());
    let started = Instant::now();
    let service = ServiceGuard(
        Command::new(&bin)
            .env_clear()
            .env("DATABASE_URL", pg.admin_url("postgres"))
            .env("BIND_ADDR", &addr)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| failed("service", &bin.display().to_string(), e))?,
    );
    let first_health = poll(Duration::from_secs(10), Duration::from_millis(2), || {
        http_status(&addr, "/health") == Some(200)
    })
    .map(|_| started.elapsed());
    let Some(first_health) = first_health else {
        return Err(step_failed("service", "/health did not answer within 10 s"));
    };
    if poll(Duration::from_secs(15), Duration::from_millis(50), || {
        http_status(&addr, "/ready") == Some(200)
    })
    .is_none()
    {
        return Err(step_failed(
            "service",
            "/ready did not turn 200 within 15 s",
        ));
    }
    let pid = service.0.id();
    let rss_idle = rss_kib(pid, "VmRSS");

    // Scripts that set wrk.path override the path; the plain run loads /health.
    let base = format!("http://{addr}/health");
    let c = args.connections;
    let secs = args.seconds;
    let script = |name: &str, text: String| -> Result<PathBuf, Error> {
        let p = work.join(name);
        std::fs::write(&p, text).map_err(|e| failed("bench", "write wrk script", e))?;
        Ok(p)
    };
    let health = script("health.lua", String::new())?;
    let post = script(
        "post.lua",
        "wrk.method = \"POST\"\nwrk.path = \"/order?symbol=BTC&side=buy&qty=1\"\n".into(),
    )?;
    let mut loads = Vec::new();
    loads.push(wrk_run(&wrk, "GET /health", &base, &health, c, secs)?);
    loads.push(wrk_run(&wrk, "POST /order", &base, &post, c, secs)?);
    let orders: u64 = pg
        .psql("postgres", "SELECT count(*) FROM orders")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
        .max(1);
    let get = script(
        "get.lua",
        format!(
            "math.randomseed(42)\nrequest = function()\n  \
             return wrk.format(\"GET\", \"/orders/\" .. math.random(1, {orders}))\nend\n"
        ),
    )?;
    loads.push(wrk_run(&wrk, "GET /orders/{id}", &base, &get, c, secs)?);
    let rss_peak = rss_kib(pid, "VmHWM");
    let still_ready = http_status(&addr, "/ready") == Some(200);
    drop(service);

    let pg_insert = pgbench(&pg, work, "insert.sql", SQL_INSERT, c, secs)?;
    let select = format!("\\set id random(1, {orders})\n{SQL_SELECT}\n");
    let pg_select = pgbench(&pg, work, "select.sql", &select, c, secs)?;

    let report = Report {
        command: command_line,
        loads,
        pg_insert,
        pg_select,
        first_health,
        rss_idle,
        rss_peak,
        still_ready,
        pg_version,
        connections: c,
        seconds: secs,
        orders,
        load_before,
    };
    let text = report.markdown();
    println!("\n{text}");
    if !args.no_write {
        write_section(&repo_root().join("docs/benchmarks.md"), &text)?;
        eprintln!("==> wrote docs/benchmarks.md ({SECTION})");
    }
    Ok(())
}

/// Removes the scripts' directory even when the benchmark fails half-way.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the service even when the benchmark fails half-way.
struct ServiceGuard(Child);

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn build_release() -> Result<PathBuf, Error> {
    step(
        "build",
        Command::new("cargo").args(["build", "--release", "-p", "mock-exchange"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let target = if target.is_relative() {
        repo_root().join(target)
    } else {
        target
    };
    Ok(target.join("release/mock-exchange"))
}

/// wrk from Debian's package; installed with apt-get when missing (needs root).
fn ensure_wrk() -> Result<PathBuf, Error> {
    if let Ok(p) = which::which("wrk") {
        return Ok(p);
    }
    if which::which("apt-get").is_ok() {
        eprintln!("==> wrk missing: installing Debian's package");
        let installed = step(
            "apt-get install wrk",
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends", "wrk"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        );
        if installed.is_err() {
            let _ = step(
                "apt-get update",
                Command::new("apt-get").args(["update", "-q"]),
            );
            let _ = step(
                "apt-get install wrk",
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "--no-install-recommends", "wrk"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            );
        }
    }
    which::which("wrk").map_err(|_| Error::Prereq {
        what: "wrk (HTTP load generator)".into(),
        install: "apt-get install -y wrk".into(),
    })
}

fn wrk_run(
    wrk: &Path,
    route: &'static str,
    base: &str,
    script: &Path,
    connections: u32,
    seconds: u32,
) -> Result<Load, Error> {
    let mut cmd = Command::new(wrk);
    cmd.args(["-t", "2", "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(base);
    eprintln!("==> load {route}: {}", format!("{cmd:?}").replace('"', ""));
    let out = cmd.output().map_err(|e| failed("wrk", route, e))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(step_failed(
            "wrk",
            &format!("{route}: {}{}", text, String::from_utf8_lossy(&out.stderr)),
        ));
    }
    let load = parse_wrk(route, &text)
        .ok_or_else(|| step_failed("wrk", &format!("unreadable output:\n{text}")))?;
    eprintln!(
        "<== {route}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, non-2xx {}",
        load.rps, load.p50_ms, load.p99_ms, load.non_2xx
    );
    Ok(load)
}

fn parse_wrk(route: &'static str, text: &str) -> Option<Load> {
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

fn pgbench(
    pg: &PgServer,
    work: &Path,
    name: &str,
    sql: &str,
    connections: u32,
    seconds: u32,
) -> Result<f64, Error> {
    let script = work.join(name);
    std::fs::write(&script, sql).map_err(|e| failed("pgbench", "write script", e))?;
    let mut cmd = Command::new(pg.bin().join("pgbench"));
    cmd.args([
        "-n",
        "-M",
        "prepared",
        "-c",
        &connections.to_string(),
        "-j",
        "2",
    ])
    .args(["-T", &seconds.to_string(), "-h", "127.0.0.1"])
    .args([
        "-p",
        &pg.port().to_string(),
        "-U",
        pg_harness::SUPERUSER,
        "-f",
    ])
    .arg(&script)
    .arg("postgres")
    .env("PGPASSWORD", pg.password());
    eprintln!(
        "==> ceiling {name}: {}",
        format!("{cmd:?}").replace('"', "")
    );
    let out = cmd.output().map_err(|e| failed("pgbench", name, e))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(step_failed(
            "pgbench",
            &format!("{name}: {text}{}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    let tps = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("tps = ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
        })
        .ok_or_else(|| step_failed("pgbench", &format!("no tps in:\n{text}")))?;
    eprintln!("<== ceiling {name}: {tps:.0} statements/s");
    Ok(tps)
}

struct Report {
    command: String,
    loads: Vec<Load>,
    pg_insert: f64,
    pg_select: f64,
    first_health: Duration,
    rss_idle: Option<u64>,
    rss_peak: Option<u64>,
    still_ready: bool,
    pg_version: String,
    connections: u32,
    seconds: u32,
    orders: u64,
    load_before: String,
}

impl Report {
    fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{SECTION}\n");
        let _ = writeln!(
            s,
            "Measured {} UTC on a machine with {} cores and {} of memory, PostgreSQL {} \
             (private server from Debian's package, fsync on), release build, default \
             service configuration (pool of 16, JSON request log on), stdout discarded. \
             Load average just before the runs: {} (anything above 0 is other work sharing \
             the cores).\n",
            utc_now(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            mem_total(),
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

/// Replaces (or appends) our section of docs/benchmarks.md, leaving the rest intact.
fn write_section(path: &Path, section: &str) -> Result<(), Error> {
    write_named_section(path, SECTION, section)
}

/// Replaces (or appends) the section headed `heading` of a markdown file, leaving the
/// rest intact.
pub fn write_named_section(path: &Path, heading: &str, section: &str) -> Result<(), Error> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match old.find(heading) {
        Some(start) => {
            let rest = &old[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map_or(old.len(), |i| start + heading.len() + i + 1);
            format!("{}{}{}", &old[..start], section, &old[end..])
        }
        None => format!(
            "{}\n{section}",
            old.trim_end_matches('\n').to_string() + "\n"
        ),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed("docs", "create docs/", e))?;
    }
    std::fs::write(path, new).map_err(|e| failed("docs", &path.display().to_string(), e))
}

/// The HTTP status of `GET path`, or None when nothing answered within 1 s.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let sock = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn poll(limit: Duration, every: Duration, mut probe: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if probe() {
            return Some(started.elapsed());
        }
        std::thread::sleep(every);
    }
    None
}

/// A field of /proc/PID/status in KiB (VmRSS: now, VmHWM: peak).
fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or_else(|| "unknown".into(), |k| format!("{} GiB", k / 1024 / 1024))
}

pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d %H:%M"])
        .output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown time".into())
}

fn failed(step: &str, cmd: &str, e: impl std::fmt::Display) -> Error {
    Error::StepFailed {
        step: step.into(),
        cmd: cmd.into(),
        status: e.to_string(),
    }
}

fn step_failed(step: &str, what: &str) -> Error {
    Error::StepFailed {
        step: step.into(),
        cmd: what.into(),
        status: "failed".into(),
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

    #[test]
    fn our_section_is_replaced_and_others_are_kept() {
        let dir = std::env::temp_dir().join(format!("bench-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("benchmarks.md");
        let old =
            "# Benchmarks\n\n## other\nkeep\n\n## mock-exchange API\nold\n\n## tail\nkeep too\n";
        std::fs::write(&path, old).expect("write");
        write_section(&path, "## mock-exchange API\n\nnew\n\n").expect("section");
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            text,
            "# Benchmarks\n\n## other\nkeep\n\n## mock-exchange API\n\nnew\n\n## tail\nkeep too\n"
        );
    }
}
