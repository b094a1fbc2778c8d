//! Configuration, read only from the environment at run time.

use std::net::SocketAddr;
use std::time::Duration;

/// Every variable the service reads, with its default (`None`: required).
pub const VARIABLES: &[(&str, Option<&str>, &str)] = &[
    (
        "DATABASE_URL",
        None,
        "postgres://user:password@host:port/db",
    ),
    ("BIND_ADDR", Some("0.0.0.0:8000"), "listen address"),
    (
        "DB_POOL_MAX_SIZE",
        Some("16"),
        "connections in the pool, 1-1000",
    ),
    (
        "DB_TIMEOUT_MS",
        Some("800"),
        "bound on one database-backed request's database work, 50-10000",
    ),
    (
        "READY_TIMEOUT_MS",
        Some("300"),
        "bound on /ready's database check, 10-300",
    ),
    (
        "HEARTBEAT_INTERVAL_SECS",
        Some("5"),
        "period of the heartbeat job, 1-3600",
    ),
    (
        "SHUTDOWN_TIMEOUT_SECS",
        Some("10"),
        "bound on draining in-flight requests after SIGTERM, 0-300",
    ),
    (
        "LOG_LEVEL",
        Some("info"),
        "error, warn, info, debug or trace",
    ),
];

/// The service's validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Connection settings parsed from `DATABASE_URL`.
    pub db: tokio_postgres::Config,
    /// `DATABASE_URL` with the password replaced by `***`, for reports and logs.
    pub db_url_redacted: String,
    /// Where to listen.
    pub bind_addr: SocketAddr,
    /// Maximum pooled connections.
    pub pool_max_size: usize,
    /// Bound on one request's database work (pool wait + connect + query).
    pub db_timeout: Duration,
    /// Bound on /ready's check.
    pub ready_timeout: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Bound on the graceful drain after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Log verbosity.
    pub log_level: tracing::Level,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("Config")
            .field("database_url", &self.db_url_redacted)
            .field("bind_addr", &self.bind_addr)
            .field("pool_max_size", &self.pool_max_size)
            .field("db_timeout", &self.db_timeout)
            .field("ready_timeout", &self.ready_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("log_level", &self.log_level)
            .finish()
    }
}

/// The configuration was refused: every bad variable, each with what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {}", problems.join("; "))]
pub struct ConfigError {
    /// One entry per bad variable, starting with its name.
    pub problems: Vec<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let get = |name: &str| {
            let default = VARIABLES
                .iter()
                .find(|(n, _, _)| *n == name)
                .and_then(|(_, d, _)| *d);
            match lookup(name) {
                Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                _ => default.map(str::to_string),
            }
        };

        let db = match get("DATABASE_URL") {
            None => {
                problems.push(
                    "DATABASE_URL is not set (expected postgres://user:password@host:port/db)"
                        .to_string(),
                );
                None
            }
            Some(url) => match parse_database_url(&url) {
                Ok(cfg) => Some((cfg, redact(&url))),
                Err(why) => {
                    problems.push(format!(
                        "DATABASE_URL is malformed: {why} (expected postgres://user:password@host:port/db)"
                    ));
                    None
                }
            },
        };

