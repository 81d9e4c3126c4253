//! # stats
//!
//! Application statistics on the database a team already runs: every event counted into its
//! minute, hour, day, week, month, quarter and year bucket at once, plain counters with
//! namespaces and compare-and-swap, and throttles. One set of store traits, one conformance
//! suite, several stores: in this process's memory, Redis (and Redis Cluster), PostgreSQL,
//! MySQL/MariaDB, SQLite and MongoDB.
//!
//! Integers are exact (a sum that leaves the `i64` range is an error, never a wrap), floats stay
//! floats, and a bad name or number is refused with a typed [`Error`] before anything is written.
//!
//! # Track events, read them back
//!
//! A [`Tracker`] counts one event, a map of numbers ([`Values`]), into the bucket of every
//! configured [`Granularity`] that holds the event's time, in one write to the store.
//! [`Tracker::values`] reads one granularity's buckets over a time range as a [`Series`];
//! [`Tracker::total`] sums one number over that range.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use stats::atomics::AtomicsStore;
//! use stats::{Blanks, Config, Number, Retention, Timestamp, Tracker, values};
//!
//! # #[cfg(feature = "atomics")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The in-process store. Minute buckets are kept for two days, the rest forever: without a
//! // retention, a long-running process would keep every minute bucket it ever wrote.
//! let retention = Retention::new().keep("1m".parse()?, Duration::from_secs(2 * 86_400))?;
//! let store = Arc::new(AtomicsStore::new().retention(retention));
//!
//! // Buckets start at midnight, the full hour, ... on Berlin's wall clock.
//! let tracker = Tracker::new(store, Config::new().time_zone("Europe/Berlin")?);
//!
//! // One event, counted into its 1m, 1h, 1d, 1w, 1mo, 1q and 1y buckets in one write.
//! let at: Timestamp = "2024-05-01T09:12:00Z".parse()?;
//! tracker.track("orders", at, &values!({"count": 1, "amount": 12.5})).await?;
//!
//! // Many events in one write (one round trip on a network store).
//! let later: Timestamp = "2024-05-01T11:05:00Z".parse()?;
//! let (a, b) = (values!({"count": 2, "amount": 30.0}), values!({"count": 1}));
//! tracker.track_many([("orders", later, &a), ("logins", later, &b)]).await?;
//!
//! // An event happening now.
//! tracker.track_now("logins", &values!({"count": 1})).await?;
//!
//! // The hourly series from 09:00 to 11:00 UTC. Both ends are inclusive: the range holds every
//! // bucket that an event at any instant from `from` to `to` lands in, blank buckets included.
//! let from: Timestamp = "2024-05-01T09:00:00Z".parse()?;
//! let to: Timestamp = "2024-05-01T11:00:00Z".parse()?;
//! let series = tracker.values("orders", from, to, "1h".parse()?, Blanks::Keep).await?;
//! assert_eq!(series.len(), 3);
//! assert_eq!(series.values[1], values!({})); // 10:00 UTC: nothing happened
//!
//! // Bucket starts are instants; shown in the tracker's zone they read as Berlin time.
//! let zone = tracker.config().calendar().time_zone();
//! assert_eq!(series.at_zoned(zone)[0].to_string(), "2024-05-01T11:00:00+02:00[Europe/Berlin]");
//!
//! // Sums over the series, or in one call.
//! assert_eq!(series.total("count")?, Some(Number::Int(3)));
//! assert_eq!(series.total("amount")?, Some(Number::Float(42.5)));
//! let orders_that_day = tracker.total("orders", from, from, "1d".parse()?, "count").await?;
//! assert_eq!(orders_that_day, Some(Number::Int(3)));
//! # Ok(()) }
//! # #[cfg(not(feature = "atomics"))] fn main() {}
//! ```
//!
//! Besides increments, [`Tracker::track_max`] and [`Tracker::track_min`] keep the largest or
//! smallest number seen per bucket, [`Tracker::assert`] sets numbers, and [`Tracker::beam`] /
//! [`Tracker::scan`] keep the latest status of a metric outside its time series.
//! [`Tracker::remove`] deletes a metric with all its buckets. The [`series`] module computes
//! over a series: sums, means, minima and maxima per slice, timelines and category totals for
//! charts, values computed from other values of a bucket (`amount / count`), histogram labels.
//!
//! ## Time zones and buckets
//!
//! A bucket is the interval from its start up to the next bucket's start, on the wall clock of
//! the configured zone (UTC by default): a `1d` bucket starts at local midnight and a day of 23
//! or 25 hours is still one bucket; during the hour a clock falls back there are two `1h`
//! buckets. Weeks start on Monday unless [`Config::week_start`] says otherwise. The [`time`]
//! module gives the exact rules. Times are [`Timestamp`]s (an instant, parsed from RFC 3339
//! text such as `"2024-05-01T09:12:00Z"`); a bucket start shown in a zone is a [`Zoned`].
//!
//! # Values from runtime data
//!
//! The [`values!`] macro is for literals written in the code: it panics on a bad name or
//! number. Names and numbers that come from outside the code (requests, measurements, files)
//! go through [`try_values!`], [`Values::insert`] or [`Values::from_json`], which return an
//! error instead:
//!
//! ```
//! use stats::{Error, Values, try_values};
//!
//! let route = "/checkout"; // say, from a request
//! let millis: f64 = 12.5; // say, measured
//! let event = try_values!({"count": 1, "ms": millis, "by_route": {route: 1}})?;
//! assert_eq!(event.number_at("by_route./checkout"), Some(1.into()));
//!
//! let mut built = Values::new();
//! built.insert("count", 1)?.insert("ms", millis)?;
//! assert!(matches!(built.insert("ms", f64::NAN), Err(Error::InvalidValue { .. })));
//! assert!(matches!(try_values!({"a.b": 1}), Err(Error::InvalidName { .. }))); // '.' joins paths
//!
//! let parsed = Values::from_json(r#"{"count": 1, "ms": 12.5}"#)?;
//! assert_eq!(parsed, built);
//! # Ok::<(), Error>(())
//! ```
//!
//! Names follow one rule on every store (see [`name`]): not empty, no control characters, no
//! leading `$`; a field name has no `.`, a metric key no `::`, `{` or `}`.
//!
//! # Counters
//!
//! [`CounterStore`]: integer counters grouped by namespace, each change atomic in the store.
//!
//! ```
//! use stats::atomics::AtomicsStore;
//! use stats::{CasOutcome, CounterStore};
//!
//! # #[cfg(feature = "atomics")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = AtomicsStore::new();
//! // Add 1; a counter that does not exist yet starts at the default, 0.
//! assert_eq!(store.inc("signups", "eu", 1, 0).await?, 1);
//! // Replace 1 by 10 only if it still holds 1 (one atomic step).
//! assert_eq!(store.compare_and_swap("signups", "eu", 1, 10).await?, CasOutcome::Swapped(10));
//! assert_eq!(store.compare_and_swap("signups", "eu", 1, 20).await?, CasOutcome::Mismatch(10));
//! assert_eq!(store.get_all("signups").await?, vec![("eu".to_string(), 10)]);
//! # Ok(()) }
//! # #[cfg(not(feature = "atomics"))] fn main() {}
//! ```
//!
//! # Throttles
//!
//! [`ThrottleStore::try_acquire`] takes a key for a time if nobody holds it: of many callers at
//! once, exactly one gets `true`. Use it to send one alert per hour, or to run a job on one
//! server of many.
//!
//! ```
//! use std::time::Duration;
//!
//! use stats::atomics::AtomicsStore;
//! use stats::ThrottleStore;
//!
//! # #[cfg(feature = "atomics")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = AtomicsStore::new();
//! let hour = Duration::from_secs(3600);
//! assert!(store.try_acquire("alert:disk-full", hour).await?); // send the alert
//! assert!(!store.try_acquire("alert:disk-full", hour).await?); // already sent this hour
//! # Ok(()) }
//! # #[cfg(not(feature = "atomics"))] fn main() {}
//! ```
//!
//! # Choosing a store
//!
//! Every store implements [`MetricStore`] (what the tracker writes to), [`CounterStore`] and
//! [`ThrottleStore`], and passes the same conformance suite. Each is behind a feature of this
//! crate, so an application compiles only the database drivers it uses:
//!
//! | feature | store | keeps data | a batch of writes is |
//! |---|---|---|---|
//! | `atomics` (default) | [`atomics::AtomicsStore`]: this process's memory | until the process ends | all or nothing |
//! | `redis` | `redis::RedisStore`: Redis, or Redis Cluster | in Redis | all or nothing on one server; per metric on a cluster |
//! | `postgres`, `mysql`, `sqlite` | `sql::SqlStore`: PostgreSQL, MySQL/MariaDB, SQLite | in the database | one transaction: all or nothing |
//! | `mongo` | `mongo::MongoStore`: MongoDB (a Trifle collection too) | in MongoDB | all or nothing per bucket document |
//!
//! - **In-process** ([`atomics`]): tests, and one process that reads its own statistics (a
//!   dashboard in the same server). Nothing to run; nothing survives a restart.
//! - **Redis** (`redis` module): many processes sharing statistics at high write rates; bucket
//!   expiry is Redis's own.
//! - **SQL** (`sql` module): statistics next to the application's data, queried with SQL, kept
//!   durably; SQLite for one machine without a server.
//! - **MongoDB** (`mongo` module): statistics in the document database the application runs,
//!   one document per bucket, in the layout Trifle's Mongo driver uses (so a Ruby or Elixir
//!   Trifle application can share the collection); expiry by a TTL index.
//!
//! A [`Tracker`] takes any of them as `Arc<dyn MetricStore>`; code written against the traits
//! runs on every store. What each store can do is in its [`Capabilities`]. Errors are one enum,
//! [`Error`]; [`Error::is_retryable`] says whether trying again can help (a server that is
//! down, a timeout).
//!
//! # Lower level
//!
//! The tracker builds a [`Batch`] of writes addressed by [`Key`]s (metric, granularity, bucket
//! start) and applies it with [`MetricStore::apply`]; [`Tracker::add_to_batch`] and
//! [`Tracker::apply`] let an application build such batches itself. [`MetricStore::read`] and
//! [`MetricStore::range`] read documents by key.

