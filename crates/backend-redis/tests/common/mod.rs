//! Shared setup of the Redis test suites.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use stats_backend_redis::{RedisConfig, RedisStore};

/// The server URL(s) from the environment, or a clear failure.
pub fn url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set. These tests need a real server: run `cargo xtask it redis` or \
             `cargo xtask it redis-cluster`, which start one, or set {var} to a server's URL."
        )
    })
}

/// A store on the server named by `var`, under a prefix no other run uses.
pub async fn store(var: &str) -> Arc<RedisStore> {
    let config = RedisConfig::from_url(&url(var))
        .expect("URL")
        .key_prefix(&stats_core::testkit::unique("redis"))
        .expect("prefix");
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}

/// A store on the server named by `var` under the given key prefix.
pub async fn store_with_prefix(var: &str, key_prefix: &str) -> RedisStore {
    let config = RedisConfig::from_url(&url(var))
        .expect("URL")
        .key_prefix(key_prefix)
        .expect("key prefix");
    RedisStore::connect(config).await.expect("connect")
}

/// `remove_metric` and `purge` delete only this store's documents: not those of a store whose
/// key prefix the first one's matches as a glob pattern, not keys of another program that
/// look like buckets but do not follow the layout; and they page through more keys than one
/// `SCAN` page and one `UNLINK` chunk hold (on a cluster: keys of many slots on every node).
///
/// `raw` is a plain connection to the same server(s), used to write the foreign keys.
pub async fn removal_is_confined_to_the_store<C>(var: &str, mut raw: C)
where
    C: redis::AsyncCommands,
{
    use stats_core::{Batch, Key, MetricStore, values};

    let base = stats_core::testkit::unique("rm");
    // `*` and `?` in a prefix are glob characters: unescaped, they would match `other`'s keys.
    let ours = store_with_prefix(var, &format!("{base}*?")).await;
    let other = store_with_prefix(var, &format!("{base}xy")).await;
    let g: stats_core::Granularity = "17s".parse().expect("granularity");
    let (metrics, buckets) = (40_i64, 60_i64);
    let keys = |i: i64| -> Vec<Key> {
        (0..buckets)
            .map(|b| Key::bucket(&format!("m{i}"), g, b * 17).expect("key"))
            .chain([Key::status(&format!("m{i}")).expect("status")])
            .collect()
    };
    let mut batch = Batch::new();
    for i in 0..metrics {
        batch.inc(keys(i), &values!({"n": 1})).expect("batch");
    }
    ours.apply(&batch).await.expect("apply ours");
    other.apply(&batch).await.expect("apply other");
    // Look like buckets of `ours`, but are not in its layout.
    let foreign = [
        format!("{}::m::{{m0}}::17s::notanumber", ours.key_prefix()),
        format!("{}::m::{{m0}}::17s::0::x", ours.key_prefix()),
        format!("{}::m::{{m0}}::statuses", ours.key_prefix()),
    ];
    for key in &foreign {
        let _: () = raw.set(key, "x").await.expect("foreign key");
    }

    assert_eq!(
        ours.remove_metric("m0").await.expect("remove_metric"),
        (buckets + 1) as u64,
        "every bucket and the status of m0"
    );
    assert_eq!(
        ours.purge(g, 17 * (buckets - 1)).await.expect("purge"),
        ((metrics - 1) * (buckets - 1)) as u64,
        "every 17s bucket but the last of the 39 other metrics"
    );
    for i in 1..metrics {
        let docs = ours.read(&keys(i)).await.expect("read");
        let present: Vec<bool> = docs.iter().map(|d| !d.is_empty()).collect();
        let mut expected = vec![false; (buckets - 1) as usize];
        expected.extend([true, true]);
        assert_eq!(
            present, expected,
            "m{i}: the last bucket and the status stay"
        );
    }
    for i in 0..metrics {
        let docs = other.read(&keys(i)).await.expect("read");
        assert!(
            docs.iter().all(|d| *d == values!({"n": 1})),
            "the store with prefix {:?} lost documents of m{i}",
            other.key_prefix()
        );
    }
    for key in &foreign {
        let kept: Option<String> = raw.get(key).await.expect("get");
        assert_eq!(
            kept.as_deref(),
            Some("x"),
            "{key} is not a bucket of the store"
        );
        let _: () = raw.del(key).await.expect("cleanup");
    }
    for i in 0..metrics {
        ours.remove_metric(&format!("m{i}")).await.expect("cleanup");
        other
            .remove_metric(&format!("m{i}"))
            .await
            .expect("cleanup");
    }
}
