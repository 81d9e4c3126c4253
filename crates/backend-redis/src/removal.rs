//! Whole-metric removal and the purge of old buckets: `SCAN MATCH` over the key space of the
//! node(s) that can hold the keys, `UNLINK` of what it finds in chunks.
//!
//! Redis has no index from a metric to its buckets (they are plain keys), so both walk the key
//! space with `SCAN`, which serves other clients between pages (unlike `KEYS`). Every key the
//! scan returns is parsed back and checked against this store's layout before it is deleted,
//! so a key of another program that happens to match the pattern is left alone.

use std::collections::{HashMap, HashSet};

use futures_util::future::try_join_all;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, Value};
use stats_core::{Error, Granularity, Key, NameKind, Result, name};

use crate::config::Layout;
use crate::store::{Conn, RedisStore};

/// Keys asked per `SCAN` page (a hint to the server, which may return more or fewer).
const SCAN_COUNT: usize = 1000;
/// Keys per `UNLINK` command.
const UNLINK_CHUNK: usize = 500;

/// The characters Redis glob patterns give a meaning to; a backslash makes them literal.
const GLOB_SPECIAL: [char; 5] = ['*', '?', '[', ']', '\\'];

/// `s` as a glob pattern that matches exactly `s`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if GLOB_SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The part of a bucket key after the metric's closing brace: `status`, or
/// `<granularity>::<start>` as this store writes them. `None` for anything else.
fn document_tail(tail: &str) -> Option<Option<(Granularity, i64)>> {
    if tail == "status" {
        return Some(None);
    }
    let (granularity, start) = tail.split_once("::")?;
    let parsed: Granularity = granularity.parse().ok()?;
    // Only the form this store writes (`Display` of the granularity, a decimal start).
    if parsed.to_string() != granularity {
        return None;
    }
    let start_parsed: i64 = start.parse().ok()?;
    (start_parsed.to_string() == start).then_some(Some((parsed, start_parsed)))
}

/// `<metric>::<granularity>::<start>` (a Trifle-layout key without its prefix) split into the
/// metric and the tail after it: the last two `::`-separated parts are the tail.
fn split_trifle_key(rest: &str) -> Option<(&str, &str)> {
    let last = rest.rfind("::")?;
    let before = rest[..last].rfind("::")?;
    Some((&rest[..before], &rest[before + 2..]))
}

/// Where a cluster command goes: the master that holds `slot`.
fn master_of(slot: Slot) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_slot(
        slot,
        SlotAddr::Master,
    )))
}

impl RedisStore {
    /// `<prefix>::m::{`: the start of every bucket and status key of this store.
    fn metric_keys_start(&self) -> String {
        format!("{}::m::{{", self.key_prefix())
    }

    /// See [`MetricStore::remove_metric`](stats_core::MetricStore::remove_metric): scans the
    /// server (on a cluster, the master of the metric's hash slot) for
    /// `<prefix>::m::{<metric>}::*` and unlinks what it finds.
    pub(crate) async fn remove_metric_keys(&self, metric: &str) -> Result<u64> {
        name::check_segment(NameKind::Metric, metric)?;
        if self.layout() == Layout::Trifle {
            // `<prefix>::<metric>::*`; on a cluster on every master (Trifle's keys carry no
            // hash tag). Metrics hold no `::`, so a tail that parses as this store's is one of
            // this metric's keys.
            let start = format!("{}::{metric}::", self.key_prefix());
            let pattern = format!("{}*", glob_escape(&start));
            return self
                .scan_everywhere(&pattern, |key| {
                    key.strip_prefix(&start).and_then(document_tail).is_some()
                })
                .await;
        }
        let start = format!("{}{metric}}}::", self.metric_keys_start());
        let pattern = format!("{}*", glob_escape(&start));
        // Every key of the metric carries it as hash tag: one slot, one node.
        let status = self.bucket_key(&Key::status(metric)?);
        let node = match &self.conn {
            Conn::Single(_) => None,
            Conn::Cluster(_) => Some(Slot::for_key(status.as_bytes())),
        };
        self.scan_and_unlink(node, &pattern, |key| {
            key.strip_prefix(&start).and_then(document_tail).is_some()
        })
        .await
    }

