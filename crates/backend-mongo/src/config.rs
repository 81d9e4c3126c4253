//! [`MongoConfig`]: where the store connects and how it lays out its documents.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use stats_core::retention::Retention;
use stats_core::store::check_timeout;
use stats_core::{Error, Result};

/// How a bucket document is identified, as in Trifle 2.6's Mongo driver (`joined_identifier`).
///
/// | mode | identifier of the `1h` bucket of `orders` at 2023-11-14T22:00:00Z | unique index |
/// |---|---|---|
/// | [`Full`](IdMode::Full) (default) | `{key: "orders::1h::1700000000"}` | `{key: 1}` |
/// | [`Partial`](IdMode::Partial) | `{key: "orders::1h", at: ISODate("2023-11-14T22:00:00Z")}` | `{key: 1, at: -1}` |
/// | [`Separated`](IdMode::Separated) | `{key: "orders", granularity: "1h", at: ISODate(...)}` | `{key: 1, granularity: 1, at: -1}` |
///
/// `full` is the default because it is Trifle's default (so a Trifle application and this
/// store share a collection without options on either side) and because its unique index is on
/// one string field, the cheapest to check on every upsert; see the crate docs for the
/// measurements. `partial` and `separated` keep the bucket start as a date, which other tools
/// can query by time.
///
/// ```
/// use stats_backend_mongo::IdMode;
/// assert_eq!("separated".parse::<IdMode>()?, IdMode::Separated);
/// assert_eq!(IdMode::default().to_string(), "full");
/// assert!("joined".parse::<IdMode>().is_err());
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdMode {
    /// `key` is `<metric><sep><granularity><sep><unix start>`.
    #[default]
    Full,
    /// `key` is `<metric><sep><granularity>`; `at` is the bucket start as a date.
    Partial,
    /// `key` is the metric; `granularity` and `at` (a date) are fields of their own.
    Separated,
}

impl IdMode {
    /// Every mode, in declaration order.
    pub const ALL: [IdMode; 3] = [IdMode::Full, IdMode::Partial, IdMode::Separated];

    /// The mode's name: `full`, `partial` or `separated`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdMode::Full => "full",
            IdMode::Partial => "partial",
            IdMode::Separated => "separated",
        }
    }
}

impl fmt::Display for IdMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        IdMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown MongoDB identifier mode {s:?}: expected full, partial or separated"
                ))
            })
    }
}

/// How many servers acknowledge a write before it returns (MongoDB's `w`).
///
/// Unacknowledged writes (`w: 0`) are not offered: the Rust driver refuses them, and a store
/// that counts must know whether its increments landed (a lost or doubled increment could not
/// be told from a kept one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Acknowledge {
    /// The primary alone (`w: 1`), MongoDB's default.
    #[default]
    Primary,
    /// A majority of the replica set's data-bearing members (`w: "majority"`): the write
    /// survives the loss of the primary.
    Majority,
    /// This many members (`w: n`, at least 1).
    Nodes(u32),
}

/// The write concern of every write: [`Acknowledge`], and whether to wait for the journal
/// (`j: true`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Durability {
    /// Who acknowledges.
    pub acknowledge: Acknowledge,
    /// Whether the acknowledging members have written the write to their journal.
    pub journal: bool,
}

