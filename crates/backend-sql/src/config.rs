//! Connection and layout settings.

use std::fmt;
use std::time::Duration;

use stats_core::retention::Retention;
use stats_core::store::MAX_TTL;
use stats_core::{Error, Result};

/// Default table prefix: the tables are `stats_buckets`, `stats_counters`, `stats_throttles`
/// and `stats_batches` (the ids of applied batches, kept 24 hours).
pub const DEFAULT_TABLE_PREFIX: &str = "stats";
/// Default size of the connection pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default wait for a free pooled connection; then a call fails with a retryable
/// [`Error::Timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default SQLite busy timeout: how long a write waits for another connection's write lock
/// before failing with a retryable error.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of times a batch that lost a deadlock or a serialization conflict is run
/// again before its retryable error is returned.
pub const DEFAULT_DEADLOCK_RERUNS: u32 = 5;
/// Default time between two retention sweeps (see [`SqlConfig::retention`]).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Longest table prefix, so that every derived name (`<prefix>_throttles_expires_at`) stays
/// under the identifier limits of all three databases (63 bytes on PostgreSQL).
pub const MAX_TABLE_PREFIX_LEN: usize = 41;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Database {
    /// PostgreSQL (`postgres://` or `postgresql://`).
    Postgres,
    /// MySQL or MariaDB (`mysql://` or `mariadb://`).
    MySql,
    /// SQLite (`sqlite:path`, `sqlite://path`, `sqlite::memory:`).
    Sqlite,
}

impl Database {
    /// The crate feature that compiles this database's driver in.
    pub fn feature(self) -> &'static str {
        match self {
            Database::Postgres => "postgres",
            Database::MySql => "mysql",
            Database::Sqlite => "sqlite",
        }
    }

    /// Whether this build has the database's driver.
    pub fn is_compiled(self) -> bool {
        match self {
            Database::Postgres => cfg!(feature = "postgres"),
            Database::MySql => cfg!(feature = "mysql"),
            Database::Sqlite => cfg!(feature = "sqlite"),
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Database::Postgres => "PostgreSQL",
            Database::MySql => "MySQL/MariaDB",
            Database::Sqlite => "SQLite",
        })
    }
}

/// The names of a store's tables, derived from a checked prefix.
///
/// A prefix matches `^[a-z_][a-z0-9_]{0,40}$`: lower-case ASCII letters, digits and `_`, not
/// starting with a digit. So a table name can never carry a quote, a space or a semicolon into
/// the SQL text it is placed in; it is quoted there as well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    prefix: String,
}

