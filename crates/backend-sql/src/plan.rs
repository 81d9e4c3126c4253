//! Turning a [`Batch`] into upsert statements, and finding the exact error of a failed one.
//!
//! A batch becomes rows `(key, path, op, int, float)`:
//!
//! - One row per leaf update, after folding consecutive updates of the same leaf where the
//!   result is certain in any stored state: a `set` followed by anything becomes one `set` of
//!   the computed number; increments of integers of the same sign add up (their sum overflows
//!   exactly when one of the steps would); maxima (minima) fold into one. Whatever cannot fold
//!   (an increment after a `max`, float increments, which do not associate) stays a separate
//!   update.
//! - One marker row (op [`OP_MAP`], no number) per map prefix of a written path: `by.eu`
//!   writes the marker `by`. A marker says that path is a map; the upsert refuses a number
//!   written over a marker and a marker written over a number (see the dialects).
//!
//! The rows are split into rounds: the `n`-th update of a leaf goes into round `n`, because one
//! upsert statement cannot touch a row twice (PostgreSQL refuses, the others would apply only
//! one). Every round is sorted by (metric, granularity, start, path), the order in which the
//! statements take their row locks, so that two concurrent batches take the locks they share
//! in the same order and cannot deadlock; rounds after the first only touch rows the first
//! already locked.

use std::collections::{HashMap, HashSet};

use stats_core::{Batch, Error, Key, Number, Op, Result, Slot, Values};

/// The op of a map marker row.
pub(crate) const OP_MAP: i16 = 0;
/// The op of an increment.
pub(crate) const OP_INC: i16 = 1;
/// The op of a set.
pub(crate) const OP_SET: i16 = 2;
/// The op of a maximum.
pub(crate) const OP_MAX: i16 = 3;
/// The op of a minimum.
pub(crate) const OP_MIN: i16 = 4;

/// The granularity column of a metric's status slot (bucket granularities are never empty).
pub(crate) const STATUS_GRANULARITY: &str = "";
/// The bucket start column of a metric's status slot.
pub(crate) const STATUS_AT: i64 = 0;

/// The columns that identify one document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DocId<'a> {
    pub(crate) metric: &'a str,
    pub(crate) granularity: String,
    pub(crate) at: i64,
}

impl<'a> DocId<'a> {
    pub(crate) fn of(key: &'a Key) -> Self {
        let (granularity, at) = match key.slot() {
            Slot::Status => (STATUS_GRANULARITY.to_owned(), STATUS_AT),
            Slot::Bucket { granularity, start } => (granularity.to_string(), start),
        };
        DocId {
            metric: key.metric(),
            granularity,
            at,
        }
    }
}

/// One row of an upsert statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row<'b> {
    /// Index into [`Plan::docs`].
    pub(crate) doc: usize,
    pub(crate) path: &'b str,
    pub(crate) op: i16,
    pub(crate) int: Option<i64>,
    pub(crate) float: Option<f64>,
}

/// The statements of one batch.
#[derive(Debug)]
pub(crate) struct Plan<'b> {
    /// The documents the batch writes, sorted.
    pub(crate) docs: Vec<DocId<'b>>,
    /// The rounds, each sorted by (document, path).
    pub(crate) rounds: Vec<Vec<Row<'b>>>,
}

