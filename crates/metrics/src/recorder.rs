//! The recorder, its builder, and the handle that drains, renders and shuts it down.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_util::registry::{Registry, Storage};
use parking_lot::Mutex;
use stats_buffer::BufferedTracker;
use stats_core::jiff::{SignedDuration, Timestamp};
use stats_core::{Batch, Error, Fields, Number, Op, Result};
use tokio::sync::Notify;

use crate::bounds::{Bounds, DEFAULT_BOUNDS};
use crate::exposition;
use crate::series::{
    CounterSeries, GaugeSeries, HistogramSeries, Meta, OVERFLOW_LABEL, Reason, fetch_float,
    prometheus_name,
};

/// Label sets per metric name before further ones are folded into its overflow series.
pub const DEFAULT_MAX_LABEL_SETS: usize = 1_000;
/// How often the recorder writes what the handles gathered into the buffer.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest drain interval (a day: buckets are at best as fine as the interval).
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

const COUNTER_LEAVES: &[&str] = &["count"];
const GAUGE_LEAVES: &[&str] = &["last", "max", "min"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Builds a [`StatsRecorder`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use stats_buffer::BufferedTracker;
/// use stats_core::tracker::Config;
/// use stats_metrics::StatsRecorder;
/// # use stats_backend_atomics::AtomicsStore as AnyStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = BufferedTracker::new(Arc::new(AnyStore::default()), Config::new())?;
/// let recorder = StatsRecorder::builder()
///     .history(tracker)
///     .interval(Duration::from_secs(5))?
///     .max_label_sets(200)?
///     .buckets(&[0.01, 0.1, 1.0])?
///     .buckets_for("payload_bytes", &[1e3, 1e4, 1e5, 1e6])?
///     .build()?;
/// let handle = recorder.handle();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::histogram!("payload_bytes").record(2048.0);
/// });
/// assert!(handle.render().contains("payload_bytes_bucket{le=\"10000.0\"} 1"));
/// # Ok(()) }
/// ```
pub struct Builder {
    history: Option<Arc<BufferedTracker>>,
    interval: Option<Duration>,
    max_label_sets: usize,
    bounds: Bounds,
    bounds_for: HashMap<String, Bounds>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("history", &self.history.is_some())
            .field("interval", &self.interval)
            .field("max_label_sets", &self.max_label_sets)
            .field("bounds", &self.bounds.values)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            history: None,
            interval: Some(DEFAULT_INTERVAL),
            max_label_sets: DEFAULT_MAX_LABEL_SETS,
            bounds: Bounds::new("the default", &DEFAULT_BOUNDS).expect("valid defaults"),
            bounds_for: HashMap::new(),
        }
    }
}

impl Builder {
    /// Where the history goes: every drain writes into this buffered tracker (its store, its
    /// granularities, time zone and metric prefix). Without it the recorder keeps current
    /// values only (for [`MetricsHandle::render`]).
    pub fn history(mut self, tracker: impl Into<Arc<BufferedTracker>>) -> Self {
        self.history = Some(tracker.into());
        self
    }

    /// How often what the handles gathered is written into the buffer (default 1 s; the
    /// buffer then writes to the store on its own interval). Drains happen at whole multiples
    /// of the interval since the Unix epoch, and each writes at the end of the interval it
    /// closes, so an update lands in the buckets of the interval it happened in (give or take
    /// the drain task's scheduling delay at a boundary). Between 1 ms and a day.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the interval outside that range.
    pub fn interval(mut self, interval: Duration) -> Result<Self> {
        if interval < Duration::from_millis(1) || interval > MAX_INTERVAL {
            return Err(Error::InvalidInput(format!(
                "recorder interval {interval:?}: must be between 1ms and {MAX_INTERVAL:?}"
            )));
        }
        self.interval = Some(interval);
        Ok(self)
    }

    /// No drain task: nothing is written until [`MetricsHandle::drain`],
    /// [`MetricsHandle::flush`] or [`MetricsHandle::shutdown`] (for tests and for callers
    /// that choose the time of each write).
    pub fn manual(mut self) -> Self {
        self.interval = None;
        self
    }

    /// The cardinality limit: at most `limit` label sets per metric name (default
    /// [`DEFAULT_MAX_LABEL_SETS`]). Past it, a new label set is recorded in the metric's one
    /// overflow series, labelled `stats_overflow="true"` (in the store: the path
    /// `stats_overflow=true.`), so totals stay exact and memory stays bounded. Such a label set
    /// is not remembered (that would grow memory again): each registration of it (each
    /// macro call that is not on a kept handle) takes the slow path and counts one in
    /// [`Refusals::overflowed`] and `stats_metrics_overflowed_total`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for 0.
    pub fn max_label_sets(mut self, limit: usize) -> Result<Self> {
        if limit == 0 {
            return Err(Error::InvalidInput(
                "max_label_sets 0: a metric needs at least one label set".to_owned(),
            ));
        }
        self.max_label_sets = limit;
        Ok(self)
    }

    /// The upper bounds of every histogram's buckets (default [`DEFAULT_BOUNDS`]); a
    /// `+Inf` bucket is always added.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] unless 1 to [`MAX_BOUNDS`](crate::MAX_BOUNDS) finite, strictly
    /// increasing bounds.
    pub fn buckets(mut self, bounds: &[f64]) -> Result<Self> {
        self.bounds = Bounds::new("every histogram", bounds)?;
        Ok(self)
    }