/// The default database when neither the URL nor [`MongoConfig::database`] names one.
pub const DEFAULT_DATABASE: &str = "stats";
/// The default collection of metric documents (Trifle's is `trifle_stats`: set it with
/// [`MongoConfig::collection`] to share one with a Trifle application).
pub const DEFAULT_COLLECTION: &str = "stats";
/// The default separator of joined identifiers (Trifle's).
pub const DEFAULT_SEPARATOR: &str = "::";
/// The default time to find a server before a call fails with [`Error::Unavailable`].
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of statements per `update` command (a batch with more is sent as
/// several commands). MongoDB accepts up to 100,000 and 16 MiB per command.
pub const DEFAULT_MAX_STATEMENTS: usize = 1_000;

/// How to connect to MongoDB and lay out the store's documents.
///
/// ```
/// use std::time::Duration;
/// use stats_backend_mongo::{Acknowledge, IdMode, MongoConfig};
/// use stats_core::retention::Retention;
///
/// let config = MongoConfig::from_url("mongodb://db1.internal,db2.internal/app?replicaSet=rs0")?
///     .collection("trifle_stats")? // share Trifle's default collection
///     .mode(IdMode::Full)
///     .write_concern(Acknowledge::Majority, true)?
///     .retention(Retention::new().keep("1m".parse()?, Duration::from_secs(2 * 86_400))?)
///     .server_selection_timeout(Duration::from_secs(5));
/// assert_eq!(config.database_name(), "app"); // from the URL
/// assert_eq!(config.counters_collection_name(), "trifle_stats_counters");
///
/// // Mistakes are refused when they are made, naming the input.
/// assert!(MongoConfig::from_url("http://db.internal").is_err());
/// assert!(MongoConfig::from_url("mongodb://db")?.collection("system.users").is_err());
/// assert!(MongoConfig::from_url("mongodb://db")?.write_concern(Acknowledge::Nodes(0), false).is_err());
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Clone)]
pub struct MongoConfig {
    pub(crate) url: String,
    pub(crate) database: Option<String>,
    pub(crate) collection: String,
    pub(crate) counters: Option<String>,
    pub(crate) throttles: Option<String>,
    pub(crate) separator: String,
    pub(crate) mode: IdMode,
    pub(crate) durability: Durability,
    pub(crate) retention: Retention,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) server_selection_timeout: Duration,
    pub(crate) max_statements: usize,
    pub(crate) batch_ids: bool,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &redact(&self.url))
            .field("database", &self.database_name())
            .field("collection", &self.collection)
            .field("counters", &self.counters_collection_name())
            .field("throttles", &self.throttles_collection_name())
            .field("separator", &self.separator)
            .field("mode", &self.mode)
            .field("durability", &self.durability)
            .field("retention", &self.retention)
            .field("connect_timeout", &self.connect_timeout)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("max_statements", &self.max_statements)
            .field("batch_ids", &self.batch_ids)
            .finish()
    }
}