    /// See [`MetricStore::purge`](stats_core::MetricStore::purge): scans every key of the
    /// server (on a cluster, of every master) for `<prefix>::m::{*}::<granularity>::*` and
    /// unlinks the buckets that start before `before`.
    pub(crate) async fn purge_buckets(&self, granularity: Granularity, before: i64) -> Result<u64> {
        if self.layout() == Layout::Trifle {
            return self.purge_trifle_buckets(granularity, before).await;
        }
        let start = self.metric_keys_start();
        let pattern = format!(
            "{}*}}::{}::*",
            glob_escape(&start),
            glob_escape(&granularity.to_string())
        );
        let keep = |key: &str| {
            let Some(rest) = key.strip_prefix(&start) else {
                return false;
            };
            // Metrics hold no `}`: the first `}::` closes the hash tag.
            let Some((metric, tail)) = rest.split_once("}::") else {
                return false;
            };
            name::check_segment(NameKind::Metric, metric).is_ok()
                && matches!(document_tail(tail), Some(Some((g, s))) if g == granularity && s < before)
        };
        self.scan_everywhere(&pattern, keep).await
    }

    /// [`RedisStore::scan_and_unlink`] on the server, or on every master of a cluster.
    async fn scan_everywhere(&self, pattern: &str, keep: impl Fn(&str) -> bool) -> Result<u64> {
        match &self.conn {
            Conn::Single(_) => self.scan_and_unlink(None, pattern, keep).await,
            Conn::Cluster(_) => {
                let mut removed = 0;
                for slot in self.one_slot_per_master().await? {
                    removed += self.scan_and_unlink(Some(slot), pattern, &keep).await?;
                }
                Ok(removed)
            }
        }
    }

    /// The Trifle layout's purge: scans the server (every master of a cluster) for `<prefix>::*::<granularity>::*` and
    /// unlinks the keys that are `<prefix>::<metric>::<granularity>::<start>` exactly, with a
    /// valid metric and a start before `before`.
    async fn purge_trifle_buckets(&self, granularity: Granularity, before: i64) -> Result<u64> {
        let start = format!("{}::", self.key_prefix());
        let pattern = format!(
            "{}*::{}::*",
            glob_escape(&start),
            glob_escape(&granularity.to_string())
        );
        let keep = |key: &str| {
            let Some((metric, tail)) = key.strip_prefix(&start).and_then(split_trifle_key) else {
                return false;
            };
            name::check_segment(NameKind::Metric, metric).is_ok()
                && matches!(document_tail(tail), Some(Some((g, s))) if g == granularity && s < before)
        };
        self.scan_everywhere(&pattern, keep).await
    }

