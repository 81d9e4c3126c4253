//! For store implementers: a [`Batch`] folded per document and leaf, and the exact first error
//! of a batch replayed over stored documents.
//!
//! Stores that write whole documents with one statement per document (SQL rows, MongoDB
//! documents) cannot apply two updates of one leaf in one statement. [`Folded`] groups a
//! batch by document and leaf and folds consecutive updates of a leaf where the result is
//! certain in any stored state:
//!
//! - a `set` followed by anything becomes one `set` of the computed number (an overflow there
//!   is certain and reported at once);
//! - integer increments of one sign add up (their sum leaves the `i64` range exactly when one
//!   of the partial sums would);
//! - maxima fold into one maximum, minima into one minimum (the first wins ties, as applied one
//!   by one).
//!
//! Whatever cannot fold (an increment after a `max`, float increments, which do not
//! associate) stays a separate update, in order. A path written as a number and as a map in
//! the same batch is [`Error::PathConflict`] before anything is sent.
//!
//! When a store refuses a write, [`first_error`] replays the batch over the documents as they
//! are stored and returns the typed error a caller should see, naming key and path.
//!
//! ```
//! use stats_core::plan::Folded;
//! use stats_core::{Batch, Key, Number, Op, values};
//!
//! let key = Key::bucket("orders", "1h".parse().unwrap(), 0).unwrap();
//! let mut batch = Batch::new();
//! batch.inc([key.clone()], &values!({"count": 1})).unwrap();
//! batch.inc([key.clone()], &values!({"count": 2, "by": {"eu": 1}})).unwrap();
//! batch.max([key.clone()], &values!({"count": 10})).unwrap();
//! let folded = Folded::new(&batch).unwrap();
//! let doc = &folded.docs[0];
//! assert_eq!(doc.maps, ["by"]);
//! assert_eq!(doc.leaves[0].path, "count");
//! // The two increments fold; the maximum after them cannot.
//! assert_eq!(
//!     doc.leaves[0].updates,
//!     [(Op::Inc, Number::Int(3)), (Op::Max, Number::Int(10))]
//! );
//! assert_eq!(folded.depth(), 2);
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::batch::{Batch, Op};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::number::Number;
use crate::values::Values;

/// A batch grouped by document and leaf, with consecutive updates folded (see the
/// [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Folded<'b> {
    /// The documents the batch writes, in order of first write.
    pub docs: Vec<FoldedDoc<'b>>,
}

/// The folded updates of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedDoc<'b> {
    /// The document.
    pub key: &'b Key,
    /// Its leaves in order of first write, each with at least one update.
    pub leaves: Vec<FoldedLeaf<'b>>,
    /// Every map prefix of a written path (`by` and `by.eu` for `by.eu.paris`), each once, in
    /// order of first appearance.
    pub maps: Vec<&'b str>,
}

/// The pending updates of one leaf, in the order they apply.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedLeaf<'b> {
    /// The flattened path of the leaf.
    pub path: &'b str,
    /// The updates that remain after folding: one where the batch's updates folded.
    pub updates: Vec<(Op, Number)>,
}

