//! The SQL of each database, one module each, and the pieces they share.
//!
//! # How one upsert applies every kind of update
//!
//! Every row of an upsert statement carries `op` (see [`crate::plan`]: 0 map marker, 1 inc,
//! 2 set, 3 max, 4 min) and the number as `int_value` or `float_value`. When the row exists,
//! the update first computes a decision from the stored row and the incoming one:
//!
//! | decision | when | new `int_value`, `float_value` |
//! |---|---|---|
//! | 9 | stored row is a map marker and the incoming one a number, or the reverse | `0, 0`: both set, which the `<table>_one_number` CHECK constraint refuses, so the statement fails with a check violation (a path conflict) and the transaction rolls back |
//! | 2 | inc, both integers | `stored + given` (the database raises on overflow; SQLite is guarded by hand) |
//! | 3 | inc, either is a float | `NULL, float(stored) + float(given)` (overflow to infinity raises) |
//! | 1 | set; max with a greater given number; min with a smaller one | the given number |
//! | 0 | max/min that keep the stored number; a marker over a marker | unchanged |
//!
//! Max and min compare an integer with a float exactly ([`greater`]), as
//! [`Number::cmp_value`](stats_core::Number::cmp_value) does: the database's own mixed
//! comparison would round the integer to a double.
//!
//! Only constant SQL is built here (column names and validated, quoted table names); every value
//! is a bound parameter.

#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

use stats_core::{Error, Number, Result};

/// Rows per upsert statement for the dialects that bind one parameter per value (7 per row):
/// under SQLite's 32,766 and MySQL's 65,535 parameters.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
pub(crate) const VALUES_ROWS: usize = 1000;

/// Documents per read or delete statement for the dialects that bind each document's
/// three columns.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
pub(crate) const DOCS_PER_QUERY: usize = 500;

/// How a dialect spells what the shared expressions need.
#[allow(dead_code)] // unused when no database feature is on
pub(crate) struct Spelling {
    /// The type a `CAST` to `f64` names.
    pub(crate) double: &'static str,
    /// The type a `CAST` to `i64` names.
    pub(crate) bigint: &'static str,
    /// A double literal of exactly 2^63.
    pub(crate) two_63: &'static str,
}

/// The columns of one side of an upsert: the stored row or the incoming one.
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(crate) struct Side<'a> {
    pub(crate) int: &'a str,
    pub(crate) float: &'a str,
}

#[allow(dead_code)]
impl Spelling {
    fn to_double(&self, e: &str) -> String {
        format!("CAST({e} AS {})", self.double)
    }

    fn to_bigint(&self, e: &str) -> String {
        format!("CAST({e} AS {})", self.bigint)
    }

    /// A boolean expression: `a > b`, exact for every pair of an integer and a float.
    ///
    /// With `g = double(i)` (the nearest double): when `f != g`, comparing `f` with `g`
    /// decides, because `i` is within half a step of `g` and `f` is at least a whole step
    /// away. When `f == g`, `f` is a whole number (every double of an integer is), either
    /// 2^63, above every `i64`, or exactly convertible to `i64` for an integer comparison.
    pub(crate) fn greater(&self, a: Side<'_>, b: Side<'_>) -> String {
        let b_int_as_double = self.to_double(b.int);
        let a_int_as_double = self.to_double(a.int);
        format!(
            "CASE \
             WHEN {af} IS NULL AND {bf} IS NULL THEN {ai} > {bi} \
             WHEN {af} IS NOT NULL AND {bf} IS NOT NULL THEN {af} > {bf} \
             WHEN {af} IS NOT NULL THEN CASE \
                 WHEN {af} <> {bid} THEN {af} > {bid} \
                 WHEN {af} >= {two} THEN TRUE \
                 ELSE {af_int} > {bi} END \
             ELSE CASE \
                 WHEN {bf} <> {aid} THEN {aid} > {bf} \
                 WHEN {bf} >= {two} THEN FALSE \
                 ELSE {ai} > {bf_int} END \
             END",
            af = a.float,
            ai = a.int,
            bf = b.float,
            bi = b.int,
            bid = b_int_as_double,
            aid = a_int_as_double,
            two = self.two_63,
            af_int = self.to_bigint(a.float),
            bf_int = self.to_bigint(b.float),
        )
    }

