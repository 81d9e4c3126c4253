//! The conformance suite fails against stores with known faults, each on the check meant to
//! catch that fault, and passes their unbroken behaviour elsewhere.

use std::future::Future;
use std::sync::Arc;

use stats_core::testkit::{Load, counter_checks as counter, metric_checks as metric};
use stats_tests::broken::{DropsOneInAThousand, WrapsOnOverflow, WritesHalfABatch};

/// Runs a check in its own task and returns its panic message, or `None` if it passed.
async fn failure_of(check: impl Future<Output = ()> + Send + 'static) -> Option<String> {
    match tokio::spawn(check).await {
        Ok(()) => None,
        Err(e) => {
            let payload = e.into_panic();
            Some(
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            )
        }
    }
}

fn assert_caught(failure: Option<String>, needle: &str) {
    let message = failure.expect("the check must fail against the broken store");
    assert!(
        message.contains(needle),
        "the check failed for another reason: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_increments_are_caught() {
    let store = Arc::new(DropsOneInAThousand::default());
    assert_caught(
        failure_of(counter::counter_concurrent_increments_are_exact(
            store.clone(),
            Load::DEFAULT,
        ))
        .await,
        "lost increments",
    );
    assert_caught(
        failure_of(metric::metric_concurrent_increments_are_exact(
            store.clone(),
            Load::DEFAULT,
        ))
        .await,
        "lost",
    );
    // Below a thousand increments it behaves.
    let fresh = Arc::new(DropsOneInAThousand::default());
    assert_eq!(
        failure_of(counter::counter_inc_with_step_and_default(fresh)).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrapping_on_overflow_is_caught() {
    let store = Arc::new(WrapsOnOverflow::default());
    assert_caught(
        failure_of(counter::counter_overflow_is_an_error(store.clone())).await,
        "must be Overflow",
    );
    assert_caught(
        failure_of(metric::metric_overflow_writes_nothing_at_the_key(
            store.clone(),
        ))
        .await,
        "must be an Overflow error",
    );
    assert_eq!(
        failure_of(counter::counter_compare_and_swap(store.clone())).await,
        None
    );
    assert_eq!(failure_of(metric::metric_inc_and_get(store)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_written_batches_are_caught() {
    let store = Arc::new(WritesHalfABatch::default());
    assert_caught(
        failure_of(metric::metric_failing_batch_follows_the_contract(
            store.clone(),
        ))
        .await,
        "must write nothing of a failing batch",
    );
    assert_eq!(
        failure_of(metric::metric_inc_and_get(store.clone())).await,
        None
    );
    assert_eq!(
        failure_of(metric::metric_concurrent_increments_are_exact(
            store,
            Load::DEFAULT
        ))
        .await,
        None
    );
}
