//! [`Buffered`]: any store, with its metric writes coalesced in memory and flushed in batches.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stats_core::{
    Batch, Capabilities, CasOutcome, CounterInfo, CounterStore, Error, Granularity, Key,
    MetricStore, Number, Result, Store, ThrottleStore, Values,
};

use crate::coalescing::Coalescing;
use crate::engine::{BatchSink, Engine, Planned, Window};
use crate::fold::{PendingDoc, Undo};
use tokio::sync::{OnceCell, RwLock};

use crate::{BufferStats, Flush, KeyedBuffer, OnError, Options};

/// Pending documents by key.
#[derive(Default)]
pub(crate) struct KeyWindow {
    docs: HashMap<Key, PendingDoc>,
    /// Keys in first-write order, so that flushes are deterministic.
    order: Vec<Key>,
}

impl KeyWindow {
    /// Folds `doc` after what `key` holds (a copy of it when `key` is new).
    pub(crate) fn absorb(&mut self, key: Key, doc: &PendingDoc) -> Result<()> {
        match self.docs.get_mut(&key) {
            Some(into) => {
                into.absorb(doc, &|| key.to_string())?;
            }
            None => {
                self.order.push(key.clone());
                self.docs.insert(key, doc.clone());
            }
        }
        Ok(())
    }
}

impl Window for KeyWindow {
    fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn documents(&self) -> usize {
        self.docs.len()
    }

    fn drain(mut self, sink: &mut BatchSink) -> Result<()> {
        let mut scratch = Vec::new();
        for key in self.order {
            if let Some(doc) = self.docs.remove(&key) {
                let len = doc.units();
                doc.drain_into(
                    std::slice::from_ref(&key),
                    sink.batch_for(len),
                    &mut scratch,
                )?;
            }
        }
        Ok(())
    }
}

/// Any store, with its metric writes coalesced in memory and flushed in batches.
///
/// `Buffered<S>` implements the store traits of `S`, so it goes wherever `S` went (a
/// [`Tracker`](stats_core::tracker::Tracker), an `Arc<dyn MetricStore>`):
///
/// - **metric writes** ([`MetricStore::apply`]) are checked and folded into pending documents
///   at once and return; a partition's task writes them as batches every interval. Per leaf:
///   increments sum (integers exactly, floats with a compensated sum), a set absorbs what
///   follows, maxima and minima fold; what cannot fold stays in order. A batch is all or
///   nothing in the buffer: a write that fails (a path used as number and map, an overflow
///   that is already certain) adds nothing.
/// - **nothing counted twice**: each flushed batch carries a [`BatchId`](stats_core::BatchId);
///   a failed batch is retried with the same id, so on a store with
///   [`Capabilities::idempotent_batch`] a retry after an ambiguous failure (a timeout, a lost
///   reply) applies once.
/// - **nothing lost**: a batch that still fails after its retries stays pending and is retried
///   on the next interval, before anything newer of its partition (so order holds). Pending
///   data is bounded by [`Options::max_pending`](crate::Options::max_pending): at the bound writes wait or fail with a
///   typed error. What the store refuses for good (an overflow against the stored value) goes
///   to [`Coalescing::on_refused`]. [`shutdown`](Buffered::shutdown) flushes
///   and returns what could not be written. A crash loses what is pending.
/// - **reads see pending writes**: [`MetricStore::read`] and [`MetricStore::range`] return the
///   store's documents with the pending updates applied, waiting for a flush in progress so
///   that a write is seen exactly once. The one window where a write is not seen: while its
///   batch waits between retries of a failing flush (the store may or may not hold it).
/// - **removals** (`remove`, `remove_metric`, `purge`) flush everything first, then pass
///   through; counters and throttles pass straight through.
///
/// ```
/// use std::sync::Arc;
///
/// use stats_buffer::Buffered;
/// use stats_core::tracker::{Config, Tracker};
/// use stats_core::{MetricStore, values};
/// # use stats_backend_atomics::AtomicsStore as AnyStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(Buffered::new(AnyStore::default())?);
/// let tracker = Tracker::new(store.clone(), Config::new().granularities(["1h", "1d"])?);
/// let at = "2026-11-29T10:15:00Z".parse()?;
/// for _ in 0..1_000 {
///     tracker.track("orders", at, &values!({"count": 1})).await?;
/// }
/// // Reads see the pending counts...
/// let total = tracker.total("orders", at, at, "1h".parse()?, "count").await?;
/// assert_eq!(total, Some(1_000.into()));
/// // ...which reach the store as 2 leaf updates per flush (one flush a second).
/// store.flush().await?;
/// let stats = store.stats();
/// assert_eq!(stats.tracked, 2_000);
/// assert!(stats.flushed * 100 <= stats.tracked, "{stats:?}");
/// # Ok(()) }
/// ```
pub struct Buffered<S> {
    store: Arc<S>,
    engine: Engine<KeyWindow>,
    counters: OnceCell<Counters>,
}