impl<'b> Folded<'b> {
    /// Folds a batch.
    ///
    /// # Errors
    /// An error that applying the batch is certain to raise: a path that is a number and a map
    /// within the batch ([`Error::PathConflict`]), an overflow after a `set`
    /// ([`Error::Overflow`]). It may not be the batch's first error in every stored state:
    /// find that one with [`first_error`].
    pub fn new(batch: &'b Batch) -> Result<Self> {
        let mut doc_index: HashMap<&'b Key, usize> = HashMap::new();
        let mut leaf_index: HashMap<(usize, &'b str), usize> = HashMap::new();
        let mut docs: Vec<FoldedDoc<'b>> = Vec::new();
        for (op, key, path, number) in batch.updates() {
            let d = *doc_index.entry(key).or_insert_with(|| {
                docs.push(FoldedDoc {
                    key,
                    leaves: Vec::new(),
                    maps: Vec::new(),
                });
                docs.len() - 1
            });
            let doc = &mut docs[d];
            let l = *leaf_index.entry((d, path)).or_insert_with(|| {
                doc.leaves.push(FoldedLeaf {
                    path,
                    updates: Vec::new(),
                });
                doc.leaves.len() - 1
            });
            fold(&mut doc.leaves[l].updates, op, number, key, path)?;
        }
        for (d, doc) in docs.iter_mut().enumerate() {
            let mut seen: HashSet<&'b str> = HashSet::new();
            for leaf in &doc.leaves {
                for (dot, _) in leaf.path.match_indices('.') {
                    let prefix = &leaf.path[..dot];
                    if seen.insert(prefix) {
                        doc.maps.push(prefix);
                    }
                }
            }
            if let Some(prefix) = doc
                .maps
                .iter()
                .find(|prefix| leaf_index.contains_key(&(d, **prefix)))
            {
                return Err(Error::PathConflict {
                    key: doc.key.to_string(),
                    path: (*prefix).to_owned(),
                    detail: "is a number and a map in the same batch",
                });
            }
        }
        Ok(Folded { docs })
    }

    /// The most updates any one leaf still has after folding (0 for an empty batch): 1 when
    /// every document can be written with one update per leaf.
    pub fn depth(&self) -> usize {
        self.docs
            .iter()
            .flat_map(|d| d.leaves.iter().map(|l| l.updates.len()))
            .max()
            .unwrap_or(0)
    }
}

impl FoldedDoc<'_> {
    /// Whether every leaf of this document has one update left.
    pub fn is_single(&self) -> bool {
        self.leaves.iter().all(|l| l.updates.len() == 1)
    }
}

/// Appends an update of one leaf to its pending updates, folding it into the last one where
/// the result is the same in every stored state.
fn fold(pending: &mut Vec<(Op, Number)>, op: Op, n: Number, key: &Key, path: &str) -> Result<()> {
    let folded = match (pending.last().copied(), op, n) {
        // After a set the leaf's value is known: apply the update here, exactly as the store
        // would (an overflow here is certain).
        (Some((Op::Set, v)), _, _) => Some((Op::Set, op.apply(Some(v), n, key, path)?)),
        (_, Op::Set, _) => None,
        // Integer increments of one sign: the sum leaves the i64 range exactly when one of the
        // partial sums would.
        (Some((Op::Inc, Number::Int(a))), Op::Inc, Number::Int(b))
            if (a >= 0) == (b >= 0) || a == 0 || b == 0 =>
        {
            a.checked_add(b).map(|s| (Op::Inc, Number::Int(s)))
        }
        // The first of the maxima wins ties, as it would applied one by one.
        (Some((Op::Max, a)), Op::Max, b) => Some((Op::Max, a.max_value(b))),
        (Some((Op::Min, a)), Op::Min, b) => Some((Op::Min, a.min_value(b))),
        _ => None,
    };
    match (folded, pending.last_mut()) {
        (Some(update), Some(last)) => *last = update,
        _ => pending.push((op, n)),
    }
    Ok(())
}

/// Applies a batch, update by update, to stored documents (one per key of `keys`; updates of
/// other keys are skipped), and returns its first error: what a store refused, named by key
/// and path ([`Error::Overflow`], [`Error::PathConflict`]). `Ok` means the batch applies
/// cleanly to these documents.
///
/// Stores call it after a refused write, with the documents as they are stored (after a
/// rollback, or the documents a failed single-document statement left untouched).
///
/// ```
/// use stats_core::plan::first_error;
/// use stats_core::{Batch, Error, Key, values};
///
/// let key = Key::bucket("orders", "1h".parse().unwrap(), 0).unwrap();
/// let mut batch = Batch::new();
/// batch.inc([key.clone()], &values!({"count": 1})).unwrap();
/// let stored = vec![values!({"count": i64::MAX})];
/// let err = first_error(&batch, &[&key], stored).unwrap_err();
/// assert!(matches!(err, Error::Overflow { path: Some(p), .. } if p == "count"));
/// ```
///
/// # Errors
/// The first error of the batch over these documents.
pub fn first_error(batch: &Batch, keys: &[&Key], stored: Vec<Values>) -> Result<()> {
    let mut docs: HashMap<&Key, LeafDoc> = keys
        .iter()
        .zip(stored)
        .map(|(key, values)| (*key, LeafDoc::from_leaves(values.flatten())))
        .collect();
    for (op, key, path, n) in batch.updates() {
        if let Some(doc) = docs.get_mut(key) {
            doc.apply(op, key, path, n)?;
        }
    }
    Ok(())
}