impl MongoConfig {
    /// A configuration for the server(s) at a `mongodb://` (or, with the umbrella feature
    /// `mongo-srv`, `mongodb+srv://`) URL. The URL's options (replica set, credentials,
    /// `tls=true`, `connectTimeoutMS`, `w`, ...) apply; the settings of this type override
    /// them. The database is the URL's path (`/app`), else [`DEFAULT_DATABASE`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL of another scheme. Everything else about the URL is
    /// checked by the driver at [`MongoStore::connect`](crate::MongoStore::connect).
    pub fn from_url(url: &str) -> Result<Self> {
        let url = url.trim();
        let rest = url
            .strip_prefix("mongodb://")
            .or_else(|| url.strip_prefix("mongodb+srv://"))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "a MongoDB URL starts with mongodb:// or mongodb+srv://, got {:?}",
                    redact(url)
                ))
            })?;
        if rest.is_empty() {
            return Err(Error::InvalidInput(format!(
                "the MongoDB URL {url:?} names no host"
            )));
        }
        Ok(MongoConfig {
            url: url.to_owned(),
            database: None,
            collection: DEFAULT_COLLECTION.to_owned(),
            counters: None,
            throttles: None,
            separator: DEFAULT_SEPARATOR.to_owned(),
            mode: IdMode::default(),
            durability: Durability::default(),
            retention: Retention::new(),
            connect_timeout: None,
            server_selection_timeout: DEFAULT_SERVER_SELECTION_TIMEOUT,
            max_statements: DEFAULT_MAX_STATEMENTS,
            batch_ids: false,
        })
    }

    /// The database to use, overriding the URL's.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name MongoDB refuses: empty, over 63 bytes, or holding
    /// one of `/\. "$*<>:|?` or a control character.
    pub fn database(mut self, name: &str) -> Result<Self> {
        check_database(name)?;
        self.database = Some(name.to_owned());
        Ok(self)
    }

    /// The collection of metric documents (default [`DEFAULT_COLLECTION`]). Counters and
    /// throttles default to `<collection>_counters` and `<collection>_throttles`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad collection name (see [`check_collection`]).
    pub fn collection(mut self, name: &str) -> Result<Self> {
        check_collection(name)?;
        self.collection = name.to_owned();
        Ok(self)
    }

    /// The collection of counters (default `<collection>_counters`).
    ///
    /// # Errors
    /// As [`MongoConfig::collection`].
    pub fn counters_collection(mut self, name: &str) -> Result<Self> {
        check_collection(name)?;
        self.counters = Some(name.to_owned());
        Ok(self)
    }

    /// The collection of throttle keys (default `<collection>_throttles`).
    ///
    /// # Errors
    /// As [`MongoConfig::collection`].
    pub fn throttles_collection(mut self, name: &str) -> Result<Self> {
        check_collection(name)?;
        self.throttles = Some(name.to_owned());
        Ok(self)
    }

    /// The separator of joined identifiers in modes `full` and `partial` (default `::`,
    /// Trifle's). Metric keys may not contain it (refused with [`Error::InvalidName`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless the separator is 1 to 8 ASCII punctuation characters
    /// other than `.`, `-` and `$` (so that a joined key splits back into metric, granularity
    /// and start in exactly one way).
    pub fn separator(mut self, separator: &str) -> Result<Self> {
        let ok = (1..=8).contains(&separator.len())
            && separator
                .chars()
                .all(|c| c.is_ascii_punctuation() && !matches!(c, '.' | '-' | '$'));
        if !ok {
            return Err(Error::InvalidInput(format!(
                "separator {separator:?} must be 1 to 8 ASCII punctuation characters other \
                 than '.', '-' and '$'"
            )));
        }
        self.separator = separator.to_owned();
        Ok(self)
    }

    /// How bucket documents are identified (default [`IdMode::Full`]). Changing it on existing
    /// data is a schema change: documents written in another mode are not found.
    pub fn mode(mut self, mode: IdMode) -> Self {
        self.mode = mode;
        self
    }

    /// The write concern of every write (default `w: 1`, no journal wait).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `Acknowledge::Nodes(0)` (unacknowledged writes, `w: 0`),
    /// which the Rust driver refuses and a counting store cannot use (see [`Acknowledge`]).
    pub fn write_concern(mut self, acknowledge: Acknowledge, journal: bool) -> Result<Self> {
        if acknowledge == Acknowledge::Nodes(0) {
            return Err(unacknowledged());
        }
        self.durability = Durability {
            acknowledge,
            journal,
        };
        Ok(self)
    }

    /// How long buckets of each granularity are kept: written documents get an `expire_at`
    /// date (bucket start plus the period), which the TTL index made by
    /// [`MongoStore::setup`](crate::MongoStore::setup) removes, and which reads treat as gone
    /// from that instant on.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The time to open a connection (overrides the URL's `connectTimeoutMS`; the driver's
    /// default is 10 s). Checked at connect: 1 ms to 24 h.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The time to find a suitable server before a call fails with [`Error::Unavailable`]
    /// (default [`DEFAULT_SERVER_SELECTION_TIMEOUT`]; overrides the URL's
    /// `serverSelectionTimeoutMS`). Checked at connect: 1 ms to 24 h.
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = timeout;
        self
    }

    /// The most statements per `update` command (default [`DEFAULT_MAX_STATEMENTS`]); a larger
    /// batch is sent as several commands, one after the other.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] outside 1 to 100,000 (MongoDB's `maxWriteBatchSize`).
    pub fn max_statements(mut self, max: usize) -> Result<Self> {
        if !(1..=100_000).contains(&max) {
            return Err(Error::InvalidInput(format!(
                "max_statements must be between 1 and 100000, got {max}"
            )));
        }
        self.max_statements = max;
        Ok(self)
    }

    /// Whether batches with an id are applied exactly once (default `false`, at least once):
    /// each document
    /// records the ids of the batches applied to it, in the statement that writes it, and the
    /// store reports [`Capabilities::idempotent_batch`](stats_core::Capabilities::idempotent_batch). That costs
    /// about 48 bytes per batch and document for 25 hours, which adds up in day and longer
    /// buckets written by frequent batches (see the [crate docs](crate#exactly-once-retries)).
    /// With `false` (the default) the store ignores batch ids, writes no `_b`, and a batch
    /// retried after an ambiguous failure may count twice (at least once instead of exactly
    /// once). Off by default because a buffer flushing every second from several partitions
    /// would fill a day bucket with hundreds of thousands of ids (MongoDB refuses documents
    /// over 16 MB); turn it on where batches are few (a flush interval of a minute, say).
    ///
    /// ```
    /// use stats_backend_mongo::MongoConfig;
    ///
    /// let config = MongoConfig::from_url("mongodb://127.0.0.1:27017/app")?;
    /// assert!(!config.records_batch_ids());
    /// let config = config.record_batch_ids(true);
    /// assert!(config.records_batch_ids());
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    pub fn record_batch_ids(mut self, record: bool) -> Self {
        self.batch_ids = record;
        self
    }

    /// Whether batch ids are recorded (see [`MongoConfig::record_batch_ids`]).
    pub fn records_batch_ids(&self) -> bool {
        self.batch_ids
    }

    /// The database the store uses.
    pub fn database_name(&self) -> &str {
        self.database
            .as_deref()
            .or_else(|| url_database(&self.url))
            .unwrap_or(DEFAULT_DATABASE)
    }

    /// The collection of metric documents.
    pub fn collection_name(&self) -> &str {
        &self.collection
    }

    /// The collection of counters.
    pub fn counters_collection_name(&self) -> String {
        self.counters
            .clone()
            .unwrap_or_else(|| format!("{}_counters", self.collection))
    }

    /// The collection of throttle keys.
    pub fn throttles_collection_name(&self) -> String {
        self.throttles
            .clone()
            .unwrap_or_else(|| format!("{}_throttles", self.collection))
    }

    /// The identifier mode.
    pub fn id_mode(&self) -> IdMode {
        self.mode
    }

    /// The separator of joined identifiers.
    pub fn separator_str(&self) -> &str {
        &self.separator
    }

    /// The write concern.
    pub fn durability(&self) -> &Durability {
        &self.durability
    }

    /// The retention periods.
    pub fn retention_periods(&self) -> &Retention {
        &self.retention
    }

    /// Checks what can only be checked together: the timeouts, distinct collections, a
    /// database name from the URL.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(t) = self.connect_timeout {
            check_timeout("connect_timeout", t)?;
        }
        check_timeout("server_selection_timeout", self.server_selection_timeout)?;
        check_database(self.database_name())?;
        let counters = self.counters_collection_name();
        let throttles = self.throttles_collection_name();
        check_collection(&counters)?;
        check_collection(&throttles)?;
        if counters == self.collection || throttles == self.collection || counters == throttles {
            return Err(Error::InvalidInput(format!(
                "the metric, counter and throttle collections must differ, got {:?}, {counters:?} \
                 and {throttles:?}",
                self.collection
            )));
        }
        Ok(())
    }
}

