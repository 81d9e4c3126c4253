//! SQLite: the SQL and the calls that run it.
//!
//! - Tables are `STRICT` (a column keeps its type) and `WITHOUT ROWID` (rows live in primary
//!   key order, so a range read is one contiguous scan).
//! - The database runs in WAL mode (readers never wait for the writer) with
//!   `synchronous = NORMAL` (a commit survives a crash of the process; the last commits before
//!   a power loss may not) and a busy timeout (a writer waits that long for the write lock).
//!   Transactions begin with `BEGIN IMMEDIATE`, taking the write lock first, so two writers
//!   never deadlock on a lock upgrade.
//! - SQLite turns an integer sum that leaves the `i64` range into a float instead of failing,
//!   and a float sum past the largest double into infinity. Both sums are therefore guarded:
//!   when they would leave the range, the statement evaluates `abs(i64::MIN)`, which SQLite
//!   refuses with "integer overflow", and the transaction rolls back.

use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, QueryBuilder, Row as _, Sqlite as Lite};

use super::{DOCS_PER_QUERY, DocRow, RangeRow, Side, Spelling, VALUES_ROWS};
use crate::config::SqlConfig;
use crate::plan::{DocId, Plan, Row};

const SPELLING: Spelling = Spelling {
    double: "REAL",
    bigint: "INTEGER",
    two_63: "9223372036854775808.0",
};

/// The current time in unix milliseconds: SQLite's `'now'`, the clock of the machine the
/// application runs on, fixed for the duration of one statement.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// `abs(i64::MIN)`, which SQLite refuses with "integer overflow". It mentions a column (`op`,
/// never `NULL`) so that it is evaluated only where it stands, never ahead as a constant.
fn raise(column: &str) -> String {
    format!("abs({column} * 0 - 9223372036854775807 - 1)")
}

/// `a + b` of two integers, or the overflow error when the sum leaves the `i64` range.
fn checked_int_sum(a: &str, b: &str, raise: &str) -> String {
    format!(
        "CASE WHEN ({b} > 0 AND {a} > 9223372036854775807 - {b}) \
         OR ({b} < 0 AND {a} < -9223372036854775807 - 1 - {b}) \
         THEN {raise} ELSE {a} + {b} END"
    )
}

struct Sql {
    setup: Vec<String>,
    drop: Vec<String>,
    upsert_head: String,
    upsert_tail: String,
    read_head: String,
    range: String,
    remove_head: String,
    metric_count: String,
    metric_delete: String,
    metrics: String,
    purge_count_head: String,
    purge_count_tail: String,
    purge_delete_head: String,
    counter_inc: String,
    counter_add: String,
    counter_get: String,
    counter_get_all: String,
    counter_set: String,
    counter_delete: String,
    counter_delete_namespace: String,
    counter_swap: String,
    counter_create: String,
    counter_info: String,
    throttle_acquire: String,
    throttle_purge: String,
    batch_insert: String,
    batch_prune: String,
}

