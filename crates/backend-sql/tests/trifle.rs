//! The Trifle layout ([`Layout::Trifle`]) on PostgreSQL (`STATS_TEST_POSTGRES_URL`; `cargo
//! xtask it postgres` starts a server) and on SQLite (files in `STATS_TEST_SQLITE_DIR`, else
//! the system's temporary directory):
//!
//! 1. golden rows: what one `Tracker::track` writes, beside what Trifle 2.6's driver writes for
//!    the same call (its statements, as `Trifle::Stats::Driver::Postgres#inc_query` and
//!    `::Sqlite#inc_query` build them, run on a twin table), both equal to literal JSON;
//! 2. rows written by Trifle's statements read back by `Tracker::values`, and Trifle's
//!    increments on rows this store wrote;
//! 3. the metric and tracker conformance checks, in the Trifle layout.
//!
//! What Trifle 2.6 sends for `Trifle::Stats.track(key: 'orders', at: t, values: {count: 1,
//! amount: 12.5, by: {eu: 1}})` with the granularities `1h` and `1d` and `system_tracking`
//! (the default), from `lib/trifle/stats/driver/{postgres,sqlite}.rb` and `mixins/packer.rb`:
//! per granularity, in one transaction, an upsert of the row `orders::1h::<unix start>`
//! (`joined_identifier: :full`, the default) with the packed values `{"count":1,"amount":12.5,
//! "by.eu":1}`, then one of `__system__key__::1h::<unix start>` with `{"count":1,
//! "keys.orders":1}`. On conflict, PostgreSQL adds each packed path with
//! `jsonb_set(data, '{<path>}', (COALESCE(data->>'<path>', '0')::int + <n>)::text::jsonb)`,
//! SQLite with `json_set(data, '$.<path>', IFNULL(json_extract(data, '$.<path>'), 0) + <n>)`.
#![cfg(all(feature = "postgres", feature = "sqlite"))]

#[allow(unused_macros, unused_imports)]
mod common;

use std::sync::Arc;

use stats_backend_sql::SqlStore;
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{Granularity, Values, values};

/// The instant of the tracked event: 2023-11-14T22:13:20Z.
const AT: i64 = 1_700_000_000;
/// The start of its `1h` bucket.
const HOUR: i64 = 1_699_999_200;
/// The start of its `1d` bucket (UTC).
const DAY: i64 = 1_699_920_000;

fn at() -> Timestamp {
    Timestamp::from_second(AT).unwrap()
}

fn hour() -> Granularity {
    "1h".parse().unwrap()
}

fn event() -> Values {
    values!({"count": 1, "amount": 12.5, "by": {"eu": 1}})
}

/// The tracker of these tests: `1h` and `1d` buckets in UTC, with the system index (Trifle's
/// `system_tracking`).
fn tracker(store: Arc<SqlStore>) -> Tracker {
    Tracker::new(
        store,
        Config::new()
            .granularities(["1h", "1d"])
            .unwrap()
            .system_index(true),
    )
}

/// The rows Trifle 2.6 and this store write for `track("orders", AT, event())`, in key order.
fn expected_after_track() -> Vec<(String, serde_json::Value)> {
    let rows = [
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
    ];
    rows.into_iter()
        .map(|(k, json)| (k, serde_json::from_str(json).unwrap()))
        .collect()
}

fn parsed(rows: Vec<(String, String)>) -> Vec<(String, serde_json::Value)> {
    rows.into_iter()
        .map(|(k, d)| (k, serde_json::from_str(&d).unwrap()))
        .collect()
}

/// A JSON number as Ruby's `to_json` spells it in the statements.
fn ruby(n: &serde_json::Value) -> String {
    n.to_string()
}

mod postgres {
    use std::sync::OnceLock;

    use super::*;

    fn url() -> String {
        common::url("STATS_TEST_POSTGRES_URL", "postgres")
    }

    /// A store in the Trifle layout on a table of its own (`table`) and tables of its own.
    async fn store_on(table: &str) -> Arc<SqlStore> {
        common::trifle_store_at(&url(), table, &common::unique_prefix("trifle")).await
    }

    /// The conformance suite's store: one Trifle table for the process.
    async fn store() -> Arc<SqlStore> {
        static TABLE: OnceLock<String> = OnceLock::new();
        let table = TABLE.get_or_init(|| common::unique_prefix("trifle_suite"));
        store_on(table).await
    }

    stats_core::metric_store_tests!(store);
    stats_core::tracker_tests!(store);

    async fn pool() -> sqlx::PgPool {
        sqlx::PgPool::connect(&url()).await.unwrap()
    }

