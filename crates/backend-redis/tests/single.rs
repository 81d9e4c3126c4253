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

#[tokio::test]
async fn capabilities_say_single_node_batches_are_atomic() {
    let caps = stats_core::Store::capabilities(&*store().await);
    assert!(caps.atomic_batch && caps.floats && caps.max_min && caps.ttl && !caps.cluster);
}

#[tokio::test]
async fn layout_is_as_documented() {
    let s = store().await;
    let prefix = s.prefix();
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
        .prefix(&stats_core::testkit::unique("redis"))
        .unwrap()
        .expire(hour, Duration::from_secs(2 * 86_400));
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
    assert!(RedisConfig::single("redis://x").prefix("{p}").is_err());
    let mut conn = raw().await;
    let keys: Vec<String> = conn.keys(format!("{}*", s.prefix())).await.unwrap();
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
