//! The store and its trait implementations.

use std::time::Duration;

use async_trait::async_trait;
use stats_core::{
    Batch, Capabilities, CasOutcome, CounterInfo, CounterStore, Error, Granularity, Key,
    MetricStore, Result, Store, ThrottleStore, Values,
};

use stats_core::retention::Retention;

use crate::counters::Counters;
use crate::metrics::Metrics;
use crate::throttles::Throttles;

/// The in-process store: metrics, counters and throttles in this process's memory.
///
/// Implements [`MetricStore`], [`CounterStore`] and [`ThrottleStore`]; the same operations are
/// available synchronously through [`AtomicsStore::counters`], [`AtomicsStore::metrics`] and
/// [`AtomicsStore::throttles`], and [`Counters::handle`](crate::Counters::handle) gives a
/// pre-resolved counter. Share it with `Arc`. Nothing survives the process.
///
/// ```
/// use stats_backend_atomics::AtomicsStore;
/// let store = AtomicsStore::new();
/// assert_eq!(store.counters().inc("jobs", "done", 1, 0)?, 1);
/// let handle = store.counters().handle("jobs", "done", 0)?;
/// assert_eq!(handle.inc(2)?, 3);
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug)]
pub struct AtomicsStore {
    counters: Counters,
    metrics: Metrics,
    throttles: Throttles,
}

impl Default for AtomicsStore {
    fn default() -> Self {
        Self::new()
    }
}

impl AtomicsStore {
    /// A store whose namespaces hold any number of counters.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// A store whose namespaces hold at most `capacity` counters each: creating one more is
    /// [`Error::CapacityExceeded`], and deleting a counter gives its place back.
    ///
    /// A deleted counter's memory is not handed to the next counter: an increment still in
    /// flight on the deleted counter would otherwise land on an unrelated one (the ABA fault of
    /// slot reuse in fixed arrays). Capacity is counted, memory is per counter.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a capacity of 0.
    pub fn bounded(capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::InvalidInput(
                "counter capacity must be at least 1".into(),
            ));
        }
        Ok(Self::build(Some(capacity)))
    }

    /// Keeps the buckets of each granularity only as long as `retention` says (counted from
    /// the bucket start). The first write after every minute sweeps the expired buckets
    /// ([`Metrics::purge_expired`] sweeps on demand; [`MetricStore::purge`] removes any range).
    /// Without it, every bucket is kept until removed: minute buckets of a long-running
    /// process grow without bound, so set one there.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stats_backend_atomics::AtomicsStore;
    /// use stats_core::retention::Retention;
    /// let store = AtomicsStore::new().retention(
    ///     Retention::new().keep("1m".parse()?, Duration::from_secs(3 * 3600))?,
    /// );
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    pub fn retention(mut self, retention: Retention) -> Self {
        self.metrics = Metrics::new(retention);
        self
    }

    fn build(capacity: Option<usize>) -> Self {
        AtomicsStore {
            counters: Counters::new(capacity),
            metrics: Metrics::new(Retention::new()),
            throttles: Throttles::new(),
        }
    }

    /// The counters, with synchronous methods.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The metric documents, with synchronous methods.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The throttle keys, with a synchronous acquire.
    pub fn throttles(&self) -> &Throttles {
        &self.throttles
    }
}

impl Store for AtomicsStore {
    fn name(&self) -> &'static str {
        crate::STORE_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.floats = true;
        caps.max_min = true;
        caps.atomic_batch = true;
        caps.idempotent_batch = true;
        caps.counter_capacity = self.counters.capacity();
        caps
    }
}

#[async_trait]
impl MetricStore for AtomicsStore {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        self.metrics.apply(batch)
    }

    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
        Ok(self.metrics.read(keys))
    }

    async fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>> {
        self.metrics.range(metric, granularity, starts)
    }

    async fn remove(&self, keys: &[Key]) -> Result<()> {
        self.metrics.remove(keys);
        Ok(())
    }

    async fn remove_metric(&self, metric: &str) -> Result<u64> {
        self.metrics.remove_metric(metric)
    }

    async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
        Ok(self.metrics.purge(granularity, before))
    }
}

#[async_trait]
impl CounterStore for AtomicsStore {
    async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        self.counters.inc(namespace, key, step, default)
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>> {
        self.counters.get(namespace, key)
    }

    async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>> {
        self.counters.get_all(namespace)
    }

    async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()> {
        self.counters.set(namespace, key, value)
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        self.counters.delete(namespace, key)
    }

    async fn delete_namespace(&self, namespace: &str) -> Result<u64> {
        self.counters.delete_namespace(namespace)
    }

    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome> {
        self.counters
            .compare_and_swap(namespace, key, expected, new)
    }

    async fn info(&self) -> Result<CounterInfo> {
        Ok(self.counters.info())
    }
}

#[async_trait]
impl ThrottleStore for AtomicsStore {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.throttles.try_acquire(key, ttl)
    }
}
