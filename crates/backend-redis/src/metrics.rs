//! [`MetricStore`] on Redis: one hash per bucket, fields are flattened paths.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use futures_util::future::{join_all, try_join_all};
use redis::{Script, Value};
use stats_core::store::check_range;
use stats_core::{
    BATCH_ID_WINDOW, Batch, BatchId, Error, Granularity, Key, MetricStore, Number, Op, Result,
    Values,
};

use crate::store::RedisStore;

static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/apply.lua")));

/// The keys and updates of one script call, in the script's terms (see `scripts/apply.lua`):
/// names (distinct paths), per key the names read there, and the batch's writes with their
/// fields encoded once per write.
struct Group<'b> {
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
    fn new() -> Self {
        Group {
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
            encoded.push((8 * (name + 1) + op, encode(*value)));
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
            let mut group = Group::new();
            for write in batch.writes() {
                group.add(write.op(), write.keys(), write.fields());
            }
            return vec![group];
        }
        let mut groups: Vec<Group<'b>> = Vec::new();
        let mut by_metric: HashMap<&'b str, usize> = HashMap::new();
        for write in batch.writes() {
            // The write's keys per group, groups in order of first appearance.
            let mut parts: Vec<(usize, Vec<&'b Key>)> = Vec::new();
            let mut part_of: HashMap<usize, usize> = HashMap::new();
            for key in write.keys() {
                let g = *by_metric.entry(key.metric()).or_insert_with(|| {
                    groups.push(Group::new());
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

    /// The key recording that batch `id` was applied to the part of a batch whose keys have
    /// `metric`'s hash tag: `<prefix>::b::{<metric>}::<id>` (in the same cluster slot).
    pub(crate) fn batch_id_key(&self, metric: &str, id: BatchId) -> String {
        format!("{}::b::{{{metric}}}::{id}", self.config.prefix)
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
        match (id, group.keys.first()) {
            (Some(id), Some(first)) => {
                invocation.key(self.batch_id_key(first.metric(), id));
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

/// Builds a document from a bucket hash, skipping the map markers (fields ending in `.`).
fn document(key: &str, value: Value) -> Result<Values> {
    let pairs: Vec<(String, String)> = match value {
        Value::Nil => return Ok(Values::new()),
        other => redis::from_redis_value(other).map_err(|e| Error::InvalidValue {
            path: None,
            reason: format!("{key} is not a hash of this store: {e}"),
        })?,
    };
    let mut leaves = Vec::with_capacity(pairs.len());
    for (field, raw) in &pairs {
        if field.ends_with('.') {
            continue;
        }
        leaves.push((field.as_str(), decode(key, field, raw)?));
    }
    Values::from_flat(leaves)
}

#[async_trait]
impl MetricStore for RedisStore {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
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
        // One metric: one hash slot, so one pipeline even on a cluster.
        let names: Vec<String> = starts
            .iter()
            .map(|&s| self.range_key(metric, granularity, s))
            .collect();
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
        let mut by_metric: HashMap<&str, usize> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let g = *by_metric.entry(key.metric()).or_insert_with(|| {
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
            .map(|(name, reply)| document(name, reply))
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
}
