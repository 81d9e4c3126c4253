//! MySQL and MariaDB: the SQL and the calls that run it.
//!
//! - Names are `VARBINARY` columns: compared and ordered byte by byte, never by a collation that
//!   would make `é` equal `e`, `A` equal `a`, or ignore trailing spaces. Their lengths are the
//!   portable name rule's byte limits, so the whole primary key (about 630 bytes) fits InnoDB's
//!   3,072-byte index limit.
//! - `INSERT ... ON DUPLICATE KEY UPDATE` assigns left to right, each assignment seeing the ones
//!   before it, so the decision is computed once into `op` and the number columns read it;
//!   `float_value` is assigned before `int_value`, whose old value it needs. Each session runs
//!   with a fixed `sql_mode` (strict, and without MariaDB's `SIMULTANEOUS_ASSIGNMENT`, which
//!   would change that order).
//! - MySQL has no `RETURNING`: an increment reads its counter back in the same transaction,
//!   and a throttle acquire deletes an expired row, then inserts with `INSERT IGNORE`.
//! - The CHECK constraint that refuses path conflicts needs MySQL 8.0.16 or MariaDB 10.2
//!   (older servers parse and ignore it), `CAST(... AS DOUBLE)` MySQL 8.0.17 or MariaDB 10.4.

use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{Executor, MySql as My, QueryBuilder, Row as _};
use stats_core::name::{MAX_PATH_LEN, MAX_SEGMENT_LEN};

use super::{DOCS_PER_QUERY, DocRow, RangeRow, Side, Spelling, VALUES_ROWS};
use crate::config::SqlConfig;
use crate::plan::{DocId, Plan, Row};

const SPELLING: Spelling = Spelling {
    double: "DOUBLE",
    bigint: "SIGNED",
    two_63: "9223372036854775808E0",
};

