//! Postgres access: the pool, embedded migrations, readiness, and the three statements.
//!
//! Every database call is bounded in time: a database that is gone, refusing or hanging
//! turns into a [`DbError`] with a short reason, never into a hung request or a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::{Semaphore, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Statement};

use crate::config::Config;
use crate::order::NewOrder;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The table refinery records applied migrations in.
const HISTORY_TABLE: &str = "refinery_schema_history";
/// Serialises concurrent migrators (two instances starting together during a deploy).
const MIGRATION_LOCK_KEY: i64 = 0x6d78_6d69_6772; // "mxmigr"

/// The statements of the hot paths; `cargo xtask bench api` runs the same ones in pgbench.
pub const INSERT_ORDER: &str =
    "INSERT INTO orders (symbol, side, qty) VALUES ($1, $2, $3) RETURNING id, created_at";
/// Reads one order by primary key.
pub const SELECT_ORDER: &str = "SELECT symbol, side, qty, created_at FROM orders WHERE id = $1";
const UPSERT_HEARTBEAT: &str = "INSERT INTO heartbeat (instance_id, started_at, last_beat_at, beats) \
     VALUES ($1, now(), now(), 1) \
     ON CONFLICT (instance_id) DO UPDATE SET last_beat_at = now(), beats = heartbeat.beats + 1 \
     RETURNING beats";
const SCHEMA_VERSION: &str = "SELECT max(version)::int8 FROM refinery_schema_history";

/// Why the database could not serve a call. `reason()` is the short, stable text that
/// /ready and 503 bodies carry.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Nothing listens at the database address.
    #[error("connection refused: {0}")]
    Refused(String),
    /// The server rejected our credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The database of the URL does not exist.
    #[error("database does not exist: {0}")]
    NoDatabase(String),
    /// The call did not finish within its bound.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The schema is older than this binary needs.
    #[error("migrations pending: {0}")]
    MigrationsPending(String),
    /// The database answers, but the request pool is still opening its first connections.
    #[error("request pool warming: {0}")]
    Warming(String),
    /// The connection broke or the server is shutting down or starting up.
    #[error("connection lost: {0}")]
    Lost(String),
    /// Connecting failed for another reason (DNS, network unreachable, ...).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The server answered with an error we did not expect.
    #[error("database error: {0}")]
    Query(String),
    /// A migration failed to apply.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl DbError {
    /// The short reason reported by /ready and in 503 bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            DbError::Refused(_) => "connection refused",
            DbError::Auth(_) => "authentication failed",
            DbError::NoDatabase(_) => "database does not exist",
            DbError::Timeout(_) => "timeout",
            DbError::MigrationsPending(_) => "migrations pending",
            DbError::Warming(_) => "warming",
            DbError::Lost(_) => "connection lost",
            DbError::Connect(_) => "connection failed",
            DbError::Query(_) => "database error",
            DbError::Migration(_) => "migration failed",
        }
    }

    /// True when the database is unusable (503), false for an unexpected query error (500).
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, DbError::Query(_))
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(&e)
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => classify(&e),
            PoolError::Timeout(_) => DbError::Timeout(Duration::ZERO),
            other => DbError::Connect(other.to_string()),
        }
    }
}

/// Maps a driver error to its class: SQLSTATE first, then the I/O cause.
fn classify(e: &tokio_postgres::Error) -> DbError {
    let text = e.to_string();
    if let Some(code) = e.code() {
        let detail = e
            .as_db_error()
            .map_or_else(|| text.clone(), |d| d.message().to_string());
        return match code {
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                DbError::Auth(detail)
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => DbError::NoDatabase(detail),
            c if *c == SqlState::UNDEFINED_TABLE => DbError::MigrationsPending(detail),
            c if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
            {
                DbError::Lost(detail)
            }
            _ => DbError::Query(detail),
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => DbError::Refused(io.to_string()),
                std::io::ErrorKind::TimedOut => DbError::Timeout(Duration::ZERO),
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionAborted => DbError::Lost(io.to_string()),
                _ => DbError::Connect(io.to_string()),
            };
        }
        source = s.source();
    }
    if e.is_closed() {
        DbError::Lost(text)
    } else {
        DbError::Connect(text)
    }
}

/// RFC 3339 in UTC with microseconds, as stored.
fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The newest schema version embedded in this binary.
pub fn expected_schema_version() -> i64 {
    // Building the runner parses every migration's name; /ready asks often, so once.
    static EXPECTED: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *EXPECTED.get_or_init(|| {
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0)
    })
}