    /// The upper bounds of the histogram named `name` (exactly); see [`Builder::buckets`].
    ///
    /// # Errors
    /// As [`Builder::buckets`], naming the metric.
    pub fn buckets_for(mut self, name: &str, bounds: &[f64]) -> Result<Self> {
        let checked = Bounds::new(&format!("{name:?}"), bounds)?;
        self.bounds_for.insert(name.to_owned(), checked);
        Ok(self)
    }

    /// The recorder, with its drain task started.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] outside a tokio runtime when there is a history and an interval
    /// (the drain task needs one).
    pub fn build(self) -> Result<StatsRecorder> {
        let runtime = match (&self.history, self.interval) {
            (Some(_), Some(_)) => Some(tokio::runtime::Handle::try_current().map_err(|_| {
                Error::InvalidInput(
                    "the stats recorder must be built inside a tokio runtime (its drain task runs there); use Builder::manual() to drain by hand".to_owned(),
                )
            })?),
            _ => None,
        };
        let shared = Arc::new(Shared {
            registry: Registry::new(SeriesStorage {
                bounds: self.bounds,
                bounds_for: self.bounds_for,
                canonical: Mutex::new(Canonical::default()),
            }),
            families: Mutex::new(Families::default()),
            descriptions: Mutex::new(HashMap::new()),
            refused: Default::default(),
            last_refusal: Mutex::new(BTreeMap::new()),
            overflowed: AtomicU64::new(0),
            history: self.history,
            max_label_sets: self.max_label_sets,
            drain: tokio::sync::Mutex::new(DrainState::default()),
            stop: Arc::new(Notify::new()),
            stopped: AtomicBool::new(false),
        });
        if let (Some(runtime), Some(interval)) = (runtime, self.interval) {
            runtime.spawn(drain_task(
                Arc::downgrade(&shared),
                shared.stop.clone(),
                interval,
            ));
        }
        Ok(StatsRecorder { shared })
    }
}

/// A [`metrics::Recorder`] that keeps time-bucketed history of every counter, gauge and
/// histogram in a stats store (through a [`BufferedTracker`]) and renders current values in
/// the Prometheus text format.
///
/// What each kind writes into the metric's document per time bucket, under the series'
/// label path (see the crate docs for the label mapping):
///
/// | kind | fields | how |
/// |---|---|---|
/// | counter | `count` | increments (the counter's growth in the bucket) |
/// | gauge | `last`, `max`, `min` | the value at the end of the bucket, the highest and lowest it held |
/// | histogram | `count`, `sum`, `min`, `max`, `le.<bound>`, `le.+Inf` | observations, their sum, extremes, and cumulative bucket counts |
///
/// The macros' hot path is an atomic update of the series' handle: it never waits for the
/// store. A drain task writes what was gathered every [`Builder::interval`].
///
/// ```
/// use std::sync::Arc;
///
/// use stats_buffer::BufferedTracker;
/// use stats_core::tracker::{Blanks, Config};
/// use stats_metrics::StatsRecorder;
/// # use stats_backend_atomics::AtomicsStore as AnyStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = Arc::new(BufferedTracker::new(Arc::new(AnyStore::default()), Config::new())?);
/// let recorder = StatsRecorder::builder().history(tracker.clone()).manual().build()?;
/// let handle = recorder.handle();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("http_requests", "route" => "/a").increment(3);
///     metrics::gauge!("queue_depth").set(7.0);
/// });
/// let at = "2026-12-07T10:15:30Z".parse()?;
/// handle.drain(at).await?;
/// let minute = tracker
///     .values("http_requests", at, at, "1m".parse()?, Blanks::Skip)
///     .await?;
/// assert_eq!(minute.values[0].number_at("route=/a.count"), Some(3.into()));
/// assert!(handle.render().contains("http_requests{route=\"/a\"} 3"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StatsRecorder {
    shared: Arc<Shared>,
}

impl fmt::Debug for StatsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsRecorder").finish_non_exhaustive()
    }
}

impl StatsRecorder {
    /// A builder with the defaults: no history, 1 s interval, 1,000 label sets per metric,
    /// the Prometheus default buckets.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The handle that drains, flushes, renders and shuts down this recorder.
    pub fn handle(&self) -> MetricsHandle {
        MetricsHandle {
            shared: self.shared.clone(),
        }
    }

    /// Sets this recorder as the global one (what the macros use) and returns its handle.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a global recorder is already installed (the `metrics`
    /// crate allows one per process).
    pub fn install(self) -> Result<MetricsHandle> {
        let handle = self.handle();
        metrics::set_global_recorder(self).map_err(|_| already_installed())?;
        Ok(handle)
    }

    /// Sets a recorder that sends every update to this one and to `other` (for example
    /// `metrics-exporter-prometheus`'s recorder, so an existing scrape endpoint keeps working)
    /// as the global one, and returns this recorder's handle.
    ///
    /// # Errors
    /// As [`StatsRecorder::install`].
    pub fn install_with<R>(self, other: R) -> Result<MetricsHandle>
    where
        R: Recorder + Send + Sync + 'static,
    {
        let handle = self.handle();
        let both = metrics_util::layers::FanoutBuilder::default()
            .add_recorder(self)
            .add_recorder(other)
            .build();
        metrics::set_global_recorder(both).map_err(|_| already_installed())?;
        Ok(handle)
    }
}

