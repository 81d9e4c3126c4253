//! [`MetricStore`] on SQL: one row per leaf, batches as upserts in one transaction.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use stats_core::store::check_range;
use stats_core::{
    BATCH_ID_WINDOW, Batch, Error, Granularity, Key, MetricStore, NameKind, Number, Result, Values,
    name,
};

use crate::dialect::{DocRow, RangeRow, number};
use crate::error::{Failure, classify};
use stats_core::plan::first_error;

use crate::plan::{DocId, Plan};
use crate::store::{SqlStore, dispatch, purge};

/// The pause before rerun `n` (1-based): 2, 4, 8, 16, 32 ms, each plus up to as much again,
/// so that the transactions that collided do not collide again.
pub(crate) fn backoff(n: u32) -> Duration {
    let base = 1_u64 << n.min(10);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    Duration::from_millis(base + nanos % (base + 1))
}

/// How often (seconds) an apply with a batch id deletes the ids older than the window.
const BATCH_PRUNE_INTERVAL: i64 = 60;

impl SqlStore {
    /// Deletes the batch ids older than [`BATCH_ID_WINDOW`], at most once per
    /// [`BATCH_PRUNE_INTERVAL`] per store (the first apply with an id after it). A failure is
    /// not the apply's: the ids are kept and the next interval tries again.
    async fn prune_batch_ids(&self, now: i64) {
        let due = self.next_batch_prune.load(Ordering::Relaxed);
        if now < due
            || self
                .next_batch_prune
                .compare_exchange(
                    due,
                    now + BATCH_PRUNE_INTERVAL,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let before = now - BATCH_ID_WINDOW.as_secs() as i64;
        let _ = dispatch!(self, db => db.prune_batches(before).await);
    }

    /// The exact error of a failed batch: its documents read again (the transaction is rolled
    /// back) and the batch applied to them update by update in memory, which names the first
    /// key and path that fails. If that finds nothing (the documents changed since), `fallback`.
    async fn explain(&self, batch: &Batch, fallback: Error) -> Error {
        let keys = batch.sorted_keys();
        let owned: Vec<Key> = keys.iter().map(|k| (*k).clone()).collect();
        match self.read(&owned).await {
            Ok(docs) => first_error(batch, &keys, docs).err().unwrap_or(fallback),
            Err(_) => fallback,
        }
    }
}

#[async_trait]
impl MetricStore for SqlStore {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(table) = self.trifle_table() {
            return self.trifle_apply(table, batch).await;
        }
        let plan = match Plan::new(batch) {
            Ok(plan) => plan,
            Err(certain) => return Err(self.explain(batch, certain).await),
        };
        let id = batch.id();
        let now = jiff::Timestamp::now().as_second();
        if id.is_some() {
            self.prune_batch_ids(now).await;
        }
        let mut reruns = 0;
        let failure = loop {
            let applied: std::result::Result<(), sqlx::Error> =
                dispatch!(self, db => db.apply(&plan, id, now).await);
            let Err(e) = applied else {
                return Ok(());
            };
            match classify(e, self.config.acquire_timeout) {
                Failure::Rerun(_) if reruns < self.config.deadlock_reruns => {
                    reruns += 1;
                    tokio::time::sleep(backoff(reruns)).await;
                }
                failure => break failure,
            }
        };
        Err(match failure {
            Failure::Rerun(e) => self.error(e),
            Failure::Overflow(detail) => {
                let fallback = Error::Overflow {
                    key: String::new(),
                    path: None,
                    detail,
                };
                self.explain(batch, fallback).await
            }
            Failure::Conflict(_) => {
                let fallback = Error::PathConflict {
                    key: String::new(),
                    path: String::new(),
                    detail: "is a map in one write and a number in another",
                };
                self.explain(batch, fallback).await
            }
            Failure::Other(e) => e,
        })
    }

    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(table) = self.trifle_table() {
            return self.trifle_read(table, keys).await;
        }
        let mut ids: Vec<DocId<'_>> = keys.iter().map(DocId::of).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows: Vec<DocRow> =
            dispatch!(self, db => db.read(&ids).await).map_err(|e| self.error(e))?;
        let mut docs: HashMap<(String, String, i64), Vec<(String, Number)>> = HashMap::new();
        for row in rows {
            let n = number(row.int, row.float, &row.path)?;
            docs.entry((row.metric, row.granularity, row.at))
                .or_default()
                .push((row.path, n));
        }
        keys.iter()
            .map(|key| {
                let id = DocId::of(key);
                match docs.get(&(id.metric.to_owned(), id.granularity, id.at)) {
                    Some(leaves) => Values::from_flat(leaves.iter().map(|(p, n)| (p.as_str(), *n))),
                    None => Ok(Values::new()),
                }
            })
            .collect()
    }

    async fn range(
        &self,
        metric: &str,
        granularity: Granularity,
        starts: &[i64],
    ) -> Result<Vec<Values>> {
        check_range(metric, starts)?;
        let (Some(&from), Some(&to)) = (starts.first(), starts.last()) else {
            return Ok(Vec::new());
        };
        if let Some(table) = self.trifle_table() {
            let keys = starts
                .iter()
                .map(|&s| Key::bucket(metric, granularity, s))
                .collect::<Result<Vec<Key>>>()?;
            return self.trifle_read(table, &keys).await;
        }
        let granularity = granularity.to_string();
        let rows: Vec<RangeRow> =
            dispatch!(self, db => db.range(metric, &granularity, from, to).await)
                .map_err(|e| self.error(e))?;
        let mut buckets: HashMap<i64, Vec<(String, Number)>> = HashMap::new();
        for row in rows {
            let n = number(row.int, row.float, &row.path)?;
            buckets.entry(row.at).or_default().push((row.path, n));
        }
        starts
            .iter()
            .map(|start| match buckets.remove(start) {
                Some(leaves) => Values::from_flat(leaves),
                None => Ok(Values::new()),
            })
            .collect()
    }

    async fn remove(&self, keys: &[Key]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        if let Some(table) = self.trifle_table() {
            return self.trifle_remove(table, keys).await.map(|_| ());
        }
        let mut ids: Vec<DocId<'_>> = keys.iter().map(DocId::of).collect();
        ids.sort_unstable();
        ids.dedup();
        dispatch!(self, db => db.remove(&ids).await).map_err(|e| self.error(e))
    }

    /// One statement on PostgreSQL (`DELETE ... RETURNING` counted in the same statement);
    /// on MySQL and SQLite a count under lock and the delete, in one transaction.
    async fn remove_metric(&self, metric: &str) -> Result<u64> {
        name::check_segment(NameKind::Metric, metric)?;
        if let Some(table) = self.trifle_table() {
            return self.trifle_remove_metric(table, metric).await;
        }
        dispatch!(self, db => db.remove_metric(metric).await).map_err(|e| self.error(e))
    }

    /// Metric by metric on the primary key, without an index of its own (see the crate docs,
    /// "Retention and removal").
    async fn purge(&self, granularity: Granularity, before: i64) -> Result<u64> {
        purge(
            &self.backend,
            self.trifle_table(),
            &granularity.to_string(),
            before,
        )
        .await
        .map_err(|e| self.error(e))
    }
}
