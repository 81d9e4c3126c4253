//! The Redis and Redis Cluster store of `stats`.
//!
//! [`RedisStore`] implements [`MetricStore`](stats_core::MetricStore),
//! [`CounterStore`](stats_core::CounterStore) and [`ThrottleStore`](stats_core::ThrottleStore)
//! with the `redis` crate on tokio.
//!
//! # Layout
//!
//! Every key starts with a configurable key prefix (default `stats`, see
//! [`RedisConfig::key_prefix`]).
//!
//! | data | key | type |
//! |---|---|---|
//! | a bucket of a metric | `<prefix>::m::{<metric>}::<granularity>::<start>` | hash: field = flattened path (`by.country`), value = the number |
//! | a metric's status (`beam`) | `<prefix>::m::{<metric>}::status` | hash, as a bucket |
//! | a counter namespace | `<prefix>::c::{<namespace>}` | hash: field = counter key, value = integer |
//! | the namespaces with counters | `<prefix>::c::namespaces` | set (for `info`) |
//! | a throttle | `<prefix>::t::{<key>}` | string with a millisecond TTL (`SET NX PX`) |
//! | an applied batch id | `<prefix>::b::{<metric>}::<id>` (`<id>`: 32 hex digits) | string `1`, PX 24 h |
//!
//! Numbers are stored as text: integers in canonical decimal, floats always with a `.` or an
//! exponent (`2.0`, `1e-300`), so a leaf keeps its kind: integer sums are exact 64-bit
//! arithmetic on the decimal text (overflow refused), max and min compare an integer with a
//! float exactly (as [`Number::cmp_value`](stats_core::Number::cmp_value) does); once a float is
//! involved in a sum it is taken in `f64` and written back with 17 significant digits, which
//! reads back to the same `f64`. A nested leaf `a.b` also writes a marker field `a.` (it says `a` is a map); reads skip
//! markers. The portable name rule keeps `{`, `}` and `::` out of metrics, namespaces and keys,
//! and `.` out of field names, so no name can break this layout or collide with another.
//!
//! # The Trifle layout
//!
//! [`RedisConfig::layout`]`(`[`Layout::Trifle`]`)` reads and writes metric buckets exactly as
//! Trifle 2.6's Redis driver (`Trifle::Stats::Driver::Redis` of the Ruby gem `trifle-stats`)
//! does, so that a Trifle application and a Rust service share one server: each side's
//! `values` read the other's writes.
//!
//! | data | key | type |
//! |---|---|---|
//! | a bucket | `<prefix>::<metric>::<granularity>::<start>` (prefix default `trfl`, Trifle's) | hash: field = dot-packed path (`by.eu`), value = the number as text |
//! | the system index | `<prefix>::__system__key__::<granularity>::<start>` | hash: `count`, `keys.<metric>` |
//! | a metric's status (`beam`) | `<prefix>::<metric>::status` | hash (Trifle's Redis driver keeps no status) |
//! | counters, throttles, batch ids | as in our layout | |
//!
//! What Trifle writes, from its source (`driver/redis.rb`, `nocturnal/key.rb`,
//! `mixins/packer.rb`): `track` packs the values into dotted fields and, per granularity, sends
//! `HINCRBY <key> <field> <value>` for each, then (with `system_tracking`, the default)
//! `HINCRBY` of `count` and `keys.<metric>` by 1 on the `__system__key__` bucket of the same
//! granularity and start; `assert` sends `HMSET` of the packed fields (the system key is
//! incremented the same way). The key joins prefix, metric, granularity (`1h`, `1d`, `1mo`,
//! as ours spells them) and the bucket's start in unix seconds with `::`. Trifle writes no
//! expiry. Its `values` reads each bucket with `HGETALL` and unpacks `a.b` into nested maps.
//!
//! This store, in that layout:
//!
//! - writes the same keys and fields: integers in canonical decimal (what `HINCRBY` leaves),
//!   floats spelled as Ruby's `Float#to_s` does (`12.5`, `3.0`, `1.0e+20`, `1.0e-05`: what
//!   Trifle's `HMSET` leaves for a Ruby float), sums of floats spelled the same way (`-0.0`
//!   is written `0.0`: the core turns every `-0.0` into `0.0` before a store sees it);
//! - writes the tracker's system index ([`Config::system_index`](stats_core::tracker::Config::system_index))
//!   as Trifle's: `keys.<metric>` with the metric as it is (the tracker's percent-escapes are
//!   undone; a metric with `.` becomes nested fields, as Trifle's packing makes it);
//! - reads every field as a leaf: text that reads as an `i64` is an integer, any other finite
//!   decimal a float.
//!
//! | guarantee | our layout | Trifle layout |
//! |---|---|---|
//! | a batch is atomic on one server (one script) | yes | yes |
//! | a batch with an id applies once (the id in its own key, invisible to Trifle) | yes | yes |
//! | integer sums exact, overflow refused with nothing written | yes | yes (against Trifle's `HINCRBY` too, which refuses overflow itself) |
//! | float sums read back to the same `f64`; inf/NaN refused | yes | yes |
//! | a float leaf stays a float when whole | yes (`3.0`) | for what this store or Trifle's `assert` writes (`3.0`); **not** for text without `.` or exponent (`HINCRBYFLOAT` leaves `3` for 3.0), which reads as an integer |
//! | path conflicts (`a` a number and `a.b`) refused | yes (map markers) | yes for this store's writes, **at a cost**: a write that adds a leaf to an existing bucket reads the bucket's field names (`HKEYS`, linear in its size) since no markers are stored; a conflict already stored by another writer fails the read with [`Error::PathConflict`](stats_core::Error) naming key and path |
//! | max/min exact across kinds | yes | yes (Trifle has no max/min) |
//! | expiry with the write | yes | yes (Trifle sets none; our expiry applies to buckets we write) |
//! | on a Redis Cluster, a batch is atomic per | metric (its hash tag) | **bucket**: Trifle's keys carry no hash tag, so one script runs per bucket key (its batch id key `<prefix>::b::{<bucket key>}::<id>` in the bucket's slot), a read of a range is one `HGETALL` per bucket, and `remove_metric` scans every master |
//!
//! What Trifle cannot read or write the same way: Trifle 2.6's Redis driver increments every
//! value with `HINCRBY`, which Redis refuses for a float (`ERR value is not an integer`), so a
//! Trifle application cannot `track` a float on Redis (`assert` can); its driver's `get` returns
//! the stored text as Ruby strings (`"12.5"`), unpacked but not converted. A key prefix must follow our segment
//! rule (Trifle allows no prefix at all; we need one). Status (`beam`) is ours only.
//!
//! # What is atomic
//!
//! Every batch of metric writes runs as Lua scripts (`EVALSHA` of scripts loaded once, loaded
//! again by the driver after a server restart or `SCRIPT FLUSH`). A script reads the fields it
//! needs (one `HMGET` per key), computes and checks every update on that copy, and only when
//! all of them succeed writes them (one `HSET` per key): a failing script (overflow, path
//! conflict) leaves nothing written. Its cost is linear in the batch.
//!
//! - On one server the whole batch is one script: **a batch is atomic** (all or nothing, and no
//!   other client sees part of it).
//! - On a cluster a script may only touch keys of one hash slot. Bucket keys use the metric as
//!   hash tag, so all buckets of a metric (every granularity, the status) live in one slot, and
//!   a batch runs as **one atomic script per metric**, sent concurrently. A batch over several
//!   metrics can fail for one metric and succeed for another
//!   ([`Capabilities::atomic_batch`](stats_core::Capabilities::atomic_batch) is false).
//!   The price of the tag: one very hot metric lands on one node; spread a hot metric over
//!   several metric keys if one node cannot carry it.
//! - Counter calls are single-key: `inc` (with its default), `compare_and_swap` and
//!   `delete_namespace` are scripts, `get`, `set`, `delete` single commands; each is atomic.
//! - Expiry (see [`RedisConfig::expire`] and [`RedisConfig::retention`]) is set in the same
//!   script as the write.
//! - A batch with an id ([`Batch::with_id`](stats_core::Batch::with_id)) is applied once
//!   ([`Capabilities::idempotent_batch`](stats_core::Capabilities::idempotent_batch)): the
//!   script first looks for the id's key and, if it exists, writes nothing; otherwise it
//!   writes the batch and sets the key (PX [`BATCH_ID_WINDOW`](stats_core::BATCH_ID_WINDOW)),
//!   in one script. On a cluster the key is per metric (the metric's hash tag, the slot of its
//!   buckets), so a retry of a batch that failed for some metrics applies only the others.
//!
//! # Removing metrics and purging old buckets
//!
//! Redis expires buckets by itself once a retention is configured, so
//! [`purge`](stats_core::MetricStore::purge) is needed only for buckets written without one.
//! Both [`remove_metric`](stats_core::MetricStore::remove_metric) and `purge` find keys with
//! `SCAN MATCH` (never `KEYS`, so the server keeps serving other clients between pages) and
//! delete them with `UNLINK` in chunks (memory is freed in the background):
//!
//! - `remove_metric` scans the keys of one server; on a cluster only the node that holds the
//!   metric's hash slot. The cost grows with the number of keys on that node, not with the
//!   metric's size.
//! - `purge` scans every key of one server, or of every master of a cluster, once per call.
//! - Neither is atomic: a bucket written while the scan runs may survive it; the returned count
//!   is the number of keys actually deleted.
//!
//! Reads (`read`, `range`) are one pipeline of `HGETALL`; `range` computes the keys from the
//! caller's timeline, and on a cluster all of them live on one node.
//!
//! # Connections
//!
//! One server: a managed connection that reconnects on its own after the server restarts.
//! Cluster: the driver's cluster connection, which follows slot moves. It also sends a call
//! again on a new connection, up to twice, when the connection drops before the answer, so a
//! call the node did run may run again: a batch with an id still counts once, a batch
//! without one up to three times (the cluster suite's lost-reply test measures both; a
//! counter `inc` goes through the same driver). A call to a server that is down fails at
//! once with a retryable [`Error::Unavailable`](stats_core::Error);
//! one that does not answer fails after the response timeout (default 5 s) with a retryable
//! [`Error::Timeout`](stats_core::Error).
//!
//! TLS: a `rediss://` URL (every node's, for a cluster) connects over TLS with the `tls`
//! feature (`redis-tls` of `stats`): rustls with its ring crypto provider, the server's
//! certificate checked against the system's trusted roots or the root set with
//! [`RedisConfig::tls_root_certificate_file`], and required to name the URL's host. Without
//! the feature a `rediss://` URL is refused with [`Error::Unsupported`](stats_core::Error)
//! naming it.

mod config;
mod counters;
mod errors;
mod metrics;
mod removal;
mod store;

pub use config::{
    DEFAULT_CONNECTION_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_RESPONSE_TIMEOUT, Layout, RedisConfig,
    TRIFLE_KEY_PREFIX, Target,
};
pub use store::{RedisStore, STORE_NAME};
