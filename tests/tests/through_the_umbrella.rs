//! The conformance suite through the umbrella crate's re-export and the forwarding impls
//! (`Box<dyn ...>` inside an `Arc`), as an application holding a trait object would use it.

use std::sync::Arc;

use stats::atomics::AtomicsStore;
use stats::{CounterStore, MetricStore, ThrottleStore};

async fn boxed_metric() -> Arc<Box<dyn MetricStore>> {
    Arc::new(Box::new(AtomicsStore::new()))
}

async fn boxed_counter() -> Arc<Box<dyn CounterStore>> {
    Arc::new(Box::new(AtomicsStore::new()))
}

async fn boxed_throttle() -> Arc<Box<dyn ThrottleStore>> {
    Arc::new(Box::new(AtomicsStore::new()))
}

stats_core::metric_store_tests!(boxed_metric);
stats_core::counter_store_tests!(boxed_counter);
stats_core::throttle_store_tests!(boxed_throttle);
