//! [`BufferedTracker`]: the tracker, coalescing events before they fan out to granularities.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use stats_core::jiff::Timestamp;
use stats_core::series::Series;
use stats_core::tracker::{
    Blanks, Config, SYSTEM_KEY, Status, Tracker, check_user_key, escape_field,
};
use stats_core::{
    Batch, Capabilities, Fields, Granularity, Key, MetricStore, Number, Op, Result, Store, Values,
};

use crate::coalescing::Coalescing;
use crate::engine::{BatchSink, Engine, Planned, Room, Window};
use crate::fold::PendingDoc;
use crate::store::KeyWindow;
use crate::{BufferStats, Options};

/// The bucket starts of one instant, one per granularity of the tracker.
#[derive(Debug)]
pub(crate) struct Starts {
    granularities: Arc<[Granularity]>,
    starts: Box<[i64]>,
    /// A hash of `starts`, compared first (documents of one metric are found by it).
    hash: u64,
}

impl Starts {
    fn new(granularities: Arc<[Granularity]>, starts: Box<[i64]>) -> Starts {
        use std::hash::BuildHasher;
        let hash = foldhash::fast::FixedState::with_seed(0).hash_one(&*starts);
        Starts {
            granularities,
            starts,
            hash,
        }
    }

    /// `metric` in these buckets, for messages: `orders in its 1m bucket of
    /// 2026-12-01T10:05:00Z (and its 1h, 1d buckets)`.
    fn describe(&self, metric: &str) -> String {
        let (Some(first), Some(&start)) = (self.granularities.first(), self.starts.first()) else {
            return metric.to_owned();
        };
        let at = stats_core::jiff::Timestamp::from_second(start)
            .map_or_else(|_| start.to_string(), |t| t.to_string());
        let others: Vec<String> = self.granularities[1..]
            .iter()
            .map(ToString::to_string)
            .collect();
        if others.is_empty() {
            format!("{metric} in its {first} bucket of {at}")
        } else {
            format!(
                "{metric} in its {first} bucket of {at} (and its {} buckets)",
                others.join(", ")
            )
        }
    }

    /// The same starts (of the same tracker's granularities).
    fn same(&self, other: &Starts) -> bool {
        self.hash == other.hash && self.starts == other.starts
    }
}

/// How the events of one metric in one segment may be reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Only increments: the order of documents does not change the sums.
    Inc,
    /// Only integer maxima.
    Max,
    /// Only integer minima.
    Min,
    /// Anything else: the order counts.
    Other,
}

impl Class {
    fn of(op: Op, fields: &Fields) -> Class {
        let ints = || fields.iter().all(|(_, n)| !n.is_float());
        match op {
            Op::Inc => Class::Inc,
            Op::Max if ints() => Class::Max,
            Op::Min if ints() => Class::Min,
            _ => Class::Other,
        }
    }
}

/// The pending documents of one metric: one per set of bucket starts.
struct MetricDocs {
    /// A key of the metric (any bucket), to build the others from.
    base: Key,
    class: Class,
    docs: Vec<(Arc<Starts>, PendingDoc)>,
    /// The hashes of the documents' starts, in the same order: scanned without touching the
    /// documents (which are spread over memory).
    hashes: Vec<u64>,
    /// The fields the system index counts for each event of this metric.
    system: Option<Fields>,
}

impl MetricDocs {
    fn find(&self, starts: &Arc<Starts>) -> Option<usize> {
        let mut at = self.hashes.len();
        while at > 0 {
            at -= 1;
            if self.hashes[at] == starts.hash {
                let s = &self.docs[at].0;
                if Arc::ptr_eq(s, starts) || s.same(starts) {
                    return Some(at);
                }
            }
        }
        None
    }

    fn keys(&self, starts: &Starts) -> Vec<Key> {
        starts
            .granularities
            .iter()
            .zip(starts.starts.iter())
            .map(|(&g, &s)| self.base.with_bucket(g, s))
            .collect()
    }
}

