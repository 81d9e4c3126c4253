//! The store traits every backend implements.
//!
//! Three traits, one per kind of data, each object safe and usable as `Arc<dyn ...>`:
//! [`MetricStore`] (time-bucketed documents), [`CounterStore`] (plain counters by namespace)
//! and [`ThrottleStore`] (atomic acquire with a TTL). They share the supertrait [`Store`]
//! (name and [`Capabilities`]). Convenience lives in the extension trait [`MetricStoreExt`],
//! implemented for every `MetricStore`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::batch::Batch;
use crate::error::{Error, NameKind, Result};
use crate::granularity::Granularity;
use crate::key::Key;
use crate::name;
use crate::values::Values;

/// What a store supports, so that code written for every store (tests, wrappers) can adapt
/// instead of guessing.
///
/// Build one from [`Capabilities::default`] (everything off) and set fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Float leaves are stored exactly as `f64` (otherwise [`Error::Unsupported`]).
    pub floats: bool,
    /// [`Op::Max`](crate::Op::Max) and [`Op::Min`](crate::Op::Min) are supported.
    pub max_min: bool,
    /// Keys can expire (throttle keys always do; this is about metric data).
    pub ttl: bool,
    /// A batch either takes effect whole or not at all, on every key it touches.
    /// When false, a failing batch may leave other keys' writes applied, but never part of the
    /// failing key's writes.
    pub atomic_batch: bool,
    /// A batch with an [id](crate::Batch::with_id) can be applied twice with one effect (so a
    /// retry after an ambiguous failure, such as a timeout, does not double count) within
    /// [`BATCH_ID_WINDOW`](crate::BATCH_ID_WINDOW); see [`MetricStore::apply`].
    pub idempotent_batch: bool,
    /// The store spreads keys over several servers.
    pub cluster: bool,
    /// Data outlives the process.
    pub persistent: bool,
    /// The most counters one namespace can hold, for bounded counter stores.
    pub counter_capacity: Option<usize>,
}

/// What every store has: a name for messages and its [`Capabilities`].
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// A short fixed name such as `"atomics"` or `"redis"`, used in errors and reports.
    fn name(&self) -> &'static str;

    /// What this store supports.
    fn capabilities(&self) -> Capabilities;
}