/// The current time in unix milliseconds, by the database's clock (sqlx runs every session in
/// UTC, so `NOW(3)` has no daylight-saving ambiguity).
const NOW_MS: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// The session settings every pooled connection gets.
const SESSION: &str = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'";

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
    throttle_expire: String,
    throttle_insert: String,
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
        let segment = MAX_SEGMENT_LEN;
        let path = MAX_PATH_LEN;
        let t = Side {
            int: "int_value",
            float: "float_value",
        };
        let x = Side {
            int: "VALUES(int_value)",
            float: "VALUES(float_value)",
        };
        let decision = SPELLING.decision(t, x, "VALUES(op)");
        let (new_int, new_float) = SPELLING.new_numbers(
            "op",
            t,
            x,
            "int_value + VALUES(int_value)",
            &SPELLING.float_sum(t, x),
        );
        Sql {
            setup: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS `{buckets}` (
                        metric VARBINARY({segment}) NOT NULL,
                        granularity VARBINARY(16) NOT NULL,
                        at BIGINT NOT NULL,
                        path VARBINARY({path}) NOT NULL,
                        op SMALLINT NOT NULL,
                        int_value BIGINT NULL,
                        float_value DOUBLE NULL,
                        PRIMARY KEY (metric, granularity, at, path),
                        CONSTRAINT `{buckets}_one_number` CHECK (int_value IS NULL OR float_value IS NULL)
                    ) ENGINE=InnoDB"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS `{counters}` (
                        namespace VARBINARY({segment}) NOT NULL,
                        counter_key VARBINARY({segment}) NOT NULL,
                        value BIGINT NOT NULL,
                        PRIMARY KEY (namespace, counter_key)
                    ) ENGINE=InnoDB"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS `{throttles}` (
                        throttle_key VARBINARY({segment}) NOT NULL PRIMARY KEY,
                        expires_at BIGINT NOT NULL,
                        INDEX `{throttles}_expires_at` (expires_at)
                    ) ENGINE=InnoDB"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS `{batches}` (
                        id BINARY(16) NOT NULL PRIMARY KEY,
                        applied_at BIGINT NOT NULL,
                        INDEX `{batches}_applied_at` (applied_at)
                    ) ENGINE=InnoDB"
                ),
            ],
            drop: vec![
                format!("DROP TABLE IF EXISTS `{batches}`"),
                format!("DROP TABLE IF EXISTS `{buckets}`"),
                format!("DROP TABLE IF EXISTS `{counters}`"),
                format!("DROP TABLE IF EXISTS `{throttles}`"),
            ],
            upsert_head: format!(
                "INSERT INTO `{buckets}` (metric, granularity, at, path, op, int_value, float_value) "
            ),
            upsert_tail: format!(
                " ON DUPLICATE KEY UPDATE op = {decision}, float_value = {new_float}, int_value = {new_int}"
            ),
            read_head: format!(
                "SELECT metric, granularity, at, path, int_value, float_value FROM `{buckets}` \
                 WHERE (int_value IS NOT NULL OR float_value IS NOT NULL) AND ("
            ),
            range: format!(
                "SELECT at, path, int_value, float_value FROM `{buckets}` \
                 WHERE metric = ? AND granularity = ? AND at BETWEEN ? AND ? \
                 AND (int_value IS NOT NULL OR float_value IS NOT NULL)"
            ),
            remove_head: format!("DELETE FROM `{buckets}` WHERE "),
            // A locking read: the rows counted stay locked (and no new row of the metric can
            // come in between) until the delete in the same transaction.
            metric_count: format!(
                "SELECT COUNT(DISTINCT granularity, at) FROM `{buckets}` WHERE metric = ? FOR UPDATE"
            ),
            metric_delete: format!("DELETE FROM `{buckets}` WHERE metric = ?"),
            // MySQL and MariaDB read DISTINCT of the primary key's first column with a loose
            // index scan ("Using index for group-by"): one descent per metric.
            metrics: format!("SELECT DISTINCT metric FROM `{buckets}`"),
            purge_count_head: format!(
                "SELECT COUNT(DISTINCT metric, at) FROM `{buckets}` WHERE granularity = "
            ),
            purge_count_tail: " FOR UPDATE".into(),
            purge_delete_head: format!("DELETE FROM `{buckets}` WHERE granularity = "),
            counter_inc: format!(
                "INSERT INTO `{counters}` (namespace, counter_key, value) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE value = value + ?"
            ),
            counter_add: format!(
                "UPDATE `{counters}` SET value = value + ? WHERE namespace = ? AND counter_key = ?"
            ),
            counter_get: format!(
                "SELECT value FROM `{counters}` WHERE namespace = ? AND counter_key = ?"
            ),
            counter_get_all: format!(
                "SELECT counter_key, value FROM `{counters}` WHERE namespace = ?"
            ),
            counter_set: format!(
                "INSERT INTO `{counters}` (namespace, counter_key, value) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE value = VALUES(value)"
            ),
            counter_delete: format!(
                "DELETE FROM `{counters}` WHERE namespace = ? AND counter_key = ?"
            ),
            counter_delete_namespace: format!("DELETE FROM `{counters}` WHERE namespace = ?"),
            // sqlx sets CLIENT_FOUND_ROWS: rows matched count, even when the value is unchanged.
            counter_swap: format!(
                "UPDATE `{counters}` SET value = ? WHERE namespace = ? AND counter_key = ? AND value = ?"
            ),
            counter_create: format!(
                "INSERT IGNORE INTO `{counters}` (namespace, counter_key, value) VALUES (?, ?, ?)"
            ),
            counter_info: format!(
                "SELECT namespace, COUNT(*) FROM `{counters}` GROUP BY namespace"
            ),
            throttle_expire: format!(
                "DELETE FROM `{throttles}` WHERE throttle_key = ? AND expires_at <= {NOW_MS}"
            ),
            throttle_insert: format!(
                "INSERT IGNORE INTO `{throttles}` (throttle_key, expires_at) VALUES (?, {NOW_MS} + ?)"
            ),
            batch_insert: format!("INSERT IGNORE INTO `{batches}` (id, applied_at) VALUES (?, ?)"),
            batch_prune: format!("DELETE FROM `{batches}` WHERE applied_at < ?"),
            throttle_purge: format!("DELETE FROM `{throttles}` WHERE expires_at <= {NOW_MS}"),
        }
    }
}

