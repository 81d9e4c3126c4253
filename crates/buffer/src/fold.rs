//! Pending documents: the updates of one document folded per leaf, in order.
//!
//! A leaf keeps a short list of [`Entry`]s. A new update folds into the last entry where the
//! result is the same as applying both one after the other, for any stored value:
//!
//! - after a `set` the leaf's value is known, so anything folds into a new `set` (an overflow
//!   there is certain and reported at once);
//! - a `set` replaces everything pending for the leaf (the stored value no longer matters);
//! - integer increments fold into [`Entry::Ints`], which keeps their exact sum and the highest
//!   and lowest partial sums: at flush they are sent as at most three steps that reach those
//!   extremes, so the store refuses an overflow exactly when one-by-one application would have
//!   (and one step, the sum, in the usual case of increments of one sign);
//! - float increments fold into [`Entry::Floats`], a compensated (Neumaier) sum: the stored
//!   result is at least as close to the exact sum as one-by-one application, but may differ from
//!   it in the last bits (one-by-one application rounds at every step);
//! - maxima fold into one maximum, minima into one minimum (the first wins ties, as applied one
//!   by one).
//!
//! Whatever cannot fold (a maximum after an increment, an integer increment after a maximum)
//! becomes a new entry, in order.

use stats_core::{Batch, Error, Fields, Key, Number, Op, Result, Values};

/// One folded run of updates of a leaf.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Entry {
    Set(Number),
    Max(Number),
    Min(Number),
    /// Integer increments: their exact sum and the highest and lowest partial sums (both
    /// counting the empty prefix, so `hi >= 0 >= lo`).
    Ints {
        net: i128,
        hi: i128,
        lo: i128,
    },
    /// Float increments (and integer increments after them): a Neumaier sum.
    Floats {
        sum: f64,
        comp: f64,
    },
}

impl Entry {
    fn new(op: Op, n: Number) -> Entry {
        match (op, n) {
            (Op::Set, n) => Entry::Set(n),
            (Op::Max, n) => Entry::Max(n),
            (Op::Min, n) => Entry::Min(n),
            (Op::Inc, Number::Int(i)) => {
                let i = i128::from(i);
                Entry::Ints {
                    net: i,
                    hi: i.max(0),
                    lo: i.min(0),
                }
            }
            (Op::Inc, Number::Float(f)) => Entry::Floats { sum: f, comp: 0.0 },
        }
    }

    /// The updates this entry sends, in order.
    pub(crate) fn updates(self, out: &mut Vec<(Op, Number)>) {
        match self {
            Entry::Set(n) => out.push((Op::Set, n)),
            Entry::Max(n) => out.push((Op::Max, n)),
            Entry::Min(n) => out.push((Op::Min, n)),
            Entry::Floats { sum, comp } => out.push((Op::Inc, Number::Float(sum + comp))),
            Entry::Ints { net, hi, lo } => {
                let start = out.len();
                if (lo == 0 && hi == net) || (hi == 0 && lo == net) {
                    // One sign: the sum is the extreme partial sum.
                    steps(net, out);
                } else {
                    steps(hi, out);
                    steps(lo - hi, out);
                    steps(net - lo, out);
                }
                if out.len() == start {
                    // Increments summing to 0 still create the leaf, as they would one by one.
                    out.push((Op::Inc, Number::Int(0)));
                }
            }
        }
    }
}

/// Increments that add up to `delta`, each within `i64`, all of one sign (so the values they
/// pass through stay between the two ends).
fn steps(mut delta: i128, out: &mut Vec<(Op, Number)>) {
    while delta != 0 {
        let step = delta.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        out.push((Op::Inc, Number::Int(step as i64)));
        delta -= step;
    }
}

/// What folding one update into a leaf does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Replace the last entry.
    Replace(Entry),
    /// Append an entry.
    Push(Entry),
    /// Drop every entry and keep this one (a `set`).
    Reset(Entry),
}

