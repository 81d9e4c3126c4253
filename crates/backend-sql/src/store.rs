//! The store: one pool of one database, the dispatch to that database's SQL, and the
//! retention sweep.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use jiff::Timestamp;
use stats_core::retention::Retention;
use stats_core::{Capabilities, Error, Granularity, Result, Store};

use crate::config::{Database, SqlConfig, TableNames, redact};
use crate::error::{map, map_connect};

/// The name this store reports in errors and [`Store::name`].
pub const STORE_NAME: &str = "sql";

/// The database behind a store. Without any database feature it has no variant, and
/// [`SqlConfig::from_url`] refuses every URL before a store could be built.
pub(crate) enum Backend {
    #[cfg(feature = "postgres")]
    Postgres(crate::dialect::postgres::Postgres),
    #[cfg(feature = "mysql")]
    MySql(crate::dialect::mysql::MySql),
    #[cfg(feature = "sqlite")]
    Sqlite(crate::dialect::sqlite::Sqlite),
}

/// Runs `$call` (which returns `Result<_, sqlx::Error>`) on the database of `$store` (anything
/// with a `backend` field that dereferences to a [`Backend`]), bound as `$db`. The type
/// annotation lets a build without any database (where the `match` has no arm) type-check.
macro_rules! dispatch {
    ($store:expr, $db:ident => $call:expr) => {{
        let result: ::std::result::Result<_, ::sqlx::Error> = match *$store.backend {
            #[cfg(feature = "postgres")]
            $crate::store::Backend::Postgres(ref $db) => $call,
            #[cfg(feature = "mysql")]
            $crate::store::Backend::MySql(ref $db) => $call,
            #[cfg(feature = "sqlite")]
            $crate::store::Backend::Sqlite(ref $db) => $call,
        };
        result
    }};
}
pub(crate) use dispatch;

/// Deletes the buckets of `granularity` that start before `before` (from the Trifle table
/// `trifle` in the Trifle layout); shared by
/// [`MetricStore::purge`](stats_core::MetricStore::purge) and the sweep task, which holds no store.
pub(crate) async fn purge(
    backend: &Backend,
    trifle: Option<&str>,
    granularity: &str,
    before: i64,
) -> std::result::Result<u64, sqlx::Error> {
    if let Some(table) = trifle {
        return crate::trifle::purge(backend, table, granularity, before).await;
    }
    struct On<'a> {
        backend: &'a Backend,
    }
    let on = On { backend };
    dispatch!(on, db => db.purge(granularity, before).await)
}

/// A timed retention sweep that failed (see [`SqlStore::last_sweep_error`], which has an
/// example).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SweepFailure {
    /// When the sweep started (the time its cutoffs were computed from).
    pub at: Timestamp,
    /// The granularity whose buckets could not be purged. The sweep went on with the others.
    pub granularity: Granularity,
    /// What went wrong.
    pub error: Arc<Error>,
}

/// The background sweep of a store with a retention: its task and what it last failed with.
struct Sweeper {
    task: tokio::task::JoinHandle<()>,
    last_error: Arc<Mutex<Option<SweepFailure>>>,
}

/// The sweep task: every `interval`, purges what `retention` says has expired, for as long as
/// the store lives. It holds only a weak reference to the database, taken strong for the
/// length of one sweep, so it never keeps a dropped store's pool open; the store also aborts
/// it when dropped or closed.
async fn sweep_loop(
    backend: Weak<Backend>,
    retention: Retention,
    interval: Duration,
    acquire_timeout: Duration,
    last_error: Arc<Mutex<Option<SweepFailure>>>,
    trifle: Option<String>,
) {
    // The first sweep waits one interval: the tables may be set up just after connecting.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // A sweep slower than the interval delays the next one instead of running a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(backend) = backend.upgrade() else {
            return;
        };
        let now = Timestamp::now();
        let mut failed = None;
        for (granularity, before) in retention.cutoffs(now) {
            let purged = purge(
                &backend,
                trifle.as_deref(),
                &granularity.to_string(),
                before,
            )
            .await;
            if let Err(e) = purged {
                failed = Some(SweepFailure {
                    at: now,
                    granularity,
                    error: Arc::new(map(e, acquire_timeout)),
                });
            }
        }
        // The outcome of this sweep: a sweep that succeeds clears an earlier failure.
        *last_error.lock().unwrap_or_else(|p| p.into_inner()) = failed;
    }
}

