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
use crate::{BufferStats, Options};

/// Pending documents by key.
#[derive(Default)]
pub(crate) struct KeyWindow {
    docs: HashMap<Key, PendingDoc>,
    /// Keys in first-write order, so that flushes are deterministic.
    order: Vec<Key>,
}

impl Window for KeyWindow {
    fn is_empty(&self) -> bool {
        self.docs.is_empty()
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
/// // ...which reach the store as one batch of 2 leaf updates.
/// store.flush().await?;
/// assert_eq!(store.stats().flushed, 2);
/// assert_eq!(store.stats().tracked, 2_000);
/// # Ok(()) }
/// ```
pub struct Buffered<S> {
    store: Arc<S>,
    engine: Engine<KeyWindow>,
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
    /// assert_eq!(store.shutdown().await.len(), 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] outside a tokio runtime.
    pub fn with(store: S, settings: Coalescing) -> Result<Self> {
        let store = Arc::new(store);
        let engine = Engine::new(store.clone(), settings)?;
        Ok(Buffered { store, engine })
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
        self.engine.flush_all().await
    }

    /// Refuses later writes with a typed error, writes everything pending, and stops the
    /// partitions' tasks. Returns the batches that could not be written (the store is down),
    /// each with its id: applying one later with [`MetricStore::apply`] within
    /// [`BATCH_ID_WINDOW`](stats_core::BATCH_ID_WINDOW) applies it once on a store with
    /// idempotent batches. Empty when everything was written.
    pub async fn shutdown(&self) -> Vec<Batch> {
        self.engine.shutdown().await
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
                            doc.commit(&planned, Some(&mut records));
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
                let fits = total <= 0 || total.unsigned_abs() <= room;
                if failure.is_none() && fits {
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

#[async_trait]
impl<S: CounterStore + MetricStore> CounterStore for Buffered<S> {
    async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        self.store.inc(namespace, key, step, default).await
    }
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>> {
        self.store.get(namespace, key).await
    }
    async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>> {
        self.store.get_all(namespace).await
    }
    async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()> {
        self.store.set(namespace, key, value).await
    }
    async fn reset(&self, namespace: &str, key: &str, initial: i64) -> Result<()> {
        self.store.reset(namespace, key, initial).await
    }
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        self.store.delete(namespace, key).await
    }
    async fn delete_namespace(&self, namespace: &str) -> Result<u64> {
        self.store.delete_namespace(namespace).await
    }
    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome> {
        self.store
            .compare_and_swap(namespace, key, expected, new)
            .await
    }
    async fn info(&self) -> Result<CounterInfo> {
        self.store.info().await
    }
}

#[async_trait]
impl<S: ThrottleStore + MetricStore> ThrottleStore for Buffered<S> {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.store.try_acquire(key, ttl).await
    }
}