/// Plans folding `(op, n)` after `last`, without changing anything.
fn plan(
    last: Option<Entry>,
    op: Op,
    n: Number,
    key: &dyn Fn() -> String,
    path: &str,
) -> Result<Step> {
    Ok(match (last, op, n) {
        (_, Op::Set, n) => Step::Reset(Entry::Set(n)),
        (Some(Entry::Set(v)), op, n) => {
            let result = match op {
                Op::Inc => v.checked_add_at(n, &key(), Some(path))?,
                Op::Max => v.max_value(n),
                Op::Min => v.min_value(n),
                Op::Set => n,
            };
            Step::Replace(Entry::Set(result))
        }
        (Some(Entry::Ints { net, hi, lo }), Op::Inc, Number::Int(i)) => {
            let net = net
                .checked_add(i128::from(i))
                .ok_or_else(|| Error::Overflow {
                    key: key(),
                    path: Some(path.to_owned()),
                    detail: "more pending increments than the buffer can sum".into(),
                })?;
            Step::Replace(Entry::Ints {
                net,
                hi: hi.max(net),
                lo: lo.min(net),
            })
        }
        (Some(Entry::Floats { sum, comp }), Op::Inc, n) => {
            let x = n.as_f64();
            let t = sum + x;
            if t.is_finite() {
                let comp = if sum.abs() >= x.abs() {
                    comp + ((sum - t) + x)
                } else {
                    comp + ((x - t) + sum)
                };
                Step::Replace(Entry::Floats { sum: t, comp })
            } else {
                // The store decides whether the whole sum overflows: send both.
                Step::Push(Entry::new(op, n))
            }
        }
        (Some(Entry::Max(a)), Op::Max, b) => Step::Replace(Entry::Max(a.max_value(b))),
        (Some(Entry::Min(a)), Op::Min, b) => Step::Replace(Entry::Min(a.min_value(b))),
        (_, op, n) => Step::Push(Entry::new(op, n)),
    })
}

/// How to take back one committed step (see [`PendingDoc::undo`]).
#[derive(Debug)]
pub(crate) enum Undo {
    /// A new leaf was added (the last one).
    Created,
    /// An entry was appended to leaf `i`.
    Pop(usize),
    /// The last entry of leaf `i` was this.
    Restore(usize, Entry),
    /// The entries of leaf `i` were these.
    Replace(usize, Vec<Entry>),
}

/// One leaf of a pending document.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) path: Box<str>,
    pub(crate) entries: Vec<Entry>,
}

/// The pending updates of one document, per leaf in first-write order.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingDoc {
    pub(crate) leaves: Vec<Leaf>,
}

/// A planned change of one leaf: its index (`None`: a new leaf with this path) and the step.
#[derive(Debug)]
pub(crate) struct Planned<'p> {
    leaf: Option<usize>,
    path: &'p str,
    step: Step,
}

fn conflicts(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.len() > short.len() && long.starts_with(short) && long.as_bytes()[short.len()] == b'.'
}

impl PendingDoc {
    /// Entries held, the unit of the buffer's memory bound.
    pub(crate) fn units(&self) -> usize {
        self.leaves.iter().map(|l| l.entries.len()).sum()
    }

    fn find(&self, path: &str) -> Option<usize> {
        self.leaves.iter().position(|l| &*l.path == path)
    }

