//! Checks every SQL database runs beside the conformance suite.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use stats_backend_sql::{SqlConfig, SqlStore};
use stats_core::retention::Retention;
use stats_core::store::MAX_TTL;
use stats_core::{
    Batch, CounterStore, Error, Key, MetricStore, Number, Store, ThrottleStore, Values,
};

/// The tests every database runs: the conformance suite and the tracker checks against
/// `store` (an `async fn() -> Arc<SqlStore>`), and the SQL checks of this module against
/// `store` or `config` (a `fn() -> SqlConfig` of a fresh store). Each becomes a `#[tokio::test]`
/// of the invoking file, under the name of the check it runs.
macro_rules! sql_checks {
    (config: $config:path, store: $store:path $(,)?) => {
        stats_core::metric_store_tests!($store);
        stats_core::counter_store_tests!($store);
        stats_core::throttle_store_tests!($store);
        stats_core::tracker_tests!($store);

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_batches_in_different_orders_do_not_deadlock() {
            common::concurrent_batches_in_different_orders_do_not_deadlock($config()).await;
        }

        #[tokio::test]
        async fn setup_is_idempotent_and_concurrent() {
            common::setup_is_idempotent_and_concurrent($config()).await;
        }

        #[tokio::test]
        async fn hostile_table_names_are_refused() {
            common::hostile_table_names_are_refused($config()).await;
        }

        #[tokio::test]
        async fn metacharacters_round_trip_or_are_refused() {
            common::metacharacters_round_trip_or_are_refused($store().await).await;
        }

        #[tokio::test]
        async fn capabilities_are_as_documented() {
            common::capabilities_are_as_documented($store().await).await;
        }

        #[tokio::test]
        async fn numbers_keep_their_kind() {
            common::numbers_keep_their_kind($store().await).await;
        }

        #[tokio::test]
        async fn large_batches_are_atomic() {
            common::large_batches_are_atomic($store().await).await;
        }

        #[tokio::test]
        async fn throttles_expire_and_are_purged() {
            common::throttles_expire_and_are_purged($store().await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn retention_sweep_deletes_expired_buckets_only() {
            common::retention_sweep_deletes_expired_buckets_only($config()).await;
        }

        #[tokio::test]
        async fn purge_expired_on_demand_counts_buckets() {
            common::purge_expired_on_demand_counts_buckets($config()).await;
        }

        #[tokio::test]
        async fn purge_spans_many_metrics() {
            common::purge_spans_many_metrics($config()).await;
        }

        #[tokio::test]
        async fn mixed_max_min_agree_with_number() {
            common::mixed_max_min_agree_with_number($store().await).await;
        }

        #[tokio::test]
        async fn counter_overflow_names_the_operands() {
            common::counter_overflow_names_the_operands($store().await).await;
        }

        #[tokio::test]
        async fn max_ttl_throttle_holds() {
            common::max_ttl_throttle_holds($store().await).await;
        }
    };
}
pub(crate) use sql_checks;

/// The tests of the databases behind a server: `unreachable` is a URL of the database's scheme
/// where no server listens, `with_password` a URL whose userinfo has the password `hunter2`
/// and the user `u`. (SQLite has no server and does not invoke it.)
#[allow(unused_macros)]
macro_rules! server_checks {
    (unreachable: $unreachable:literal, with_password: $with_password:literal $(,)?) => {
        #[tokio::test]
        async fn unreachable_server_is_retryable() {
            common::unreachable_server_is_retryable($unreachable).await;
        }

        #[tokio::test]
        async fn refused_connection_is_unavailable_with_its_cause() {
            common::refused_connection_is_unavailable_with_its_cause($unreachable).await;
        }

        #[tokio::test]
        async fn unknown_host_is_named() {
            common::unknown_host_is_named($unreachable).await;
        }

        #[tokio::test]
        async fn debug_hides_the_password() {
            let shown = format!(
                "{:?}",
                stats_backend_sql::SqlConfig::from_url($with_password).unwrap()
            );
            assert!(
                !shown.contains("hunter2") && shown.contains("u:***@"),
                "{shown}"
            );
        }
    };
}
#[allow(unused_imports)]
pub(crate) use server_checks;

/// A server URL from the environment, or a clear failure (never a skip).
pub fn url(var: &str, backend: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set. These tests need a real server: run `cargo xtask it {backend}`, \
             which starts one, or set {var} to a server's URL."
        )
    })
}

