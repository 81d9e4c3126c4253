//! The conformance suite, the tracker checks and the SQL checks against SQLite: database files
//! in `STATS_TEST_SQLITE_DIR` (`cargo xtask it sqlite` sets it to a temporary directory), else
//! in the system's temporary directory.
#![cfg(feature = "sqlite")]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use sqlx::Row as _;
use stats_backend_sql::{SqlConfig, SqlStore};
use stats_core::{Batch, CounterStore, Key, MetricStore, Number, Store, values};

/// This process's directory of database files.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("STATS_TEST_SQLITE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(stats_core::testkit::unique("sqlite"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        dir
    })
}

/// A URL of a new database file.
fn new_file() -> String {
    let path = dir().join(format!("{}.db", stats_core::testkit::unique("db")));
    format!("sqlite://{}", path.display())
}

fn config() -> SqlConfig {
    SqlConfig::from_url(&new_file()).expect("URL")
}

/// Every conformance test gets a database file of its own.
async fn store() -> Arc<SqlStore> {
    common::store_at(config(), "stats").await
}

common::sql_checks!(config: config, store: store);

/// What was written survives closing the store and opening the file again.
#[tokio::test]
async fn data_survives_reopening_the_file() {
    let url = new_file();
    let key = Key::bucket("orders", "1h".parse().unwrap(), 3600).unwrap();
    {
        let s = SqlStore::open(&url).await.unwrap();
        let mut b = Batch::new();
        b.inc([key.clone()], &values!({"count": 2, "by": {"eu": 1.5}}))
            .unwrap();
        s.apply(&b).await.unwrap();
        s.set("jobs", "done", 7).await.unwrap();
        s.close().await;
    }
    let s = SqlStore::open(&url).await.unwrap();
    assert!(s.capabilities().persistent);
    assert_eq!(
        s.read(&[key]).await.unwrap(),
        vec![values!({"count": 2, "by": {"eu": 1.5}})]
    );
    assert_eq!(s.get("jobs", "done").await.unwrap(), Some(7));
}

/// `sqlite::memory:` is one database for the life of the store (not one per connection).
#[tokio::test]
async fn memory_databases_keep_their_data_across_calls() {
    let s = SqlStore::open("sqlite::memory:").await.unwrap();
    assert!(!s.capabilities().persistent);
    for _ in 0..3 {
        s.inc("ns", "k", 1, 0).await.unwrap();
    }
    assert_eq!(s.get("ns", "k").await.unwrap(), Some(3));
}

/// SQLite turns an overflowing integer sum into a float on its own; the store refuses it
/// instead, at both ends of the range, and writes nothing.
#[tokio::test]
async fn integer_overflow_is_refused_not_turned_into_a_float() {
    let s = store().await;
    let key = Key::bucket("o", "1h".parse().unwrap(), 0).unwrap();
    let mut b = Batch::new();
    b.set(
        [key.clone()],
        &values!({"max": i64::MAX, "min": i64::MIN, "f": f64::MAX}),
    )
    .unwrap();
    s.apply(&b).await.unwrap();
    for (field, step) in [("max", values!({"max": 1})), ("min", values!({"min": -1}))] {
        let mut b = Batch::new();
        b.inc([key.clone()], &step).unwrap();
        let err = s.apply(&b).await.unwrap_err();
        assert!(
            matches!(err, stats_core::Error::Overflow { .. }),
            "{field}: {err}"
        );
    }
    let doc = s.read(&[key]).await.unwrap().remove(0);
    assert_eq!(doc.number_at("max"), Some(Number::Int(i64::MAX)));
    assert_eq!(doc.number_at("min"), Some(Number::Int(i64::MIN)));
    s.set("c", "min", i64::MIN).await.unwrap();
    assert!(matches!(
        s.inc("c", "min", -1, 0).await,
        Err(stats_core::Error::Overflow { .. })
    ));
    assert_eq!(s.get("c", "min").await.unwrap(), Some(i64::MIN));
}

/// The file is in WAL mode, with the tables as documented.
#[tokio::test]
async fn layout_is_as_documented() {
    let url = new_file();
    let s = SqlStore::open(&url).await.unwrap();
    let key = Key::bucket("orders", "1h".parse().unwrap(), 3600).unwrap();
    let mut batch = Batch::new();
    batch
        .inc([key.clone()], &values!({"count": 2, "by": {"eu": 1.5}}))
        .unwrap();
    batch
        .set([Key::status("orders").unwrap()], &values!({"state": 1}))
        .unwrap();
    s.apply(&batch).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let rows = sqlx::query(
        "SELECT metric, granularity, at, path, int_value, float_value FROM stats_buckets \
         ORDER BY granularity, path",
    )
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
}

/// A file that cannot be opened (its directory does not exist) is an error naming the path.
#[tokio::test]
async fn unopenable_file_names_its_path() {
    let path = dir()
        .join("no-such-directory")
        .join(stats_core::testkit::unique("missing"))
        .join("stats.db");
    let config = SqlConfig::from_url(&format!("sqlite://{}", path.display())).unwrap();
    let err = SqlStore::connect(config).await.unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "the path must be named: {shown}"
    );
    assert!(shown.contains("unable to open database file"), "{shown}");
    assert!(!err.is_retryable(), "{err:?}");
}

/// A batch's id is a row of `stats_batches`; ids older than the 24 h window are deleted by the
/// first apply with an id of a store (then once a minute), after which the same id applies
/// again; ids within the window are kept.
#[tokio::test]
async fn batch_ids_past_the_window_are_deleted() {
    use stats_core::BatchId;
    let url = new_file();
    let s = SqlStore::open(&url).await.unwrap();
    let key = Key::bucket("ids", "1h".parse().unwrap(), 0).unwrap();
    let mut plain = Batch::new();
    plain.inc([key.clone()], &values!({"n": 1})).unwrap();
    let (old, recent) = (BatchId::new(), BatchId::new());
    s.apply(&plain.clone().with_id(old)).await.unwrap();
    s.apply(&plain.clone().with_id(recent)).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM stats_batches")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 2);
    // The first id was applied 24 h and 1 s ago, the second 23 h 59 min ago.
    for (id, age) in [(old, 86_401), (recent, 86_340)] {
        sqlx::query("UPDATE stats_batches SET applied_at = applied_at - ?1 WHERE id = ?2")
            .bind(age)
            .bind(id.to_bytes().to_vec())
            .execute(&pool)
            .await
            .unwrap();
    }
    // A new store prunes at its first apply with an id.
    let s = SqlStore::open(&url).await.unwrap();
    s.apply(&plain.clone().with_id(BatchId::new()))
        .await
        .unwrap();
    assert_eq!(count().await, 2, "the old id is gone, a new one is added");
    s.apply(&plain.clone().with_id(recent)).await.unwrap();
    assert_eq!(
        s.read(std::slice::from_ref(&key)).await.unwrap()[0],
        values!({"n": 3})
    );
    s.apply(&plain.clone().with_id(old)).await.unwrap();
    assert_eq!(s.read(&[key]).await.unwrap()[0], values!({"n": 4}));
}
