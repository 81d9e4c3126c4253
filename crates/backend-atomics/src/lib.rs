//! The in-process store of `stats`: metrics, counters and throttles in this process's memory,
//! for tests and single-process applications.
//!
//! - Counters are atomics in a lock-free concurrent map (papaya): an increment of an existing
//!   counter is two lock-free lookups and one compare-exchange, and writes to different
//!   counters touch different cache lines, so threads do not slow each other down. The
//!   compare-exchange loop makes every increment checked: a counter never wraps, not even for
//!   an instant. [`Counters::handle`] skips the lookups.
//! - Metric documents sit in the same kind of map, each behind its own small mutex; a batch
//!   locks its documents in key order and is all or nothing (see [`Metrics`]).
//! - Throttle keys expire by the monotonic clock (see [`Throttles`]).
//!
//! Unbounded ([`AtomicsStore::new`]) or bounded per namespace ([`AtomicsStore::bounded`]).
//! Buckets are kept until removed unless [`AtomicsStore::retention`] says how long to keep
//! each granularity's; set one in a long-running process, or its minute buckets grow without
//! bound.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use stats_backend_atomics::AtomicsStore;
//! use stats_core::retention::Retention;
//! use stats_core::tracker::{Config, Tracker};
//! use stats_core::values;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let retention = Retention::new().keep("1m".parse()?, Duration::from_secs(86_400))?;
//! let store = Arc::new(AtomicsStore::new().retention(retention));
//! let tracker = Tracker::new(store.clone(), Config::new());
//! tracker.track_now("logins", &values!({"count": 1})).await?;
//!
//! // The synchronous side of the same store.
//! assert_eq!(store.counters().inc("logins", "total", 1, 0)?, 1);
//! assert!(store.throttles().try_acquire("daily-report", Duration::from_secs(86_400))?);
//! # Ok(()) }
//! ```

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
