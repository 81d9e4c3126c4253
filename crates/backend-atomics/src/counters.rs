//! Lock-free counters: a concurrent map of namespaces, each a concurrent map of atomics.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use foldhash::fast::RandomState;
use stats_core::store::check_counter;
use stats_core::{CasOutcome, CounterInfo, Error, NameKind, NamespaceInfo, Result, name};

type Map<V> = papaya::HashMap<Box<str>, V, RandomState>;

/// One counter. Aligned to a cache line so that counters written by different threads never
/// share one (false sharing would serialize them).
#[repr(align(64))]
#[derive(Debug)]
struct Slot {
    value: AtomicI64,
    /// Set when the counter is deleted, so that a [`CounterHandle`] can tell.
    deleted: AtomicBool,
}

impl Slot {
    fn new(value: i64) -> Arc<Slot> {
        Arc::new(Slot {
            value: AtomicI64::new(value),
            deleted: AtomicBool::new(false),
        })
    }

    /// Checked add as one compare-exchange loop: the stored value never wraps, not even for
    /// an instant.
    #[inline]
    fn add(&self, step: i64, ns: &str, key: &str) -> Result<i64> {
        let mut current = self.value.load(Ordering::Relaxed);
        loop {
            let new = current.checked_add(step).ok_or_else(|| overflow(ns, key, current, step))?;
            match self
                .value
                .compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(new),
                Err(seen) => current = seen,
            }
        }
    }
}

fn overflow(ns: &str, key: &str, current: i64, step: i64) -> Error {
    Error::Overflow {
        key: format!("{ns}/{key}"),
        path: None,
        detail: format!("{current} + {step}"),
    }
}

struct Namespace {
    name: Box<str>,
    counters: Map<Arc<Slot>>,
    /// Counters alive in this namespace; bounded by the store's capacity.
    live: AtomicUsize,
}

/// The counters of an [`AtomicsStore`](crate::AtomicsStore), with synchronous methods: the
/// fast path for code that is not async, and what the async [`CounterStore`] impl calls.
///
/// Every method has the contract of the [`CounterStore`] method of the same name.
///
/// [`CounterStore`]: stats_core::CounterStore
pub struct Counters {
    namespaces: Map<Arc<Namespace>>,
    capacity: Option<usize>,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("namespaces", &self.namespaces.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Counters {
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        Counters {
            namespaces: Map::default(),
            capacity,
        }
    }

    /// The capacity of each namespace, if bounded.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    fn namespace(&self, ns: &str) -> Result<Arc<Namespace>> {
        let guard = self.namespaces.guard();
        if let Some(found) = self.namespaces.get(ns, &guard) {
            return Ok(Arc::clone(found));
        }
        // Names are checked only on the way in: everything in the maps is valid, so a lookup
        // that finds something needs no check.
        name::check_segment(NameKind::Namespace, ns)?;
        let created = self.namespaces.get_or_insert_with(
            ns.into(),
            || {
                Arc::new(Namespace {
                    name: ns.into(),
                    counters: Map::default(),
                    live: AtomicUsize::new(0),
                })
            },
            &guard,
        );
        Ok(Arc::clone(created))
    }

    /// Runs `f` on the counter's slot, creating it with `initial()` if missing. `initial`
    /// returns the value a new counter starts with, or an error that leaves nothing created.
    /// `f` gets whether the slot was created by this call.
    #[inline]
    fn with_slot<T>(
        &self,
        ns: &str,
        key: &str,
        initial: impl FnOnce() -> Result<i64>,
        f: impl FnOnce(&Arc<Slot>, bool) -> Result<T>,
    ) -> Result<T> {
        // Fast path: both found, no allocation, no name check, no shared write but the counter.
        {
            let guard = self.namespaces.guard();
            if let Some(space) = self.namespaces.get(ns, &guard) {
                let counters = space.counters.guard();
                if let Some(slot) = space.counters.get(key, &counters) {
                    return f(slot, false);
                }
            }
        }
        check_counter(ns, key)?;
        let space = self.namespace(ns)?;
        let guard = space.counters.guard();
        if let Some(slot) = space.counters.get(key, &guard) {
            return f(slot, false);
        }
        let start = initial()?;
        self.reserve(&space)?;
        match space
            .counters
            .try_insert(key.into(), Slot::new(start), &guard)
        {
            Ok(slot) => f(slot, true),
            Err(occupied) => {
                // Another thread created it first: give the reservation back and use theirs.
                space.live.fetch_sub(1, Ordering::AcqRel);
                f(occupied.current, false)
            }
        }
    }