    /// For each master of the cluster, one slot it serves (from `CLUSTER SLOTS`), so that a
    /// command routed to that slot reaches that master.
    async fn one_slot_per_master(&self) -> Result<Vec<Slot>> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        let bad = |what: &str| {
            Error::backend(
                crate::STORE_NAME,
                false,
                format!("unexpected CLUSTER SLOTS reply: {what}"),
            )
        };
        let Value::Array(ranges) = reply else {
            return Err(bad("not an array"));
        };
        let mut seen = HashSet::new();
        let mut slots = Vec::new();
        for range in ranges {
            // [start, end, [host, port, id, ...], replicas...]
            let Value::Array(range) = range else {
                return Err(bad("a range that is not an array"));
            };
            let (Some(Value::Int(first)), Some(Value::Array(master))) =
                (range.first(), range.get(2))
            else {
                return Err(bad("a range without a start and a master"));
            };
            let slot = u16::try_from(*first)
                .ok()
                .and_then(Slot::new)
                .ok_or_else(|| bad("a slot out of range"))?;
            let node = match (master.first(), master.get(1)) {
                (Some(Value::BulkString(host)), Some(Value::Int(port))) => (host.clone(), *port),
                _ => return Err(bad("a master without a host and a port")),
            };
            if seen.insert(node) {
                slots.push(slot);
            }
        }
        Ok(slots)
    }

    /// Runs one `SCAN MATCH pattern` to the end on one node (the server, or the master of
    /// `slot`), unlinking after each page the keys `wanted` accepts; returns how many keys the
    /// `UNLINK`s deleted (a key the scan returns twice is counted once).
    async fn scan_and_unlink(
        &self,
        slot: Option<Slot>,
        pattern: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<u64> {
        let mut cursor = "0".to_owned();
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(&cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let reply = self.on_node(slot, scan).await?;
            let (next, keys): (String, Vec<Vec<u8>>) = redis::from_redis_value(reply)
                .map_err(|e| Error::backend(crate::STORE_NAME, false, e))?;
            // Keys that are not UTF-8 are not this store's.
            let keys: Vec<String> = keys
                .into_iter()
                .filter_map(|k| String::from_utf8(k).ok())
                .filter(|k| wanted(k))
                .collect();
            removed += self.unlink(keys).await?;
            if next == "0" {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Sends `cmd` to the server, or to the master of `slot` on a cluster.
    async fn on_node(&self, slot: Option<Slot>, cmd: Cmd) -> Result<Value> {
        let reply = match (&self.conn, slot) {
            (Conn::Cluster(c), Some(slot)) => c.clone().route_command(cmd, master_of(slot)).await,
            (conn, _) => cmd.query_async(&mut conn.clone()).await,
        };
        reply.map_err(|e| self.error(e))
    }

    /// Unlinks `keys` in chunks; returns how many existed. On a cluster a multi-key command
    /// must stay within one slot, so the keys go by slot (each command routed by its keys), all
    /// chunks sent at once on the multiplexed connection.
    async fn unlink(&self, keys: Vec<String>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let groups: Vec<Vec<String>> = match &self.conn {
            Conn::Single(_) => vec![keys],
            Conn::Cluster(_) => {
                let mut by_slot: HashMap<Slot, Vec<String>> = HashMap::new();
                for key in keys {
                    by_slot
                        .entry(Slot::for_key(key.as_bytes()))
                        .or_default()
                        .push(key);
                }
                by_slot.into_values().collect()
            }
        };
        let commands = groups
            .iter()
            .flat_map(|g| g.chunks(UNLINK_CHUNK))
            .map(|chunk| {
                let mut conn = self.conn.clone();
                let mut cmd = redis::cmd("UNLINK");
                cmd.arg(chunk);
                async move {
                    cmd.query_async::<u64>(&mut conn)
                        .await
                        .map_err(|e| self.error(e))
                }
            });
        Ok(try_join_all(commands).await?.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escape_makes_every_special_character_literal() {
        assert_eq!(glob_escape("plain-name_1"), "plain-name_1");
        assert_eq!(glob_escape("a*?[x]\\"), "a\\*\\?\\[x\\]\\\\");
        assert_eq!(glob_escape("ümlaut 🎉"), "ümlaut 🎉");
    }

    #[test]
    fn trifle_keys_split_into_metric_and_tail() {
        assert_eq!(
            split_trifle_key("orders::1h::3600"),
            Some(("orders", "1h::3600"))
        );
        assert_eq!(split_trifle_key("a:b::1d::0"), Some(("a:b", "1d::0")));
        assert_eq!(split_trifle_key("b::{m}::ff"), Some(("b", "{m}::ff")));
        assert_eq!(split_trifle_key("1h::3600"), None);
        assert_eq!(split_trifle_key("orders"), None);
    }

    #[test]
    fn only_the_documents_this_store_writes_are_recognised() {
        assert_eq!(document_tail("status"), Some(None));
        let hour: Granularity = "1h".parse().unwrap();
        assert_eq!(document_tail("1h::3600"), Some(Some((hour, 3600))));
        assert_eq!(
            document_tail("1h::-4000000000"),
            Some(Some((hour, -4_000_000_000)))
        );
        for other in [
            "",
            "statuses",
            "1h",
            "1h::",
            "1h::x",
            "1h::+5",
            "1h::05",
            "1h::1::2",
            "hour::5",
            "1h::99999999999999999999",
        ] {
            assert_eq!(document_tail(other), None, "{other:?}");
        }
    }
}