/// A store of time-bucketed [`Values`] documents: what a [`Tracker`](crate::tracker::Tracker)
/// writes to and reads from.
///
/// A document is addressed by a [`Key`] (metric, granularity, bucket start, or the metric's
/// status slot). Every method takes many keys at once so that a network store can send one call
/// in one round trip. All inputs are checked before anything is sent: keys and batches are
/// valid by construction, and `range` checks its metric key and starts.
///
/// Most applications use the tracker and never call these methods; they are the contract every
/// store fulfils (and what a new store implements).
///
/// ```
/// use stats::atomics::AtomicsStore;
/// use stats::{Batch, Key, MetricStore, values};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stats::Result<()> {
/// let store = AtomicsStore::new();
/// // The hour bucket of "orders" starting at 2023-11-14T23:00:00Z (unix seconds).
/// let key = Key::bucket("orders", "1h".parse()?, 1_700_002_800)?;
/// let mut batch = Batch::new();
/// batch.inc([key.clone()], &values!({"count": 1, "amount": 12.5}))?;
/// batch.max([key.clone()], &values!({"largest": 12.5}))?;
/// store.apply(&batch).await?; // all or nothing
/// let docs = store.read(&[key]).await?;
/// assert_eq!(docs[0], values!({"count": 1, "amount": 12.5, "largest": 12.5}));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait MetricStore: Store {
    /// Applies a batch of increments, sets, maxima and minima.
    ///
    /// Contract:
    /// - writes take effect in batch order (see [`Batch`]); a missing document or leaf starts
    ///   empty (an increment of a missing leaf stores the given number);
    /// - integers stay exact: an increment that leaves the `i64` range is
    ///   [`Error::Overflow`] and is not written; an integer combined with a float becomes a
    ///   float; a leaf may change between integer and float from one write to the next;
    /// - a path that is a number in the store (or earlier in the batch) and a map in the
    ///   write, or the reverse, is [`Error::PathConflict`] and is not written;
    /// - on any error, nothing of the failing key's writes is applied; with
    ///   [`Capabilities::atomic_batch`] nothing of the whole batch is;
    /// - when the call returns `Ok`, every later read sees the writes (read after write);
    /// - a batch with an [id](Batch::with_id), on a store whose
    ///   [`Capabilities::idempotent_batch`] is true, takes effect at most once however often it
    ///   is applied with that id within [`BATCH_ID_WINDOW`](crate::BATCH_ID_WINDOW) of its first
    ///   success: the store records the id atomically with the writes, and a later apply of the
    ///   same id writes nothing and returns `Ok`. So a batch whose apply failed ambiguously (a
    ///   timeout, a connection lost after sending) can be retried with the same id. The caller
    ///   must not reuse an id for a different batch. A store without the capability ignores the
    ///   id (every apply takes effect).
    ///
    /// # Errors
    /// [`Error::Overflow`], [`Error::PathConflict`], [`Error::Unsupported`] (floats or max/min on
    /// a store without them), and the store's own errors.
    async fn apply(&self, batch: &Batch) -> Result<()>;

    /// Reads whole documents, one per key in the order given; a missing document is an empty
    /// [`Values`].
    ///
    /// # Errors
    /// The store's own errors.
    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>>;

    /// Reads the buckets of one metric and granularity at the given starts, returning one
    /// document per start, aligned (empty for a missing bucket).
    ///
    /// `starts` must be strictly ascending (a timeline); the metric key and the order are
    /// checked before anything is read. Stores read the whole range in one indexed scan or one pipeline where they
    /// can, never one query per bucket.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidInput`] for unsorted starts, and the store's own
    /// errors.
    async fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>>;

    /// Deletes whole documents. Missing keys are not an error.
    ///
    /// # Errors
    /// The store's own errors.
    async fn remove(&self, keys: &[Key]) -> Result<()>;

    /// Deletes every document of one metric: its buckets in every granularity and its status
    /// slot; returns how many documents there were. Other metrics are untouched, including ones
    /// whose name starts with this one.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad metric key, and the store's own errors.
    async fn remove_metric(&self, metric: &str) -> Result<u64>;

    /// Deletes the buckets of `granularity`, of every metric, that start before `before` (unix
    /// seconds); returns how many there were. The sweep behind retention (see
    /// [`Retention`](crate::retention::Retention)); status slots are never purged.
    ///
    /// # Errors
    /// The store's own errors.
    async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64>;
}

/// Checks the arguments of [`MetricStore::range`]: a valid metric key and strictly ascending
/// starts.
///
/// # Errors
/// [`Error::InvalidName`] or [`Error::InvalidInput`].
pub fn check_range(metric: &str, starts: &[i64]) -> Result<()> {
    name::check_segment(NameKind::Metric, metric)?;
    if let Some(w) = starts.windows(2).find(|w| w[0] >= w[1]) {
        return Err(Error::InvalidInput(format!(
            "range starts must be strictly ascending, found {} then {}",
            w[0], w[1]
        )));
    }
    Ok(())
}

/// Conveniences over any [`MetricStore`]: single-operation batches and single-key reads.
///
/// The names differ from [`CounterStore`]'s (`inc_at`, not `inc`) so that a store implementing
/// both traits needs no qualified calls.
#[async_trait]
pub trait MetricStoreExt: MetricStore {
    /// Increments `values` at every key in one batch.
    ///
    /// # Errors
    /// As [`MetricStore::apply`].
    async fn inc_at(&self, keys: &[Key], values: &Values) -> Result<()> {
        let mut batch = Batch::new();
        batch.inc(keys.iter().cloned(), values)?;
        self.apply(&batch).await
    }

    /// Sets `values` at every key in one batch.
    ///
    /// # Errors
    /// As [`MetricStore::apply`].
    async fn set_at(&self, keys: &[Key], values: &Values) -> Result<()> {
        let mut batch = Batch::new();
        batch.set(keys.iter().cloned(), values)?;
        self.apply(&batch).await
    }

    /// Reads one document (empty if missing).
    ///
    /// # Errors
    /// As [`MetricStore::read`].
    async fn read_one(&self, key: &Key) -> Result<Values> {
        let mut docs = self.read(std::slice::from_ref(key)).await?;
        Ok(docs.pop().unwrap_or_default())
    }
}

