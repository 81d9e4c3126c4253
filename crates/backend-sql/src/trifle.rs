//! The Trifle layout ([`Layout::Trifle`]): metric documents in Trifle 2.6's table, one row per
//! bucket, `key` = `<metric>::<granularity>::<unix start>` (Trifle's `joined_identifier:
//! :full`), `data` = the bucket's leaves as one JSON object of dot-joined paths (Trifle's
//! `Packer.pack`). See the crate docs, "Trifle layout", for what is kept and what is lost.
//!
//! Writes read the batch's rows under a row lock, apply the batch in memory with the core's
//! rules (so overflow and path conflicts are found exactly, naming the key and path), and write
//! each row's whole object back, all in one transaction. Reads unpack the object as Trifle's
//! `Packer.unpack` does: entries in stored order, each path split at `.`, later entries merged
//! over earlier ones (a map and a map merge; otherwise the later one wins).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use stats_core::plan::LeafDoc;
use stats_core::{Batch, Error, Key, Number, Result, Slot, Values};

use crate::config::{Database, Layout, SqlConfig};

/// The identifier of a document: `<metric>::<granularity>::<unix start>` for a bucket (what
/// Trifle's `Nocturnal::Key#identifier('::', :full)` gives), the bare metric for a status slot
/// (Trifle has none; a bucket's key always holds `::`, which a metric may not).
pub(crate) fn identifier(key: &Key) -> String {
    match key.slot() {
        Slot::Status => key.metric().to_owned(),
        Slot::Bucket { granularity, start } => {
            format!("{}::{granularity}::{start}", key.metric())
        }
    }
}

/// The DDL the Trifle layout adds to a store's `setup` and `drop_tables`: Trifle's own
/// `setup!` of `joined_identifier: :full`, with `IF NOT EXISTS` so that it is idempotent (and
/// finds a table Trifle created as it is).
pub(crate) fn ddl(config: &SqlConfig) -> (Vec<String>, Vec<String>) {
    let Layout::Trifle(table) = config.metric_layout() else {
        return (Vec::new(), Vec::new());
    };
    let t = table.name();
    match config.database() {
        Database::Postgres => (
            vec![format!(
                r#"CREATE TABLE IF NOT EXISTS "{t}" (key VARCHAR(255) PRIMARY KEY, data JSONB NOT NULL DEFAULT '{{}}'::jsonb)"#
            )],
            vec![format!(r#"DROP TABLE IF EXISTS "{t}""#)],
        ),
        Database::Sqlite => (
            vec![
                format!(r#"CREATE TABLE IF NOT EXISTS "{t}" (key varchar(255), data json)"#),
                format!(r#"CREATE UNIQUE INDEX IF NOT EXISTS "idx_{t}_key" ON "{t}" (key)"#),
            ],
            vec![format!(r#"DROP TABLE IF EXISTS "{t}""#)],
        ),
        // Trifle's columns; the character set and binary collation are this store's, so
        // that keys compare byte by byte (a table Trifle created keeps the server's default).
        Database::MySql => (
            vec![format!(
                "CREATE TABLE IF NOT EXISTS `{t}` (`key` VARCHAR(255) PRIMARY KEY, `data` JSON NOT NULL) \
                 DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin"
            )],
            vec![format!("DROP TABLE IF EXISTS `{t}`")],
        ),
    }
}

/// A JSON number as this layout writes it: an integer in decimal; a float as its shortest
/// round-trip decimal, never with an exponent and always with a fraction (`2.0`, `1e20` as
/// `100000000000000000000.0`), so that PostgreSQL's `jsonb` (which keeps a number's written
/// scale but prints no exponent) gives back text that still reads as a float.
pub(crate) fn json_number(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(f) => {
            let mut s = format!("{f}");
            if !s.contains('.') {
                s.push_str(".0");
            }
            s
        }
    }
}

/// The JSON object of a document's leaves (Trifle's packed form): `{"count":1,"by.eu":2.5}`.
pub(crate) fn pack(leaves: &BTreeMap<String, Number>) -> String {
    let mut out = String::from("{");
    for (i, (path, n)) in leaves.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(path).expect("a string serialises"));
        out.push(':');
        out.push_str(&json_number(*n));
    }
    out.push('}');
    out
}

/// A JSON object's entries in the order written (Ruby's `JSON.parse` keeps it, and
/// `Packer.unpack` merges in that order; `serde_json::Map` would sort them).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A node of an unpacked document.
enum Node {
    Num(Number),
    Map(BTreeMap<String, Node>),
}

fn bad(id: &str, path: &str, reason: impl Into<String>) -> Error {
    Error::InvalidValue {
        path: Some(path.to_owned()),
        reason: format!("Trifle row {id:?}: {}", reason.into()),
    }
}

/// A JSON number as a [`Number`]: an integer that fits `i64` is an integer, any other number a
/// float (`2.0`, `1.0e+20`, a MySQL `DECIMAL` sum `3.0000000000`; an integer beyond `u64` too, as
/// the JSON parser reads it); an integer between `i64::MAX` and `u64::MAX` is refused.
fn number(n: &serde_json::Number, id: &str, path: &str) -> Result<Number> {
    if let Some(i) = n.as_i64() {
        return Ok(Number::Int(i));
    }
    if n.is_u64() {
        return Err(bad(
            id,
            path,
            format!("the integer {n} is beyond the i64 range"),
        ));
    }
    let f = n.as_f64().ok_or_else(|| bad(id, path, "not a number"))?;
    Number::float(f).map_err(|_| bad(id, path, format!("{n} is not a finite float")))
}

fn node(value: serde_json::Value, id: &str, path: &str) -> Result<Node> {
    match value {
        serde_json::Value::Number(n) => Ok(Node::Num(number(&n, id, path)?)),
        serde_json::Value::Object(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                let child = node(v, id, &format!("{path}.{k}"))?;
                out.insert(k, child);
            }
            Ok(Node::Map(out))
        }
        other => Err(bad(
            id,
            path,
            format!("holds {other}, not a number (this layout reads numbers only)"),
        )),
    }
}

/// `this.deep_merge(other)` of Trifle's packer: maps merge key by key, anything else is
/// replaced by the later value.
fn merge(this: &mut BTreeMap<String, Node>, other: BTreeMap<String, Node>) {
    for (k, v) in other {
        match (this.get_mut(&k), v) {
            (Some(Node::Map(a)), Node::Map(b)) => merge(a, b),
            (_, v) => {
                this.insert(k, v);
            }
        }
    }
}

fn flatten(prefix: &str, map: BTreeMap<String, Node>, out: &mut Vec<(String, Number)>) {
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Node::Num(n) => out.push((path, n)),
            Node::Map(m) => flatten(&path, m, out),
        }
    }
}

