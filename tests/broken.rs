//! Stores with one deliberate fault each, over the in-process store.
//!
//! Each forwards everything to an [`AtomicsStore`] but for the one method it breaks, so that a
//! conformance check failing against it fails because of that fault.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stats_backend_atomics::AtomicsStore;
use stats_core::{
    Batch, Capabilities, CasOutcome, CounterInfo, CounterStore, Error, Granularity, Key,
    MetricStore, Number, Result, Store, ThrottleStore, Values,
};

/// Forwards the parts of the store traits a broken store does not break.
macro_rules! forward {
    ($ty:ty, counter_inc) => {
        forward!($ty, common);
        #[async_trait]
        impl CounterStore for $ty {
            async fn inc(&self, ns: &str, key: &str, step: i64, default: i64) -> Result<i64> {
                self.broken_inc(ns, key, step, default).await
            }
            async fn get(&self, ns: &str, key: &str) -> Result<Option<i64>> {
                CounterStore::get(&self.inner, ns, key).await
            }
            async fn get_all(&self, ns: &str) -> Result<Vec<(String, i64)>> {
                self.inner.get_all(ns).await
            }
            async fn set(&self, ns: &str, key: &str, value: i64) -> Result<()> {
                CounterStore::set(&self.inner, ns, key, value).await
            }
            async fn delete(&self, ns: &str, key: &str) -> Result<bool> {
                CounterStore::delete(&self.inner, ns, key).await
            }
            async fn delete_namespace(&self, ns: &str) -> Result<u64> {
                self.inner.delete_namespace(ns).await
            }
            async fn compare_and_swap(
                &self,
                ns: &str,
                key: &str,
                expected: i64,
                new: i64,
            ) -> Result<CasOutcome> {
                self.inner.compare_and_swap(ns, key, expected, new).await
            }
            async fn info(&self) -> Result<CounterInfo> {
                let mut info = self.inner.info().await?;
                info.store = self.name();
                Ok(info)
            }
        }
    };
    ($ty:ty, common) => {
        impl Store for $ty {
            fn name(&self) -> &'static str {
                stringify!($ty)
            }
            fn capabilities(&self) -> Capabilities {
                self.inner.capabilities()
            }
        }

        #[async_trait]
        impl MetricStore for $ty {
            async fn apply(&self, batch: &Batch) -> Result<()> {
                self.broken_apply(batch).await
            }
            async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
                self.inner.read(keys).await
            }
            async fn range(
                &self,
                metric: &str,
                granularity: Granularity,
                starts: &[i64],
            ) -> Result<Vec<Values>> {
                self.inner.range(metric, granularity, starts).await
            }
            async fn remove(&self, keys: &[Key]) -> Result<()> {
                self.inner.remove(keys).await
            }
            async fn remove_metric(&self, metric: &str) -> Result<u64> {
                self.inner.remove_metric(metric).await
            }
            async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
                self.inner.purge(granularity, before).await
            }
        }

        #[async_trait]
        impl ThrottleStore for $ty {
            async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
                self.inner.try_acquire(key, ttl).await
            }
        }
    };
}

/// Drops one increment in a thousand, counter and metric alike, and says it succeeded.
#[derive(Debug, Default)]
pub struct DropsOneInAThousand {
    inner: AtomicsStore,
    calls: AtomicU64,
}

impl DropsOneInAThousand {
    fn drop_this_one(&self) -> bool {
        self.calls.fetch_add(1, Ordering::Relaxed) % 1000 == 999
    }

    async fn broken_inc(&self, ns: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        if self.drop_this_one() {
            let current = CounterStore::get(&self.inner, ns, key)
                .await?
                .unwrap_or(default);
            return Ok(current + step);
        }
        self.inner.inc(ns, key, step, default).await
    }

    async fn broken_apply(&self, batch: &Batch) -> Result<()> {
        let mut kept = Batch::new();
        for write in batch.writes() {
            let keys: Vec<Key> = write
                .keys()
                .iter()
                .filter(|_| !self.drop_this_one())
                .cloned()
                .collect();
            kept.push_flat(write.op(), keys, write.fields().clone());
        }
        self.inner.apply(&kept).await
    }
}

forward!(DropsOneInAThousand, counter_inc);

/// Wraps around on integer overflow instead of failing, as an unchecked `fetch_add` or a
/// store without overflow checks would.
#[derive(Debug, Default)]
pub struct WrapsOnOverflow {
    inner: AtomicsStore,
}

impl WrapsOnOverflow {
    async fn broken_inc(&self, ns: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        match self.inner.inc(ns, key, step, default).await {
            Err(Error::Overflow { .. }) => {
                let current = CounterStore::get(&self.inner, ns, key)
                    .await?
                    .unwrap_or(default);
                let wrapped = current.wrapping_add(step);
                CounterStore::set(&self.inner, ns, key, wrapped).await?;
                Ok(wrapped)
            }
            other => other,
        }
    }

    async fn broken_apply(&self, batch: &Batch) -> Result<()> {
        match self.inner.apply(batch).await {
            Err(Error::Overflow { .. }) => {
                for (op, key, path, given) in batch.updates() {
                    let stored = self
                        .inner
                        .read(std::slice::from_ref(key))
                        .await?
                        .remove(0)
                        .number_at(path);
                    let new = match (op, stored, given) {
                        (stats_core::Op::Inc, Some(Number::Int(a)), Number::Int(b)) => {
                            Number::Int(a.wrapping_add(b))
                        }
                        _ => op.apply(stored, given, key, path).unwrap_or(given),
                    };
                    let mut one = Batch::new();
                    one.set([key.clone()], &Values::from_flat([(path, new)])?)?;
                    self.inner.apply(&one).await?;
                }
                Ok(())
            }
            other => other,
        }
    }
}

forward!(WrapsOnOverflow, counter_inc);

/// Applies a batch one key at a time, so a failure part-way leaves the first part written,
/// while still claiming atomic batches.
#[derive(Debug, Default)]
pub struct WritesHalfABatch {
    inner: AtomicsStore,
}

impl WritesHalfABatch {
    async fn broken_apply(&self, batch: &Batch) -> Result<()> {
        for write in batch.writes() {
            for key in write.keys() {
                let mut one = Batch::new();
                one.push_flat(write.op(), [key.clone()], write.fields().clone());
                self.inner.apply(&one).await?;
            }
        }
        Ok(())
    }
}

forward!(WritesHalfABatch, common);
