//! Batches: the unit of writing to a [`MetricStore`](crate::MetricStore).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::key::Key;
use crate::number::Number;
use crate::values::Values;

/// What a write does to each of its leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Adds the number to the stored one (a missing leaf counts as integer 0).
    Inc,
    /// Replaces the stored number.
    Set,
    /// Keeps the larger of the stored and the given number (a missing leaf takes the given one).
    Max,
    /// Keeps the smaller of the stored and the given number (a missing leaf takes the given one).
    Min,
}

impl Op {
    /// Applies this operation to a stored number (`None` if the leaf is missing).
    ///
    /// `key` and `path` name the leaf in an overflow error.
    ///
    /// # Errors
    /// [`Error::Overflow`] when an increment leaves the `i64` range or a
    /// float sum becomes infinite.
    pub fn apply(
        self,
        stored: Option<Number>,
        given: Number,
        key: &Key,
        path: &str,
    ) -> Result<Number> {
        Ok(match (self, stored) {
            (Op::Set, _) | (_, None) => given,
            // The key is only formatted when the sum overflows: this is the hot path.
            (Op::Inc, Some(s)) => s.checked_add(given).map_err(|e| match e {
                Error::Overflow { detail, .. } => Error::Overflow {
                    key: key.to_string(),
                    path: Some(path.to_owned()),
                    detail,
                },
                other => other,
            })?,
            (Op::Max, Some(s)) => s.max_value(given),
            (Op::Min, Some(s)) => s.min_value(given),
        })
    }
}

/// The flattened leaves of one write: `(path, number)` pairs in path order, every path checked
/// against the name rule, every number finite (and `-0.0` normalised), no path given twice and
/// none below another. Cloning shares the pairs (no copy), so one event's leaves can go to many
/// keys and many batches.
///
/// The only ways to build one check all of that, so a store can rely on it.
///
/// ```
/// use stats_core::{Fields, Number, values};
/// let fields = Fields::from_values(&values!({"count": 1, "latency": {"sum": 0.5}}))?;
/// assert_eq!(fields[1], ("latency.sum".to_owned(), Number::Float(0.5)));
///
/// let same = Fields::from_pairs([("latency.sum", Number::Float(0.5)), ("count", Number::Int(1))])?;
/// assert_eq!(same, fields);
/// assert!(Fields::from_pairs([("a.", Number::Int(1))]).is_err());
/// assert!(Fields::from_pairs([("a", Number::Float(f64::NAN))]).is_err());
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields(Arc<[(String, Number)]>);

impl Fields {
    /// The leaves of a map (see [`Values::flatten`]).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a path that is too long or too deep.
    pub fn from_values(values: &Values) -> Result<Self> {
        Ok(Fields(values.flatten_checked()?.into()))
    }

    /// Leaves from `(path, number)` pairs in any order.
    ///
    /// # Errors
    /// As [`Values::from_flat`]: [`Error::InvalidName`] for a bad path,
    /// [`Error::InvalidValue`] for a non-finite float or a path given twice,
    /// [`Error::PathConflict`] for a path below another (`a` and `a.b`).
    pub fn from_pairs<P: AsRef<str>>(pairs: impl IntoIterator<Item = (P, Number)>) -> Result<Self> {
        Fields::from_values(&Values::from_flat(pairs)?)
    }

    /// The pairs, in path order.
    pub fn as_slice(&self) -> &[(String, Number)] {
        &self.0
    }
}

impl std::ops::Deref for Fields {
    type Target = [(String, Number)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a (String, Number);
    type IntoIter = std::slice::Iter<'a, (String, Number)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl TryFrom<&Values> for Fields {
    type Error = Error;
    fn try_from(values: &Values) -> Result<Self> {
        Fields::from_values(values)
    }
}

/// How long an idempotent store remembers the id of a batch it applied: 24 hours. A batch
/// retried with the same [`BatchId`] within this window after it was first applied is applied
/// once; a retry that comes later may be applied again. Stores may remember ids somewhat longer
/// (they prune lazily), never shorter.
pub const BATCH_ID_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The identity of a [`Batch`], so that a store whose
/// [`Capabilities::idempotent_batch`](crate::Capabilities::idempotent_batch) is true applies a
/// batch retried with the same id only once (within [`BATCH_ID_WINDOW`]).
///
/// 128 bits. [`BatchId::new`] makes one that is unique without coordination: the high 64 bits
/// are a keyed hash (std's randomly seeded SipHash, [`std::hash::RandomState`]) of the process
/// id, the time in nanoseconds and a process-wide counter; the low 64 bits are the time in
/// nanoseconds plus the counter. Two ids from one process never collide (the counter), and ids
/// from different processes or machines collide only if the random hash keys also do.
///
/// Shown and parsed as 32 lowercase hexadecimal digits.
///
/// ```
/// use stats_core::{Batch, BatchId};
/// let id = BatchId::new();
/// assert_ne!(id, BatchId::new());
/// assert_eq!(id.to_string().len(), 32);
/// assert_eq!(BatchId::from_u128(id.as_u128()), id);
/// let batch = Batch::new().with_id(id);
/// assert_eq!(batch.id(), Some(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(u128);

impl BatchId {
    /// A new id, unique without coordination (see the type's documentation).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u64(nanos);
        hasher.write_u64(count);
        let high = hasher.finish();
        BatchId((u128::from(high) << 64) | u128::from(nanos.wrapping_add(count)))
    }

