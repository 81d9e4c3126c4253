//! [`CounterStore`] and [`ThrottleStore`] on SQL: one row per counter, one row per throttle.

use std::time::Duration;

use async_trait::async_trait;
use stats_core::store::{check_counter, check_throttle};
use stats_core::{
    CasOutcome, CounterInfo, CounterStore, Error, NameKind, NamespaceInfo, Result, ThrottleStore,
    name,
};

use crate::error::{Failure, classify};
use crate::store::{STORE_NAME, SqlStore, dispatch};

/// How many times an increment the database refused as an overflow is run again when the
/// counter, read afterwards, no longer overflows (it changed in between).
const OVERFLOW_RECHECKS: u32 = 8;

#[async_trait]
impl CounterStore for SqlStore {
    /// One upsert. When the database refuses it as an overflow (nothing was written), the
    /// counter is read to report `current + step` in the error; if the counter changed in
    /// between so that the increment fits, the increment runs again.
    async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        check_counter(namespace, key)?;
        // `default + step` is what a missing counter becomes; when it overflows, only an
        // existing counter can be incremented.
        let first = default.checked_add(step);
        let mut current = default;
        for _ in 0..=OVERFLOW_RECHECKS {
            let inc = dispatch!(self, db => db.counter_inc(namespace, key, step, first).await);
            let e = match inc {
                Ok(Some(value)) => return Ok(value),
                // The counter is missing and `default + step` overflows.
                Ok(None) => return Err(Error::counter_overflow(namespace, key, default, step)),
                Err(e) => e,
            };
            match classify(e, self.config.acquire_timeout) {
                Failure::Overflow(_) => {}
                Failure::Rerun(e) => return Err(self.error(e)),
                Failure::Conflict(message) => {
                    return Err(Error::backend(STORE_NAME, false, message));
                }
                Failure::Other(e) => return Err(e),
            }
            let stored: Option<i64> = dispatch!(self, db => db.counter_get(namespace, key).await)
                .map_err(|e| self.error(e))?;
            current = stored.unwrap_or(default);
            if current.checked_add(step).is_none() {
                break;
            }
        }
        Err(Error::counter_overflow(namespace, key, current, step))
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>> {
        check_counter(namespace, key)?;
        dispatch!(self, db => db.counter_get(namespace, key).await).map_err(|e| self.error(e))
    }

    async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>> {
        name::check_segment(NameKind::Namespace, namespace)?;
        let mut all: Vec<(String, i64)> =
            dispatch!(self, db => db.counter_get_all(namespace).await)
                .map_err(|e| self.error(e))?;
        // Sorted here, by bytes, whatever the database's collation.
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()> {
        check_counter(namespace, key)?;
        dispatch!(self, db => db.counter_set(namespace, key, value).await)
            .map_err(|e| self.error(e))
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        check_counter(namespace, key)?;
        dispatch!(self, db => db.counter_delete(namespace, key).await).map_err(|e| self.error(e))
    }

    async fn delete_namespace(&self, namespace: &str) -> Result<u64> {
        name::check_segment(NameKind::Namespace, namespace)?;
        dispatch!(self, db => db.counter_delete_namespace(namespace).await)
            .map_err(|e| self.error(e))
    }

    /// The swap is one conditional `UPDATE ... WHERE value = expected`; a missing counter with
    /// `expected == 0` is created by one `INSERT` that does nothing if the counter appeared in
    /// the meantime. On a mismatch the current value is read and reported; if it equals
    /// `expected` again (changed back in between), the swap is tried again.
    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome> {
        check_counter(namespace, key)?;
        loop {
            let swapped: bool =
                dispatch!(self, db => db.counter_swap(namespace, key, expected, new).await)
                    .map_err(|e| self.error(e))?;
            if swapped {
                return Ok(CasOutcome::Swapped(new));
            }
            let current: Option<i64> = dispatch!(self, db => db.counter_get(namespace, key).await)
                .map_err(|e| self.error(e))?;
            match current {
                Some(v) if v != expected => return Ok(CasOutcome::Mismatch(v)),
                Some(_) => continue,
                None if expected != 0 => return Ok(CasOutcome::Mismatch(0)),
                None => {
                    let created: bool =
                        dispatch!(self, db => db.counter_create(namespace, key, new).await)
                            .map_err(|e| self.error(e))?;
                    if created {
                        return Ok(CasOutcome::Swapped(new));
                    }
                }
            }
        }
    }

    async fn info(&self) -> Result<CounterInfo> {
        let counts: Vec<(String, i64)> =
            dispatch!(self, db => db.counter_info().await).map_err(|e| self.error(e))?;
        let entries = counts
            .into_iter()
            .map(|(ns, n)| NamespaceInfo::new(ns, u64::try_from(n).unwrap_or(0)))
            .collect();
        Ok(CounterInfo::new(STORE_NAME, entries, None))
    }
}

/// The clock is the database's (PostgreSQL, MySQL) or the local machine's (SQLite, which runs
/// in the application): all application servers sharing a PostgreSQL or MySQL database agree
/// on when a throttle expires, whatever their own clocks say.
#[async_trait]
impl ThrottleStore for SqlStore {
    /// Concurrent acquires of one key can deadlock on MySQL (the expiry's delete and the
    /// insert take gap locks): a statement the database rolled back for that is run again, up
    /// to [`SqlConfig::deadlock_reruns`](crate::SqlConfig::deadlock_reruns) times, as batches
    /// are (each statement is safe to repeat: the delete only removes expired rows, and a
    /// rolled-back insert inserted nothing).
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
        check_throttle(key, ttl)?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let mut reruns = 0;
        loop {
            let tried: std::result::Result<bool, sqlx::Error> =
                dispatch!(self, db => db.try_acquire(key, ttl_ms).await);
            match tried {
                Ok(won) => return Ok(won),
                Err(e) => match classify(e, self.config.acquire_timeout) {
                    Failure::Rerun(_) if reruns < self.config.deadlock_reruns => {
                        reruns += 1;
                        tokio::time::sleep(crate::metrics::backoff(reruns)).await;
                    }
                    Failure::Rerun(e) => return Err(self.error(e)),
                    Failure::Other(e) => return Err(e),
                    Failure::Overflow(detail) | Failure::Conflict(detail) => {
                        return Err(Error::backend(STORE_NAME, false, detail));
                    }
                },
            }
        }
    }
}
