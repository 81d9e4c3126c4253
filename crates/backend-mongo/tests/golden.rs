//! Golden documents and Trifle interop, against a MongoDB-wire server (`STATS_TEST_MONGO_URL`;
//! `cargo xtask servers mongo` prints it).
//!
//! 1. The exact documents one `Tracker::track` writes in each identifier mode, beside what
//!    Trifle 2.6's Mongo driver (`Trifle::Stats::Driver::Mongo`, Ruby gem `trifle-stats`)
//!    writes for the same call, every difference named.
//! 2. Trifle's documents, inserted raw with the BSON types Ruby writes, read back through the
//!    tracker (integer kinds kept) and tracked onto.
//! 3. Layout-level checks: bad names refused before anything is sent, `setup()` idempotent and
//!    concurrent, writes before `setup()`, setup in another mode, expired documents, write
//!    concerns.
//! 4. Stored values of other BSON types refused on read with the path named.
//! 5. Batch ids: the documents a batch with an id writes in each mode (its id recorded in
//!    `_b`), a batch applied again (one after the other and at once, on both write paths),
//!    reads that leave `_b` out, the pruning of ids older than the window, and a `_b` that is
//!    not an array.
//!
//! What Trifle writes, from its source (`lib/trifle/stats/driver/mongo.rb`,
//! `nocturnal/key.rb`, `mixins/packer.rb`): for `Trifle::Stats.track(key: 'orders', at: t,
//! values: {count: 1, amount: 12.5, by: {eu: 1}})` the driver's `inc` gets one
//! `Nocturnal::Key` per granularity (`key: 'orders', granularity: '1h', at: <floored Time>`)
//! and sends, per key, two `update_many` upserts in one `bulk_write`:
//!
//! - filter `key.identifier('::', mode)`: `{key: "orders::1h::<at.to_i>"}` (`:full`, the
//!   default), `{key: "orders::1h", at: <Time>}` (`:partial`), `{key: "orders", granularity:
//!   "1h", at: <Time>}` (`nil`, separated); update `{$inc: {"data.count": 1, "data.amount":
//!   12.5, "data.by.eu": 1}}` (the values packed into dotted paths under `data`), plus `{$set:
//!   {expire_at: at + expire_after}}` when `expire_after` is given;
//! - with `system_tracking` (the default) the same for the key `__system__key__` of the same
//!   granularity and time, update `{$inc: {"data.count": 1, "data.keys.orders": 1}}` and the
//!   same `expire_at`.
//!
//! Ruby's BSON gem writes an Integer that fits 32 bits as Int32, a Float as Double and a Time
//! as a UTC datetime (milliseconds), so the upserted documents hold Int32 counts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use stats_backend_mongo::mongodb::bson::spec::BinarySubtype;
use stats_backend_mongo::mongodb::bson::{Binary, Bson, DateTime, Decimal128, Document, doc};
use stats_backend_mongo::{Acknowledge, IdMode, MongoConfig, MongoStore};
use stats_core::jiff::Timestamp;
use stats_core::retention::Retention;
use stats_core::tracker::{Blanks, Config, SYSTEM_KEY, Tracker};
use stats_core::{
    BATCH_ID_WINDOW, Batch, BatchId, CounterStore, Error, Fields, Granularity, Key, MetricStore,
    NameKind, Number, Store, Values, values,
};

/// The instant of the tracked event: 2023-11-14T22:13:20Z.
const AT: i64 = 1_700_000_000;
/// The start of its `1h` bucket: 2023-11-14T22:00:00Z.
const HOUR: i64 = 1_699_999_200;
/// The start of its `1d` bucket (UTC): 2023-11-14T00:00:00Z.
const DAY: i64 = 1_699_920_000;
/// How long buckets are kept: 3650 days (Trifle's `expire_after`, one period for every
/// granularity; ours is set per granularity, here the same for both).
const KEEP: i64 = 3650 * 86_400;

fn at() -> Timestamp {
    Timestamp::from_second(AT).unwrap()
}

fn hour() -> Granularity {
    "1h".parse().unwrap()
}

fn day() -> Granularity {
    "1d".parse().unwrap()
}

/// A BSON date of unix seconds.
fn date(seconds: i64) -> DateTime {
    DateTime::from_millis(seconds * 1000)
}

/// The event's values.
fn event() -> Values {
    values!({"count": 1, "amount": 12.5, "by": {"eu": 1}})
}

/// Both granularities kept for [`KEEP`].
fn retention() -> Retention {
    let keep = Duration::from_secs(KEEP as u64);
    Retention::new()
        .keep(hour(), keep)
        .unwrap()
        .keep(day(), keep)
        .unwrap()
}

/// The tracker of these tests: `1h` and `1d` buckets in UTC, with the system index.
fn tracker(store: Arc<MongoStore>) -> Tracker {
    let config = Config::new()
        .granularities(["1h", "1d"])
        .unwrap()
        .system_index(true);
    Tracker::new(store, config)
}

/// A set-up store of a fresh collection in `mode`, with [`retention`].
async fn store(mode: IdMode) -> Arc<MongoStore> {
    common::store_with(common::config(mode).retention(retention())).await
}

/// Every document of the metric collection without its `_id` (a server-made ObjectId in both
/// drivers' upserts), in identifier order.
async fn raw_documents(store: &MongoStore) -> Vec<Document> {
    let mut docs: Vec<Document> = store
        .metrics_collection()
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for d in &mut docs {
        d.remove("_id");
    }
    sort(&mut docs);
    docs
}

/// Sorts documents by identifier (key, granularity, at), so that expected and read lists
/// compare whatever order the server returns them in. (`Document` equality is by field and
/// value, not field order, and tells every BSON type apart: Int32(1) is not Int64(1).)
fn sort(docs: &mut [Document]) {
    docs.sort_by_key(|d| {
        (
            d.get_str("key").unwrap_or_default().to_owned(),
            d.get_str("granularity").unwrap_or_default().to_owned(),
            d.get_datetime("at").map(|t| t.timestamp_millis()).ok(),
        )
    });
}

