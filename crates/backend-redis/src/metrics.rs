//! [`MetricStore`] on Redis: one hash per bucket, fields are flattened paths.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use futures_util::future::{join_all, try_join_all};
use redis::{Script, Value};
use stats_core::store::check_range;
use stats_core::{Batch, Error, Granularity, Key, MetricStore, Number, Op, Result, Values};

use crate::store::RedisStore;

static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/apply.lua")));

/// The keys and updates of one script call.
struct Group<'b> {
    keys: Vec<&'b Key>,
    index: HashMap<&'b Key, usize>,
    /// Per key: the distinct paths written, and each path's position in that list.
    paths: Vec<Vec<&'b str>>,
    path_index: Vec<HashMap<&'b str, usize>>,
    /// (op, key position, path position within the key, value as sent)
    updates: Vec<(&'static str, usize, usize, String)>,
}

impl<'b> Group<'b> {
    fn new() -> Self {
        Group {
            keys: Vec::new(),
            index: HashMap::new(),
            paths: Vec::new(),
            path_index: Vec::new(),
            updates: Vec::new(),
        }
    }

    fn add(&mut self, op: Op, key: &'b Key, path: &'b str, value: Number) {
        let next = self.keys.len();
        let k = *self.index.entry(key).or_insert(next);
        if k == next {
            self.keys.push(key);
            self.paths.push(Vec::new());
            self.path_index.push(HashMap::new());
        }
        let next_path = self.paths[k].len();
        let p = *self.path_index[k].entry(path).or_insert(next_path);
        if p == next_path {
            self.paths[k].push(path);
        }
        let op = match (op, value) {
            (Op::Inc, Number::Int(_)) => "i",
            (Op::Inc, Number::Float(_)) => "f",
            (Op::Set, _) => "s",
            (Op::Max, _) => "x",
            (Op::Min, _) => "n",
        };
        self.updates.push((op, k, p, encode(value)));
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
        let mut groups: Vec<Group<'b>> = Vec::new();
        let mut by_metric: HashMap<&'b str, usize> = HashMap::new();
        let cluster = self.config.is_cluster();
        for (op, key, path, value) in batch.updates() {
            let g = if cluster {
                *by_metric.entry(key.metric()).or_insert_with(|| {
                    groups.push(Group::new());
                    groups.len() - 1
                })
            } else {
                if groups.is_empty() {
                    groups.push(Group::new());
                }
                0
            };
            groups[g].add(op, key, path, value);
        }
        groups
    }

    async fn apply_group(&self, group: Group<'_>) -> Result<()> {
        let mut invocation = APPLY.prepare_invoke();
        let mut offsets = Vec::with_capacity(group.keys.len());
        let mut offset = 0;
        for (key, paths) in group.keys.iter().zip(&group.paths) {
            invocation.key(self.bucket_key(key));
            invocation.arg(paths.len());
            for path in paths {
                invocation.arg(*path);
            }
            offsets.push(offset);
            offset += paths.len();
        }
        invocation.arg(group.updates.len());
        for (op, k, p, value) in &group.updates {
            invocation
                .arg(*op)
                .arg(offsets[*k] + p + 1)
                .arg(value.as_str());
        }
        for key in &group.keys {
            invocation.arg(self.expire_at(key));
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
            return self.apply_group(group).await;
        }
        // Every metric's script runs to the end (no cancellation on the first error), so after
        // a failure exactly the failing metrics are untouched and the others written.
        let results = join_all(groups.into_iter().map(|g| self.apply_group(g))).await;
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
