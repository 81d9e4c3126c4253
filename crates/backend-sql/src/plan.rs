//! Turning a [`Batch`] into upsert statements (the exact error of a failed one is
//! [`stats_core::plan::first_error`]).
//!
//! A batch becomes rows `(key, path, op, int, float)`:
//!
//! - One row per leaf update, after folding consecutive updates of the same leaf where the
//!   result is certain in any stored state ([`stats_core::plan::Folded`]). Whatever cannot fold
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

use stats_core::plan::Folded;
use stats_core::{Batch, Key, Number, Op, Result, Slot};

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
        let folded = Folded::new(batch)?;

        // Sort the documents; rows refer to the sorted position.
        let ids: Vec<DocId<'b>> = folded.docs.iter().map(|d| DocId::of(d.key)).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|&a, &b| ids[a].cmp(&ids[b]));
        let mut rank = vec![0; ids.len()];
        for (r, &k) in order.iter().enumerate() {
            rank[k] = r;
        }
        let mut ids: Vec<Option<DocId<'b>>> = ids.into_iter().map(Some).collect();
        let docs: Vec<DocId<'b>> = order
            .iter()
            .map(|&k| ids[k].take().expect("each document once"))
            .collect();

        let mut rounds: Vec<Vec<Row<'b>>> = vec![Vec::new(); folded.depth().max(1)];
        for (k, doc) in folded.docs.into_iter().enumerate() {
            for prefix in doc.maps {
                rounds[0].push(Row {
                    doc: rank[k],
                    path: prefix,
                    op: OP_MAP,
                    int: None,
                    float: None,
                });
            }
            for leaf in doc.leaves {
                for (round, (op, number)) in leaf.updates.into_iter().enumerate() {
                    let (int, float) = match number {
                        Number::Int(i) => (Some(i), None),
                        Number::Float(f) => (None, Some(f)),
                    };
                    rounds[round].push(Row {
                        doc: rank[k],
                        path: leaf.path,
                        op: op_code(op),
                        int,
                        float,
                    });
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use stats_core::{Error, values};

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
}