/// Events whose order across documents does not matter. A write that would need that order
/// (a `set` in a metric holding several documents, say) starts a new segment.
#[derive(Default)]
struct Segment {
    metrics: HashMap<Arc<str>, MetricDocs, foldhash::fast::RandomState>,
    order: Vec<Arc<str>>,
}

/// The segments of a partition, oldest first; writes go to the last.
#[derive(Default)]
pub(crate) struct FanWindow {
    segments: Vec<Segment>,
    /// Reused by every write, so that a write allocates nothing.
    scratch: Vec<crate::fold::Planned>,
}

impl Window for FanWindow {
    fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn documents(&self) -> usize {
        self.segments
            .iter()
            .flat_map(|s| s.metrics.values())
            .map(|m| m.docs.len())
            .sum()
    }

    fn drain(self, sink: &mut BatchSink) -> Result<()> {
        let mut scratch = Vec::new();
        for mut segment in self.segments {
            for metric in segment.order {
                let Some(docs) = segment.metrics.remove(&metric) else {
                    continue;
                };
                if let [(starts, doc)] = docs.docs.as_slice() {
                    // One document: all its keys in one write.
                    let keys = docs.keys(starts);
                    let len = doc.units() * keys.len();
                    doc.drain_into(&keys, sink.batch_for(len), &mut scratch)?;
                    continue;
                }
                // Several: merged per key (their order does not matter, see `Segment`).
                let mut merged = KeyWindow::default();
                for (starts, doc) in &docs.docs {
                    for key in docs.keys(starts) {
                        merged.absorb(key, doc)?;
                    }
                }
                merged.drain(sink)?;
            }
        }
        Ok(())
    }
}

/// One event, ready to fold.
struct Event<'e> {
    metric: &'e str,
    starts: &'e Arc<Starts>,
    op: Op,
    fields: &'e Fields,
    class: Class,
    /// The system index's metric, when it is on.
    system: Option<&'e str>,
}

impl FanWindow {
    /// Folds `event` in (all or nothing), adding at most `room` entries; returns the entries
    /// added, or `None` when more room is needed.
    fn insert(&mut self, event: &Event<'_>, room: &Room<'_>) -> Result<Option<isize>> {
        // The usual case: the metric already has a document at these starts in the open
        // segment, and the write may join it.
        if event.system.is_none()
            && let Some(segment) = self.segments.last_mut()
            && let Some(docs) = segment.metrics.get_mut(event.metric)
            && let Some(index) = docs.find(event.starts)
            && (docs.docs.len() == 1 || (event.class != Class::Other && event.class == docs.class))
        {
            let name = || event.starts.describe(event.metric);
            let doc = &mut docs.docs[index].1;
            // An entry becomes one leaf update per granularity when written: it counts so.
            let delta = doc.plan(event.op, event.fields, &name, &mut self.scratch)?
                * event.starts.starts.len() as isize;
            if !room.reserve(delta) {
                return Ok(None);
            }
            doc.commit(&self.scratch, event.fields, None);
            if docs.class != event.class {
                docs.class = Class::Other;
            }
            return Ok(Some(delta));
        }
        self.insert_slow(event, room)
    }