impl<S> fmt::Debug for Buffered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffered")
            .field("engine", &self.engine)
            .finish()
    }
}

impl<S: MetricStore> Buffered<S> {
    /// `store` with the default [`Coalescing`] settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] outside a tokio runtime.
    pub fn new(store: S) -> Result<Self> {
        Self::with(store, Coalescing::new())
    }

    /// `store` with `settings`.
    ///
    /// ```
    /// use stats_buffer::{Buffered, Coalescing};
    /// # use stats_backend_atomics::AtomicsStore as AnyStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stats_core::Result<()> {
    /// let store = Buffered::with(AnyStore::default(), Coalescing::new().max_batch(5_000)?)?;
    /// assert!(store.shutdown().await.is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] outside a tokio runtime.
    pub fn with(store: S, settings: Coalescing) -> Result<Self> {
        let store = Arc::new(store);
        let engine = Engine::new(store.clone(), settings)?;
        Ok(Buffered {
            store,
            engine,
            counters: OnceCell::new(),
        })
    }

    /// The wrapped store (reads through it do not see pending writes).
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// Writes everything pending now and waits for it.
    ///
    /// # Errors
    /// The store's error when a batch could not be written after its retries; it stays
    /// pending and is retried on the next interval.
    pub async fn flush(&self) -> Result<()> {
        if let Some(counters) = self.counters.get() {
            counters.buffer.flush_all().await;
        }
        self.engine.flush_all().await
    }

    /// Refuses later writes with a typed error, writes everything pending (metric writes and
    /// counter increments), and stops the partitions' tasks. Returns what could not be written
    /// (the store is down); empty when everything was written.
    pub async fn shutdown(&self) -> Unwritten {
        let counters = match self.counters.get() {
            Some(counters) => counters
                .buffer
                .shutdown()
                .await
                .into_iter()
                .map(|((namespace, key), items)| (namespace, key, items))
                .collect(),
            None => Vec::new(),
        };
        Unwritten {
            batches: self.engine.shutdown().await,
            counters,
        }
    }

    /// The counters: pending entries, leaf updates tracked and flushed, store round trips,
    /// retries, failures, refusals, rejected writes.
    pub fn stats(&self) -> BufferStats {
        self.engine.stats()
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        self.engine.options()
    }

    fn check_supported(&self, batch: &Batch) -> Result<()> {
        let caps = self.store.capabilities();
        for write in batch.writes() {
            if !caps.max_min && matches!(write.op(), stats_core::Op::Max | stats_core::Op::Min) {
                return Err(Error::Unsupported {
                    store: self.store.name(),
                    operation: "max and min",
                });
            }
            if !caps.floats && write.fields().iter().any(|(_, n)| n.is_float()) {
                return Err(Error::Unsupported {
                    store: self.store.name(),
                    operation: "float values",
                });
            }
        }
        Ok(())
    }

    /// `docs` (as read from the store for `keys`) with the pending updates applied.
    fn overlay(&self, keys: &[Key], docs: &mut [Values]) -> Result<()> {
        self.engine.each_window(|window| {
            for (key, doc) in keys.iter().zip(docs.iter_mut()) {
                if let Some(pending) = window.docs.get(key) {
                    pending.overlay(key, doc)?;
                }
            }
            Ok(())
        })
    }
}

