//! [`MetricStore`] on Redis: one hash per bucket, fields are flattened paths.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use futures_util::future::{join_all, try_join_all};
use redis::{Script, Value};
use stats_core::store::check_range;
use stats_core::tracker::{SYSTEM_KEY, unescape_field};
use stats_core::{
    BATCH_ID_WINDOW, Batch, BatchId, Error, Fields, Granularity, Key, MetricStore, Number, Op,
    Result, Values, name,
};

use crate::config::Layout;
use crate::store::RedisStore;

static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/apply.lua")));

/// What puts keys in one cluster slot (see [`RedisStore::tag`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Tag<'k> {
    Metric(&'k str),
    Key(&'k Key),
}

/// The keys and updates of one script call, in the script's terms (see `scripts/apply.lua`):
/// names (distinct paths), per key the names read there, and the batch's writes with their
/// fields encoded once per write.
struct Group<'b> {
    layout: Layout,
    keys: Vec<&'b Key>,
    key_index: HashMap<&'b Key, usize>,
    names: Vec<&'b str>,
    name_index: HashMap<&'b str, usize>,
    /// Per key: the names written there, in the order first written.
    key_names: Vec<Vec<usize>>,
    /// (key, name) pairs already in `key_names`.
    key_has: HashSet<(usize, usize)>,
    writes: Vec<GroupWrite>,
}

/// One write of the batch (its keys in this group): key positions, and per field the script's
/// code (8 * name index + op, 1-based name index) and the value as sent.
struct GroupWrite {
    keys: Vec<usize>,
    fields: Vec<(usize, String)>,
}

impl<'b> Group<'b> {
    fn new(layout: Layout) -> Self {
        Group {
            layout,
            keys: Vec::new(),
            key_index: HashMap::new(),
            names: Vec::new(),
            name_index: HashMap::new(),
            key_names: Vec::new(),
            key_has: HashSet::new(),
            writes: Vec::new(),
        }
    }

    /// Adds a write of `fields` with `op` at `keys`, in that order.
    fn add(
        &mut self,
        op: Op,
        keys: impl IntoIterator<Item = &'b Key>,
        fields: &'b [(String, Number)],
    ) {
        let mut names = Vec::with_capacity(fields.len());
        let mut encoded = Vec::with_capacity(fields.len());
        for (path, value) in fields {
            let next = self.names.len();
            let name = *self.name_index.entry(path.as_str()).or_insert(next);
            if name == next {
                self.names.push(path);
            }
            // The script's op codes (see scripts/apply.lua).
            let op = match (op, value) {
                (Op::Inc, Number::Int(_)) => 0,
                (Op::Inc, Number::Float(_)) => 1,
                (Op::Set, _) => 2,
                (Op::Max, _) => 3,
                (Op::Min, _) => 4,
            };
            names.push(name);
            encoded.push((8 * (name + 1) + op, encode_in(self.layout, *value)));
        }
        let mut positions = Vec::new();
        for key in keys {
            let next = self.keys.len();
            let k = *self.key_index.entry(key).or_insert(next);
            if k == next {
                self.keys.push(key);
                self.key_names.push(Vec::new());
            }
            for &name in &names {
                if self.key_has.insert((k, name)) {
                    self.key_names[k].push(name);
                }
            }
            positions.push(k);
        }
        self.writes.push(GroupWrite {
            keys: positions,
            fields: encoded,
        });
    }

    /// The distinct lists of names read at the keys (the script's shapes), and each key's shape.
    fn shapes(&self) -> (Vec<&[usize]>, Vec<usize>) {
        let mut shapes: Vec<&[usize]> = Vec::new();
        let mut index: HashMap<&[usize], usize> = HashMap::new();
        let of_key = self
            .key_names
            .iter()
            .map(|names| {
                *index.entry(names.as_slice()).or_insert_with(|| {
                    shapes.push(names);
                    shapes.len() - 1
                })
            })
            .collect();
        (shapes, of_key)
    }
}

/// A number as stored: integers in canonical decimal, floats always with `.` or an exponent
/// (Rust's `Debug` form, the shortest that reads back to the same `f64`).
pub(crate) fn encode(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(f) => format!("{f:?}"),
    }
}

/// A number as stored in `layout`: as [`encode`], or in the Trifle layout floats as Ruby's
/// `Float#to_s` spells them ([`ruby_float`]), which is what Trifle's driver writes for a float.
fn encode_in(layout: Layout, n: Number) -> String {
    match (layout, n) {
        (Layout::Trifle, Number::Float(f)) => ruby_float(f),
        _ => encode(n),
    }
}