/// A MySQL/MariaDB store's pool and statements.
pub(crate) struct MySql {
    pool: MySqlPool,
    sql: Sql,
}

type R<T> = Result<T, sqlx::Error>;

fn text(bytes: Vec<u8>) -> R<String> {
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

impl MySql {
    pub(crate) async fn connect(config: &SqlConfig) -> R<Self> {
        let options = MySqlConnectOptions::from_str(&config.url)?;
        super::probe(&options, config.acquire_timeout).await?;
        let pool = MySqlPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SESSION).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let mut sql = Sql::new(config);
        let (setup, drop) = crate::trifle::ddl(config);
        sql.setup.extend(setup);
        sql.drop.extend(drop);
        Ok(MySql { pool, sql })
    }

    /// The pool (for the Trifle layout's statements, [`crate::trifle`]).
    pub(crate) fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// DDL commits implicitly in MySQL, so the statements run one by one; `IF NOT EXISTS`
    /// under the server's metadata lock makes concurrent setups safe.
    pub(crate) async fn setup(&self) -> R<()> {
        self.run_each(&self.sql.setup).await
    }

    pub(crate) async fn drop_tables(&self) -> R<()> {
        self.run_each(&self.sql.drop).await
    }

    /// Runs DDL `statements` one by one.
    async fn run_each(&self, statements: &[String]) -> R<()> {
        for statement in statements {
            self.pool.execute(statement.as_str()).await?;
        }
        Ok(())
    }

    pub(crate) async fn remove(&self, docs: &[DocId<'_>]) -> R<()> {
        for chunk in docs.chunks(DOCS_PER_QUERY) {
            let mut q = QueryBuilder::<My>::new(&self.sql.remove_head);
            Self::push_docs(&mut q, chunk);
            q.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    pub(crate) async fn counter_inc(
        &self,
        ns: &str,
        key: &str,
        step: i64,
        first: Option<i64>,
    ) -> R<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        match first {
            Some(first) => {
                sqlx::query(&self.sql.counter_inc)
                    .bind(ns.as_bytes())
                    .bind(key.as_bytes())
                    .bind(first)
                    .bind(step)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(&self.sql.counter_add)
                    .bind(step)
                    .bind(ns.as_bytes())
                    .bind(key.as_bytes())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // The row is locked by this transaction since the write: this reads its own result.
        let value = sqlx::query_scalar(&self.sql.counter_get)
            .bind(ns.as_bytes())
            .bind(key.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(value)
    }

    pub(crate) async fn counter_swap(
        &self,
        ns: &str,
        key: &str,
        expected: i64,
        new: i64,
    ) -> R<bool> {
        let done = sqlx::query(&self.sql.counter_swap)
            .bind(new)
            .bind(ns.as_bytes())
            .bind(key.as_bytes())
            .bind(expected)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Two autocommitted statements, yet one winner per expiry: only an expired row can be
    /// deleted, and of the inserts that follow only the first finds the key free.
    pub(crate) async fn try_acquire(&self, key: &str, ttl_ms: i64) -> R<bool> {
        sqlx::query(&self.sql.throttle_expire)
            .bind(key.as_bytes())
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(&self.sql.throttle_insert)
            .bind(key.as_bytes())
            .bind(ttl_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

super::shared_methods! {
    store: MySql,
    database: My,
    bind_text: str::as_bytes,
    text: text,
    max_rows: VALUES_ROWS,
    transaction: begin(),
    sections: [common, values],
}
