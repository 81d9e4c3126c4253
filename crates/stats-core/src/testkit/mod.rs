//! The conformance suite every store passes (feature `testkit`).
//!
//! Each check is a plain `pub async fn(Arc<dyn ...>)` that panics with a message saying what
//! the store got wrong. A store's tests run them all with one macro line:
//!
//! ```text
//! async fn store() -> std::sync::Arc<MyStore> { /* connect, with a unique prefix */ }
//! stats_core::metric_store_tests!(store);
//! stats_core::counter_store_tests!(store);
//! stats_core::throttle_store_tests!(store);
//! stats_core::tracker_tests!(store);
//! ```
//!
//! The macros need `tokio` (features `macros`, `rt-multi-thread`) in the caller's
//! dev-dependencies. Every check uses names no other run uses ([`unique`]), so the suites can
//! share one server with other runs and with each other.
//!
//! The checks adapt to the store's [`Capabilities`](crate::Capabilities): float and max/min
//! checks assert [`Error::Unsupported`](crate::Error::Unsupported) where the store says it
//! lacks them, and whole-batch atomicity is checked where the store claims it.

mod counter;
mod exact;
mod hostile;
mod metric;
pub mod proxy;
mod throttle;
mod tracker;

pub use counter::*;
pub use exact::*;
pub use hostile::*;
pub use metric::*;
pub use throttle::*;
pub use tracker::*;

use std::sync::atomic::{AtomicU64, Ordering};

/// Tasks in every concurrency check.
pub const TASKS: usize = 8;
/// Increments per task in every concurrency check, by default.
pub const INCREMENTS_PER_TASK: usize = 10_000;

/// How hard the concurrency checks push a store: `tasks` tasks, each doing
/// `increments_per_task` increments (and a tenth of that in compare-and-swap loops).
///
/// [`Load::DEFAULT`] is what the macros use. A store whose test server is slow (the
/// MongoDB-wire test server answers a few thousand single-document calls a second) passes a
/// lighter load, `counter_store_tests!(setup, load: Load { tasks: 8, increments_per_task:
/// 500 })`: the same contention (every task on one shared key), fewer rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Increments each task makes.
    pub increments_per_task: usize,
}

impl Load {
    /// [`TASKS`] tasks of [`INCREMENTS_PER_TASK`] increments.
    pub const DEFAULT: Load = Load {
        tasks: TASKS,
        increments_per_task: INCREMENTS_PER_TASK,
    };
}

/// A name no other call of this function, in this process or another, returns: `tk<pid>x<n>x<t>-<label>`.
///
/// It satisfies the segment rule for labels that do.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("tk{}x{n}x{nanos:x}-{label}", std::process::id())
}

/// A smoke test of a store reached in some new way (over TLS, through a wrapper): a batch, a
/// read of it and a new counter (`store` must hold no counter `jobs/done` yet); `context`
/// names the way in failure messages.
pub async fn write_read_and_count<S>(store: &S, context: &str)
where
    S: crate::MetricStore + crate::CounterStore + ?Sized,
{
    let key = crate::Key::bucket("orders", "1h".parse().expect("1h"), 3600).expect("key");
    let doc = crate::values!({"count": 2, "by": {"eu": 1.5}});
    let mut batch = crate::Batch::new();
    batch.inc([key.clone()], &doc).expect("batch");
    store.apply(&batch).await.expect(context);
    let read = store.read(std::slice::from_ref(&key)).await.expect(context);
    assert_eq!(read, [doc], "{context}");
    assert_eq!(
        store.inc("jobs", "done", 3, 0).await.expect(context),
        3,
        "{context}"
    );
}

/// Checks the error of connecting to a server whose TLS certificate is not trusted: a
/// non-retryable [`Error::Backend`](crate::Error::Backend) (repeating it fails the same way)
/// whose message says TLS and certificate, whatever the store.
pub fn assert_untrusted_certificate(err: &crate::Error) {
    let shown = err.to_string();
    assert!(
        matches!(
            err,
            crate::Error::Backend {
                retryable: false,
                ..
            }
        ),
        "expected a non-retryable backend error: {shown}"
    );
    assert!(
        shown.contains("TLS") && shown.contains("certificate"),
        "the message must say TLS and certificate: {shown}"
    );
}

