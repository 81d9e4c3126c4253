//! Time-bucketed documents: a concurrent map of buckets, each behind its own small lock.
//!
//! A batch locks the buckets it touches in key order (so concurrent batches cannot deadlock),
//! computes every new leaf into a staging area, and writes back only if every update
//! succeeded: a batch is all or nothing (overflow and path conflicts write nothing at any
//! key). There is no lock above the buckets: batches on different buckets never wait for each
//! other.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use foldhash::fast::RandomState;
use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;
use stats_core::retention::Retention;
use stats_core::store::check_range;
use stats_core::{
    BATCH_ID_WINDOW, Batch, BatchId, Error, Granularity, Key, NameKind, Number, Result, Slot,
    Values, name,
};

#[derive(Default)]
struct BucketState {
    /// Set (under the lock) when the bucket is deleted; a batch that locked a removed bucket
    /// starts over on a fresh one.
    dead: bool,
    /// Flattened path -> number.
    leaves: HashMap<Box<str>, Number, RandomState>,
    /// Every proper prefix of a leaf path (the maps), to refuse a leaf where a map is.
    maps: HashSet<Box<str>, RandomState>,
}

impl BucketState {
    fn to_values(&self) -> Values {
        Values::from_flat(self.leaves.iter().map(|(p, n)| (&**p, *n)))
            .expect("stored leaves are checked paths without conflicts")
    }
}

type Bucket = Arc<Mutex<BucketState>>;

/// The ids of batches applied within [`BATCH_ID_WINDOW`], with when they were applied.
#[derive(Default)]
struct AppliedIds {
    when: HashMap<BatchId, Instant, RandomState>,
    /// Ids in the order applied, for pruning from the front.
    order: VecDeque<(Instant, BatchId)>,
}

impl AppliedIds {
    fn contains(&self, id: BatchId) -> bool {
        self.when.contains_key(&id)
    }

    /// Records `id` as applied now, forgetting ids applied longer than the window ago.
    fn insert(&mut self, id: BatchId) {
        let now = Instant::now();
        while let Some(&(at, old)) = self.order.front() {
            if now.duration_since(at) <= BATCH_ID_WINDOW {
                break;
            }
            self.order.pop_front();
            self.when.remove(&old);
        }
        self.when.insert(id, now);
        self.order.push_back((now, id));
    }
}

/// The metric documents of an [`AtomicsStore`](crate::AtomicsStore), with synchronous
/// methods; every method has the contract of the
/// [`MetricStore`](stats_core::MetricStore) method of the same name.
pub struct Metrics {
    buckets: papaya::HashMap<Key, Bucket, RandomState>,
    retention: Retention,
    /// Unix second at or after which the next write sweeps expired buckets.
    next_sweep: AtomicI64,
    /// Batch ids applied within the window. Checked and recorded while the batch holds the
    /// locks of all its buckets, so two applies of one id (same keys) cannot both write.
    applied: Mutex<AppliedIds>,
}

/// How often a write sweeps expired buckets when a retention is set.
pub(crate) const SWEEP_INTERVAL: i64 = 60;

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("documents", &self.buckets.len())
            .field("retention", &self.retention)
            .finish()
    }
}

/// The prefixes of a path at separator boundaries, shortest first: `a.b.c` gives `a`, `a.b`.
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('.').map(move |(i, _)| &path[..i])
}

/// The updates of one batch at one key, computed without touching the bucket.
///
/// Leaves sit in a vector, searched linearly while few (a tracked event writes a handful per
/// bucket) and through an index once many; no allocation for an empty stage.
#[derive(Default)]
struct Staged<'b> {
    leaves: Vec<(&'b str, Number)>,
    index: Option<HashMap<&'b str, usize, RandomState>>,
    maps: HashSet<&'b str, RandomState>,
}

/// Above this many staged leaves at one key, lookups go through a hash index.
const LINEAR_LIMIT: usize = 16;

impl<'b> Staged<'b> {
    fn get(&self, path: &str) -> Option<Number> {
        match &self.index {
            Some(index) => index.get(path).map(|&i| self.leaves[i].1),
            None => self
                .leaves
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, n)| *n),
        }
    }

    fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    fn set(&mut self, path: &'b str, number: Number) {
        let found = match &self.index {
            Some(index) => index.get(path).copied(),
            None => self.leaves.iter().position(|(p, _)| *p == path),
        };
        match found {
            Some(i) => self.leaves[i].1 = number,
            None => {
                self.leaves.push((path, number));
                if let Some(index) = &mut self.index {
                    index.insert(path, self.leaves.len() - 1);
                } else if self.leaves.len() > LINEAR_LIMIT {
                    self.index = Some(
                        self.leaves
                            .iter()
                            .enumerate()
                            .map(|(i, (p, _))| (*p, i))
                            .collect(),
                    );
                }
            }
        }
    }
}