fn already_installed() -> Error {
    Error::InvalidInput(
        "a global metrics recorder is already installed (one per process); compose recorders with StatsRecorder::install_with".to_owned(),
    )
}

/// Drains, flushes, renders and shuts down a [`StatsRecorder`]; cheap to clone.
///
/// ```
/// use std::sync::Arc;
///
/// use stats_buffer::BufferedTracker;
/// use stats_core::tracker::Config;
/// use stats_metrics::{CONTENT_TYPE, StatsRecorder};
/// # use stats_backend_atomics::AtomicsStore as AnyStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = BufferedTracker::new(Arc::new(AnyStore::default()), Config::new())?;
/// let recorder = StatsRecorder::builder().history(tracker).build()?;
/// let handle = recorder.handle();
/// metrics::with_local_recorder(&recorder, || metrics::gauge!("queue_depth").set(3.0));
/// // What a `/metrics` route answers, with `CONTENT_TYPE` as its content type.
/// assert!(handle.render().contains("queue_depth 3.0"));
/// assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
/// let before = stats_core::jiff::Timestamp::now();
/// handle.flush().await?; // drained now and written to the store
/// let after = stats_core::jiff::Timestamp::now();
/// let tracker = handle.tracker().expect("built with a history");
/// let days = tracker.total("queue_depth", before, after, "1d".parse()?, "last").await?;
/// assert_eq!(days, Some(stats_core::Number::Float(3.0)));
/// assert!(handle.shutdown().await.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MetricsHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsHandle").finish_non_exhaustive()
    }
}

/// What a recorder did not record, by [`Reason`], and the label sets folded into overflow
/// series.
///
/// ```
/// use stats_metrics::{Reason, StatsRecorder};
///
/// let recorder = StatsRecorder::builder().build()?;
/// metrics::with_local_recorder(&recorder, || {
///     // A `.` in a label value: exposed to Prometheus, refused by the store's name rule.
///     metrics::counter!("requests", "host" => "api.example.com").increment(1);
///     // One name as two kinds: the second is recorded nowhere.
///     metrics::gauge!("requests").set(1.0);
/// });
/// let refusals = recorder.handle().refusals();
/// assert_eq!(refusals.count(Reason::Name), 1);
/// assert_eq!(refusals.count(Reason::Kind), 1);
/// assert!(refusals.last[&Reason::Name].contains("api.example.com"));
/// assert_eq!(refusals.total(), 2);
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    /// How many of each: series for [`Reason::Name`] and [`Reason::Exposition`] (once per
    /// series or name), registrations for [`Reason::Labels`] and [`Reason::Kind`] (each macro
    /// call that registers), values for [`Reason::Value`], drains' writes for
    /// [`Reason::Write`].
    pub counts: BTreeMap<Reason, u64>,
    /// The latest refusal of each reason, naming the offending metric, label or value.
    pub last: BTreeMap<Reason, String>,
    /// Registrations of label sets past [`Builder::max_label_sets`], recorded in the
    /// metric's overflow series (a macro call registers each time unless its handle is kept).
    pub overflowed: u64,
}

impl Refusals {
    /// The count of one reason.
    pub fn count(&self, reason: Reason) -> u64 {
        self.counts.get(&reason).copied().unwrap_or(0)
    }

