//! The Trifle layout ([`Layout::Trifle`]) against one Redis server (`STATS_TEST_REDIS_URL`).
//!
//! 1. Golden hashes: the exact keys and `HGETALL` maps one `Tracker::track` (and `assert`)
//!    writes, beside what Trifle 2.6's Redis driver (`Trifle::Stats::Driver::Redis`, gem
//!    `trifle-stats`) writes for the same call, from its source (`driver/redis.rb`,
//!    `nocturnal/key.rb`, `mixins/packer.rb`): for `Trifle::Stats.track(key: 'orders', at: t,
//!    values: {count: 1, by: {eu: 1}})` with granularities `1h` and `1d`, per granularity
//!    `HINCRBY trfl::orders::<g>::<start> count 1`, `HINCRBY ... by.eu 1`, then (system
//!    tracking, the default) `HINCRBY trfl::__system__key__::<g>::<start> count 1` and
//!    `... keys.orders 1`; `assert` sends `HMSET` with Ruby's `to_s` of each value instead of
//!    the first `HINCRBY`s.
//! 2. Hashes written raw with exactly those commands (as a Trifle application would) read back
//!    by `Tracker::values` and `system_values`, and tracked onto.
//! 3. Hostile stored text refused on read with the path named; the numbers at their edges.
//! 4. The conformance suite in this layout: every check that applies; the ones that cannot
//!    hold are listed at the end with the reason.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use redis::AsyncCommands;
use stats_backend_redis::{Layout, RedisConfig, RedisStore, TRIFLE_KEY_PREFIX};
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{Batch, Error, Key, MetricStore, Number, Store, values};

const VAR: &str = "STATS_TEST_REDIS_URL";

/// The instant of the tracked event: 2023-11-14T22:13:20Z.
const AT: i64 = 1_700_000_000;
/// The start of its `1h` bucket.
const HOUR: i64 = 1_699_999_200;
/// The start of its `1d` bucket (UTC).
const DAY: i64 = 1_699_920_000;

fn at() -> Timestamp {
    Timestamp::from_second(AT).unwrap()
}