/// Trifle's `Packer.unpack` of a stored `data` object, as flattened leaves in path order.
/// `None` (SQL `NULL`) and an empty text are an empty document.
pub(crate) fn unpack(id: &str, data: Option<&str>) -> Result<Vec<(String, Number)>> {
    let Some(text) = data.filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let entries: Entries = serde_json::from_str(text)
        .map_err(|e| bad(id, "", format!("data is not a JSON object: {e}")))?;
    let mut root = BTreeMap::new();
    for (key, value) in entries.0 {
        let mut wrapped = node(value, id, &key)?;
        let mut segments: Vec<&str> = key.split('.').collect();
        let first = segments.remove(0);
        for segment in segments.into_iter().rev() {
            wrapped = Node::Map(BTreeMap::from([(segment.to_owned(), wrapped)]));
        }
        merge(&mut root, BTreeMap::from([(first.to_owned(), wrapped)]));
    }
    let mut out = Vec::new();
    flatten("", root, &mut out);
    Ok(out)
}

/// A stored document as [`Values`].
pub(crate) fn values(id: &str, data: Option<&str>) -> Result<Values> {
    Values::from_flat(unpack(id, data)?)
}

/// Applies `batch` to the stored rows (`stored`: identifier -> `data` text, missing rows
/// absent) with the core's rules, update by update in batch order, and returns the new `data`
/// of every document the batch writes, by identifier, in identifier order.
///
/// # Errors
/// The batch's first error (overflow, path conflict) naming the key and path, or a stored row
/// this layout cannot read.
pub(crate) fn apply_in_memory(
    batch: &Batch,
    stored: &HashMap<String, Option<String>>,
) -> Result<Vec<(String, String)>> {
    let mut docs: BTreeMap<String, LeafDoc> = BTreeMap::new();
    for (op, key, path, n) in batch.updates() {
        let id = identifier(key);
        if !docs.contains_key(&id) {
            let leaves = unpack(&id, stored.get(&id).and_then(|d| d.as_deref()))?;
            docs.insert(id.clone(), LeafDoc::from_leaves(leaves));
        }
        docs.get_mut(&id)
            .expect("inserted above")
            .apply(op, key, path, n)?;
    }
    Ok(docs
        .into_iter()
        .map(|(id, doc)| (id, pack(doc.leaves())))
        .collect())
}