impl Metrics {
    pub(crate) fn new(retention: Retention) -> Self {
        Metrics {
            buckets: papaya::HashMap::default(),
            retention,
            next_sweep: AtomicI64::new(i64::MIN),
            applied: Mutex::new(AppliedIds::default()),
        }
    }

    /// See [`MetricStore::apply`](stats_core::MetricStore::apply). All or nothing: a refused
    /// batch leaves nothing behind, not even an empty document.
    ///
    /// With a retention set, the first write after every minute also
    /// removes the expired buckets first (see [`Metrics::purge_expired`]).
    ///
    /// A batch with an id is applied once: the id is remembered (for
    /// [`BATCH_ID_WINDOW`](stats_core::BATCH_ID_WINDOW), in memory) when the batch is written,
    /// and a later apply with that id writes nothing and returns `Ok`.
    ///
    /// # Errors
    /// [`Error::Overflow`] or [`Error::PathConflict`]; nothing is written.
    pub fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if !self.retention.is_empty() {
            let now = Timestamp::now();
            let due = self.next_sweep.load(Ordering::Relaxed);
            if now.as_second() >= due
                && self
                    .next_sweep
                    .compare_exchange(
                        due,
                        now.as_second() + SWEEP_INTERVAL,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                self.purge_expired(now);
            }
        }
        let keys = batch.sorted_keys();
        loop {
            let buckets: Vec<Bucket> = {
                let guard = self.buckets.guard();
                keys.iter()
                    .map(|k| {
                        let bucket = match self.buckets.get(*k, &guard) {
                            Some(found) => found,
                            None => self.buckets.get_or_insert_with(
                                (*k).clone(),
                                Bucket::default,
                                &guard,
                            ),
                        };
                        Arc::clone(bucket)
                    })
                    .collect()
            };
            let mut locked: Vec<MutexGuard<'_, BucketState>> =
                buckets.iter().map(|b| b.lock()).collect();
            if locked.iter().any(|state| state.dead) {
                continue;
            }
            if let Some(id) = batch.id()
                && self.applied.lock().contains(id)
            {
                self.drop_empty(&keys, &buckets, &mut locked);
                return Ok(());
            }
            let staged = match stage(batch, &keys, &locked) {
                Ok(staged) => staged,
                Err(e) => {
                    self.drop_empty(&keys, &buckets, &mut locked);
                    return Err(e);
                }
            };
            if let Some(id) = batch.id() {
                self.applied.lock().insert(id);
            }
            for (state, staged) in locked.iter_mut().zip(staged) {
                for map in staged.maps {
                    if !state.maps.contains(map) {
                        state.maps.insert(map.into());
                    }
                }
                for (path, number) in staged.leaves {
                    match state.leaves.get_mut(path) {
                        Some(stored) => *stored = number,
                        None => {
                            state.leaves.insert(path.into(), number);
                        }
                    }
                }
            }
            return Ok(());
        }
    }

    /// See [`MetricStore::read`](stats_core::MetricStore::read).
    pub fn read(&self, keys: &[Key]) -> Vec<Values> {
        let guard = self.buckets.guard();
        keys.iter()
            .map(|k| match self.buckets.get(k, &guard) {
                Some(bucket) => bucket.lock().to_values(),
                None => Values::new(),
            })
            .collect()
    }

    /// See [`MetricStore::range`](stats_core::MetricStore::range).
    ///
    /// # Errors
    /// [`Error::InvalidName`] or [`Error::InvalidInput`].
    pub fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>> {
        check_range(metric, starts)?;
        let Some(&first) = starts.first() else {
            return Ok(Vec::new());
        };
        let mut key = Key::bucket(metric, granularity, first)?;
        let guard = self.buckets.guard();
        Ok(starts
            .iter()
            .map(|&start| {
                key = key.with_bucket(granularity, start);
                match self.buckets.get(&key, &guard) {
                    Some(bucket) => bucket.lock().to_values(),
                    None => Values::new(),
                }
            })
            .collect())
    }

    /// See [`MetricStore::remove`](stats_core::MetricStore::remove).
    pub fn remove(&self, keys: &[Key]) {
        let guard = self.buckets.guard();
        for key in keys {
            if let Some(bucket) = self.buckets.remove(key, &guard) {
                bucket.lock().dead = true;
            }
        }
    }

    /// Removes the buckets of a refused batch that hold nothing (the ones it created), while
    /// their locks are held: a batch waiting on one of them sees it dead and starts over.
    fn drop_empty(
        &self,
        keys: &[&Key],
        buckets: &[Bucket],
        locked: &mut [MutexGuard<'_, BucketState>],
    ) {
        let guard = self.buckets.guard();
        for ((key, bucket), state) in keys.iter().zip(buckets).zip(locked.iter_mut()) {
            if state.leaves.is_empty() && state.maps.is_empty() {
                state.dead = true;
                let _ =
                    self.buckets
                        .remove_if(*key, |_, current| Arc::ptr_eq(current, bucket), &guard);
            }
        }
    }

    /// Removes the documents whose keys match, marking each dead under its lock; returns how
    /// many. Visits every document: the cost grows with the store, not with the match.
    fn remove_where(&self, matches: impl Fn(&Key) -> bool) -> u64 {
        let guard = self.buckets.guard();
        let doomed: Vec<Key> = self
            .buckets
            .iter(&guard)
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k.clone())
            .collect();
        let mut removed = 0;
        for key in &doomed {
            if let Some(bucket) = self.buckets.remove(key, &guard) {
                bucket.lock().dead = true;
                removed += 1;
            }
        }
        removed
    }

    /// See [`MetricStore::remove_metric`](stats_core::MetricStore::remove_metric).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad metric key.
    pub fn remove_metric(&self, metric: &str) -> Result<u64> {
        name::check_segment(NameKind::Metric, metric)?;
        Ok(self.remove_where(|k| k.metric() == metric))
    }

    /// See [`MetricStore::purge`](stats_core::MetricStore::purge).
    pub fn purge(&self, granularity: Granularity, before: i64) -> u64 {
        self.remove_where(|k| {
            matches!(k.slot(), Slot::Bucket { granularity: g, start } if g == granularity && start < before)
        })
    }

    /// Removes every bucket that has expired at `now` under the store's retention (see
    /// [`AtomicsStore::retention`](crate::AtomicsStore::retention)); returns how many. Writes
    /// do this by themselves once a minute; call it to sweep at a time of your choosing.
    pub fn purge_expired(&self, now: Timestamp) -> u64 {
        self.retention
            .cutoffs(now)
            .into_iter()
            .map(|(g, before)| self.purge(g, before))
            .sum()
    }

    /// How many documents the store holds.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether the store holds no document.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// Computes every update of the batch against the locked buckets (`locked[i]` is `keys[i]`).