    /// Every count summed (overflow registrations not included).
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl MetricsHandle {
    /// The current values in the Prometheus text exposition format 0.0.4 (serve it with
    /// [`CONTENT_TYPE`](crate::CONTENT_TYPE)): counters' totals, gauges' values, histograms'
    /// cumulative buckets, sum and count since start, then the recorder's own
    /// `stats_metrics_refused_total{reason}` and `stats_metrics_overflowed_total`. Names and
    /// label names in their Prometheus form ([`prometheus_name`](crate::prometheus_name)),
    /// label values escaped.
    pub fn render(&self) -> String {
        exposition::render(&self.shared)
    }

    /// Writes what the handles gathered since the last drain into the buffer, in the
    /// buckets of `at`. Gauges also write their value in each new bucket they hold it
    /// through. Does not wait for the store (see [`MetricsHandle::flush`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the recorder has no history; the buffer's error when `at`
    /// is out of its calendar's range. A write the buffer refuses is counted
    /// ([`Reason::Write`]), not returned, and a retryable one (a full buffer) is kept for the
    /// next drain.
    pub async fn drain(&self, at: Timestamp) -> Result<()> {
        self.shared.drain(at).await
    }

    /// Drains at the current time and writes everything pending to the store.
    ///
    /// # Errors
    /// As [`MetricsHandle::drain`], and [`BufferedTracker::flush`]'s error (what it could
    /// not write stays pending in the buffer).
    pub async fn flush(&self) -> Result<()> {
        self.shared.drain(Timestamp::now()).await?;
        self.history()?.flush().await
    }

    /// Stops the drain task, drains at the current time and shuts the buffer down (see
    /// [`BufferedTracker::shutdown`]): returns the batches that could not be written, empty
    /// when everything was. Later updates still reach [`MetricsHandle::render`], not the store.
    pub async fn shutdown(&self) -> Vec<Batch> {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.stop.notify_waiters();
        let Some(history) = self.shared.history.clone() else {
            return Vec::new();
        };
        if let Err(e) = self.shared.drain(Timestamp::now()).await {
            self.shared
                .refuse(Reason::Write, format!("final drain: {e}"));
        }
        history.shutdown().await
    }

    /// What was not recorded, and why.
    pub fn refusals(&self) -> Refusals {
        self.shared.refusals()
    }

    /// The buffered tracker the history goes to (to read it back: its reads include what
    /// is pending).
    pub fn tracker(&self) -> Option<&Arc<BufferedTracker>> {
        self.shared.history.as_ref()
    }

    fn history(&self) -> Result<&Arc<BufferedTracker>> {
        self.shared.history.as_ref().ok_or_else(no_history)
    }
}

fn no_history() -> Error {
    Error::InvalidInput(
        "this recorder keeps no history (build it with Builder::history(tracker))".to_owned(),
    )
}

#[derive(Debug, Default)]
pub(crate) struct Families {
    by_name: HashMap<Arc<str>, Family>,
    /// Prometheus name -> the metric name that has it.
    exposed: HashMap<String, Arc<str>>,
}

#[derive(Debug)]
struct Family {
    kind: Kind,
    /// Canonical label sets (the cardinality limit counts these).
    label_sets: usize,
    /// Keys as called that differ from their canonical key (other label order or spelling),
    /// held by the registry; at most `max_label_sets` per metric, past that such a call takes
    /// the slow path each time instead of growing the registry.
    aliases: usize,
}

pub(crate) struct Shared {
    pub(crate) registry: Registry<Key, SeriesStorage>,
    families: Mutex<Families>,
    pub(crate) descriptions: Mutex<HashMap<String, String>>,
    refused: [AtomicU64; Reason::ALL.len()],
    last_refusal: Mutex<BTreeMap<Reason, String>>,
    overflowed: AtomicU64,
    history: Option<Arc<BufferedTracker>>,
    max_label_sets: usize,
    drain: tokio::sync::Mutex<DrainState>,
    stop: Arc<Notify>,
    stopped: AtomicBool,
}

pub(crate) struct SeriesStorage {
    bounds: Bounds,
    bounds_for: HashMap<String, Bounds>,
    canonical: Mutex<Canonical>,
}

impl SeriesStorage {
    fn bounds(&self, name: &str) -> &Bounds {
        self.bounds_for.get(name).unwrap_or(&self.bounds)
    }

    fn histogram_leaves(&self, name: &str) -> Vec<&str> {
        let mut leaves = vec!["count", "sum", "min", "max"];
        leaves.extend(self.bounds(name).fields.iter().map(String::as_str));
        leaves
    }
}

/// The series by canonical key (Prometheus-form label names, sorted, no empty values): one
/// series however its labels are spelled or ordered at the call sites. The registry maps each
/// key as called (an alias) to one of these.
#[derive(Default)]
pub(crate) struct Canonical {
    counters: HashMap<Key, Arc<CounterSeries>>,
    gauges: HashMap<Key, Arc<GaugeSeries>>,
    histograms: HashMap<Key, Arc<HistogramSeries>>,
}

impl SeriesStorage {
    /// Every counter, once each.
    pub(crate) fn counters(&self) -> Vec<Arc<CounterSeries>> {
        self.canonical.lock().counters.values().cloned().collect()
    }

    /// Every gauge, once each.
    pub(crate) fn gauges(&self) -> Vec<Arc<GaugeSeries>> {
        self.canonical.lock().gauges.values().cloned().collect()
    }

    /// Every histogram, once each.
    pub(crate) fn histograms(&self) -> Vec<Arc<HistogramSeries>> {
        self.canonical.lock().histograms.values().cloned().collect()
    }

    fn known(&self, kind: Kind, canonical: &Key) -> bool {
        let series = self.canonical.lock();
        match kind {
            Kind::Counter => series.counters.contains_key(canonical),
            Kind::Gauge => series.gauges.contains_key(canonical),
            Kind::Histogram => series.histograms.contains_key(canonical),
        }
    }
}

/// The registry calls these for a key it does not hold yet; every key was checked by
/// [`Meta::new`] before (registration refuses the others).
impl Storage<Key> for SeriesStorage {
    type Counter = Arc<CounterSeries>;
    type Gauge = Arc<GaugeSeries>;
    type Histogram = Arc<HistogramSeries>;

    fn counter(&self, key: &Key) -> Self::Counter {
        let meta = meta_of(key, COUNTER_LEAVES);
        let mut series = self.canonical.lock();
        series
            .counters
            .entry(meta.key())
            .or_insert_with(|| Arc::new(CounterSeries::new(meta)))
            .clone()
    }

    fn gauge(&self, key: &Key) -> Self::Gauge {
        let meta = meta_of(key, GAUGE_LEAVES);
        let mut series = self.canonical.lock();
        series
            .gauges
            .entry(meta.key())
            .or_insert_with(|| Arc::new(GaugeSeries::new(meta)))
            .clone()
    }