impl TableNames {
    /// Checks a prefix.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the prefix and the pattern it must match. Nothing is sent
    /// to the database.
    pub fn new(prefix: &str) -> Result<Self> {
        let mut bytes = prefix.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !first_ok || !rest_ok || prefix.len() > MAX_TABLE_PREFIX_LEN {
            let shown: String = prefix.chars().take(60).collect();
            return Err(Error::InvalidInput(format!(
                "table prefix {shown:?} must match ^[a-z_][a-z0-9_]{{0,40}}$ (lower-case ASCII \
                 letters, digits and '_', at most {MAX_TABLE_PREFIX_LEN} characters)"
            )));
        }
        Ok(TableNames {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The table of metric buckets: `<prefix>_buckets`.
    pub fn buckets(&self) -> String {
        format!("{}_buckets", self.prefix)
    }

    /// The table of counters: `<prefix>_counters`.
    pub fn counters(&self) -> String {
        format!("{}_counters", self.prefix)
    }

    /// The table of applied batch ids: `<prefix>_batches`.
    pub fn batches(&self) -> String {
        format!("{}_batches", self.prefix)
    }

    /// The table of throttles: `<prefix>_throttles`.
    pub fn throttles(&self) -> String {
        format!("{}_throttles", self.prefix)
    }
}

/// Trifle's default table name (`Trifle::Stats::Driver::Postgres` and `::Sqlite` of the Ruby
/// gem `trifle-stats` 2.6).
pub const TRIFLE_DEFAULT_TABLE: &str = "trifle_stats";

/// Where a store keeps its metric documents.
///
/// ```
/// use stats_backend_sql::{Layout, SqlConfig, TrifleTable};
/// # #[cfg(feature = "sqlite")] {
/// let shared = SqlConfig::from_url("sqlite:stats.db")?
///     .layout(Layout::Trifle(TrifleTable::default()))?; // Trifle's `trifle_stats` table
/// assert_eq!(shared.metric_layout(), &Layout::Trifle(TrifleTable::default()));
/// assert_eq!(SqlConfig::from_url("sqlite:stats.db")?.metric_layout(), &Layout::Ours);
/// # }
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Layout {
    /// This crate's own tables: one row per leaf (see the crate docs, "Layout"). The default.
    #[default]
    Ours,
    /// Trifle 2.6's table, shared with a Trifle application (see the crate docs, "Trifle
    /// layout").
    Trifle(TrifleTable),
}

/// The Trifle table of [`Layout::Trifle`]: its name, in Trifle's `joined_identifier: :full`
/// mode (Trifle 2.6's default): `key VARCHAR(255)` holding `<metric>::<granularity>::<unix
/// start>`, and `data` the bucket's leaves as one JSON object of dot-joined paths.
///
/// ```
/// use stats_backend_sql::{Layout, TrifleTable};
/// assert_eq!(TrifleTable::default().name(), "trifle_stats");
/// let _layout = Layout::Trifle(TrifleTable::named("shop_stats")?);
/// assert!(TrifleTable::named("x\"; DROP TABLE y; --").is_err());
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrifleTable {
    name: String,
}

impl Default for TrifleTable {
    fn default() -> Self {
        TrifleTable {
            name: TRIFLE_DEFAULT_TABLE.to_owned(),
        }
    }
}

impl TrifleTable {
    /// A table of another name (Trifle's `table_name:` option). It must match
    /// `^[a-z_][a-z0-9_]{0,62}$`, so that it is the same identifier unquoted (as Trifle writes
    /// it) and quoted (as this store does).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the name and the pattern.
    pub fn named(name: &str) -> Result<Self> {
        let mut bytes = name.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !first_ok || !rest_ok || name.len() > 63 {
            let shown: String = name.chars().take(80).collect();
            return Err(Error::InvalidInput(format!(
                "Trifle table name {shown:?} must match ^[a-z_][a-z0-9_]{{0,62}}$"
            )));
        }
        Ok(TrifleTable {
            name: name.to_owned(),
        })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Settings of a [`SqlStore`](crate::SqlStore).
///
/// `Debug` hides passwords, both in the user part of the URL and in a `password=` parameter.
#[derive(Clone, PartialEq, Eq)]
pub struct SqlConfig {
    pub(crate) url: String,
    pub(crate) database: Database,
    pub(crate) tables: TableNames,
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) busy_timeout: Duration,
    pub(crate) deadlock_reruns: u32,
    pub(crate) retention: Retention,
    pub(crate) sweep_interval: Duration,
    pub(crate) layout: Layout,
}

impl SqlConfig {
    /// A configuration for the database at `url`: `postgres://user:password@host:port/db`
    /// (or `postgresql://`), `mysql://user:password@host:port/db` (or `mariadb://`),
    /// `sqlite:path/to/file.db` (or `sqlite://path`; the file is created if missing) or
    /// `sqlite::memory:` (one connection, gone when the store is dropped). Parameters are
    /// the driver's (sqlx's), for example `?sslmode=disable` or `?application_name=...`.
    ///
    /// # TLS
    ///
    /// With the `tls` feature (`postgres-tls` or `mysql-tls` of `stats`; rustls with ring),
    /// the URL parameters choose TLS:
    ///
    /// | | PostgreSQL | MySQL/MariaDB |
    /// |---|---|---|
    /// | TLS when the server offers it (the default) | `sslmode=prefer` | `ssl-mode=PREFERRED` |
    /// | TLS or fail, certificate not checked | `sslmode=require` | `ssl-mode=REQUIRED` |
    /// | ... and signed by a trusted root | `sslmode=verify-ca` | `ssl-mode=VERIFY_CA` |
    /// | ... and naming the host of the URL | `sslmode=verify-full` | `ssl-mode=VERIFY_IDENTITY` |
    /// | no TLS | `sslmode=disable` | `ssl-mode=DISABLED` |
    /// | trusted root (PEM file) instead of the system's | `sslrootcert=<path>` | `ssl-ca=<path>` |
    ///
    /// For example `postgres://app@db.internal/app?sslmode=verify-full&sslrootcert=/etc/ca.pem`.
    /// Without the `tls` feature the default modes connect without TLS, and a mode that
    /// requires TLS (or a root certificate) is refused here.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another scheme, or a root certificate file that cannot be
    /// read or holds no PEM certificate (naming the path); [`Error::Unsupported`] when this
    /// build lacks the database's crate feature (`postgres`, `mysql`, `sqlite`), or the `tls`
    /// feature for a URL that requires TLS.
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        let (database, url) =
            if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
                (Database::Postgres, url.to_owned())
            } else if lower.starts_with("mysql://") {
                (Database::MySql, url.to_owned())
            } else if lower.starts_with("mariadb://") {
                (
                    Database::MySql,
                    format!("mysql://{}", &url["mariadb://".len()..]),
                )
            } else if lower.starts_with("sqlite:") {
                (Database::Sqlite, url.to_owned())
            } else {
                return Err(Error::InvalidInput(format!(
                    "{:?} is not a postgres://, mysql://, mariadb:// or sqlite: URL",
                    redact(url)
                )));
            };
        if !database.is_compiled() {
            return Err(Error::Unsupported {
                store: crate::STORE_NAME,
                operation: match database {
                    Database::Postgres => "PostgreSQL (build with the `postgres` feature)",
                    Database::MySql => "MySQL/MariaDB (build with the `mysql` feature)",
                    Database::Sqlite => "SQLite (build with the `sqlite` feature)",
                },
            });
        }
        check_tls_options(database, &url, cfg!(feature = "tls"))?;
        Ok(SqlConfig {
            url,
            database,
            tables: TableNames::new(DEFAULT_TABLE_PREFIX).expect("the default prefix is valid"),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_connections: 0,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            deadlock_reruns: DEFAULT_DEADLOCK_RERUNS,
            retention: Retention::new(),
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            layout: Layout::Ours,
        })
    }

    /// The prefix of the table names (default `stats`), so that several applications, or test
    /// runs, can share a database: the tables are `<prefix>_buckets`, `<prefix>_counters`,
    /// `<prefix>_throttles` and `<prefix>_batches`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless the prefix matches `^[a-z_][a-z0-9_]{0,40}$`
    /// (see [`TableNames`]).
    pub fn table_prefix(mut self, prefix: &str) -> Result<Self> {
        self.tables = TableNames::new(prefix)?;
        Ok(self)
    }

    /// Checks the settings that can only be judged together or that the driver would not take:
    /// timeouts within [`check_timeout`](stats_core::store::check_timeout)'s bounds,
    /// `min_connections <= max_connections`.
    pub(crate) fn check(&self) -> Result<()> {
        stats_core::store::check_timeout("acquire_timeout", self.acquire_timeout)?;
        stats_core::store::check_timeout("busy_timeout", self.busy_timeout)?;
        if self.min_connections > self.max_connections {
            return Err(Error::InvalidInput(format!(
                "min_connections ({}) must not exceed max_connections ({})",
                self.min_connections, self.max_connections
            )));
        }
        Ok(())
    }

    /// The most connections the pool opens (default 10; at least 1). An in-memory SQLite
    /// database always uses one.
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The connections the pool keeps open when idle (default 0; at most `max_connections`,
    /// checked by [`SqlStore::connect`](crate::SqlStore::connect)).
    pub fn min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }

    /// How long a call waits for a free pooled connection (default 5 s); then it fails with a
    /// retryable [`Error::Timeout`]. From 1 ms to one day
    /// ([`MAX_TIMEOUT`](stats_core::store::MAX_TIMEOUT)), checked by
    /// [`SqlStore::connect`](crate::SqlStore::connect).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// SQLite only: how long a write waits for another connection's write lock (default 5 s);
    /// then it fails with a retryable error. From 1 ms to one day, checked by
    /// [`SqlStore::connect`](crate::SqlStore::connect).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many times [`apply`](stats_core::MetricStore::apply) runs a batch again after the
    /// database rolled it back for a deadlock or a serialization conflict (default 5, with a
    /// short randomized pause before each). The rollback undid the whole batch, so a rerun
    /// cannot count twice. With 0 the retryable error is returned at once.
    ///
    /// Batches take their row locks in one global order, so they do not deadlock with each
    /// other; a deadlock needs another writer of the same rows (or MySQL's gap locks).
    pub fn deadlock_reruns(mut self, reruns: u32) -> Self {
        self.deadlock_reruns = reruns;
        self
    }

    /// How long buckets of each granularity are kept (default: forever). With a retention,
    /// [`SqlStore::connect`](crate::SqlStore::connect) starts a background sweep that deletes
    /// expired buckets (a bucket starting at `s` expires at `s + keep`) every
    /// [`sweep_interval`](Self::sweep_interval), the first one interval after connecting: for
    /// each granularity that has a retention, one primary key range delete per metric (see the
    /// crate docs, "Retention and removal");
    /// [`SqlStore::purge_expired`](crate::SqlStore::purge_expired) runs the same sweep on
    /// demand. Status slots are never swept. Between sweeps, expired buckets
    /// are still read back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stats_backend_sql::SqlConfig;
    /// use stats_core::retention::Retention;
    /// # #[cfg(feature = "sqlite")] {
    /// let _config = SqlConfig::from_url("sqlite:stats.db")?.retention(
    ///     Retention::new()
    ///         .keep("1m".parse()?, Duration::from_secs(2 * 86_400))? // two days of minutes
    ///         .keep("1h".parse()?, Duration::from_secs(90 * 86_400))?, // 90 days of hours
    /// );
    /// # }
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The time between two retention sweeps (default 60 s); only used with a
    /// [`retention`](Self::retention).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an interval under 1 ms or over
    /// [`MAX_TTL`](stats_core::store::MAX_TTL).
    pub fn sweep_interval(mut self, interval: Duration) -> Result<Self> {
        if interval < Duration::from_millis(1) || interval > MAX_TTL {
            return Err(Error::InvalidInput(format!(
                "sweep interval must be between 1 ms and 100 years, got {interval:?}"
            )));
        }
        self.sweep_interval = interval;
        Ok(self)
    }

    /// Where metric documents are kept (default [`Layout::Ours`]); [`Layout::Trifle`] shares
    /// a Trifle 2.6 table (see the crate docs, "Trifle layout"). Counters, throttles and batch
    /// ids stay in this store's own tables either way.
    ///
    /// # Errors
    /// None yet: every database takes both layouts (a `Result` so that a layout a database
    /// cannot hold can be refused here, before connecting).
    pub fn layout(mut self, layout: Layout) -> Result<Self> {
        self.layout = layout;
        Ok(self)
    }

    /// The layout of metric documents.
    pub fn metric_layout(&self) -> &Layout {
        &self.layout
    }

    /// The database the URL names.
    pub fn database(&self) -> Database {
        self.database
    }

    /// The table names.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Whether this is an in-memory SQLite database.
    pub(crate) fn is_sqlite_memory(&self) -> bool {
        self.database == Database::Sqlite
            && (self.url.contains(":memory:") || self.url.contains("mode=memory"))
    }
}

/// The `(name, value)` pairs of a URL's query, decoded as the driver decodes them
/// (`application/x-www-form-urlencoded`: `%XX` escapes, `+` for a space).
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// Decodes one `application/x-www-form-urlencoded` component; a `%` not followed by two hex
/// digits stays as it is, and bytes that are not UTF-8 become U+FFFD (as the driver does).
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The message of the error a URL that requires TLS gets in a build without TLS.
fn tls_not_compiled(database: Database) -> &'static str {
    match database {
        Database::MySql => {
            "TLS (an ssl-mode that requires it, or ssl-ca) in this build: enable the \
             `mysql-tls` feature of `stats` (the `tls` feature of `stats-backend-sql`)"
        }
        _ => {
            "TLS (an sslmode that requires it, or sslrootcert) in this build: enable the \
             `postgres-tls` feature of `stats` (the `tls` feature of `stats-backend-sql`)"
        }
    }
}

/// Checks the TLS parameters of a PostgreSQL or MySQL URL: a mode that requires TLS (or a root
/// certificate) needs TLS in this build (`compiled`), and a root certificate file must be
/// readable and hold a PEM certificate. Nothing is sent anywhere.
fn check_tls_options(database: Database, url: &str, compiled: bool) -> Result<()> {
    if database == Database::Sqlite {
        return Ok(());
    }
    for (name, value) in query_pairs(url) {
        let name = name.to_ascii_lowercase();
        let requires_tls = match name.as_str() {
            "sslmode" | "ssl-mode" => !matches!(
                value.to_ascii_lowercase().as_str(),
                "disable" | "allow" | "prefer" | "disabled" | "preferred"
            ),
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" | "sslca" => {
                check_root_certificate_file(&name, &value)?;
                true
            }
            _ => false,
        };
        if requires_tls && !compiled {
            return Err(Error::Unsupported {
                store: crate::STORE_NAME,
                operation: tls_not_compiled(database),
            });
        }
    }
    Ok(())
}