    /// The decision (see the module docs) for a stored row `t` and an incoming row `x` whose
    /// op is `x_op`.
    pub(crate) fn decision(&self, t: Side<'_>, x: Side<'_>, x_op: &str) -> String {
        format!(
            "CASE \
             WHEN ({ti} IS NULL AND {tf} IS NULL) <> ({x_op} = 0) THEN 9 \
             WHEN {x_op} = 1 THEN CASE WHEN {tf} IS NULL AND {xf} IS NULL THEN 2 ELSE 3 END \
             WHEN {x_op} = 2 THEN 1 \
             WHEN {x_op} = 3 THEN CASE WHEN {x_gt_t} THEN 1 ELSE 0 END \
             WHEN {x_op} = 4 THEN CASE WHEN {t_gt_x} THEN 1 ELSE 0 END \
             ELSE 0 END",
            ti = t.int,
            tf = t.float,
            xf = x.float,
            x_gt_t = self.greater(x, t),
            t_gt_x = self.greater(t, x),
        )
    }

    /// `float(t) + float(x)`.
    pub(crate) fn float_sum(&self, t: Side<'_>, x: Side<'_>) -> String {
        format!(
            "COALESCE({tf}, {ti_d}) + COALESCE({xf}, {xi_d})",
            tf = t.float,
            ti_d = self.to_double(t.int),
            xf = x.float,
            xi_d = self.to_double(x.int),
        )
    }

    /// The new `int_value` and `float_value` for decision `d` (an expression or a column that
    /// holds it), given the integer and float sums as the dialect computes them.
    pub(crate) fn new_numbers(
        &self,
        d: &str,
        t: Side<'_>,
        x: Side<'_>,
        int_sum: &str,
        float_sum: &str,
    ) -> (String, String) {
        (
            format!(
                "CASE {d} WHEN 1 THEN {xi} WHEN 2 THEN {int_sum} WHEN 3 THEN NULL \
                 WHEN 9 THEN 0 ELSE {ti} END",
                xi = x.int,
                ti = t.int,
            ),
            format!(
                "CASE {d} WHEN 1 THEN {xf} WHEN 2 THEN NULL WHEN 3 THEN {float_sum} \
                 WHEN 9 THEN 0 ELSE {tf} END",
                xf = x.float,
                tf = t.float,
            ),
        )
    }
}

/// # Purging without a second index
///
/// A purge deletes the buckets of one granularity older than a cutoff, of every metric. The
/// primary key starts with the metric, so `WHERE granularity = ? AND at < ?` alone would scan the
/// whole table (and on MySQL lock every row it scans); an index on (granularity, start) would
/// make every new row cost more (measured with the bench `sql/<db>-fresh`: 18% fewer new-bucket
/// field writes per second on PostgreSQL, 39% fewer on SQLite). Instead a purge lists the
/// metrics with a loose scan of the primary key (one index descent per metric: a recursive
/// `MIN(metric) WHERE metric > previous` on PostgreSQL and SQLite, MySQL's own loose index scan
/// for `DISTINCT`), then deletes `metric IN (...) AND granularity = ? AND at < ?`, a primary key
/// range per metric: the cost is one descent per metric plus the rows deleted.
///
/// `MIN(metric)` over the whole table, then the next one above it: the distinct metrics, each
/// found by one descent of the primary key.
#[allow(dead_code)]
pub(crate) fn loose_scan(table_quoted: &str) -> String {
    format!(
        "WITH RECURSIVE m(x) AS (SELECT MIN(metric) FROM {table_quoted} \
         UNION ALL SELECT (SELECT MIN(metric) FROM {table_quoted} WHERE metric > m.x) FROM m \
         WHERE m.x IS NOT NULL) SELECT x FROM m WHERE x IS NOT NULL"
    )
}