impl<S: Store> Store for Buffered<S> {
    fn name(&self) -> &'static str {
        self.store.name()
    }

    /// The wrapped store's, except `atomic_batch`: a batch written to the buffer may reach the
    /// store in several batches (never split within a document).
    fn capabilities(&self) -> Capabilities {
        let mut caps = self.store.capabilities();
        caps.atomic_batch = false;
        caps
    }
}

#[async_trait]
impl<S: MetricStore> MetricStore for Buffered<S> {
    /// Folds `batch` into the pending documents (all or nothing) and returns; see
    /// [`Buffered`].
    async fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check_supported(batch)?;
        let mut writes: Vec<(usize, &Key, stats_core::Op, &[(String, Number)])> = Vec::new();
        for write in batch.writes() {
            for key in write.keys() {
                writes.push((
                    self.engine.partition_of(key),
                    key,
                    write.op(),
                    write.fields().as_slice(),
                ));
            }
        }
        let mut partitions: Vec<usize> = writes.iter().map(|w| w.0).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let mut planned = Vec::new();
        self.engine
            .write(&partitions, batch.len(), |windows, room, added| {
                // (partition slot, key, whether this write created the document, undo records)
                let mut done: Vec<(usize, &Key, bool, Vec<Undo>)> = Vec::new();
                let mut total = 0isize;
                let mut failure = None;
                for (partition, key, op, fields) in &writes {
                    let slot = partitions.binary_search(partition).unwrap_or_default();
                    let window = &mut *windows[slot];
                    let created = !window.docs.contains_key(*key);
                    let doc = window.docs.entry((*key).clone()).or_default();
                    let key_name = || key.to_string();
                    match doc.plan(*op, fields, &key_name, &mut planned) {
                        Ok(delta) => {
                            let mut records = Vec::new();
                            doc.commit(&planned, fields, Some(&mut records));
                            added[slot] += delta;
                            total += delta;
                            done.push((slot, key, created, records));
                        }
                        Err(e) => {
                            if created {
                                window.docs.remove(*key);
                            }
                            failure = Some(e);
                            break;
                        }
                    }
                }
                if failure.is_none() && room.reserve(total) {
                    for (slot, key, created, _) in &done {
                        if *created {
                            windows[*slot].order.push((*key).clone());
                        }
                    }
                    return Ok(Planned::Done);
                }
                // Take everything back, newest first; drop the documents this write created.
                for (slot, key, created, records) in done.into_iter().rev() {
                    let window = &mut *windows[slot];
                    if created {
                        window.docs.remove(key);
                    } else if let Some(doc) = window.docs.get_mut(key) {
                        doc.undo(records.into_iter());
                    }
                }
                added.iter_mut().for_each(|a| *a = 0);
                match failure {
                    Some(e) => Err(e),
                    None => Ok(Planned::NeedRoom),
                }
            })
            .await
    }

    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
        let _gates = self.engine.read_gates().await;
        let mut docs = self.store.read(keys).await?;
        self.overlay(keys, &mut docs)?;
        Ok(docs)
    }

    async fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>> {
        stats_core::store::check_range(metric, starts)?;
        let _gates = self.engine.read_gates().await;
        let mut docs = self.store.range(metric, granularity, starts).await?;
        if let Some(&first) = starts.first() {
            let base = Key::bucket(metric, granularity, first)?;
            let keys: Vec<Key> = starts
                .iter()
                .map(|&s| base.with_bucket(granularity, s))
                .collect();
            self.overlay(&keys, &mut docs)?;
        }
        Ok(docs)
    }

    async fn remove(&self, keys: &[Key]) -> Result<()> {
        self.flush().await?;
        self.store.remove(keys).await
    }

    async fn remove_metric(&self, metric: &str) -> Result<u64> {
        self.flush().await?;
        self.store.remove_metric(metric).await
    }

    async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
        self.flush().await?;
        self.store.purge(granularity, before).await
    }
}

