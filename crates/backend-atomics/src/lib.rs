//! The in-process store of `stats`: metrics, counters and throttles in this process's memory,
//! for tests and single-process applications.
//!
//! - Counters are atomics in a lock-free concurrent map (papaya): an increment of an existing
//!   counter is one lock-free lookup and one compare-exchange on a 64-byte slot that holds the
//!   counter's value and name, and writes to different counters touch different cache lines,
//!   so threads do not slow each other down. The
//!   compare-exchange loop makes every increment checked: a counter never wraps, not even for
//!   an instant. [`Counters::handle`] skips the lookups.
//! - Metric documents sit in the same kind of map, each behind its own small mutex; a batch
//!   locks its documents in key order and is all or nothing (see [`Metrics`]).
//! - Throttle keys expire by the monotonic clock (see [`Throttles`]).
//!
//! Unbounded ([`AtomicsStore::new`]) or bounded per namespace ([`AtomicsStore::bounded`]).

mod counters;
mod metrics;
mod store;
mod throttles;

pub use counters::{CounterHandle, Counters};
pub use metrics::Metrics;
pub use store::AtomicsStore;
pub use throttles::Throttles;

/// The name this store reports in errors and [`Store::name`](stats_core::Store::name).
pub const STORE_NAME: &str = "atomics";
