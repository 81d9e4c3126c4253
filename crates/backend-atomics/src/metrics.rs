//! Time-bucketed documents: a concurrent map of buckets, each behind its own small lock.
//!
//! A batch locks the buckets it touches in key order (so concurrent batches cannot deadlock),
//! computes every new leaf into a staging area, and writes back only if every update
//! succeeded: a batch is all or nothing (overflow and path conflicts write nothing at any
//! key). There is no lock above the buckets: batches on different buckets never wait for each
//! other.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use foldhash::fast::RandomState;
use parking_lot::{Mutex, MutexGuard};
use stats_core::store::check_range;
use stats_core::{Batch, Error, Granularity, Key, Number, Result, Values};

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

/// The metric documents of an [`AtomicsStore`](crate::AtomicsStore), with synchronous
/// methods; every method has the contract of the
/// [`MetricStore`](stats_core::MetricStore) method of the same name.
pub struct Metrics {
    buckets: papaya::HashMap<Key, Bucket, RandomState>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("documents", &self.buckets.len())
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
    pub(crate) fn new() -> Self {
        Metrics {
            buckets: papaya::HashMap::default(),
        }
    }

    /// See [`MetricStore::apply`](stats_core::MetricStore::apply). All or nothing.
    ///
    /// # Errors
    /// [`Error::Overflow`] or [`Error::PathConflict`]; nothing is written.
    pub fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
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
            let staged = stage(batch, &keys, &locked)?;
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
        let metrics = Metrics::new();
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
    fn prefixes_at_separators() {
        assert_eq!(prefixes("a.bc.d").collect::<Vec<_>>(), ["a", "a.bc"]);
        assert_eq!(prefixes("a").count(), 0);
    }
}