    fn insert_slow(&mut self, event: &Event<'_>, room: &Room<'_>) -> Result<Option<isize>> {
        if self.segments.is_empty() {
            self.segments.push(Segment::default());
        }
        let open = self.segments.last().expect("one segment at least");
        let fits = match open.metrics.get(event.metric) {
            None => true,
            Some(docs) => match docs.find(event.starts) {
                Some(_) if docs.docs.len() == 1 => true,
                _ => event.class != Class::Other && event.class == docs.class,
            },
        };
        let new_segment = !fits;
        let segment = if new_segment {
            &Segment::default()
        } else {
            self.segments.last().expect("one segment at least")
        };
        let name = || event.starts.describe(event.metric);
        let empty = PendingDoc::default();
        let existing = |metric: &str| {
            segment
                .metrics
                .get(metric)
                .and_then(|d| d.find(event.starts).map(|i| &d.docs[i].1))
                .unwrap_or(&empty)
        };
        let mut planned = Vec::new();
        let mut delta = existing(event.metric).plan(event.op, event.fields, &name, &mut planned)?;
        let system_fields = match event.system {
            Some(system) => Some(
                match segment
                    .metrics
                    .get(event.metric)
                    .and_then(|d| d.system.clone())
                {
                    Some(fields) => fields,
                    None => Fields::from_pairs([
                        ("count".to_owned(), Number::Int(1)),
                        (
                            format!("keys.{}", escape_field(event.metric)),
                            Number::Int(1),
                        ),
                    ])?,
                },
            )
            .map(|f| (system, f)),
            None => None,
        };
        let mut system_planned = Vec::new();
        if let Some((system, fields)) = &system_fields {
            delta += existing(system).plan(Op::Inc, fields, &name, &mut system_planned)?;
        }
        // An entry becomes one leaf update per granularity when written: it counts so.
        let delta = delta * event.starts.starts.len() as isize;
        if !room.reserve(delta) {
            return Ok(None);
        }
        if new_segment {
            self.segments.push(Segment::default());
        }
        let segment = self.segments.last_mut().expect("one segment at least");
        let system_copy = system_fields.as_ref().map(|(_, f)| f.clone());
        let doc = segment.doc(event.metric, event.starts, event.class, system_copy)?;
        doc.commit(&planned, event.fields, None);
        if let Some((system, fields)) = &system_fields {
            let doc = segment.doc(system, event.starts, Class::Inc, None)?;
            doc.commit(&system_planned, fields, None);
        }
        Ok(Some(delta))
    }
}

impl Segment {
    /// The pending document of `metric` at `starts`, created if missing; `class` joins the
    /// metric's.
    fn doc(
        &mut self,
        metric: &str,
        starts: &Arc<Starts>,
        class: Class,
        system: Option<Fields>,
    ) -> Result<&mut PendingDoc> {
        if !self.metrics.contains_key(metric) {
            let base = Key::bucket(metric, starts.granularities[0], starts.starts[0])?;
            let name: Arc<str> = Arc::from(metric);
            self.order.push(name.clone());
            self.metrics.insert(
                name,
                MetricDocs {
                    base,
                    class,
                    docs: Vec::new(),
                    hashes: Vec::new(),
                    system: None,
                },
            );
        }
        let docs = self.metrics.get_mut(metric).expect("inserted above");
        if docs.class != class {
            docs.class = Class::Other;
        }
        if docs.system.is_none() {
            docs.system = system;
        }
        let index = match docs.find(starts) {
            Some(i) => i,
            None => {
                docs.docs.push((starts.clone(), PendingDoc::default()));
                docs.hashes.push(starts.hash);
                docs.docs.len() - 1
            }
        };
        Ok(&mut docs.docs[index].1)
    }
}

static TRACKERS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Bucket starts by (tracker, minute or second): see [`BufferedTracker::starts`].
    static STARTS: RefCell<HashMap<(u64, i64), Arc<Starts>, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

/// Cached minutes and seconds per thread, over all trackers, before the cache starts over.
const STARTS_CACHED: usize = 4_096;

/// The tracker's view of the store: writes and status reads pass through, range reads merge
/// the pending documents.
struct Overlay {
    store: Arc<dyn MetricStore>,
    engine: Arc<Engine<FanWindow>>,
}

impl fmt::Debug for Overlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overlay")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Store for Overlay {
    fn name(&self) -> &'static str {
        self.store.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }
}