pub(crate) fn unacknowledged() -> Error {
    Error::InvalidInput(
        "unacknowledged writes (w: 0) are refused: the Rust driver does not support them, and \
         a counting store must know whether each increment was applied"
            .to_owned(),
    )
}

/// Checks a database name as MongoDB does.
fn check_database(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 63
        || name
            .chars()
            .any(|c| c.is_control() || "/\\. \"$*<>:|?".contains(c));
    if bad {
        return Err(Error::InvalidInput(format!(
            "database name {name:?} must be 1 to 63 bytes without /\\. \"$*<>:|? or control \
             characters"
        )));
    }
    Ok(())
}

/// Checks a collection name: 1 to 100 bytes of ASCII letters, digits, `_`, `-` and `.`,
/// starting with a letter, digit or `_`, not ending with `.`, and not in MongoDB's reserved
/// `system.` namespace. (MongoDB accepts more; these are the names every deployment and tool
/// handles without quoting.)
///
/// ```
/// use stats_backend_mongo::check_collection;
/// assert!(check_collection("trifle_stats").is_ok());
/// assert!(check_collection("system.profile").is_err());
/// assert!(check_collection("a$b").is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] naming the collection and the rule.
pub fn check_collection(name: &str) -> Result<()> {
    let ok = (1..=100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with(['.', '-'])
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.starts_with("system.");
    if !ok {
        return Err(Error::InvalidInput(format!(
            "collection name {name:?} must be 1 to 100 bytes of ASCII letters, digits, '_', '-' \
             and '.', start with a letter, digit or '_', and not be in the reserved 'system.' \
             namespace"
        )));
    }
    Ok(())
}

/// The database named by a URL's path, if any.
fn url_database(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let db = path.split('?').next().unwrap_or("");
    (!db.is_empty()).then_some(db)
}

/// The URL with its password replaced by `***`, for messages and `Debug`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(host_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(MongoConfig::from_url("mongodb://h").is_ok());
        assert!(MongoConfig::from_url("mongodb+srv://cluster0.example.net").is_ok());
        for bad in ["", "mongodb://", "redis://h", "h:27017", "MONGODB://h"] {
            let err = MongoConfig::from_url(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad}: {err}");
        }
        let err = MongoConfig::from_url("postgres://u:secret@h/db").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn database_from_url_or_setting() {
        let c = MongoConfig::from_url("mongodb://h:1/app?w=majority").unwrap();
        assert_eq!(c.database_name(), "app");
        assert_eq!(
            MongoConfig::from_url("mongodb://h/?x=1")
                .unwrap()
                .database_name(),
            DEFAULT_DATABASE
        );
        assert_eq!(c.database("other").unwrap().database_name(), "other");
        for bad in ["", "a.b", "a b", "a$", "a/b", "a\0", &"x".repeat(64)] {
            assert!(
                MongoConfig::from_url("mongodb://h")
                    .unwrap()
                    .database(bad)
                    .is_err(),
                "{bad:?}"
            );
        }
        let err = MongoConfig::from_url("mongodb://h/a.b").unwrap().check();
        assert!(err.is_err());
    }

    #[test]
    fn collections() {
        for good in ["stats", "trifle_stats", "a.b", "A-1", "_x"] {
            check_collection(good).unwrap();
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "-a",
            "a$b",
            "a\0b",
            "system.users",
            "é",
            &"x".repeat(101),
        ] {
            let err = check_collection(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}");
        }
        let c = MongoConfig::from_url("mongodb://h")
            .unwrap()
            .collection("s")
            .unwrap()
            .counters_collection("s")
            .unwrap();
        assert!(c.check().is_err(), "same collection twice");
    }

    #[test]
    fn separators_and_write_concerns() {
        let c = MongoConfig::from_url("mongodb://h").unwrap();
        for good in ["::", "|", "#", "::/"] {
            c.clone().separator(good).unwrap();
        }
        for bad in ["", ".", "-", "$", "a", ":: ", "1", "é", "::::::::::"] {
            assert!(c.clone().separator(bad).is_err(), "{bad:?}");
        }
        let err = c
            .clone()
            .write_concern(Acknowledge::Nodes(0), true)
            .unwrap_err();
        assert!(err.to_string().contains("w: 0"), "{err}");
        c.clone()
            .write_concern(Acknowledge::Nodes(2), true)
            .unwrap();
        assert!(c.clone().max_statements(0).is_err());
        assert!(c.clone().max_statements(100_001).is_err());
        let timeouts = c
            .clone()
            .server_selection_timeout(Duration::MAX)
            .check()
            .unwrap_err();
        assert!(timeouts.to_string().contains("server_selection_timeout"));
        assert!(
            c.connect_timeout(Duration::ZERO)
                .check()
                .unwrap_err()
                .to_string()
                .contains("connect_timeout")
        );
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("mongodb://ada:s3cret@h1,h2/db?x=1"),
            "mongodb://ada:***@h1,h2/db?x=1"
        );
        assert_eq!(redact("mongodb://h/db"), "mongodb://h/db");
        let c = MongoConfig::from_url("mongodb://ada:s3cret@h/db").unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
