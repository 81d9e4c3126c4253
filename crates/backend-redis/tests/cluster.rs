//! The conformance suite and the tracker checks against a Redis Cluster
//! (`STATS_TEST_REDIS_CLUSTER_URLS`, comma-separated node URLs).

mod common;
#[path = "cluster/topology.rs"]
mod topology;

use std::sync::Arc;

use stats_backend_redis::{RedisConfig, RedisStore};
use stats_core::testkit::proxy::{DropReplyProxy, Route, upstream_of};
use stats_core::{Batch, Error, Key, MetricStore, values};

const VAR: &str = "STATS_TEST_REDIS_CLUSTER_URLS";

async fn store() -> Arc<RedisStore> {
    common::store(VAR).await
}

stats_core::metric_store_tests!(store);
stats_core::counter_store_tests!(store);
stats_core::throttle_store_tests!(store);
stats_core::tracker_tests!(store);

#[tokio::test]
async fn capabilities_say_batches_are_atomic_per_metric() {
    let caps = stats_core::Store::capabilities(&*store().await);
    assert!(caps.cluster && !caps.atomic_batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_many_metrics_spans_the_nodes_and_fails_per_metric() {
    let s = store().await;
    let hour = "1h".parse().unwrap();
    // Enough metrics to land on every node.
    let keys: Vec<Key> = (0..64)
        .map(|i| Key::bucket(&format!("m{i}"), hour, 0).unwrap())
        .collect();
    let mut batch = Batch::new();
    batch.inc(keys.iter().cloned(), &values!({"n": 1})).unwrap();
    s.apply(&batch).await.unwrap();
    assert!(
        s.read(&keys)
            .await
            .unwrap()
            .iter()
            .all(|d| *d == values!({"n": 1}))
    );
    // One metric overflows: it is untouched; the others are written (atomic per metric).
    let mut set = Batch::new();
    set.set([keys[5].clone()], &values!({"n": i64::MAX}))
        .unwrap();
    s.apply(&set).await.unwrap();
    let result = s.apply(&batch).await;
    assert!(matches!(result, Err(Error::Overflow { .. })), "{result:?}");
    let docs = s.read(&keys).await.unwrap();
    assert_eq!(docs[5], values!({"n": i64::MAX}));
    assert!(
        docs.iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .all(|(_, d)| *d == values!({"n": 2}))
    );
}

#[tokio::test]
async fn info_counts_namespaces_on_every_node() {
    use stats_core::CounterStore;
    let s = store().await;
    for i in 0..20 {
        s.inc(&format!("ns{i}"), "k", 1, 0).await.unwrap();
    }
    let info = s.info().await.unwrap();
    assert_eq!(info.namespaces.len(), 20);
    assert_eq!(info.counters, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_is_confined_to_the_store() {
    let urls: Vec<String> = common::url(VAR)
        .split(',')
        .map(|u| u.trim().replace("redis+cluster://", "redis://"))
        .collect();
    let raw = redis::cluster::ClusterClient::new(urls)
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("connect");
    common::removal_is_confined_to_the_store(VAR, raw).await;
}

/// A proxy in front of every node of the cluster whose replies name the proxy's ports instead
/// of the nodes' (topology and redirections): a cluster client connected through it sends
/// everything through it.
async fn cluster_proxy() -> DropReplyProxy {
    let upstreams: Vec<String> = common::url(VAR)
        .split(',')
        .map(|u| upstream_of(u.trim()))
        .collect();
    DropReplyProxy::start_many(&upstreams, |routes| {
        Box::new(topology::ClusterAddresses::new(routes))
    })
    .await
}

/// The URLs of the proxy's ports, as a cluster configuration takes them.
fn proxy_urls(proxy: &DropReplyProxy) -> String {
    let urls: Vec<String> = proxy
        .routes()
        .iter()
        .map(|route| format!("redis://{}/", route.addr))
        .collect();
    urls.join(",")
}

/// An address as `(host, port)`.
type Address = (String, u16);

/// The proxy's addresses and the nodes', as `(host, port)`.
fn addresses(routes: &[Route]) -> (Vec<Address>, Vec<Address>) {
    let split = |s: &str| {
        let (host, port) = s.rsplit_once(':').expect("host:port");
        (host.to_owned(), port.parse::<u16>().expect("port"))
    };
    let proxies = routes.iter().map(|r| split(&r.addr.to_string())).collect();
    let nodes = routes.iter().map(|r| split(&r.upstream)).collect();
    (proxies, nodes)
}

/// Through the proxy, every address the nodes hand out is one of the proxy's: `CLUSTER SLOTS`,
/// `CLUSTER SHARDS`, `CLUSTER NODES` and `MOVED` redirections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_through_the_proxy_names_only_the_proxy() {
    use redis::Value;
    let proxy = cluster_proxy().await;
    let (proxies, nodes) = addresses(proxy.routes());
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).expect("UTF-8"),
        Value::SimpleString(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    };
    let int = |v: &Value| match v {
        Value::Int(i) => u16::try_from(*i).expect("port"),
        other => panic!("not an integer: {other:?}"),
    };
    let items = |v: &Value| match v {
        Value::Array(items) => items.clone(),
        other => panic!("not an array: {other:?}"),
    };
    let field = |map: &Value, name: &str| {
        let pairs = items(map);
        let at = pairs
            .iter()
            .step_by(2)
            .position(|k| text(k) == name)
            .unwrap_or_else(|| panic!("no {name} in {map:?}"));
        pairs[2 * at + 1].clone()
    };
    for route in proxy.routes() {
        let client = redis::Client::open(format!("redis://{}/", route.addr)).expect("URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect through the proxy");
        let mut seen: Vec<Address> = Vec::new();
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER SLOTS");
        for range in items(&slots) {
            for node in items(&range).iter().skip(2) {
                let node = items(node);
                seen.push((text(&node[0]), int(&node[1])));
            }
        }
        let shards: Value = redis::cmd("CLUSTER")
            .arg("SHARDS")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER SHARDS");
        for shard in items(&shards) {
            for node in items(&field(&shard, "nodes")) {
                let port = int(&field(&node, "port"));
                seen.push((text(&field(&node, "ip")), port));
                seen.push((text(&field(&node, "endpoint")), port));
            }
        }
        let listing: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER NODES");
        for line in listing.lines() {
            let address = line.split(' ').nth(1).expect("address");
            let address = &address[..address.find('@').expect("bus port")];
            let (ip, port) = address.rsplit_once(':').expect("ip:port");
            seen.push((ip.to_owned(), port.parse().expect("port")));
        }
        // 3 masters, each in SLOTS (once per slot range), SHARDS (ip and endpoint), NODES.
        assert!(seen.len() >= 4 * nodes.len(), "{seen:?}");
        for address in &seen {
            assert!(
                proxies.contains(address) && !nodes.contains(address),
                "{address:?} is not an address of the proxy {proxies:?}"
            );
        }
        for address in &proxies {
            assert!(
                seen.contains(address),
                "{address:?} is missing from {seen:?}"
            );
        }
    }
    // A key asked of every node: the nodes that do not hold it redirect to the proxy's port of
    // the one that does.
    let mut moved = 0;
    for route in proxy.routes() {
        let client = redis::Client::open(format!("redis://{}/", route.addr)).expect("URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect through the proxy");
        match redis::cmd("GET")
            .arg("proxy-moved-key")
            .query_async::<Option<String>>(&mut conn)
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let (address, _slot) = e.redirect_node().unwrap_or_else(|| panic!("{e}"));
                let (ip, port) = address.rsplit_once(':').expect("ip:port");
                let address = (ip.to_owned(), port.parse::<u16>().expect("port"));
                assert!(proxies.contains(&address), "MOVED to {address:?}: {e}");
                moved += 1;
            }
        }
    }
    assert_eq!(moved, proxy.routes().len() - 1, "one node holds the key");
}

/// A lost reply (the proxy drops the script's answer after the node ran it): the cluster driver
/// resends the script by itself on a new connection (up to its 2 retries), and the caller
/// retries once the driver gives up. A batch with an id counts once through all of it (the
/// store records the id per metric, on the metric's node); without an id every run counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_lost_reply_applies_once() {
    use stats_core::testkit::proxy::check_resend_after_lost_reply;
    let proxy = cluster_proxy().await;
    let config = RedisConfig::from_url(&proxy_urls(&proxy))
        .expect("URLs")
        .key_prefix(&stats_core::testkit::unique("lost"))
        .expect("prefix");
    let store = RedisStore::connect(config).await.expect("connect");
    assert!(store.config().is_cluster());
    // Loads the script on every node, so that the batch below is one EVALSHA on its node.
    let hour = "1h".parse().unwrap();
    let mut batch = Batch::new();
    let warm = (0..64).map(|i| Key::bucket(&format!("lost_warm{i}"), hour, 0).unwrap());
    batch.inc(warm, &values!({"n": 1})).unwrap();
    store.apply(&batch).await.expect("warm up");
    check_resend_after_lost_reply(&store, &proxy, |metric, _| metric.as_bytes().to_vec()).await;
}
