//! Lock-free counters: one concurrent map from (namespace, key) to an atomic, plus a small
//! per-namespace index for listing and deleting a namespace.
//!
//! An increment of an existing counter is one hash of the pair, one lock-free lookup and one
//! compare-exchange on the counter's own cache line. Creating and deleting counters take the
//! namespace index's mutex, so that listing, capacity and whole-namespace deletion are exact.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use foldhash::fast::RandomState;
use parking_lot::Mutex;
use stats_core::store::check_counter;
use stats_core::{CasOutcome, CounterInfo, Error, NameKind, NamespaceInfo, Result, name};

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
            let new = current
                .checked_add(step)
                .ok_or_else(|| overflow(ns, key, current, step))?;
            match self.value.compare_exchange_weak(
                current,
                new,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
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

/// The map key of a counter.
struct CounterKey {
    ns: Arc<str>,
    key: Box<str>,
}

/// A borrowed (namespace, key) pair that finds a [`CounterKey`] without allocating.
struct Lookup<'a>(&'a str, &'a str);

fn hash_pair<H: Hasher>(ns: &str, key: &str, state: &mut H) {
    // `str`'s own Hash writes a terminator, so ("ab", "c") and ("a", "bc") differ.
    ns.hash(state);
    key.hash(state);
}

impl Hash for CounterKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_pair(&self.ns, &self.key, state);
    }
}

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_pair(self.0, self.1, state);
    }
}

impl PartialEq for CounterKey {
    fn eq(&self, other: &Self) -> bool {
        self.ns == other.ns && self.key == other.key
    }
}

impl Eq for CounterKey {}

impl papaya::Equivalent<CounterKey> for Lookup<'_> {
    fn equivalent(&self, key: &CounterKey) -> bool {
        *key.ns == *self.0 && *key.key == *self.1
    }
}

/// The keys of one namespace. Its mutex orders creations and deletions in the namespace, so
/// that capacity checks, listings and whole-namespace deletion are exact.
struct Namespace {
    name: Arc<str>,
    keys: Mutex<BTreeSet<Box<str>>>,
}