    async fn rows(pool: &sqlx::PgPool, table: &str) -> Vec<(String, String)> {
        sqlx::query_as(&format!(
            r#"SELECT key, data::text FROM "{table}" ORDER BY key"#
        ))
        .fetch_all(pool)
        .await
        .unwrap()
    }

    /// One upsert as `Trifle::Stats::Driver::Postgres#inc_query` builds it (values inlined in
    /// the SQL text, as the driver does).
    async fn trifle_inc(
        pool: &sqlx::PgPool,
        table: &str,
        key: &str,
        packed: &[(&str, serde_json::Value)],
    ) -> Result<(), sqlx::Error> {
        let json: serde_json::Map<String, serde_json::Value> = packed
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let mut set = format!("to_jsonb({table}.data)");
        for (k, v) in packed {
            set = format!(
                "jsonb_set({set}, '{{{k}}}', (COALESCE({table}.data->>'{k}', '0')::int + {})::text::jsonb)",
                ruby(v)
            );
        }
        // The driver's JSON keeps Ruby's key order; `jsonb` does not, so order is moot here.
        let sql = format!(
            "INSERT INTO {table} (key, data) VALUES ('{key}', '{}') ON CONFLICT (key) DO UPDATE SET data = {set};",
            serde_json::Value::Object(json)
        );
        sqlx::raw_sql(&sql).execute(pool).await.map(|_| ())
    }

    /// What Trifle sends for `track(key: 'orders', at: AT, values: values)` (already packed),
    /// with the granularities `1h` and `1d` and system tracking.
    async fn trifle_track(
        pool: &sqlx::PgPool,
        table: &str,
        packed: &[(&str, serde_json::Value)],
    ) -> Result<(), sqlx::Error> {
        for start in [HOUR.to_string(), DAY.to_string()] {
            let g = if start == HOUR.to_string() {
                "1h"
            } else {
                "1d"
            };
            trifle_inc(pool, table, &format!("orders::{g}::{start}"), packed).await?;
            trifle_inc(
                pool,
                table,
                &format!("__system__key__::{g}::{start}"),
                &[("count", 1.into()), ("keys.orders", 1.into())],
            )
            .await?;
        }
        Ok(())
    }

