//! The conformance suite, the tracker checks and the SQL checks against PostgreSQL
//! (`STATS_TEST_POSTGRES_URL`; `cargo xtask it postgres` starts a server and sets it).
#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;

use sqlx::Row as _;
use stats_backend_sql::{SqlConfig, SqlStore};
use stats_core::{Batch, CounterStore, Key, MetricStore, ThrottleStore, values};

const VAR: &str = "STATS_TEST_POSTGRES_URL";

fn url() -> String {
    common::url(VAR, "postgres")
}

fn config() -> SqlConfig {
    SqlConfig::from_url(&url()).expect("URL")
}

async fn store() -> Arc<SqlStore> {
    common::store_at(config(), common::suite_prefix()).await
}

common::sql_checks!(config: config, store: store);

common::server_checks!(
    unreachable: "postgres://postgres@127.0.0.1:1/none",
    with_password: "postgres://u:hunter2@127.0.0.1:1/db",
);

/// The rows are where the crate docs say they are.
#[tokio::test]
async fn layout_is_as_documented() {
    let prefix = common::unique_prefix("layout");
    let s = common::store_at(config(), &prefix).await;
    let key = Key::bucket("orders", "1h".parse().unwrap(), 3600).unwrap();
    let mut batch = Batch::new();
    batch
        .inc([key.clone()], &values!({"count": 2, "by": {"eu": 1.5}}))
        .unwrap();
    batch
        .set([Key::status("orders").unwrap()], &values!({"state": 1}))
        .unwrap();
    s.apply(&batch).await.unwrap();
    s.inc("jobs", "done", 3, 0).await.unwrap();
    assert!(
        s.try_acquire("lock", std::time::Duration::from_secs(60))
            .await
            .unwrap()
    );

    let pool = sqlx::PgPool::connect(&url()).await.unwrap();
    let rows = sqlx::query(&format!(
        r#"SELECT metric, granularity, at, path, int_value, float_value FROM "{prefix}_buckets"
        ORDER BY granularity, path"#
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let shown: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {:?} {} {} {:?} {:?}",
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<i64, _>(2),
                r.get::<String, _>(3),
                r.get::<Option<i64>, _>(4),
                r.get::<Option<f64>, _>(5)
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            r#"orders "" 0 state Some(1) None"#,
            r#"orders "1h" 3600 by None None"#,
            r#"orders "1h" 3600 by.eu None Some(1.5)"#,
            r#"orders "1h" 3600 count Some(2) None"#,
        ]
    );
    let counter: (String, String, i64) = sqlx::query_as(&format!(
        r#"SELECT namespace, counter_key, value FROM "{prefix}_counters""#
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counter, ("jobs".into(), "done".into(), 3));
    let (key, expires_at): (String, i64) = sqlx::query_as(&format!(
        r#"SELECT throttle_key, expires_at FROM "{prefix}_throttles""#
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(key, "lock");
    assert!(
        (expires_at - now_ms - 60_000).abs() < 5_000,
        "{expires_at} vs {now_ms}"
    );
    s.drop_tables().await.unwrap();
}

/// A retry after a lost reply applies a batch with an id once (and without an id twice).
#[tokio::test]
async fn retry_after_lost_reply_applies_once() {
    common::retry_after_lost_reply(&url()).await;
}