    /// Plans folding one write (`op` of every field) into this document, without changing it:
    /// returns the plan and how many entries it adds (negative when a `set` drops some).
    ///
    /// # Errors
    /// [`Error::PathConflict`] when a field is a number where a pending field is a map or the
    /// reverse; [`Error::Overflow`] when the fold is certain to overflow (after a `set`).
    pub(crate) fn plan<'p>(
        &self,
        op: Op,
        fields: &'p [(String, Number)],
        key: &dyn Fn() -> String,
        out: &mut Vec<Planned<'p>>,
    ) -> Result<isize> {
        out.clear();
        let mut delta = 0isize;
        for (path, n) in fields {
            let leaf = self.find(path);
            let last = match leaf {
                Some(i) => self.leaves[i].entries.last().copied(),
                None => {
                    if let Some(other) = self.leaves.iter().find(|l| conflicts(&l.path, path)) {
                        return Err(Error::PathConflict {
                            key: key(),
                            path: if other.path.len() < path.len() {
                                path.clone()
                            } else {
                                other.path.to_string()
                            },
                            detail: "is a number and a map in pending writes",
                        });
                    }
                    None
                }
            };
            let step = plan(last, op, *n, key, path)?;
            delta += match (step, leaf) {
                (Step::Replace(_), _) => 0,
                (Step::Push(_), _) => 1,
                (Step::Reset(_), Some(i)) => 1 - self.leaves[i].entries.len() as isize,
                (Step::Reset(_), None) => 1,
            };
            out.push(Planned { leaf, path, step });
        }
        Ok(delta)
    }

    /// Carries out a plan made by [`PendingDoc::plan`] on this unchanged document, recording
    /// in `undo` how to take it back (see [`PendingDoc::undo`]).
    pub(crate) fn commit(&mut self, planned: &[Planned<'_>], mut undo: Option<&mut Vec<Undo>>) {
        for p in planned {
            let index = match p.leaf {
                Some(i) => i,
                None => {
                    self.leaves.push(Leaf {
                        path: p.path.into(),
                        entries: Vec::with_capacity(1),
                    });
                    self.leaves.len() - 1
                }
            };
            let leaf = &mut self.leaves[index];
            let record = match p.step {
                Step::Replace(e) => match leaf.entries.last_mut() {
                    Some(last) => Undo::Restore(index, std::mem::replace(last, e)),
                    None => {
                        leaf.entries.push(e);
                        Undo::Pop(index)
                    }
                },
                Step::Push(e) => {
                    leaf.entries.push(e);
                    Undo::Pop(index)
                }
                Step::Reset(e) => {
                    Undo::Replace(index, std::mem::replace(&mut leaf.entries, vec![e]))
                }
            };
            if let Some(undo) = undo.as_deref_mut() {
                if p.leaf.is_none() {
                    undo.push(Undo::Created);
                } else {
                    undo.push(record);
                }
            }
        }
    }

    /// Takes back commits, given their records in the order they were made.
    pub(crate) fn undo(&mut self, records: impl DoubleEndedIterator<Item = Undo>) {
        for record in records.rev() {
            match record {
                Undo::Created => {
                    self.leaves.pop();
                }
                Undo::Pop(i) => {
                    self.leaves[i].entries.pop();
                }
                Undo::Restore(i, e) => {
                    if let Some(last) = self.leaves[i].entries.last_mut() {
                        *last = e;
                    }
                }
                Undo::Replace(i, entries) => self.leaves[i].entries = entries,
            }
        }
    }

    /// Folds `other`'s entries after this document's (for documents whose order does not
    /// matter or is `self` then `other`). Returns the change in entries.
    pub(crate) fn absorb(&mut self, other: &PendingDoc, key: &dyn Fn() -> String) -> Result<isize> {
        let before = self.units() as isize;
        for leaf in &other.leaves {
            let index = match self.find(&leaf.path) {
                Some(i) => i,
                None => {
                    if let Some(c) = self.leaves.iter().find(|l| conflicts(&l.path, &leaf.path)) {
                        return Err(Error::PathConflict {
                            key: key(),
                            path: c.path.to_string(),
                            detail: "is a number and a map in pending writes",
                        });
                    }
                    self.leaves.push(Leaf {
                        path: leaf.path.clone(),
                        entries: Vec::new(),
                    });
                    self.leaves.len() - 1
                }
            };
            let mine = &mut self.leaves[index].entries;
            for entry in &leaf.entries {
                combine(mine, *entry, &key, &leaf.path)?;
            }
        }
        Ok(self.units() as isize - before)
    }

    /// Every update of this document, for `keys`, appended to `batch`: round by round (the
    /// n-th entry of every leaf), grouped by operation.
    pub(crate) fn drain_into(
        &self,
        keys: &[Key],
        batch: &mut Batch,
        scratch: &mut Vec<(Op, Number)>,
    ) -> Result<()> {
        let mut rounds: Vec<Vec<(Op, &str, Number)>> = Vec::new();
        for leaf in &self.leaves {
            scratch.clear();
            for entry in &leaf.entries {
                entry.updates(scratch);
            }
            for (i, (op, n)) in scratch.iter().enumerate() {
                if rounds.len() <= i {
                    rounds.push(Vec::new());
                }
                rounds[i].push((*op, &leaf.path, *n));
            }
        }
        for round in rounds {
            for op in [Op::Set, Op::Inc, Op::Max, Op::Min] {
                let fields: Vec<(String, Number)> = round
                    .iter()
                    .filter(|(o, _, _)| *o == op)
                    .map(|(_, p, n)| ((*p).to_owned(), *n))
                    .collect();
                if !fields.is_empty() {
                    // Checked again (they were when written): a batch never holds a bad path.
                    batch.push_flat(op, keys.iter().cloned(), Fields::from_pairs(fields)?);
                }
            }
        }
        Ok(())
    }

    /// `stored` with this document's updates applied, as a read through the buffer shows it.
    ///
    /// # Errors
    /// [`Error::Overflow`] or [`Error::PathConflict`] when the pending updates cannot apply to
    /// the stored document (their flush will be refused the same way).
    pub(crate) fn overlay(&self, key: &Key, stored: &mut Values) -> Result<()> {
        if self.leaves.is_empty() {
            return Ok(());
        }
        let mut flat = stored.flatten();
        let mut scratch = Vec::new();
        for leaf in &self.leaves {
            scratch.clear();
            for entry in &leaf.entries {
                entry.updates(&mut scratch);
            }
            let slot = flat.iter().position(|(p, _)| *p == *leaf.path);
            let mut value = slot.map(|i| flat[i].1);
            for (op, n) in &scratch {
                value = Some(op.apply(value, *n, key, &leaf.path)?);
            }
            match (slot, value) {
                (Some(i), Some(v)) => flat[i].1 = v,
                (None, Some(v)) => flat.push((leaf.path.to_string(), v)),
                _ => {}
            }
        }
        *stored = Values::from_flat(flat).map_err(|e| match e {
            Error::PathConflict { path, detail, .. } => Error::PathConflict {
                key: key.to_string(),
                path,
                detail,
            },
            other => other,
        })?;
        Ok(())
    }
}