    fn histogram(&self, key: &Key) -> Self::Histogram {
        let leaves = self.histogram_leaves(key.name());
        let bounds = self.bounds(key.name()).clone();
        let meta = meta_of(key, &leaves);
        let mut series = self.canonical.lock();
        series
            .histograms
            .entry(meta.key())
            .or_insert_with(|| Arc::new(HistogramSeries::new(meta, bounds)))
            .clone()
    }
}

fn meta_of(key: &Key, leaves: &[&str]) -> Meta {
    Meta::new(key, leaves).unwrap_or_else(|_| {
        // Unreachable: registration checks the key first. Keep the series out of the store.
        let mut meta = Meta::overflow(key.name().into(), leaves);
        meta.history = Err("refused".to_owned());
        meta
    })
}

impl Shared {
    pub(crate) fn refuse(&self, reason: Reason, message: String) {
        let i = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.refused[i].fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "stats recorder: not recorded ({}): {message}",
            reason.as_str()
        );
        self.last_refusal.lock().insert(reason, message);
    }

    pub(crate) fn refusals(&self) -> Refusals {
        let counts = Reason::ALL
            .iter()
            .zip(&self.refused)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect();
        Refusals {
            counts,
            last: self.last_refusal.lock().clone(),
            overflowed: self.overflowed.load(Ordering::Relaxed),
        }
    }

    /// Metric name -> its Prometheus name, for the names the exposition shows.
    pub(crate) fn exposed_names(&self) -> HashMap<Arc<str>, String> {
        self.families
            .lock()
            .exposed
            .iter()
            .map(|(prom, name)| (name.clone(), prom.clone()))
            .collect()
    }

    fn note_history(&self, meta: &Meta) {
        if let Err(message) = &meta.history {
            self.refuse(Reason::Name, message.clone());
        }
    }

    async fn drain(&self, at: Timestamp) -> Result<()> {
        let history = self.history.as_ref().ok_or_else(no_history)?;
        let mut state = self.drain.lock().await;
        let calendar = history.config().calendar();
        let starts = history
            .config()
            .granularity_list()
            .iter()
            .map(|&g| Ok(calendar.floor(at, g)?.as_second()))
            .collect::<Result<Vec<i64>>>()?;
        if starts != state.starts {
            state.starts = starts;
            state.epoch += 1;
        }
        let epoch = state.epoch;

        let mut groups: BTreeMap<(Arc<str>, u8), Group> = BTreeMap::new();
        let storage = self.registry.storage();
        for s in storage.counters() {
            self.collect_counter(&s, &mut groups);
        }
        for s in storage.gauges() {
            self.collect_gauge(&s, epoch, &mut groups);
        }
        for s in storage.histograms() {
            self.collect_histogram(&s, &mut groups);
        }

        for ((metric, op), group) in groups {
            let op = OPS[usize::from(op)];
            let outcome = match Fields::from_pairs(group.fields) {
                Ok(fields) => match history.write(op, &metric, at, &fields).await {
                    Ok(()) => Outcome::Written,
                    Err(e) if e.is_retryable() => Outcome::Retry,
                    Err(e) => {
                        self.refuse(Reason::Write, format!("metric {metric:?}: {e}"));
                        Outcome::Refused
                    }
                },
                Err(e) => {
                    self.refuse(Reason::Write, format!("metric {metric:?}: {e}"));
                    Outcome::Refused
                }
            };
            for done in group.done {
                done(outcome);
            }
        }
        drop(state);
        Ok(())
    }

    fn collect_counter(&self, s: &Arc<CounterSeries>, groups: &mut Groups) {
        let Ok(prefix) = &s.meta.history else { return };
        let total = s.total.load(Ordering::Relaxed);
        let drained = s.drained.load(Ordering::Relaxed);
        let delta = total.saturating_sub(drained);
        if delta == 0 {
            return;
        }
        let Ok(delta_i64) = i64::try_from(delta) else {
            self.refuse(
                Reason::Value,
                format!(
                    "counter {:?} {prefix}count: an increment of {delta} is beyond i64::MAX",
                    s.meta.name
                ),
            );
            s.drained.store(total, Ordering::Relaxed);
            return;
        };
        let series = s.clone();
        group(groups, &s.meta.name, Op::Inc).push(
            format!("{prefix}count"),
            Number::Int(delta_i64),
            Box::new(move |outcome| {
                if outcome != Outcome::Retry {
                    series.drained.store(total, Ordering::Relaxed);
                }
            }),
        );
    }