/// A Trifle-layout store under a key prefix no other run uses.
async fn store() -> Arc<RedisStore> {
    let config = RedisConfig::from_url(&common::url(VAR))
        .unwrap()
        .layout(Layout::Trifle)
        .key_prefix(&stats_core::testkit::unique("trfl"))
        .unwrap();
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(common::url(VAR))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `1h` and `1d` buckets in UTC, with the system index (Trifle's `system_tracking`).
fn tracker(store: Arc<RedisStore>) -> Tracker {
    let config = Config::new()
        .granularities(["1h", "1d"])
        .unwrap()
        .system_index(true);
    Tracker::new(store, config)
}

type Hashes = BTreeMap<String, BTreeMap<String, String>>;

/// Every key under the store's prefix with its `HGETALL`; a key that is not a hash maps to
/// `{"(type)": <its type>}`.
async fn dump(store: &RedisStore) -> Hashes {
    let mut conn = raw().await;
    let pattern = format!("{}::*", store.key_prefix());
    let keys: Vec<String> = conn.keys(pattern).await.unwrap();
    let mut out = Hashes::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let hash: BTreeMap<String, String> = if kind == "hash" {
            conn.hgetall(&key).await.unwrap()
        } else {
            hash(&[("(type)", &kind)])
        };
        out.insert(key, hash);
    }
    out
}

fn hash(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The hashes Trifle's driver leaves after `track(orders, {count: 1, by: {eu: 1}})` with
/// `1h`, `1d` and system tracking, under `prefix`, times `n` calls.
fn trifle_after_track(prefix: &str, n: u32) -> Hashes {
    let n = n.to_string();
    let data = hash(&[("count", &n), ("by.eu", &n)]);
    let system = hash(&[("count", &n), ("keys.orders", &n)]);
    [
        (format!("{prefix}::orders::1h::{HOUR}"), data.clone()),
        (format!("{prefix}::orders::1d::{DAY}"), data),
        (
            format!("{prefix}::__system__key__::1h::{HOUR}"),
            system.clone(),
        ),
        (format!("{prefix}::__system__key__::1d::{DAY}"), system),
    ]
    .into_iter()
    .collect()
}

/// Sends exactly the commands Trifle 2.6's driver sends for `track` (`HINCRBY` per packed
/// field, then the system key's two `HINCRBY`s), per granularity.
async fn trifle_track(prefix: &str, key: &str, fields: &[(&str, i64)]) {
    let mut conn = raw().await;
    for (g, start) in [("1h", HOUR), ("1d", DAY)] {
        let pkey = format!("{prefix}::{key}::{g}::{start}");
        for (field, value) in fields {
            let _: i64 = conn.hincr(&pkey, *field, *value).await.unwrap();
        }
        let skey = format!("{prefix}::__system__key__::{g}::{start}");
        let _: i64 = conn.hincr(&skey, "count", 1).await.unwrap();
        let _: i64 = conn.hincr(&skey, format!("keys.{key}"), 1).await.unwrap();
    }
}

#[tokio::test]
async fn one_track_writes_what_trifle_writes() {
    let s = store().await;
    let t = tracker(s.clone());
    t.track("orders", at(), &values!({"count": 1, "by": {"eu": 1}}))
        .await
        .unwrap();
    assert_eq!(dump(&s).await, trifle_after_track(s.key_prefix(), 1));

    // The same call by Trifle on another prefix leaves the same hashes.
    let other = store().await;
    trifle_track(other.key_prefix(), "orders", &[("count", 1), ("by.eu", 1)]).await;
    assert_eq!(
        dump(&other).await,
        trifle_after_track(other.key_prefix(), 1)
    );

    // A second track on each: both at 2, still identical.
    t.track("orders", at(), &values!({"count": 1, "by": {"eu": 1}}))
        .await
        .unwrap();
    trifle_track(other.key_prefix(), "orders", &[("count", 1), ("by.eu", 1)]).await;
    assert_eq!(dump(&s).await, trifle_after_track(s.key_prefix(), 2));
    assert_eq!(
        dump(&other).await,
        trifle_after_track(other.key_prefix(), 2)
    );
}

#[test]
fn the_default_prefix_is_trifles() {
    let config = RedisConfig::single("redis://127.0.0.1:1/").layout(Layout::Trifle);
    assert_eq!(config.key_prefix_value(), TRIFLE_KEY_PREFIX);
    assert_eq!(TRIFLE_KEY_PREFIX, "trfl");
}

/// `assert` writes every value as Trifle's `HMSET` does: Ruby's `to_s` of each number.
#[tokio::test]
async fn one_assert_writes_rubys_spelling_of_each_number() {
    let s = store().await;
    let t = tracker(s.clone());
    let doc = values!({
        "amount": 12.5, "whole": 3.0, "big": 1e20, "e15": 1e15, "e14": 1e14, "e16": 1e16,
        "small": 1e-5, "e4": 1e-4, "negzero": -0.0, "third": 0.1, "n": 7, "min": i64::MIN,
        "by": {"eu": -1.5e-7}
    });
    t.assert("orders", at(), &doc).await.unwrap();
    let expected_data = hash(&[
        ("amount", "12.5"),
        ("whole", "3.0"),
        ("big", "1.0e+20"),
        ("e15", "1.0e+15"),
        ("e14", "100000000000000.0"),
        ("e16", "1.0e+16"),
        ("small", "1.0e-05"),
        ("e4", "0.0001"),
        // Ruby would write "-0.0" for -0.0; the core turns every -0.0 into 0.0 before a
        // store sees it (see `Number::float`).
        ("negzero", "0.0"),
        ("third", "0.1"),
        ("n", "7"),
        ("min", "-9223372036854775808"),
        ("by.eu", "-1.5e-07"),
    ]);
    let p = s.key_prefix();
    let system = hash(&[("count", "1"), ("keys.orders", "1")]);
    let expected: Hashes = [
        (format!("{p}::orders::1h::{HOUR}"), expected_data.clone()),
        (format!("{p}::orders::1d::{DAY}"), expected_data),
        (format!("{p}::__system__key__::1h::{HOUR}"), system.clone()),
        (format!("{p}::__system__key__::1d::{DAY}"), system),
    ]
    .into_iter()
    .collect();
    assert_eq!(dump(&s).await, expected);
    // And it reads back to the same numbers, kinds included.
    let read = t
        .values("orders", at(), at(), "1h".parse().unwrap(), Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(read.values, vec![doc]);
}

/// Float sums computed in the script are spelled as Ruby spells the sum, at the edges of
/// Ruby's fixed and exponent forms.
#[tokio::test]
async fn float_sums_are_spelled_as_ruby_spells_them() {
    let s = store().await;
    let key = Key::bucket("sums", "1h".parse().unwrap(), HOUR).unwrap();
    for doc in [
        values!({"a": 0.1, "b": 5e15, "c": 1e-5, "d": 1.5, "e": 1e14, "f": -0.5, "g": 1}),
        values!({"a": 0.2, "b": 5e15, "c": 1e-5, "d": 1.5, "e": 1e14, "f": 0.5, "g": 0.5}),
    ] {
        let mut batch = Batch::new();
        batch.inc([key.clone()], &doc).unwrap();
        s.apply(&batch).await.unwrap();
    }
    let stored: BTreeMap<String, String> = raw().await.hgetall(s.bucket_key(&key)).await.unwrap();
    assert_eq!(
        stored,
        hash(&[
            ("a", "0.30000000000000004"),
            ("b", "1.0e+16"),
            ("c", "2.0e-05"),
            ("d", "3.0"),
            ("e", "200000000000000.0"),
            ("f", "0.0"),
            ("g", "1.5"),
        ])
    );
    let read = s.read(&[key]).await.unwrap();
    assert_eq!(
        read,
        vec![values!({
            "a": 0.1 + 0.2, "b": 1e16, "c": 2e-5, "d": 3.0, "e": 2e14, "f": 0.0, "g": 1.5
        })]
    );
}

/// Hashes written with Trifle's own commands read back through the tracker, and a track on top
/// adds to them.
#[tokio::test]
async fn trifles_hashes_read_back_through_values() {
    let s = store().await;
    let p = s.key_prefix().to_owned();
    trifle_track(&p, "orders", &[("count", 3), ("by.eu", 2), ("by.us", 1)]).await;
    trifle_track(&p, "orders", &[("count", 1)]).await;
    // Trifle's `assert` (HMSET with Ruby's `to_s`) of floats in the hour bucket.
    let mut conn = raw().await;
    let hour_key = format!("{p}::orders::1h::{HOUR}");
    let _: () = conn
        .hset_multiple(
            &hour_key,
            &[("amount", "12.5"), ("big", "1.0e+20"), ("tiny", "1.0e-05")],
        )
        .await
        .unwrap();
    let t = tracker(s.clone());
    let hour = "1h".parse().unwrap();
    let from = Timestamp::from_second(HOUR - 3600).unwrap();
    let series = t
        .values("orders", from, at(), hour, Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(series.len(), 2, "the blank bucket before and the hour");
    assert_eq!(series.values[0], values!({}));
    assert_eq!(
        series.values[1],
        values!({"count": 4, "by": {"eu": 2, "us": 1}, "amount": 12.5, "big": 1e20, "tiny": 1e-5})
    );
    let day = t
        .values("orders", at(), at(), "1d".parse().unwrap(), Blanks::Skip)
        .await
        .unwrap();
    assert_eq!(
        day.values,
        vec![values!({"count": 4, "by": {"eu": 2, "us": 1}})]
    );
    let system = t
        .system_values(at(), at(), hour, Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(
        system.values,
        vec![values!({"count": 2, "keys": {"orders": 2}})]
    );
    assert_eq!(
        t.total("orders", from, at(), hour, "count").await.unwrap(),
        Some(Number::Int(4))
    );

    // A track from this side adds to Trifle's counts, the system index included.
    t.track(
        "orders",
        at(),
        &values!({"count": 1, "amount": 0.25, "by": {"eu": 1}}),
    )
    .await
    .unwrap();
    let stored: BTreeMap<String, String> = conn.hgetall(&hour_key).await.unwrap();
    assert_eq!(
        stored,
        hash(&[
            ("count", "5"),
            ("by.eu", "3"),
            ("by.us", "1"),
            ("amount", "12.75"),
            ("big", "1.0e+20"),
            ("tiny", "1.0e-05"),
        ])
    );
    let skey = format!("{p}::__system__key__::1h::{HOUR}");
    let system: BTreeMap<String, String> = conn.hgetall(&skey).await.unwrap();
    assert_eq!(system, hash(&[("count", "3"), ("keys.orders", "3")]));
}

/// Trifle's driver increments floats with `HINCRBY`, which Redis refuses: a Trifle
/// application cannot `track` a float on Redis (the claim in the crate docs).
#[tokio::test]
async fn redis_refuses_trifles_hincrby_of_a_float() {
    let s = store().await;
    let mut conn = raw().await;
    let key = format!("{}::orders::1h::{HOUR}", s.key_prefix());
    let err = redis::cmd("HINCRBY")
        .arg(&key)
        .arg("amount")
        .arg("12.5")
        .query_async::<i64>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
}

/// What Redis's own float increment leaves (`HINCRBYFLOAT`: no exponent, no `.0`) reads back:
/// a whole float as an integer (the documented loss), beyond `i64` as a float.
#[tokio::test]
async fn hincrbyfloat_text_reads_back_with_the_documented_loss() {
    let s = store().await;
    let key = Key::bucket("f", "1h".parse().unwrap(), HOUR).unwrap();
    let name = s.bucket_key(&key);
    let mut conn = raw().await;
    for (field, by) in [("whole", 1.5), ("whole", 1.5), ("half", 2.5), ("big", 1e20)] {
        let _: String = redis::cmd("HINCRBYFLOAT")
            .arg(&name)
            .arg(field)
            .arg(by)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let stored: BTreeMap<String, String> = conn.hgetall(&name).await.unwrap();
    assert_eq!(
        stored,
        hash(&[
            ("whole", "3"),
            ("half", "2.5"),
            ("big", "100000000000000000000")
        ])
    );
    assert_eq!(
        s.read(std::slice::from_ref(&key)).await.unwrap(),
        vec![values!({"whole": 3, "half": 2.5, "big": 1e20})]
    );
    // An integer increment of the integer beyond i64 is refused as overflow, nothing written.
    let mut batch = Batch::new();
    batch
        .inc([key.clone()], &values!({"big": 1, "half": 1}))
        .unwrap();
    let err = s.apply(&batch).await.unwrap_err();
    assert!(
        matches!(&err, Error::Overflow { path: Some(p), .. } if p == "big"),
        "{err}"
    );
    let after: BTreeMap<String, String> = conn.hgetall(&name).await.unwrap();
    assert_eq!(after, stored);
}

/// Stored text at the edges: what reads, and what is refused naming the key and field.
#[tokio::test]
async fn stored_text_at_the_edges() {
    let s = store().await;
    let key = Key::bucket("edge", "1h".parse().unwrap(), HOUR).unwrap();
    let name = s.bucket_key(&key);
    let mut conn = raw().await;
    let good: [(&str, Number); 8] = [
        ("max", Number::Int(i64::MAX)),
        ("min", Number::Int(i64::MIN)),
        ("past", Number::Float(9_223_372_036_854_775_808.0)),
        // Ruby's -0.0 reads as 0.0, as the core normalises every float.
        ("negzero", Number::Float(0.0)),
        ("zero", Number::Int(0)),
        ("p53", Number::Int(1 << 53)),
        ("tiny", Number::Float(5e-324)),
        ("huge", Number::Float(f64::MAX)),
    ];
    let texts = [
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-0.0",
        "-0",
        "9007199254740992",
        "5.0e-324",
        "1.7976931348623157e+308",
    ];
    for ((field, _), text) in good.iter().zip(texts) {
        let _: () = conn.hset(&name, *field, text).await.unwrap();
    }
    let read = s.read(std::slice::from_ref(&key)).await.unwrap();
    for (field, n) in &good {
        let got = read[0].number_at(field).unwrap();
        let same = match (got, *n) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        };
        assert!(same, "{field}: read {got:?}, expected {n:?}");
    }
    for bad in [
        "abc",
        "Infinity",
        "-Infinity",
        "NaN",
        "1e400",
        "",
        " 1",
        "0x10",
        "inf",
    ] {
        let bad_key = Key::bucket("edge", "1h".parse().unwrap(), HOUR + 3600).unwrap();
        let bad_name = s.bucket_key(&bad_key);
        let _: () = conn.hset(&bad_name, "by.x", bad).await.unwrap();
        let err = s.read(&[bad_key]).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidValue { path: Some(p), reason } if p == "by.x" && reason.contains(&bad_name)),
            "{bad:?}: {err}"
        );
    }
}

/// A conflict another writer stored (`a` a number and `a.b`, which Trifle's unpacking merges
/// in hash order) fails the read naming the key, instead of dropping a value.
#[tokio::test]
async fn a_stored_path_conflict_fails_the_read() {
    let s = store().await;
    let key = Key::bucket("c", "1h".parse().unwrap(), HOUR).unwrap();
    let name = s.bucket_key(&key);
    let _: () = raw()
        .await
        .hset_multiple(&name, &[("a", "1"), ("a.b", "2")])
        .await
        .unwrap();
    let err = s.read(&[key]).await.unwrap_err();
    assert!(
        matches!(&err, Error::PathConflict { key, .. } if key == &name),
        "{err}"
    );
}

/// Our writes stay free of path conflicts without markers: the script checks a new leaf
/// against the bucket's field names, including those Trifle wrote.
#[tokio::test]
async fn path_conflicts_with_trifles_fields_are_refused() {
    let s = store().await;
    let p = s.key_prefix().to_owned();
    trifle_track(&p, "orders", &[("by.eu", 1), ("count", 1)]).await;
    let t = tracker(s.clone());
    let before = dump(&s).await;
    for doc in [
        values!({"by": 1}),
        values!({"count": {"x": 1}}),
        values!({"new": 1, "by": 2}),
    ] {
        let err = t.track("orders", at(), &doc).await.unwrap_err();
        assert!(matches!(err, Error::PathConflict { .. }), "{doc}: {err}");
        assert_eq!(dump(&s).await, before, "{doc}: nothing written");
    }
    // No marker fields are stored by a successful write either.
    t.track("orders", at(), &values!({"by": {"us": {"ny": 1}}}))
        .await
        .unwrap();
    let stored = dump(&s).await;
    let hour = &stored[&format!("{p}::orders::1h::{HOUR}")];
    assert_eq!(
        hour,
        &hash(&[("by.eu", "1"), ("count", "1"), ("by.us.ny", "1")])
    );
}

/// The system index names each metric as Trifle does: as it is, a `.` in it nesting.
#[tokio::test]
async fn the_system_index_names_metrics_as_trifle_does() {
    let s = store().await;
    let t = tracker(s.clone());
    for key in ["a.b", "50%", "plain"] {
        t.track(key, at(), &values!({"n": 1})).await.unwrap();
    }
    let skey = format!("{}::__system__key__::1h::{HOUR}", s.key_prefix());
    let system: BTreeMap<String, String> = raw().await.hgetall(&skey).await.unwrap();
    assert_eq!(
        system,
        hash(&[
            ("count", "3"),
            ("keys.a.b", "1"),
            ("keys.50%", "1"),
            ("keys.plain", "1"),
        ])
    );
    let read = t
        .system_values(at(), at(), "1h".parse().unwrap(), Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(
        read.values,
        vec![values!({"count": 3, "keys": {"a": {"b": 1}, "50%": 1, "plain": 1}})]
    );
}

#[tokio::test]
async fn capabilities_are_ours_on_one_server() {
    let s = store().await;
    let caps = s.capabilities();
    assert!(caps.atomic_batch && caps.idempotent_batch && caps.floats && caps.max_min);
    assert_eq!(s.layout(), Layout::Trifle);
}

/// The batch id lives in its own key, which Trifle never reads: a retried batch applies once
/// and the buckets hold only Trifle's fields.
#[tokio::test]
async fn a_batch_id_is_invisible_in_trifles_hashes() {
    let s = store().await;
    let t = tracker(s.clone());
    let mut batch = Batch::new().with_id(stats_core::BatchId::new());
    t.add_to_batch(
        &mut batch,
        stats_core::Op::Inc,
        "orders",
        at(),
        &values!({"count": 1, "by": {"eu": 1}}),
    )
    .unwrap();
    s.apply(&batch).await.unwrap();
    s.apply(&batch).await.unwrap();
    let mut stored = dump(&s).await;
    let ids: Vec<String> = stored
        .keys()
        .filter(|k| k.contains("::b::{"))
        .cloned()
        .collect();
    assert_eq!(ids.len(), 1, "one id key: {ids:?}");
    assert_eq!(stored.remove(&ids[0]), Some(hash(&[("(type)", "string")])));
    assert_eq!(stored, trifle_after_track(s.key_prefix(), 1));
}

// The conformance suite in the Trifle layout. Every check applies except:
// - `tracker_system_index`: it expects the tracker's escaped field `keys.a%2Eb` for the metric
//   `a.b`; this layout writes Trifle's `keys.a.b` (nested), checked by
//   `the_system_index_names_metrics_as_trifle_does` above.
stats_core::metric_store_tests!(store);
stats_core::counter_store_tests!(store);
stats_core::throttle_store_tests!(store);
stats_core::__testkit_cases!(
    store,
    stats_core::testkit::tracker_checks,
    [
        tracker_track_fans_out,
        tracker_assert_overwrites,
        tracker_max_min,
        tracker_blanks,
        tracker_beam_and_scan,
        tracker_values_across_dst,
        tracker_bad_input_writes_nothing,
        tracker_reserved_names_and_conveniences,
    ]
);