#[doc(inline)]
pub use stats_core::retention::Retention;
#[doc(inline)]
pub use stats_core::series::Series;
#[doc(inline)]
pub use stats_core::store::MAX_TTL;
#[doc(inline)]
pub use stats_core::time::Calendar;
#[doc(inline)]
pub use stats_core::tracker::{Blanks, Config, Status, Tracker};
#[doc(inline)]
pub use stats_core::{
    Batch, Capabilities, CasOutcome, CounterInfo, CounterStore, Error, Fields, Granularity, Key,
    MetricStore, MetricStoreExt, NameKind, NamespaceInfo, Number, Op, Result, Slot, Store,
    ThrottleStore, Unit, Value, Values, Write, name, try_values, values,
};
#[doc(inline)]
pub use stats_core::{series, time, tracker};

/// An instant in time (UTC, nanosecond precision), from the `jiff` crate: what the tracker
/// takes and what a [`Series`] holds. Parse one from RFC 3339 text
/// (`"2024-05-01T09:12:00Z".parse()`), or take [`Timestamp::now`].
pub use stats_core::jiff::Timestamp;
/// An instant with a time zone, from the `jiff` crate: a bucket start on the wall clock of the
/// tracker's zone ([`Series::at_zoned`]).
pub use stats_core::jiff::Zoned;
/// A day of the week, from the `jiff` crate, for [`Config::week_start`].
pub use stats_core::jiff::civil::Weekday;
/// A time zone, from the `jiff` crate ([`Calendar::new`], [`Series::at_zoned`]); the tracker
/// takes zones by IANA name ([`Config::time_zone`]).
pub use stats_core::jiff::tz::TimeZone;

