//! [`CounterStore`] on MongoDB: one document per counter in the counters collection.
//!
//! A counter is `{_id: "<namespace>::<key>", ns: <namespace>, key: <key>, value: <Int64>}`.
//! The name rule keeps `::` out of both parts, so the `_id` is unique and always splits back.
//! Every method is one atomic single-document operation (or, where a missing counter must
//! start at a default, an insert that loses cleanly to a concurrent one and is retried).

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use stats_core::name;
use stats_core::store::check_counter;
use stats_core::{CasOutcome, CounterInfo, CounterStore, Error, NameKind, NamespaceInfo, Result};

use crate::store::{DUPLICATE_KEY, MongoStore, NAME, command_code, map_error};

/// How many times a call that lost a race (a counter created or deleted concurrently) runs
/// again before giving up with a retryable error.
const ATTEMPTS: usize = 64;

fn id(namespace: &str, key: &str) -> String {
    format!("{namespace}::{key}")
}

/// The value of a counter document (the test server stores small sums as Int32).
fn value_of(d: &Document, namespace: &str, key: &str) -> Result<i64> {
    match d.get("value") {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        other => Err(Error::InvalidValue {
            path: Some(format!("{namespace}/{key}")),
            reason: format!("stored counter value {other:?} is not an integer"),
        }),
    }
}

fn contended(namespace: &str, key: &str) -> Error {
    Error::backend(
        NAME,
        true,
        format!("counter {namespace}/{key}: gave up after {ATTEMPTS} attempts under contention"),
    )
}

#[async_trait]
impl CounterStore for MongoStore {
    async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        check_counter(namespace, key)?;
        let counters = &self.inner.counters;
        let id = id(namespace, key);
        for _ in 0..ATTEMPTS {
            let updated = counters
                .find_one_and_update(doc! {"_id": &id}, doc! {"$inc": {"value": step}})
                .return_document(ReturnDocument::After)
                .await;
            match updated {
                Ok(Some(d)) => return value_of(&d, namespace, key),
                Ok(None) => {
                    let first = default
                        .checked_add(step)
                        .ok_or_else(|| Error::counter_overflow(namespace, key, default, step))?;
                    let created = counters
                        .insert_one(doc! {"_id": &id, "ns": namespace, "key": key, "value": first})
                        .await;
                    match created {
                        Ok(_) => return Ok(first),
                        // Created concurrently: increment that one.
                        Err(e) if command_code(&e) == Some(DUPLICATE_KEY) => {}
                        Err(e) => return Err(map_error(e)),
                    }
                }
                Err(e) if command_code(&e).is_some() => {
                    // MongoDB refuses an `$inc` that leaves the Int64 range; name it as every
                    // store does.
                    if let Some(current) = self.get(namespace, key).await?
                        && current.checked_add(step).is_none()
                    {
                        return Err(Error::counter_overflow(namespace, key, current, step));
                    }
                    return Err(map_error(e));
                }
                Err(e) => return Err(map_error(e)),
            }
        }
        Err(contended(namespace, key))
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>> {
        check_counter(namespace, key)?;
        let found = self
            .inner
            .counters
            .find_one(doc! {"_id": id(namespace, key)})
            .await
            .map_err(map_error)?;
        found.map(|d| value_of(&d, namespace, key)).transpose()
    }

    async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>> {
        name::check_segment(NameKind::Namespace, namespace)?;
        let mut cursor = self
            .inner
            .counters
            .find(doc! {"ns": namespace})
            .await
            .map_err(map_error)?;
        let mut all = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(map_error)? {
            let key = d.get_str("key").unwrap_or_default().to_owned();
            let value = value_of(&d, namespace, &key)?;
            all.push((key, value));
        }
        // Sorted here, byte by byte, whatever the server's collation.
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()> {
        check_counter(namespace, key)?;
        self.inner
            .counters
            .update_one(
                doc! {"_id": id(namespace, key)},
                doc! {"$set": {"ns": namespace, "key": key, "value": value}},
            )
            .upsert(true)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        check_counter(namespace, key)?;
        let result = self
            .inner
            .counters
            .delete_one(doc! {"_id": id(namespace, key)})
            .await
            .map_err(map_error)?;
        Ok(result.deleted_count == 1)
    }

    async fn delete_namespace(&self, namespace: &str) -> Result<u64> {
        name::check_segment(NameKind::Namespace, namespace)?;
        let result = self
            .inner
            .counters
            .delete_many(doc! {"ns": namespace})
            .await
            .map_err(map_error)?;
        Ok(result.deleted_count)
    }

    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome> {
        check_counter(namespace, key)?;
        let counters = &self.inner.counters;
        let id = id(namespace, key);
        for _ in 0..ATTEMPTS {
            // The compare is in the filter: one atomic single-document update.
            let swapped = counters
                .update_one(
                    doc! {"_id": &id, "value": expected},
                    doc! {"$set": {"value": new}},
                )
                .await
                .map_err(map_error)?;
            if swapped.matched_count == 1 {
                return Ok(CasOutcome::Swapped(new));
            }
            match self.get(namespace, key).await? {
                // A missing counter counts as 0.
                None if expected == 0 => {
                    let created = counters
                        .insert_one(doc! {"_id": &id, "ns": namespace, "key": key, "value": new})
                        .await;
                    match created {
                        Ok(_) => return Ok(CasOutcome::Swapped(new)),
                        Err(e) if command_code(&e) == Some(DUPLICATE_KEY) => {}
                        Err(e) => return Err(map_error(e)),
                    }
                }
                None => return Ok(CasOutcome::Mismatch(0)),
                // Changed back to the expected value since the update: compare again.
                Some(current) if current == expected => {}
                Some(current) => return Ok(CasOutcome::Mismatch(current)),
            }
        }
        Err(contended(namespace, key))
    }

    async fn info(&self) -> Result<CounterInfo> {
        let mut cursor = self
            .inner
            .counters
            .aggregate([doc! {"$group": {"_id": "$ns", "n": {"$sum": 1}}}])
            .await
            .map_err(map_error)?;
        let mut namespaces = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(map_error)? {
            let Ok(ns) = d.get_str("_id") else { continue };
            let n = match d.get("n") {
                Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            };
            namespaces.push(NamespaceInfo::new(ns, n));
        }
        Ok(CounterInfo::new(NAME, namespaces, None))
    }
}