impl<T: MetricStore + ?Sized> MetricStoreExt for T {}

/// The outcome of [`CounterStore::compare_and_swap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The counter held the expected value and now holds this new one.
    Swapped(i64),
    /// The counter did not hold the expected value; this is what it held (0 if it was missing).
    Mismatch(i64),
}

/// What [`CounterStore::info`] reports about one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamespaceInfo {
    /// The namespace.
    pub namespace: String,
    /// How many counters it holds.
    pub counters: u64,
}

impl NamespaceInfo {
    /// A namespace's entry.
    pub fn new(namespace: impl Into<String>, counters: u64) -> Self {
        NamespaceInfo {
            namespace: namespace.into(),
            counters,
        }
    }
}

/// What [`CounterStore::info`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterInfo {
    /// The store's name.
    pub store: &'static str,
    /// Every namespace holding at least one counter, sorted by name.
    pub namespaces: Vec<NamespaceInfo>,
    /// The total number of counters.
    pub counters: u64,
    /// The capacity of each namespace, for bounded stores.
    pub capacity: Option<usize>,
}

impl CounterInfo {
    /// Builds an info value from namespace entries (sorted here) and a capacity.
    pub fn new(
        store: &'static str,
        mut namespaces: Vec<NamespaceInfo>,
        capacity: Option<usize>,
    ) -> Self {
        namespaces.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        let counters = namespaces.iter().map(|n| n.counters).sum();
        CounterInfo {
            store,
            namespaces,
            counters,
            capacity,
        }
    }
}

/// Plain integer counters grouped by namespace: page views per page, sign-ups per region, the
/// next invoice number.
///
/// A counter is addressed by a namespace and a key; both follow the name rule for segments
/// ([`name::check_segment`]), and a bad one is [`Error::InvalidName`] with nothing written.
/// Values are `i64` and arithmetic is checked: [`Error::Overflow`] leaves the counter unchanged.
/// Every method is atomic on its counter, also between processes on a shared store.
///
/// ```
/// use stats::atomics::AtomicsStore;
/// use stats::{CasOutcome, CounterStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stats::Result<()> {
/// let store = AtomicsStore::new();
/// // A counter that does not exist yet starts at the default (here 1000), then adds the step.
/// assert_eq!(store.inc("invoices", "next", 1, 1000).await?, 1001);
/// assert_eq!(store.inc("invoices", "next", 1, 1000).await?, 1002);
/// assert_eq!(store.get("invoices", "next").await?, Some(1002));
/// assert_eq!(store.get("invoices", "missing").await?, None);
///
/// // Compare-and-swap: replace only if the counter still holds what was read.
/// assert_eq!(store.compare_and_swap("invoices", "next", 1002, 2000).await?, CasOutcome::Swapped(2000));
/// assert_eq!(store.compare_and_swap("invoices", "next", 1002, 3000).await?, CasOutcome::Mismatch(2000));
///
/// // Overflow is an error, never a wrap.
/// store.set("invoices", "big", i64::MAX).await?;
/// assert!(matches!(store.inc("invoices", "big", 1, 0).await, Err(stats::Error::Overflow { .. })));
///
/// assert_eq!(store.get_all("invoices").await?, vec![("big".into(), i64::MAX), ("next".into(), 2000)]);
/// assert_eq!(store.delete_namespace("invoices").await?, 2);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait CounterStore: Store {
    /// Adds `step` to the counter and returns the new value. A missing counter starts at
    /// `default`, so the first call returns `default + step`.
    ///
    /// # Errors
    /// [`Error::Overflow`] (the counter is unchanged), [`Error::CapacityExceeded`] when a
    /// bounded namespace is full and the counter is new.
    async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64>;

    /// The counter's value, or `None` if it does not exist.
    ///
    /// # Errors
    /// The store's own errors.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>>;

    /// Every counter of a namespace, sorted by key (empty for an unknown namespace).
    ///
    /// # Errors
    /// The store's own errors.
    async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>>;

    /// Sets the counter, creating it if missing.
    ///
    /// # Errors
    /// [`Error::CapacityExceeded`] when a bounded namespace is full and the counter is new.
    async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()>;

    /// Resets the counter to `initial`, creating it if missing: the same effect as
    /// [`CounterStore::set`], under the name that reads better where a counter starts over.
    ///
    /// # Errors
    /// As [`CounterStore::set`].
    async fn reset(&self, namespace: &str, key: &str, initial: i64) -> Result<()> {
        self.set(namespace, key, initial).await
    }

    /// Deletes the counter; returns whether it existed. A bounded namespace gets the slot back.
    ///
    /// # Errors
    /// The store's own errors.
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool>;

    /// Deletes every counter of a namespace and returns how many there were. Other namespaces
    /// are untouched, including ones whose name starts with this one.
    ///
    /// # Errors
    /// The store's own errors.
    async fn delete_namespace(&self, namespace: &str) -> Result<u64>;

    /// Atomically replaces the counter's value with `new` if it equals `expected`.
    ///
    /// A missing counter counts as 0: with `expected == 0` it is created with `new`, otherwise
    /// the outcome is `Mismatch(0)`. The compare and the swap are one
    /// atomic step in the store (compare_exchange, a script, a conditional update), never a
    /// read followed by a write.
    ///
    /// # Errors
    /// [`Error::CapacityExceeded`] when the counter would be created in a full namespace.
    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome>;

    /// Counts of namespaces and counters.
    ///
    /// # Errors
    /// The store's own errors.
    async fn info(&self) -> Result<CounterInfo>;
}