/// The Redis and Redis Cluster store (feature `redis`).
///
/// # Connecting
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use stats::redis::{RedisConfig, RedisStore};
/// use stats::{Config, Retention, Tracker};
///
/// # async fn connect() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisConfig::from_url("redis://:secret@127.0.0.1:6379/0")?
///     .key_prefix("myapp")? // every key starts with "myapp::"
///     .retention(Retention::new().keep("1m".parse()?, Duration::from_secs(2 * 86_400))?)
///     .response_timeout(Duration::from_secs(2));
/// let store = Arc::new(RedisStore::connect(config).await?);
/// let tracker = Tracker::new(store.clone(), Config::new());
/// # Ok(()) }
/// ```
///
/// [`RedisConfig::from_url`](redis::RedisConfig::from_url) takes:
///
/// - one server: `redis://[user][:password@]host[:port][/db]` (port 6379 and database 0 by
///   default), or `rediss://...` for TLS, which needs the feature `redis-tls`;
/// - a Redis Cluster: the URLs of some of its nodes separated by commas
///   (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`), or one node as `redis+cluster://host:port`.
///   The store learns the other nodes from these and follows the cluster when slots move.
///
/// Building a configuration connects to nothing;
/// [`RedisStore::connect`](redis::RedisStore::connect) connects (within the connection timeout, 2 s
/// by default) and fails with [`Error::Unavailable`] when the server cannot be reached. A single
/// server's connection reconnects by itself after the server restarts. A call to a server that is
/// down fails at once with a retryable [`Error::Unavailable`]; one to a server that does not answer
/// fails after the response timeout (5 s by default) with a retryable [`Error::Timeout`], and a
/// write that timed out may or may not have been applied. Passwords never appear in `Debug` output
/// or errors.
///
/// ```
/// use stats::redis::RedisConfig;
///
/// let one = RedisConfig::from_url("redis://127.0.0.1:6379/")?;
/// assert!(!one.is_cluster());
/// let cluster = RedisConfig::from_url("redis://10.0.0.1:7000, redis://10.0.0.2:7000")?;
/// assert!(cluster.is_cluster());
/// assert!(RedisConfig::from_url("http://127.0.0.1:6379/").is_err());
/// # Ok::<(), stats::Error>(())
/// ```
///
/// # What is stored where
///
/// Every key starts with the store's key prefix (`stats` by default; `RedisConfig::key_prefix` sets
/// another, so that several applications can share one server). This is the *key* prefix of the
/// store, unrelated to the tracker's [`Config::metric_prefix`], which is put in front of metric
/// names whatever the store.
///
/// | data | Redis key | Redis type |
/// |---|---|---|
/// | a bucket of a metric | `<prefix>::m::{<metric>}::<granularity>::<start>` (`start` in unix seconds) | hash: field = the number's path (`by_region.eu`), value = the number |
/// | a metric's status ([`Tracker::beam`]) | `<prefix>::m::{<metric>}::status` | hash, as a bucket |
/// | the counters of a namespace | `<prefix>::c::{<namespace>}` | hash: field = counter key, value = integer |
/// | the namespaces that hold counters | `<prefix>::c::namespaces` | set |
/// | a throttle | `<prefix>::t::{<key>}` | string with a millisecond expiry |
///
/// Integers are stored as decimal text and incremented exactly; floats are written so that they
/// read back as the same `f64`. The name rule keeps `{`, `}` and `::` out of names, so no name can
/// break this layout.
///
/// # What is atomic
///
/// A batch of writes (one [`Tracker::track`], or one [`Tracker::track_many`]) runs as Lua scripts
/// that check every update before writing any. On one server the whole batch is one script: all of
/// it is applied or none. On a cluster, a metric's buckets share one hash slot (the `{<metric>}`
/// part of the key), so each metric's part of a batch is all or nothing, but a batch over several
/// metrics can succeed for one and fail for another. Counter and throttle calls are each one atomic
/// step.
///
/// # Keeping buckets for a while
///
/// Redis expires buckets by itself: `RedisConfig::retention` takes a [`Retention`] (how long to
/// keep the buckets of each granularity, counted from the bucket's start), and every write sets
/// that expiry on the buckets it touches, in the same script. Without one, buckets are kept until
/// removed: [`Tracker::remove`] deletes a metric, and [`MetricStore::purge`] deletes a
/// granularity's buckets older than a given start.
#[cfg(feature = "redis")]
pub mod redis {
    #[doc(inline)]
    pub use stats_backend_redis::*;
}

