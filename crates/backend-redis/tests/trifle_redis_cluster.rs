//! The Trifle layout ([`Layout::Trifle`]) on a Redis Cluster
//! (`STATS_TEST_REDIS_CLUSTER_URLS`): Trifle's keys carry no hash tag, so one metric's
//! buckets lie in many slots and a batch runs as one atomic script per bucket.

mod common;

use std::sync::Arc;

use stats_backend_redis::{Layout, RedisConfig, RedisStore};
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{Batch, BatchId, Error, Key, MetricStore, Store, values};

const VAR: &str = "STATS_TEST_REDIS_CLUSTER_URLS";

async fn store() -> Arc<RedisStore> {
    let config = RedisConfig::from_url(&common::url(VAR))
        .unwrap()
        .layout(Layout::Trifle)
        .key_prefix(&stats_core::testkit::unique("trfl"))
        .unwrap();
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}

/// Bucket keys of one metric over many starts: in the Trifle layout they land in many slots.
fn buckets(metric: &str, n: i64) -> Vec<Key> {
    let hour = "1h".parse().unwrap();
    (0..n)
        .map(|i| Key::bucket(metric, hour, i * 3600).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_metric_spans_slots_and_batches_are_atomic_per_bucket() {
    let s = store().await;
    assert!(s.capabilities().cluster && !s.capabilities().atomic_batch);
    let keys = buckets("orders", 32);
    let slots: std::collections::HashSet<redis::cluster_routing::Slot> = keys
        .iter()
        .map(|k| redis::cluster_routing::Slot::for_key(s.bucket_key(k)))
        .collect();
    assert!(
        slots.len() > 1,
        "the buckets of one metric lie in many slots"
    );
    let mut batch = Batch::new();
    batch.inc(keys.iter().cloned(), &values!({"n": 1})).unwrap();
    s.apply(&batch).await.unwrap();
    assert!(
        s.read(&keys)
            .await
            .unwrap()
            .iter()
            .all(|d| *d == values!({"n": 1}))
    );
    // One bucket overflows: it is untouched, the other buckets of the metric are written.
    let mut set = Batch::new();
    set.set([keys[7].clone()], &values!({"n": i64::MAX}))
        .unwrap();
    s.apply(&set).await.unwrap();
    let result = s.apply(&batch).await;
    assert!(matches!(result, Err(Error::Overflow { .. })), "{result:?}");
    let docs = s.read(&keys).await.unwrap();
    for (i, doc) in docs.iter().enumerate() {
        let expected = if i == 7 {
            values!({"n": i64::MAX})
        } else {
            values!({"n": 2})
        };
        assert_eq!(*doc, expected, "bucket {i}");
    }
    // A range read over every bucket (one HGETALL per slot) sees the same.
    let starts: Vec<i64> = (0..32).map(|i| i * 3600).collect();
    let range = s
        .range("orders", "1h".parse().unwrap(), &starts)
        .await
        .unwrap();
    assert_eq!(range, docs);
    // remove_metric finds the buckets on every master.
    assert_eq!(s.remove_metric("orders").await.unwrap(), 32);
    assert!(s.read(&keys).await.unwrap().iter().all(|d| d.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_applies_once_per_bucket() {
    let s = store().await;
    let keys = buckets("retry", 16);
    let mut batch = Batch::new().with_id(BatchId::new());
    batch.inc(keys.iter().cloned(), &values!({"n": 1})).unwrap();
    s.apply(&batch).await.unwrap();
    s.apply(&batch).await.unwrap();
    assert!(
        s.read(&keys)
            .await
            .unwrap()
            .iter()
            .all(|d| *d == values!({"n": 1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_with_the_system_index_across_slots() {
    let s = store().await;
    let config = Config::new()
        .granularities(["1h", "1d"])
        .unwrap()
        .system_index(true);
    let t = Tracker::new(s.clone(), config);
    let at = Timestamp::from_second(1_700_000_000).unwrap();
    for _ in 0..3 {
        t.track("orders", at, &values!({"count": 1, "by": {"eu": 1}}))
            .await
            .unwrap();
    }
    let hour = "1h".parse().unwrap();
    let series = t
        .values("orders", at, at, hour, Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(series.values, vec![values!({"count": 3, "by": {"eu": 3}})]);
    let system = t.system_values(at, at, hour, Blanks::Keep).await.unwrap();
    assert_eq!(
        system.values,
        vec![values!({"count": 3, "keys": {"orders": 3}})]
    );
}

// The metric and tracker checks in the Trifle layout on a cluster (the counter and throttle
// checks run in `cluster.rs`: the layout does not change them). Left out:
// - `tracker_system_index`: it expects the tracker's escaped field `keys.a%2Eb`; this layout
//   writes Trifle's `keys.a.b` (checked in `trifle_redis.rs`).
stats_core::metric_store_tests!(store);
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
