//! The API benchmark (`cargo xtask bench api`): mock-exchange's throughput and latency on
//! loopback, against a private PostgreSQL, with Postgres's own rate for the same statements
//! as the ceiling.
//!
//! Builds the release binary, starts a private PostgreSQL (pg-harness, fsync on) and the
//! service, loads each route with wrk from a second process, runs pgbench with the
//! service's statements at the same concurrency and returns the figures as the markdown
//! section [`SECTION`] of docs/benchmarks.md.

pub(crate) mod report;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pg_harness::{Options, PgServer};
use stackpilot_core::step;

use self::report::{Load, Report, parse_wrk};

/// The wrk script that posts an order (the route the API and swarm benchmarks load).
pub(crate) const POST_ORDER_LUA: &str =
    "wrk.method = \"POST\"\nwrk.path = \"/order?symbol=BTC&side=buy&qty=1\"\n";
use crate::{Error, failed, host, step_failed};

/// The section of docs/benchmarks.md these figures own.
pub const SECTION: &str = "## mock-exchange API";
// The service's statements (apps/mock-exchange/src/db.rs) with pgbench variables.
const SQL_INSERT: &str =
    "INSERT INTO orders (symbol, side, qty) VALUES ('BTC', 'buy', 1) RETURNING id, created_at;";
const SQL_SELECT: &str = "SELECT symbol, side, qty, created_at FROM orders WHERE id = :id;";

/// Knobs of one API benchmark run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace root (where mock-exchange is built).
    pub root: PathBuf,
    /// Seconds per measured run.
    pub seconds: u32,
    /// Concurrent connections (wrk and pgbench alike).
    pub connections: u32,
}

/// Runs the benchmark and returns its markdown section (with the exact command).
pub fn run(args: &Config) -> Result<String, Error> {
    let command_line = format!(
        "cargo xtask bench api --seconds {} --connections {}",
        args.seconds, args.connections
    );
    let bin = build_release(&args.root)?;
    let load_before = host::load_average();
    let wrk = ensure_wrk(&args.root)?;
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
    let rss_idle = host::rss_kib(pid, "VmRSS");

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
    let post = script("post.lua", POST_ORDER_LUA.into())?;
    let mut loads = Vec::new();
    loads.push(wrk_run(&wrk, "GET /health", &base, &health, 2, c, secs)?);
    loads.push(wrk_run(&wrk, "POST /order", &base, &post, 2, c, secs)?);
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
    loads.push(wrk_run(&wrk, "GET /orders/{id}", &base, &get, 2, c, secs)?);
    let rss_peak = host::rss_kib(pid, "VmHWM");
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
    Ok(report.markdown())
}

/// Removes the scripts' directory even when the benchmark fails half-way.
pub(crate) struct WorkDir(pub(crate) PathBuf);

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

fn build_release(root: &Path) -> Result<PathBuf, Error> {
    step::run(
        "build",
        root,
        Command::new("cargo").args(["build", "--release", "-p", "mock-exchange"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_relative() {
        root.join(target)
    } else {
        target
    };
    Ok(target.join("release/mock-exchange"))
}

/// wrk from Debian's package; installed with apt-get when missing (needs root).
pub(crate) fn ensure_wrk(root: &Path) -> Result<PathBuf, Error> {
    if let Ok(p) = which::which("wrk") {
        return Ok(p);
    }
    if which::which("apt-get").is_ok() {
        eprintln!("==> wrk missing: installing Debian's package");
        let install = || {
            step::run(
                "apt-get install wrk",
                root,
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "--no-install-recommends", "wrk"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )
        };
        // A stale package list is the usual reason the first attempt fails.
        if install().is_err() {
            let _ = step::run(
                "apt-get update",
                root,
                Command::new("apt-get").args(["update", "-q"]),
            );
            let _ = install();
        }
    }
    which::which("wrk").map_err(|_| Error::Prereq {
        what: "wrk (HTTP load generator)".into(),
        install: "apt-get install -y wrk".into(),
    })
}

pub(crate) fn wrk_run(
    wrk: &Path,
    route: &'static str,
    base: &str,
    script: &Path,
    threads: usize,
    connections: u32,
    seconds: u32,
) -> Result<Load, Error> {
    let mut cmd = Command::new(wrk);
    cmd.args(["-t", &threads.to_string(), "-c", &connections.to_string()])
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

/// The HTTP status of `GET path`, or None when nothing answered within 1 s.
pub(crate) fn http_status(addr: &str, path: &str) -> Option<u16> {
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