/// The SQL store: PostgreSQL, MySQL/MariaDB and SQLite (features `postgres`, `mysql`, `sqlite`;
/// each compiles in its database's driver).
///
/// # Connecting
///
/// ```no_run
/// use std::sync::Arc;
///
/// use std::time::Duration;
///
/// use stats::sql::{SqlConfig, SqlStore};
/// use stats::{Config, Retention, Tracker};
///
/// # async fn connect() -> Result<(), Box<dyn std::error::Error>> {
/// let config = SqlConfig::from_url("postgres://app:secret@db.internal:5432/app")?
///     .table_prefix("myapp")? // tables myapp_buckets, myapp_counters, myapp_throttles
///     .retention(Retention::new().keep("1m".parse()?, Duration::from_secs(2 * 86_400))?)
///     .max_connections(16);
/// let store = SqlStore::connect(config).await?;
/// store.setup().await?; // creates the tables and indexes if missing; safe to run every start
/// let tracker = Tracker::new(Arc::new(store), Config::new());
/// # Ok(()) }
/// ```
///
/// One store type, [`SqlStore`](sql::SqlStore), serves the three databases; the URL picks one:
///
/// | database | URL | feature |
/// |---|---|---|
/// | PostgreSQL | `postgres://user:password@host:port/db` (or `postgresql://`) | `postgres` |
/// | MySQL, MariaDB | `mysql://user:password@host:port/db` (or `mariadb://`) | `mysql` |
/// | SQLite | `sqlite:path/to/file.db` (created if missing), `sqlite::memory:` (gone with the store) | `sqlite` |
///
/// Query parameters are passed to the driver (`?application_name=app`; TLS with
/// `?sslmode=verify-full&sslrootcert=ca.pem` on PostgreSQL with the feature `postgres-tls`, or
/// `?ssl-mode=VERIFY_IDENTITY&ssl-ca=ca.pem` on MySQL/MariaDB with `mysql-tls`). A URL of a
/// database this build was compiled without is [`Error::Unsupported`], naming the feature to turn
/// on. Building a configuration connects to nothing; [`SqlStore::connect`](sql::SqlStore::connect)
/// opens a pool of connections (10 by default) and [`SqlStore::setup`](sql::SqlStore::setup)
/// creates the tables. Passwords never appear in `Debug` output or errors.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use stats::sql::{Database, SqlConfig};
///
/// let config = SqlConfig::from_url("sqlite:stats.db")?.table_prefix("myapp")?;
/// assert_eq!(config.database(), Database::Sqlite);
/// assert_eq!(config.tables().buckets(), "myapp_buckets");
/// assert!(SqlConfig::from_url("sqlite:stats.db")?.table_prefix("My-App").is_err());
/// # }
/// # Ok::<(), stats::Error>(())
/// ```
///
/// # What is stored where
///
/// Three tables, named from the table prefix (`stats` by default; lowercase letters, digits and
/// `_`, at most 41 characters):
///
/// | table | one row per | primary key |
/// |---|---|---|
/// | `<prefix>_buckets` | number in a bucket: `metric`, `granularity`, `at` (bucket start, unix seconds), `path` (`by_region.eu`), and the number in `int_value` (exact `i64`) or `float_value` (`f64`) | (`metric`, `granularity`, `at`, `path`) |
/// | `<prefix>_counters` | counter: `namespace`, `counter_key`, `value` | (`namespace`, `counter_key`) |
/// | `<prefix>_throttles` | throttle key: `throttle_key`, `expires_at` (unix milliseconds) | (`throttle_key`) |
///
/// Reading a range of buckets is one scan of the primary key. A metric's status ([`Tracker::beam`])
/// is stored as the bucket with an empty granularity at `at = 0`. Names compare byte by byte on
/// every database (`A` is not `a`, `é` is not `e`).
///
/// # What is atomic
///
/// A batch of writes is one transaction: all of it or nothing. Concurrent batches write their rows
/// in one sorted order, so they do not deadlock; a batch the database still rolls back for a
/// deadlock or a serialization failure is run again (5 times by default). Counter and throttle
/// calls are each one atomic statement. The throttle clock is the database server's on PostgreSQL
/// and MySQL (so application servers with drifting clocks agree) and the local machine's on SQLite.
///
/// # Keeping buckets for a while
///
/// `SqlConfig::retention` takes a [`Retention`] (how long to keep the buckets of each granularity,
/// counted from the bucket's start); the store then deletes expired buckets in the background, one
/// primary-key range `DELETE` per metric and granularity every sweep interval (60 s by default), and
/// `SqlStore::purge_expired` runs the same sweep when asked. Without one, buckets are kept until
/// removed: [`Tracker::remove`] deletes a metric, and [`MetricStore::purge`] deletes a
/// granularity's buckets older than a given start.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub mod sql {
    #[doc(inline)]
    pub use stats_backend_sql::*;
}