    fn collect_gauge(&self, s: &Arc<GaugeSeries>, epoch: u64, groups: &mut Groups) {
        let Ok(prefix) = &s.meta.history else { return };
        let touched = s.touched.swap(false, Ordering::Relaxed);
        let written = s.written.load(Ordering::Relaxed);
        if !touched && (written == 0 || written == epoch) {
            return;
        }
        let value = f64::from_bits(s.value.load(Ordering::Relaxed));
        // The next interval starts at the current value.
        let max = f64::from_bits(s.max.swap(value.to_bits(), Ordering::Relaxed));
        let min = f64::from_bits(s.min.swap(value.to_bits(), Ordering::Relaxed));
        // A value set between the load and the swaps belongs to the next interval too.
        let now = f64::from_bits(s.value.load(Ordering::Relaxed));
        fetch_float(&s.max, |m| now > m || m.is_nan(), now);
        fetch_float(&s.min, |m| now < m || m.is_nan(), now);
        s.written.store(epoch, Ordering::Relaxed);
        for (leaf, v, op) in [
            ("last", value, Op::Set),
            ("max", max, Op::Max),
            ("min", min, Op::Min),
        ] {
            if !v.is_finite() {
                self.refuse(
                    Reason::Value,
                    format!(
                        "gauge {:?} {prefix}{leaf}: {v} is not a finite number",
                        s.meta.name
                    ),
                );
                continue;
            }
            let series = s.clone();
            let undo: Done = Box::new(move |outcome| {
                if outcome == Outcome::Retry {
                    match leaf {
                        "last" => series.touched.store(true, Ordering::Relaxed),
                        "max" => fetch_float(&series.max, |m| v > m || m.is_nan(), v),
                        _ => fetch_float(&series.min, |m| v < m || m.is_nan(), v),
                    }
                }
            });
            group(groups, &s.meta.name, op).push(
                format!("{prefix}{leaf}"),
                Number::Float(v + 0.0),
                undo,
            );
        }
    }

    fn collect_histogram(&self, s: &Arc<HistogramSeries>, groups: &mut Groups) {
        let refused = s.refused.swap(0, Ordering::Relaxed);
        if refused > 0 {
            let i = Reason::ALL
                .iter()
                .position(|r| *r == Reason::Value)
                .expect("listed");
            self.refused[i].fetch_add(refused - 1, Ordering::Relaxed);
            self.refuse(
                Reason::Value,
                format!(
                    "histogram {:?}: {refused} observations that are not finite numbers",
                    s.meta.name
                ),
            );
        }
        let Ok(prefix) = &s.meta.history else { return };
        let totals: Vec<u64> = s
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let drained = s.drained.lock().clone();
        let deltas: Vec<u64> = totals.iter().zip(&drained).map(|(t, d)| t - d).collect();
        let count: u64 = deltas.iter().sum();
        // Swapped even without new counts: an observation counted by the last drain may have
        // added its sum and extremes only after that drain took them.
        let sum = f64::from_bits(s.sum.swap(0f64.to_bits(), Ordering::Relaxed));
        let min = f64::from_bits(s.min.swap(f64::INFINITY.to_bits(), Ordering::Relaxed));
        let max = f64::from_bits(s.max.swap(f64::NEG_INFINITY.to_bits(), Ordering::Relaxed));
        let name = &s.meta.name;
        if count > 0 || sum.to_bits() != 0 {
            let Ok(count_i64) = i64::try_from(count) else {
                // More than i64::MAX observations in one drain: not in this universe.
                self.refuse(
                    Reason::Value,
                    format!("histogram {name:?}: {count} observations in one drain"),
                );
                *s.drained.lock() = totals;
                return;
            };
            let inc = group(groups, name, Op::Inc);
            if count > 0 {
                inc.fields
                    .push((format!("{prefix}count"), Number::Int(count_i64)));
                let mut cumulative = 0i64;
                for (field, delta) in s.bounds.fields.iter().zip(&deltas) {
                    cumulative =
                        cumulative.saturating_add(i64::try_from(*delta).unwrap_or(i64::MAX));
                    inc.fields
                        .push((format!("{prefix}{field}"), Number::Int(cumulative)));
                }
            }
            inc.fields
                .push((format!("{prefix}sum"), Number::Float(sum + 0.0)));
            let series = s.clone();
            inc.done.push(Box::new(move |outcome| {
                if outcome == Outcome::Retry {
                    crate::series::add_float(&series.sum, sum);
                } else {
                    let mut drained = series.drained.lock();
                    for (d, t) in drained.iter_mut().zip(&totals) {
                        *d = (*d).max(*t);
                    }
                }
            }));
        }
        for (leaf, v, op) in [("max", max, Op::Max), ("min", min, Op::Min)] {
            if !v.is_finite() {
                continue;
            }
            let series = s.clone();
            group(groups, name, op).push(
                format!("{prefix}{leaf}"),
                Number::Float(v),
                Box::new(move |outcome| {
                    if outcome == Outcome::Retry {
                        let cell = if leaf == "max" {
                            &series.max
                        } else {
                            &series.min
                        };
                        let higher = leaf == "max";
                        fetch_float(cell, |m| if higher { v > m } else { v < m }, v);
                    }
                }),
            );
        }
    }