/// The counters of an [`AtomicsStore`](crate::AtomicsStore), with synchronous methods: the
/// fast path for code that is not async, and what the async [`CounterStore`] impl calls.
///
/// Every method has the contract of the [`CounterStore`] method of the same name.
///
/// [`CounterStore`]: stats_core::CounterStore
pub struct Counters {
    counters: papaya::HashMap<CounterKey, Arc<Slot>, RandomState>,
    namespaces: papaya::HashMap<Box<str>, Arc<Namespace>, RandomState>,
    capacity: Option<usize>,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("counters", &self.counters.len())
            .field("namespaces", &self.namespaces.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Counters {
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        Counters {
            counters: papaya::HashMap::default(),
            namespaces: papaya::HashMap::default(),
            capacity,
        }
    }

    /// The capacity of each namespace, if bounded.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// The namespace's index, created if missing. Namespaces are checked only on the way in.
    fn namespace(&self, ns: &str) -> Result<Arc<Namespace>> {
        let guard = self.namespaces.guard();
        if let Some(found) = self.namespaces.get(ns, &guard) {
            return Ok(Arc::clone(found));
        }
        name::check_segment(NameKind::Namespace, ns)?;
        let created = self.namespaces.get_or_insert_with(
            ns.into(),
            || {
                Arc::new(Namespace {
                    name: ns.into(),
                    keys: Mutex::new(BTreeSet::new()),
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
        // Fast path: found, so no allocation, no name check (everything in the map was
        // checked on the way in), no shared write but the counter itself.
        {
            let guard = self.counters.guard();
            if let Some(slot) = self.counters.get(&Lookup(ns, key), &guard) {
                return f(slot, false);
            }
        }
        check_counter(ns, key)?;
        let space = self.namespace(ns)?;
        let mut keys = space.keys.lock();
        let guard = self.counters.guard();
        if let Some(slot) = self.counters.get(&Lookup(ns, key), &guard) {
            return f(slot, false);
        }
        let start = initial()?;
        if let Some(capacity) = self.capacity {
            if keys.len() >= capacity {
                return Err(Error::CapacityExceeded {
                    namespace: ns.to_owned(),
                    capacity,
                });
            }
        }
        let counter_key = CounterKey {
            ns: Arc::clone(&space.name),
            key: key.into(),
        };
        // Creations in a namespace are serialized by its lock, so the insert cannot collide.
        let slot = self
            .counters
            .get_or_insert(counter_key, Slot::new(start), &guard);
        keys.insert(key.into());
        f(slot, true)
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
            || {
                default
                    .checked_add(step)
                    .ok_or_else(|| overflow(ns, key, default, step))
            },
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
        let guard = self.counters.guard();
        if let Some(slot) = self.counters.get(&Lookup(ns, key), &guard) {
            return Ok(Some(slot.value.load(Ordering::Acquire)));
        }
        check_counter(ns, key)?;
        Ok(None)
    }

    /// See [`CounterStore::get_all`](stats_core::CounterStore::get_all). The key set is exact
    /// (creations and deletions wait); each value is read atomically on its own.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad namespace.
    pub fn get_all(&self, ns: &str) -> Result<Vec<(String, i64)>> {
        name::check_segment(NameKind::Namespace, ns)?;
        let space = {
            let guard = self.namespaces.guard();
            match self.namespaces.get(ns, &guard) {
                Some(space) => Arc::clone(space),
                None => return Ok(Vec::new()),
            }
        };
        let keys = space.keys.lock();
        let guard = self.counters.guard();
        Ok(keys
            .iter()
            .filter_map(|k| {
                let slot = self.counters.get(&Lookup(ns, k), &guard)?;
                Some((k.to_string(), slot.value.load(Ordering::Acquire)))
            })
            .collect())
    }

    /// See [`CounterStore::set`](stats_core::CounterStore::set).
    ///
    /// # Errors
    /// As the trait method.
    pub fn set(&self, ns: &str, key: &str, value: i64) -> Result<()> {
        self.with_slot(
            ns,
            key,
            || Ok(value),
            |slot, created| {
                if !created {
                    slot.value.store(value, Ordering::Release);
                }
                Ok(())
            },
        )
    }

    /// See [`CounterStore::delete`](stats_core::CounterStore::delete).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad name.
    pub fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        check_counter(ns, key)?;
        let space = {
            let guard = self.namespaces.guard();
            match self.namespaces.get(ns, &guard) {
                Some(space) => Arc::clone(space),
                None => return Ok(false),
            }
        };
        let mut keys = space.keys.lock();
        if !keys.remove(key) {
            return Ok(false);
        }
        self.remove_slot(ns, key);
        Ok(true)
    }

    fn remove_slot(&self, ns: &str, key: &str) {
        let guard = self.counters.guard();
        if let Some(slot) = self.counters.remove(&Lookup(ns, key), &guard) {
            slot.deleted.store(true, Ordering::Release);
        }
    }

    /// See [`CounterStore::delete_namespace`](stats_core::CounterStore::delete_namespace).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad namespace.
    pub fn delete_namespace(&self, ns: &str) -> Result<u64> {
        name::check_segment(NameKind::Namespace, ns)?;
        let space = {
            let guard = self.namespaces.guard();
            match self.namespaces.get(ns, &guard) {
                Some(space) => Arc::clone(space),
                None => return Ok(0),
            }
        };
        let mut keys = space.keys.lock();
        let removed = keys.len() as u64;
        for key in std::mem::take(&mut *keys) {
            self.remove_slot(ns, &key);
        }
        Ok(removed)
    }

    /// See [`CounterStore::compare_and_swap`](stats_core::CounterStore::compare_and_swap):
    /// one `compare_exchange` on the counter.
    ///
    /// # Errors
    /// As the trait method.
    pub fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome> {
        if expected != 0 {
            // A missing counter counts as 0, so only `expected == 0` may create it.
            let guard = self.counters.guard();
            return match self.counters.get(&Lookup(ns, key), &guard) {
                Some(slot) => Ok(cas(slot, expected, new)),
                None => {
                    check_counter(ns, key)?;
                    Ok(CasOutcome::Mismatch(0))
                }
            };
        }
        self.with_slot(
            ns,
            key,
            || Ok(new),
            |slot, created| {
                Ok(if created {
                    CasOutcome::Swapped(new)
                } else {
                    cas(slot, expected, new)
                })
            },
        )
    }

    /// See [`CounterStore::info`](stats_core::CounterStore::info).
    pub fn info(&self) -> CounterInfo {
        let namespaces = self.namespaces.pin();
        let entries = namespaces
            .iter()
            .map(|(name, space)| {
                NamespaceInfo::new(name.to_string(), space.keys.lock().len() as u64)
            })
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
            return Err(Error::NotFound(format!(
                "counter {}/{} was deleted",
                self.ns, self.key
            )));
        }
        Ok(())
    }
}