/// Checks a counter's namespace and key.
///
/// # Errors
/// [`Error::InvalidName`] naming the offender.
pub fn check_counter(namespace: &str, key: &str) -> Result<()> {
    name::check_segment(NameKind::Namespace, namespace)?;
    name::check_segment(NameKind::Counter, key)
}

/// Atomic acquire of a key for a time: "at most once per period" (one alert per hour, one
/// password reset mail per minute), or a lock with a lease (one server of many runs a job).
///
/// ```
/// use std::time::Duration;
///
/// use stats::atomics::AtomicsStore;
/// use stats::{Error, ThrottleStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stats::Result<()> {
/// let store = AtomicsStore::new();
/// let minute = Duration::from_secs(60);
/// if store.try_acquire("reset-mail:ada@example.com", minute).await? {
///     // send the mail
/// }
/// // A second request within the minute finds the key held.
/// assert!(!store.try_acquire("reset-mail:ada@example.com", minute).await?);
/// // TTLs are checked: at least 1 ms, at most MAX_TTL.
/// assert!(matches!(store.try_acquire("k", Duration::ZERO).await, Err(Error::InvalidInput(_))));
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ThrottleStore: Store {
    /// Acquires `key` for `ttl` if it is free: returns `true` if this call acquired it, `false`
    /// if it is held by an earlier acquire whose TTL has not run out. One atomic step: of many
    /// concurrent calls on a free key exactly one gets `true`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad key, [`Error::InvalidInput`] for a TTL under one
    /// millisecond or over [`MAX_TTL`].
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool>;
}

/// The longest TTL a throttle (or a retention period) may have: 100 years. Every store can
/// hold an expiry this far ahead (as milliseconds since 1970 it is far inside `i64`, and inside
/// every database's interval and timestamp types); longer ones are refused with
/// [`Error::InvalidInput`] before anything is sent.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 366 * 86_400);

/// Checks a throttle key and TTL: a valid key, a TTL of at least 1 ms and at most [`MAX_TTL`].
///
/// # Errors
/// [`Error::InvalidName`] or [`Error::InvalidInput`].
pub fn check_throttle(key: &str, ttl: Duration) -> Result<()> {
    name::check_segment(NameKind::Throttle, key)?;
    if ttl < Duration::from_millis(1) {
        return Err(Error::InvalidInput(format!(
            "throttle TTL must be at least 1 ms, got {ttl:?}"
        )));
    }
    check_ttl_max("throttle TTL", ttl)
}

