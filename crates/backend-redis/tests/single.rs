//! The conformance suite and the tracker checks against one Redis server
//! (`STATS_TEST_REDIS_URL`).

mod common;
mod script;

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use stats_backend_redis::{RedisConfig, RedisStore};
use stats_core::{Batch, CounterStore, Key, MetricStore, values};

const VAR: &str = "STATS_TEST_REDIS_URL";

async fn store() -> Arc<RedisStore> {
    common::store(VAR).await
}

stats_core::metric_store_tests!(store);
stats_core::counter_store_tests!(store);
stats_core::throttle_store_tests!(store);
stats_core::tracker_tests!(store);

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(common::url(VAR))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Timeouts a driver cannot take (its deadline arithmetic would overflow) are refused before
/// any connection is tried (the URL names no server).
#[tokio::test]
async fn hostile_timeouts_are_refused_before_connecting() {
    let base = || RedisConfig::single("redis://127.0.0.1:1/");
    for (config, needle) in [
        (
            base().connection_timeout(Duration::MAX),
            "connection_timeout",
        ),
        (base().response_timeout(Duration::MAX), "response_timeout"),
        (base().response_timeout(Duration::ZERO), "response_timeout"),
    ] {
        let err = RedisStore::connect(config).await.expect_err("refused");
        assert!(
            matches!(&err, stats_core::Error::InvalidInput(m) if m.contains(needle)),
            "{err}"
        );
    }
}

#[tokio::test]
async fn capabilities_say_single_node_batches_are_atomic() {
    let caps = stats_core::Store::capabilities(&*store().await);
    assert!(caps.atomic_batch && caps.floats && caps.max_min && caps.ttl && !caps.cluster);
}

#[tokio::test]
async fn layout_is_as_documented() {
    let s = store().await;
    let prefix = s.key_prefix();
    let key = Key::bucket("orders", "1h".parse().unwrap(), 3600).unwrap();
    let mut batch = Batch::new();
    batch
        .inc([key.clone()], &values!({"count": 2, "by": {"eu": 1.5}}))
        .unwrap();
    s.apply(&batch).await.unwrap();
    s.inc("jobs", "done", 3, 0).await.unwrap();
    let mut conn = raw().await;
    let bucket: Vec<(String, String)> = conn
        .hgetall(format!("{prefix}::m::{{orders}}::1h::3600"))
        .await
        .unwrap();
    let mut bucket = bucket;
    bucket.sort();
    assert_eq!(
        bucket,
        [
            ("by.".to_owned(), "1".to_owned()),
            ("by.eu".to_owned(), "1.5".to_owned()),
            ("count".to_owned(), "2".to_owned())
        ]
    );
    let jobs: Option<String> = conn
        .hget(format!("{prefix}::c::{{jobs}}"), "done")
        .await
        .unwrap();
    assert_eq!(jobs.as_deref(), Some("3"));
    let namespaces: Vec<String> = conn
        .smembers(format!("{prefix}::c::namespaces"))
        .await
        .unwrap();
    assert_eq!(namespaces, ["jobs"]);
}

#[tokio::test]
async fn a_float_leaf_stays_a_float_even_when_whole() {
    let s = store().await;
    let key = Key::bucket("f", "1h".parse().unwrap(), 0).unwrap();
    for v in [values!({"x": 1.5}), values!({"x": 1.5}), values!({"x": 1})] {
        let mut batch = Batch::new();
        batch.inc([key.clone()], &v).unwrap();
        s.apply(&batch).await.unwrap();
    }
    assert_eq!(s.read(&[key]).await.unwrap(), vec![values!({"x": 4.0})]);
}

#[tokio::test]
async fn expiry_is_set_with_the_write() {
    let hour = "1h".parse().unwrap();
    let config = RedisConfig::from_url(&common::url(VAR))
        .unwrap()
        .key_prefix(&stats_core::testkit::unique("redis"))
        .unwrap()
        .expire(hour, Duration::from_secs(2 * 86_400))
        .unwrap();
    let s = RedisStore::connect(config).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now - now % 3600;
    let key = Key::bucket("ttl", hour, start).unwrap();
    let day = Key::bucket("ttl", "1d".parse().unwrap(), now - now % 86_400).unwrap();
    let mut batch = Batch::new();
    batch
        .inc([key.clone(), day.clone()], &values!({"n": 1}))
        .unwrap();
    s.apply(&batch).await.unwrap();
    let mut conn = raw().await;
    let ttl: i64 = conn.ttl(s.bucket_key(&key)).await.unwrap();
    let expected = start + 2 * 86_400 - now;
    assert!(
        (expected - 5..=expected + 1).contains(&ttl),
        "ttl {ttl}, expected about {expected}"
    );
    let day_ttl: i64 = conn.ttl(s.bucket_key(&day)).await.unwrap();
    assert_eq!(
        day_ttl, -1,
        "granularities without a retention do not expire"
    );
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let s = store().await;
    s.inc("flush", "a", 1, 0).await.unwrap();
    let key = Key::bucket("flush", "1h".parse().unwrap(), 0).unwrap();
    let mut batch = Batch::new();
    batch.inc([key.clone()], &values!({"n": 1})).unwrap();
    s.apply(&batch).await.unwrap();
    let mut conn = raw().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(s.inc("flush", "a", 1, 0).await.unwrap(), 2);
    s.apply(&batch).await.unwrap();
    assert_eq!(s.read(&[key]).await.unwrap(), vec![values!({"n": 2})]);
}