impl Sql {
    fn new(config: &SqlConfig) -> Self {
        let tables = config.tables();
        let (buckets, counters, throttles) =
            (tables.buckets(), tables.counters(), tables.throttles());
        let batches = tables.batches();
        let t = Side {
            int: "t.int_value",
            float: "t.float_value",
        };
        let x = Side {
            int: "excluded.int_value",
            float: "excluded.float_value",
        };
        let overflow = raise("excluded.op");
        let decision = SPELLING.decision(t, x, "excluded.op");
        let float_sum = SPELLING.float_sum(t, x);
        let (new_int, new_float) = SPELLING.new_numbers(
            &format!("({decision})"),
            t,
            x,
            &checked_int_sum("t.int_value", "excluded.int_value", &overflow),
            &format!(
                "CASE WHEN abs({float_sum}) <= 1.7976931348623157e308 \
                 THEN {float_sum} ELSE {overflow} END"
            ),
        );
        let counter_sum = checked_int_sum("t.value", "?4", &raise("t.value"));
        Sql {
            setup: vec![
                format!(
                    r#"CREATE TABLE IF NOT EXISTS "{buckets}" (
                        metric TEXT NOT NULL,
                        granularity TEXT NOT NULL,
                        at INTEGER NOT NULL,
                        path TEXT NOT NULL,
                        op INTEGER NOT NULL,
                        int_value INTEGER,
                        float_value REAL,
                        CONSTRAINT "{buckets}_one_number" CHECK (int_value IS NULL OR float_value IS NULL),
                        PRIMARY KEY (metric, granularity, at, path)
                    ) WITHOUT ROWID, STRICT"#
                ),
                format!(
                    r#"CREATE TABLE IF NOT EXISTS "{counters}" (
                        namespace TEXT NOT NULL,
                        counter_key TEXT NOT NULL,
                        value INTEGER NOT NULL,
                        PRIMARY KEY (namespace, counter_key)
                    ) WITHOUT ROWID, STRICT"#
                ),
                format!(
                    r#"CREATE TABLE IF NOT EXISTS "{throttles}" (
                        throttle_key TEXT NOT NULL PRIMARY KEY,
                        expires_at INTEGER NOT NULL
                    ) WITHOUT ROWID, STRICT"#
                ),
                format!(
                    r#"CREATE INDEX IF NOT EXISTS "{throttles}_expires_at" ON "{throttles}" (expires_at)"#
                ),
                format!(
                    r#"CREATE TABLE IF NOT EXISTS "{batches}" (
                        id BLOB NOT NULL PRIMARY KEY,
                        applied_at INTEGER NOT NULL
                    ) WITHOUT ROWID, STRICT"#
                ),
                format!(
                    r#"CREATE INDEX IF NOT EXISTS "{batches}_applied_at" ON "{batches}" (applied_at)"#
                ),
            ],
            drop: vec![
                format!(r#"DROP TABLE IF EXISTS "{batches}""#),
                format!(r#"DROP TABLE IF EXISTS "{buckets}""#),
                format!(r#"DROP TABLE IF EXISTS "{counters}""#),
                format!(r#"DROP TABLE IF EXISTS "{throttles}""#),
            ],
            upsert_head: format!(
                r#"INSERT INTO "{buckets}" AS t (metric, granularity, at, path, op, int_value, float_value) "#
            ),
            upsert_tail: format!(
                " ON CONFLICT (metric, granularity, at, path) DO UPDATE SET \
                 op = excluded.op, int_value = {new_int}, float_value = {new_float} \
                 WHERE NOT (excluded.op = 0 AND t.int_value IS NULL AND t.float_value IS NULL)"
            ),
            read_head: format!(
                r#"SELECT metric, granularity, at, path, int_value, float_value FROM "{buckets}"
                WHERE (int_value IS NOT NULL OR float_value IS NOT NULL) AND ("#
            ),
            range: format!(
                r#"SELECT at, path, int_value, float_value FROM "{buckets}"
                WHERE metric = ?1 AND granularity = ?2 AND at BETWEEN ?3 AND ?4
                AND (int_value IS NOT NULL OR float_value IS NOT NULL)"#
            ),
            remove_head: format!(r#"DELETE FROM "{buckets}" WHERE "#),
            metric_count: format!(
                r#"SELECT COUNT(*) FROM (SELECT DISTINCT granularity, at FROM "{buckets}" WHERE metric = ?1)"#
            ),
            metric_delete: format!(r#"DELETE FROM "{buckets}" WHERE metric = ?1"#),
            metrics: super::loose_scan(&format!(r#""{buckets}""#)),
            purge_count_head: format!(
                r#"SELECT COUNT(*) FROM (SELECT DISTINCT metric, at FROM "{buckets}" WHERE granularity = "#
            ),
            purge_count_tail: ")".into(),
            purge_delete_head: format!(r#"DELETE FROM "{buckets}" WHERE granularity = "#),
            counter_inc: format!(
                r#"INSERT INTO "{counters}" AS t (namespace, counter_key, value) VALUES (?1, ?2, ?3)
                ON CONFLICT (namespace, counter_key) DO UPDATE SET value = {counter_sum}
                RETURNING value"#
            ),
            counter_add: format!(
                r#"UPDATE "{counters}" AS t SET value = {counter_sum}
                WHERE namespace = ?1 AND counter_key = ?2 RETURNING value"#
            ),
            counter_get: format!(
                r#"SELECT value FROM "{counters}" WHERE namespace = ?1 AND counter_key = ?2"#
            ),
            counter_get_all: format!(
                r#"SELECT counter_key, value FROM "{counters}" WHERE namespace = ?1"#
            ),
            counter_set: format!(
                r#"INSERT INTO "{counters}" (namespace, counter_key, value) VALUES (?1, ?2, ?3)
                ON CONFLICT (namespace, counter_key) DO UPDATE SET value = excluded.value"#
            ),
            counter_delete: format!(
                r#"DELETE FROM "{counters}" WHERE namespace = ?1 AND counter_key = ?2"#
            ),
            counter_delete_namespace: format!(r#"DELETE FROM "{counters}" WHERE namespace = ?1"#),
            counter_swap: format!(
                r#"UPDATE "{counters}" SET value = ?4
                WHERE namespace = ?1 AND counter_key = ?2 AND value = ?3"#
            ),
            counter_create: format!(
                r#"INSERT INTO "{counters}" (namespace, counter_key, value) VALUES (?1, ?2, ?3)
                ON CONFLICT (namespace, counter_key) DO NOTHING"#
            ),
            counter_info: format!(
                r#"SELECT namespace, COUNT(*) FROM "{counters}" GROUP BY namespace"#
            ),
            throttle_acquire: format!(
                r#"INSERT INTO "{throttles}" AS t (throttle_key, expires_at) VALUES (?1, {NOW_MS} + ?2)
                ON CONFLICT (throttle_key) DO UPDATE SET expires_at = excluded.expires_at
                WHERE t.expires_at <= {NOW_MS}"#
            ),
            batch_insert: format!(
                r#"INSERT INTO "{batches}" (id, applied_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING"#
            ),
            batch_prune: format!(r#"DELETE FROM "{batches}" WHERE applied_at < ?1"#),
            throttle_purge: format!(r#"DELETE FROM "{throttles}" WHERE expires_at <= {NOW_MS}"#),
        }
    }
}

/// A SQLite store's pool and statements.
pub(crate) struct Sqlite {
    pool: SqlitePool,
    sql: Sql,
}

type R<T> = Result<T, sqlx::Error>;

impl Sqlite {
    pub(crate) async fn connect(config: &SqlConfig) -> R<Self> {
        let options = SqliteConnectOptions::from_str(&config.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(config.busy_timeout);
        if !config.is_sqlite_memory() {
            super::probe(&options, config.acquire_timeout).await?;
        }
        let mut pool = SqlitePoolOptions::new().acquire_timeout(config.acquire_timeout);
        pool = if config.is_sqlite_memory() {
            // Every connection to `:memory:` would open a database of its own; one connection
            // held for the life of the pool keeps the one database alive.
            pool.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            pool.max_connections(config.max_connections)
                .min_connections(config.min_connections)
        };
        let mut sql = Sql::new(config);
        let (setup, drop) = crate::trifle::ddl(config);
        sql.setup.extend(setup);
        sql.drop.extend(drop);
        Ok(Sqlite {
            pool: pool.connect_with(options).await?,
            sql,
        })
    }

    /// The pool (for the Trifle layout's statements, [`crate::trifle`]).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn setup(&self) -> R<()> {
        self.run_in_transaction(&self.sql.setup).await
    }

    pub(crate) async fn drop_tables(&self) -> R<()> {
        self.run_in_transaction(&self.sql.drop).await
    }

    /// Runs DDL `statements` in one transaction.
    async fn run_in_transaction(&self, statements: &[String]) -> R<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for statement in statements {
            tx.execute(statement.as_str()).await?;
        }
        tx.commit().await
    }

    pub(crate) async fn remove(&self, docs: &[DocId<'_>]) -> R<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in docs.chunks(DOCS_PER_QUERY) {
            let mut q = QueryBuilder::<Lite>::new(&self.sql.remove_head);
            Self::push_docs(&mut q, chunk);
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub(crate) async fn counter_inc(
        &self,
        ns: &str,
        key: &str,
        step: i64,
        first: Option<i64>,
    ) -> R<Option<i64>> {
        match first {
            Some(first) => sqlx::query_scalar(&self.sql.counter_inc)
                .bind(ns)
                .bind(key)
                .bind(first)
                .bind(step)
                .fetch_one(&self.pool)
                .await
                .map(Some),
            None => {
                // ?3 is unused here; binding it keeps the numbering of counter_sum.
                sqlx::query_scalar(&self.sql.counter_add)
                    .bind(ns)
                    .bind(key)
                    .bind(0_i64)
                    .bind(step)
                    .fetch_optional(&self.pool)
                    .await
            }
        }
    }
}

super::shared_methods! {
    store: Sqlite,
    database: Lite,
    bind_text: std::convert::identity,
    text: super::decoded,
    max_rows: VALUES_ROWS,
    transaction: begin_with("BEGIN IMMEDIATE"),
    sections: [common, values, swap_and_acquire],
}
