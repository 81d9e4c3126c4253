//! The conformance suite against the in-process store, unbounded and bounded.

use std::sync::Arc;

use stats_backend_atomics::AtomicsStore;

async fn unbounded() -> Arc<AtomicsStore> {
    Arc::new(AtomicsStore::new())
}

stats_core::metric_store_tests!(unbounded);
stats_core::counter_store_tests!(unbounded);
stats_core::throttle_store_tests!(unbounded);
stats_core::tracker_tests!(unbounded);

mod bounded {
    use super::*;

    async fn bounded() -> Arc<AtomicsStore> {
        Arc::new(AtomicsStore::bounded(64).expect("capacity"))
    }

    stats_core::counter_store_tests!(bounded);
}

/// Many tasks applying one batch with one id at once: it takes effect exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_id_applied_concurrently_takes_effect_once() {
    use stats_core::{Batch, BatchId, Key, MetricStore, values};
    let store = Arc::new(AtomicsStore::new());
    let key = Key::bucket("concurrent_id", "1h".parse().unwrap(), 0).unwrap();
    let mut batch = Batch::new();
    batch.inc([key.clone()], &values!({"n": 1})).unwrap();
    let batch = Arc::new(batch.with_id(BatchId::new()));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, batch) = (Arc::clone(&store), Arc::clone(&batch));
            tokio::spawn(async move { store.apply(&batch).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.read(&[key]).await.unwrap()[0], values!({"n": 1}));
}