/// Checks that the root certificate a URL parameter names (a file, or the PEM text itself)
/// holds a PEM certificate.
fn check_root_certificate_file(parameter: &str, value: &str) -> Result<()> {
    const MARKER: &str = "-----BEGIN CERTIFICATE-----";
    if value.trim_start().starts_with("-----BEGIN") {
        if value.contains(MARKER) {
            return Ok(());
        }
        return Err(Error::InvalidInput(format!(
            "the TLS root certificate in the URL parameter {parameter} holds no PEM certificate \
             ({MARKER})"
        )));
    }
    let pem = std::fs::read(value).map_err(|e| {
        Error::InvalidInput(format!(
            "cannot read the TLS root certificate {value} (URL parameter {parameter}): {e}"
        ))
    })?;
    if !String::from_utf8_lossy(&pem).contains(MARKER) {
        return Err(Error::InvalidInput(format!(
            "the TLS root certificate {value} (URL parameter {parameter}) holds no PEM \
             certificate ({MARKER})"
        )));
    }
    Ok(())
}

/// A URL with its password (in the user part or a `password=` parameter) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let mut out = stats_core::support::redact_url(url);
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", redacted.join("&"));
    }
    out
}

impl fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlConfig")
            .field("url", &redact(&self.url))
            .field("database", &self.database)
            .field("table_prefix", &self.tables.prefix)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("deadlock_reruns", &self.deadlock_reruns)
            .field("retention", &self.retention)
            .field("sweep_interval", &self.sweep_interval)
            .field("layout", &self.layout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sqlite")]
    #[test]
    fn hostile_settings_are_refused_before_connecting() {
        let base = || SqlConfig::from_url("sqlite:/nonexistent/stats/never-opened.db").unwrap();
        for (config, needle) in [
            (base().acquire_timeout(Duration::MAX), "acquire_timeout"),
            (base().acquire_timeout(Duration::ZERO), "acquire_timeout"),
            (base().busy_timeout(Duration::MAX), "busy_timeout"),
            (
                base().max_connections(2).min_connections(3),
                "min_connections (3) must not exceed max_connections (2)",
            ),
        ] {
            let err = config.check().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput(m) if m.contains(needle)),
                "{err}"
            );
        }
        base().check().unwrap();
        let err = SqlConfig::from_url("").unwrap_err().to_string();
        assert!(err.contains("\"\" is not a"), "{err}");
    }

    #[test]
    fn prefixes_follow_the_pattern() {
        for good in ["stats", "_x", "a1_b2", &"a".repeat(MAX_TABLE_PREFIX_LEN)] {
            TableNames::new(good).unwrap();
        }
        for bad in [
            "",
            "1abc",
            "Stats",
            "a-b",
            "a b",
            "x\"; DROP TABLE t; --",
            "a`b",
            "é",
            "a.b",
            &"a".repeat(MAX_TABLE_PREFIX_LEN + 1),
        ] {
            let err = TableNames::new(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err}");
        }
        let t = TableNames::new("app").unwrap();
        assert_eq!(
            (t.buckets(), t.counters(), t.throttles()),
            (
                "app_buckets".into(),
                "app_counters".into(),
                "app_throttles".into()
            )
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgres://u:hunter2@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=hunter2&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn urls() {
        let err = SqlConfig::from_url("http://u:secret@x").unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
        assert!(!err.to_string().contains("secret"), "{err}");
        for (url, db) in [
            ("postgres://h/db", Database::Postgres),
            ("postgresql://h/db", Database::Postgres),
            ("mysql://h/db", Database::MySql),
            ("mariadb://h/db", Database::MySql),
            ("sqlite::memory:", Database::Sqlite),
        ] {
            match SqlConfig::from_url(url) {
                Ok(c) => assert_eq!(c.database(), db),
                Err(Error::Unsupported { .. }) => assert!(!db.is_compiled()),
                Err(e) => panic!("{url}: {e}"),
            }
        }
    }

    #[test]
    fn query_parameters_are_decoded_as_the_driver_does() {
        assert_eq!(
            query_pairs("postgres://h/db?sslmode=require&sslrootcert=%2Ftmp%2Fa+b.pem&x#frag"),
            [
                ("sslmode".to_owned(), "require".to_owned()),
                ("sslrootcert".to_owned(), "/tmp/a b.pem".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
        assert!(query_pairs("postgres://h/db").is_empty());
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%41%c3%a9"), "Aé");
    }

    #[test]
    fn modes_that_require_tls_need_the_tls_feature() {
        for (database, url) in [
            (Database::Postgres, "postgres://h/db?sslmode=require"),
            (Database::Postgres, "postgres://h/db?sslmode=verify-ca"),
            (Database::Postgres, "postgres://h/db?SSLMODE=Verify-Full"),
            (Database::MySql, "mysql://h/db?ssl-mode=REQUIRED"),
            (Database::MySql, "mysql://h/db?sslmode=verify_identity"),
        ] {
            check_tls_options(database, url, true).unwrap();
            let err = check_tls_options(database, url, false).unwrap_err();
            assert!(matches!(err, Error::Unsupported { .. }), "{url}: {err}");
            let feature = match database {
                Database::MySql => "`mysql-tls` feature of `stats`",
                _ => "`postgres-tls` feature of `stats`",
            };
            assert!(err.to_string().contains(feature), "{url}: {err}");
        }
        for (database, url) in [
            (Database::Postgres, "postgres://h/db"),
            (Database::Postgres, "postgres://h/db?sslmode=disable"),
            (
                Database::Postgres,
                "postgres://h/db?sslmode=prefer&application_name=x",
            ),
            (Database::MySql, "mysql://h/db?ssl-mode=DISABLED"),
            (Database::MySql, "mysql://h/db?ssl-mode=preferred"),
            (Database::Sqlite, "sqlite:x.db?sslmode=require"),
        ] {
            check_tls_options(database, url, false).unwrap();
        }
    }

    #[test]
    fn root_certificates_are_checked_naming_the_path() {
        let missing = "/nonexistent/stats-test/ca.pem";
        let url = format!("postgres://h/db?sslmode=verify-full&sslrootcert={missing}");
        let err = check_tls_options(Database::Postgres, &url, true).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains(missing) && m.contains("sslrootcert")),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("stats-sql-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not-a-cert.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let url = format!("mysql://h/db?ssl-ca={}", not_pem.display());
        let err = check_tls_options(Database::MySql, &url, true).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains(&*not_pem.to_string_lossy())),
            "{err}"
        );
        let pem = dir.join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let url = format!("postgres://h/db?sslrootcert={}", pem.display());
        check_tls_options(Database::Postgres, &url, true).unwrap();
        // Without TLS compiled in, a root certificate is refused as a TLS setting.
        let err = check_tls_options(Database::Postgres, &url, false).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn trifle_tables_are_checked() {
        assert_eq!(TrifleTable::default().name(), TRIFLE_DEFAULT_TABLE);
        TrifleTable::named(&"t".repeat(63)).unwrap();
        for bad in [
            "",
            "Trifle",
            "1t",
            "t-s",
            "t s",
            "t\"x",
            "é",
            &"t".repeat(64),
        ] {
            let err = TrifleTable::named(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err}");
        }
        if let Ok(config) = SqlConfig::from_url("sqlite::memory:") {
            let config = config
                .layout(Layout::Trifle(TrifleTable::default()))
                .unwrap();
            assert_eq!(
                config.metric_layout(),
                &Layout::Trifle(TrifleTable::default())
            );
            assert!(format!("{config:?}").contains("trifle_stats"));
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn debug_hides_passwords() {
        let c = SqlConfig::from_url("postgres://user:hunter2@host/db?password=hunter3").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("user:***@host"), "{shown}");
    }
}
