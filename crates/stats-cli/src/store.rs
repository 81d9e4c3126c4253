//! Stores by URL: one string picks the store, the same for every command and for `serve`.

use std::fmt;
use std::sync::Arc;

use stats::atomics::AtomicsStore;
use stats::mongo::{MongoConfig, MongoStore};
use stats::redis::{RedisConfig, RedisStore};
use stats::sql::{SqlConfig, SqlStore};
use stats::{CounterStore, MetricStore, ThrottleStore};

use crate::error::{CliError, CliResult};

/// The store used when neither `--store` nor `STATS_STORE` is given: a SQLite file in the
/// current directory, created on first use.
pub const DEFAULT_STORE: &str = "sqlite://stats.db";

/// The kinds of store a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `memory:`: the in-process store (gone when the command ends; useful with `serve`).
    Memory,
    /// `sqlite:` (a file, created when missing).
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    Mysql,
    /// `redis://`, `rediss://`, `redis+cluster://`, or a comma-separated list of cluster nodes.
    Redis,
    /// `mongodb://` or `mongodb+srv://`.
    Mongo,
}

impl Kind {
    /// The kind a URL names, or an error listing the schemes.
    ///
    /// ```
    /// use stats_cli::store::Kind;
    /// assert_eq!(Kind::of("sqlite://stats.db").unwrap(), Kind::Sqlite);
    /// assert_eq!(Kind::of("redis://a:7000,redis://b:7001").unwrap(), Kind::Redis);
    /// assert!(Kind::of("ftp://example.com").is_err());
    /// ```
    ///
    /// # Errors
    /// [`CliError::Input`] for a scheme no store has.
    pub fn of(url: &str) -> CliResult<Kind> {
        let lower = url.trim().to_ascii_lowercase();
        let kind = if lower == "memory:" || lower == "memory://" {
            Kind::Memory
        } else if lower.starts_with("sqlite:") {
            Kind::Sqlite
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Kind::Postgres
        } else if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            Kind::Mysql
        } else if lower.starts_with("redis://")
            || lower.starts_with("rediss://")
            || lower.starts_with("redis+cluster://")
        {
            Kind::Redis
        } else if lower.starts_with("mongodb://") || lower.starts_with("mongodb+srv://") {
            Kind::Mongo
        } else {
            return Err(CliError::input(format!(
                "store URL {:?} has no known scheme: use memory:, sqlite://FILE, postgres://, \
                 mysql://, redis:// (rediss://, or a comma-separated list of cluster nodes) or \
                 mongodb://",
                redact(url)
            )));
        };
        Ok(kind)
    }

    /// Whether [`Stores::open`] creates the tables itself (a store with no server, where
    /// `stats setup` would be a needless first step).
    pub fn sets_up_on_open(self) -> bool {
        matches!(self, Kind::Memory | Kind::Sqlite)
    }
}

/// The three faces of one opened store.
#[derive(Clone)]
pub struct Stores {
    /// Time-bucketed metrics.
    pub metrics: Arc<dyn MetricStore>,
    /// Counters with namespaces.
    pub counters: Arc<dyn CounterStore>,
    /// Throttles.
    pub throttles: Arc<dyn ThrottleStore>,
    kind: Kind,
    shown: String,
    setup: Setup,
}

