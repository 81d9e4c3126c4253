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