    /// Gets the series of `key` from the registry, or (the slow path) checks the key, its
    /// kind and the cardinality limit, then finds or creates its canonical series (or the
    /// metric's overflow series), under the families lock so that the limit is exact under
    /// races. `registered` gets or creates through the registry (so the key as called finds
    /// its series on the fast path next time); `direct` gets or creates the canonical series
    /// without adding `key` to the registry (past the limits, memory stays bounded).
    fn register<S: Series>(&self, key: &Key, leaves: &[&str]) -> Option<S> {
        let registry = &self.registry;
        let kind = S::KIND;
        if let Some(series) = S::get(registry, key) {
            return Some(series);
        }
        let canonical = match Meta::new(key, leaves) {
            Ok(meta) => meta.key(),
            Err((reason, message)) => {
                self.refuse(reason, message);
                return None;
            }
        };
        let storage = self.registry.storage();
        let mut families = self.families.lock();
        let name: Arc<str> = key.name().into();
        if !families.by_name.contains_key(&name) {
            let prom = prometheus_name(&name, true);
            match families.exposed.get(&prom) {
                Some(other) => self.refuse(
                    Reason::Exposition,
                    format!(
                        "metric {name:?}: its Prometheus name {prom} is already {other:?}'s; it is stored but not exposed"
                    ),
                ),
                None => {
                    families.exposed.insert(prom, name.clone());
                }
            }
            families.by_name.insert(
                name.clone(),
                Family {
                    kind,
                    label_sets: 0,
                    aliases: 0,
                },
            );
        }
        let family = families.by_name.get_mut(&name).expect("inserted above");
        if family.kind != kind {
            let message = format!(
                "metric {name:?} is a {}, not recorded as a {}",
                family.kind.name(),
                kind.name()
            );
            drop(families);
            self.refuse(Reason::Kind, message);
            return None;
        }
        let known = storage.known(kind, &canonical);
        let (series, fresh) = if known || family.label_sets < self.max_label_sets {
            if !known {
                family.label_sets += 1;
            }
            let alias = *key != canonical;
            let series = if !alias {
                S::registered(registry, key)
            } else if family.aliases < self.max_label_sets {
                family.aliases += 1;
                S::registered(registry, key)
            } else {
                S::direct(storage, &canonical)
            };
            (series, !known)
        } else {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            let overflow = Key::from_parts(
                key.name().to_owned(),
                vec![Label::new(OVERFLOW_LABEL, "true")],
            );
            let fresh = !storage.known(kind, &overflow);
            (S::direct(storage, &overflow), fresh)
        };
        drop(families);
        if fresh {
            self.note_history(series.meta());
        }
        Some(series)
    }
}