/// A store on PostgreSQL, MySQL/MariaDB or SQLite. See the crate docs for the layout, what is
/// atomic and the error mapping.
///
/// A store holds a connection pool; it is cheap to share (`Arc<SqlStore>`) and every call takes
/// a pooled connection for its duration. `Debug` shows the configuration with passwords hidden.
pub struct SqlStore {
    pub(crate) backend: Arc<Backend>,
    pub(crate) config: SqlConfig,
    sweeper: Option<Sweeper>,
    /// Unix second at or after which the next apply of a batch with an id deletes the ids
    /// older than [`BATCH_ID_WINDOW`](stats_core::BATCH_ID_WINDOW).
    pub(crate) next_batch_prune: std::sync::atomic::AtomicI64,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("config", &self.config)
            .finish()
    }
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        if let Some(sweeper) = &self.sweeper {
            sweeper.task.abort();
        }
    }
}

impl SqlStore {
    /// Opens a connection pool, after one connection of its own to fail early, with the cause,
    /// on a wrong address, path or password. It creates no tables: call [`SqlStore::setup`]
    /// once, at deployment or start.
    ///
    /// With a [`retention`](SqlConfig::retention), it also starts the sweep: a tokio task that
    /// runs [`SqlStore::purge_expired`] every [`sweep_interval`](SqlConfig::sweep_interval)
    /// (the first one interval after connecting) until the store is dropped or closed (see
    /// [`SqlStore::last_sweep_error`]). So it must be called inside a tokio runtime, as every
    /// call of this store must.
    ///
    /// # Errors
    /// Every error names the database by its URL, the password hidden:
    /// [`Error::Unavailable`](stats_core::Error::Unavailable) when the server cannot be
    /// reached (refused, unknown host, I/O), with the driver's cause;
    /// [`Error::Timeout`](stats_core::Error::Timeout) when the first connection does not open
    /// within the acquire timeout; [`Error::InvalidInput`](stats_core::Error::InvalidInput) for
    /// bad URL parameters; [`Error::Backend`](stats_core::Error::Backend) when the server
    /// refuses the login or a SQLite file cannot be opened (the path is in the URL shown).
    pub async fn connect(config: SqlConfig) -> Result<Self> {
        config.check()?;
        let failed = |e| map_connect(e, redact(&config.url), config.acquire_timeout);
        let backend = match config.database {
            #[cfg(feature = "postgres")]
            Database::Postgres => Backend::Postgres(
                crate::dialect::postgres::Postgres::connect(&config)
                    .await
                    .map_err(failed)?,
            ),
            #[cfg(feature = "mysql")]
            Database::MySql => Backend::MySql(
                crate::dialect::mysql::MySql::connect(&config)
                    .await
                    .map_err(failed)?,
            ),
            #[cfg(feature = "sqlite")]
            Database::Sqlite => Backend::Sqlite(
                crate::dialect::sqlite::Sqlite::connect(&config)
                    .await
                    .map_err(failed)?,
            ),
            #[allow(unreachable_patterns)]
            other => {
                // `SqlConfig::from_url` already refuses databases this build lacks.
                let _ = failed;
                return Err(stats_core::Error::InvalidInput(format!(
                    "{other} support is not compiled in (crate feature `{}`)",
                    other.feature()
                )));
            }
        };
        let backend = Arc::new(backend);
        let sweeper = (!config.retention.is_empty()).then(|| {
            let last_error = Arc::new(Mutex::new(None));
            let task = tokio::spawn(sweep_loop(
                Arc::downgrade(&backend),
                config.retention.clone(),
                config.sweep_interval,
                config.acquire_timeout,
                Arc::clone(&last_error),
                match config.metric_layout() {
                    crate::config::Layout::Trifle(t) => Some(t.name().to_owned()),
                    crate::config::Layout::Ours => None,
                },
            ));
            Sweeper { task, last_error }
        });
        Ok(SqlStore {
            backend,
            config,
            sweeper,
            next_batch_prune: std::sync::atomic::AtomicI64::new(i64::MIN),
        })
    }