#[tokio::test]
async fn names_that_would_break_the_layout_are_refused_before_sending() {
    let s = store().await;
    for bad in ["{x}", "a::b", "x}", ":x"] {
        assert!(s.inc(bad, "k", 1, 0).await.is_err(), "namespace {bad:?}");
        assert!(s.inc("ns", bad, 1, 0).await.is_err(), "key {bad:?}");
        assert!(
            Key::bucket(bad, "1h".parse().unwrap(), 0).is_err(),
            "metric {bad:?}"
        );
    }
    assert!(RedisConfig::single("redis://x").key_prefix("{p}").is_err());
    let mut conn = raw().await;
    let keys: Vec<String> = conn.keys(format!("{}*", s.key_prefix())).await.unwrap();
    assert!(keys.is_empty(), "nothing may be written: {keys:?}");
}

#[tokio::test]
async fn a_dead_server_gives_a_retryable_error_quickly() {
    // Nothing listens on port 1.
    let err = RedisStore::connect(
        RedisConfig::single("redis://127.0.0.1:1/").connection_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_is_confined_to_the_store() {
    common::removal_is_confined_to_the_store(VAR, raw().await).await;
}

#[tokio::test]
async fn retention_sets_the_expiry_of_each_write() {
    let minute: stats_core::Granularity = "1m".parse().unwrap();
    let retention = stats_core::retention::Retention::new()
        .keep(minute, Duration::from_secs(3_600))
        .unwrap();
    let config = RedisConfig::from_url(&common::url(VAR))
        .unwrap()
        .key_prefix(&stats_core::testkit::unique("redis"))
        .unwrap()
        .retention(retention);
    let s = RedisStore::connect(config).await.unwrap();
    let now = stats_core::jiff::Timestamp::now().as_second();
    let key = Key::bucket("kept", minute, now - now % 60).unwrap();
    let old = key.with_bucket(minute, now - now % 60 - 7_200);
    let mut batch = Batch::new();
    batch
        .inc([key.clone(), old.clone()], &values!({"n": 1}))
        .unwrap();
    s.apply(&batch).await.unwrap();
    let mut conn = raw().await;
    let ttl: i64 = conn.ttl(s.bucket_key(&key)).await.unwrap();
    assert!((3_530..=3_600).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        s.read(&[old]).await.unwrap(),
        vec![stats_core::Values::new()],
        "a bucket older than its retention expires at once"
    );
    assert_eq!(s.remove_metric("kept").await.unwrap(), 1);
}

#[tokio::test]
async fn a_host_typo_names_the_host() {
    let err = RedisStore::connect(
        RedisConfig::single("redis://no-such-host.invalid:6379/")
            .connection_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, stats_core::Error::Unavailable { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("no-such-host.invalid"),
        "the message must name the host: {err}"
    );
    // Passwords stay hidden in the message.
    let err = RedisStore::connect(
        RedisConfig::single("redis://user:hunter2@no-such-host.invalid:6379/")
            .connection_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no-such-host.invalid") && !err.contains("hunter2"),
        "{err}"
    );
}

#[tokio::test]
async fn counter_overflow_names_the_current_value() {
    use stats_core::Error;
    let s = store().await;
    s.set("ovf", "near", i64::MAX - 2).await.unwrap();
    let err = s.inc("ovf", "near", 5, 0).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        Error::counter_overflow("ovf", "near", i64::MAX - 2, 5).to_string()
    );
    assert!(err.to_string().contains("9223372036854775805 + 5"), "{err}");
    // A missing counter starts at its default: that is the current value.
    let err = s.inc("ovf", "new", 2, i64::MAX - 1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        Error::counter_overflow("ovf", "new", i64::MAX - 1, 2).to_string()
    );
    let value = s.inc("ovf", "near", -5, i64::MIN).await.unwrap();
    assert_eq!(value, i64::MAX - 7, "a failed inc changes nothing");
}

#[tokio::test]
async fn keys_in_errors_show_a_readable_time() {
    use stats_core::Error;
    let s = store().await;
    let key = Key::bucket("readable", "1h".parse().unwrap(), 1_700_002_800).unwrap();
    let mut set = Batch::new();
    set.set([key.clone()], &values!({"n": i64::MAX, "leaf": 1}))
        .unwrap();
    s.apply(&set).await.unwrap();
    let mut inc = Batch::new();
    inc.inc([key.clone()], &values!({"n": 1})).unwrap();
    match s.apply(&inc).await {
        Err(Error::Overflow { key, path, .. }) => {
            assert_eq!(key, "readable::1h::2023-11-14T23:00:00Z");
            assert_eq!(path.as_deref(), Some("n"));
        }
        other => panic!("expected an overflow, got {other:?}"),
    }
    let mut below = Batch::new();
    below.inc([key], &values!({"leaf": {"x": 1}})).unwrap();
    match s.apply(&below).await {
        Err(Error::PathConflict { key, .. }) => {
            assert_eq!(key, "readable::1h::2023-11-14T23:00:00Z");
        }
        other => panic!("expected a path conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bad_key_prefix_is_reported_as_a_key_prefix() {
    let err = RedisConfig::single("redis://x")
        .key_prefix("my::app")
        .unwrap_err();
    assert!(
        matches!(
            err,
            stats_core::Error::InvalidName {
                kind: stats_core::NameKind::KeyPrefix,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("invalid key prefix \"my::app\""),
        "{err}"
    );
}

#[tokio::test]
async fn float_sums_computed_by_the_script_round_trip_bit_for_bit() {
    use stats_core::{Fields, Number, Op};
    let s = store().await;
    let key = Key::bucket("sums", "1h".parse().unwrap(), 0).unwrap();
    // (stored float, float increment): the script adds them in f64 and writes the sum with
    // `%.17g`; the stored text must read back to exactly the f64 Rust computes.
    let cases: [(f64, f64); 10] = [
        (0.0, 5e-324),
        (0.0, f64::MIN_POSITIVE),
        (0.0, f64::MAX),
        (f64::MAX, -1e292),
        (0.1, 0.2),
        (1.0 / 3.0, 1.0 / 3.0),
        (1e16, 1.0),
        (1e17, 1.5),
        (9_223_372_036_854_775_808.0, 1.0),
        (-5e-324, 1e-323),
    ];
    let pairs = |f: &dyn Fn(f64, f64) -> f64| {
        Fields::from_pairs(
            cases
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| (format!("c{i}"), Number::Float(f(a, b)))),
        )
        .unwrap()
    };
    let mut set = Batch::new();
    set.push_flat(Op::Set, [key.clone()], pairs(&|a, _| a));
    s.apply(&set).await.unwrap();
    let mut inc = Batch::new();
    inc.push_flat(Op::Inc, [key.clone()], pairs(&|_, b| b));
    s.apply(&inc).await.unwrap();
    let doc = s.read(std::slice::from_ref(&key)).await.unwrap().remove(0);
    for (i, &(a, b)) in cases.iter().enumerate() {
        let got = doc.number_at(&format!("c{i}"));
        assert_eq!(
            got.map(|n| n.as_f64().to_bits()),
            Some((a + b).to_bits()),
            "{a:e} + {b:e}: got {got:?}, expected {:e}",
            a + b
        );
        assert!(matches!(got, Some(Number::Float(_))), "c{i} stays a float");
    }
}

/// A retry after a lost reply (a proxy drops the script's answer after the server ran it)
/// applies a batch with an id once, and without an id twice.
#[tokio::test]
async fn retry_after_lost_reply_applies_once() {
    use stats_core::testkit::proxy::{DropReplyProxy, check_retry_after_lost_reply, upstream_of};
    let url = common::url(VAR);
    let proxy = DropReplyProxy::start(&upstream_of(&url)).await;
    let config = RedisConfig::from_url(&proxy.url_via(&url))
        .expect("URL")
        .key_prefix(&stats_core::testkit::unique("lost"))
        .expect("prefix");
    let store = RedisStore::connect(config).await.expect("connect");
    // Loads the script on the server, so that the batch below is one EVALSHA.
    let warm = Key::bucket("lost_warm", "1h".parse().unwrap(), 0).unwrap();
    let mut batch = Batch::new();
    batch.inc([warm], &values!({"n": 1})).unwrap();
    store.apply(&batch).await.expect("warm up");
    check_retry_after_lost_reply(&store, &proxy, |metric, _| metric.as_bytes().to_vec()).await;
}