/// What registration needs of each kind of series.
trait Series: Sized {
    const KIND: Kind;
    /// The series of `key` as called, from the registry (the fast path).
    fn get(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Option<Self>;
    /// Gets or creates through the registry: the key as called finds its series on the fast
    /// path next time.
    fn registered(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Self;
    /// Gets or creates the canonical series without adding `key` to the registry (past the
    /// limits: memory stays bounded).
    fn direct(storage: &SeriesStorage, key: &Key) -> Self;
    fn meta(&self) -> &Meta;
}

impl Series for Arc<CounterSeries> {
    const KIND: Kind = Kind::Counter;
    fn get(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Option<Self> {
        registry.get_counter(key)
    }
    fn registered(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Self {
        registry.get_or_create_counter(key, Arc::clone)
    }
    fn direct(storage: &SeriesStorage, key: &Key) -> Self {
        storage.counter(key)
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
}

impl Series for Arc<GaugeSeries> {
    const KIND: Kind = Kind::Gauge;
    fn get(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Option<Self> {
        registry.get_gauge(key)
    }
    fn registered(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Self {
        registry.get_or_create_gauge(key, Arc::clone)
    }
    fn direct(storage: &SeriesStorage, key: &Key) -> Self {
        storage.gauge(key)
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
}

impl Series for Arc<HistogramSeries> {
    const KIND: Kind = Kind::Histogram;
    fn get(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Option<Self> {
        registry.get_histogram(key)
    }
    fn registered(registry: &Registry<Key, SeriesStorage>, key: &Key) -> Self {
        registry.get_or_create_histogram(key, Arc::clone)
    }
    fn direct(storage: &SeriesStorage, key: &Key) -> Self {
        storage.histogram(key)
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
}

const OPS: [Op; 4] = [Op::Inc, Op::Set, Op::Max, Op::Min];

fn op_index(op: Op) -> u8 {
    match op {
        Op::Inc => 0,
        Op::Set => 1,
        Op::Max => 2,
        _ => 3,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    /// Retryable: keep the values for the next drain.
    Retry,
    Refused,
}

type Done = Box<dyn FnOnce(Outcome) + Send>;
type Groups = BTreeMap<(Arc<str>, u8), Group>;

#[derive(Default)]
struct Group {
    fields: Vec<(String, Number)>,
    done: Vec<Done>,
}

impl Group {
    fn push(&mut self, path: String, value: Number, done: Done) {
        self.fields.push((path, value));
        self.done.push(done);
    }
}

fn group<'a>(groups: &'a mut Groups, metric: &Arc<str>, op: Op) -> &'a mut Group {
    groups.entry((metric.clone(), op_index(op))).or_default()
}

#[derive(Debug, Default)]
struct DrainState {
    starts: Vec<i64>,
    epoch: u64,
}

/// Drains at every whole multiple of `interval` until the recorder is dropped or shut down.
async fn drain_task(shared: Weak<Shared>, stop: Arc<Notify>, interval: Duration) {
    let step = i128::try_from(interval.as_nanos()).unwrap_or(i128::MAX);
    loop {
        let now = Timestamp::now().as_nanosecond();
        let boundary = (now.div_euclid(step) + 1) * step;
        let wait = Duration::from_nanos(u64::try_from(boundary - now).unwrap_or(u64::MAX));
        let stopped = stop.notified();
        match shared.upgrade() {
            Some(strong) if !strong.stopped.load(Ordering::SeqCst) => {}
            _ => return,
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stopped => return,
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if strong.stopped.load(Ordering::SeqCst) {
            return;
        }
        // The end of the interval this drain closes.
        let at = Timestamp::from_nanosecond(boundary)
            .ok()
            .and_then(|t| t.checked_sub(SignedDuration::from_nanos(1)).ok())
            .unwrap_or_else(Timestamp::now);
        if let Err(e) = strong.drain(at).await {
            strong.refuse(Reason::Write, format!("drain at {at}: {e}"));
        }
    }
}

impl Recorder for StatsRecorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.shared
            .register::<Arc<CounterSeries>>(key, COUNTER_LEAVES)
            .map_or_else(Counter::noop, Counter::from_arc)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.shared
            .register::<Arc<GaugeSeries>>(key, GAUGE_LEAVES)
            .map_or_else(Gauge::noop, Gauge::from_arc)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        // The fast path first: the leaves are only needed to register.
        if let Some(series) = self.shared.registry.get_histogram(key) {
            return Histogram::from_arc(series);
        }
        let leaves = self.shared.registry.storage().histogram_leaves(key.name());
        self.shared
            .register::<Arc<HistogramSeries>>(key, &leaves)
            .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}

impl StatsRecorder {
    fn describe(&self, key: KeyName, description: SharedString) {
        self.shared
            .descriptions
            .lock()
            .insert(key.as_str().to_owned(), description.into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(labels: &[(&'static str, &'static str)]) -> Key {
        Key::from_parts(
            "m",
            labels
                .iter()
                .map(|(k, v)| Label::new(*k, *v))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn keys_as_called_reach_their_canonical_series_on_the_fast_path() {
        let recorder = StatsRecorder::builder()
            .max_label_sets(2)
            .unwrap()
            .build()
            .unwrap();
        let registry = &recorder.shared.registry;
        let sorted = key(&[("a", "1"), ("b", "2")]);
        let reversed = key(&[("b", "2"), ("a", "1")]);
        let metadata = metrics::Metadata::new("t", metrics::Level::INFO, None);
        recorder.register_counter(&sorted, &metadata).increment(1);
        recorder.register_counter(&reversed, &metadata).increment(2);
        // Both keys are in the registry (the second as an alias), one series behind them.
        let (a, b) = (
            registry.get_counter(&sorted).unwrap(),
            registry.get_counter(&reversed).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.total.load(Ordering::Relaxed), 3);
        assert_eq!(registry.storage().counters().len(), 1);
        // Spellings past the alias limit (2) still count into the one series, without
        // entering the registry.
        for spelled in [
            key(&[("b", "2"), ("a", "1"), ("e", "")]),
            key(&[("a", "1"), ("b", "2"), ("f", "")]),
            key(&[("b", "2"), ("a", "1"), ("g", "")]),
        ] {
            recorder.register_counter(&spelled, &metadata).increment(1);
        }
        assert_eq!(a.total.load(Ordering::Relaxed), 6);
        assert_eq!(registry.storage().counters().len(), 1);
        let families = recorder.shared.families.lock();
        let family = &families.by_name["m"];
        assert_eq!((family.label_sets, family.aliases), (1, 2));
        drop(families);
        assert_eq!(recorder.handle().refusals().overflowed, 0);
    }

    #[tokio::test]
    async fn drains_at_the_edges_of_time_are_errors_not_panics() {
        use stats_backend_atomics::AtomicsStore;
        use stats_core::tracker::Config;

        let tracker =
            BufferedTracker::new(Arc::new(AtomicsStore::default()), Config::new()).unwrap();
        let recorder = StatsRecorder::builder()
            .history(tracker)
            .manual()
            .build()
            .unwrap();
        let metadata = metrics::Metadata::new("t", metrics::Level::INFO, None);
        recorder.register_counter(&key(&[]), &metadata).increment(5);
        // Before the calendar's first bucket: an error naming the range, nothing taken.
        let err = recorder.handle().drain(Timestamp::MIN).await.unwrap_err();
        assert!(err.to_string().contains("range"), "{err}");
        // The last instant there is: written in its buckets, as asked (so a later drain has
        // nothing left to write).
        recorder.handle().drain(Timestamp::MAX).await.unwrap();
        let history = recorder.handle().tracker().unwrap().clone();
        let now: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        recorder.handle().drain(now).await.unwrap();
        let day = "1d".parse().unwrap();
        let total = history.total("m", now, now, day, "count").await.unwrap();
        assert_eq!(total, None);
        assert_eq!(recorder.handle().refusals().total(), 0);
        // Intervals out of range are refused, naming the interval.
        for bad in [Duration::ZERO, Duration::from_nanos(999_999), Duration::MAX] {
            let err = StatsRecorder::builder().interval(bad).unwrap_err();
            assert!(err.to_string().contains("interval"), "{err}");
        }
        assert!(StatsRecorder::builder().max_label_sets(0).is_err());
        // No history: drains and flushes say so.
        let at: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let bare = StatsRecorder::builder().build().unwrap().handle();
        assert!(
            bare.drain(at)
                .await
                .unwrap_err()
                .to_string()
                .contains("no history")
        );
        assert!(bare.flush().await.is_err());
        assert!(bare.shutdown().await.is_empty());
    }
}