/// A finite float as Ruby's `Float#to_s` writes it: the shortest digits that read back to the
/// same `f64`; fixed notation with at least one digit after the point (`12.5`, `3.0`,
/// `100000000000000.0`, `0.0001`) when the decimal exponent allows (from 10^-4 to below
/// 10^16), else `d.ddde+XX` with at least two exponent digits (`1.0e+16`, `1.0e-05`);
/// `-0.0` keeps its sign. The apply script spells the sums it computes the same way.
pub(crate) fn ruby_float(f: f64) -> String {
    // `{:e}` gives the shortest digits that read back to `f`: `d[.ddd]e<exponent>`.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    // The value is 0.<digits> * 10^point.
    let point = exponent + 1;
    let count = digits.len() as i32;
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if point > 0 && point < count {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else if point > 0 && point <= 15 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (point - count) as usize));
        out.push_str(".0");
    } else if point <= 0 && point > -4 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if count > 1 { &digits[1..] } else { "0" });
        out.push_str(&format!("e{:+03}", point - 1));
    }
    out
}

/// Reads a field of the Trifle layout: text that reads as an `i64` is an integer, any other
/// finite decimal (`12.5`, `3.0`, `1.0e+20`, an integer text beyond the `i64` range, as
/// `HINCRBYFLOAT` may leave) a float.
pub(crate) fn decode_trifle(key: &str, field: &str, raw: &str) -> Result<Number> {
    if let Ok(i) = raw.parse::<i64>() {
        return Ok(Number::Int(i));
    }
    let decimal = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    // `Number::float` refuses infinities and turns `-0.0` into `0.0`, as every write does.
    match raw
        .parse::<f64>()
        .ok()
        .filter(|_| decimal)
        .map(Number::float)
    {
        Some(Ok(n)) => Ok(n),
        _ => Err(Error::InvalidValue {
            path: Some(field.to_owned()),
            reason: format!("{key} holds {raw:?}, which is not a finite number"),
        }),
    }
}

/// Reads a stored field back.
pub(crate) fn decode(key: &str, field: &str, raw: &str) -> Result<Number> {
    let bad = || Error::InvalidValue {
        path: Some(field.to_owned()),
        reason: format!("{key} holds {raw:?}, which is not a number written by this store"),
    };
    if raw.contains(['.', 'e', 'E']) {
        Number::float(raw.parse::<f64>().map_err(|_| bad())?).map_err(|_| bad())
    } else {
        raw.parse::<i64>().map(Number::Int).map_err(|_| bad())
    }
}

impl RedisStore {
    /// The expire-at of a bucket key, or 0.
    fn expire_at(&self, key: &Key) -> i64 {
        match (key.granularity(), key.start()) {
            (Some(g), Some(start)) => self.config.expiry.get(&g).map_or(0, |retention| {
                start.saturating_add(retention.as_secs() as i64).max(1)
            }),
            _ => 0,
        }
    }