/// Opens one connection with `options` and closes it, within `timeout` (then
/// [`sqlx::Error::PoolTimedOut`]). A pool retries a refused connection until its acquire
/// timeout and then reports only the timeout; this keeps the cause.
#[allow(dead_code)]
pub(crate) async fn probe<O>(options: &O, timeout: std::time::Duration) -> Result<(), sqlx::Error>
where
    O: sqlx::ConnectOptions,
    O::Connection: Sized,
{
    use sqlx::Connection as _;
    let connection = tokio::time::timeout(timeout, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    connection.close().await
}

/// A stored leaf as read back: its number from the two columns. Map markers (both `NULL`) are
/// filtered out by the queries.
pub(crate) fn number(int: Option<i64>, float: Option<f64>, path: &str) -> Result<Number> {
    match (int, float) {
        (Some(i), None) => Ok(Number::Int(i)),
        (None, Some(f)) => Number::float(f).map_err(|_| corrupt(path)),
        _ => Err(corrupt(path)),
    }
}

fn corrupt(path: &str) -> Error {
    Error::InvalidValue {
        path: Some(path.to_owned()),
        reason: "the stored row holds no number or two; it was not written by this store".into(),
    }
}

/// A row of a document read by key.
#[allow(dead_code)]
pub(crate) struct DocRow {
    pub(crate) metric: String,
    pub(crate) granularity: String,
    pub(crate) at: i64,
    pub(crate) path: String,
    pub(crate) int: Option<i64>,
    pub(crate) float: Option<f64>,
}

/// A row of a range read.
#[allow(dead_code)]
pub(crate) struct RangeRow {
    pub(crate) at: i64,
    pub(crate) path: String,
    pub(crate) int: Option<i64>,
    pub(crate) float: Option<f64>,
}

/// A text column that sqlx already decodes as a `String` (PostgreSQL, SQLite), for
/// [`shared_methods`]' `text` argument. MySQL's names are bytes and have a decoder of their own.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn decoded(text: String) -> Result<String, sqlx::Error> {
    Ok(text)
}