/// A table prefix no other run uses: [`stats_core::testkit::unique`] cut to the table pattern
/// (`^[a-z_][a-z0-9_]{0,40}$`).
pub fn unique_prefix(label: &str) -> String {
    let mut out: String = stats_core::testkit::unique(label)
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(stats_backend_sql::MAX_TABLE_PREFIX_LEN);
    out
}

/// The prefix of this test process's suite tables: every conformance test of the process
/// shares them (each check uses names of its own), so `setup` runs concurrently from many tests.
pub fn suite_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| unique_prefix("suite"))
}

/// A store at `url` in the Trifle layout on the Trifle table `table`, its own tables under
/// `prefix`, everything set up.
pub async fn trifle_store_at(url: &str, table: &str, prefix: &str) -> Arc<SqlStore> {
    let table = stats_backend_sql::TrifleTable::named(table).expect("table name");
    let config = SqlConfig::from_url(url)
        .expect("url")
        .layout(stats_backend_sql::Layout::Trifle(table))
        .expect("layout");
    store_at(config, prefix).await
}

/// A store at `url` under `prefix`, with its tables set up.
pub async fn store_at(config: SqlConfig, prefix: &str) -> Arc<SqlStore> {
    let config = config.table_prefix(prefix).expect("prefix");
    let store = SqlStore::connect(config).await.expect("connect");
    store.setup().await.expect("setup");
    Arc::new(store)
}

fn hour() -> stats_core::Granularity {
    "1h".parse().expect("granularity")
}

/// `setup` twice in a row, and from eight tasks at once on fresh tables, never fails; the
/// tables work afterwards.
pub async fn setup_is_idempotent_and_concurrent(config: SqlConfig) {
    let prefix = unique_prefix("setup");
    let store = Arc::new(
        SqlStore::connect(
            config
                .table_prefix(&prefix)
                .expect("prefix")
                .max_connections(8),
        )
        .await
        .expect("connect"),
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.setup().await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("concurrent setup");
    }
    store.setup().await.expect("setup again");
    store.setup().await.expect("and again");
    let key = Key::bucket("m", hour(), 0).expect("key");
    let mut b = Batch::new();
    b.inc([key.clone()], &stats_core::values!({"n": 1}))
        .expect("batch");
    store.apply(&b).await.expect("apply");
    assert_eq!(
        store.read(&[key]).await.expect("read"),
        vec![stats_core::values!({"n": 1})]
    );
    store.drop_tables().await.expect("drop");
    store.drop_tables().await.expect("drop twice");
}

/// A table prefix that could smuggle SQL is refused with a typed error before anything is
/// sent (the URL is never contacted).
pub async fn hostile_table_names_are_refused(config: SqlConfig) {
    for hostile in [
        "stats\"; DROP TABLE stats_buckets; --",
        "stats`; DROP TABLE x; --",
        "a b",
        "Stats",
        "1stats",
        "stats-x",
        "",
        "é",
        "a\0b",
        &"a".repeat(42),
    ] {
        let err = config.clone().table_prefix(hostile).unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(_)),
            "{hostile:?}: expected InvalidInput, got {err:?}"
        );
    }
}