    /// Splits a batch into script calls: one for the whole batch on one server, one per metric
    /// (one hash slot) on a cluster. Updates keep their order within each call.
    fn groups<'b>(&self, batch: &'b Batch) -> Vec<Group<'b>> {
        if !self.config.is_cluster() {
            let mut group = Group::new(self.config.layout);
            for write in batch.writes() {
                group.add(write.op(), write.keys(), write.fields());
            }
            return vec![group];
        }
        let mut groups: Vec<Group<'b>> = Vec::new();
        let mut by_tag: HashMap<Tag<'b>, usize> = HashMap::new();
        for write in batch.writes() {
            // The write's keys per group, groups in order of first appearance.
            let mut parts: Vec<(usize, Vec<&'b Key>)> = Vec::new();
            let mut part_of: HashMap<usize, usize> = HashMap::new();
            for key in write.keys() {
                let g = *by_tag.entry(self.tag(key)).or_insert_with(|| {
                    groups.push(Group::new(self.config.layout));
                    groups.len() - 1
                });
                let p = *part_of.entry(g).or_insert_with(|| {
                    parts.push((g, Vec::new()));
                    parts.len() - 1
                });
                parts[p].1.push(key);
            }
            for (g, keys) in parts {
                groups[g].add(write.op(), keys, write.fields());
            }
        }
        groups
    }

    /// What decides a key's cluster slot: its metric (the hash tag of our layout), or in the
    /// Trifle layout, whose keys carry no hash tag, the whole bucket key.
    fn tag<'k>(&self, key: &'k Key) -> Tag<'k> {
        match self.config.layout {
            Layout::Stats => Tag::Metric(key.metric()),
            Layout::Trifle => Tag::Key(key),
        }
    }

    /// The key recording that batch `id` was applied to the part of a batch whose keys have
    /// the hash tag `tag`: `<prefix>::b::{<tag>}::<id>` (in the same cluster slot). The tag is
    /// the metric in our layout, the bucket key in the Trifle layout (whose keys hold no
    /// braces, so the whole key is what decides its slot).
    pub(crate) fn batch_id_key(&self, tag: &str, id: BatchId) -> String {
        format!("{}::b::{{{tag}}}::{id}", self.config.prefix)
    }

    async fn apply_group(&self, group: Group<'_>, id: Option<BatchId>) -> Result<()> {
        let mut invocation = APPLY.prepare_invoke();
        invocation.arg(group.names.len());
        for name in &group.names {
            invocation.arg(*name);
        }
        let (shapes, shape_of_key) = group.shapes();
        invocation.arg(shapes.len());
        for shape in &shapes {
            if shape.iter().copied().eq(0..group.names.len()) {
                // Every name in order (0 in the script's terms): nothing more to send.
                invocation.arg(0);
                continue;
            }
            invocation.arg(shape.len());
            for name in shape.iter() {
                invocation.arg(name + 1);
            }
        }
        for (key, shape) in group.keys.iter().zip(&shape_of_key) {
            invocation.key(self.bucket_key(key));
            invocation.arg(shape + 1).arg(self.expire_at(key));
        }
        invocation.arg(group.writes.len());
        for write in &group.writes {
            invocation.arg(write.keys.len());
            for k in &write.keys {
                invocation.arg(k + 1);
            }
            invocation.arg(write.fields.len());
            for (code, value) in &write.fields {
                invocation.arg(*code).arg(value.as_str());
            }
        }
        // The layout: 1 is Trifle's (no map markers, floats spelled as Ruby does).
        invocation.arg(u8::from(group.layout == Layout::Trifle));
        match (id, group.keys.first()) {
            (Some(id), Some(first)) => {
                let tag = match self.config.layout {
                    Layout::Stats => first.metric().to_owned(),
                    Layout::Trifle => self.bucket_key(first),
                };
                invocation.key(self.batch_id_key(&tag, id));
                invocation.arg(BATCH_ID_WINDOW.as_millis() as u64);
            }
            _ => {
                invocation.arg(0);
            }
        }
        let mut conn = self.conn.clone();
        match invocation.invoke_async::<Value>(&mut conn).await {
            Ok(_) => Ok(()),
            Err(e) => Err(script_error(&group, e).unwrap_or_else(|e| self.error(e))),
        }
    }
}

/// Maps the script's own error replies (`STATSOVERFLOW <i>\t<path>\t<detail>`).
fn script_error(
    group: &Group<'_>,
    e: redis::RedisError,
) -> std::result::Result<Error, redis::RedisError> {
    let (Some(code), Some(detail)) = (e.code(), e.detail()) else {
        return Err(e);
    };
    let code = code.to_owned();
    let mut parts = detail.splitn(3, '\t');
    let (Some(index), Some(path), Some(what)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(e);
    };
    let key = index
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|i| group.keys.get(i.wrapping_sub(1)))
        .map(|k| k.to_string())
        .unwrap_or_default();
    match code.as_str() {
        "STATSOVERFLOW" => Ok(Error::Overflow {
            key,
            path: Some(path.to_owned()),
            detail: what.to_owned(),
        }),
        "STATSCONFLICT" => Ok(Error::PathConflict {
            key,
            path: path.to_owned(),
            detail: if what.starts_with("is a map") {
                "is a map in the stored document, not a number"
            } else {
                "goes below a number in the stored document"
            },
        }),
        _ => Err(e),
    }
}

/// Builds a document from a bucket hash: in our layout skipping the map markers (fields
/// ending in `.`); in the Trifle layout every field is a leaf.
fn document(layout: Layout, key: &str, value: Value) -> Result<Values> {
    let pairs: Vec<(String, String)> = match value {
        Value::Nil => return Ok(Values::new()),
        other => redis::from_redis_value(other).map_err(|e| Error::InvalidValue {
            path: None,
            reason: format!("{key} is not a hash of this store: {e}"),
        })?,
    };
    let mut leaves = Vec::with_capacity(pairs.len());
    for (field, raw) in &pairs {
        let number = match layout {
            Layout::Stats if field.ends_with('.') => continue,
            Layout::Stats => decode(key, field, raw)?,
            Layout::Trifle => decode_trifle(key, field, raw)?,
        };
        leaves.push((field.as_str(), number));
    }
    Values::from_flat(leaves).map_err(|e| match e {
        Error::PathConflict { path, detail, .. } => Error::PathConflict {
            key: key.to_owned(),
            path,
            detail,
        },
        other => other,
    })
}