/// The longest timeout a store setting accepts (connect, response, pool acquire, busy wait):
/// one day. Longer ones would overflow the deadline arithmetic of the drivers.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Checks a store's timeout setting: at least 1 ms and at most [`MAX_TIMEOUT`]. Stores call it
/// for every timeout of their config before connecting.
///
/// ```
/// use std::time::Duration;
/// use stats_core::store::check_timeout;
/// assert!(check_timeout("acquire_timeout", Duration::from_secs(5)).is_ok());
/// let err = check_timeout("acquire_timeout", Duration::MAX).unwrap_err();
/// assert!(err.to_string().contains("acquire_timeout"));
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] naming the setting and the value.
pub fn check_timeout(setting: &str, timeout: Duration) -> Result<()> {
    if timeout < Duration::from_millis(1) || timeout > MAX_TIMEOUT {
        return Err(Error::InvalidInput(format!(
            "{setting} must be between 1 ms and 24 h, got {timeout:?}"
        )));
    }
    Ok(())
}

/// Refuses a duration over [`MAX_TTL`], naming what it is.
pub(crate) fn check_ttl_max(what: &str, ttl: Duration) -> Result<()> {
    if ttl > MAX_TTL {
        return Err(Error::InvalidInput(format!(
            "{what} must be at most {} days (100 years), got {ttl:?}",
            MAX_TTL.as_secs() / 86_400
        )));
    }
    Ok(())
}

macro_rules! forward_store {
    ($($wrapper:ident),*) => {$(
        impl<T: Store + ?Sized> Store for $wrapper<T> {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }

        #[async_trait]
        impl<T: MetricStore + ?Sized> MetricStore for $wrapper<T> {
            async fn apply(&self, batch: &Batch) -> Result<()> {
                (**self).apply(batch).await
            }
            async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
                (**self).read(keys).await
            }
            async fn range(&self, metric: &str, granularity: Granularity, starts: &[i64]) -> Result<Vec<Values>> {
                (**self).range(metric, granularity, starts).await
            }
            async fn remove(&self, keys: &[Key]) -> Result<()> {
                (**self).remove(keys).await
            }
            async fn remove_metric(&self, metric: &str) -> Result<u64> {
                (**self).remove_metric(metric).await
            }
            async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
                (**self).purge(granularity, before).await
            }
        }

        #[async_trait]
        impl<T: CounterStore + ?Sized> CounterStore for $wrapper<T> {
            async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64> {
                (**self).inc(namespace, key, step, default).await
            }
            async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>> {
                (**self).get(namespace, key).await
            }
            async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>> {
                (**self).get_all(namespace).await
            }
            async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()> {
                (**self).set(namespace, key, value).await
            }
            async fn reset(&self, namespace: &str, key: &str, initial: i64) -> Result<()> {
                (**self).reset(namespace, key, initial).await
            }
            async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
                (**self).delete(namespace, key).await
            }
            async fn delete_namespace(&self, namespace: &str) -> Result<u64> {
                (**self).delete_namespace(namespace).await
            }
            async fn compare_and_swap(&self, namespace: &str, key: &str, expected: i64, new: i64) -> Result<CasOutcome> {
                (**self).compare_and_swap(namespace, key, expected, new).await
            }
            async fn info(&self) -> Result<CounterInfo> {
                (**self).info().await
            }
        }

        #[async_trait]
        impl<T: ThrottleStore + ?Sized> ThrottleStore for $wrapper<T> {
            async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
                (**self).try_acquire(key, ttl).await
            }
        }
    )*};
}

forward_store!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_checks() {
        check_range("m", &[1, 2, 3]).unwrap();
        check_range("m", &[]).unwrap();
        assert!(matches!(
            check_range("m", &[1, 1]),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            check_range("m", &[2, 1]),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            check_range("a::b", &[]),
            Err(Error::InvalidName { .. })
        ));
    }

    #[test]
    fn throttle_checks() {
        check_throttle("k", Duration::from_millis(1)).unwrap();
        check_throttle("k", MAX_TTL).unwrap();
        let err = check_throttle("k", Duration::MAX).unwrap_err().to_string();
        assert!(err.contains("at most 36600 days"), "{err}");
        assert!(check_throttle("k", Duration::from_micros(999)).is_err());
        assert!(check_throttle("", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn traits_are_object_safe() {
        fn _metric(_: &Arc<dyn MetricStore>) {}
        fn _counter(_: &Arc<dyn CounterStore>) {}
        fn _throttle(_: Box<dyn ThrottleStore>) {}
    }
}