/// The metric, granularity and start of a bucket identifier, `None` for a status slot or a
/// row that is not one of ours.
pub(crate) fn parse_identifier(id: &str) -> Option<(&str, &str, i64)> {
    let mut parts = id.rsplitn(3, "::");
    let start = parts.next()?.parse().ok()?;
    let granularity = parts.next()?;
    let metric = parts.next()?;
    Some((metric, granularity, start))
}

/// What a statement of this layout failed with: the database's error, or the core's (a batch
/// that does not apply, a row that cannot be read).
pub(crate) enum Fail {
    Sql(sqlx::Error),
    Core(Error),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Core(e)
    }
}

/// A batch id as the batches table holds it.
fn id_bytes(id: stats_core::BatchId) -> Vec<u8> {
    id.to_bytes().to_vec()
}

#[cfg(feature = "postgres")]
pub(crate) mod postgres {
    //! The Trifle layout's statements on PostgreSQL.

    use std::collections::HashMap;

    use sqlx::PgPool;

    use super::{Fail, apply_in_memory, id_bytes, identifier};
    use stats_core::{Batch, BatchId};

    type R<T> = Result<T, Fail>;

    /// Applies a batch in one transaction: the batch id first (if it is there already, nothing
    /// is written), then every row the batch writes is created empty if missing (`ON CONFLICT
    /// DO NOTHING`, so a row a Trifle process creates at the same moment is never overwritten),
    /// locked in identifier order (`FOR UPDATE`, which Trifle's own upserts wait for), rewritten.
    pub(crate) async fn apply(
        pool: &PgPool,
        table: &str,
        batches: &str,
        batch: &Batch,
        id: Option<BatchId>,
        now: i64,
    ) -> R<()> {
        let mut ids: Vec<String> = batch.sorted_keys().into_iter().map(identifier).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = pool.begin().await?;
        if let Some(id) = id {
            let done = sqlx::query(&format!(
                r#"INSERT INTO "{batches}" (id, applied_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"#
            ))
            .bind(id_bytes(id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(());
            }
        }
        sqlx::query(&format!(
            r#"INSERT INTO "{table}" (key, data) SELECT k, '{{}}'::jsonb FROM UNNEST($1::text[]) WITH ORDINALITY AS u(k, i)
            ORDER BY i ON CONFLICT (key) DO NOTHING"#
        ))
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(&format!(
            r#"SELECT key, data::text FROM "{table}" WHERE key = ANY($1) ORDER BY key FOR UPDATE"#
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let stored: HashMap<String, Option<String>> = rows.into_iter().collect();
        let written = apply_in_memory(batch, &stored)?;
        let (keys, data): (Vec<String>, Vec<String>) = written.into_iter().unzip();
        sqlx::query(&format!(
            r#"UPDATE "{table}" AS t SET data = v.d::jsonb FROM UNNEST($1::text[], $2::text[]) AS v(k, d)
            WHERE t.key = v.k"#
        ))
        .bind(&keys)
        .bind(&data)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The `data` of the rows of these identifiers (missing rows absent).
    pub(crate) async fn read(
        pool: &PgPool,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
        sqlx::query_as(&format!(
            r#"SELECT key, data::text FROM "{table}" WHERE key = ANY($1)"#
        ))
        .bind(ids)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn remove(
        pool: &PgPool,
        table: &str,
        ids: &[String],
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(&format!(r#"DELETE FROM "{table}" WHERE key = ANY($1)"#))
            .bind(ids)
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes the status row of `metric` and every row whose key starts with `<metric>::`.
    pub(crate) async fn remove_metric(
        pool: &PgPool,
        table: &str,
        metric: &str,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(&format!(
            r#"DELETE FROM "{table}" WHERE key = $1 OR starts_with(key, $2)"#
        ))
        .bind(metric)
        .bind(format!("{metric}::"))
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The keys of rows that may be buckets of `granularity` (checked again by the caller).
    pub(crate) async fn keys_of(
        pool: &PgPool,
        table: &str,
        granularity: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(&format!(
            r#"SELECT key FROM "{table}" WHERE strpos(key, $1) > 0"#
        ))
        .bind(format!("::{granularity}::"))
        .fetch_all(pool)
        .await
    }
}

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    //! The Trifle layout's statements on SQLite.

    use std::collections::HashMap;

    use sqlx::{QueryBuilder, Sqlite, SqlitePool};

    use super::{Fail, apply_in_memory, id_bytes, identifier};
    use crate::dialect::DOCS_PER_QUERY;
    use stats_core::{Batch, BatchId};

    type R<T> = Result<T, Fail>;

    /// `SELECT key, data ... WHERE key IN (<chunk>)`.
    fn select<'q>(table: &str, chunk: &'q [String]) -> QueryBuilder<'q, Sqlite> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            r#"SELECT key, data FROM "{table}" WHERE key IN ("#
        ));
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id.as_str());
        }
        q.push(")");
        q
    }

    /// Applies a batch in one `BEGIN IMMEDIATE` transaction (which holds SQLite's write lock
    /// from the start, so no Trifle writer can come between the read and the write): the batch
    /// id first (if it is there already, nothing is written), the rows read, rewritten.
    pub(crate) async fn apply(
        pool: &SqlitePool,
        table: &str,
        batches: &str,
        batch: &Batch,
        id: Option<BatchId>,
        now: i64,
    ) -> R<()> {
        let mut ids: Vec<String> = batch.sorted_keys().into_iter().map(identifier).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(id) = id {
            let done = sqlx::query(&format!(
                r#"INSERT INTO "{batches}" (id, applied_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING"#
            ))
            .bind(id_bytes(id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(());
            }
        }
        let mut stored: HashMap<String, Option<String>> = HashMap::new();
        for chunk in ids.chunks(DOCS_PER_QUERY) {
            let rows: Vec<(String, Option<String>)> = select(table, chunk)
                .build_query_as()
                .fetch_all(&mut *tx)
                .await?;
            stored.extend(rows);
        }
        let written = apply_in_memory(batch, &stored)?;
        let upsert = format!(
            r#"INSERT INTO "{table}" (key, data) VALUES (?1, ?2)
            ON CONFLICT (key) DO UPDATE SET data = excluded.data"#
        );
        for (key, data) in &written {
            sqlx::query(&upsert)
                .bind(key)
                .bind(data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn read(
        pool: &SqlitePool,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
        let mut out = Vec::new();
        for chunk in ids.chunks(DOCS_PER_QUERY) {
            let rows: Vec<(String, Option<String>)> = select(table, chunk)
                .build_query_as()
                .fetch_all(pool)
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    pub(crate) async fn remove(
        pool: &SqlitePool,
        table: &str,
        ids: &[String],
    ) -> Result<u64, sqlx::Error> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut total = 0;
        for chunk in ids.chunks(DOCS_PER_QUERY) {
            let mut q =
                QueryBuilder::<Sqlite>::new(format!(r#"DELETE FROM "{table}" WHERE key IN ("#));
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            q.push(")");
            total += q.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(total)
    }

    pub(crate) async fn remove_metric(
        pool: &SqlitePool,
        table: &str,
        metric: &str,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(&format!(
            r#"DELETE FROM "{table}" WHERE key = ?1 OR substr(key, 1, length(?2)) = ?2"#
        ))
        .bind(metric)
        .bind(format!("{metric}::"))
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn keys_of(
        pool: &SqlitePool,
        table: &str,
        granularity: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(&format!(
            r#"SELECT key FROM "{table}" WHERE instr(key, ?1) > 0"#
        ))
        .bind(format!("::{granularity}::"))
        .fetch_all(pool)
        .await
    }
}

#[cfg(feature = "mysql")]
pub(crate) mod mysql {
    //! The Trifle layout's statements on MySQL/MariaDB.

    use std::collections::HashMap;

    use sqlx::{MySql, MySqlPool, QueryBuilder};

    use super::{Fail, apply_in_memory, id_bytes, identifier};
    use crate::dialect::DOCS_PER_QUERY;
    use stats_core::{Batch, BatchId};

    type R<T> = Result<T, Fail>;

    fn text(bytes: Vec<u8>) -> Result<String, sqlx::Error> {
        String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    /// `<head> (<chunk>)<tail>`, the identifiers bound.
    fn keyed<'q>(head: String, chunk: &'q [String], tail: &str) -> QueryBuilder<'q, MySql> {
        let mut q = QueryBuilder::<MySql>::new(head);
        q.push(" (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id.as_str());
        }
        q.push(")").push(tail.to_owned());
        q
    }

    fn rows(
        raw: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
        raw.into_iter()
            .map(|(k, d)| Ok((text(k)?, d.map(text).transpose()?)))
            .collect()
    }

    /// Applies a batch in one transaction: the batch id first (if it is there already, nothing
    /// is written), then every row the batch writes is created empty if missing (a no-op
    /// `ON DUPLICATE KEY UPDATE`, which locks an existing row without changing it), read with
    /// `FOR UPDATE` in identifier order, and rewritten.
    pub(crate) async fn apply(
        pool: &MySqlPool,
        table: &str,
        batches: &str,
        batch: &Batch,
        id: Option<BatchId>,
        now: i64,
    ) -> R<()> {
        let mut ids: Vec<String> = batch.sorted_keys().into_iter().map(identifier).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = pool.begin().await?;
        if let Some(id) = id {
            let done = sqlx::query(&format!(
                "INSERT IGNORE INTO `{batches}` (id, applied_at) VALUES (?, ?)"
            ))
            .bind(id_bytes(id))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(());
            }
        }
        let mut stored: HashMap<String, Option<String>> = HashMap::new();
        for chunk in ids.chunks(DOCS_PER_QUERY) {
            let mut q =
                QueryBuilder::<MySql>::new(format!("INSERT INTO `{table}` (`key`, `data`) "));
            q.push_values(chunk, |mut b, id| {
                b.push_bind(id.as_str()).push("'{}'");
            });
            q.push(" ON DUPLICATE KEY UPDATE `key` = `key`");
            q.build().execute(&mut *tx).await?;
            let raw: Vec<(Vec<u8>, Option<Vec<u8>>)> = keyed(
                format!("SELECT `key`, CAST(`data` AS CHAR) FROM `{table}` WHERE `key` IN"),
                chunk,
                " ORDER BY `key` FOR UPDATE",
            )
            .build_query_as()
            .fetch_all(&mut *tx)
            .await?;
            stored.extend(rows(raw)?);
        }
        let written = apply_in_memory(batch, &stored)?;
        let update = format!("UPDATE `{table}` SET `data` = ? WHERE `key` = ?");
        for (key, data) in &written {
            sqlx::query(&update)
                .bind(data)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn read(
        pool: &MySqlPool,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
        let mut out = Vec::new();
        for chunk in ids.chunks(DOCS_PER_QUERY) {
            let raw: Vec<(Vec<u8>, Option<Vec<u8>>)> = keyed(
                format!("SELECT `key`, CAST(`data` AS CHAR) FROM `{table}` WHERE `key` IN"),
                chunk,
                "",
            )
            .build_query_as()
            .fetch_all(pool)
            .await?;
            out.extend(rows(raw)?);
        }
        Ok(out)
    }

    pub(crate) async fn remove(
        pool: &MySqlPool,
        table: &str,
        ids: &[String],
    ) -> Result<u64, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let mut total = 0;
        for chunk in ids.chunks(DOCS_PER_QUERY) {
            total += keyed(format!("DELETE FROM `{table}` WHERE `key` IN"), chunk, "")
                .build()
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(total)
    }

    pub(crate) async fn remove_metric(
        pool: &MySqlPool,
        table: &str,
        metric: &str,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(&format!(
            "DELETE FROM `{table}` WHERE `key` = ? OR LEFT(`key`, CHAR_LENGTH(?)) = ?"
        ))
        .bind(metric)
        .bind(format!("{metric}::"))
        .bind(format!("{metric}::"))
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn keys_of(
        pool: &MySqlPool,
        table: &str,
        granularity: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        let raw: Vec<Vec<u8>> = sqlx::query_scalar(&format!(
            "SELECT `key` FROM `{table}` WHERE LOCATE(?, `key`) > 0"
        ))
        .bind(format!("::{granularity}::"))
        .fetch_all(pool)
        .await?;
        raw.into_iter().map(text).collect()
    }
}

/// The [`MetricStore`](stats_core::MetricStore) calls of a store in the Trifle layout.
impl crate::store::SqlStore {
    /// The Trifle table, if this store is in the Trifle layout.
    pub(crate) fn trifle_table(&self) -> Option<&str> {
        match self.config.metric_layout() {
            Layout::Trifle(t) => Some(t.name()),
            Layout::Ours => None,
        }
    }

    fn unsupported() -> Error {
        Error::Unsupported {
            store: crate::STORE_NAME,
            operation: "the Trifle layout (no database feature compiled in)",
        }
    }

    /// Applies a batch (see [`postgres::apply`], [`sqlite::apply`], [`mysql::apply`]), running it again after a
    /// deadlock or serialization failure as the default layout does.
    pub(crate) async fn trifle_apply(&self, table: &str, batch: &Batch) -> Result<()> {
        let id = batch.id();
        let now = jiff::Timestamp::now().as_second();
        let batches = self.config.tables().batches();
        let mut reruns = 0;
        loop {
            let outcome: std::result::Result<(), Fail> = match *self.backend {
                #[cfg(feature = "postgres")]
                crate::store::Backend::Postgres(ref db) => {
                    postgres::apply(db.pool(), table, &batches, batch, id, now).await
                }
                #[cfg(feature = "sqlite")]
                crate::store::Backend::Sqlite(ref db) => {
                    sqlite::apply(db.pool(), table, &batches, batch, id, now).await
                }
                #[cfg(feature = "mysql")]
                crate::store::Backend::MySql(ref db) => {
                    mysql::apply(db.pool(), table, &batches, batch, id, now).await
                }
                #[allow(unreachable_patterns)]
                _ => Err(Fail::Core(Self::unsupported())),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(Fail::Core(e)) => return Err(e),
                Err(Fail::Sql(e)) => match crate::error::classify(e, self.config.acquire_timeout) {
                    crate::error::Failure::Rerun(_) if reruns < self.config.deadlock_reruns => {
                        reruns += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(1 << reruns.min(6)))
                            .await;
                    }
                    crate::error::Failure::Rerun(e) => return Err(self.error(e)),
                    crate::error::Failure::Other(e) => return Err(e),
                    crate::error::Failure::Overflow(detail) => {
                        return Err(Error::Overflow {
                            key: String::new(),
                            path: None,
                            detail,
                        });
                    }
                    crate::error::Failure::Conflict(m) => {
                        return Err(Error::Backend {
                            store: crate::STORE_NAME,
                            retryable: false,
                            source: m.into(),
                        });
                    }
                },
            }
        }
    }

    /// The stored `data` of these identifiers, by identifier.
    pub(crate) async fn trifle_rows(
        &self,
        table: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Option<String>>> {
        let rows: std::result::Result<Vec<(String, Option<String>)>, sqlx::Error> = match *self
            .backend
        {
            #[cfg(feature = "postgres")]
            crate::store::Backend::Postgres(ref db) => postgres::read(db.pool(), table, ids).await,
            #[cfg(feature = "sqlite")]
            crate::store::Backend::Sqlite(ref db) => sqlite::read(db.pool(), table, ids).await,
            #[cfg(feature = "mysql")]
            crate::store::Backend::MySql(ref db) => mysql::read(db.pool(), table, ids).await,
            #[allow(unreachable_patterns)]
            _ => return Err(Self::unsupported()),
        };
        Ok(rows.map_err(|e| self.error(e))?.into_iter().collect())
    }

    /// The documents of these keys, in order (blank where missing).
    pub(crate) async fn trifle_read(&self, table: &str, keys: &[Key]) -> Result<Vec<Values>> {
        let mut ids: Vec<String> = keys.iter().map(identifier).collect();
        let wanted = ids.clone();
        ids.sort_unstable();
        ids.dedup();
        let rows = self.trifle_rows(table, &ids).await?;
        wanted
            .iter()
            .map(|id| values(id, rows.get(id).and_then(|d| d.as_deref())))
            .collect()
    }

    pub(crate) async fn trifle_remove(&self, table: &str, keys: &[Key]) -> Result<u64> {
        let mut ids: Vec<String> = keys.iter().map(identifier).collect();
        ids.sort_unstable();
        ids.dedup();
        self.trifle_remove_ids(table, &ids).await
    }

    async fn trifle_remove_ids(&self, table: &str, ids: &[String]) -> Result<u64> {
        let done: std::result::Result<u64, sqlx::Error> = match *self.backend {
            #[cfg(feature = "postgres")]
            crate::store::Backend::Postgres(ref db) => {
                postgres::remove(db.pool(), table, ids).await
            }
            #[cfg(feature = "sqlite")]
            crate::store::Backend::Sqlite(ref db) => sqlite::remove(db.pool(), table, ids).await,
            #[cfg(feature = "mysql")]
            crate::store::Backend::MySql(ref db) => mysql::remove(db.pool(), table, ids).await,
            #[allow(unreachable_patterns)]
            _ => return Err(Self::unsupported()),
        };
        done.map_err(|e| self.error(e))
    }

    pub(crate) async fn trifle_remove_metric(&self, table: &str, metric: &str) -> Result<u64> {
        let done: std::result::Result<u64, sqlx::Error> = match *self.backend {
            #[cfg(feature = "postgres")]
            crate::store::Backend::Postgres(ref db) => {
                postgres::remove_metric(db.pool(), table, metric).await
            }
            #[cfg(feature = "sqlite")]
            crate::store::Backend::Sqlite(ref db) => {
                sqlite::remove_metric(db.pool(), table, metric).await
            }
            #[cfg(feature = "mysql")]
            crate::store::Backend::MySql(ref db) => {
                mysql::remove_metric(db.pool(), table, metric).await
            }
            #[allow(unreachable_patterns)]
            _ => return Err(Self::unsupported()),
        };
        done.map_err(|e| self.error(e))
    }
}

/// Deletes the buckets of `granularity` that start before `before` from the Trifle table: the
/// keys holding `::<granularity>::` are listed, parsed, and those that are buckets of that
/// granularity starting before `before` deleted (status rows, which hold no `::`, never).
/// Shared by [`MetricStore::purge`](stats_core::MetricStore::purge) and the retention sweep.
pub(crate) async fn purge(
    backend: &crate::store::Backend,
    table: &str,
    granularity: &str,
    before: i64,
) -> std::result::Result<u64, sqlx::Error> {
    let keys: Vec<String> = match *backend {
        #[cfg(feature = "postgres")]
        crate::store::Backend::Postgres(ref db) => {
            postgres::keys_of(db.pool(), table, granularity).await?
        }
        #[cfg(feature = "sqlite")]
        crate::store::Backend::Sqlite(ref db) => {
            sqlite::keys_of(db.pool(), table, granularity).await?
        }
        #[cfg(feature = "mysql")]
        crate::store::Backend::MySql(ref db) => {
            mysql::keys_of(db.pool(), table, granularity).await?
        }
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    };
    let expired: Vec<String> = keys
        .into_iter()
        .filter(|k| {
            parse_identifier(k).is_some_and(|(_, g, start)| g == granularity && start < before)
        })
        .collect();
    if expired.is_empty() {
        return Ok(0);
    }
    match *backend {
        #[cfg(feature = "postgres")]
        crate::store::Backend::Postgres(ref db) => {
            postgres::remove(db.pool(), table, &expired).await
        }
        #[cfg(feature = "sqlite")]
        crate::store::Backend::Sqlite(ref db) => sqlite::remove(db.pool(), table, &expired).await,
        #[cfg(feature = "mysql")]
        crate::store::Backend::MySql(ref db) => mysql::remove(db.pool(), table, &expired).await,
        #[allow(unreachable_patterns)]
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stats_core::values;

    #[test]
    fn numbers_are_written_so_that_their_kind_reads_back() {
        assert_eq!(json_number(Number::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(json_number(Number::Float(2.0)), "2.0");
        assert_eq!(json_number(Number::Float(1e20)), "100000000000000000000.0");
        assert_eq!(json_number(Number::Float(0.1)), "0.1");
        for f in [
            5e-324,
            f64::MAX,
            -f64::MAX,
            1e15,
            1e16,
            1.0 / 3.0,
            2f64.powi(53) + 2.0,
        ] {
            let text = json_number(Number::Float(f));
            let back: serde_json::Number = serde_json::from_str(&text).unwrap();
            assert_eq!(number(&back, "x", "p").unwrap(), Number::Float(f), "{text}");
        }
    }

    #[test]
    fn unpack_merges_as_trifle_does() {
        // Trifle's SQLite driver inserts `{"by.eu":1}` and later `json_set`s `$.by.eu`, which
        // nests: the later, nested entry wins, as in `Packer.unpack`.
        let leaves = unpack("k", Some(r#"{"count":2,"by.eu":1,"by":{"eu":5,"us":1}}"#)).unwrap();
        assert_eq!(
            leaves,
            [
                ("by.eu".to_owned(), Number::Int(5)),
                ("by.us".to_owned(), Number::Int(1)),
                ("count".to_owned(), Number::Int(2)),
            ]
        );
        // A number after a map replaces it, and the reverse.
        assert_eq!(
            unpack("k", Some(r#"{"a.b":1,"a":2}"#)).unwrap(),
            [("a".to_owned(), Number::Int(2))]
        );
        assert_eq!(
            unpack("k", Some(r#"{"a":2,"a.b":1}"#)).unwrap(),
            [("a.b".to_owned(), Number::Int(1))]
        );
        assert_eq!(
            values("k", Some(r#"{"n": 1.0e+20, "m": 3.0000000000, "i": -7}"#)).unwrap(),
            values!({"n": 1e20, "m": 3.0, "i": -7})
        );
        assert!(unpack("k", None).unwrap().is_empty());
        for hostile in [
            r#"{"a":"x"}"#,
            r#"{"a":[1]}"#,
            r#"{"a":null}"#,
            r#"{"a":true}"#,
            r#"{"a":9223372036854775808}"#,
            "[1]",
            "not json",
        ] {
            let err = unpack("k", Some(hostile)).unwrap_err();
            assert!(
                matches!(err, Error::InvalidValue { .. }),
                "{hostile}: {err}"
            );
            assert!(err.to_string().contains("\"k\""), "{err}");
        }
    }

    #[test]
    fn identifiers_are_trifles_full_keys() {
        let key = Key::bucket("orders", "1h".parse().unwrap(), 1_699_999_200).unwrap();
        assert_eq!(identifier(&key), "orders::1h::1699999200");
        assert_eq!(
            parse_identifier("orders::1h::1699999200"),
            Some(("orders", "1h", 1_699_999_200))
        );
        assert_eq!(identifier(&Key::status("orders").unwrap()), "orders");
        assert_eq!(parse_identifier("orders"), None);
        assert_eq!(parse_identifier("a::1h::x"), None);
    }

    #[test]
    fn batches_apply_in_memory_with_the_cores_rules() {
        let key = Key::bucket("m", "1h".parse().unwrap(), 0).unwrap();
        let mut stored = HashMap::new();
        stored.insert(
            "m::1h::0".to_owned(),
            Some(r#"{"count":i64max}"#.replace("i64max", &i64::MAX.to_string())),
        );
        let mut b = Batch::new();
        b.inc([key.clone()], &values!({"count": 1})).unwrap();
        let err = apply_in_memory(&b, &stored).unwrap_err();
        assert!(matches!(err, Error::Overflow { .. }), "{err}");
        let mut b = Batch::new();
        b.inc([key.clone()], &values!({"count": {"x": 1}})).unwrap();
        assert!(matches!(
            apply_in_memory(&b, &stored).unwrap_err(),
            Error::PathConflict { .. }
        ));
        let mut b = Batch::new();
        b.inc([key.clone()], &values!({"by": {"eu": 1.5}, "n": 2}))
            .unwrap();
        b.max([key.clone()], &values!({"n": 1})).unwrap();
        assert_eq!(
            apply_in_memory(&b, &HashMap::new()).unwrap(),
            [("m::1h::0".to_owned(), r#"{"by.eu":1.5,"n":2}"#.to_owned())]
        );
    }
}