    fn reserve(&self, space: &Namespace) -> Result<()> {
        match self.capacity {
            None => {
                space.live.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Some(capacity) => space
                .live
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                    (live < capacity).then_some(live + 1)
                })
                .map(|_| ())
                .map_err(|_| Error::CapacityExceeded {
                    namespace: space.name.to_string(),
                    capacity,
                }),
        }
    }

    /// See [`CounterStore::inc`](stats_core::CounterStore::inc).
    ///
    /// # Errors
    /// As the trait method.
    #[inline]
    pub fn inc(&self, ns: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        self.with_slot(
            ns,
            key,
            || default.checked_add(step).ok_or_else(|| overflow(ns, key, default, step)),
            |slot, created| {
                if created {
                    Ok(slot.value.load(Ordering::Acquire))
                } else {
                    slot.add(step, ns, key)
                }
            },
        )
    }

    /// See [`CounterStore::get`](stats_core::CounterStore::get).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad name.
    pub fn get(&self, ns: &str, key: &str) -> Result<Option<i64>> {
        let guard = self.namespaces.guard();
        if let Some(space) = self.namespaces.get(ns, &guard) {
            let counters = space.counters.guard();
            if let Some(slot) = space.counters.get(key, &counters) {
                return Ok(Some(slot.value.load(Ordering::Acquire)));
            }
        }
        check_counter(ns, key)?;
        Ok(None)
    }

    /// See [`CounterStore::get_all`](stats_core::CounterStore::get_all). Each value is read
    /// atomically; the list is not one atomic snapshot of the namespace.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad namespace.
    pub fn get_all(&self, ns: &str) -> Result<Vec<(String, i64)>> {
        name::check_segment(NameKind::Namespace, ns)?;
        let guard = self.namespaces.guard();
        let Some(space) = self.namespaces.get(ns, &guard) else {
            return Ok(Vec::new());
        };
        let counters = space.counters.pin();
        let mut all: Vec<(String, i64)> = counters
            .iter()
            .map(|(k, slot)| (k.to_string(), slot.value.load(Ordering::Acquire)))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// See [`CounterStore::set`](stats_core::CounterStore::set).
    ///
    /// # Errors
    /// As the trait method.
    pub fn set(&self, ns: &str, key: &str, value: i64) -> Result<()> {
        self.with_slot(ns, key, || Ok(value), |slot, created| {
            if !created {
                slot.value.store(value, Ordering::Release);
            }
            Ok(())
        })
    }

    /// See [`CounterStore::delete`](stats_core::CounterStore::delete).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad name.
    pub fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        check_counter(ns, key)?;
        let guard = self.namespaces.guard();
        let Some(space) = self.namespaces.get(ns, &guard) else {
            return Ok(false);
        };
        let counters = space.counters.guard();
        match space.counters.remove(key, &counters) {
            Some(slot) => {
                slot.deleted.store(true, Ordering::Release);
                space.live.fetch_sub(1, Ordering::AcqRel);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// See [`CounterStore::delete_namespace`](stats_core::CounterStore::delete_namespace).
    ///
    /// Removes the namespace as a whole. An increment that looked the namespace up just before
    /// (and so is ordered before the deletion) may land in the removed namespace after the
    /// count was taken; it is then not counted, and not visible, as if it came first.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad namespace.
    pub fn delete_namespace(&self, ns: &str) -> Result<u64> {
        name::check_segment(NameKind::Namespace, ns)?;
        let guard = self.namespaces.guard();
        let Some(space) = self.namespaces.remove(ns, &guard) else {
            return Ok(0);
        };
        let counters = space.counters.pin();
        let mut removed = 0;
        for (_, slot) in counters.iter() {
            slot.deleted.store(true, Ordering::Release);
            removed += 1;
        }
        Ok(removed)
    }

    /// See [`CounterStore::compare_and_swap`](stats_core::CounterStore::compare_and_swap):
    /// one `compare_exchange` on the counter.
    ///
    /// # Errors
    /// As the trait method.
    pub fn compare_and_swap(&self, ns: &str, key: &str, expected: i64, new: i64) -> Result<CasOutcome> {
        if expected != 0 {
            // A missing counter counts as 0, so only `expected == 0` may create it.
            let guard = self.namespaces.guard();
            let slot = self.namespaces.get(ns, &guard).and_then(|space| {
                let counters = space.counters.guard();
                space.counters.get(key, &counters).map(Arc::clone)
            });
            return match slot {
                Some(slot) => Ok(cas(&slot, expected, new)),
                None => {
                    check_counter(ns, key)?;
                    Ok(CasOutcome::Mismatch(0))
                }
            };
        }
        self.with_slot(ns, key, || Ok(new), |slot, created| {
            Ok(if created {
                CasOutcome::Swapped(new)
            } else {
                cas(slot, expected, new)
            })
        })
    }

    /// See [`CounterStore::info`](stats_core::CounterStore::info).
    pub fn info(&self) -> CounterInfo {
        let namespaces = self.namespaces.pin();
        let entries = namespaces
            .iter()
            .map(|(name, space)| NamespaceInfo::new(name.to_string(), space.counters.len() as u64))
            .filter(|n| n.counters > 0)
            .collect();
        CounterInfo::new(crate::STORE_NAME, entries, self.capacity)
    }

    /// A handle on one counter, creating it at `initial` if missing: increments through it
    /// skip every lookup.
    ///
    /// # Errors
    /// [`Error::InvalidName`], or [`Error::CapacityExceeded`] if the counter is new and its
    /// namespace is full.
    pub fn handle(&self, ns: &str, key: &str, initial: i64) -> Result<CounterHandle> {
        let slot = self.with_slot(ns, key, || Ok(initial), |slot, _| Ok(Arc::clone(slot)))?;
        Ok(CounterHandle {
            slot,
            ns: ns.into(),
            key: key.into(),
        })
    }
}

fn cas(slot: &Slot, expected: i64, new: i64) -> CasOutcome {
    match slot
        .value
        .compare_exchange(expected, new, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => CasOutcome::Swapped(new),
        Err(current) => CasOutcome::Mismatch(current),
    }
}

/// A pre-resolved counter: increments and reads touch only the counter's atomic.
///
/// The handle stays bound to the counter it resolved. Once that counter is deleted (alone or
/// with its namespace), the handle's calls return [`Error::NotFound`]; resolve a new handle to
/// use the key again. A call that races with the deletion is ordered before it.
#[derive(Clone)]
pub struct CounterHandle {
    slot: Arc<Slot>,
    ns: Arc<str>,
    key: Arc<str>,
}

impl fmt::Debug for CounterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CounterHandle")
            .field("namespace", &self.ns)
            .field("key", &self.key)
            .field("value", &self.slot.value.load(Ordering::Relaxed))
            .finish()
    }
}

impl CounterHandle {
    /// Adds `step` and returns the new value.
    ///
    /// # Errors
    /// [`Error::Overflow`] (the counter is unchanged) or [`Error::NotFound`] once the counter
    /// was deleted.
    #[inline]
    pub fn inc(&self, step: i64) -> Result<i64> {
        self.live()?;
        self.slot.add(step, &self.ns, &self.key)
    }

    /// The current value.
    ///
    /// # Errors
    /// [`Error::NotFound`] once the counter was deleted.
    pub fn get(&self) -> Result<i64> {
        self.live()?;
        Ok(self.slot.value.load(Ordering::Acquire))
    }

    #[inline]
    fn live(&self) -> Result<()> {
        if self.slot.deleted.load(Ordering::Acquire) {
            return Err(Error::NotFound(format!("counter {}/{} was deleted", self.ns, self.key)));
        }
        Ok(())
    }
}
