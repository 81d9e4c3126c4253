//! `GET /metrics`: the server's own metrics (listed in the [module docs](super)), through a
//! [`StatsRecorder`] of its own, not the process's global recorder: the handlers use it
//! directly. A path no route has is counted under `route="unmatched"`, never under its own
//! path, so the label sets stay as few as the routes whatever clients send. With
//! `--record-metrics` the recorder also writes them into the served store through the
//! server's write buffer every second (the buffer gauges are read every second then, and at
//! each scrape); without it nothing is written.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Unit};
use stats::Batch;
use stats::buffer::BufferedTracker;
use stats::metrics::{MetricsHandle, StatsRecorder};

use crate::error::{CliError, CliResult};

/// The route label of a request that matched no route.
pub(super) const UNMATCHED: &str = "unmatched";

/// The recorder and the handles the handlers update.
pub(super) struct SelfMetrics {
    recorder: StatsRecorder,
    handle: MetricsHandle,
    events: Counter,
    pending: Gauge,
    flushed: Counter,
    /// Reads the buffer's gauges every second while the history is kept.
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl SelfMetrics {
    /// The recorder, keeping history in `tracker` when `record` (it must then run inside the
    /// tokio runtime: its drain task does).
    pub(super) fn new(tracker: &Arc<BufferedTracker>, record: bool) -> CliResult<SelfMetrics> {
        let builder = StatsRecorder::builder();
        let builder = if record {
            builder.history(Arc::clone(tracker))
        } else {
            builder
        };
        let recorder = builder
            .build()
            .map_err(|e| CliError::failed(format!("the metrics recorder: {e}")))?;
        let handle = recorder.handle();
        let (events, pending, flushed) = metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(
                "stats_http_requests_total",
                "HTTP requests answered, by route template and status"
            );
            metrics::describe_histogram!(
                "stats_http_request_duration_seconds",
                Unit::Seconds,
                "Time until the response's headers were ready, by route template"
            );
            metrics::describe_counter!(
                "stats_events_tracked_total",
                "Events written by POST /v1/track"
            );
            metrics::describe_gauge!(
                "stats_buffer_pending",
                "Leaf updates in the write buffer, not yet written to the store"
            );
            metrics::describe_counter!(
                "stats_buffer_flushed_total",
                "Leaf updates the write buffer wrote to the store"
            );
            (
                metrics::counter!("stats_events_tracked_total"),
                metrics::gauge!("stats_buffer_pending"),
                metrics::counter!("stats_buffer_flushed_total"),
            )
        });
        let mut this = SelfMetrics {
            recorder,
            handle,
            events,
            pending,
            flushed,
            ticker: None,
        };
        this.read_buffer(tracker);
        if record {
            let (pending, flushed) = (this.pending.clone(), this.flushed.clone());
            let tracker = Arc::clone(tracker);
            this.ticker = Some(tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let stats = tracker.stats();
                    pending.set(stats.pending as f64);
                    flushed.absolute(stats.flushed);
                }
            }));
        }
        Ok(this)
    }

    /// One request answered.
    pub(super) fn request(&self, route: &str, status: u16, elapsed: Duration) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!(
                "stats_http_requests_total",
                "route" => route.to_owned(),
                "status" => status.to_string()
            )
            .increment(1);
            metrics::histogram!(
                "stats_http_request_duration_seconds",
                "route" => route.to_owned()
            )
            .record(elapsed.as_secs_f64());
        });
    }

    /// `n` events written by `POST /v1/track`.
    pub(super) fn tracked(&self, n: u64) {
        self.events.increment(n);
    }

    /// The buffer's gauges, read now.
    fn read_buffer(&self, tracker: &BufferedTracker) {
        let stats = tracker.stats();
        self.pending.set(stats.pending as f64);
        self.flushed.absolute(stats.flushed);
    }

    /// The exposition, with the buffer's gauges read now.
    pub(super) fn render(&self, tracker: &BufferedTracker) -> String {
        self.read_buffer(tracker);
        self.handle.render()
    }

    /// Stops the buffer ticker and shuts `tracker` down, after the recorder's final drain
    /// into it when it keeps history. The batches that could not be written.
    pub(super) async fn shutdown(&self, tracker: &BufferedTracker) -> Vec<Batch> {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        if self.handle.tracker().is_some() {
            self.read_buffer(tracker);
            // The final drain, then the buffer's shutdown (the recorder's history is `tracker`).
            self.handle.shutdown().await
        } else {
            tracker.shutdown().await
        }
    }
}