/// Appends `entry` after `entries`, folding where [`plan`] would.
fn combine(
    entries: &mut Vec<Entry>,
    entry: Entry,
    key: &dyn Fn() -> String,
    path: &str,
) -> Result<()> {
    let last = entries.last().copied();
    let folded = match (last, entry) {
        (_, Entry::Set(_)) => {
            entries.clear();
            Some(entry)
        }
        (
            Some(Entry::Ints { net, hi, lo }),
            Entry::Ints {
                net: n2,
                hi: h2,
                lo: l2,
            },
        ) => {
            let overflow = || Error::Overflow {
                key: key(),
                path: Some(path.to_owned()),
                detail: "more pending increments than the buffer can sum".into(),
            };
            let total = net.checked_add(n2).ok_or_else(overflow)?;
            Some(Entry::Ints {
                net: total,
                hi: hi.max(net.checked_add(h2).ok_or_else(overflow)?),
                lo: lo.min(net.checked_add(l2).ok_or_else(overflow)?),
            })
        }
        (Some(Entry::Floats { sum, comp }), Entry::Floats { sum: s2, comp: c2 }) => {
            let t = sum + s2;
            t.is_finite().then(|| {
                let c = if sum.abs() >= s2.abs() {
                    (sum - t) + s2
                } else {
                    (s2 - t) + sum
                };
                Entry::Floats {
                    sum: t,
                    comp: comp + c2 + c,
                }
            })
        }
        (Some(Entry::Max(a)), Entry::Max(b)) => Some(Entry::Max(a.max_value(b))),
        (Some(Entry::Min(a)), Entry::Min(b)) => Some(Entry::Min(a.min_value(b))),
        (Some(Entry::Set(mut v)), other) => {
            // The value is known: apply the other entry's updates to it.
            let mut updates = Vec::new();
            other.updates(&mut updates);
            for (op, n) in updates {
                v = match op {
                    Op::Inc => v.checked_add_at(n, &key(), Some(path))?,
                    Op::Max => v.max_value(n),
                    Op::Min => v.min_value(n),
                    Op::Set => n,
                };
            }
            Some(Entry::Set(v))
        }
        _ => None,
    };
    match folded {
        Some(e) => match entries.last_mut() {
            Some(last) => *last = e,
            None => entries.push(e),
        },
        None => entries.push(entry),
    }
    Ok(())
}