/// A stored order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Order {
    /// Its id.
    pub order_id: i64,
    /// Symbol as stored.
    pub symbol: String,
    /// buy or sell.
    pub side: String,
    /// Quantity.
    pub qty: f64,
    /// Commit time, RFC 3339 UTC.
    pub created_at: String,
}

/// The pools plus the time bounds every call obeys.
#[derive(Clone)]
pub struct Db {
    /// Serves the API's requests.
    pool: Pool,
    /// Serves /ready and the heartbeat, so a request pool exhausted by load neither makes
    /// readiness flap to 503 nor starves the scheduled job.
    probe_pool: Pool,
    pg: tokio_postgres::Config,
    timeout: Duration,
    ready_timeout: Duration,
    create_timeout: Duration,
    ready_checks: Arc<Semaphore>,
    /// A warm-up of the request pool is under way ([`Db::warm`]).
    warming: Arc<AtomicBool>,
    /// A warm-up since start got its connections: from then on readiness follows the
    /// database alone (after a database restart the pool refills as requests need it).
    /// A channel, so a readiness check waits for it without polling.
    warmed: Arc<watch::Sender<bool>>,
}

/// Connections reserved for /ready and the heartbeat.
const PROBE_POOL_SIZE: usize = 2;

/// Connections the request pool holds (at most its size) before /ready says ready. A
/// replica that a balancer sends traffic as soon as it is ready must not answer its first
/// requests 503: on a loaded host each new connection (TCP, SCRAM, first prepare) can take
/// longer than the request bound, and a cold pool makes one per concurrent request. Seen in
/// the swarm rolling-update drill under make test's load: 17 of 2,762 orders answered 503
/// at the 800 ms bound by the new replicas. Two: the lab's order load keeps about one
/// request at a time in flight per node, and each warm connection is a SCRAM handshake
/// more before a starting service (or one whose database came back) is ready.
const WARM_CONNECTIONS: usize = 2;

/// How long making one pooled connection may take (TCP, startup, SCRAM, first prepare).
/// Longer than the request bound on purpose: it runs in its own task, so on a slow host
/// the connection a request gave up on still lands in the pool for the next one. The cap
/// frees the slot of a server that accepts and never answers (`connect_timeout` bounds
/// only the TCP connect in tokio-postgres, not the startup and authentication).
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

impl Db {
    /// Builds the pools; they connect lazily, so a database that is down does not stop
    /// start-up.
    pub fn new(cfg: &Config) -> Result<Self, DbError> {
        let mut pg = cfg.db.clone();
        // Bounds connecting to an address that never answers (no RST, no SYN-ACK).
        pg.connect_timeout(cfg.db_timeout);
        pg.application_name("mock-exchange");
        let create_timeout = cfg.db_timeout.max(CREATE_TIMEOUT);
        let build = |size: usize| {
            let manager = Manager::from_config(
                pg.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(cfg.db_timeout))
                .create_timeout(Some(create_timeout))
                .recycle_timeout(Some(cfg.db_timeout))
                .build()
                .map_err(|e| DbError::Connect(e.to_string()))
        };
        Ok(Self {
            pool: build(cfg.pool_max_size)?,
            probe_pool: build(PROBE_POOL_SIZE)?,
            pg,
            timeout: cfg.db_timeout,
            ready_timeout: cfg.ready_timeout,
            create_timeout,
            ready_checks: Arc::new(Semaphore::new(PROBE_POOL_SIZE)),
            warming: Arc::new(AtomicBool::new(false)),
            warmed: Arc::new(watch::Sender::new(false)),
        })
    }

    /// How many connections the request pool holds when warm.
    fn warm_target(&self) -> usize {
        WARM_CONNECTIONS.min(self.pool.status().max_size)
    }

    /// Ok once the request pool was warm since start; otherwise starts filling it (in a task
    /// of its own, bounded by the create timeout; one at a time) and waits for it until
    /// `deadline` (where a quick host has it warm already, so a first /ready is not 503).
    /// The warm-up holds its connections together, so each is a new one, and prepares the
    /// order statements on each. Only the first warm-up gates readiness: after a database
    /// restart /ready follows the database within its bound, as before.
    async fn warm(&self, deadline: tokio::time::Instant) -> Result<(), DbError> {
        self.start_warm_up();
        let mut warmed = self.warmed.subscribe();
        match tokio::time::timeout_at(deadline, warmed.wait_for(|w| *w)).await {
            // The sender lives in `self`, so the channel cannot close meanwhile.
            Ok(_) => Ok(()),
            Err(_) => {
                let (have, want) = (self.pool.status().size, self.warm_target());
                Err(DbError::Warming(format!(
                    "{have} of {want} connections open"
                )))
            }
        }
    }