/// What this store writes for `track("orders", AT, {count: 1, amount: 12.5, by: {eu: 1}})`
/// with `1h` and `1d`, the system index and [`retention`], in identifier order.
fn ours_after_track(mode: IdMode) -> Vec<Document> {
    match mode {
        IdMode::Full => vec![
            doc! {
                "key": "__system__key__::1d::1699920000",
                "data": {"count": 1_i64, "keys": {"orders": 1_i64}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "__system__key__::1h::1699999200",
                "data": {"count": 1_i64, "keys": {"orders": 1_i64}},
                "expire_at": date(HOUR + KEEP),
            },
            doc! {
                "key": "orders::1d::1699920000",
                "data": {"count": 1_i64, "amount": 12.5, "by": {"eu": 1_i64}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "orders::1h::1699999200",
                "data": {"count": 1_i64, "amount": 12.5, "by": {"eu": 1_i64}},
                "expire_at": date(HOUR + KEEP),
            },
        ],
        IdMode::Partial => vec![
            doc! {
                "key": "__system__key__::1d",
                "at": date(DAY),
                "data": {"count": 1_i64, "keys": {"orders": 1_i64}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "__system__key__::1h",
                "at": date(HOUR),
                "data": {"count": 1_i64, "keys": {"orders": 1_i64}},
                "expire_at": date(HOUR + KEEP),
            },
            doc! {
                "key": "orders::1d",
                "at": date(DAY),
                "data": {"count": 1_i64, "amount": 12.5, "by": {"eu": 1_i64}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "orders::1h",
                "at": date(HOUR),
                "data": {"count": 1_i64, "amount": 12.5, "by": {"eu": 1_i64}},
                "expire_at": date(HOUR + KEEP),
            },
        ],
        IdMode::Separated => vec![
            doc! {
                "key": "__system__key__",
                "granularity": "1d",
                "at": date(DAY),
                "data": {"count": 1_i64, "keys": {"orders": 1_i64}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "__system__key__",
                "granularity": "1h",
                "at": date(HOUR),
                "data": {"count": 1_i64, "keys": {"orders": 1_i64}},
                "expire_at": date(HOUR + KEEP),
            },
            doc! {
                "key": "orders",
                "granularity": "1d",
                "at": date(DAY),
                "data": {"count": 1_i64, "amount": 12.5, "by": {"eu": 1_i64}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "orders",
                "granularity": "1h",
                "at": date(HOUR),
                "data": {"count": 1_i64, "amount": 12.5, "by": {"eu": 1_i64}},
                "expire_at": date(HOUR + KEEP),
            },
        ],
    }
}

/// What Trifle 2.6's Mongo driver writes for `Trifle::Stats.track(key: 'orders', at: AT,
/// values: {count: 1, amount: 12.5, by: {eu: 1}})` with the ranges `hour` and `day` in UTC,
/// `system_tracking: true` and `expire_after: KEEP`, in the `joined_identifier` matching
/// `mode` (`:full`, `:partial`, `nil`), in identifier order.
///
/// The differences from [`ours_after_track`], all of them:
/// - integers: Trifle's are Int32 (Ruby's BSON gem writes an Integer that fits 32 bits so),
///   ours Int64 (an `i64` is always written as Int64, so a sum never changes width). Both
///   stores read both; MongoDB's `$inc` of an Int32 by an Int64 stores an Int64.
/// - nothing else in these documents: identifiers, the nesting under `data`, the Double
///   `amount`, the system index documents and their `{count, keys: {<metric>: n}}`, and
///   `expire_at` (bucket start + period, on the system documents too) are the same.
///
/// Differences that this call does not show: Trifle's `expire_after` is one period for every
/// granularity (ours is per granularity; a granularity without one gets no `expire_at`);
/// Trifle nests a metric key with a `.` in the system index (`keys: {a: {b: 1}}`) where ours
/// percent-escapes it (`keys: {"a%2Eb": 1}`); status documents differ (see
/// [`status_documents`]).
fn trifle_after_track(mode: IdMode) -> Vec<Document> {
    match mode {
        IdMode::Full => vec![
            doc! {
                "key": "__system__key__::1d::1699920000",
                "data": {"count": 1_i32, "keys": {"orders": 1_i32}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "__system__key__::1h::1699999200",
                "data": {"count": 1_i32, "keys": {"orders": 1_i32}},
                "expire_at": date(HOUR + KEEP),
            },
            doc! {
                "key": "orders::1d::1699920000",
                "data": {"count": 1_i32, "amount": 12.5, "by": {"eu": 1_i32}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "orders::1h::1699999200",
                "data": {"count": 1_i32, "amount": 12.5, "by": {"eu": 1_i32}},
                "expire_at": date(HOUR + KEEP),
            },
        ],
        IdMode::Partial => vec![
            doc! {
                "key": "__system__key__::1d",
                "at": date(DAY),
                "data": {"count": 1_i32, "keys": {"orders": 1_i32}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "__system__key__::1h",
                "at": date(HOUR),
                "data": {"count": 1_i32, "keys": {"orders": 1_i32}},
                "expire_at": date(HOUR + KEEP),
            },
            doc! {
                "key": "orders::1d",
                "at": date(DAY),
                "data": {"count": 1_i32, "amount": 12.5, "by": {"eu": 1_i32}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "orders::1h",
                "at": date(HOUR),
                "data": {"count": 1_i32, "amount": 12.5, "by": {"eu": 1_i32}},
                "expire_at": date(HOUR + KEEP),
            },
        ],
        IdMode::Separated => vec![
            doc! {
                "key": "__system__key__",
                "granularity": "1d",
                "at": date(DAY),
                "data": {"count": 1_i32, "keys": {"orders": 1_i32}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "__system__key__",
                "granularity": "1h",
                "at": date(HOUR),
                "data": {"count": 1_i32, "keys": {"orders": 1_i32}},
                "expire_at": date(HOUR + KEEP),
            },
            doc! {
                "key": "orders",
                "granularity": "1d",
                "at": date(DAY),
                "data": {"count": 1_i32, "amount": 12.5, "by": {"eu": 1_i32}},
                "expire_at": date(DAY + KEEP),
            },
            doc! {
                "key": "orders",
                "granularity": "1h",
                "at": date(HOUR),
                "data": {"count": 1_i32, "amount": 12.5, "by": {"eu": 1_i32}},
                "expire_at": date(HOUR + KEEP),
            },
        ],
    }
}

/// A document with every Int64 that fits 32 bits made an Int32: what Ruby's BSON gem would
/// have written for the same numbers.
fn as_ruby_writes(d: &Document) -> Document {
    d.iter()
        .map(|(k, v)| {
            let v = match v {
                Bson::Int64(i) => match i32::try_from(*i) {
                    Ok(small) => Bson::Int32(small),
                    Err(_) => Bson::Int64(*i),
                },
                Bson::Document(inner) => Bson::Document(as_ruby_writes(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

// --- 1. Golden documents ------------------------------------------------------------------

async fn golden_track(mode: IdMode) {
    let store = store(mode).await;
    tracker(store.clone())
        .track("orders", at(), &event())
        .await
        .unwrap();
    let written = raw_documents(&store).await;
    assert_eq!(
        written,
        ours_after_track(mode),
        "{mode}: the documents written"
    );
    // The one difference from Trifle's documents is the integer width.
    let as_ruby: Vec<Document> = written.iter().map(as_ruby_writes).collect();
    assert_eq!(
        as_ruby,
        trifle_after_track(mode),
        "{mode}: Trifle's documents"
    );
    assert_ne!(
        written,
        trifle_after_track(mode),
        "{mode}: Int64 is not Int32"
    );
    store.drop_collections().await.unwrap();
}

#[tokio::test]
async fn golden_track_full() {
    golden_track(IdMode::Full).await;
}

#[tokio::test]
async fn golden_track_partial() {
    golden_track(IdMode::Partial).await;
}

#[tokio::test]
async fn golden_track_separated() {
    golden_track(IdMode::Separated).await;
}

/// A metric's status (`Tracker::beam`) in each mode. Trifle keeps status only in separated
/// mode (its `ping` writes nothing with a joined identifier), as `{key: "orders", at:
/// <Time>, data: {count: 1 (Int32), ...}, expire_at: <at + expire_after>}` upserted with the
/// filter `{key: "orders"}`, which in separated mode also matches that metric's bucket
/// documents (an `update_many`: Trifle's ping rewrites `at` and `data` of every bucket of the
/// metric). Ours is a document of its own whose identifier fields are null, holding the time as
/// unix seconds under `data.at` and the values under `data.data`, without `expire_at`; status
/// is therefore not shared with a Trifle application (the crate docs say so).
#[tokio::test]
async fn status_documents() {
    for mode in IdMode::ALL {
        let store = store(mode).await;
        tracker(store.clone())
            .beam("orders", at(), &event())
            .await
            .unwrap();
        let data = doc! {
            "at": AT,
            "data": {"count": 1_i64, "amount": 12.5, "by": {"eu": 1_i64}},
        };
        let expected = match mode {
            IdMode::Full => doc! {"key": "orders", "data": data},
            IdMode::Partial => doc! {"key": "orders", "at": Bson::Null, "data": data},
            IdMode::Separated => doc! {
                "key": "orders", "granularity": Bson::Null, "at": Bson::Null, "data": data,
            },
        };
        assert_eq!(raw_documents(&store).await, vec![expected], "{mode}");
        let status = tracker(store.clone())
            .scan("orders")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status.at, status.values), (at(), event()), "{mode}");
        store.drop_collections().await.unwrap();
    }
}

// --- 2. Trifle's documents read back ------------------------------------------------------

/// The identifier fields of the `1h` bucket of `orders` starting at `start`, as both stores
/// write them.
fn orders_hour(mode: IdMode, start: i64) -> Document {
    match mode {
        IdMode::Full => doc! {"key": format!("orders::1h::{start}")},
        IdMode::Partial => doc! {"key": "orders::1h", "at": date(start)},
        IdMode::Separated => doc! {"key": "orders", "granularity": "1h", "at": date(start)},
    }
}

/// Trifle's `1h` document of the hour before [`HOUR`], after `track(..., values: {count: 4})`.
fn trifle_previous_hour(mode: IdMode) -> Document {
    let start = HOUR - 3600;
    let mut d = orders_hour(mode, start);
    d.insert("data", doc! {"count": 4_i32});
    d.insert("expire_at", date(start + KEEP));
    d
}

async fn trifle_layout_read_back(mode: IdMode) {
    let store = store(mode).await;
    let mut trifle = trifle_after_track(mode);
    trifle.push(trifle_previous_hour(mode));
    store
        .metrics_collection()
        .insert_many(trifle.clone())
        .await
        .unwrap();
    let tracker = tracker(store.clone());

    // Read back exactly, integers as integers.
    for g in [hour(), day()] {
        let series = tracker
            .values("orders", at(), at(), g, Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(series.values, vec![event()], "{mode} {g}");
        let v = &series.values[0];
        assert_eq!(v.number_at("count"), Some(Number::Int(1)), "{mode} {g}");
        assert_eq!(v.number_at("by.eu"), Some(Number::Int(1)), "{mode} {g}");
        assert_eq!(
            v.number_at("amount"),
            Some(Number::Float(12.5)),
            "{mode} {g}"
        );
        let system = tracker
            .system_values(at(), at(), g, Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            system.values,
            vec![values!({"count": 1, "keys": {"orders": 1}})],
            "{mode} {g}"
        );
    }
    // A range over two of Trifle's buckets, one read.
    let from = Timestamp::from_second(HOUR - 3600).unwrap();
    let hours = tracker
        .values("orders", from, at(), hour(), Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(hours.values, vec![values!({"count": 4}), event()], "{mode}");
    assert_eq!(
        tracker
            .total("orders", from, at(), hour(), "count")
            .await
            .unwrap(),
        Some(Number::Int(5))
    );

    // Tracked onto Trifle's documents: the same documents, summed.
    tracker
        .track(
            "orders",
            at(),
            &values!({"count": 2, "amount": 0.25, "by": {"eu": 1, "us": 3}}),
        )
        .await
        .unwrap();
    for g in [hour(), day()] {
        let series = tracker
            .values("orders", at(), at(), g, Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            series.values,
            vec![values!({"count": 3, "amount": 12.75, "by": {"eu": 2, "us": 3}})],
            "{mode} {g}"
        );
        let system = tracker
            .system_values(at(), at(), g, Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            system.values,
            vec![values!({"count": 2, "keys": {"orders": 2}})],
            "{mode} {g}"
        );
    }
    // No document was added beside Trifle's (the identifiers matched), and the sums are
    // integers of either width and a Double.
    let after = raw_documents(&store).await;
    assert_eq!(after.len(), trifle.len(), "{mode}: {after:?}");
    let stored = store
        .metrics_collection()
        .find_one(orders_hour(mode, HOUR))
        .await
        .unwrap()
        .expect("the 1h document of orders");
    let data = stored.get_document("data").unwrap();
    assert!(
        matches!(data.get("count"), Some(Bson::Int32(3) | Bson::Int64(3))),
        "{mode}: {data}"
    );
    assert_eq!(data.get("amount"), Some(&Bson::Double(12.75)), "{mode}");
    store.drop_collections().await.unwrap();
}

#[tokio::test]
async fn trifle_layout_read_back_full() {
    trifle_layout_read_back(IdMode::Full).await;
}

#[tokio::test]
async fn trifle_layout_read_back_partial() {
    trifle_layout_read_back(IdMode::Partial).await;
}

#[tokio::test]
async fn trifle_layout_read_back_separated() {
    trifle_layout_read_back(IdMode::Separated).await;
}

// --- 3. Layout-level checks ---------------------------------------------------------------

/// How many documents the metric collection holds.
async fn count(store: &MongoStore) -> u64 {
    store
        .metrics_collection()
        .count_documents(doc! {})
        .await
        .unwrap()
}

/// Whether the collection named `name` exists in the test database.
async fn collection_exists(store: &MongoStore, name: &str) -> bool {
    store
        .client()
        .database(common::DATABASE)
        .list_collection_names()
        .await
        .unwrap()
        .iter()
        .any(|n| n == name)
}

fn assert_invalid_name(result: stats_core::Result<()>, kind: NameKind, what: &str) {
    match result {
        Err(Error::InvalidName { kind: k, .. }) if k == kind => {}
        other => panic!("{what}: expected an invalid {kind} name, got {other:?}"),
    }
}

/// Every bad metric and field name the portable rule names is refused, through the tracker
/// and the store, before anything is sent: on a store that was never set up (whose first
/// write would otherwise fail for the missing index) the error is the name's, and the
/// collection is never created; on a set-up store the collection stays empty.
#[tokio::test]
async fn bad_names_are_refused_before_anything_is_sent() {
    for mode in IdMode::ALL {
        let config = common::config(mode).separator("#").unwrap();
        let name = config.collection_name().to_owned();
        let unset = Arc::new(MongoStore::connect(config.clone()).await.unwrap());
        let set_up =
            common::store_with(config.clone().collection(&format!("{name}_s")).unwrap()).await;
        for store in [&unset, &set_up] {
            let t = tracker(store.clone());
            let long = "m".repeat(201);
            for metric in ["$orders", "a\0b", long.as_str(), "a::b", "", SYSTEM_KEY] {
                let r = t.track(metric, at(), &event()).await;
                assert_invalid_name(r, NameKind::Metric, &format!("{mode} track {metric:?}"));
                let r = t
                    .values(metric, at(), at(), hour(), Blanks::Keep)
                    .await
                    .map(drop);
                assert_invalid_name(r, NameKind::Metric, &format!("{mode} values {metric:?}"));
            }
            // Bad field names cannot even be put into values, so they never reach a store.
            let long_field = format!(r#"{{"{}": 1}}"#, "f".repeat(201));
            for json in [
                r#"{"a.b": 1}"#,
                r#"{"$inc": 1}"#,
                r#"{"by": {"$eu": 1}}"#,
                r#"{"a\u0000": 1}"#,
                long_field.as_str(),
            ] {
                let r = Values::from_json(json).map(drop);
                assert_invalid_name(r, NameKind::Field, &format!("{mode} values {json}"));
            }
            let r = Fields::from_pairs([("by.e.u.$x", Number::Int(1))]).map(drop);
            assert!(matches!(r, Err(Error::InvalidName { .. })), "{r:?}");

            // The configured separator inside a metric key: refused in the joined modes,
            // where the key would not split back, accepted in separated mode.
            if mode == IdMode::Separated && Arc::ptr_eq(store, &unset) {
                continue;
            }
            let key = Key::bucket("a#b", hour(), HOUR).unwrap();
            let mut batch = Batch::new();
            batch.inc([key.clone()], &event()).unwrap();
            let tracked = t.track("a#b", at(), &event()).await;
            let applied = store.apply(&batch).await;
            let read = store.read(std::slice::from_ref(&key)).await.map(drop);
            let ranged = store.range("a#b", hour(), &[HOUR]).await.map(drop);
            let removed = store.remove_metric("a#b").await;
            if mode == IdMode::Separated {
                tracked.unwrap();
                applied.unwrap();
                read.unwrap();
                ranged.unwrap();
                assert_eq!(removed.unwrap(), 2, "{mode}: a#b's 1h and 1d buckets");
            } else {
                for (what, r) in [
                    ("track", tracked),
                    ("apply", applied),
                    ("read", read),
                    ("range", ranged),
                    ("remove_metric", removed.map(drop)),
                ] {
                    assert_invalid_name(r, NameKind::Metric, &format!("{mode} {what} a#b"));
                }
            }
        }
        assert!(
            !collection_exists(&unset, &name).await,
            "{mode}: refused calls created the collection"
        );
        if mode != IdMode::Separated {
            assert_eq!(count(&set_up).await, 0, "{mode}: refused calls wrote");
        }
        set_up.drop_collections().await.unwrap();
    }

    // Bad collection names are refused by the configuration, so no store uses them.
    let config = common::config(IdMode::Full);
    let long = "c".repeat(101);
    for bad in [
        "",
        "a$b",
        "a\0b",
        "system.stats",
        ".a",
        "a.",
        "a..b",
        "a b",
        long.as_str(),
    ] {
        for r in [
            config.clone().collection(bad),
            config.clone().counters_collection(bad),
            config.clone().throttles_collection(bad),
        ] {
            assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad:?}: {r:?}");
        }
    }
    let store = MongoStore::connect(config).await.unwrap();
    assert!(!collection_exists(&store, "a$b").await);
}

/// `setup()` twice on one store, then from eight stores at once: every call succeeds and the
/// indexes are there once.
#[tokio::test]
async fn setup_is_idempotent_and_concurrent() {
    for mode in IdMode::ALL {
        let config = common::config(mode).retention(retention());
        let store = MongoStore::connect(config.clone()).await.unwrap();
        store.setup().await.unwrap();
        store.setup().await.unwrap();
        let fresh = config
            .clone()
            .collection(&common::unique_collection("concurrent"))
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let config = fresh.clone();
            tasks.push(tokio::spawn(async move {
                let store = MongoStore::connect(config).await?;
                store.setup().await?;
                Ok::<_, Error>(store)
            }));
        }
        let mut stores = Vec::new();
        for task in tasks {
            stores.push(
                task.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{mode}: {e}")),
            );
        }
        let unique = match mode {
            IdMode::Full => "key_1",
            IdMode::Partial => "key_1_at_-1",
            IdMode::Separated => "key_1_granularity_1_at_-1",
        };
        for s in [&store, &stores[0]] {
            let mut names = s.metrics_collection().list_index_names().await.unwrap();
            names.sort();
            let mut want = vec!["_id_", "expire_at_1", unique];
            want.sort();
            assert_eq!(names, want, "{mode}");
        }
        // Eight stores writing the same event at once make one document per bucket.
        let writes = stores.iter().map(|s| {
            let t = tracker(Arc::new(s.clone()));
            async move { t.track("orders", at(), &event()).await }
        });
        for r in futures_util::future::join_all(writes).await {
            r.unwrap();
        }
        assert_eq!(count(&stores[0]).await, 4, "{mode}");
        let series = tracker(Arc::new(stores[0].clone()))
            .values("orders", at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            series.values,
            vec![values!({"count": 8, "amount": 100.0, "by": {"eu": 8}})]
        );
        store.drop_collections().await.unwrap();
        stores[0].drop_collections().await.unwrap();
    }
}

/// A write to a collection that was never set up fails with `InvalidInput` naming `setup`,
/// and writes nothing (the collection is not created); after `setup()` it works.
#[tokio::test]
async fn writes_before_setup_are_refused() {
    for mode in IdMode::ALL {
        let config = common::config(mode);
        let name = config.collection_name().to_owned();
        let store = Arc::new(MongoStore::connect(config).await.unwrap());
        let err = tracker(store.clone())
            .track("orders", at(), &event())
            .await
            .unwrap_err();
        match &err {
            Error::InvalidInput(message) => {
                assert!(message.contains("setup"), "{mode}: {message}")
            }
            other => panic!("{mode}: expected InvalidInput, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert!(!collection_exists(&store, &name).await, "{mode}");
        // A collection that exists without the index (made by someone else) is refused too.
        store
            .client()
            .database(common::DATABASE)
            .create_collection(&name)
            .await
            .unwrap();
        let err = tracker(store.clone())
            .track("orders", at(), &event())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("setup")),
            "{mode}: {err:?}"
        );
        assert_eq!(count(&store).await, 0, "{mode}");
        store.setup().await.unwrap();
        tracker(store.clone())
            .track("orders", at(), &event())
            .await
            .unwrap();
        assert_eq!(count(&store).await, 4, "{mode}");
        store.drop_collections().await.unwrap();
    }
}

/// A store of `first` on a fresh collection, set up, with two hours of `orders` tracked (in
/// `partial` two documents then share the key `orders::1h`), and a store of `second` on the
/// same collection, not set up.
async fn written_in_one_mode(first: IdMode, second: IdMode) -> (Arc<MongoStore>, Arc<MongoStore>) {
    let config = common::config(first);
    let a = common::store_with(config.clone()).await;
    let t = tracker(a.clone());
    t.track("orders", at(), &event()).await.unwrap();
    t.track(
        "orders",
        Timestamp::from_second(AT - 3600).unwrap(),
        &event(),
    )
    .await
    .unwrap();
    let b = MongoStore::connect(config.mode(second)).await.unwrap();
    (a, Arc::new(b))
}

/// The pairs of modes the two tests below try: every mode is set up second once, over a
/// collection of another mode.
const MODE_CHANGES: [(IdMode, IdMode); 3] = [
    (IdMode::Partial, IdMode::Full),
    (IdMode::Full, IdMode::Separated),
    (IdMode::Separated, IdMode::Partial),
];

/// `setup()` in another mode on a collection set up and written in one. Each mode's unique
/// index has a name of its own, so where the server takes the second index `setup()`
/// succeeds (the indexes coexist); where it reports a conflict (the `full` index `{key: 1}`
/// is unique, and `partial` documents share keys) the error must be clear: `InvalidInput`
/// naming the collection and the identifier mode, not a bare driver error.
#[tokio::test]
async fn setup_in_another_mode() {
    for (first, second) in MODE_CHANGES {
        let (a, b) = written_in_one_mode(first, second).await;
        if let Err(e) = b.setup().await {
            let name = b.config().collection_name();
            assert!(
                matches!(&e, Error::InvalidInput(m) if m.contains(name) && m.contains("mode")),
                "{first} then {second}: setup must say the collection is of another mode: {e:?}"
            );
        }
        a.drop_collections().await.unwrap();
    }
}

/// Writes in a second mode on a collection of another (after both setups succeeded, or with
/// only the first mode's index): they either work, or fail at once with an error that is not
/// retryable (repeating it cannot help) and points at the mode or at `setup`, and writes
/// nothing.
#[tokio::test]
async fn writes_in_another_mode() {
    for (first, second) in MODE_CHANGES {
        let (a, b) = written_in_one_mode(first, second).await;
        // Whether setup succeeds is the previous test's subject; the writes are this one's.
        let _ = b.setup().await;
        let before = count(&a).await;
        let r = tracker(b.clone()).track("orders", at(), &event()).await;
        if let Err(e) = &r {
            assert!(
                !e.is_retryable(),
                "{first} then {second}: a mode conflict must not look retryable: {e}"
            );
            let message = e.to_string();
            assert!(
                message.contains("mode") || message.contains("setup"),
                "{first} then {second}: the error must point at the mode: {message}"
            );
            assert_eq!(
                count(&a).await,
                before,
                "{first} then {second}: wrote a part"
            );
        }
        a.drop_collections().await.unwrap();
    }
}

/// A document whose `expire_at` has passed is not read (by `read`, `range` or the tracker),
/// even before the TTL monitor removes it.
#[tokio::test]
async fn expired_documents_are_not_read() {
    for mode in IdMode::ALL {
        let store = store(mode).await;
        let live = trifle_after_track(mode);
        let mut expired = trifle_previous_hour(mode);
        expired.insert(
            "expire_at",
            DateTime::from_millis(DateTime::now().timestamp_millis() - 1000),
        );
        store
            .metrics_collection()
            .insert_many(live.iter().cloned().chain([expired]))
            .await
            .unwrap();
        let previous = Key::bucket("orders", hour(), HOUR - 3600).unwrap();
        let current = previous.with_bucket(hour(), HOUR);
        let read = store.read(&[previous, current]).await.unwrap();
        assert_eq!(read, vec![Values::new(), event()], "{mode}");
        let ranged = store
            .range("orders", hour(), &[HOUR - 3600, HOUR])
            .await
            .unwrap();
        assert_eq!(ranged, vec![Values::new(), event()], "{mode}");
        let from = Timestamp::from_second(HOUR - 3600).unwrap();
        let series = tracker(store.clone())
            .values("orders", from, at(), hour(), Blanks::Skip)
            .await
            .unwrap();
        assert_eq!(series.values, vec![event()], "{mode}");
        store.drop_collections().await.unwrap();
    }
}

/// `w=0` in the URL is refused by `connect` (the Rust driver cannot do unacknowledged writes,
/// and a counting store must know its increments landed), as `Acknowledge::Nodes(0)` is.
#[tokio::test]
async fn unacknowledged_writes_are_refused() {
    let url = common::url();
    let joiner = if url.contains('?') { '&' } else { '?' };
    for w0 in [
        format!("{url}{joiner}w=0"),
        format!("{url}{joiner}w=0&journal=false"),
    ] {
        let config = MongoConfig::from_url(&w0)
            .unwrap()
            .database(common::DATABASE)
            .unwrap();
        let err = MongoStore::connect(config).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("w: 0")),
            "{w0}: {err:?}"
        );
    }
    let err = common::config(IdMode::Full)
        .write_concern(Acknowledge::Nodes(0), false)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

/// Majority acknowledgement with the journal works against the server: metric writes (the
/// raw `update` command carries the write concern) and counter writes (the driver's).
#[tokio::test]
async fn majority_with_journal() {
    for mode in IdMode::ALL {
        let config = common::config(mode)
            .write_concern(Acknowledge::Majority, true)
            .unwrap();
        let store = common::store_with(config).await;
        tracker(store.clone())
            .track("orders", at(), &event())
            .await
            .unwrap();
        let series = tracker(store.clone())
            .values("orders", at(), at(), day(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(series.values, vec![event()], "{mode}");
        assert_eq!(store.inc("ns", "k", 2, 0).await.unwrap(), 2);
        assert_eq!(store.get("ns", "k").await.unwrap(), Some(2));
        store.drop_collections().await.unwrap();
    }
}

// --- 4. Stored numbers of other types -----------------------------------------------------

/// A string, an array and a Decimal128 stored under `data` (by another program) make a read of
/// their document fail with `InvalidValue` naming the path, not a panic, and not a wrong
/// number; other documents of the same range stay readable on their own.
#[tokio::test]
async fn stored_values_of_other_types_are_refused_on_read() {
    let decimal: Decimal128 = "1.5".parse().unwrap();
    let bad = [
        ("by.eu", doc! {"count": 1_i32, "by": {"eu": "1"}}),
        ("list", doc! {"count": 1_i32, "list": [1_i32, 2_i32]}),
        ("by.dec", doc! {"by": {"dec": decimal}}),
    ];
    for mode in IdMode::ALL {
        let store = store(mode).await;
        let t = tracker(store.clone());
        // One bad document per hour, after a good one.
        let mut docs = vec![trifle_previous_hour(mode)];
        for (i, (_, data)) in bad.iter().enumerate() {
            let start = HOUR + 3600 * i as i64;
            let mut d = orders_hour(mode, start);
            d.insert("data", data.clone());
            docs.push(d);
        }
        store.metrics_collection().insert_many(docs).await.unwrap();
        let good = Key::bucket("orders", hour(), HOUR - 3600).unwrap();
        assert_eq!(
            store.read(std::slice::from_ref(&good)).await.unwrap(),
            vec![values!({"count": 4})],
            "{mode}"
        );
        for (i, (path, _)) in bad.iter().enumerate() {
            let start = HOUR + 3600 * i as i64;
            let key = good.with_bucket(hour(), start);
            let when = Timestamp::from_second(start).unwrap();
            let results = [
                (
                    "read",
                    store.read(std::slice::from_ref(&key)).await.map(drop),
                ),
                (
                    "range",
                    store.range("orders", hour(), &[start]).await.map(drop),
                ),
                (
                    "values",
                    t.values("orders", when, when, hour(), Blanks::Keep)
                        .await
                        .map(drop),
                ),
            ];
            for (what, r) in results {
                match r {
                    Err(Error::InvalidValue { path: Some(p), .. }) if p == *path => {}
                    other => panic!(
                        "{mode} {what} {path}: expected InvalidValue at {path}, got {other:?}"
                    ),
                }
            }
        }
        store.drop_collections().await.unwrap();
    }
}

/// Hostile URLs give typed errors from `from_url` or `connect`, never a panic, and a password
/// never shows in the message.
#[tokio::test]
async fn hostile_urls_are_refused_with_typed_errors() {
    let refused_by_from_url = ["", "   ", "mongodb://", "http://h", "mongodb:/h", "h:27017"];
    for url in refused_by_from_url {
        let err = MongoConfig::from_url(url).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{url:?}: {err:?}");
    }
    let refused_by_connect = [
        "mongodb://u:hunter2@h:99999/",
        "mongodb://u:hunter2@h:0/",
        "mongodb://u:hunter2@/",
        "mongodb://u:hunter2@h/?w=-1",
        "mongodb://u:hunter2@h/?connectTimeoutMS=abc",
        "mongodb://u:hunter2@h/?connectTimeoutMS=99999999999999999999",
        "mongodb://u:hunter2@h/?unknownOption=1&replicaSet=",
        "mongodb://u:hunter2@h/?authMechanism=NOPE",
        "mongodb://u:hunter2@h/?tls=maybe",
        "mongodb://u:hunter2@h/%00",
        "mongodb://u:hunter2@h,,/",
        "mongodb://u:hunter2@[::1/",
    ];
    for url in refused_by_connect {
        let Ok(config) = MongoConfig::from_url(url) else {
            continue;
        };
        let config = config.server_selection_timeout(Duration::from_millis(300));
        match MongoStore::connect(config).await {
            Ok(_) => panic!("{url:?} connected"),
            Err(err) => {
                assert!(
                    matches!(
                        err,
                        Error::InvalidInput(_) | Error::Unavailable { .. } | Error::Backend { .. }
                    ),
                    "{url:?}: {err:?}"
                );
                assert!(!err.to_string().contains("hunter2"), "{url:?}: {err}");
            }
        }
    }
}

// --- 5. Batch ids -------------------------------------------------------------------------

/// A batch id as the store records it: BSON binary of the generic subtype holding the id's 16
/// big-endian bytes.
fn stored_id(id: BatchId) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: id.to_bytes().to_vec(),
    })
}

/// The ids a raw document records, in order.
fn recorded_ids(d: &Document) -> Vec<Bson> {
    d.get_array("_b")
        .unwrap()
        .iter()
        .map(|e| e.as_document().unwrap().get("id").unwrap().clone())
        .collect()
}

/// The event at `orders`' `1h` and `1d` buckets, as one batch.
fn event_batch() -> Batch {
    let key = Key::bucket("orders", hour(), HOUR).unwrap();
    let mut batch = Batch::new();
    batch
        .inc([key.clone(), key.with_bucket(day(), DAY)], &event())
        .unwrap();
    batch
}

/// What a batch with an id writes: the documents of [`ours_after_track`] (without the system
/// index, which only the tracker writes) and `_b: [{id, at}]`, `at` being the client's clock
/// when it applied the batch. The documents a second apply of the same batch leaves exactly
/// as they were.
async fn golden_batch_id(mode: IdMode) {
    let store = store(mode).await;
    let id = BatchId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let batch = event_batch().with_id(id);
    let (before, _) = (DateTime::now(), store.apply(&batch).await.unwrap());
    let after = DateTime::now();
    let written = raw_documents(&store).await;
    let mut pinned = written.clone();
    for d in &mut pinned {
        let entry = d.get_array_mut("_b").unwrap()[0].as_document_mut().unwrap();
        let at = entry.get_datetime("at").unwrap();
        assert!(before <= *at && *at <= after, "{mode}: {d}");
        entry.insert("at", before);
    }
    let expected: Vec<Document> = ours_after_track(mode)
        .into_iter()
        .filter(|d| d.get_str("key").unwrap().starts_with("orders"))
        .map(|mut d| {
            d.insert(
                "_b",
                vec![Bson::Document(doc! {"id": stored_id(id), "at": before})],
            );
            d
        })
        .collect();
    assert_eq!(pinned, expected, "{mode}: the documents written");
    assert_eq!(
        recorded_ids(&written[0]),
        vec![Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                0x66, 0x77
            ],
        })],
        "{mode}: the id's bytes, big endian"
    );
    // Applied again: nothing changes, not even `_b`.
    store.apply(&batch).await.unwrap();
    assert_eq!(
        raw_documents(&store).await,
        written,
        "{mode}: applied twice"
    );
    // Reads show the values only.
    let keys = [
        Key::bucket("orders", hour(), HOUR).unwrap(),
        Key::bucket("orders", day(), DAY).unwrap(),
    ];
    assert_eq!(store.read(&keys).await.unwrap(), vec![event(), event()]);
    assert_eq!(
        store.range("orders", hour(), &[HOUR]).await.unwrap(),
        vec![event()]
    );
    // Another id is another batch: applied, and recorded after the first.
    let other = BatchId::from_u128(7);
    store.apply(&event_batch().with_id(other)).await.unwrap();
    let twice = values!({"count": 2, "amount": 25.0, "by": {"eu": 2}});
    assert_eq!(store.read(&keys).await.unwrap(), vec![twice.clone(), twice]);
    for d in raw_documents(&store).await {
        assert_eq!(
            recorded_ids(&d),
            vec![stored_id(id), stored_id(other)],
            "{mode}"
        );
    }
    store.drop_collections().await.unwrap();
}

#[tokio::test]
async fn golden_batch_id_full() {
    golden_batch_id(IdMode::Full).await;
}

#[tokio::test]
async fn golden_batch_id_partial() {
    golden_batch_id(IdMode::Partial).await;
}

#[tokio::test]
async fn golden_batch_id_separated() {
    golden_batch_id(IdMode::Separated).await;
}

/// A batch with an id applied by several tasks at once takes effect once, both when its
/// documents take one statement each (the upserts race to create them) and when a leaf has
/// updates that do not fold (two float increments: read, computed here, written
/// conditionally).
#[tokio::test]
async fn batch_ids_applied_at_once_count_once() {
    for mode in IdMode::ALL {
        let store = store(mode).await;
        let key = Key::bucket("orders", hour(), HOUR).unwrap();
        let mut single = Batch::new();
        single.inc([key.clone()], &values!({"n": 1})).unwrap();
        let mut multi = Batch::new();
        multi.inc([key.clone()], &values!({"f": 0.1})).unwrap();
        multi.inc([key.clone()], &values!({"f": 0.2})).unwrap();
        for batch in [single, multi] {
            let batch = batch.with_id(BatchId::new());
            let applies = (0..4).map(|_| {
                let (store, batch) = (store.clone(), batch.clone());
                tokio::spawn(async move { store.apply(&batch).await })
            });
            for outcome in futures_util::future::join_all(applies).await {
                outcome.unwrap().unwrap();
            }
            store.apply(&batch).await.unwrap();
        }
        let read = store.read(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(read, vec![values!({"n": 1, "f": 0.1 + 0.2})], "{mode}");
        let raw = raw_documents(&store).await;
        assert_eq!(recorded_ids(&raw[0]).len(), 2, "{mode}: {}", raw[0]);
        store.drop_collections().await.unwrap();
    }
}

/// Ids older than the window (and the clock-skew margin of an hour) leave a document when a
/// later batch with an id prunes it (one batch in eight does); younger ones stay and still
/// make a retry apply nothing. A retry of a pruned id applies again: the window's bound.
#[tokio::test]
async fn batch_ids_older_than_the_window_are_pruned() {
    for mode in IdMode::ALL {
        let store = store(mode).await;
        let key = Key::bucket("orders", hour(), HOUR).unwrap();
        let inc = || {
            let mut batch = Batch::new();
            batch.inc([key.clone()], &values!({"n": 1})).unwrap();
            batch
        };
        store.apply(&inc()).await.unwrap();
        let (stale, young) = (
            BatchId::from_u128(u128::MAX),
            BatchId::from_u128(u128::MAX - 1),
        );
        let ago = |d: Duration| {
            DateTime::from_millis(DateTime::now().timestamp_millis() - d.as_millis() as i64)
        };
        let window = BATCH_ID_WINDOW;
        store
            .metrics_collection()
            .update_one(
                doc! {},
                doc! {"$set": {"_b": [
                    {"id": stored_id(stale), "at": ago(window + Duration::from_secs(2 * 3600))},
                    {"id": stored_id(young), "at": ago(window - Duration::from_secs(3600))},
                ]}},
            )
            .await
            .unwrap();
        let mut pruned_after = None;
        for n in 1..=200_u128 {
            store
                .apply(&inc().with_id(BatchId::from_u128(n)))
                .await
                .unwrap();
            let ids = recorded_ids(&raw_documents(&store).await[0]);
            let mut expected: Vec<Bson> =
                (1..=n).map(|i| stored_id(BatchId::from_u128(i))).collect();
            expected.insert(0, stored_id(young));
            if ids[0] == stored_id(stale) {
                assert_eq!(ids[1..], expected, "{mode}: after {n} batches");
            } else {
                assert_eq!(ids, expected, "{mode}: pruned after {n} batches");
                pruned_after = Some(n);
                break;
            }
        }
        let n = pruned_after.unwrap_or_else(|| panic!("{mode}: 200 batches pruned nothing"));
        let count = |values: Vec<Values>| values[0].number_at("n");
        let read = || store.read(std::slice::from_ref(&key));
        assert_eq!(
            count(read().await.unwrap()),
            Some(Number::Int(1 + n as i64))
        );
        // A retry within the window applies nothing; one after it applies again.
        store.apply(&inc().with_id(young)).await.unwrap();
        assert_eq!(
            count(read().await.unwrap()),
            Some(Number::Int(1 + n as i64)),
            "{mode}"
        );
        store.apply(&inc().with_id(stale)).await.unwrap();
        assert_eq!(
            count(read().await.unwrap()),
            Some(Number::Int(2 + n as i64)),
            "{mode}"
        );
        store.drop_collections().await.unwrap();
    }
}

/// A document whose `_b` is not an array (written by something else) refuses a batch with an
/// id with a typed error naming `_b` and the key, and writes nothing of it; a batch without an
/// id does not touch `_b` and applies.
#[tokio::test]
async fn batch_ids_over_a_foreign_field_are_refused() {
    for mode in IdMode::ALL {
        let store = store(mode).await;
        let key = Key::bucket("orders", hour(), HOUR).unwrap();
        let mut single = Batch::new();
        single.inc([key.clone()], &values!({"n": 1})).unwrap();
        store.apply(&single).await.unwrap();
        store
            .metrics_collection()
            .update_one(doc! {}, doc! {"$set": {"_b": "not ids"}})
            .await
            .unwrap();
        let mut multi = Batch::new();
        multi.inc([key.clone()], &values!({"f": 0.1})).unwrap();
        multi.inc([key.clone()], &values!({"f": 0.2})).unwrap();
        for batch in [single.clone(), multi] {
            let err = store
                .apply(&batch.with_id(BatchId::new()))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::InvalidValue { path: Some(p), .. } if p == "_b")
                    && err.to_string().contains("orders"),
                "{mode}: {err:?}"
            );
        }
        store.apply(&single).await.unwrap();
        assert_eq!(
            store.read(std::slice::from_ref(&key)).await.unwrap(),
            vec![values!({"n": 2})],
            "{mode}"
        );
        store.drop_collections().await.unwrap();
    }
}

/// With `record_batch_ids(false)` the store says it is not idempotent, ignores ids (a batch
/// applied twice with one id counts twice, the conformance check in its other branch) and
/// writes no `_b`.
#[tokio::test]
async fn batch_ids_can_be_turned_off() {
    for mode in IdMode::ALL {
        let store = common::store_with(common::config(mode).record_batch_ids(false)).await;
        assert!(!store.capabilities().idempotent_batch, "{mode}");
        stats_core::testkit::metric_checks::metric_batch_id_applies_once(store.clone()).await;
        store
            .apply(&event_batch().with_id(BatchId::new()))
            .await
            .unwrap();
        for d in raw_documents(&store).await {
            assert!(!d.contains_key("_b"), "{mode}: {d}");
        }
        store.drop_collections().await.unwrap();
    }
}