        let bind_addr = get("BIND_ADDR").and_then(|v| match v.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "BIND_ADDR={v:?} is not an address:port (expected e.g. 0.0.0.0:8000)"
                ));
                None
            }
        });
        let mut number = |name: &str, min: u64, max: u64| -> Option<u64> {
            let v = get(name)?;
            match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    problems.push(format!(
                        "{name}={v:?} is not a whole number from {min} to {max}"
                    ));
                    None
                }
            }
        };
        let pool = number("DB_POOL_MAX_SIZE", 1, 1000);
        let db_timeout = number("DB_TIMEOUT_MS", 50, 10_000);
        let ready_timeout = number("READY_TIMEOUT_MS", 10, 300);
        let heartbeat = number("HEARTBEAT_INTERVAL_SECS", 1, 3600);
        let shutdown = number("SHUTDOWN_TIMEOUT_SECS", 0, 300);
        let log_level = get("LOG_LEVEL").and_then(|v| match v.to_ascii_lowercase().as_str() {
            "error" => Some(tracing::Level::ERROR),
            "warn" => Some(tracing::Level::WARN),
            "info" => Some(tracing::Level::INFO),
            "debug" => Some(tracing::Level::DEBUG),
            "trace" => Some(tracing::Level::TRACE),
            _ => {
                problems.push(format!(
                    "LOG_LEVEL={v:?} is not one of error, warn, info, debug, trace"
                ));
                None
            }
        });

        match (
            db,
            bind_addr,
            pool,
            db_timeout,
            ready_timeout,
            heartbeat,
            shutdown,
            log_level,
        ) {
            (
                Some((db, db_url_redacted)),
                Some(bind_addr),
                Some(pool),
                Some(db_timeout),
                Some(ready_timeout),
                Some(heartbeat),
                Some(shutdown),
                Some(log_level),
            ) if problems.is_empty() => Ok(Config {
                db,
                db_url_redacted,
                bind_addr,
                pool_max_size: usize::try_from(pool).unwrap_or(16),
                db_timeout: Duration::from_millis(db_timeout),
                ready_timeout: Duration::from_millis(ready_timeout),
                heartbeat_interval: Duration::from_secs(heartbeat),
                shutdown_timeout: Duration::from_secs(shutdown),
                log_level,
            }),
            _ => Err(ConfigError { problems }),
        }
    }
}

/// Parses the URL form only (tokio-postgres also accepts `key=value` strings, which the
/// contract does not), and requires a user, a host and a database name.
fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("it must start with postgres://".into());
    }
    let cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| e.to_string())?;
    let mut missing = Vec::new();
    if cfg.get_user().is_none_or(str::is_empty) {
        missing.push("user");
    }
    if cfg.get_hosts().is_empty() {
        missing.push("host");
    }
    if cfg.get_dbname().is_none_or(str::is_empty) {
        missing.push("database name");
    }
    if missing.is_empty() {
        Ok(cfg)
    } else {
        Err(format!("no {}", missing.join(", no ")))
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_database_url_is_set() {
        let cfg = load(&[("DATABASE_URL", "postgres://app:s3cret@db:5432/exchange")]);
        let cfg = cfg.expect("valid");
        assert_eq!(cfg.bind_addr.to_string(), "0.0.0.0:8000");
        assert_eq!(cfg.ready_timeout, Duration::from_millis(300));
        assert_eq!(cfg.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(cfg.db_url_redacted, "postgres://app:***@db:5432/exchange");
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn every_bad_variable_is_named_in_one_error() {
        let err = load(&[
            ("BIND_ADDR", "localhost"),
            ("DB_POOL_MAX_SIZE", "0"),
            ("LOG_LEVEL", "loud"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        for name in ["DATABASE_URL", "BIND_ADDR", "DB_POOL_MAX_SIZE", "LOG_LEVEL"] {
            assert!(text.contains(name), "{name} missing from: {text}");
        }
        assert_eq!(err.problems.len(), 4);
    }

    #[test]
    fn database_url_must_be_a_postgres_url_with_user_host_and_db() {
        for bad in [
            "mysql://u:p@h/db",
            "host=db user=app",
            "postgres://db:5432/exchange",
            "postgres://app:pw@db:5432",
            "postgres://app:pw@db:notaport/x",
        ] {
            let err = load(&[("DATABASE_URL", bad)]).expect_err(bad);
            assert!(err.to_string().contains("DATABASE_URL"), "{bad}: {err}");
            assert!(!err.to_string().contains("pw@"), "password leaked: {err}");
        }
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(redact("postgres://u:p@h:1/d"), "postgres://u:***@h:1/d");
        assert_eq!(redact("postgres://u@h/d"), "postgres://u:***@h/d");
        assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    }
}