/// What [`Buffered::shutdown`] could not write (the store is down): the caller's now.
///
/// ```
/// use stats_buffer::Unwritten;
///
/// assert!(Unwritten::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Unwritten {
    /// Metric batches, each with its id: applied later with [`MetricStore::apply`] within
    /// [`BATCH_ID_WINDOW`](stats_core::BATCH_ID_WINDOW), one counts once on a store with
    /// idempotent batches. With a [spill file](crate::Coalescing::spill_file) they are in it
    /// too, and the next buffer that opens it writes them.
    pub batches: Vec<Batch>,
    /// Counter increments not written, as (namespace, key, increments).
    pub counters: Vec<(String, String, Vec<i64>)>,
}

impl Unwritten {
    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.counters.is_empty()
    }
}

/// Buffered counter increments (see [`Buffered::inc_later`]).
struct Counters {
    buffer: KeyedBuffer<(String, String), i64>,
    /// Read by flushes while they write, written by the calls that must see the store with
    /// every pending delta of their counter applied.
    gate: Arc<RwLock<()>>,
}

/// Writes a counter's pending deltas as one increment.
struct CounterFlush<S> {
    store: Arc<S>,
    gate: Arc<RwLock<()>>,
}

/// Adds `items` to a counter (a missing one starts at 0), in as few increments as `i64` allows.
///
/// A sum beyond `i64` (only from increments near the bounds) is sent in steps; if a later step
/// fails, a retry sends the earlier ones again.
async fn add_deltas<S: CounterStore + ?Sized>(
    store: &S,
    namespace: &str,
    key: &str,
    items: &[i64],
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut delta: i128 = items.iter().map(|&i| i128::from(i)).sum();
    loop {
        let step = delta.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        store.inc(namespace, key, step as i64, 0).await?;
        delta -= step;
        if delta == 0 {
            return Ok(());
        }
    }
}

#[async_trait]
impl<S: CounterStore> Flush<(String, String), i64> for CounterFlush<S> {
    type Error = Error;

    async fn flush(&self, (namespace, key): &(String, String), items: &[i64]) -> Result<()> {
        let _writing = self.gate.read().await;
        add_deltas(&*self.store, namespace, key, items).await
    }

    async fn on_error(
        &self,
        (namespace, key): &(String, String),
        items: Vec<i64>,
        error: Error,
    ) -> OnError<i64> {
        if error.is_retryable() {
            log::warn!(
                "buffered increments of counter {namespace}/{key} failed after their last retry, \
                 kept for the next interval: {error}"
            );
            OnError::Requeue(items)
        } else {
            log::error!(
                "buffered increments of counter {namespace}/{key} refused by the store, not \
                 written ({} increments): {error}",
                items.len()
            );
            OnError::Handled
        }
    }
}

impl<S: CounterStore + MetricStore> Buffered<S> {
    async fn counters(&self) -> Result<&Counters> {
        self.counters
            .get_or_try_init(|| async {
                let gate = Arc::new(RwLock::new(()));
                let flush = Arc::new(CounterFlush {
                    store: self.store.clone(),
                    gate: gate.clone(),
                });
                let buffer = KeyedBuffer::new(self.engine.options().clone(), flush)?;
                Ok::<_, Error>(Counters { buffer, gate })
            })
            .await
    }

