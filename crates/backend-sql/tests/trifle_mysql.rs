//! The Trifle layout ([`Layout::Trifle`]) on MySQL/MariaDB (`STATS_TEST_MYSQL_URL`; `cargo
//! xtask it mysql` starts a MariaDB and sets it).
//!
//! Trifle 2.6's MySQL driver (`lib/trifle/stats/driver/mysql.rb`) upserts
//! `INSERT INTO t (key, data) VALUES (?, CAST(? AS JSON)) ON DUPLICATE KEY UPDATE data =
//! JSON_SET(COALESCE(data, JSON_OBJECT()), '$."<path>"', (COALESCE(CAST(JSON_UNQUOTE(
//! JSON_EXTRACT(COALESCE(data, JSON_OBJECT()), '$."<path>"')) AS DECIMAL(65,10)), 0) + CAST(?
//! AS DECIMAL(65,10))), ...)`: quoted paths, so the packed keys stay top-level (`"by.eu"`), and
//! sums as `DECIMAL(65,10)`, so a field that was added to reads `2.0000000000`, a float, in
//! Ruby as here. MariaDB has no `CAST(... AS JSON)`: that driver's insert fails there (checked
//! below); its conflict branch runs, and is run here on rows this store wrote.
#![cfg(feature = "mysql")]

#[allow(unused_macros, unused_imports)]
mod common;

use std::sync::{Arc, OnceLock};

use stats_backend_sql::SqlStore;
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{Granularity, values};

/// The instant of the tracked event: 2023-11-14T22:13:20Z.
const AT: i64 = 1_700_000_000;
/// The start of its `1h` bucket.
const HOUR: i64 = 1_699_999_200;
/// The start of its `1d` bucket (UTC).
const DAY: i64 = 1_699_920_000;

fn url() -> String {
    common::url("STATS_TEST_MYSQL_URL", "mysql")
}

fn at() -> Timestamp {
    Timestamp::from_second(AT).unwrap()
}

fn hour() -> Granularity {
    "1h".parse().unwrap()
}

fn tracker(store: Arc<SqlStore>) -> Tracker {
    Tracker::new(
        store,
        Config::new()
            .granularities(["1h", "1d"])
            .unwrap()
            .system_index(true),
    )
}

async fn store_on(table: &str) -> Arc<SqlStore> {
    common::trifle_store_at(&url(), table, &common::unique_prefix("trifle")).await
}

async fn store() -> Arc<SqlStore> {
    static TABLE: OnceLock<String> = OnceLock::new();
    let table = TABLE.get_or_init(|| common::unique_prefix("trifle_suite"));
    store_on(table).await
}

stats_core::metric_store_tests!(store);
stats_core::tracker_tests!(store);

async fn pool() -> sqlx::MySqlPool {
    sqlx::MySqlPool::connect(&url()).await.unwrap()
}

async fn rows(pool: &sqlx::MySqlPool, table: &str) -> Vec<(String, serde_json::Value)> {
    let raw: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT CAST(`key` AS CHAR), CAST(`data` AS CHAR) FROM `{table}` ORDER BY `key`"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    raw.into_iter()
        .map(|(k, d)| (k, serde_json::from_str(&d).unwrap()))
        .collect()
}

/// Trifle's conflict branch of `inc` for `key`: each packed path added as `DECIMAL(65,10)`.
async fn trifle_add(pool: &sqlx::MySqlPool, table: &str, key: &str, packed: &[(&str, &str)]) {
    let mut set = String::from("JSON_SET(COALESCE(`data`, JSON_OBJECT())");
    for (path, _) in packed {
        set.push_str(&format!(
            ", '$.\"{path}\"', (COALESCE(CAST(JSON_UNQUOTE(JSON_EXTRACT(COALESCE(`data`, \
             JSON_OBJECT()), '$.\"{path}\"')) AS DECIMAL(65,10)), 0) + CAST(? AS DECIMAL(65,10)))"
        ));
    }
    set.push(')');
    let sql = format!("UPDATE `{table}` SET `data` = {set} WHERE `key` = ?");
    let mut q = sqlx::query(&sql);
    for (_, n) in packed {
        q = q.bind(*n);
    }
    let done = q.bind(key).execute(pool).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{key}");
}

#[tokio::test]
async fn golden_rows_of_one_track_are_trifles() {
    let table = common::unique_prefix("trifle_golden");
    let store = store_on(&table).await;
    tracker(store.clone())
        .track(
            "orders",
            at(),
            &values!({"count": 1, "amount": 12.5, "by": {"eu": 1}}),
        )
        .await
        .unwrap();
    let pool = pool().await;
    let expected: Vec<(String, serde_json::Value)> = [
        (
            format!("__system__key__::1d::{DAY}"),
            r#"{"count":1,"keys.orders":1}"#,
        ),
        (
            format!("__system__key__::1h::{HOUR}"),
            r#"{"count":1,"keys.orders":1}"#,
        ),
        (
            format!("orders::1d::{DAY}"),
            r#"{"count":1,"amount":12.5,"by.eu":1}"#,
        ),
        (
            format!("orders::1h::{HOUR}"),
            r#"{"count":1,"amount":12.5,"by.eu":1}"#,
        ),
    ]
    .into_iter()
    .map(|(k, j)| (k, serde_json::from_str(j).unwrap()))
    .collect();
    assert_eq!(rows(&pool, &table).await, expected);
    // Trifle's own insert needs `CAST(... AS JSON)`, which MariaDB does not have (MySQL does).
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let inserted = sqlx::query(&format!(
        "INSERT INTO `{table}` (`key`, `data`) VALUES (?, CAST(? AS JSON))"
    ))
    .bind("other::1h::0")
    .bind("{}")
    .execute(&pool)
    .await;
    assert_eq!(
        inserted.is_err(),
        version.contains("MariaDB"),
        "{version}: {inserted:?}"
    );
    store.drop_tables().await.unwrap();
}

#[tokio::test]
async fn trifle_increments_read_back_as_floats() {
    let table = common::unique_prefix("trifle_added");
    let store = store_on(&table).await;
    let t = tracker(store.clone());
    t.track("orders", at(), &values!({"count": 1, "by": {"eu": 1}}))
        .await
        .unwrap();
    let pool = pool().await;
    trifle_add(
        &pool,
        &table,
        &format!("orders::1h::{HOUR}"),
        &[("count", "1"), ("amount", "12.5"), ("by.eu", "2")],
    )
    .await;
    trifle_add(
        &pool,
        &table,
        &format!("__system__key__::1h::{HOUR}"),
        &[("count", "1"), ("keys.orders", "1")],
    )
    .await;
    // DECIMAL sums: `2.0000000000`, floats in Ruby's JSON.parse and here.
    let series = t
        .values("orders", at(), at(), hour(), Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(
        series.values,
        [values!({"count": 2.0, "amount": 12.5, "by": {"eu": 3.0}})]
    );
    let system = t
        .system_values(at(), at(), hour(), Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(
        system.values,
        [values!({"count": 2.0, "keys": {"orders": 2.0}})]
    );
    // Tracking on adds to the floats.
    t.track("orders", at(), &values!({"count": 1}))
        .await
        .unwrap();
    let series = t
        .values("orders", at(), at(), hour(), Blanks::Keep)
        .await
        .unwrap();
    assert_eq!(
        series.values,
        [values!({"count": 3.0, "amount": 12.5, "by": {"eu": 3.0}})]
    );
    store.drop_tables().await.unwrap();
}
