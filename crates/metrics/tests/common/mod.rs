//! Shared helpers of the recorder's suites: stores, recorders, and bucket reads through the
//! buffered tracker and through a fresh unbuffered tracker on the same store.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use stats_backend_atomics::AtomicsStore;
use stats_backend_redis::{RedisConfig, RedisStore};
use stats_buffer::BufferedTracker;
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{Granularity, MetricStore, Number, Values};

/// An instant from RFC 3339 text.
pub fn t(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A granularity from its name (`1m`, `1h`, `1d`).
pub fn g(name: &str) -> Granularity {
    name.parse().unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The Redis URL of the run (`cargo xtask it redis` sets it).
pub fn redis_url() -> String {
    const VAR: &str = "STATS_TEST_REDIS_URL";
    std::env::var(VAR).unwrap_or_else(|_| {
        panic!("{VAR} is not set: run `cargo xtask it redis`, which starts a server, or set it")
    })
}

/// A Redis store at `url` with the key prefix `prefix`.
pub async fn redis_store_at(url: &str, prefix: &str) -> Arc<dyn MetricStore> {
    let config = RedisConfig::from_url(url)
        .expect("URL")
        .key_prefix(prefix)
        .expect("prefix");
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}

/// The run's Redis, with a key prefix of its own.
pub async fn redis_store() -> Arc<dyn MetricStore> {
    redis_store_at(&redis_url(), &stats_core::testkit::unique("metrics")).await
}

/// A fresh in-process store.
pub fn atomics_store() -> Arc<dyn MetricStore> {
    Arc::new(AtomicsStore::default())
}

/// A buffered tracker with the default configuration (1m, 1h, 1d, 1w, 1mo, 1q, 1y, UTC).
pub fn buffered(store: &Arc<dyn MetricStore>) -> Arc<BufferedTracker> {
    Arc::new(BufferedTracker::new(store.clone(), Config::new()).expect("buffered tracker"))
}

/// The document of `metric`'s bucket holding `at` at `granularity` (empty when blank), read
/// through the buffered tracker.
pub async fn buffered_bucket(
    tracker: &BufferedTracker,
    metric: &str,
    at: Timestamp,
    granularity: &str,
) -> Values {
    let series = tracker
        .values(metric, at, at, g(granularity), Blanks::Skip)
        .await
        .unwrap_or_else(|e| panic!("read {metric} {granularity}: {e}"));
    series.values.into_iter().next().unwrap_or_default()
}

/// The same bucket read by a fresh unbuffered tracker on `store`: what reached the store.
pub async fn stored_bucket(
    store: &Arc<dyn MetricStore>,
    metric: &str,
    at: Timestamp,
    granularity: &str,
) -> Values {
    let tracker = Tracker::new(store.clone(), Config::new());
    let series = tracker
        .values(metric, at, at, g(granularity), Blanks::Skip)
        .await
        .unwrap_or_else(|e| panic!("read {metric} {granularity} from the store: {e}"));
    series.values.into_iter().next().unwrap_or_default()
}

/// An expected leaf: an exact integer, or a float compared exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum N {
    I(i64),
    F(f64),
}

fn same(expected: N, got: Number) -> bool {
    match (expected, got) {
        (N::I(e), Number::Int(g)) => e == g,
        // A float leaf may come back as an integer when it is whole (stores keep numbers,
        // not their spelling); the value must still be exact.
        (N::F(e), g) => g.as_f64() == e,
        _ => false,
    }
}

/// Checks that `doc` holds exactly the leaves of `expected` (no other leaf) with their values.
pub fn assert_doc(doc: &Values, expected: &[(&str, N)], context: &str) {
    let mut got: Vec<(String, Number)> = doc.flatten();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<(String, N)> = expected
        .iter()
        .map(|(p, n)| ((*p).to_owned(), *n))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let got_paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    let want_paths: Vec<&str> = want.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        got_paths, want_paths,
        "{context}: leaves differ; document {got:?}"
    );
    for ((path, g), (_, w)) in got.iter().zip(&want) {
        assert!(same(*w, *g), "{context}: {path} is {g:?}, expected {w:?}");
    }
}

/// Checks a bucket both through the buffered tracker and on the store itself.
pub async fn assert_bucket(
    tracker: &BufferedTracker,
    store: &Arc<dyn MetricStore>,
    metric: &str,
    at: Timestamp,
    granularity: &str,
    expected: &[(&str, N)],
) {
    let context = format!("{} {metric} {granularity} bucket of {at}", store.name());
    let buffered = buffered_bucket(tracker, metric, at, granularity).await;
    assert_doc(&buffered, expected, &format!("{context} (buffered read)"));
    let stored = stored_bucket(store, metric, at, granularity).await;
    assert_doc(&stored, expected, &format!("{context} (store read)"));
}

/// The integer leaf at `path` of `doc` (panics on a float).
pub fn int_at(doc: &Values, path: &str) -> Option<i64> {
    doc.number_at(path).map(|n| match n {
        Number::Int(i) => i,
        Number::Float(f) => panic!("{path} is the float {f}, expected an integer"),
    })
}

/// The leaf at `path` of `doc` as a float.
pub fn float_at(doc: &Values, path: &str) -> Option<f64> {
    doc.number_at(path).map(Number::as_f64)
}