    /// Starts filling the request pool unless it is warm or being filled (see [`Db::warm`]);
    /// the service calls it once its migrations are applied, so the pool is usually warm
    /// before anyone asks /ready.
    pub fn start_warm_up(&self) {
        if *self.warmed.borrow() {
            return;
        }
        let want = self.warm_target();
        if !self.warming.swap(true, Ordering::AcqRel) {
            let db = self.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..want.saturating_sub(db.pool.status().size) {
                    let db = db.clone();
                    tasks.spawn(async move {
                        let (client, _) = db.prepared(&db.pool, INSERT_ORDER).await?;
                        client.prepare_cached(SELECT_ORDER).await?;
                        Ok::<_, DbError>(client)
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    match done {
                        Ok(Ok(client)) => held.push(client),
                        Ok(Err(e)) => tracing::debug!(error = %e, "request pool warm-up"),
                        Err(e) => tracing::debug!(error = %e, "request pool warm-up task"),
                    }
                }
                tracing::info!(
                    connections = db.pool.status().size,
                    "request pool warm-up done"
                );
                // Back to the pool only now: held together, each one was a new connection.
                // Any at all will do (a database short of connection slots must not keep
                // the service unready for good); none: the next readiness check tries again.
                if !held.is_empty() || db.pool.status().size >= want {
                    db.warmed.send_replace(true);
                }
                drop(held);
                db.warming.store(false, Ordering::Release);
            });
        }
    }

    /// Pool state: (connections open, idle, callers waiting, maximum).
    pub fn pool_status(&self) -> (usize, usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting, s.max_size)
    }

    async fn bounded<T>(
        limit: Duration,
        fut: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(DbError::Timeout(_))) | Err(_) => Err(DbError::Timeout(limit)),
            Ok(Err(e)) => Err(e),
        }
    }

    /// A connection from `pool` with `sql` prepared on it. Getting it runs in a spawned task
    /// bounded by the create timeout, not by the caller's bound: a caller that gives up (503
    /// at its bound) leaves a connection being made to finish and return to the pool, where
    /// the next call finds it. Without that, when a new connection takes longer than the
    /// bound, every call cancels its half-made one and the pool never gets a connection.
    /// The first prepare on a fresh connection is a round trip too, so it is in the task and
    /// lands in the connection's statement cache.
    async fn prepared(
        &self,
        pool: &Pool,
        sql: &'static str,
    ) -> Result<(Object, Statement), DbError> {
        let (pool, limit) = (pool.clone(), self.create_timeout);
        let task = tokio::spawn(async move {
            let get = async {
                let client = pool.get().await?;
                let stmt = client.prepare_cached(sql).await?;
                Ok((client, stmt))
            };
            tokio::time::timeout(limit, get)
                .await
                .unwrap_or(Err(DbError::Timeout(limit)))
        });
        task.await
            .unwrap_or_else(|join| Err(DbError::Query(format!("connection task failed: {join}"))))
    }

    /// Readiness: the database answers within the ready bound, the schema is current and
    /// the request pool is warm ([`WARM_CONNECTIONS`]). Returns the schema version found.
    ///
    /// The check itself runs in a task bounded by the (longer) request timeout, and /ready
    /// waits for it only up to the ready bound: on a loaded host a new connection (TCP and
    /// SCRAM) may take longer than 300 ms, and a check cancelled at 300 ms would throw the
    /// half-made connection away and never get ready. At most two such tasks run at once;
    /// beyond that the check runs inline.
    pub async fn check_ready(&self) -> Result<i64, DbError> {
        // The warm-up may use what is left of the ready bound, less a margin to answer.
        let deadline = tokio::time::Instant::now() + self.ready_timeout.mul_f32(0.8);
        let check = {
            let db = self.clone();
            async move {
                Self::bounded(db.timeout, async {
                    let (client, stmt) = db.prepared(&db.probe_pool, SCHEMA_VERSION).await?;
                    let row = client.query_one(&stmt, &[]).await?;
                    let found: Option<i64> = row.try_get(0)?;
                    let found = found.unwrap_or(0);
                    let expected = expected_schema_version();
                    if found < expected {
                        return Err(DbError::MigrationsPending(format!(
                            "schema version {found}, this build needs {expected}"
                        )));
                    }
                    db.warm(deadline).await?;
                    Ok(found)
                })
                .await
            }
        };
        match Arc::clone(&self.ready_checks).try_acquire_owned() {
            Ok(permit) => {
                let task = tokio::spawn(async move {
                    let r = check.await;
                    drop(permit);
                    r
                });
                match tokio::time::timeout(self.ready_timeout, task).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(join)) => Err(DbError::Query(format!("readiness task failed: {join}"))),
                    Err(_) => Err(DbError::Timeout(self.ready_timeout)),
                }
            }
            Err(_) => Self::bounded(self.ready_timeout, check).await,
        }
    }

    /// Stores an order; returns only after the row is committed.
    pub async fn insert_order(&self, o: &NewOrder) -> Result<Order, DbError> {
        Self::bounded(self.timeout, async {
            let (client, stmt) = self.prepared(&self.pool, INSERT_ORDER).await?;
            let row = client
                .query_one(&stmt, &[&o.symbol, &o.side.as_str(), &o.qty])
                .await?;
            Ok(Order {
                order_id: row.try_get(0)?,
                symbol: o.symbol.clone(),
                side: o.side.as_str().to_string(),
                qty: o.qty,
                created_at: rfc3339(row.try_get(1)?),
            })
        })
        .await
    }

    /// Reads an order; `None` when absent.
    pub async fn get_order(&self, id: i64) -> Result<Option<Order>, DbError> {
        Self::bounded(self.timeout, async {
            let (client, stmt) = self.prepared(&self.pool, SELECT_ORDER).await?;
            let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
                return Ok(None);
            };
            Ok(Some(Order {
                order_id: id,
                symbol: row.try_get(0)?,
                side: row.try_get(1)?,
                qty: row.try_get(2)?,
                created_at: rfc3339(row.try_get(3)?),
            }))
        })
        .await
    }

    /// Records one heartbeat of `instance`; returns its beat count.
    pub async fn heartbeat(&self, instance: &str) -> Result<i64, DbError> {
        Self::bounded(self.timeout, async {
            let (client, stmt) = self.prepared(&self.probe_pool, UPSERT_HEARTBEAT).await?;
            let row = client.query_one(&stmt, &[&instance]).await?;
            Ok(row.try_get(0)?)
        })
        .await
    }

    /// Applies pending migrations on a dedicated connection, under an advisory lock so that
    /// two instances never migrate at once. Returns the schema version afterwards.
    pub async fn migrate(&self) -> Result<i64, DbError> {
        // A background task: give a slow host time to finish the handshake rather than
        // cancelling at the request bound and starting over forever.
        let mut client = connect(&self.pg, self.timeout.max(Duration::from_secs(5))).await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?;
        let report = embedded::migrations::runner()
            .set_migration_table_name(HISTORY_TABLE)
            .run_async(&mut client)
            .await;
        // The lock dies with the session anyway; unlock for tidiness.
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        report.map_err(|e| {
            // A migration that failed because the connection did is a connection problem.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(pg) = s.downcast_ref::<tokio_postgres::Error>()
                    && pg.code().is_none()
                {
                    return classify(pg);
                }
                source = s.source();
            }
            DbError::Migration(e.to_string())
        })?;
        schema_version(&client).await
    }
}