/// The MongoDB store (feature `mongo`; `mongo-srv` adds `mongodb+srv://` URLs).
///
/// ```no_run
/// # #[cfg(feature = "mongo")]
/// # async fn demo() -> Result<(), stats::Error> {
/// use std::sync::Arc;
///
/// use stats::mongo::{IdMode, MongoConfig, MongoStore};
/// use stats::{Config, Tracker};
///
/// let config = MongoConfig::from_url("mongodb://127.0.0.1:27017/app")?
///     .collection("trifle_stats")? // share Trifle's default collection
///     .mode(IdMode::Full); // Trifle's default identifier mode, and ours
/// let store = Arc::new(MongoStore::connect(config).await?);
/// store.setup().await?; // collections and indexes, idempotent; needed once before writing
/// let tracker = Tracker::new(store, Config::new());
/// # Ok(()) }
/// ```
///
/// One document per bucket (`{key: "orders::1h::1700002800", data: {count: 3}}` in the
/// default mode), written with one unordered `update` command of upserts per batch. A bucket's
/// writes of one batch are atomic; a batch is not atomic across buckets. See
/// [`MongoStore`](mongo::MongoStore) and the crate docs of `stats-backend-mongo` for the three
/// identifier modes, retention, counters and throttles.
#[cfg(feature = "mongo")]
pub mod mongo {
    #[doc(inline)]
    pub use stats_backend_mongo::*;
}

