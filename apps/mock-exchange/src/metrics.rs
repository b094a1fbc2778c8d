//! Prometheus metrics: requests by route and status, latency, database and pool state,
//! and the heartbeat job.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::build_info;

/// The service's metrics (cheap to clone: every metric is reference-counted).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// 1 when the last database call succeeded, 0 when it failed.
    pub db_up: IntGauge,
    pool_size: IntGauge,
    pool_available: IntGauge,
    pool_waiting: IntGauge,
    pool_max: IntGauge,
    /// Heartbeat runs by result (`ok`, `error`).
    pub heartbeat_runs: IntCounterVec,
    /// Unix time of the last successful heartbeat.
    pub heartbeat_last_success: Gauge,
    /// Unix time of the last heartbeat attempt.
    pub heartbeat_last_run: Gauge,
}

/// Metrics could not be registered (a programming error, reported at start-up).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Registers every metric under the `mock_exchange_` prefix.
    pub fn new(start_unix: f64) -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("mock_exchange".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "status"],
        )?;
        let db_up = IntGauge::new("db_up", "1 when the last database call succeeded")?;
        let pool_size = IntGauge::new("db_pool_connections", "Open pooled connections")?;
        let pool_available = IntGauge::new("db_pool_idle", "Idle pooled connections")?;
        let pool_waiting = IntGauge::new(
            "db_pool_waiting",
            "Requests waiting for a pooled connection",
        )?;
        let pool_max = IntGauge::new("db_pool_max_size", "Configured pool size")?;
        let heartbeat_runs = IntCounterVec::new(
            Opts::new("heartbeat_runs_total", "Heartbeat job runs by result"),
            &["result"],
        )?;
        let heartbeat_last_success = Gauge::new(
            "heartbeat_last_success_timestamp_seconds",
            "Unix time of the last heartbeat recorded in the database",
        )?;
        let heartbeat_last_run = Gauge::new(
            "heartbeat_last_run_timestamp_seconds",
            "Unix time of the last heartbeat attempt",
        )?;
        let start = Gauge::new(
            "process_start_time_seconds",
            "Unix time the process started",
        )?;
        start.set(start_unix);
        let info = IntGauge::with_opts(
            Opts::new("build_info", "Build metadata of this binary")
                .const_label("version", build_info::VERSION)
                .const_label("git_sha", build_info::git_sha())
                .const_label("build_id", build_info::build_id()),
        )?;
        info.set(1);
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(db_up.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_available.clone()),
            Box::new(pool_waiting.clone()),
            Box::new(pool_max.clone()),
            Box::new(heartbeat_runs.clone()),
            Box::new(heartbeat_last_success.clone()),
            Box::new(heartbeat_last_run.clone()),
            Box::new(start),
            Box::new(info),
        ] {
            registry.register(c)?;
        }
        // Both results exist from the start so rate() works before the first failure.
        heartbeat_runs.with_label_values(&["ok"]);
        heartbeat_runs.with_label_values(&["error"]);
        Ok(Self {
            registry,
            requests,
            latency,
            db_up,
            pool_size,
            pool_available,
            pool_waiting,
            pool_max,
            heartbeat_runs,
            heartbeat_last_success,
            heartbeat_last_run,
        })
    }

    /// Counts one finished request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status_label(status);
        self.requests
            .with_label_values(&[route, method, status])
            .inc();
        self.latency
            .with_label_values(&[route, status])
            .observe(seconds);
    }

    /// Renders the Prometheus text format, with the pool state read now.
    pub fn render(&self, pool: (usize, usize, usize, usize)) -> String {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.pool_size.set(as_i64(pool.0));
        self.pool_available.set(as_i64(pool.1));
        self.pool_waiting.set(as_i64(pool.2));
        self.pool_max.set(as_i64(pool.3));
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Status codes as static labels, avoiding an allocation per request.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        400 => "400",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        415 => "415",
        500 => "500",
        503 => "503",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_requests_pool_and_heartbeat_families() -> Result<(), MetricsError> {
        let m = Metrics::new(1.0)?;
        m.observe_request("/health", "GET", 200, 0.001);
        let text = m.render((3, 2, 0, 16));
        for needle in [
            "mock_exchange_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
            "mock_exchange_http_request_duration_seconds_bucket{route=\"/health\",status=\"200\",le=\"0.001\"} 1",
            "mock_exchange_db_pool_connections 3",
            "mock_exchange_db_pool_max_size 16",
            "mock_exchange_heartbeat_runs_total{result=\"error\"} 0",
            "mock_exchange_build_info{",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        Ok(())
    }
}