/// For the Trifle layout: the batch with the tracker's system index written as Trifle writes
/// it, or `None` when the batch writes no [`SYSTEM_KEY`] bucket. The tracker names each metric
/// in a field `keys.<metric>` with `%`, `.` and a leading `$` percent-escaped
/// ([`escape_field`](stats_core::tracker::escape_field)); Trifle writes the metric as it is.
/// Each such field is unescaped when the result is still a valid path (a metric with `.`
/// becomes nested fields, as Trifle's packing makes them); a field whose unescaped form is
/// not (a metric `*`, an empty segment) keeps the escaped form.
fn trifle_system_index(batch: &Batch) -> Option<Batch> {
    let is_system = |k: &Key| k.metric() == SYSTEM_KEY;
    if !batch
        .writes()
        .iter()
        .any(|w| w.keys().iter().any(is_system))
    {
        return None;
    }
    let mut out = Batch::new();
    out.set_id(batch.id());
    for write in batch.writes() {
        let (system, other): (Vec<Key>, Vec<Key>) =
            write.keys().iter().cloned().partition(is_system);
        // Different keys are independent: splitting a write by key changes no result.
        out.push_flat(write.op(), other, write.fields().clone());
        if system.is_empty() {
            continue;
        }
        let pairs: Vec<(String, Number)> = write
            .fields()
            .as_slice()
            .iter()
            .map(|(path, n)| {
                let unescaped = path
                    .strip_prefix("keys.")
                    .map(|metric| format!("keys.{}", unescape_field(metric)))
                    .filter(|p| name::check_path(p).is_ok());
                (unescaped.unwrap_or_else(|| path.clone()), *n)
            })
            .collect();
        let fields = Fields::from_pairs(pairs).unwrap_or_else(|_| write.fields().clone());
        out.push_flat(write.op(), system, fields);
    }
    Some(out)
}

#[async_trait]
impl MetricStore for RedisStore {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let translated = match self.config.layout {
            Layout::Trifle => trifle_system_index(batch),
            Layout::Stats => None,
        };
        let batch = translated.as_ref().unwrap_or(batch);
        let groups = self.groups(batch);
        if groups.len() == 1 {
            let group = groups.into_iter().next().expect("one group");
            return self.apply_group(group, batch.id()).await;
        }
        // Every metric's script runs to the end (no cancellation on the first error), so after
        // a failure exactly the failing metrics are untouched and the others written.
        let results = join_all(groups.into_iter().map(|g| self.apply_group(g, batch.id()))).await;
        results.into_iter().collect()
    }

    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
        let mut out = vec![Values::new(); keys.len()];
        let parts = self
            .slot_groups(keys)
            .into_iter()
            .map(|indices| async move {
                let names: Vec<String> =
                    indices.iter().map(|&i| self.bucket_key(&keys[i])).collect();
                Ok::<_, Error>((indices, self.hgetall_many(&names).await?))
            });
        for (indices, docs) in try_join_all(parts).await? {
            for (i, doc) in indices.into_iter().zip(docs) {
                out[i] = doc;
            }
        }
        Ok(out)
    }

    async fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>> {
        check_range(metric, starts)?;
        let names: Vec<String> = starts
            .iter()
            .map(|&s| self.range_key(metric, granularity, s))
            .collect();
        if self.config.is_cluster() && self.config.layout == Layout::Trifle {
            // Trifle's keys carry no hash tag: each bucket in its own slot, read concurrently.
            let docs = try_join_all(names.chunks(1).map(|name| self.hgetall_many(name))).await?;
            return Ok(docs.into_iter().flatten().collect());
        }
        // One metric: one hash slot, so one pipeline even on a cluster.
        self.hgetall_many(&names).await
    }

    async fn remove(&self, keys: &[Key]) -> Result<()> {
        let parts = self
            .slot_groups(keys)
            .into_iter()
            .map(|indices| async move {
                let mut pipe = redis::pipe();
                for i in indices {
                    pipe.del(self.bucket_key(&keys[i])).ignore();
                }
                let mut conn = self.conn.clone();
                pipe.query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| self.error(e))
            });
        try_join_all(parts).await?;
        Ok(())
    }

    async fn remove_metric(&self, metric: &str) -> Result<u64> {
        self.remove_metric_keys(metric).await
    }

    async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
        self.purge_buckets(granularity, before).await
    }
}

