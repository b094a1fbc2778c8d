//! mock-exchange: the lab's API service. Orders on Postgres, truthful liveness (/health)
//! and readiness (/ready), metrics, a heartbeat job, and its own probes (`self-check`,
//! `healthcheck`) for images that have no shell.
//!
//! It owns the service's operational contract: configuration from the environment only,
//! never crashing or restart-looping because the database is gone, bounded database
//! calls, graceful bounded shutdown. It must never bake configuration or secrets in.

pub mod api;
pub mod build_info;
pub mod config;
pub mod db;
pub mod metrics;
pub mod order;

use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::db::{Db, DbError};
use crate::metrics::Metrics;

/// Errors that end the process, with the exit code each stands for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration (exit 2).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Could not listen on the bind address (exit 1).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A runtime facility failed (signals, runtime, metrics) (exit 1).
    #[error("{0}")]
    Runtime(String),
    /// The database pool could not be built (exit 1).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A check failed (exit 1); the report was already printed.
    #[error("{0}")]
    CheckFailed(String),
}

impl Error {
    /// 2 for configuration errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            _ => 1,
        }
    }
}

/// Sets up JSON logging on stdout, one event per line.
pub fn init_logging(level: tracing::Level) {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(level)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stdout)
        .init();
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the server until SIGTERM or SIGINT, then drains in-flight requests for at most
/// the configured shutdown timeout.
pub async fn serve(cfg: Config) -> Result<(), Error> {
    let started_at = now_rfc3339();
    // Listen first: /health must answer right after start, whatever the database does.
    let listener = tokio::net::TcpListener::bind(cfg.bind_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: cfg.bind_addr,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Bind {
        addr: cfg.bind_addr,
        source,
    })?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Runtime(format!("cannot handle SIGTERM: {e}")))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::Runtime(format!("cannot handle SIGINT: {e}")))?;
    let metrics = Metrics::new(now_unix()).map_err(|e| Error::Runtime(e.to_string()))?;
    let db = Db::new(&cfg)?;
    tracing::info!(
        addr = %local,
        version = build_info::VERSION,
        git_sha = build_info::git_sha(),
        build_id = build_info::build_id(),
        database = %cfg.db_url_redacted,
        "listening"
    );

    tokio::spawn(migrate_until_done(db.clone()));
    tokio::spawn(heartbeat(
        db.clone(),
        metrics.clone(),
        cfg.heartbeat_interval,
    ));

    let app = api::router(api::AppState::new(db, metrics, started_at));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(server.into_future());

    let signal = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        r = &mut server => {
            // The server stopped on its own: an accept loop failure.
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::Runtime(format!("server failed: {e}"))),
                Err(e) => Err(Error::Runtime(format!("server task failed: {e}"))),
            };
        }
    };
    tracing::info!(
        signal,
        timeout_secs = cfg.shutdown_timeout.as_secs(),
        "shutting down: no new connections, draining in-flight requests"
    );
    let _ = stop_tx.send(());
    match tokio::time::timeout(cfg.shutdown_timeout, server).await {
        Ok(_) => tracing::info!("shutdown complete"),
        Err(_) => tracing::warn!(
            timeout_secs = cfg.shutdown_timeout.as_secs(),
            "requests still in flight after the shutdown timeout; exiting anyway"
        ),
    }
    Ok(())
}

