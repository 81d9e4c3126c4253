//! The conformance suite and the tracker checks against a Redis Cluster
//! (`STATS_TEST_REDIS_CLUSTER_URLS`, comma-separated node URLs).

mod common;

use std::sync::Arc;

use stats_backend_redis::RedisStore;
use stats_core::{Batch, Error, Key, MetricStore, values};

const VAR: &str = "STATS_TEST_REDIS_CLUSTER_URLS";

async fn store() -> Arc<RedisStore> {
    common::store(VAR).await
}

stats_core::metric_store_tests!(store);
stats_core::counter_store_tests!(store);
stats_core::throttle_store_tests!(store);
stats_core::tracker_tests!(store);

#[tokio::test]
async fn capabilities_say_batches_are_atomic_per_metric() {
    let caps = stats_core::Store::capabilities(&*store().await);
    assert!(caps.cluster && !caps.atomic_batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_many_metrics_spans_the_nodes_and_fails_per_metric() {
    let s = store().await;
    let hour = "1h".parse().unwrap();
    // Enough metrics to land on every node.
    let keys: Vec<Key> = (0..64)
        .map(|i| Key::bucket(&format!("m{i}"), hour, 0).unwrap())
        .collect();
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
    // One metric overflows: it is untouched; the others are written (atomic per metric).
    let mut set = Batch::new();
    set.set([keys[5].clone()], &values!({"n": i64::MAX}))
        .unwrap();
    s.apply(&set).await.unwrap();
    let result = s.apply(&batch).await;
    assert!(matches!(result, Err(Error::Overflow { .. })), "{result:?}");
    let docs = s.read(&keys).await.unwrap();
    assert_eq!(docs[5], values!({"n": i64::MAX}));
    assert!(
        docs.iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .all(|(_, d)| *d == values!({"n": 2}))
    );
}

#[tokio::test]
async fn info_counts_namespaces_on_every_node() {
    use stats_core::CounterStore;
    let s = store().await;
    for i in 0..20 {
        s.inc(&format!("ns{i}"), "k", 1, 0).await.unwrap();
    }
    let info = s.info().await.unwrap();
    assert_eq!(info.namespaces.len(), 20);
    assert_eq!(info.counters, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_is_confined_to_the_store() {
    let urls: Vec<String> = common::url(VAR)
        .split(',')
        .map(|u| u.trim().replace("redis+cluster://", "redis://"))
        .collect();
    let raw = redis::cluster::ClusterClient::new(urls)
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("connect");
    common::removal_is_confined_to_the_store(VAR, raw).await;
}