/// The methods of a dialect's store whose logic is the same in more than one dialect, written
/// once and generated for each dialect's pool type.
///
/// A macro rather than functions generic over `sqlx::Database`: those would need `Executor`
/// bounds on `&Pool<DB>` and on transactions for every lifetime, `Encode + Type` bounds for
/// every bound value, `IntoArguments` for the arguments and `Decode` bounds for every column
/// read, which would outweigh the few lines of logic they share. The expansion is the plain code
/// each dialect would otherwise spell out, with the dialect's own types. The SQL itself stays in
/// each dialect's `Sql`.
///
/// A dialect module invokes it once:
///
/// ```text
/// super::shared_methods! {
///     store: Sqlite,                                // the store type: fields `pool` and `sql`
///     database: Lite,                               // the sqlx database type
///     bind_text: std::convert::identity,            // how a name is bound (`str::as_bytes`: MySQL)
///     text: super::decoded,                         // a name column's value to `R<String>`
///     max_rows: VALUES_ROWS,                        // rows per upsert statement
///     transaction: begin_with("BEGIN IMMEDIATE"),   // the pool method that begins one
///     sections: [common, values, swap_and_acquire], // the groups of methods below
/// }
/// ```
///
/// The sections, and the statements (fields of `self.sql`) they run:
/// - `common` (every dialect): `close`; `apply`, which runs a plan as one statement or as
///   several in a transaction, with the dialect's own `upsert`; `range` (`range`); the counter
///   calls `counter_get`, `counter_get_all`, `counter_set`, `counter_delete`,
///   `counter_delete_namespace`, `counter_create`, `counter_info` (the statements of the same
///   names, their parameters in the order name space, key, value); `purge_throttles`
///   (`throttle_purge`).
/// - `values` (dialects that bind one parameter per value): `upsert` (`upsert_head`, one
///   `VALUES` row per leaf, `upsert_tail`), `push_docs` and `read` (`read_head`, the documents
///   in chunks of [`DOCS_PER_QUERY`]); `remove_metric` (`metric_count`, then `metric_delete`:
///   metric) in a transaction; `purge` (`metrics`, then for each chunk of metrics
///   `purge_count_head` granularity, start, metrics `purge_count_tail` and `purge_delete_head`
///   granularity, start, metrics, in a transaction).
/// - `swap_and_acquire` (dialects with numbered parameters and conditional upserts):
///   `counter_swap` (`counter_swap`: name space, key, expected, new) and `try_acquire`
///   (`throttle_acquire`: key, time to live).
macro_rules! shared_methods {
    (
        store: $store:ident,
        database: $db:ty,
        bind_text: $bind:path,
        text: $text:path,
        max_rows: $max_rows:expr,
        transaction: $begin:ident $begin_args:tt,
        sections: [$($section:ident),* $(,)?] $(,)?
    ) => {
        $(
            $crate::dialect::shared_methods!(
                @$section $store, $db, $bind, $text, $max_rows, $begin $begin_args
            );
        )*
    };

    (@common $store:ident, $db:ty, $bind:path, $text:path, $max_rows:expr,
        $begin:ident $begin_args:tt) => {
        impl $store {
            pub(crate) async fn close(&self) {
                self.pool.close().await;
            }

            /// Runs a plan; with a batch id, the id is inserted first in the same
            /// transaction, and if it is there already nothing is written (rolled back).
            pub(crate) async fn apply(
                &self,
                plan: &Plan<'_>,
                id: Option<stats_core::BatchId>,
                now: i64,
            ) -> R<()> {
                if id.is_none() && plan.is_one_statement($max_rows) {
                    return self.upsert(&self.pool, &plan.docs, &plan.rounds[0]).await;
                }
                let mut tx = self.pool.$begin $begin_args.await?;
                if let Some(id) = id {
                    let done = sqlx::query(&self.sql.batch_insert)
                        .bind(id.to_bytes().to_vec())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        // Applied already (within the window).
                        return tx.rollback().await;
                    }
                }
                for rows in plan.statements($max_rows) {
                    self.upsert(&mut *tx, &plan.docs, rows).await?;
                }
                tx.commit().await
            }

            pub(crate) async fn range(
                &self,
                metric: &str,
                granularity: &str,
                from: i64,
                to: i64,
            ) -> R<Vec<RangeRow>> {
                let rows = sqlx::query(&self.sql.range)
                    .bind($bind(metric))
                    .bind($bind(granularity))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(RangeRow {
                            at: r.try_get(0)?,
                            path: $text(r.try_get(1)?)?,
                            int: r.try_get(2)?,
                            float: r.try_get(3)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn counter_get(&self, ns: &str, key: &str) -> R<Option<i64>> {
                sqlx::query_scalar(&self.sql.counter_get)
                    .bind($bind(ns))
                    .bind($bind(key))
                    .fetch_optional(&self.pool)
                    .await
            }

            pub(crate) async fn counter_get_all(&self, ns: &str) -> R<Vec<(String, i64)>> {
                let rows: Vec<(_, i64)> = sqlx::query_as(&self.sql.counter_get_all)
                    .bind($bind(ns))
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(|(k, v)| Ok(($text(k)?, v))).collect()
            }

            pub(crate) async fn counter_set(&self, ns: &str, key: &str, value: i64) -> R<()> {
                sqlx::query(&self.sql.counter_set)
                    .bind($bind(ns))
                    .bind($bind(key))
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            pub(crate) async fn counter_delete(&self, ns: &str, key: &str) -> R<bool> {
                let done = sqlx::query(&self.sql.counter_delete)
                    .bind($bind(ns))
                    .bind($bind(key))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn counter_delete_namespace(&self, ns: &str) -> R<u64> {
                let done = sqlx::query(&self.sql.counter_delete_namespace)
                    .bind($bind(ns))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            pub(crate) async fn counter_create(&self, ns: &str, key: &str, value: i64) -> R<bool> {
                let done = sqlx::query(&self.sql.counter_create)
                    .bind($bind(ns))
                    .bind($bind(key))
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn counter_info(&self) -> R<Vec<(String, i64)>> {
                let rows: Vec<(_, i64)> = sqlx::query_as(&self.sql.counter_info)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(|(k, v)| Ok(($text(k)?, v))).collect()
            }

            /// Deletes the ids of batches applied before `before` (unix seconds).
            pub(crate) async fn prune_batches(&self, before: i64) -> R<u64> {
                let done = sqlx::query(&self.sql.batch_prune)
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            pub(crate) async fn purge_throttles(&self) -> R<u64> {
                let done = sqlx::query(&self.sql.throttle_purge)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };

    (@values $store:ident, $db:ty, $bind:path, $text:path, $max_rows:expr,
        $begin:ident $begin_args:tt) => {
        impl $store {
            async fn upsert<'e>(
                &self,
                executor: impl Executor<'e, Database = $db>,
                docs: &[DocId<'_>],
                rows: &[Row<'_>],
            ) -> R<()> {
                let mut q = QueryBuilder::<$db>::new(&self.sql.upsert_head);
                q.push_values(rows, |mut b, row| {
                    let doc = &docs[row.doc];
                    b.push_bind($bind(doc.metric))
                        .push_bind($bind(doc.granularity.as_str()))
                        .push_bind(doc.at)
                        .push_bind($bind(row.path))
                        .push_bind(row.op)
                        .push_bind(row.int)
                        .push_bind(row.float);
                });
                q.push(&self.sql.upsert_tail);
                q.build().execute(executor).await?;
                Ok(())
            }

            /// `(metric = ? AND granularity = ? AND at = ?) OR ...`
            fn push_docs<'q>(q: &mut QueryBuilder<'q, $db>, docs: &'q [DocId<'_>]) {
                for (i, doc) in docs.iter().enumerate() {
                    if i > 0 {
                        q.push(" OR ");
                    }
                    q.push("(metric = ")
                        .push_bind($bind(doc.metric))
                        .push(" AND granularity = ")
                        .push_bind($bind(doc.granularity.as_str()))
                        .push(" AND at = ")
                        .push_bind(doc.at)
                        .push(")");
                }
            }

            /// Counts the documents of one metric, then deletes its rows, in one
            /// transaction that locks them first (`metric_count` locks on MySQL; SQLite's
            /// `BEGIN IMMEDIATE` holds the write lock), so the count is of the rows deleted.
            pub(crate) async fn remove_metric(&self, metric: &str) -> R<u64> {
                let mut tx = self.pool.$begin $begin_args.await?;
                let count: i64 = sqlx::query_scalar(&self.sql.metric_count)
                    .bind($bind(metric))
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(&self.sql.metric_delete)
                    .bind($bind(metric))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            /// Deletes the buckets of `granularity` that start before `before`, metric by
            /// metric on the primary key (see [`loose_scan`](crate::dialect)): the metrics are
            /// listed, then each chunk of them is counted under lock and deleted in one
            /// transaction.
            pub(crate) async fn purge(&self, granularity: &str, before: i64) -> R<u64> {
                let metrics: Vec<String> = sqlx::query_scalar(&self.sql.metrics)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map($text)
                    .collect::<R<_>>()?;
                let mut total = 0;
                for chunk in metrics.chunks(DOCS_PER_QUERY) {
                    let bounded = |head: &str, tail: &str| {
                        let mut q = QueryBuilder::<$db>::new(head);
                        q.push_bind($bind(granularity))
                            .push(" AND at < ")
                            .push_bind(before)
                            .push(" AND metric IN (");
                        let mut list = q.separated(", ");
                        for metric in chunk {
                            list.push_bind($bind(metric.as_str()));
                        }
                        q.push(")").push(tail);
                        q
                    };
                    let mut tx = self.pool.$begin $begin_args.await?;
                    let count: i64 = bounded(&self.sql.purge_count_head, &self.sql.purge_count_tail)
                        .build_query_scalar()
                        .fetch_one(&mut *tx)
                        .await?;
                    if count > 0 {
                        bounded(&self.sql.purge_delete_head, "")
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    total += u64::try_from(count).unwrap_or(0);
                }
                Ok(total)
            }

            pub(crate) async fn read(&self, docs: &[DocId<'_>]) -> R<Vec<DocRow>> {
                let mut out = Vec::new();
                for chunk in docs.chunks(DOCS_PER_QUERY) {
                    let mut q = QueryBuilder::<$db>::new(&self.sql.read_head);
                    Self::push_docs(&mut q, chunk);
                    q.push(")");
                    for r in q.build().fetch_all(&self.pool).await? {
                        out.push(DocRow {
                            metric: $text(r.try_get(0)?)?,
                            granularity: $text(r.try_get(1)?)?,
                            at: r.try_get(2)?,
                            path: $text(r.try_get(3)?)?,
                            int: r.try_get(4)?,
                            float: r.try_get(5)?,
                        });
                    }
                }
                Ok(out)
            }
        }
    };

    (@swap_and_acquire $store:ident, $db:ty, $bind:path, $text:path, $max_rows:expr,
        $begin:ident $begin_args:tt) => {
        impl $store {
            pub(crate) async fn counter_swap(
                &self,
                ns: &str,
                key: &str,
                expected: i64,
                new: i64,
            ) -> R<bool> {
                let done = sqlx::query(&self.sql.counter_swap)
                    .bind($bind(ns))
                    .bind($bind(key))
                    .bind(expected)
                    .bind(new)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            pub(crate) async fn try_acquire(&self, key: &str, ttl_ms: i64) -> R<bool> {
                let done = sqlx::query(&self.sql.throttle_acquire)
                    .bind($bind(key))
                    .bind(ttl_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
#[allow(unused_imports)] // unused when no database feature is on
pub(crate) use shared_methods;