/// The in-process store (feature `atomics`): metrics, counters and throttles in this process's
/// memory, with lock-free counters.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use stats::atomics::AtomicsStore;
/// use stats::{Config, Retention, Tracker};
///
/// // Keep minute buckets for a day and hour buckets for 90 days; larger ones forever.
/// let retention = Retention::new()
///     .keep("1m".parse()?, Duration::from_secs(86_400))?
///     .keep("1h".parse()?, Duration::from_secs(90 * 86_400))?;
/// let store = Arc::new(AtomicsStore::new().retention(retention));
/// let tracker = Tracker::new(store.clone(), Config::new());
///
/// // The same store also holds counters, with a synchronous API besides the async traits.
/// assert_eq!(store.counters().inc("jobs", "done", 1, 0)?, 1);
/// # Ok::<(), stats::Error>(())
/// ```
///
/// Expired buckets are swept by the first write of every minute
/// ([`Metrics::purge_expired`](crate::atomics::Metrics::purge_expired) sweeps when asked). Nothing
/// survives the process.
#[cfg(feature = "atomics")]
pub mod atomics {
    #[doc(inline)]
    pub use stats_backend_atomics::*;
}

/// Write buffers (feature `buffer`), for high rates. They need a tokio runtime.
///
/// - [`BufferedTracker`](buffer::BufferedTracker): the tracker's calls, with events folded in
///   memory before they fan out to the granularities and written in batches with ids (exactly
///   once on stores with idempotent batches); reads see pending events.
/// - [`Buffered`](buffer::Buffered): any store with its metric writes coalesced the same way,
///   and counter increments buffered with [`inc_later`](buffer::Buffered::inc_later).
/// - [`KeyedBuffer`](buffer::KeyedBuffer): a generic buffer of your own items per key, flushed
///   through a [`Flush`](buffer::Flush) handler on an interval, at a size, on `flush_all` and on
///   `shutdown`, with retries, a memory bound (backpressure or a typed error, never a silent
///   drop) and counters.
///
/// ```
/// # #[cfg(all(feature = "buffer", feature = "atomics"))]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use stats::atomics::AtomicsStore;
/// use stats::buffer::BufferedTracker;
/// use stats::{Config, Timestamp, values};
///
/// let tracker = BufferedTracker::new(Arc::new(AtomicsStore::new()), Config::new())?;
/// let at: Timestamp = "2026-11-29T10:15:00Z".parse()?;
/// for _ in 0..10_000 {
///     tracker.track("orders", at, &values!({"count": 1})).await?;
/// }
/// assert_eq!(tracker.total("orders", at, at, "1h".parse()?, "count").await?, Some(10_000.into()));
/// assert!(tracker.shutdown().await.is_empty()); // writes everything
/// # Ok(()) }
/// # #[cfg(not(all(feature = "buffer", feature = "atomics")))]
/// # fn main() {}
/// ```
///
/// A buffer's errors ([`BufferError`](buffer::BufferError)) convert into [`Error`].
#[cfg(feature = "buffer")]
pub mod buffer {
    #[doc(inline)]
    pub use stats_buffer::*;
}