/// Names and values full of SQL and JSON metacharacters round-trip exactly or are refused by
/// the name rule; none is executed; `LIKE` wildcards match only themselves.
pub async fn metacharacters_round_trip_or_are_refused(store: Arc<SqlStore>) {
    let tag = unique_prefix("meta");
    let specials = [
        "'",
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "é",
        "日本",
        "%",
        "_",
        "'; DROP TABLE x; --",
        "a%b",
        "a_b",
        "\\'",
        "{\"a\":1}",
        "[1,2]",
        "x y",
        "tab\\t",
    ];
    let mut written = 0;
    for (i, s) in specials.iter().enumerate() {
        let metric = format!("{tag}{s}{i}");
        let field = format!("f{s}");
        // A metric key: refused by the segment rule ({ } and a trailing ':') or round-trips.
        match Key::bucket(&metric, hour(), 3600) {
            Err(e) => assert!(matches!(e, Error::InvalidName { .. }), "{metric:?}: {e}"),
            Ok(key) => {
                let values = Values::new()
                    .with(field.clone(), 7)
                    .and_then(|v| {
                        v.with(
                            "nested",
                            Values::new().with(field.clone(), Number::Float(1.5))?,
                        )
                    })
                    .expect("field names with metacharacters are valid");
                let mut b = Batch::new();
                b.inc([key.clone()], &values).expect("batch");
                store.apply(&b).await.expect("apply");
                assert_eq!(
                    store.read(std::slice::from_ref(&key)).await.expect("read"),
                    vec![values.clone()],
                    "{metric:?}"
                );
                assert_eq!(
                    store
                        .range(&metric, hour(), &[0, 3600])
                        .await
                        .expect("range"),
                    vec![Values::new(), values],
                    "{metric:?}"
                );
                written += 1;
            }
        }
        // Counters and throttles.
        let ns = format!("{tag}{s}");
        let key = format!("k{s}");
        match stats_core::store::check_counter(&ns, &key) {
            Err(_) => {
                let r = store.inc(&ns, &key, 1, 0).await;
                assert!(matches!(r, Err(Error::InvalidName { .. })), "{ns:?}: {r:?}");
            }
            Ok(()) => {
                assert_eq!(store.inc(&ns, &key, 5, 0).await.expect("inc"), 5, "{ns:?}");
                assert_eq!(store.get(&ns, &key).await.expect("get"), Some(5));
                assert_eq!(
                    store.get_all(&ns).await.expect("get_all"),
                    vec![(key.clone(), 5)],
                    "{ns:?}: get_all must match the namespace exactly"
                );
                assert_eq!(
                    store.compare_and_swap(&ns, &key, 5, 6).await.expect("cas"),
                    stats_core::CasOutcome::Swapped(6)
                );
                let throttle = format!("{tag}{s}t");
                assert!(
                    store
                        .try_acquire(&throttle, Duration::from_secs(60))
                        .await
                        .expect("acquire")
                );
            }
        }
    }
    assert!(
        written >= specials.len() - 3,
        "most names are valid metric keys"
    );
    // `%` and `_` are LIKE wildcards: a namespace made of them must match only itself.
    let wild = format!("{tag}w_%");
    let plain = format!("{tag}wab");
    store.set(&plain, "k", 1).await.expect("set");
    store.set(&wild, "k", 2).await.expect("set");
    assert_eq!(
        store.get_all(&wild).await.expect("get_all"),
        vec![("k".to_owned(), 2)]
    );
    assert_eq!(store.delete_namespace(&wild).await.expect("delete"), 1);
    assert_eq!(store.get(&plain, "k").await.expect("get"), Some(1));
    // Names that differ only in case, accents or trailing spaces are different names.
    for (a, b) in [("A", "a"), ("é", "e"), ("x", "x "), ("ß", "ss")] {
        let ns = format!("{tag}-case");
        store.set(&ns, a, 1).await.expect("set");
        store.set(&ns, b, 2).await.expect("set");
        assert_eq!(
            store.get(&ns, a).await.expect("get"),
            Some(1),
            "{a:?} vs {b:?}"
        );
        assert_eq!(
            store.get(&ns, b).await.expect("get"),
            Some(2),
            "{a:?} vs {b:?}"
        );
        store.delete_namespace(&ns).await.expect("delete");
    }
    // The store still works: nothing was executed.
    let key = Key::bucket(&format!("{tag}after"), hour(), 0).expect("key");
    let mut b = Batch::new();
    b.inc([key.clone()], &stats_core::values!({"n": 1}))
        .expect("batch");
    store.apply(&b).await.expect("apply after");
}