impl<'b> Plan<'b> {
    /// Plans a batch.
    ///
    /// # Errors
    /// An error that applying the batch is certain to raise (a path that is a number and a map
    /// within the batch, an overflow after a `set`). It may not be the batch's first error: the
    /// caller finds that one with [`first_error`].
    pub(crate) fn new(batch: &'b Batch) -> Result<Self> {
        let mut key_index: HashMap<&'b Key, usize> = HashMap::new();
        let mut keys: Vec<&'b Key> = Vec::new();
        let mut leaf_index: HashMap<(usize, &'b str), usize> = HashMap::new();
        // (document, path, pending updates) of every leaf, in order of first write.
        type Leaf<'b> = (usize, &'b str, Vec<(Op, Number)>);
        let mut leaves: Vec<Leaf<'b>> = Vec::new();
        for (op, key, path, number) in batch.updates() {
            let k = *key_index.entry(key).or_insert_with(|| {
                keys.push(key);
                keys.len() - 1
            });
            let l = *leaf_index.entry((k, path)).or_insert_with(|| {
                leaves.push((k, path, Vec::new()));
                leaves.len() - 1
            });
            fold(&mut leaves[l].2, op, number, key, path)?;
        }

        let mut maps: Vec<(usize, &'b str)> = Vec::new();
        let mut seen: HashSet<(usize, &'b str)> = HashSet::new();
        for &(k, path, _) in &leaves {
            for (dot, _) in path.match_indices('.') {
                let prefix = &path[..dot];
                if seen.insert((k, prefix)) {
                    maps.push((k, prefix));
                }
            }
        }
        for &(k, prefix) in &maps {
            if leaf_index.contains_key(&(k, prefix)) {
                return Err(Error::PathConflict {
                    key: keys[k].to_string(),
                    path: prefix.to_owned(),
                    detail: "is a number and a map in the same batch",
                });
            }
        }

        // Sort the documents, then renumber the rows to the sorted order.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        let ids: Vec<DocId<'b>> = keys.iter().map(|k| DocId::of(k)).collect();
        order.sort_by(|&a, &b| ids[a].cmp(&ids[b]));
        let mut rank = vec![0; keys.len()];
        for (r, &k) in order.iter().enumerate() {
            rank[k] = r;
        }
        let mut ids: Vec<Option<DocId<'b>>> = ids.into_iter().map(Some).collect();
        let docs: Vec<DocId<'b>> = order
            .iter()
            .map(|&k| ids[k].take().expect("each document once"))
            .collect();

        let depth = leaves.iter().map(|l| l.2.len()).max().unwrap_or(0);
        let mut rounds: Vec<Vec<Row<'b>>> = vec![Vec::new(); depth.max(1)];
        for (k, prefix) in maps {
            rounds[0].push(Row {
                doc: rank[k],
                path: prefix,
                op: OP_MAP,
                int: None,
                float: None,
            });
        }
        for (k, path, ops) in leaves {
            for (round, (op, number)) in ops.into_iter().enumerate() {
                let (int, float) = match number {
                    Number::Int(i) => (Some(i), None),
                    Number::Float(f) => (None, Some(f)),
                };
                rounds[round].push(Row {
                    doc: rank[k],
                    path,
                    op: op_code(op),
                    int,
                    float,
                });
            }
        }
        for round in &mut rounds {
            round.sort_unstable_by(|a, b| (a.doc, a.path).cmp(&(b.doc, b.path)));
        }
        Ok(Plan { docs, rounds })
    }

    /// The statements to run in order: every round cut into chunks of at most `max_rows` rows.
    /// Chunks keep the sorted order, so lock order holds across them.
    pub(crate) fn statements(&self, max_rows: usize) -> impl Iterator<Item = &[Row<'b>]> {
        self.rounds
            .iter()
            .flat_map(move |round| round.chunks(max_rows.max(1)))
    }

    /// Whether the whole plan is one statement (which needs no explicit transaction: a single
    /// statement is atomic on its own).
    pub(crate) fn is_one_statement(&self, max_rows: usize) -> bool {
        self.rounds.len() == 1 && self.rounds[0].len() <= max_rows
    }
}

fn op_code(op: Op) -> i16 {
    match op {
        Op::Inc => OP_INC,
        Op::Set => OP_SET,
        Op::Max => OP_MAX,
        Op::Min => OP_MIN,
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

/// Applies a batch, update by update, to the given stored documents (one per key of
/// `keys`), and returns its first error: what the database refused, named by key and path.
///
/// Called only after a failure, with documents read after the rollback.
pub(crate) fn first_error(batch: &Batch, keys: &[&Key], stored: Vec<Values>) -> Result<()> {
    struct Doc {
        leaves: HashMap<String, Number>,
        maps: HashSet<String>,
    }
    fn add_prefixes(maps: &mut HashSet<String>, path: &str) {
        for (dot, _) in path.match_indices('.') {
            maps.insert(path[..dot].to_owned());
        }
    }
    let mut docs: HashMap<&Key, Doc> = HashMap::new();
    for (key, values) in keys.iter().zip(stored) {
        let mut doc = Doc {
            leaves: HashMap::new(),
            maps: HashSet::new(),
        };
        for (path, n) in values.flatten() {
            add_prefixes(&mut doc.maps, &path);
            doc.leaves.insert(path, n);
        }
        docs.insert(key, doc);
    }
    for (op, key, path, n) in batch.updates() {
        let Some(doc) = docs.get_mut(key) else {
            continue;
        };
        if doc.maps.contains(path) {
            return Err(Error::PathConflict {
                key: key.to_string(),
                path: path.to_owned(),
                detail: "is a map (stored or earlier in the batch), not a number",
            });
        }
        for (dot, _) in path.match_indices('.') {
            if doc.leaves.contains_key(&path[..dot]) {
                return Err(Error::PathConflict {
                    key: key.to_string(),
                    path: path.to_owned(),
                    detail: "goes below a number (stored or earlier in the batch)",
                });
            }
        }
        let new = op.apply(doc.leaves.get(path).copied(), n, key, path)?;
        add_prefixes(&mut doc.maps, path);
        doc.leaves.insert(path.to_owned(), new);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stats_core::values;

    fn key(m: &str, start: i64) -> Key {
        Key::bucket(m, "1h".parse().unwrap(), start).unwrap()
    }

    fn shown(plan: &Plan<'_>) -> Vec<Vec<String>> {
        plan.rounds
            .iter()
            .map(|r| {
                r.iter()
                    .map(|row| {
                        let d = &plan.docs[row.doc];
                        format!(
                            "{}/{}/{} {} op{} {:?} {:?}",
                            d.metric, d.granularity, d.at, row.path, row.op, row.int, row.float
                        )
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn rows_are_sorted_with_markers_and_rounds() {
        let mut b = Batch::new();
        b.inc(
            [key("b", 0), key("a", 3600)],
            &values!({"y": 1, "m": {"x": 2}}),
        )
        .unwrap();
        b.max([key("a", 3600)], &values!({"y": 5})).unwrap();
        b.set([Key::status("a").unwrap()], &values!({"s": 1.5}))
            .unwrap();
        let plan = Plan::new(&b).unwrap();
        assert_eq!(
            shown(&plan),
            vec![
                vec![
                    "a//0 s op2 None Some(1.5)",
                    "a/1h/3600 m op0 None None",
                    "a/1h/3600 m.x op1 Some(2) None",
                    "a/1h/3600 y op1 Some(1) None",
                    "b/1h/0 m op0 None None",
                    "b/1h/0 m.x op1 Some(2) None",
                    "b/1h/0 y op1 Some(1) None",
                ],
                vec!["a/1h/3600 y op3 Some(5) None"],
            ]
        );
        assert!(!plan.is_one_statement(1000));
        assert_eq!(plan.statements(3).count(), 4);
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
        let plan = Plan::new(&b).unwrap();
        assert_eq!(
            shown(&plan),
            vec![
                vec![
                    "m/1h/0 a op1 Some(7) None",
                    "m/1h/0 b op1 Some(1) None",
                    "m/1h/0 c op1 None Some(1.5)",
                    "m/1h/0 d op2 None Some(1.5)",
                    "m/1h/0 e op3 None Some(3.0)",
                ],
                vec!["m/1h/0 b op1 Some(-1) None", "m/1h/0 c op1 None Some(1.5)"],
            ]
        );
    }

    #[test]
    fn certain_errors_are_found_before_sending() {
        let k = key("m", 0);
        let mut b = Batch::new();
        b.inc([k.clone()], &values!({"n": 1})).unwrap();
        b.set([k.clone()], &values!({"n": {"deep": 1}})).unwrap();
        assert!(matches!(Plan::new(&b), Err(Error::PathConflict { .. })));
        let mut b = Batch::new();
        b.set([k.clone()], &values!({"n": i64::MAX})).unwrap();
        b.inc([k.clone()], &values!({"n": 1})).unwrap();
        assert!(matches!(Plan::new(&b), Err(Error::Overflow { .. })));
    }

    #[test]
    fn first_error_names_key_and_path() {
        let k = key("m", 0);
        let mut b = Batch::new();
        b.inc([k.clone()], &values!({"a": 1, "x": 1})).unwrap();
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
    }
}