/// Statistics rules per entity (feature `rules`): the stat_trek model on any store. A
/// [`Rule`](rules::Rule) per entity type and stat says the record it updates (key fields from
/// the entity or the call's context), the strategy (override, sum, max, min, custom), guards
/// (time limit, throttle, custom, each with an `on_trigger`) and the parents it touches;
/// [`Rules::apply`](rules::Rules::apply) writes a whole cascade in one batch.
///
/// ```
/// # #[cfg(all(feature = "rules", feature = "atomics"))]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stats::Result<()> {
/// use std::sync::Arc;
///
/// use stats::atomics::AtomicsStore;
/// use stats::rules::{Context, EntityFn, Rule, Rules, Strategy};
///
/// let store = Arc::new(AtomicsStore::new());
/// let rules = Rules::builder()
///     .rule(Rule::new("test", "score").key_from_context("user_id").strategy(Strategy::Max))
///     .build(store.clone(), store)?;
/// let test = EntityFn::new("test", |_| None);
/// let user = Context::new().with("user_id", 1);
/// rules.apply(&test, "score", 7, &user).await?;
/// rules.apply(&test, "score", 3, &user).await?;
/// assert_eq!(rules.record("test", "score", &user).await?, Some(7.into()));
/// # Ok(()) }
/// # #[cfg(not(all(feature = "rules", feature = "atomics")))]
/// # fn main() {}
/// ```
#[cfg(feature = "rules")]
pub mod rules {
    #[doc(inline)]
    pub use stats_rules::*;
}

/// A recorder for the `metrics` crate (feature `metrics`): services instrumented with
/// `counter!`, `gauge!` and `histogram!` get a time-bucketed history in any store through the
/// buffer, and a Prometheus text exposition of current values, without touching their call
/// sites. One line at start-up:
///
/// ```
/// # #[cfg(all(feature = "metrics", feature = "atomics"))]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stats::Result<()> {
/// use std::sync::Arc;
///
/// use stats::Config;
/// use stats::atomics::AtomicsStore;
/// use stats::buffer::BufferedTracker;
///
/// let store = Arc::new(AtomicsStore::new());
/// let history = stats::metrics::install(BufferedTracker::new(store, Config::new())?)?;
/// # drop(history.shutdown().await);
/// # Ok(()) }
/// # #[cfg(not(all(feature = "metrics", feature = "atomics")))]
/// # fn main() {}
/// ```
#[cfg(feature = "metrics")]
pub mod metrics {
    #[doc(inline)]
    pub use stats_metrics::*;
}

/// The README's examples, compiled as doc tests so that they stay true.
#[cfg(all(
    doctest,
    feature = "atomics",
    feature = "redis",
    feature = "postgres",
    feature = "mongo",
    feature = "buffer",
    feature = "rules",
    feature = "metrics"
))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