    /// Adds `step` to a counter later: the increment is buffered and written with the other
    /// pending increments of that counter as one [`CounterStore::inc`] on the next interval (a
    /// missing counter starts at 0). Returns at once, without the new value.
    ///
    /// Every other counter call on this store ([`CounterStore::get`], `inc`, `set`,
    /// `compare_and_swap`, `delete`, ...) first writes the pending increments of the counters it
    /// touches (all of a namespace for `get_all` and `delete_namespace`, all for `info`) and
    /// waits for increments being written, so it sees them: exactly as if they had been
    /// written one by one. [`Buffered::flush`] and [`Buffered::shutdown`] write them too.
    ///
    /// Unlike metric batches, counter increments carry no id: when the write of an increment
    /// fails ambiguously (a timeout, a lost reply), its retry may count it twice. For counts
    /// that must be exact under failures, track them as metrics.
    ///
    /// ```
    /// use stats_buffer::Buffered;
    /// use stats_core::CounterStore;
    /// # use stats_backend_atomics::AtomicsStore as AnyStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> stats_core::Result<()> {
    /// let store = Buffered::new(AnyStore::default())?;
    /// for _ in 0..1_000 {
    ///     store.inc_later("page_views", "home", 1).await?;
    /// }
    /// assert_eq!(store.get("page_views", "home").await?, Some(1_000));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad namespace or key; the buffer's errors at the memory bound
    /// with [`Overflow::Reject`](crate::Overflow::Reject) and after shutdown.
    pub async fn inc_later(&self, namespace: &str, key: &str, step: i64) -> Result<()> {
        stats_core::store::check_counter(namespace, key)?;
        let counters = self.counters().await?;
        counters
            .buffer
            .insert((namespace.to_owned(), key.to_owned()), step)
            .await?;
        Ok(())
    }

    /// Writes the pending increments of the counters `which` selects, while holding the gate
    /// (no flush of counters is writing).
    async fn settle(
        &self,
        which: impl Fn(&str, &str) -> bool,
    ) -> Result<Option<tokio::sync::RwLockWriteGuard<'_, ()>>> {
        let Some(counters) = self.counters.get() else {
            return Ok(None);
        };
        let guard = counters.gate.write().await;
        let mut keys = Vec::new();
        counters.buffer.for_each_pending(|(namespace, key), _| {
            if which(namespace, key) {
                keys.push((namespace.clone(), key.clone()));
            }
        });
        for key in keys {
            let items = counters.buffer.take(&key);
            if let Err(e) = add_deltas(&*self.store, &key.0, &key.1, &items).await {
                // Not written: back into the buffer, for the next interval. The gate goes
                // first: at the memory bound an insert waits for flushes, which need it.
                drop(guard);
                for item in items {
                    if let Err(lost) = counters.buffer.insert(key.clone(), item).await {
                        log::error!(
                            "buffered increment {item} of counter {}/{} could not be written \
                             ({e}) nor kept ({lost}): it is lost",
                            key.0,
                            key.1
                        );
                    }
                }
                return Err(e);
            }
        }
        Ok(Some(guard))
    }

    async fn settle_one(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<tokio::sync::RwLockWriteGuard<'_, ()>>> {
        self.settle(|n, k| n == namespace && k == key).await
    }
}

#[async_trait]
impl<S: CounterStore + MetricStore> CounterStore for Buffered<S> {
    async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        let _settled = self.settle_one(namespace, key).await?;
        self.store.inc(namespace, key, step, default).await
    }
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>> {
        let _settled = self.settle_one(namespace, key).await?;
        self.store.get(namespace, key).await
    }
    async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>> {
        let _settled = self.settle(|n, _| n == namespace).await?;
        self.store.get_all(namespace).await
    }
    async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()> {
        let _settled = self.settle_one(namespace, key).await?;
        self.store.set(namespace, key, value).await
    }
    async fn reset(&self, namespace: &str, key: &str, initial: i64) -> Result<()> {
        let _settled = self.settle_one(namespace, key).await?;
        self.store.reset(namespace, key, initial).await
    }
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        let _settled = self.settle_one(namespace, key).await?;
        self.store.delete(namespace, key).await
    }
    async fn delete_namespace(&self, namespace: &str) -> Result<u64> {
        let _settled = self.settle(|n, _| n == namespace).await?;
        self.store.delete_namespace(namespace).await
    }
    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome> {
        let _settled = self.settle_one(namespace, key).await?;
        self.store
            .compare_and_swap(namespace, key, expected, new)
            .await
    }
    async fn info(&self) -> Result<CounterInfo> {
        let _settled = self.settle(|_, _| true).await?;
        self.store.info().await
    }
}

#[async_trait]
impl<S: ThrottleStore + MetricStore> ThrottleStore for Buffered<S> {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.store.try_acquire(key, ttl).await
    }
}