    /// The id with these 128 bits (for ids kept outside, such as in a spill file).
    pub const fn from_u128(bits: u128) -> Self {
        BatchId(bits)
    }

    /// The 128 bits of the id.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The 16 bytes of the id, big endian.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchId({self})")
    }
}

impl std::str::FromStr for BatchId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(format!(
                "a batch id is 32 hexadecimal digits, got {s:?}"
            )));
        }
        u128::from_str_radix(s, 16)
            .map(BatchId)
            .map_err(|e| Error::InvalidInput(format!("bad batch id {s:?}: {e}")))
    }
}

/// One operation of a [`Batch`]: the same flattened values applied to one or more keys
/// (typically one metric's buckets in every granularity).
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    op: Op,
    keys: Vec<Key>,
    fields: Fields,
}

impl Write {
    /// The operation.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The keys it applies to, in the order given.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The leaves, shared: pass them to [`Batch::push_flat`] to write them again without a copy.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }
}

/// A batch of writes that a store applies in one call (one round trip for a network store).
///
/// Building a batch checks everything that can be checked without the store: field names,
/// path length and depth, finiteness (metric keys are checked when a [`Key`] is built). So a
/// store never sees bad input, and a call with bad input is refused before anything is sent.
///
/// Semantics a store must keep: the writes take effect in order, and within a write each key
/// in order, each leaf in path order, as if applied one by one; a leaf that is a number in one
/// write cannot be a map in another for the same key ([`Error::PathConflict`]). Whether a
/// failing batch leaves nothing written is the store's
/// [`Capabilities::atomic_batch`](crate::Capabilities::atomic_batch); every store leaves nothing
/// of a failing batch written at the key that failed.
///
/// [`Error::PathConflict`]: crate::Error::PathConflict
///
/// ```
/// use stats_core::{Batch, Key, values};
/// let hour = "1h".parse().unwrap();
/// let day = "1d".parse().unwrap();
/// let key = Key::bucket("orders", hour, 1_700_000_000 / 3600 * 3600)?;
/// let mut batch = Batch::new();
/// batch.inc([key.clone(), key.with_bucket(day, 1_699_920_000)], &values!({"count": 1, "sum": 9.5}))?;
/// assert_eq!(batch.len(), 4);
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    writes: Vec<Write>,
    len: usize,
    id: Option<BatchId>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// This batch with an id: a store whose
    /// [`Capabilities::idempotent_batch`](crate::Capabilities::idempotent_batch) is true
    /// applies it once however often it is applied with this id within [`BATCH_ID_WINDOW`]
    /// (see [`MetricStore::apply`](crate::MetricStore::apply)). Give every distinct batch
    /// its own id ([`BatchId::new`]) and keep the id when retrying.
    pub fn with_id(mut self, id: BatchId) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets or clears the id (see [`Batch::with_id`]).
    pub fn set_id(&mut self, id: Option<BatchId>) -> &mut Self {
        self.id = id;
        self
    }

    /// The id, if the batch has one.
    pub fn id(&self) -> Option<BatchId> {
        self.id
    }

    /// Adds a write of `op` with `values` at every key of `keys`.
    ///
    /// A write with no keys or no leaves adds nothing.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a path that is too long or deep.
    /// On error the batch is unchanged.
    pub fn push(
        &mut self,
        op: Op,
        keys: impl IntoIterator<Item = Key>,
        values: &Values,
    ) -> Result<&mut Self> {
        let fields = Fields::from_values(values)?;
        self.push_flat(op, keys, fields);
        Ok(self)
    }

    /// Adds a write of leaves that are already flattened and checked (a [`Fields`], for
    /// example another batch's [`Write::fields`]), sharing them without a copy. Cannot fail:
    /// keys and fields are valid by construction.
    ///
    /// ```
    /// use stats_core::{Batch, Fields, Key, Op, values};
    /// let fields = Fields::from_values(&values!({"count": 1}))?;
    /// let hour = Key::bucket("orders", "1h".parse()?, 1_700_002_800)?;
    /// let day = hour.with_bucket("1d".parse()?, 1_699_920_000);
    /// let mut batch = Batch::new();
    /// batch.push_flat(Op::Inc, [hour], fields.clone()).push_flat(Op::Inc, [day], fields);
    /// assert_eq!(batch.len(), 2);
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    pub fn push_flat(
        &mut self,
        op: Op,
        keys: impl IntoIterator<Item = Key>,
        fields: Fields,
    ) -> &mut Self {
        let keys: Vec<Key> = keys.into_iter().collect();
        if !keys.is_empty() && !fields.is_empty() {
            self.len += keys.len() * fields.len();
            self.writes.push(Write { op, keys, fields });
        }
        self
    }

    /// Appends every write of `other`, sharing its fields (this batch's id is kept, `other`'s
    /// dropped).
    pub fn append(&mut self, other: Batch) -> &mut Self {
        self.len += other.len;
        self.writes.extend(other.writes);
        self
    }

    /// Adds increments (see [`Batch::push`]).
    ///
    /// # Errors
    /// As [`Batch::push`].
    pub fn inc(
        &mut self,
        keys: impl IntoIterator<Item = Key>,
        values: &Values,
    ) -> Result<&mut Self> {
        self.push(Op::Inc, keys, values)
    }

    /// Adds sets (see [`Batch::push`]).
    ///
    /// # Errors
    /// As [`Batch::push`].
    pub fn set(
        &mut self,
        keys: impl IntoIterator<Item = Key>,
        values: &Values,
    ) -> Result<&mut Self> {
        self.push(Op::Set, keys, values)
    }

    /// Adds maxima (see [`Batch::push`]).
    ///
    /// # Errors
    /// As [`Batch::push`].
    pub fn max(
        &mut self,
        keys: impl IntoIterator<Item = Key>,
        values: &Values,
    ) -> Result<&mut Self> {
        self.push(Op::Max, keys, values)
    }

    /// Adds minima (see [`Batch::push`]).
    ///
    /// # Errors
    /// As [`Batch::push`].
    pub fn min(
        &mut self,
        keys: impl IntoIterator<Item = Key>,
        values: &Values,
    ) -> Result<&mut Self> {
        self.push(Op::Min, keys, values)
    }

    /// The writes in order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The number of leaf updates: keys times leaves, summed over the writes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every leaf update in application order: `(op, key, path, number)`.
    pub fn updates(&self) -> impl Iterator<Item = (Op, &Key, &str, Number)> + '_ {
        self.writes.iter().flat_map(|w| {
            w.keys
                .iter()
                .flat_map(move |k| w.fields.iter().map(move |(p, n)| (w.op, k, p.as_str(), *n)))
        })
    }

    /// The distinct keys the batch touches, sorted (the lock order for stores that lock).
    pub fn sorted_keys(&self) -> Vec<&Key> {
        let mut keys: Vec<&Key> = self.writes.iter().flat_map(|w| w.keys.iter()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    #[test]
    fn updates_are_in_order() {
        let g = "1h".parse().unwrap();
        let a = Key::bucket("a", g, 0).unwrap();
        let b = Key::bucket("b", g, 0).unwrap();
        let mut batch = Batch::new();
        batch
            .inc([b.clone(), a.clone()], &values!({"y": 1, "x": 2}))
            .unwrap()
            .set([a.clone()], &values!({"x": 5}))
            .unwrap()
            .inc([], &values!({"x": 1}))
            .unwrap()
            .inc([a.clone()], &Values::new())
            .unwrap();
        let shown: Vec<String> = batch
            .updates()
            .map(|(op, k, p, n)| format!("{op:?} {k} {p} {n}"))
            .collect();
        assert_eq!(
            shown,
            [
                "Inc b::1h::1970-01-01T00:00:00Z x 2",
                "Inc b::1h::1970-01-01T00:00:00Z y 1",
                "Inc a::1h::1970-01-01T00:00:00Z x 2",
                "Inc a::1h::1970-01-01T00:00:00Z y 1",
                "Set a::1h::1970-01-01T00:00:00Z x 5"
            ]
        );
        assert_eq!(batch.len(), 5);
        assert_eq!(batch.writes().len(), 2);
        assert_eq!(batch.sorted_keys(), vec![&a, &b]);
    }

    #[test]
    fn op_apply() {
        let k = Key::status("m").unwrap();
        let i = |n| Number::Int(n);
        assert_eq!(Op::Inc.apply(None, i(2), &k, "p").unwrap(), i(2));
        assert_eq!(Op::Inc.apply(Some(i(2)), i(3), &k, "p").unwrap(), i(5));
        assert_eq!(Op::Set.apply(Some(i(2)), i(3), &k, "p").unwrap(), i(3));
        assert_eq!(Op::Max.apply(Some(i(2)), i(1), &k, "p").unwrap(), i(2));
        assert_eq!(Op::Min.apply(Some(i(2)), i(1), &k, "p").unwrap(), i(1));
        let err = Op::Inc
            .apply(Some(i(i64::MAX)), i(1), &k, "p")
            .unwrap_err()
            .to_string();
        assert!(err.contains("m::status") && err.contains("\"p\""), "{err}");
    }
}