#[derive(Clone)]
enum Setup {
    Nothing,
    Sql(Arc<SqlStore>),
    Mongo(Arc<MongoStore>),
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("kind", &self.kind)
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Connects to the store `url` names. SQLite and `memory:` are set up here (tables created
    /// when missing); the other stores need `stats setup` once (Redis needs nothing).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use stats_cli::store::{Kind, Stores};
    /// let stores = Stores::open("memory:").await?;
    /// assert_eq!(stores.kind(), Kind::Memory);
    /// assert_eq!(stores.counters.inc("orders", "next", 1, 0).await?, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`CliError::Input`] for a URL no store takes (naming it, password hidden);
    /// [`CliError::Failed`] when the server cannot be reached.
    pub async fn open(url: &str) -> CliResult<Stores> {
        Stores::open_with(url, None).await
    }

    /// [`Stores::open`] with the store's own name prefix, so that several applications or
    /// test runs share one server: the Redis key prefix, the SQL table prefix
    /// (`<prefix>_buckets`, ...), the MongoDB collection (`<prefix>`, `<prefix>_counters`,
    /// ...). `memory:` has nothing to prefix and ignores it.
    ///
    /// # Errors
    /// As [`Stores::open`], and [`CliError::Input`] for a prefix the store refuses.
    pub async fn open_with(url: &str, prefix: Option<&str>) -> CliResult<Stores> {
        let kind = Kind::of(url)?;
        let bad_prefix = |e: stats::Error| CliError::input(format!("--prefix: {e}"));
        let shown = redact(url.trim());
        let unreachable = |e: stats::Error| match CliError::from(e) {
            CliError::Input(m) => CliError::Input(format!("store {shown}: {m}")),
            other => CliError::failed(format!("cannot open the store {shown}: {other}")),
        };
        let url = url.trim();
        let stores = match kind {
            Kind::Memory => {
                let store = Arc::new(AtomicsStore::new());
                Stores::of(store, kind, shown.clone(), Setup::Nothing)
            }
            Kind::Sqlite | Kind::Postgres | Kind::Mysql => {
                let mut config = SqlConfig::from_url(url).map_err(unreachable)?;
                if let Some(prefix) = prefix {
                    config = config.table_prefix(prefix).map_err(bad_prefix)?;
                }
                let store = Arc::new(SqlStore::connect(config).await.map_err(unreachable)?);
                Stores::of(
                    store.clone(),
                    kind,
                    shown.clone(),
                    Setup::Sql(store.clone()),
                )
            }
            Kind::Redis => {
                let mut config = RedisConfig::from_url(url).map_err(unreachable)?;
                if let Some(prefix) = prefix {
                    config = config.key_prefix(prefix).map_err(bad_prefix)?;
                }
                let store = Arc::new(RedisStore::connect(config).await.map_err(unreachable)?);
                Stores::of(store, kind, shown.clone(), Setup::Nothing)
            }
            Kind::Mongo => {
                let mut config = MongoConfig::from_url(url).map_err(unreachable)?;
                if let Some(prefix) = prefix {
                    config = config.collection(prefix).map_err(bad_prefix)?;
                }
                let store = Arc::new(MongoStore::connect(config).await.map_err(unreachable)?);
                Stores::of(
                    store.clone(),
                    kind,
                    shown.clone(),
                    Setup::Mongo(store.clone()),
                )
            }
        };
        if kind.sets_up_on_open() {
            stores.setup().await?;
        }
        Ok(stores)
    }

    fn of<S>(store: Arc<S>, kind: Kind, shown: String, setup: Setup) -> Stores
    where
        S: MetricStore + CounterStore + ThrottleStore,
    {
        Stores {
            metrics: store.clone(),
            counters: store.clone(),
            throttles: store,
            kind,
            shown,
            setup,
        }
    }

    /// Creates the tables and indexes the store needs, where it has any (idempotent).
    ///
    /// # Errors
    /// [`CliError::Failed`] with the store's error.
    pub async fn setup(&self) -> CliResult {
        let result = match &self.setup {
            Setup::Nothing => Ok(()),
            Setup::Sql(store) => store.setup().await,
            Setup::Mongo(store) => store.setup().await,
        };
        result.map_err(|e| CliError::failed(format!("setup of {} failed: {e}", self.shown)))
    }

    /// The kind of store.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The URL, password hidden, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// `url` with passwords hidden (user part of every URL of a list, and `password=` parameters).
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|part| {
            let out = stats_core::support::redact_url(part);
            match out.split_once('?') {
                Some((head, query)) => {
                    let query: Vec<String> = query
                        .split('&')
                        .map(|pair| match pair.split_once('=') {
                            Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                                format!("{k}=***")
                            }
                            _ => pair.to_owned(),
                        })
                        .collect();
                    format!("{head}?{}", query.join("&"))
                }
                None => out,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("redis://u:pw@a:1,redis://u:pw2@b:2"),
            "redis://u:***@a:1,redis://u:***@b:2"
        );
        assert_eq!(
            redact("mysql://h/db?user=u&password=secret"),
            "mysql://h/db?user=u&password=***"
        );
        let err = Kind::of("ftp://u:secret@h").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
