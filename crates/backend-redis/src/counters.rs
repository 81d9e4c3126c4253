//! [`CounterStore`] and [`ThrottleStore`] on Redis: one hash per namespace, fields are counter
//! keys; throttles are plain keys set with `SET NX PX`.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::{AsyncCommands, Script};
use stats_core::store::{check_counter, check_throttle};
use stats_core::{
    CasOutcome, CounterInfo, CounterStore, Error, NameKind, NamespaceInfo, Result, ThrottleStore,
    name,
};

use crate::store::RedisStore;

static INC: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/counter_inc.lua")));
static CAS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/counter_cas.lua")));
static DROP_NAMESPACE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/counter_drop_namespace.lua")));

fn parse_counter(ns: &str, key: &str, raw: &str) -> Result<i64> {
    raw.parse().map_err(|_| Error::InvalidValue {
        path: Some(format!("{ns}/{key}")),
        reason: format!("the counter holds {raw:?}, not an integer"),
    })
}

impl RedisStore {
    /// Records that a namespace holds counters (for `info`), after a call created one.
    async fn register_namespace(&self, ns: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        conn.sadd::<_, _, ()>(self.namespaces_key(), ns)
            .await
            .map_err(|e| self.error(e))
    }
}

#[async_trait]
impl CounterStore for RedisStore {
    async fn inc(&self, namespace: &str, key: &str, step: i64, default: i64) -> Result<i64> {
        check_counter(namespace, key)?;
        let first = default
            .checked_add(step)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let mut conn = self.conn.clone();
        let reply: std::result::Result<(i64, String), _> = INC
            .key(self.namespace_key(namespace))
            .arg(key)
            .arg(step)
            .arg(first)
            .invoke_async(&mut conn)
            .await;
        let (created, value) = match reply {
            Ok(r) => r,
            Err(e) if e.code() == Some("STATSOVERFLOW") => {
                // The script names the stored value, or `missing` (then the default applies).
                let current = match e.detail().map(str::trim) {
                    Some("missing") => Some(default),
                    Some(stored) => stored.parse().ok(),
                    None => None,
                };
                return Err(match current {
                    Some(current) => Error::counter_overflow(namespace, key, current, step),
                    None => self.error(e),
                });
            }
            Err(e) => return Err(self.error(e)),
        };
        if created == 1 {
            self.register_namespace(namespace).await?;
        }
        parse_counter(namespace, key, &value)
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<i64>> {
        check_counter(namespace, key)?;
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn
            .hget(self.namespace_key(namespace), key)
            .await
            .map_err(|e| self.error(e))?;
        raw.map(|r| parse_counter(namespace, key, &r)).transpose()
    }

    async fn get_all(&self, namespace: &str) -> Result<Vec<(String, i64)>> {
        name::check_segment(NameKind::Namespace, namespace)?;
        let mut conn = self.conn.clone();
        let raw: Vec<(String, String)> = conn
            .hgetall(self.namespace_key(namespace))
            .await
            .map_err(|e| self.error(e))?;
        let mut all = raw
            .into_iter()
            .map(|(k, v)| parse_counter(namespace, &k, &v).map(|n| (k, n)))
            .collect::<Result<Vec<_>>>()?;
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn set(&self, namespace: &str, key: &str, value: i64) -> Result<()> {
        check_counter(namespace, key)?;
        let mut conn = self.conn.clone();
        let created: i64 = conn
            .hset(self.namespace_key(namespace), key, value)
            .await
            .map_err(|e| self.error(e))?;
        if created == 1 {
            self.register_namespace(namespace).await?;
        }
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        check_counter(namespace, key)?;
        let mut conn = self.conn.clone();
        let removed: i64 = conn
            .hdel(self.namespace_key(namespace), key)
            .await
            .map_err(|e| self.error(e))?;
        Ok(removed == 1)
    }

    async fn delete_namespace(&self, namespace: &str) -> Result<u64> {
        name::check_segment(NameKind::Namespace, namespace)?;
        let mut conn = self.conn.clone();
        DROP_NAMESPACE
            .key(self.namespace_key(namespace))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))
    }

    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<CasOutcome> {
        check_counter(namespace, key)?;
        let mut conn = self.conn.clone();
        let (swapped, created, value): (i64, i64, String) = CAS
            .key(self.namespace_key(namespace))
            .arg(key)
            .arg(expected)
            .arg(new)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        if created == 1 {
            self.register_namespace(namespace).await?;
        }
        let value = parse_counter(namespace, key, &value)?;
        Ok(if swapped == 1 {
            CasOutcome::Swapped(value)
        } else {
            CasOutcome::Mismatch(value)
        })
    }

    async fn info(&self) -> Result<CounterInfo> {
        let mut conn = self.conn.clone();
        let namespaces: Vec<String> = conn
            .smembers(self.namespaces_key())
            .await
            .map_err(|e| self.error(e))?;
        // One pipeline on one server; on a cluster each namespace hash may sit on another node
        // and pipelines may not cross slots, so the counts are asked concurrently.
        let counts: Vec<u64> = if self.config.is_cluster() {
            try_join_all(namespaces.iter().map(|ns| {
                let mut conn = self.conn.clone();
                let key = self.namespace_key(ns);
                async move { conn.hlen::<_, u64>(key).await.map_err(|e| self.error(e)) }
            }))
            .await?
        } else if namespaces.is_empty() {
            Vec::new()
        } else {
            let mut pipe = redis::pipe();
            for ns in &namespaces {
                pipe.hlen(self.namespace_key(ns));
            }
            pipe.query_async(&mut conn)
                .await
                .map_err(|e| self.error(e))?
        };
        let entries = namespaces
            .into_iter()
            .zip(counts)
            .filter(|(_, count)| *count > 0)
            .map(|(ns, count)| NamespaceInfo::new(ns, count))
            .collect();
        Ok(CounterInfo::new(crate::STORE_NAME, entries, None))
    }
}

#[async_trait]
impl ThrottleStore for RedisStore {
    async fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
        check_throttle(key, ttl)?;
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.throttle_key(key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(reply.is_some())
    }
}