/// One connection outside the pool (migrations, self-check), bounded by `limit`.
pub async fn connect(
    pg: &tokio_postgres::Config,
    limit: Duration,
) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = match tokio::time::timeout(limit, pg.connect(NoTls)).await {
        Ok(r) => r?,
        Err(_) => return Err(DbError::Timeout(limit)),
    };
    tokio::spawn(async move {
        // Errors surface on the client's next call; nothing to do here.
        let _ = connection.await;
    });
    Ok(client)
}

/// The schema version recorded in the database (0 when nothing was applied).
pub async fn schema_version(client: &tokio_postgres::Client) -> Result<i64, DbError> {
    let row = match client.query_one(SCHEMA_VERSION, &[]).await {
        Ok(row) => row,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let v: Option<i64> = row.try_get(0)?;
    Ok(v.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_numbered_without_gaps() {
        let mut versions: Vec<i64> = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .collect();
        versions.sort_unstable();
        let expected: Vec<i64> = (1..=expected_schema_version()).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn every_reason_is_distinct_and_only_query_errors_are_not_unavailability() {
        let all = [
            DbError::Refused(String::new()),
            DbError::Auth(String::new()),
            DbError::NoDatabase(String::new()),
            DbError::Timeout(Duration::ZERO),
            DbError::MigrationsPending(String::new()),
            DbError::Lost(String::new()),
            DbError::Connect(String::new()),
            DbError::Query(String::new()),
            DbError::Migration(String::new()),
        ];
        let mut reasons: Vec<&str> = all.iter().map(DbError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        let not_unavailable: Vec<&str> = all
            .iter()
            .filter(|e| !e.is_unavailable())
            .map(DbError::reason)
            .collect();
        assert_eq!(not_unavailable, ["database error"]);
    }
}