#[async_trait]
impl MetricStore for Overlay {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        self.store.apply(batch).await
    }

    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
        // Only status documents are read this way; pending documents are buckets.
        self.store.read(keys).await
    }

    async fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>> {
        let _gates = self.engine.read_gates().await;
        let mut docs = self.store.range(metric, granularity, starts).await?;
        self.engine.each_window(|window| {
            for segment in &window.segments {
                let Some(pending) = segment.metrics.get(metric) else {
                    continue;
                };
                for (at, doc) in &pending.docs {
                    let Some(g) = at.granularities.iter().position(|&g| g == granularity) else {
                        continue;
                    };
                    if let Ok(i) = starts.binary_search(&at.starts[g]) {
                        let key = pending.base.with_bucket(granularity, at.starts[g]);
                        doc.overlay(&key, &mut docs[i])?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(docs)
    }

    async fn remove(&self, keys: &[Key]) -> Result<()> {
        self.engine.flush_all().await?;
        self.store.remove(keys).await
    }

    async fn remove_metric(&self, metric: &str) -> Result<u64> {
        self.engine.flush_all().await?;
        self.store.remove_metric(metric).await
    }

    async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
        self.engine.flush_all().await?;
        self.store.purge(granularity, before).await
    }
}

/// The tracker for high rates: events are coalesced in memory before they fan out to the
/// granularities, and written in batches.
///
/// Events with the same metric and the same bucket starts (all events of one minute, with the
/// default granularities) fold into one pending document, kept per leaf as
/// [`Buffered`](crate::Buffered) keeps them. At flush, each pending document becomes one
/// write per granularity, and documents of one metric that meet in a coarser bucket (the
/// minutes of one hour) are merged first. So a million events of one minute cost one write
/// per granularity and leaf, not seven million leaf updates. Bucket starts are computed once
/// per minute and thread, not per event and granularity.
///
/// Guarantees, as for [`Buffered`](crate::Buffered): the values stored are those of the
/// unbuffered [`Tracker`] (integers exactly; float sums to the last bits, compensated);
/// `values` and `total` see pending events; every batch carries an id and is retried with it
/// (exactly once on stores with idempotent batches); a batch that cannot be written stays
/// pending, bounded by [`Options::max_pending`], and [`shutdown`](BufferedTracker::shutdown)
/// writes everything or returns what it could not write; a crash loses what is pending.
/// Order: events of one metric keep their order where it matters (a `set`, a maximum after an
/// increment); increments of different minutes are summed in any order.
///
/// ```
/// use std::sync::Arc;
///
/// use stats_buffer::BufferedTracker;
/// use stats_core::tracker::Config;
/// use stats_core::values;
/// # use stats_backend_atomics::AtomicsStore as AnyStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(AnyStore::default());
/// let tracker = BufferedTracker::new(store.clone(), Config::new())?;
/// let at = "2026-11-29T10:15:00Z".parse()?;
/// for _ in 0..100_000 {
///     tracker.track("orders", at, &values!({"count": 1, "amount": 2})).await?;
/// }
/// let day = "1d".parse()?;
/// assert_eq!(tracker.total("orders", at, at, day, "count").await?, Some(100_000.into()));
/// tracker.flush().await?;
/// let stats = tracker.stats();
/// // 100,000 events x 2 fields x 7 granularities, written as 14 leaf updates per flush
/// // (a flush every second, in one batch each).
/// assert_eq!((stats.tracked, stats.flushed), (1_400_000, 14 * stats.batches));
/// assert!(tracker.shutdown().await.is_empty());
/// # Ok(()) }
/// ```
pub struct BufferedTracker {
    engine: Arc<Engine<FanWindow>>,
    reader: Tracker,
    granularities: Arc<[Granularity]>,
    system: Option<String>,
    id: u64,
}

impl fmt::Debug for BufferedTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedTracker")
            .field("config", self.reader.config())
            .field("engine", &self.engine)
            .finish()
    }
}

impl BufferedTracker {
    /// A buffered tracker over `store` with the default [`Coalescing`] settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](stats_core::Error::InvalidInput) outside a tokio runtime.
    pub fn new(store: Arc<dyn MetricStore>, config: Config) -> Result<Self> {
        Self::with(store, config, Coalescing::new())
    }

    /// A buffered tracker over `store` with `settings`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](stats_core::Error::InvalidInput) outside a tokio runtime.
    pub fn with(store: Arc<dyn MetricStore>, config: Config, settings: Coalescing) -> Result<Self> {
        let engine = Arc::new(Engine::new(store.clone(), settings)?);
        let granularities: Arc<[Granularity]> = config.granularity_list().into();
        let system = config
            .system_index_enabled()
            .then(|| config.metric(SYSTEM_KEY));
        let reader = Tracker::new(
            Arc::new(Overlay {
                store,
                engine: engine.clone(),
            }),
            config,
        );
        Ok(BufferedTracker {
            engine,
            reader,
            granularities,
            system,
            id: TRACKERS.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.reader.config()
    }

    /// Counts `values` at `at` (an increment), buffered. See [`Tracker::track`].
    ///
    /// # Errors
    /// As [`Tracker::track`] for the key and values; [`BufferError`](crate::BufferError)s
    /// (as [`Error`](stats_core::Error)) at the memory bound with [`Overflow::Reject`](crate::Overflow::Reject)
    /// and after shutdown. Nothing of a failed call is kept.
    pub async fn track(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Inc, key, at, &Fields::from_values(values)?)
            .await
    }

    /// Sets `values` at `at`, buffered. See [`Tracker::assert`].
    ///
    /// # Errors
    /// As [`BufferedTracker::track`].
    pub async fn assert(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Set, key, at, &Fields::from_values(values)?)
            .await
    }

    /// Keeps the maximum of `values` at `at`, buffered. See [`Tracker::track_max`].
    ///
    /// # Errors
    /// As [`BufferedTracker::track`].
    pub async fn track_max(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Max, key, at, &Fields::from_values(values)?)
            .await
    }

    /// Keeps the minimum of `values` at `at`, buffered. See [`Tracker::track_min`].
    ///
    /// # Errors
    /// As [`BufferedTracker::track`].
    pub async fn track_min(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Min, key, at, &Fields::from_values(values)?)
            .await
    }

    /// [`BufferedTracker::track`] at the current time.
    ///
    /// # Errors
    /// As [`BufferedTracker::track`].
    pub async fn track_now(&self, key: &str, values: &Values) -> Result<()> {
        self.track(key, Timestamp::now(), values).await
    }

    /// Writes `op` of already flattened `fields` (the fastest way in: no flattening per
    /// event; build the [`Fields`] once and reuse it).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use stats_buffer::BufferedTracker;
    /// use stats_core::tracker::Config;
    /// use stats_core::{Fields, Op, values};
    /// # use stats_backend_atomics::AtomicsStore as AnyStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tracker = BufferedTracker::new(Arc::new(AnyStore::default()), Config::new())?;
    /// let one_order = Fields::from_values(&values!({"count": 1}))?;
    /// let at = "2026-11-29T10:15:00Z".parse()?;
    /// tracker.write(Op::Inc, "orders", at, &one_order).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`BufferedTracker::track`].
    pub async fn write(&self, op: Op, key: &str, at: Timestamp, fields: &Fields) -> Result<()> {
        check_user_key(key)?;
        if fields.is_empty() {
            return Ok(());
        }
        let config = self.reader.config();
        let metric: Cow<'_, str> = match config.has_metric_prefix() {
            true => Cow::Owned(config.metric(key)),
            false => Cow::Borrowed(key),
        };
        let starts = self.starts(at)?;
        let partition = self.engine.partition_of(&*metric);
        let per_event = fields.len() + if self.system.is_some() { 2 } else { 0 };
        let event = Event {
            metric: &metric,
            starts: &starts,
            op,
            fields,
            class: Class::of(op, fields),
            system: self.system.as_deref(),
        };
        self.engine
            .write(
                &[partition],
                per_event * self.granularities.len(),
                |windows, room, added| match windows[0].insert(&event, room)? {
                    Some(delta) => {
                        added[0] = delta;
                        Ok(Planned::Done)
                    }
                    None => Ok(Planned::NeedRoom),
                },
            )
            .await
    }

    /// The bucket starts of `at`, from this thread's cache: per minute when every bucket
    /// boundary falls on a whole minute around `at` (the usual case), else per second.
    fn starts(&self, at: Timestamp) -> Result<Arc<Starts>> {
        let mut second = at.as_second();
        if at.subsec_nanosecond() < 0 {
            second -= 1;
        }
        let minute = second.div_euclid(60);
        // Minutes and seconds in one map: seconds are tagged by the low bit.
        let by_minute = (self.id, minute << 1);
        let by_second = (self.id, (second << 1) | 1);
        if let Some(hit) = STARTS.with(|c| {
            let cache = c.borrow();
            cache
                .get(&by_minute)
                .or_else(|| cache.get(&by_second))
                .cloned()
        }) {
            return Ok(hit);
        }
        let starts = Arc::new(self.compute_starts(at)?);
        let first = Timestamp::from_second(minute * 60);
        let last = Timestamp::from_second(minute * 60 + 59);
        let whole_minute = match (first, last) {
            (Ok(first), Ok(last)) => {
                self.compute_starts(first).is_ok_and(|s| s.same(&starts))
                    && self.compute_starts(last).is_ok_and(|s| s.same(&starts))
            }
            _ => false,
        };
        STARTS.with(|c| {
            let mut cache = c.borrow_mut();
            if cache.len() >= STARTS_CACHED {
                cache.clear();
            }
            let key = if whole_minute { by_minute } else { by_second };
            cache.insert(key, starts.clone());
        });
        Ok(starts)
    }

    fn compute_starts(&self, at: Timestamp) -> Result<Starts> {
        let calendar = self.reader.config().calendar();
        let starts = self
            .granularities
            .iter()
            .map(|&g| Ok(calendar.floor(at, g)?.as_second()))
            .collect::<Result<Box<[i64]>>>()?;
        Ok(Starts::new(self.granularities.clone(), starts))
    }

    /// The series of `key`, pending events included. See [`Tracker::values`].
    ///
    /// # Errors
    /// As [`Tracker::values`].
    pub async fn values(
        &self,
        key: &str,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        blanks: Blanks,
    ) -> Result<Series> {
        self.reader.values(key, from, to, granularity, blanks).await
    }

    /// The total of one path, pending events included. See [`Tracker::total`].
    ///
    /// # Errors
    /// As [`Tracker::total`].
    pub async fn total(
        &self,
        key: &str,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        path: &str,
    ) -> Result<Option<Number>> {
        self.reader.total(key, from, to, granularity, path).await
    }

    /// The system index's series, pending events included. See [`Tracker::system_values`].
    ///
    /// # Errors
    /// As [`Tracker::system_values`].
    pub async fn system_values(
        &self,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        blanks: Blanks,
    ) -> Result<Series> {
        self.reader
            .system_values(from, to, granularity, blanks)
            .await
    }

    /// Writes everything pending, then removes the metric. See [`Tracker::remove`].
    ///
    /// # Errors
    /// As [`Tracker::remove`], and the flush's error (then nothing is removed).
    pub async fn remove(&self, key: &str) -> Result<u64> {
        self.reader.remove(key).await
    }

    /// Sets the status of `key`, unbuffered. See [`Tracker::beam`].
    ///
    /// # Errors
    /// As [`Tracker::beam`].
    pub async fn beam(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.reader.beam(key, at, values).await
    }

    /// The status of `key`. See [`Tracker::scan`].
    ///
    /// # Errors
    /// As [`Tracker::scan`].
    pub async fn scan(&self, key: &str) -> Result<Option<Status>> {
        self.reader.scan(key).await
    }

    /// Writes everything pending now and waits for it.
    ///
    /// # Errors
    /// The store's error when a batch could not be written after its retries; it stays
    /// pending and is tried again on the next interval.
    pub async fn flush(&self) -> Result<()> {
        self.engine.flush_all().await
    }

    /// Refuses later events, writes everything pending and stops the partitions' tasks.
    /// Returns the batches that could not be written, each with its id (see
    /// [`Buffered::shutdown`](crate::Buffered::shutdown)); empty when everything was written.
    pub async fn shutdown(&self) -> Vec<Batch> {
        self.engine.shutdown().await
    }

    /// The counters. `tracked` counts leaf updates as the unbuffered tracker would send them
    /// (fields, plus the system index's two, times granularities); `flushed` those sent.
    pub fn stats(&self) -> BufferStats {
        self.engine.stats()
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        self.engine.options()
    }
}
