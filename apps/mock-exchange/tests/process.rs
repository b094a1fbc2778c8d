//! The process contract: configuration errors exit 2 naming every bad variable, SIGTERM
//! drains in-flight requests (bounded) and exits 0, and the built-in probes
//! (`healthcheck`, `self-check`) exit 0/1 truthfully.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Service, command, postgres, ready_service, wait_until};
use nix::sys::signal::Signal;

#[test]
fn missing_config_exits_2_naming_every_bad_variable() {
    let out = command(&[("BIND_ADDR", "nowhere"), ("HEARTBEAT_INTERVAL_SECS", "0")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one message: {stderr}");
    for name in ["DATABASE_URL", "BIND_ADDR", "HEARTBEAT_INTERVAL_SECS"] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
    insta::assert_snapshot!("config_error", stderr);
}

#[test]
fn malformed_database_url_exits_2_without_showing_the_password() {
    let out = command(&[("DATABASE_URL", "mysql://app:hunter2@db/x")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL is malformed"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = command(&[]).arg("frobnicate").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// Sends the head of a POST with a 37-byte body but only part of the body, so the
/// request is in flight until `finish` sends the rest.
fn start_slow_order(svc: &Service) -> TcpStream {
    let mut s = TcpStream::connect(svc.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = "POST /order HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                Content-Length: 37\r\nConnection: close\r\n\r\n{\"symbol\":\"BTC\",";
    s.write_all(head.as_bytes()).expect("write head");
    s
}

#[test]
fn sigterm_finishes_the_in_flight_request_then_exits_0() {
    let pg = postgres();
    let mut svc = ready_service(&pg, &[]);
    let mut slow = start_slow_order(&svc);
    svc.wait_in_flight(&slow);
    svc.signal(Signal::SIGTERM);
    svc.wait_logged("shutting down", Duration::from_secs(5));
    // The listener closes right after the shutdown starts.
    let closed = wait_until(Duration::from_secs(5), || {
        TcpStream::connect(svc.addr).is_err()
    });
    assert!(
        closed.is_some(),
        "still accepting new connections after SIGTERM"
    );
    assert!(
        svc.is_running(),
        "exited before the in-flight request finished"
    );
    slow.write_all(b"\"side\":\"buy\",\"qty\":3}")
        .expect("write rest");
    let mut response = String::new();
    slow.read_to_string(&mut response).expect("read response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = svc
        .wait_exit(Duration::from_secs(5))
        .expect("exit after drain");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        pg.psql("postgres", "SELECT qty FROM orders")
            .expect("select"),
        "3"
    );
}

#[test]
fn a_body_that_never_arrives_is_408_after_ten_seconds() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let mut stalled = start_slow_order(&svc);
    // The service answers at its 10 s body timeout: a client timeout of the same 10 s
    // raced it and lost under load (WouldBlock before the 408 arrived). The bound on
    // when the 408 arrives is the assertion below.
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let sent = Instant::now();
    let mut response = String::new();
    stalled
        .read_to_string(&mut response)
        .expect("read response");
    let took = sent.elapsed();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains(r#""field":"body""#), "{response}");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(13),
        "{took:?}"
    );
}

#[test]
fn sigterm_drain_is_bounded_by_the_shutdown_timeout() {
    let pg = postgres();
    let mut svc = ready_service(&pg, &[("SHUTDOWN_TIMEOUT_SECS", "1")]);
    let stalled = start_slow_order(&svc);
    svc.wait_in_flight(&stalled);
    let sent = Instant::now();
    svc.signal(Signal::SIGTERM);
    let status = svc
        .wait_exit(Duration::from_secs(5))
        .expect("exit despite a stalled request");
    assert_eq!(status.code(), Some(0));
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn healthcheck_exits_0_when_health_answers_and_1_when_nothing_listens() {
    // /health never needs the database; point it at a closed port.
    let closed = pg_harness::free_port().expect("port");
    let url = format!("postgres://app:pw@127.0.0.1:{closed}/x");
    let svc = Service::start(&[("DATABASE_URL", &url)]);
    let ok = command(&[])
        .args(["healthcheck", "--url", &svc.url("/health")])
        .output()
        .expect("run");
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    // Without --url it probes /health on BIND_ADDR's port (as the image's HEALTHCHECK does).
    let bind = svc.addr.to_string();
    let default = command(&[("BIND_ADDR", &bind)])
        .arg("healthcheck")
        .output()
        .expect("run");
    assert_eq!(default.status.code(), Some(0), "{default:?}");
    let not_ready = command(&[])
        .args(["healthcheck", "--url", &svc.url("/ready")])
        .output()
        .expect("run");
    assert_eq!(not_ready.status.code(), Some(1), "{not_ready:?}");
    let nothing = format!(
        "http://127.0.0.1:{}/health",
        pg_harness::free_port().expect("port")
    );
    let started = Instant::now();
    let down = command(&[])
        .args(["healthcheck", "--url", &nothing])
        .output()
        .expect("run");
    assert_eq!(down.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The self-check report with its volatile parts (build line, server version, timing,
/// port) replaced, so the snapshot pins what an operator reads.
fn redact_report(report: &str, pg: &pg_harness::PgServer, server: Option<&str>) -> String {
    report
        .lines()
        .map(|line| {
            if line.starts_with("  build ") {
                return "  build      [version, git sha, build id, build time]".to_string();
            }
            let mut line = line.replace(&pg.port().to_string(), "[port]");
            if let Some(server) = server {
                line = line.replace(server, "[server version]");
            }
            if let Some((head, tail)) = line.split_once("connected in ")
                && let Some((_, rest)) = tail.split_once(" ms")
            {
                line = format!("{head}connected in [n] ms{rest}");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `mock-exchange self-check` against `url`: its exit code and what it printed.
fn self_check(url: &str) -> (Option<i32>, String) {
    let out = command(&[("DATABASE_URL", url)])
        .arg("self-check")
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn self_check_reports_the_schema_version_and_exits_0() {
    let pg = postgres();
    let _svc = ready_service(&pg, &[]); // applies the migrations
    let url = pg.admin_url("postgres");
    let (code, stdout) = self_check(&url);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains(pg.password()), "password leaked: {stdout}");
    let server = pg.psql("postgres", "SHOW server_version").expect("version");
    insta::assert_snapshot!("self_check_ok", redact_report(&stdout, &pg, Some(&server)));
}

#[test]
fn self_check_exits_1_when_migrations_are_pending_or_the_database_is_unreachable() {
    let pg = postgres();
    let url = pg.admin_url("postgres");
    let (code, stdout) = self_check(&url);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("migrations pending"), "{stdout}");

    pg.stop().expect("stop");
    let (code, stdout) = self_check(&url);
    assert_eq!(code, Some(1), "{stdout}");
    insta::assert_snapshot!("self_check_unreachable", redact_report(&stdout, &pg, None));
}

#[test]
fn version_reports_build_metadata_and_start_time() {
    let closed = pg_harness::free_port().expect("port");
    let url = format!("postgres://app:pw@127.0.0.1:{closed}/x");
    let svc = Service::start(&[("DATABASE_URL", &url)]);
    let v = svc.get("/version").json;
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let expected_sha = option_env!("STACKPILOT_GIT_SHA").unwrap_or("unknown");
    assert_eq!(v["git_sha"], expected_sha);
    assert!(
        v["started_at"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{v}"
    );
}
