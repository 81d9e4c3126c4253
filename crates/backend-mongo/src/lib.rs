//! The MongoDB store of `stats`, on the official `mongodb` driver (3.x, tokio), laid out as
//! Trifle 2.6's Mongo driver lays out its collection, so that a Rust service and a Ruby or
//! Elixir Trifle application can share one.
//!
//! [`MongoStore`] implements [`MetricStore`](stats_core::MetricStore),
//! [`CounterStore`](stats_core::CounterStore) and [`ThrottleStore`](stats_core::ThrottleStore).
//!
//! ```no_run
//! # async fn demo() -> stats_core::Result<()> {
//! use std::sync::Arc;
//!
//! use stats_backend_mongo::{IdMode, MongoConfig, MongoStore};
//! use stats_core::tracker::{Config, Tracker};
//! use stats_core::{jiff::Timestamp, values};
//!
//! let config = MongoConfig::from_url("mongodb://127.0.0.1:27017/app")?
//!     .collection("trifle_stats")? // Trifle's default collection, to share it
//!     .mode(IdMode::Full); // Trifle's default identifier mode (and ours)
//! let store = MongoStore::connect(config).await?;
//! store.setup().await?; // collections and indexes, idempotent
//!
//! let tracker = Tracker::new(Arc::new(store), Config::new());
//! tracker.track("orders", Timestamp::now(), &values!({"count": 1, "amount": 12.5})).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! One document per bucket in the metric collection (default `stats`; Trifle's is
//! `trifle_stats`), its values nested under `data`, identified as the [`IdMode`] says:
//!
//! ```text
//! full:      {key: "orders::1h::1700002800",                         data: {count: 3, amount: 37.5}}
//! partial:   {key: "orders::1h", at: ISODate("2023-11-14T23:00:00Z"), data: {...}}
//! separated: {key: "orders", granularity: "1h", at: ISODate(...),    data: {...}}
//! ```
//!
//! - With retention ([`MongoConfig::retention`]) each bucket also holds
//!   `expire_at: ISODate(start + period)`, set on every write, and [`MongoStore::setup`] makes
//!   the TTL index `{expire_at: 1}, {expireAfterSeconds: 0}`. Reads leave out documents whose
//!   `expire_at` has passed even before MongoDB's TTL monitor (a pass about once a minute)
//!   removes them.
//! - A metric's status slot (what `Tracker::beam` writes) is the document `{key: "<metric>"}`
//!   (`full`), `{key: "<metric>", at: null}` (`partial`) or `{key: "<metric>", granularity:
//!   null, at: null}` (`separated`). Trifle keeps its `ping` documents differently (and only in
//!   `separated` mode): status is not shared with a Trifle application.
//! - Integers are written as Int64 and floats as Double. Reads take Int32, Int64 and Double
//!   (Trifle's Ruby driver writes small integers as Int32; MongoDB's `$inc` keeps the wider
//!   type) and give back integers as integers and doubles as floats, exactly.
//! - A bucket written by batches with an id ([`Batch::with_id`](stats_core::Batch::with_id))
//!   also holds `_b: [{id: BinData(0, <the id's 16 bytes>), at: ISODate(<applied>)}, ...]`,
//!   the ids of the batches applied to it (see [exactly-once retries](#exactly-once-retries)).
//!   Reads never return it (values live under `data`, so no value can be named `_b`), and
//!   Trifle reads only `data`.
//! - Counters live in `<collection>_counters`: `{_id: "<namespace>::<key>", ns, key, value}`
//!   with an index `{ns: 1, key: 1}`. Throttle keys live in `<collection>_throttles`: `{_id:
//!   <key>, expires_at}` with a TTL index. Both names can be set.
//!
//! ## Choosing a mode
//!
//! `full` (the default, and Trifle's) identifies a bucket by one string with a unique index on
//! one field: the cheapest index to check on every upsert, and the one a Trifle application
//! uses without options. Its range read is an `$in` of the timeline's keys (point lookups).
//! `partial` and `separated` keep the start as a date (a range read is one index range, and
//! other tools can query by time) at the cost of a compound unique index. Measured on the
//! MongoDB-wire test server (`cargo xtask bench mongo`, figures in the repository's README,
//! section Benchmarks): `full` wrote 1.2x to 20x faster than the other two (the gap grows with
//! the collection: that server scans for a compound unique index), its 720-bucket range read
//! was 3x slower (an `$in` of 720 keys); writes dominate, so `full` stays the default. On
//! MongoDB itself all three are B-tree lookups.
//!
//! # What is atomic
//!
//! - One document's writes of one batch are one update statement, and MongoDB applies a
//!   statement to its document atomically: when a write of a batch fails (an overflow, a path
//!   conflict), nothing of that document's writes is applied.
//! - A batch is not atomic across documents ([`Capabilities::atomic_batch`] is false): the
//!   statements are sent as one unordered `update` command, and when some fail the others
//!   stay applied. [`apply`](stats_core::MetricStore::apply) then returns the error of the
//!   failing document written first in the batch. (MongoDB transactions need a replica set
//!   and would serialise concurrent batches; they are not used.)
//! - Counters and throttles: every call is one atomic single-document operation.
//!
//! ## Exactly-once retries
//!
//! With [`MongoConfig::record_batch_ids`]`(true)` (off by default, for the cost below), a
//! batch with an id is applied once however often it is retried within
//! [`BATCH_ID_WINDOW`](stats_core::BATCH_ID_WINDOW) (24 hours)
//! ([`Capabilities::idempotent_batch`]), so a buffer can send a batch again after a timeout
//! or a lost connection without counting it twice. With no transactions to lean on, each
//! document records the id in the statement that writes it: the statement's filter adds
//! `"_b.id": {$ne: <id>}` and its update `$push: {_b: {id, at}}`. On a document that already
//! records the id the filter matches nothing and the upsert collides on the unique index
//! (E11000), as a refused guard does; the document is then read, and one that records the id
//! is done (`Ok`), while one that does not goes the way of a refused guard (its error named,
//! or a conditional write). The conditional writes carry the same filter and `$push`. Because
//! the id lives in each document, a retry of a batch that failed for some documents applies
//! only the others; and the ids go with the document: after a bucket is deleted (`remove`,
//! `purge`, its TTL) a retry writes it anew.
//!
//! The cost is storage in every bucket: about 48 bytes per batch with an id that wrote it in
//! the last 25 hours (the window plus an hour for clocks that disagree: `at` is the writing
//! client's clock). A minute or hour bucket holds at most the batches of its own period, but a
//! day or longer bucket written by every flush holds a day's worth: 17,280 entries (0.8 MB)
//! at one flush every 5 seconds (the buffer's default interval), 86,400 (4.2 MB, a quarter of
//! MongoDB's 16 MB document limit) at one a second; and each write scans and rewrites them.
//! A thousand metrics with day, week, month and year buckets, flushed every 5 seconds, carry
//! about 3 GB of ids. Measured on the MongoDB-wire test server (debug build): a 100-bucket
//! batch took 19% longer with an id than without (37% for the one batch in eight that also
//! prunes); one statement on a document holding 17,280 ids took 1.5 s there, with or without
//! an id (that server copies the whole document per update; MongoDB rewrites it too). Flush such
//! buckets no more often than needed. That is why ids are recorded only with
//! [`MongoConfig::record_batch_ids`]`(true)`; by default the store ignores them (at least
//! once, not exactly once) and says so in its capabilities. Recording one entry per sender
//! instead of one per batch (sequence numbers per sender) would bound this; it is not built
//! yet.
//!
//! Old ids are pruned by one batch with an id in eight (picked by a hash of the id), which
//! also sends one `$pull` statement per document matching only a document whose oldest id is
//! past the window (a `$pull` and the writes' `$push` cannot share a statement); a document no
//! longer written keeps its last ids until it is deleted or expires.
//!
//! # Writes
//!
//! A batch is folded per document and leaf ([`stats_core::plan::Folded`]) and becomes one
//! upsert statement per document: `$inc`, `$set`, `$max` and `$min` on dotted paths under
//! `data`, plus `expire_at`. The statements go out in unordered `update` commands of at most
//! [`MongoConfig::max_statements`] statements (not MongoDB 8.0's `bulkWrite`, which older
//! servers lack): one round trip for most batches.
//!
//! MongoDB accepts some writes the contract refuses, so the statement's filter guards them: a
//! number `$set` (or `$max`, `$min`) over a map, and a float `$inc` whose sum would be
//! infinite. A guard that fails makes the upsert collide with the existing document on the
//! unique index; like every refused statement, the document is then read back and the batch
//! replayed over it ([`stats_core::plan::first_error`]) to return the exact
//! [`Error::Overflow`](stats_core::Error::Overflow) or
//! [`Error::PathConflict`](stats_core::Error::PathConflict), naming key and path. A
//! statement that replays cleanly lost a race (two upserts creating one document) and is sent
//! again.
//!
//! When a leaf has updates that cannot fold into one operator (an increment after a maximum,
//! several float increments), its document is read, the updates are applied here exactly,
//! and the result is written with an update conditional on every touched leaf being as read:
//! two more round trips for that document, still atomic on it.
//!
//! # TLS
//!
//! `tls=true` in the URL (implied by `mongodb+srv://`) connects with rustls and the ring crypto
//! provider, as the Redis and SQL stores' TLS features do, trusting Mozilla's root
//! certificates (webpki-roots) or the authority in `tlsCAFile=<path>`. TLS is always compiled
//! in: the driver needs a TLS stack.
//!
//! # Errors
//!
//! Unreachable servers and network failures are
//! [`Error::Unavailable`](stats_core::Error::Unavailable); server errors MongoDB marks
//! retryable (`NotWritablePrimary`, `WriteConflict`, shutdown, retryable-write labels) are a
//! retryable [`Error::Backend`](stats_core::Error::Backend). A write concern that is not
//! satisfied after the primary applied the writes is a non-retryable backend error (sending
//! the batch again would count it twice).

mod config;
mod counters;
mod layout;
mod metrics;
mod store;
mod throttles;

pub use config::{
    Acknowledge, DEFAULT_COLLECTION, DEFAULT_DATABASE, DEFAULT_MAX_STATEMENTS, DEFAULT_SEPARATOR,
    DEFAULT_SERVER_SELECTION_TIMEOUT, Durability, IdMode, MongoConfig, check_collection,
};
pub use store::MongoStore;

/// The driver, re-exported so that callers use the same version (for
/// [`MongoStore::client`]).
pub use mongodb;

#[cfg(doc)]
use stats_core::Capabilities;
