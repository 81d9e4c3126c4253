//! The store: one pool of one database, and the dispatch to that database's SQL.

use std::fmt;

use stats_core::{Capabilities, Result, Store};

use crate::config::{Database, SqlConfig, TableNames};
use crate::error::map;

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

/// Runs `$call` (which returns `Result<_, sqlx::Error>`) on the database of `$store`, bound as
/// `$db`. The type annotation lets a build without any database (where the `match` has no arm)
/// type-check.
macro_rules! dispatch {
    ($store:expr, $db:ident => $call:expr) => {{
        let result: ::std::result::Result<_, ::sqlx::Error> = match $store.backend {
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

/// A store on PostgreSQL, MySQL/MariaDB or SQLite. See the crate docs for the layout, what is
/// atomic and the error mapping.
///
/// A store holds a connection pool; it is cheap to share (`Arc<SqlStore>`) and every call takes
/// a pooled connection for its duration. `Debug` shows the configuration with passwords hidden.
pub struct SqlStore {
    pub(crate) backend: Backend,
    pub(crate) config: SqlConfig,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("config", &self.config)
            .finish()
    }
}

impl SqlStore {
    /// Opens a connection pool (and one connection, to fail early on a wrong address or
    /// password). It creates no tables: call [`SqlStore::setup`] once, at deployment or start.
    ///
    /// # Errors
    /// [`Error::Unavailable`](stats_core::Error::Unavailable) when the server cannot be
    /// reached, [`Error::Timeout`](stats_core::Error::Timeout) when no connection opens within
    /// the acquire timeout, [`Error::InvalidInput`](stats_core::Error::InvalidInput) for bad
    /// URL parameters, [`Error::Backend`](stats_core::Error::Backend) when the server refuses
    /// the login.
    pub async fn connect(config: SqlConfig) -> Result<Self> {
        let timeout = config.acquire_timeout;
        let backend = match config.database {
            #[cfg(feature = "postgres")]
            Database::Postgres => Backend::Postgres(
                crate::dialect::postgres::Postgres::connect(&config)
                    .await
                    .map_err(|e| map(e, timeout))?,
            ),
            #[cfg(feature = "mysql")]
            Database::MySql => Backend::MySql(
                crate::dialect::mysql::MySql::connect(&config)
                    .await
                    .map_err(|e| map(e, timeout))?,
            ),
            #[cfg(feature = "sqlite")]
            Database::Sqlite => Backend::Sqlite(
                crate::dialect::sqlite::Sqlite::connect(&config)
                    .await
                    .map_err(|e| map(e, timeout))?,
            ),
            #[allow(unreachable_patterns)]
            other => {
                // `SqlConfig::from_url` already refuses databases this build lacks.
                let _ = timeout;
                return Err(stats_core::Error::InvalidInput(format!(
                    "{other} support is not compiled in (crate feature `{}`)",
                    other.feature()
                )));
            }
        };
        Ok(SqlStore { backend, config })
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

    /// Closes the pool: waits for calls in progress, then closes every connection. Later calls
    /// fail with a retryable [`Error::Unavailable`](stats_core::Error::Unavailable).
    pub async fn close(&self) {
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
        caps.persistent = !self.config.is_sqlite_memory();
        caps
    }
}