/// Applies migrations, retrying every 250 ms until the database lets us. Logs each
/// distinct failure once, not every retry.
async fn migrate_until_done(db: Db) {
    let mut last_reason = "";
    loop {
        match db.migrate().await {
            Ok(version) => {
                tracing::info!(schema_version = version, "migrations applied");
                db.start_warm_up();
                return;
            }
            Err(e) => {
                if e.reason() != last_reason {
                    tracing::warn!(reason = e.reason(), error = %e, "migrations not applied yet; retrying");
                    last_reason = e.reason();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The scheduled job: records a heartbeat of this instance in the database every
/// `interval`, and its outcome in the metrics.
async fn heartbeat(db: Db, metrics: Metrics, interval: Duration) {
    let instance = instance_id();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_ok = true;
    loop {
        ticker.tick().await;
        metrics.heartbeat_last_run.set(now_unix());
        match db.heartbeat(&instance).await {
            Ok(beats) => {
                metrics.heartbeat_runs.with_label_values(&["ok"]).inc();
                metrics.heartbeat_last_success.set(now_unix());
                metrics.db_up.set(1);
                if !was_ok {
                    tracing::info!(instance, beats, "heartbeat recorded again");
                }
                tracing::debug!(instance, beats, "heartbeat");
                was_ok = true;
            }
            Err(e) => {
                metrics.heartbeat_runs.with_label_values(&["error"]).inc();
                if e.is_unavailable() {
                    metrics.db_up.set(0);
                }
                if was_ok {
                    tracing::warn!(instance, reason = e.reason(), error = %e, "heartbeat not recorded");
                }
                was_ok = false;
            }
        }
    }
}

/// hostname-pid: unique per process on a host, and readable in the heartbeat table.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}-{}", std::process::id())
}

/// `self-check`: loads configuration, connects, compares the schema version, prints a
/// human report. Ok only when everything passed.
pub async fn self_check(cfg: &Config) -> Result<(), Error> {
    let expected = db::expected_schema_version();
    println!("mock-exchange self-check");
    println!(
        "  build      {} (git {}, build {}, built {})",
        build_info::VERSION,
        build_info::git_sha(),
        build_info::build_id(),
        build_info::build_time()
    );
    println!(
        "  config     ok (DATABASE_URL={}, BIND_ADDR={})",
        cfg.db_url_redacted, cfg.bind_addr
    );
    let started = std::time::Instant::now();
    let client = match db::connect(&cfg.db, Duration::from_secs(5)).await {
        Ok(c) => c,
        Err(e) => {
            println!("  database   FAILED: {e}");
            println!("result: FAILED");
            return Err(Error::CheckFailed(format!(
                "cannot connect: {}",
                e.reason()
            )));
        }
    };
    let server_version = client
        .query_one("SHOW server_version", &[])
        .await
        .ok()
        .and_then(|r| r.try_get::<_, String>(0).ok())
        .unwrap_or_else(|| "unknown".into());
    println!(
        "  database   ok (PostgreSQL {server_version}, connected in {} ms)",
        started.elapsed().as_millis()
    );
    match db::schema_version(&client).await {
        Ok(found) if found >= expected => {
            println!("  schema     ok (version {found}, this build needs {expected})");
            println!("result: ok");
            Ok(())
        }
        Ok(found) => {
            println!(
                "  schema     FAILED: version {found}, this build needs {expected} (migrations pending)"
            );
            println!("result: FAILED");
            Err(Error::CheckFailed("migrations pending".into()))
        }
        Err(e) => {
            println!("  schema     FAILED: {e}");
            println!("result: FAILED");
            Err(Error::CheckFailed(e.to_string()))
        }
    }
}

/// The URL the `healthcheck` probes by default: /health on the port of `bind_addr` (the
/// service's `BIND_ADDR`), on loopback when it listens on all addresses.
pub fn health_url(bind_addr: Option<&str>) -> String {
    let addr = bind_addr
        .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8000)));
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!(
        "http://{}/health",
        std::net::SocketAddr::new(ip, addr.port())
    )
}

/// `healthcheck`: GET `url`, Ok when it answers 200 within 2 s (for FROM-scratch images,
/// which have no curl).
pub fn healthcheck(url: &str) -> Result<(), Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(url).call() {
        Ok(r) if r.status() == 200 => Ok(()),
        Ok(r) => Err(Error::CheckFailed(format!(
            "{url} answered {} (expected 200)",
            r.status()
        ))),
        Err(e) => Err(Error::CheckFailed(format!("{url}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_url_follows_bind_addr() {
        assert_eq!(health_url(None), "http://127.0.0.1:8000/health");
        assert_eq!(
            health_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/health"
        );
        assert_eq!(
            health_url(Some("10.1.2.3:8001")),
            "http://10.1.2.3:8001/health"
        );
        assert_eq!(
            health_url(Some("[::]:8002")),
            "http://127.0.0.1:8002/health"
        );
        assert_eq!(health_url(Some("nonsense")), "http://127.0.0.1:8000/health");
    }
}