/// Instantiates every [`MetricStore`](crate::MetricStore) check as a `#[tokio::test]`.
///
/// `$setup` is a path to an `async fn() -> Arc<S>` where `S: MetricStore`.
#[macro_export]
macro_rules! metric_store_tests {
    ($setup:path) => {
        $crate::metric_store_tests!($setup, load: $crate::testkit::Load::DEFAULT);
    };
    ($setup:path, load: $load:expr) => {
        $crate::__testkit_loaded_cases!(
            $setup,
            $load,
            $crate::testkit::metric_checks,
            [metric_concurrent_increments_are_exact]
        );
        $crate::__testkit_cases!(
            $setup,
            $crate::testkit::metric_checks,
            [
                metric_inc_and_get,
                metric_get_is_ordered_and_blank_for_missing,
                metric_set_overwrites_only_named_leaves,
                metric_max_min,
                metric_max_mixed_kinds_is_exact,
                metric_min_mixed_kinds_is_exact,
                metric_floats,
                metric_ops_apply_in_batch_order,
                metric_batch_id_applies_once,
                metric_overflow_writes_nothing_at_the_key,
                metric_failing_batch_follows_the_contract,
                metric_path_conflicts_write_nothing,
                metric_range_is_aligned_and_isolated,
                metric_range_refuses_bad_input,
                metric_delete,
                metric_status_slot_is_apart,
                metric_read_after_write,
                metric_edge_values_round_trip,
                metric_hostile_input_is_refused_before_the_store,
                metric_remove_metric,
                metric_purge,
            ]
        );
    };
}

/// Instantiates every [`CounterStore`](crate::CounterStore) check as a `#[tokio::test]`.
///
/// `$setup` is a path to an `async fn() -> Arc<S>` where `S: CounterStore`.
#[macro_export]
macro_rules! counter_store_tests {
    ($setup:path) => {
        $crate::counter_store_tests!($setup, load: $crate::testkit::Load::DEFAULT);
    };
    ($setup:path, load: $load:expr) => {
        $crate::__testkit_loaded_cases!(
            $setup,
            $load,
            $crate::testkit::counter_checks,
            [
                counter_concurrent_increments_are_exact,
                counter_cas_loop_under_contention_loses_nothing,
            ]
        );
        $crate::__testkit_cases!(
            $setup,
            $crate::testkit::counter_checks,
            [
                counter_inc_with_step_and_default,
                counter_get_and_get_all,
                counter_set_and_reset,
                counter_delete,
                counter_delete_namespace_is_isolated,
                counter_compare_and_swap,
                counter_overflow_is_an_error,
                counter_bad_names_write_nothing,
                counter_info,
                counter_capacity,
            ]
        );
    };
}

/// Instantiates every [`ThrottleStore`](crate::ThrottleStore) check as a `#[tokio::test]`.
///
/// `$setup` is a path to an `async fn() -> Arc<S>` where `S: ThrottleStore`.
#[macro_export]
macro_rules! throttle_store_tests {
    ($setup:path) => {
        $crate::__testkit_cases!(
            $setup,
            $crate::testkit::throttle_checks,
            [
                throttle_acquire_and_expire,
                throttle_one_winner_per_window,
                throttle_refuses_bad_input,
                throttle_huge_ttls,
            ]
        );
    };
}

/// Instantiates every [`Tracker`](crate::tracker::Tracker) check on a store as a
/// `#[tokio::test]`.
///
/// `$setup` is a path to an `async fn() -> Arc<S>` where `S: MetricStore`.
#[macro_export]
macro_rules! tracker_tests {
    ($setup:path) => {
        $crate::__testkit_cases!(
            $setup,
            $crate::testkit::tracker_checks,
            [
                tracker_track_fans_out,
                tracker_assert_overwrites,
                tracker_max_min,
                tracker_blanks,
                tracker_system_index,
                tracker_beam_and_scan,
                tracker_values_across_dst,
                tracker_bad_input_writes_nothing,
                tracker_reserved_names_and_conveniences,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __testkit_loaded_cases {
    ($setup:path, $load:expr, $module:path, [$($check:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                use $module as checks;
                let store = $setup().await;
                checks::$check(store, $load).await;
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __testkit_cases {
    ($setup:path, $module:path, [$($check:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                use $module as checks;
                let store = $setup().await;
                checks::$check(store).await;
            }
        )*
    };
}

/// The metric checks under the names the macro uses.
pub mod metric_checks {
    pub use super::exact::*;
    pub use super::hostile::{
        metric_edge_values_round_trip, metric_hostile_input_is_refused_before_the_store,
        metric_purge, metric_remove_metric,
    };
    pub use super::metric::*;
}

/// The counter checks under the names the macro uses.
pub mod counter_checks {
    pub use super::counter::*;
}

/// The throttle checks under the names the macro uses.
pub mod throttle_checks {
    pub use super::hostile::throttle_huge_ttls;
    pub use super::throttle::*;
}

/// The tracker checks under the names the macro uses.
pub mod tracker_checks {
    pub use super::hostile::tracker_reserved_names_and_conveniences;
    pub use super::tracker::*;
}