/// One stored document's leaves, updated in memory with the stores' rules: the same checks
/// and arithmetic a store applies (overflow refused, a path that is a map in one place and a
/// number in another refused, `set`/`max`/`min` as [`Op::apply`]). For stores that read a
/// document, change it and write it back whole (and for finding which update of a refused
/// batch failed, see [`first_error`]).
///
/// ```
/// use stats_core::plan::LeafDoc;
/// use stats_core::{Error, Key, Number, Op};
///
/// let key = Key::bucket("orders", "1h".parse().unwrap(), 0).unwrap();
/// let mut doc = LeafDoc::from_leaves([("by.eu".to_owned(), Number::Int(1))]);
/// doc.apply(Op::Inc, &key, "by.eu", Number::Int(2)).unwrap();
/// assert_eq!(doc.leaves()["by.eu"], Number::Int(3));
/// let err = doc.apply(Op::Inc, &key, "by", Number::Int(1)).unwrap_err();
/// assert!(matches!(err, Error::PathConflict { .. }));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeafDoc {
    leaves: BTreeMap<String, Number>,
    maps: HashSet<String>,
}

impl LeafDoc {
    /// A document holding `leaves` as stored (flattened paths), taken as they are.
    pub fn from_leaves(leaves: impl IntoIterator<Item = (String, Number)>) -> Self {
        let mut doc = LeafDoc::default();
        for (path, n) in leaves {
            doc.add_prefixes(&path);
            doc.leaves.insert(path, n);
        }
        doc
    }

    /// Applies one update of `key` (named in errors).
    ///
    /// # Errors
    /// [`Error::PathConflict`] when `path` is a map here or goes below a number;
    /// [`Error::Overflow`] as [`Op::apply`]. The document is unchanged then.
    pub fn apply(&mut self, op: Op, key: &Key, path: &str, n: Number) -> Result<()> {
        if self.maps.contains(path) {
            return Err(Error::PathConflict {
                key: key.to_string(),
                path: path.to_owned(),
                detail: "is a map (stored or earlier in the batch), not a number",
            });
        }
        for (dot, _) in path.match_indices('.') {
            if self.leaves.contains_key(&path[..dot]) {
                return Err(Error::PathConflict {
                    key: key.to_string(),
                    path: path.to_owned(),
                    detail: "goes below a number (stored or earlier in the batch)",
                });
            }
        }
        let new = op.apply(self.leaves.get(path).copied(), n, key, path)?;
        self.add_prefixes(path);
        self.leaves.insert(path.to_owned(), new);
        Ok(())
    }

    /// The leaves, by path.
    pub fn leaves(&self) -> &BTreeMap<String, Number> {
        &self.leaves
    }