fn stage<'b>(
    batch: &'b Batch,
    keys: &[&Key],
    locked: &[MutexGuard<'_, BucketState>],
) -> Result<Vec<Staged<'b>>> {
    let mut staged: Vec<Staged<'b>> = keys.iter().map(|_| Staged::default()).collect();
    for write in batch.writes() {
        for key in write.keys() {
            let i = keys
                .binary_search(&key)
                .expect("sorted_keys holds every key of the batch");
            let (state, stage) = (&locked[i], &mut staged[i]);
            for (path, given) in write.fields() {
                let path = path.as_str();
                let stored = match stage.get(path) {
                    Some(n) => Some(n),
                    None => state.leaves.get(path).copied(),
                };
                if stored.is_none() {
                    check_new_leaf(key, path, state, stage)?;
                }
                let new = write.op().apply(stored, *given, key, path)?;
                stage.set(path, new);
            }
        }
    }
    Ok(staged)
}

/// A new leaf must not sit below another leaf nor where a map is.
fn check_new_leaf<'b>(
    key: &Key,
    path: &'b str,
    state: &BucketState,
    stage: &mut Staged<'b>,
) -> Result<()> {
    let conflict = |detail| Error::PathConflict {
        key: key.to_string(),
        path: path.to_owned(),
        detail,
    };
    if state.maps.contains(path) || stage.maps.contains(path) {
        return Err(conflict("is a map in the stored document, not a number"));
    }
    for prefix in prefixes(path) {
        if state.leaves.contains_key(prefix) || stage.contains(prefix) {
            return Err(conflict("goes below a number in the stored document"));
        }
    }
    stage.maps.extend(prefixes(path));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_leaves_at_one_key_use_the_index_and_stay_exact() {
        let metrics = Metrics::new(Retention::new());
        let key = Key::bucket("m", "1h".parse().unwrap(), 0).unwrap();
        let mut doc = Values::new();
        for f in 0..100 {
            doc.insert(format!("f{f}"), f).unwrap();
        }
        let mut batch = Batch::new();
        batch.inc([key.clone()], &doc).unwrap();
        batch.inc([key.clone()], &doc).unwrap();
        batch
            .set([key.clone()], &stats_core::values!({"f7": -1}))
            .unwrap();
        batch
            .inc(
                [key.clone()],
                &stats_core::values!({"f7": 2, "g": {"h": 1}}),
            )
            .unwrap();
        metrics.apply(&batch).unwrap();
        let got = metrics.read(std::slice::from_ref(&key)).remove(0);
        for f in 0..100_i64 {
            let expected = if f == 7 { 1 } else { 2 * f };
            assert_eq!(
                got.number_at(&format!("f{f}")),
                Some(Number::Int(expected)),
                "f{f}"
            );
        }
        assert_eq!(got.number_at("g.h"), Some(Number::Int(1)));
        let mut conflict = Batch::new();
        conflict.inc([key.clone()], &doc).unwrap();
        conflict
            .inc([key.clone()], &stats_core::values!({"g": 1}))
            .unwrap();
        assert!(matches!(
            metrics.apply(&conflict),
            Err(Error::PathConflict { .. })
        ));
        assert_eq!(metrics.read(std::slice::from_ref(&key)).remove(0), got);
    }

    #[test]
    fn a_refused_batch_leaves_no_document_behind() {
        let metrics = Metrics::new(Retention::new());
        let h = "1h".parse().unwrap();
        let full = Key::bucket("m", h, 0).unwrap();
        metrics
            .apply(
                Batch::new()
                    .inc([full.clone()], &stats_core::values!({"n": i64::MAX}))
                    .unwrap(),
            )
            .unwrap();
        for round in 0..100 {
            let mut batch = Batch::new();
            let fresh: Vec<Key> = (0..10)
                .map(|i| full.with_bucket(h, 3600 * (1 + i + 10 * round)))
                .collect();
            batch.inc(fresh, &stats_core::values!({"n": 1})).unwrap();
            batch
                .inc([full.clone()], &stats_core::values!({"n": 1}))
                .unwrap();
            assert!(matches!(metrics.apply(&batch), Err(Error::Overflow { .. })));
        }
        assert_eq!(
            metrics.len(),
            1,
            "refused batches must not create documents"
        );
    }

    #[test]
    fn retention_sweeps_on_write_and_on_demand() {
        let m: Granularity = "1m".parse().unwrap();
        let metrics = Metrics::new(
            Retention::new()
                .keep(m, std::time::Duration::from_secs(3600))
                .unwrap(),
        );
        let now = Timestamp::now().as_second() / 60 * 60;
        let old = Key::bucket("m", m, now - 7200).unwrap();
        let h = old.with_bucket("1h".parse().unwrap(), now - 7200);
        let mut batch = Batch::new();
        batch
            .inc([old.clone(), h.clone()], &stats_core::values!({"n": 1}))
            .unwrap();
        // The first write sweeps before applying, so the old minute bucket survives it...
        metrics.apply(&batch).unwrap();
        assert_eq!(metrics.len(), 2);
        // ...and the explicit sweep removes it, keeping the hour bucket (no retention).
        assert_eq!(metrics.purge_expired(Timestamp::now()), 1);
        assert_eq!(metrics.len(), 1);
        assert!(metrics.read(&[old])[0].is_empty());
        // The next write within the minute does not sweep again.
        let recent = Key::bucket("m", m, now).unwrap();
        metrics
            .apply(
                Batch::new()
                    .inc([recent], &stats_core::values!({"n": 1}))
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(metrics.len(), 2);
    }

    #[test]
    fn prefixes_at_separators() {
        assert_eq!(prefixes("a.bc.d").collect::<Vec<_>>(), ["a", "a.bc"]);
        assert_eq!(prefixes("a").count(), 0);
    }
}