    fn event_packed() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("count", 1.into()),
            ("amount", serde_json::json!(12.5)),
            ("by.eu", 1.into()),
        ]
    }

    #[tokio::test]
    async fn golden_rows_of_one_track_are_trifles() {
        let ours = common::unique_prefix("trifle_ours");
        let theirs = common::unique_prefix("trifle_theirs");
        let store = store_on(&ours).await;
        let twin = store_on(&theirs).await;
        tracker(store.clone())
            .track("orders", at(), &event())
            .await
            .unwrap();
        let pool = pool().await;
        trifle_track(&pool, &theirs, &event_packed()).await.unwrap();
        let (ours_rows, theirs_rows) = (rows(&pool, &ours).await, rows(&pool, &theirs).await);
        assert_eq!(parsed(ours_rows.clone()), expected_after_track());
        assert_eq!(parsed(theirs_rows.clone()), expected_after_track());
        // `jsonb` normalises the text, so the stored rows are equal byte for byte.
        assert_eq!(ours_rows, theirs_rows);
        store.drop_tables().await.unwrap();
        twin.drop_tables().await.unwrap();
    }

    #[tokio::test]
    async fn rows_written_by_trifle_are_read_by_values() {
        let table = common::unique_prefix("trifle_read");
        let store = store_on(&table).await;
        let pool = pool().await;
        // Twice: the second time Trifle's conflict branch adds. Its `::int` cast refuses a
        // stored float, so Trifle 2.6 cannot add to a float field on PostgreSQL...
        trifle_track(&pool, &table, &event_packed()).await.unwrap();
        let err = trifle_track(&pool, &table, &event_packed())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid input syntax for type integer"),
            "{err}"
        );
        // ... so the second event is integers only.
        trifle_track(&pool, &table, &[("count", 2.into()), ("by.eu", 3.into())])
            .await
            .unwrap();
        let t = tracker(store.clone());
        let series = t
            .values("orders", at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            series.values,
            [values!({"count": 3, "amount": 12.5, "by": {"eu": 4}})]
        );
        let system = t
            .system_values(at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            system.values,
            [values!({"count": 2, "keys": {"orders": 2}})]
        );
        // And numbers as Ruby and `jsonb` spell them: `1.0e+20` (stored as
        // 100000000000000000000), `2.0`, an integer past 2^53.
        sqlx::raw_sql(&format!(
            r#"INSERT INTO {table} (key, data) VALUES ('odd::1h::{HOUR}',
            '{{"big":1.0e+20,"two":2.0,"i":9007199254740993,"n":-7,"x.y.z":0.1}}')"#
        ))
        .execute(&pool)
        .await
        .unwrap();
        let odd = t
            .values("odd", at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            odd.values,
            [
                values!({"big": 1e20, "two": 2.0, "i": 9_007_199_254_740_993_i64, "n": -7,
                "x": {"y": {"z": 0.1}}})
            ]
        );
        store.drop_tables().await.unwrap();
    }

    /// Trifle's upserts and this store's batches on the same new bucket at once: none is
    /// lost (the row is created with `ON CONFLICT DO NOTHING`, then locked, so a Trifle insert
    /// in between is added to, never overwritten), and a stored row that is not ours to read
    /// is refused naming it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_trifle_writers_lose_nothing() {
        const EACH: i64 = 40;
        let table = common::unique_prefix("trifle_race");
        let store = store_on(&table).await;
        let pool = pool().await;
        let t = Arc::new(tracker(store.clone()));
        let ours = {
            let t = Arc::clone(&t);
            tokio::spawn(async move {
                for _ in 0..EACH {
                    t.track("race", at(), &values!({"n": 1})).await.unwrap();
                }
            })
        };
        let theirs = {
            let (pool, table) = (pool.clone(), table.clone());
            tokio::spawn(async move {
                for _ in 0..EACH {
                    for (g, start) in [("1h", HOUR), ("1d", DAY)] {
                        trifle_inc(
                            &pool,
                            &table,
                            &format!("race::{g}::{start}"),
                            &[("n", 1.into())],
                        )
                        .await
                        .unwrap();
                    }
                }
            })
        };
        ours.await.unwrap();
        theirs.await.unwrap();
        for g in [hour(), "1d".parse().unwrap()] {
            let total = t.total("race", at(), at(), g, "n").await.unwrap();
            assert_eq!(total, Some(stats_core::Number::Int(2 * EACH)), "{g}");
        }
        sqlx::raw_sql(&format!(
            r#"INSERT INTO {table} (key, data) VALUES ('text::1h::{HOUR}', '{{"n":"seven"}}')"#
        ))
        .execute(&pool)
        .await
        .unwrap();
        let err = t
            .values("text", at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, stats_core::Error::InvalidValue { .. })
                && err.to_string().contains(&format!("text::1h::{HOUR}")),
            "{err}"
        );
        store.drop_tables().await.unwrap();
    }

    #[tokio::test]
    async fn trifle_adds_to_rows_written_here() {
        let table = common::unique_prefix("trifle_mixed");
        let store = store_on(&table).await;
        let t = tracker(store.clone());
        t.track("orders", at(), &values!({"count": 1, "by": {"eu": 1}}))
            .await
            .unwrap();
        let pool = pool().await;
        trifle_track(&pool, &table, &[("count", 1.into()), ("by.eu", 5.into())])
            .await
            .unwrap();
        t.track("orders", at(), &values!({"count": 1, "amount": 0.5}))
            .await
            .unwrap();
        let series = t
            .values("orders", at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            series.values,
            [values!({"count": 3, "amount": 0.5, "by": {"eu": 6}})]
        );
        let system = t
            .system_values(at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            system.values,
            [values!({"count": 3, "keys": {"orders": 3}})]
        );
        store.drop_tables().await.unwrap();
    }
}

mod sqlite {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use super::*;

    fn dir() -> &'static PathBuf {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(|| {
            let base = std::env::var_os("STATS_TEST_SQLITE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let dir = base.join(stats_core::testkit::unique("trifle"));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        })
    }

    fn new_file() -> String {
        let path = dir().join(format!("{}.db", stats_core::testkit::unique("db")));
        format!("sqlite://{}", path.display())
    }

    async fn store_at(url: &str, table: &str) -> Arc<SqlStore> {
        common::trifle_store_at(url, table, "stats").await
    }

    /// Every conformance test gets a database file of its own, Trifle's default table name.
    async fn store() -> Arc<SqlStore> {
        store_at(&new_file(), "trifle_stats").await
    }

    stats_core::metric_store_tests!(store);
    stats_core::tracker_tests!(store);

