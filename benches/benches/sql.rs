//! The SQL store beside raw sqlx on the same database, in the same run.
//!
//! Needs `STATS_BENCH_POSTGRES_URL` (`cargo xtask bench sql` starts a throwaway PostgreSQL and
//! sets it); SQLite runs on a file in the system's temporary directory.
//!
//! - `sql/<db>-write`, case `batched-field-increments`: ours applies batches of 1,000
//!   bucket-field increments (10 buckets x 100 fields, one metric per task); raw runs
//!   100-row `INSERT INTO t (k, v) VALUES ... ON CONFLICT (k) DO UPDATE SET v = t.v + EXCLUDED.v`
//!   statements into a plain `(k text primary key, v bigint)` table (1,000 keys per task). Both
//!   from 4 concurrent tasks on a pool of 4 connections, counted in field writes (rows) per
//!   second.
//! - `sql/<db>-fresh`, case `new-bucket-fields`: as the write case, but every batch writes 10
//!   buckets no batch wrote before (every row an insert); raw upserts 1,000 new keys per batch
//!   in 100-row statements. (A run with an extra index on (granularity, start), for retention
//!   sweeps, measured what it would cost every new row: see the SQL crate's docs, "Retention and
//!   removal".)
//! - `sql/<db>-range`, case `30-days-at-1h`: ours reads 720 hourly buckets of 4 leaves each with
//!   `range`; raw runs the same indexed `SELECT` with sqlx and collects the rows, without
//!   building documents. Counted in buckets per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sqlx::{PgPool, QueryBuilder, SqlitePool};
use stats_backend_sql::{SqlConfig, SqlStore};
use stats_core::{Batch, Granularity, Key, MetricStore, Values, values};

const BUCKETS: i64 = 10;
const FIELDS: usize = 100;
const BATCH: u64 = (BUCKETS as u64) * (FIELDS as u64);
const RAW_ROWS: usize = 100;
const TASKS: u64 = 4;
const RANGE_BUCKETS: i64 = 720;
const RANGE_START: i64 = 1_714_521_600;

fn postgres_url() -> String {
    stats_benches::server_url("STATS_BENCH_POSTGRES_URL", "sql")
}

fn runtime() -> tokio::runtime::Runtime {
    stats_benches::runtime()
}

fn hour() -> Granularity {
    "1h".parse().expect("granularity")
}

/// The raw side: a pool of the same database, without the store.
#[derive(Clone)]
enum Raw {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Raw {
    async fn execute(&self, sql: &str) {
        match self {
            Raw::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One 100-row upsert of `keys`, adding 1 to each.
    async fn upsert(&self, keys: &[String]) {
        const HEAD: &str = "INSERT INTO bench_raw AS t (k, v) ";
        const TAIL: &str = " ON CONFLICT (k) DO UPDATE SET v = t.v + EXCLUDED.v";
        match self {
            Raw::Postgres(p) => {
                let mut q = QueryBuilder::new(HEAD);
                q.push_values(keys, |mut b, k| {
                    b.push_bind(k.as_str()).push_bind(1_i64);
                });
                q.push(TAIL);
                q.build().execute(p).await.map(drop)
            }
            Raw::Sqlite(p) => {
                let mut q = QueryBuilder::new(HEAD);
                q.push_values(keys, |mut b, k| {
                    b.push_bind(k.as_str()).push_bind(1_i64);
                });
                q.push(TAIL);
                q.build().execute(p).await.map(drop)
            }
        }
        .expect("raw upsert");
    }

    /// The rows of one range, as the store reads them, collected without building documents.
    async fn range(&self, table: &str, metric: &str) -> usize {
        let to = RANGE_START + (RANGE_BUCKETS - 1) * 3600;
        type Rows = Vec<(i64, String, Option<i64>, Option<f64>)>;
        let rows: Rows = match self {
            Raw::Postgres(p) => {
                let sql = format!(
                    "SELECT at, path, int_value, float_value FROM {table} WHERE metric = $1 \
                     AND granularity = $2 AND at BETWEEN $3 AND $4 \
                     AND (int_value IS NOT NULL OR float_value IS NOT NULL)"
                );
                sqlx::query_as(&sql)
                    .bind(metric)
                    .bind("1h")
                    .bind(RANGE_START)
                    .bind(to)
                    .fetch_all(p)
                    .await
            }
            Raw::Sqlite(p) => {
                let sql = format!(
                    "SELECT at, path, int_value, float_value FROM {table} WHERE metric = ?1 \
                     AND granularity = ?2 AND at BETWEEN ?3 AND ?4 \
                     AND (int_value IS NOT NULL OR float_value IS NOT NULL)"
                );
                sqlx::query_as(&sql)
                    .bind(metric)
                    .bind("1h")
                    .bind(RANGE_START)
                    .bind(to)
                    .fetch_all(p)
                    .await
            }
        }
        .expect("raw range");
        rows.len()
    }
}

/// Runs `work(task, n)` on `TASKS` tasks, splitting `iters` between them, and returns the
/// wall time.
fn on_tasks<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, work: F) -> Duration
where
    F: Fn(u64, u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let futures: Vec<Fut> = (0..TASKS)
            .map(|t| work(t, iters / TASKS + u64::from(t < iters % TASKS)))
            .collect();
        let start = Instant::now();
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        for h in handles {
            h.await.expect("task");
        }
        start.elapsed()
    })
}