/// Eight tasks, each on its own pooled connection, apply batches that upsert the same 100
/// keys in different orders (and mix increments with maxima); the totals are exact and no batch
/// fails, although the store is told not to rerun a batch after a deadlock.
pub async fn concurrent_batches_in_different_orders_do_not_deadlock(config: SqlConfig) {
    const TASKS: usize = 8;
    const KEYS: i64 = 100;
    const BATCHES: usize = 25;
    let store = store_at(
        config.max_connections(TASKS as u32).deadlock_reruns(0),
        &unique_prefix("deadlock"),
    )
    .await;
    let metric = stats_core::testkit::unique("deadlock");
    let keys: Vec<Key> = (0..KEYS)
        .map(|i| Key::bucket(&metric, hour(), i * 3600).expect("key"))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            // Task t writes the keys rotated by t * 13, every other task backwards.
            let mut order: Vec<Key> = keys.clone();
            order.rotate_left(t * 13 % keys.len());
            if t % 2 == 1 {
                order.reverse();
            }
            tokio::spawn(async move {
                let mut b = Batch::new();
                for key in &order {
                    b.inc(
                        [key.clone()],
                        &stats_core::values!({"n": 1, "by": {"x": 1}}),
                    )
                    .expect("batch");
                    b.max([key.clone()], &stats_core::values!({"hi": t}))
                        .expect("batch");
                }
                barrier.wait().await;
                for _ in 0..BATCHES {
                    store.apply(&b).await.unwrap_or_else(|e| {
                        panic!(
                            "task {t}: a batch failed ({}retryable): {e}",
                            if e.is_retryable() { "" } else { "not " }
                        )
                    });
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let total = (TASKS * BATCHES) as i64;
    let expected = stats_core::values!({"n": total, "by": {"x": total}, "hi": TASKS - 1});
    for (key, doc) in keys.iter().zip(store.read(&keys).await.expect("read")) {
        assert_eq!(doc, expected, "{key}");
    }
    store.drop_tables().await.expect("drop");
}

/// The documented capabilities.
pub async fn capabilities_are_as_documented(store: Arc<SqlStore>) {
    let caps = store.capabilities();
    assert!(caps.floats && caps.max_min && caps.atomic_batch && caps.persistent);
    assert!(caps.idempotent_batch);
    assert!(!caps.ttl && !caps.cluster);
    assert_eq!(caps.counter_capacity, None);
    assert_eq!(store.name(), "sql");
}

/// A float leaf stays a float even when its value is whole; integers stay exact at the edges.
pub async fn numbers_keep_their_kind(store: Arc<SqlStore>) {
    let key = Key::bucket(&stats_core::testkit::unique("kind"), hour(), 0).expect("key");
    for v in [
        stats_core::values!({"x": 1.5, "i": 9_007_199_254_740_993_i64}),
        stats_core::values!({"x": 1.5, "i": 1}),
        stats_core::values!({"x": 1}),
    ] {
        let mut b = Batch::new();
        b.inc([key.clone()], &v).expect("batch");
        store.apply(&b).await.expect("apply");
    }
    let doc = store
        .read(std::slice::from_ref(&key))
        .await
        .expect("read")
        .remove(0);
    assert_eq!(doc.number_at("x"), Some(Number::Float(4.0)));
    assert_eq!(doc.number_at("i"), Some(Number::Int(9_007_199_254_740_994)));
    // max of an integer above 2^53 against the float it rounds to compares exactly.
    let mut b = Batch::new();
    b.max(
        [key.clone()],
        &stats_core::values!({"i": 9_007_199_254_740_994.0_f64}),
    )
    .expect("batch");
    b.min([key.clone()], &stats_core::values!({"x": 4}))
        .expect("batch");
    store.apply(&b).await.expect("apply");
    let doc = store
        .read(std::slice::from_ref(&key))
        .await
        .expect("read")
        .remove(0);
    assert_eq!(
        doc.number_at("i"),
        Some(Number::Int(9_007_199_254_740_994)),
        "a tie keeps the stored number"
    );
    assert_eq!(
        doc.number_at("x"),
        Some(Number::Float(4.0)),
        "a tie keeps the stored number"
    );
    let mut b = Batch::new();
    b.max(
        [key.clone()],
        &stats_core::values!({"i": 9_007_199_254_740_996.0_f64}),
    )
    .expect("batch");
    b.min([key.clone()], &stats_core::values!({"x": 3}))
        .expect("batch");
    store.apply(&b).await.expect("apply");
    let doc = store.read(&[key]).await.expect("read").remove(0);
    assert_eq!(
        doc.number_at("i"),
        Some(Number::Float(9_007_199_254_740_996.0))
    );
    assert_eq!(doc.number_at("x"), Some(Number::Int(3)));
}

/// A batch larger than one statement (several rounds and chunks) is still one transaction.
pub async fn large_batches_are_atomic(store: Arc<SqlStore>) {
    let metric = stats_core::testkit::unique("large");
    let keys: Vec<Key> = (0..30)
        .map(|i| Key::bucket(&metric, hour(), i * 3600).expect("key"))
        .collect();
    let mut fields = Values::new();
    for f in 0..100 {
        fields.insert(format!("f{f}"), 1).expect("field");
    }
    let full = keys[29].clone();
    let mut b = Batch::new();
    b.set([full.clone()], &stats_core::values!({"f99": i64::MAX}))
        .expect("batch");
    let mut b2 = Batch::new();
    b2.inc(keys.iter().cloned(), &fields).expect("batch");
    b2.inc(keys.iter().cloned(), &fields).expect("batch");
    store.apply(&b).await.expect("apply");
    let err = store.apply(&b2).await.unwrap_err();
    assert!(
        matches!(&err, Error::Overflow { key, path: Some(p), .. } if *key == full.to_string() && p == "f99"),
        "{err:?}"
    );
    let docs = store.read(&keys).await.expect("read");
    assert!(
        docs[..29].iter().all(Values::is_empty),
        "nothing of the batch written"
    );
    assert_eq!(docs[29], stats_core::values!({"f99": i64::MAX}));
    // Without the overflow the same batch applies whole: 3,000 leaves in 2 rounds.
    store.remove(&[full]).await.expect("remove");
    store.apply(&b2).await.expect("apply");
    for doc in store.read(&keys).await.expect("read") {
        assert_eq!(doc.len(), 100);
        assert_eq!(doc.number_at("f7"), Some(Number::Int(2)));
    }
}

/// Throttles use the database's clock and expire.
pub async fn throttles_expire_and_are_purged(store: Arc<SqlStore>) {
    let key = stats_core::testkit::unique("purge");
    assert!(
        store
            .try_acquire(&key, Duration::from_millis(50))
            .await
            .expect("acquire")
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(store.purge_expired_throttles().await.expect("purge") >= 1);
    assert!(
        store
            .try_acquire(&key, Duration::from_secs(60))
            .await
            .expect("acquire after purge")
    );
}

/// A server that is not there gives a retryable error, quickly.
pub async fn unreachable_server_is_retryable(url: &str) {
    let config = SqlConfig::from_url(url)
        .expect("url")
        .acquire_timeout(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let err = SqlStore::connect(config).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A minute granularity and the start of the minute `minutes_ago` before now.
fn minute_ago(minutes_ago: i64) -> (stats_core::Granularity, i64) {
    let now = jiff::Timestamp::now().as_second();
    (
        "1m".parse().expect("granularity"),
        now - now % 60 - minutes_ago * 60,
    )
}

/// A retention of `keep` for minute buckets.
fn minutes_kept(keep: Duration) -> Retention {
    Retention::new()
        .keep("1m".parse().expect("granularity"), keep)
        .expect("retention")
}

/// With a retention of one hour for minute buckets and a sweep every 100 ms, the timed sweep
/// deletes minute buckets older than an hour (of every metric) and keeps newer ones, hour
/// buckets of the same old time, and status slots. A failed sweep is readable from the store;
/// a dropped store's sweep stops.
pub async fn retention_sweep_deletes_expired_buckets_only(config: SqlConfig) {
    let prefix = unique_prefix("sweep");
    let config = config
        .retention(minutes_kept(Duration::from_secs(3600)))
        .sweep_interval(Duration::from_millis(100))
        .expect("interval");
    let store = store_at(config.clone(), &prefix).await;
    let (minute, old) = minute_ago(90);
    let (_, fresh) = minute_ago(30);
    let metrics = [
        stats_core::testkit::unique("sweep-a"),
        stats_core::testkit::unique("sweep-b"),
    ];
    let docs = |m: &str| {
        vec![
            Key::bucket(m, minute, old).expect("key"),
            Key::bucket(m, minute, fresh).expect("key"),
            Key::bucket(m, hour(), old - old % 3600).expect("key"),
            Key::status(m).expect("key"),
        ]
    };
    let write = |store: Arc<SqlStore>, keys: Vec<Key>| async move {
        let mut b = Batch::new();
        b.inc(keys, &stats_core::values!({"n": 1})).expect("batch");
        store.apply(&b).await.expect("apply");
    };
    for m in &metrics {
        write(Arc::clone(&store), docs(m)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let gone = store
            .read(&[docs(&metrics[0])[0].clone(), docs(&metrics[1])[0].clone()])
            .await
            .expect("read");
        // A sweep that ran before the tables were set up failed; the one that deleted the
        // buckets clears that failure.
        if gone.iter().all(Values::is_empty) && store.last_sweep_error().is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not delete the expired minute buckets within 20 s: {:?}",
            store.last_sweep_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for m in &metrics {
        let kept = store.read(&docs(m)[1..]).await.expect("read");
        assert!(
            kept.iter().all(|d| *d == stats_core::values!({"n": 1})),
            "{m}: a fresh minute bucket, an hour bucket and the status stay: {kept:?}"
        );
    }
    assert!(
        store.last_sweep_error().is_none(),
        "{:?}",
        store.last_sweep_error()
    );

    // A sweep that fails is kept for the caller: drop the tables under the running sweep.
    store.drop_tables().await.expect("drop");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let failure = loop {
        if let Some(failure) = store.last_sweep_error() {
            break failure;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a failing sweep must be readable through last_sweep_error"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failure.granularity, minute);
    assert!(
        failure
            .error
            .to_string()
            .contains(&format!("{prefix}_buckets")),
        "the error names the table: {}",
        failure.error
    );
    assert!(
        matches!(*failure.error, Error::Backend { .. }),
        "{:?}",
        failure.error
    );
    store.setup().await.expect("setup again");
    // The next sweep succeeds and clears the failure.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.last_sweep_error().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "a sweep that succeeds must clear the earlier failure"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Once the store is dropped, its sweep ends: an expired bucket written by another store
    // on the same tables stays.
    drop(store);
    let other = store_at(config.retention(Retention::new()), &prefix).await;
    let expired = Key::bucket(&metrics[0], minute, old).expect("key");
    write(Arc::clone(&other), vec![expired.clone()]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        other.read(&[expired]).await.expect("read"),
        vec![stats_core::values!({"n": 1})],
        "the sweep of a dropped store must have ended"
    );
    assert!(other.last_sweep_error().is_none(), "no retention, no sweep");
    other.drop_tables().await.expect("drop");
}

/// `purge_expired` deletes what the retention says has expired, now, and counts the buckets
/// (not their rows); without a retention it deletes nothing.
pub async fn purge_expired_on_demand_counts_buckets(config: SqlConfig) {
    let prefix = unique_prefix("purgenow");
    // The timed sweep does not run within the test: its first run is an hour away.
    let config = config
        .retention(minutes_kept(Duration::from_secs(600)))
        .sweep_interval(Duration::from_secs(3600))
        .expect("interval");
    let store = store_at(config.clone(), &prefix).await;
    let (minute, _) = minute_ago(0);
    let metric = stats_core::testkit::unique("purgenow");
    let keys: Vec<Key> = [11, 12, 13, 9, 0]
        .into_iter()
        .map(|ago| Key::bucket(&metric, minute, minute_ago(ago).1).expect("key"))
        .collect();
    let mut b = Batch::new();
    b.inc(
        keys.clone(),
        &stats_core::values!({"n": 1, "by": {"x": 2.5, "y": 1}}),
    )
    .expect("batch");
    store.apply(&b).await.expect("apply");
    assert_eq!(store.purge_expired().await.expect("purge"), 3);
    let docs = store.read(&keys).await.expect("read");
    let present: Vec<bool> = docs.iter().map(|d| !d.is_empty()).collect();
    assert_eq!(present, [false, false, false, true, true]);
    assert_eq!(store.purge_expired().await.expect("again"), 0);
    let unkept = SqlStore::connect(
        config
            .retention(Retention::new())
            .table_prefix(&prefix)
            .expect("prefix"),
    )
    .await
    .expect("connect");
    let old = Key::bucket(&metric, minute, minute_ago(500).1).expect("key");
    let mut b = Batch::new();
    b.inc([old.clone()], &stats_core::values!({"n": 1}))
        .expect("batch");
    unkept.apply(&b).await.expect("apply");
    assert_eq!(unkept.purge_expired().await.expect("purge"), 0);
    assert_eq!(unkept.read(&[old]).await.expect("read")[0].len(), 1);
    store.drop_tables().await.expect("drop");
}

/// A purge reaches every metric, however many (more than one statement's chunk of metrics),
/// and counts every bucket it deletes; later buckets and other granularities stay.
pub async fn purge_spans_many_metrics(config: SqlConfig) {
    const METRICS: usize = 1_234;
    let store = store_at(config, &unique_prefix("purgemany")).await;
    let (minute, now) = minute_ago(0);
    let mut b = Batch::new();
    for i in 0..METRICS {
        let metric = format!("m{i:05}");
        let old = Key::bucket(&metric, minute, now - 7_200).expect("key");
        b.inc(
            [
                old.clone(),
                old.with_bucket(minute, now - 3_600),
                old.with_bucket(minute, now),
                old.with_bucket(hour(), now - now % 3_600 - 7_200),
            ],
            &stats_core::values!({"n": 1, "by": {"x": 1}}),
        )
        .expect("batch");
    }
    store.apply(&b).await.expect("apply");
    assert_eq!(
        store.purge(minute, now - 60).await.expect("purge"),
        2 * METRICS as u64
    );
    let last = format!("m{:05}", METRICS - 1);
    let docs = store
        .read(&[
            Key::bucket(&last, minute, now - 3_600).expect("key"),
            Key::bucket(&last, minute, now).expect("key"),
            Key::bucket(&last, hour(), now - now % 3_600 - 7_200).expect("key"),
        ])
        .await
        .expect("read");
    let present: Vec<bool> = docs.iter().map(|d| !d.is_empty()).collect();
    assert_eq!(present, [false, true, true]);
    assert_eq!(
        store.purge(minute, now + 60).await.expect("purge"),
        METRICS as u64
    );
    store.drop_tables().await.expect("drop");
}

/// Max and min of an integer and a float at the edges of exactness (2^53, 2^63, i64::MIN)
/// give what [`Number::max_value`] and [`Number::min_value`] give, whichever is stored first.
pub async fn mixed_max_min_agree_with_number(store: Arc<SqlStore>) {
    let two_63 = 9_223_372_036_854_775_808.0_f64;
    let pairs = [
        (Number::Int(i64::MAX), Number::Float(two_63)),
        (
            Number::Int(i64::MAX),
            Number::Float(9_223_372_036_854_774_784.0),
        ),
        (
            Number::Float(9_007_199_254_740_992.0),
            Number::Int((1 << 53) + 1),
        ),
        (
            Number::Float(9_007_199_254_740_994.0),
            Number::Int((1 << 53) + 1),
        ),
        (Number::Int(i64::MIN), Number::Float(-two_63)),
        (
            Number::Int(i64::MIN),
            Number::Float(-9_223_372_036_854_777_856.0),
        ),
        (Number::Int(i64::MIN + 1), Number::Float(-two_63)),
        (Number::Int(0), Number::Float(5e-324)),
    ];
    let metric = stats_core::testkit::unique("mixed");
    let key = Key::bucket(&metric, hour(), 0).expect("key");
    for (a, b) in pairs {
        for (stored, given) in [(a, b), (b, a)] {
            for max in [true, false] {
                let mut set = Batch::new();
                set.set(
                    [key.clone()],
                    &Values::new().with("v", stored).expect("value"),
                )
                .expect("batch");
                store.apply(&set).await.expect("set");
                let mut op = Batch::new();
                let given_doc = Values::new().with("v", given).expect("value");
                if max {
                    op.max([key.clone()], &given_doc).expect("batch");
                } else {
                    op.min([key.clone()], &given_doc).expect("batch");
                }
                store.apply(&op).await.expect("max/min");
                let got = store
                    .read(std::slice::from_ref(&key))
                    .await
                    .expect("read")
                    .remove(0)
                    .number_at("v");
                let expected = if max {
                    stored.max_value(given)
                } else {
                    stored.min_value(given)
                };
                assert_eq!(
                    got,
                    Some(expected),
                    "{} of stored {stored:?} and {given:?}",
                    if max { "max" } else { "min" }
                );
            }
        }
    }
    store.remove(&[key]).await.expect("remove");
}

/// A counter overflow says `<namespace>/<key>: <current> + <step>`, the same as every store
/// ([`Error::counter_overflow`]), for a stored counter and for a missing one (its default).
pub async fn counter_overflow_names_the_operands(store: Arc<SqlStore>) {
    let ns = stats_core::testkit::unique("ovf");
    store.set(&ns, "hi", i64::MAX - 2).await.expect("set");
    store.set(&ns, "lo", i64::MIN + 1).await.expect("set");
    for (key, step, current) in [
        ("hi", 3, i64::MAX - 2),
        ("lo", -2, i64::MIN + 1),
        ("hi", i64::MAX, i64::MAX - 2),
    ] {
        let err = store.inc(&ns, key, step, 0).await.expect_err("overflow");
        assert_eq!(
            err.to_string(),
            Error::counter_overflow(&ns, key, current, step).to_string()
        );
        assert!(
            err.to_string().contains(&format!("{current} + {step}")),
            "{err}"
        );
    }
    let err = store
        .inc(&ns, "new", 10, i64::MAX - 5)
        .await
        .expect_err("overflow");
    assert_eq!(
        err.to_string(),
        Error::counter_overflow(&ns, "new", i64::MAX - 5, 10).to_string()
    );
    assert_eq!(store.get(&ns, "new").await.expect("get"), None);
    store.delete_namespace(&ns).await.expect("cleanup");
}

/// The longest TTL the core allows is held as given: the expiry is 100 years ahead.
pub async fn max_ttl_throttle_holds(store: Arc<SqlStore>) {
    let key = stats_core::testkit::unique("maxttl");
    assert!(store.try_acquire(&key, MAX_TTL).await.expect("acquire"));
    assert!(
        !store
            .try_acquire(&key, Duration::from_millis(1))
            .await
            .expect("again")
    );
    assert_eq!(store.purge_expired_throttles().await.expect("purge"), 0);
    assert!(!store.try_acquire(&key, MAX_TTL).await.expect("still held"));
}

/// A refused connection is a retryable [`Error::Unavailable`] at once (not after the acquire
/// timeout), naming the address and the cause.
pub async fn refused_connection_is_unavailable_with_its_cause(url: &str) {
    let config = SqlConfig::from_url(url)
        .expect("url")
        .acquire_timeout(Duration::from_secs(5));
    let started = std::time::Instant::now();
    let err = SqlStore::connect(config)
        .await
        .expect_err("nothing listens there");
    let elapsed = started.elapsed();
    let shown = err.to_string();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        shown.contains("127.0.0.1:1"),
        "the address must be named: {shown}"
    );
    assert!(
        shown.to_lowercase().contains("refused"),
        "the cause must be kept: {shown}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "a refused connection must fail at once, not after the acquire timeout: {elapsed:?}"
    );
}

/// A host name that does not resolve is named in the error.
pub async fn unknown_host_is_named(url: &str) {
    let url = url.replacen("127.0.0.1:1", "no-such-host.invalid:5", 1);
    let config = SqlConfig::from_url(&url)
        .expect("url")
        .acquire_timeout(Duration::from_secs(5));
    let err = SqlStore::connect(config).await.expect_err("no such host");
    let shown = err.to_string();
    assert!(
        shown.contains("no-such-host.invalid"),
        "the host must be named: {shown}"
    );
    assert!(err.is_retryable(), "{err:?}");
}

/// A batch whose reply is lost after the database committed it (a proxy drops the answer to
/// its `COMMIT`, or to its one statement without an id) and retried: with an id it counts
/// once, without it twice (see `check_retry_after_lost_reply`).
pub async fn retry_after_lost_reply(url: &str) {
    use stats_core::testkit::proxy::{DropReplyProxy, check_retry_after_lost_reply, upstream_of};
    let proxy = DropReplyProxy::start(&upstream_of(url)).await;
    let config = SqlConfig::from_url(&proxy.url_via(url)).expect("URL");
    let store = store_at(config, &unique_prefix("lost")).await;
    check_retry_after_lost_reply(&*store, &proxy, |metric, with_id| {
        if with_id {
            b"COMMIT".to_vec()
        } else {
            metric.as_bytes().to_vec()
        }
    })
    .await;
    store.drop_tables().await.expect("drop");
}