    async fn pool(url: &str) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(url).await.unwrap()
    }

    async fn rows(pool: &sqlx::SqlitePool, table: &str) -> Vec<(String, String)> {
        sqlx::query_as(&format!(r#"SELECT key, data FROM "{table}" ORDER BY key"#))
            .fetch_all(pool)
            .await
            .unwrap()
    }

    /// One upsert as `Trifle::Stats::Driver::Sqlite#inc_query` builds it: the identifier and
    /// the packed JSON bound, the numbers inlined, the paths unquoted in `$.<path>`.
    async fn trifle_inc(
        pool: &sqlx::SqlitePool,
        table: &str,
        key: &str,
        packed: &[(&str, serde_json::Value)],
    ) {
        let mut json = String::from("{");
        for (i, (k, v)) in packed.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("{}:{}", serde_json::Value::from(*k), ruby(v)));
        }
        json.push('}');
        let mut set = String::from("data");
        for (k, v) in packed {
            set = format!(
                "json_set({set}, '$.{k}', IFNULL(json_extract(data, '$.{k}'), 0) + {})",
                ruby(v)
            );
        }
        sqlx::query(&format!(
            "INSERT INTO {table} (key, data) VALUES (?, json(?)) ON CONFLICT (key) DO UPDATE SET data = {set};"
        ))
        .bind(key)
        .bind(json)
        .execute(pool)
        .await
        .unwrap();
    }

    async fn trifle_track(
        pool: &sqlx::SqlitePool,
        table: &str,
        packed: &[(&str, serde_json::Value)],
    ) {
        for (g, start) in [("1h", HOUR), ("1d", DAY)] {
            trifle_inc(pool, table, &format!("orders::{g}::{start}"), packed).await;
            trifle_inc(
                pool,
                table,
                &format!("__system__key__::{g}::{start}"),
                &[("count", 1.into()), ("keys.orders", 1.into())],
            )
            .await;
        }
    }

    #[tokio::test]
    async fn golden_rows_of_one_track_are_trifles() {
        let url = new_file();
        let store = store_at(&url, "trifle_stats").await;
        let twin = store_at(&url, "trifle_twin").await;
        tracker(store.clone())
            .track("orders", at(), &event())
            .await
            .unwrap();
        let pool = pool(&url).await;
        trifle_track(
            &pool,
            "trifle_twin",
            &[
                ("count", 1.into()),
                ("amount", serde_json::json!(12.5)),
                ("by.eu", 1.into()),
            ],
        )
        .await;
        let ours = rows(&pool, "trifle_stats").await;
        let theirs = rows(&pool, "trifle_twin").await;
        assert_eq!(parsed(ours.clone()), expected_after_track());
        assert_eq!(parsed(theirs.clone()), expected_after_track());
        // The text differs only in key order (ours sorted by path, Trifle's as given).
        assert_eq!(
            ours[3].1, r#"{"amount":12.5,"by.eu":1,"count":1}"#,
            "{ours:?}"
        );
        assert_eq!(theirs[3].1, r#"{"count":1,"amount":12.5,"by.eu":1}"#);
        store.drop_tables().await.unwrap();
        twin.drop_tables().await.unwrap();
    }

    #[tokio::test]
    async fn rows_written_by_trifle_are_read_as_trifle_reads_them() {
        let url = new_file();
        let store = store_at(&url, "trifle_stats").await;
        let pool = pool(&url).await;
        let packed = [
            ("count", 1.into()),
            ("amount", serde_json::json!(12.5)),
            ("by.eu", 1.into()),
        ];
        trifle_track(&pool, "trifle_stats", &packed).await;
        trifle_track(&pool, "trifle_stats", &packed).await;
        trifle_track(&pool, "trifle_stats", &packed).await;
        // Trifle's conflict branch writes `$.by.eu`, a nested path, beside the inserted
        // top-level "by.eu"; `Packer.unpack` lets the later, nested entry win: it counts from 0
        // after the first event.
        let stored = rows(&pool, "trifle_stats").await;
        assert_eq!(
            stored[3].1,
            r#"{"count":3,"amount":37.5,"by.eu":1,"by":{"eu":2}}"#
        );
        assert_eq!(
            stored[1].1,
            r#"{"count":3,"keys.orders":1,"keys":{"orders":2}}"#
        );
        let t = tracker(store.clone());
        let series = t
            .values("orders", at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            series.values,
            [values!({"count": 3, "amount": 37.5, "by": {"eu": 2}})]
        );
        // A write here reads the row as Trifle does and writes it back packed: the values
        // stay what Trifle read, plus the event.
        t.track("orders", at(), &event()).await.unwrap();
        let series = t
            .values("orders", at(), at(), hour(), Blanks::Keep)
            .await
            .unwrap();
        assert_eq!(
            series.values,
            [values!({"count": 4, "amount": 50.0, "by": {"eu": 3}})]
        );
        assert_eq!(
            rows(&pool, "trifle_stats").await[3].1,
            r#"{"amount":50.0,"by.eu":3,"count":4}"#
        );
        store.drop_tables().await.unwrap();
    }
}