    fn add_prefixes(&mut self, path: &str) {
        for (dot, _) in path.match_indices('.') {
            self.maps.insert(path[..dot].to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    fn key(m: &str, start: i64) -> Key {
        Key::bucket(m, "1h".parse().unwrap(), start).unwrap()
    }

    fn shown(folded: &Folded<'_>) -> Vec<String> {
        folded
            .docs
            .iter()
            .flat_map(|d| {
                d.leaves.iter().map(move |l| {
                    format!(
                        "{}/{}/{} {} {:?}",
                        d.key.metric(),
                        d.key
                            .granularity()
                            .map(|g| g.to_string())
                            .unwrap_or_default(),
                        d.key.start().unwrap_or(0),
                        l.path,
                        l.updates
                    )
                })
            })
            .collect()
    }

    #[test]
    fn documents_and_leaves_keep_first_write_order_with_their_maps() {
        let mut b = Batch::new();
        b.inc(
            [key("b", 0), key("a", 3600)],
            &values!({"y": 1, "m": {"x": 2}}),
        )
        .unwrap();
        b.max([key("a", 3600)], &values!({"y": 5})).unwrap();
        let folded = Folded::new(&b).unwrap();
        assert_eq!(
            shown(&folded),
            [
                "b/1h/0 m.x [(Inc, Int(2))]",
                "b/1h/0 y [(Inc, Int(1))]",
                "a/1h/3600 m.x [(Inc, Int(2))]",
                "a/1h/3600 y [(Inc, Int(1)), (Max, Int(5))]",
            ]
        );
        assert_eq!(folded.docs[0].maps, ["m"]);
        assert!(folded.docs[0].is_single());
        assert!(!folded.docs[1].is_single());
        assert_eq!(folded.depth(), 2);
        assert_eq!(Folded::new(&Batch::new()).unwrap().depth(), 0);
    }

    #[test]
    fn folding_keeps_the_sequential_result() {
        let k = key("m", 0);
        let mut b = Batch::new();
        for v in [
            values!({"a": 5}),
            values!({"a": 2}),
            values!({"b": 1}),
            values!({"b": -1}),
            values!({"c": 1.5}),
            values!({"c": 1.5}),
        ] {
            b.inc([k.clone()], &v).unwrap();
        }
        b.set([k.clone()], &values!({"d": 1})).unwrap();
        b.inc([k.clone()], &values!({"d": 0.5})).unwrap();
        b.max([k.clone()], &values!({"d": 1})).unwrap();
        b.max([k.clone()], &values!({"e": 1})).unwrap();
        b.max([k.clone()], &values!({"e": 3.0})).unwrap();
        b.max([k.clone()], &values!({"e": 3})).unwrap();
        let folded = Folded::new(&b).unwrap();
        assert_eq!(
            shown(&folded),
            [
                "m/1h/0 a [(Inc, Int(7))]",
                "m/1h/0 b [(Inc, Int(1)), (Inc, Int(-1))]",
                "m/1h/0 c [(Inc, Float(1.5)), (Inc, Float(1.5))]",
                "m/1h/0 d [(Set, Float(1.5))]",
                "m/1h/0 e [(Max, Float(3.0))]",
            ]
        );
    }

    #[test]
    fn certain_errors_are_found_before_sending() {
        let k = key("m", 0);
        let mut b = Batch::new();
        b.inc([k.clone()], &values!({"n": 1})).unwrap();
        b.set([k.clone()], &values!({"n": {"deep": 1}})).unwrap();
        assert!(matches!(Folded::new(&b), Err(Error::PathConflict { .. })));
        let mut b = Batch::new();
        b.set([k.clone()], &values!({"n": i64::MAX})).unwrap();
        b.inc([k.clone()], &values!({"n": 1})).unwrap();
        assert!(matches!(Folded::new(&b), Err(Error::Overflow { .. })));
    }

    #[test]
    fn first_error_names_key_and_path() {
        let k = key("m", 0);
        let other = key("o", 0);
        let mut b = Batch::new();
        b.inc([other.clone(), k.clone()], &values!({"a": 1, "x": 1}))
            .unwrap();
        let stored = vec![values!({"x": {"y": 1}})];
        let err = first_error(&b, &[&k], stored).unwrap_err();
        assert!(
            matches!(&err, Error::PathConflict { path, key, .. } if path == "x" && *key == k.to_string()),
            "{err}"
        );
        let stored = vec![values!({"x": i64::MAX})];
        let err = first_error(&b, &[&k], stored).unwrap_err();
        assert!(
            matches!(&err, Error::Overflow { path: Some(p), .. } if p == "x"),
            "{err}"
        );
        first_error(&b, &[&k], vec![Values::new()]).unwrap();
        let err = first_error(&b, &[&k], vec![values!({"a": {"b": 1}})]).unwrap_err();
        assert!(
            matches!(&err, Error::PathConflict { path, .. } if path == "a"),
            "{err}"
        );
        let err = first_error(&b, &[&k], vec![values!({"x": {"y": 1}})]).unwrap_err();
        assert!(matches!(&err, Error::PathConflict { .. }), "{err}");
    }
}