impl RedisStore {
    /// Indices of `keys` grouped so that each group can go in one pipeline: all of them on one
    /// server, one group per metric (one hash slot) on a cluster, which refuses pipelines
    /// across slots.
    fn slot_groups(&self, keys: &[Key]) -> Vec<Vec<usize>> {
        if keys.is_empty() {
            return Vec::new();
        }
        if !self.config.is_cluster() {
            return vec![(0..keys.len()).collect()];
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_tag: HashMap<Tag<'_>, usize> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let g = *by_tag.entry(self.tag(key)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        groups
    }

    /// One pipeline of HGETALL over keys of one hash slot (or any keys on one server).
    async fn hgetall_many(&self, names: &[String]) -> Result<Vec<Values>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for name in names {
            pipe.hgetall(name);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        names
            .iter()
            .zip(replies)
            .map(|(name, reply)| document(self.config.layout, name, reply))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_their_stored_form() {
        for n in [
            Number::Int(0),
            Number::Int(i64::MIN),
            Number::Int(i64::MAX),
            Number::Float(1.0),
            Number::Float(-0.25),
            Number::Float(1e-300),
            Number::Float(1.5e300),
        ] {
            assert_eq!(decode("k", "f", &encode(n)).unwrap(), n, "{n}");
        }
        assert!(decode("k", "f", "abc").is_err());
        assert!(decode("k", "f", "1.5.5").is_err());
    }

    /// Ruby's `Float#to_s` at the edges of its fixed and exponent forms (values checked
    /// against Ruby's `flo_to_s`: fixed for a decimal exponent from -4 to 15).
    #[test]
    fn floats_are_spelled_as_ruby_spells_them() {
        for (f, ruby) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (10.0, "10.0"),
            (12.5, "12.5"),
            (-3.0, "-3.0"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e14, "100000000000000.0"),
            (123_456_789_012_345.6, "123456789012345.6"),
            (999_999_999_999_999.0, "999999999999999.0"),
            (1e15, "1.0e+15"),
            (1234567890123456.8, "1234567890123456.8"),
            (1e16, "1.0e+16"),
            (1.5e16, "1.5e+16"),
            (1e20, "1.0e+20"),
            (-1e20, "-1.0e+20"),
            (1e100, "1.0e+100"),
            (9_007_199_254_740_992.0, "9.007199254740992e+15"),
            (1e-4, "0.0001"),
            (1.5e-4, "0.00015"),
            (1e-5, "1.0e-05"),
            (-2.5e-5, "-2.5e-05"),
            (1e-300, "1.0e-300"),
            (5e-324, "5.0e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        ] {
            assert_eq!(ruby_float(f), ruby, "{f:e}");
            // And it reads back to the same float in the Trifle layout.
            // (`-0.0` reads as `0.0`, as the core normalises every float.)
            let back = decode_trifle("k", "f", ruby).unwrap();
            assert!(
                matches!(back, Number::Float(b) if b.to_bits() == (f + 0.0).to_bits()),
                "{ruby}: {back:?}"
            );
        }
    }

    #[test]
    fn trifle_text_reads_as_integer_when_it_is_one() {
        assert_eq!(decode_trifle("k", "f", "42").unwrap(), Number::Int(42));
        assert_eq!(decode_trifle("k", "f", "-0").unwrap(), Number::Int(0));
        assert_eq!(
            decode_trifle("k", "f", "9223372036854775807").unwrap(),
            Number::Int(i64::MAX)
        );
        assert_eq!(
            decode_trifle("k", "f", "9223372036854775808").unwrap(),
            Number::Float(9_223_372_036_854_775_808.0)
        );
        assert_eq!(decode_trifle("k", "f", "3").unwrap(), Number::Int(3));
        assert_eq!(decode_trifle("k", "f", "3.0").unwrap(), Number::Float(3.0));
        for bad in [
            "",
            "NaN",
            "Infinity",
            "-Infinity",
            "inf",
            "1e999",
            "0x1",
            " 1",
            "1_0",
        ] {
            let err = decode_trifle("trfl::k::1h::0", "a.b", bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidValue { path: Some(p), reason } if p == "a.b" && reason.contains("trfl::k::1h::0")),
                "{bad:?}: {err}"
            );
        }
    }
}
