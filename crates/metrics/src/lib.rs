//! A recorder for the [`metrics`] crate that gives services already instrumented with
//! `counter!`, `gauge!` and `histogram!` a time-bucketed history in any stats store, and a
//! Prometheus text exposition of their current values: one recorder for a scraper and the
//! history.
//!
//! ```
//! use std::sync::Arc;
//!
//! use stats_buffer::BufferedTracker;
//! use stats_core::tracker::Config;
//! # use stats_backend_atomics::AtomicsStore as AnyStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // At start-up, one line (any store: SQLite, PostgreSQL, Redis, MongoDB, in-process):
//! let metrics = stats_metrics::install(BufferedTracker::new(Arc::new(AnyStore::default()), Config::new())?)?;
//!
//! // The call sites stay as they are.
//! metrics::counter!("http_requests_total", "route" => "/orders", "status" => "200").increment(1);
//! metrics::histogram!("http_request_duration_seconds").record(0.042);
//!
//! // A scrape endpoint, if you want one:
//! let text = metrics.render();
//! assert!(text.contains("http_requests_total{route=\"/orders\",status=\"200\"} 1"));
//!
//! // At exit: write everything that is pending.
//! assert!(metrics.shutdown().await.is_empty());
//! # Ok(()) }
//! ```
//!
//! # What is stored
//!
//! Each metric name is a metric key of the store (the tracker's metric prefix applies); its
//! document per time bucket holds one subtree per label set. Labels are sorted by name and
//! each becomes one level `name=value` of the path, so `counter!("http_requests_total",
//! "status" => "200", "route" => "/orders")` increments `route=/orders.status=200.count` in
//! every bucket (minute, hour, day, ... as the tracker's configuration says) of
//! `http_requests_total`. See [`StatsRecorder`] for each kind's fields.
//!
//! - **Label names** take their Prometheus form ([`prometheus_name`]: `http.method` becomes
//!   `http_method`), the same in the store and in the exposition; two labels of one series
//!   with the same form refuse the series ([`Reason::Labels`]).
//! - **Label values** are stored exactly, or the series is refused from the store by the
//!   name rule ([`Reason::Name`]): a value with `.` (the path separator), a control
//!   character, or a `name=value` longer than 200 bytes. A refused series is still exposed
//!   to Prometheus, and counted in [`Refusals`] and `stats_metrics_refused_total{reason}`.
//!   An empty value is no label (as in Prometheus). The same labels given in another order
//!   are the same series.
//! - **Cardinality**: at most [`Builder::max_label_sets`] label sets per metric (default
//!   1,000). Further label sets are recorded in the metric's one overflow series
//!   `stats_overflow="true"` (path `stats_overflow=true.`): totals stay exact, memory stays
//!   bounded, and each registration folded there is counted.
//! - **Histograms** keep fixed buckets, not quantile sketches: bucket counts, `count` and
//!   `sum` are increments, so the store adds them up exactly into every granularity (a day's
//!   buckets are the sum of its minutes'); a quantile of a minute cannot be combined into the
//!   quantile of a day. Quantiles can be estimated from the buckets at read time, for any
//!   range. Bucket bounds are field names without `.` ([`bound_name`]: `le.25e-3` is 0.025).
//!
//! # Timing and guarantees
//!
//! The macros' hot path updates atomics in the series' handle and never waits on the store.
//! A drain task writes what was gathered into the [`BufferedTracker`] at every whole multiple
//! of [`Builder::interval`] (1 s by default) and the buffer writes to the store on its own
//! interval, so a burst costs one store write per field and granularity. A store outage loses
//! nothing (the buffer keeps and retries; see its docs); [`MetricsHandle::shutdown`] writes
//! everything pending.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod bounds;
mod exposition;
mod recorder;
mod series;

use std::sync::Arc;

pub use bounds::{DEFAULT_BOUNDS, MAX_BOUNDS, bound_name};
pub use exposition::CONTENT_TYPE;
pub use recorder::{
    Builder, DEFAULT_INTERVAL, DEFAULT_MAX_LABEL_SETS, MAX_INTERVAL, MetricsHandle, Refusals,
    StatsRecorder,
};
pub use series::{OVERFLOW_LABEL, Reason, prometheus_name};
use stats_buffer::BufferedTracker;

/// Records every `metrics` macro of this process into `tracker`'s store, with the default
/// settings, and returns the handle (render, flush, shutdown). See [`StatsRecorder`] to
/// configure it or to keep another recorder beside it.
///
/// # Errors
/// As [`Builder::build`] and [`StatsRecorder::install`] (outside a tokio runtime; a global
/// recorder already installed).
pub fn install(tracker: impl Into<Arc<BufferedTracker>>) -> stats_core::Result<MetricsHandle> {
    StatsRecorder::builder().history(tracker).build()?.install()
}