    /// Deletes, now, every bucket that has expired under the configured
    /// [`retention`](SqlConfig::retention) (a bucket starting at `s` expires at `s + keep`,
    /// by this machine's clock); returns how many buckets. Without a retention it deletes
    /// nothing. The timed sweep runs the same.
    ///
    /// ```no_run
    /// # async fn demo() -> stats_core::Result<()> {
    /// use std::time::Duration;
    /// use stats_backend_sql::{SqlConfig, SqlStore};
    /// use stats_core::retention::Retention;
    ///
    /// let retention = Retention::new().keep("1m".parse()?, Duration::from_secs(2 * 86_400))?;
    /// let config = SqlConfig::from_url("sqlite:stats.db")?
    ///     .retention(retention)
    ///     .sweep_interval(Duration::from_secs(600))?;
    /// let store = SqlStore::connect(config).await?; // sweeps every 10 minutes
    /// store.setup().await?;
    /// let removed = store.purge_expired().await?; // or on demand
    /// if let Some(failure) = store.last_sweep_error() {
    ///     eprintln!("sweep of {} buckets failed at {}: {}", failure.granularity, failure.at, failure.error);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The database's errors; buckets of granularities purged before the error stay deleted.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.config
            .retention
            .purge_expired(self, Timestamp::now())
            .await
    }

    /// The failure of the latest timed retention sweep, if it failed (a sweep that succeeds
    /// clears it): "is the sweep failing now". `None` without a retention or before the first
    /// sweep. The sweep does not log; read this from your health check.
    pub fn last_sweep_error(&self) -> Option<SweepFailure> {
        let sweeper = self.sweeper.as_ref()?;
        sweeper
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// [`SqlConfig::from_url`], [`SqlStore::connect`] and [`SqlStore::setup`] in one call, with
    /// the default settings.
    ///
    /// # Errors
    /// As those three.
    pub async fn open(url: &str) -> Result<Self> {
        let store = Self::connect(SqlConfig::from_url(url)?).await?;
        store.setup().await?;
        Ok(store)
    }

    /// Creates the tables and indexes if they do not exist (see the crate docs for the layout).
    /// Idempotent, and safe to run from many processes at once: on PostgreSQL under an
    /// advisory lock, on SQLite in one write transaction, on MySQL under the server's metadata
    /// locks.
    ///
    /// # Errors
    /// The database's errors, for example a user without the right to create tables.
    pub async fn setup(&self) -> Result<()> {
        dispatch!(self, db => db.setup().await).map_err(|e| self.error(e))
    }

    /// Drops this store's three tables, and everything in them. For tests and uninstalls.
    ///
    /// # Errors
    /// The database's errors.
    pub async fn drop_tables(&self) -> Result<()> {
        dispatch!(self, db => db.drop_tables().await).map_err(|e| self.error(e))
    }

    /// Deletes expired throttle rows and returns how many. Acquiring an expired key reuses its
    /// row, so this only matters for keys that are never used again; run it now and then.
    ///
    /// # Errors
    /// The database's errors.
    pub async fn purge_expired_throttles(&self) -> Result<u64> {
        dispatch!(self, db => db.purge_throttles().await).map_err(|e| self.error(e))
    }

    /// Closes the pool: waits for calls in progress, then closes every connection. The
    /// retention sweep stops. Later calls fail with a retryable [`Error::Unavailable`](stats_core::Error::Unavailable).
    pub async fn close(&self) {
        if let Some(sweeper) = &self.sweeper {
            sweeper.task.abort();
        }
        let _: std::result::Result<(), sqlx::Error> = dispatch!(self, db => {
            db.close().await;
            Ok(())
        });
    }

    /// The settings this store was built with.
    pub fn config(&self) -> &SqlConfig {
        &self.config
    }

    /// The database this store is on.
    pub fn database(&self) -> Database {
        self.config.database
    }

    /// The store's table names.
    pub fn tables(&self) -> &TableNames {
        &self.config.tables
    }

    pub(crate) fn error(&self, e: sqlx::Error) -> stats_core::Error {
        map(e, self.config.acquire_timeout)
    }
}

impl Store for SqlStore {
    fn name(&self) -> &'static str {
        STORE_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.floats = true;
        caps.max_min = true;
        caps.atomic_batch = true;
        // A batch's id is inserted in the transaction of its writes (`<prefix>_batches`).
        caps.idempotent_batch = true;
        caps.persistent = !self.config.is_sqlite_memory();
        caps
    }
}