fn bench_database(c: &mut Criterion, db: &str, url: &str, raw: Raw, rt: &tokio::runtime::Runtime) {
    let store = Arc::new(rt.block_on(async {
        let config = SqlConfig::from_url(url)
            .expect("url")
            .table_prefix("bench")
            .expect("prefix")
            .max_connections(TASKS as u32);
        let store = SqlStore::connect(config).await.expect("connect");
        store.drop_tables().await.expect("drop");
        store.setup().await.expect("setup");
        raw.execute("DROP TABLE IF EXISTS bench_raw").await;
        raw.execute("CREATE TABLE bench_raw (k text PRIMARY KEY, v bigint NOT NULL)")
            .await;
        store
    }));

    // Writes.
    let mut doc = Values::new();
    for f in 0..FIELDS {
        doc.insert(format!("field-{f:03}"), 1).expect("field");
    }
    let batches: Vec<Arc<Batch>> = (0..TASKS)
        .map(|t| {
            let keys: Vec<Key> = (0..BUCKETS)
                .map(|i| Key::bucket(&format!("write-{t}"), hour(), i * 3600).expect("key"))
                .collect();
            let mut batch = Batch::new();
            batch.inc(keys, &doc).expect("batch");
            assert_eq!(batch.len() as u64, BATCH);
            Arc::new(batch)
        })
        .collect();
    let raw_keys: Vec<Arc<Vec<String>>> = (0..TASKS)
        .map(|t| Arc::new(stats_benches::keys_32(t as u32, BATCH as usize)))
        .collect();

    let mut group = c.benchmark_group(format!("sql/{db}-write"));
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(BenchmarkId::new("ours", "batched-field-increments"), |b| {
        b.iter_custom(|iters| {
            on_tasks(rt, iters, |t, n| {
                let (store, batch) = (Arc::clone(&store), Arc::clone(&batches[t as usize]));
                async move {
                    for _ in 0..n {
                        store.apply(&batch).await.expect("apply");
                    }
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw", "batched-field-increments"), |b| {
        b.iter_custom(|iters| {
            on_tasks(rt, iters, |t, n| {
                let (raw, keys) = (raw.clone(), Arc::clone(&raw_keys[t as usize]));
                async move {
                    for _ in 0..n {
                        for chunk in keys.chunks(RAW_ROWS) {
                            raw.upsert(chunk).await;
                        }
                    }
                }
            })
        })
    });
    group.finish();

    // Writes into new buckets: every row an insert.
    let fresh = |t: u64, n: u64| {
        let keys: Vec<Key> = (0..BUCKETS)
            .map(|i| {
                let start = ((n * BUCKETS as u64) as i64 + i) * 3600;
                Key::bucket(&format!("fresh-{t}"), hour(), start).expect("key")
            })
            .collect();
        let mut batch = Batch::new();
        batch.inc(keys, &doc).expect("batch");
        batch
    };
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ours_fresh = |b: &mut criterion::Bencher<'_>| {
        b.iter_custom(|iters| {
            on_tasks(rt, iters, |t, n| {
                let (store, next) = (Arc::clone(&store), Arc::clone(&next));
                let batches: Vec<Batch> = (0..n)
                    .map(|_| fresh(t, next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
                    .collect();
                async move {
                    for batch in &batches {
                        store.apply(batch).await.expect("apply");
                    }
                }
            })
        })
    };
    // Empties the buckets table between measurements (TRUNCATE leaves no dead rows behind).
    let clear = match raw {
        Raw::Postgres(_) => "TRUNCATE bench_buckets",
        Raw::Sqlite(_) => "DELETE FROM bench_buckets",
    };
    let mut group = c.benchmark_group(format!("sql/{db}-fresh"));
    group.throughput(Throughput::Elements(BATCH));
    rt.block_on(raw.execute(clear));
    group.bench_function(BenchmarkId::new("ours", "new-bucket-fields"), ours_fresh);
    let raw_next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    group.bench_function(BenchmarkId::new("raw", "new-bucket-fields"), |b| {
        b.iter_custom(|iters| {
            on_tasks(rt, iters, |_, n| {
                let (raw, raw_next) = (raw.clone(), Arc::clone(&raw_next));
                async move {
                    for _ in 0..n {
                        let at = raw_next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let keys: Vec<String> =
                            (0..BATCH).map(|i| format!("fresh-{at}-{i}")).collect();
                        for chunk in keys.chunks(RAW_ROWS) {
                            raw.upsert(chunk).await;
                        }
                    }
                }
            })
        })
    });
    group.finish();
    rt.block_on(raw.execute(clear));

    // Range reads.
    let starts: Vec<i64> = (0..RANGE_BUCKETS).map(|i| RANGE_START + i * 3600).collect();
    rt.block_on(async {
        let mut batch = Batch::new();
        let keys: Vec<Key> = starts
            .iter()
            .map(|&s| Key::bucket("range", hour(), s).expect("key"))
            .collect();
        batch
            .inc(
                keys,
                &values!({"count": 3, "amount": 12.5, "by": {"eu": 1, "us": 2}}),
            )
            .expect("batch");
        store.apply(&batch).await.expect("fill");
    });
    let mut group = c.benchmark_group(format!("sql/{db}-range"));
    group.throughput(Throughput::Elements(RANGE_BUCKETS as u64));
    group.bench_function(BenchmarkId::new("ours", "30-days-at-1h"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let docs = store.range("range", hour(), &starts).await.expect("range");
                    assert_eq!(docs.len(), RANGE_BUCKETS as usize);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw", "30-days-at-1h"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let rows = raw.range("bench_buckets", "range").await;
                    assert_eq!(rows, 4 * RANGE_BUCKETS as usize);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(async {
        raw.execute("DROP TABLE IF EXISTS bench_raw").await;
        store.drop_tables().await.expect("drop");
        store.close().await;
    });
}

fn postgres(c: &mut Criterion) {
    let rt = runtime();
    let url = postgres_url();
    let pool = rt.block_on(async {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(TASKS as u32)
            .connect(&url)
            .await
            .expect("connect")
    });
    bench_database(c, "postgres", &url, Raw::Postgres(pool), &rt);
}

fn sqlite(c: &mut Criterion) {
    let rt = runtime();
    let path = std::env::temp_dir().join(format!("stats-bench-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let pool = rt.block_on(async {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("url")
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(TASKS as u32)
            .connect_with(options)
            .await
            .expect("connect")
    });
    bench_database(c, "sqlite", &url, Raw::Sqlite(pool), &rt);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion().sample_size(10).measurement_time(Duration::from_secs(4));
    targets = postgres, sqlite
}
criterion_main!(benches);
