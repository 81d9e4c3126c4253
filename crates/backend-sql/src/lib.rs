//! The SQL store of `stats`: PostgreSQL, MySQL/MariaDB and SQLite, with sqlx on tokio.
//!
//! [`SqlStore`] implements [`MetricStore`](stats_core::MetricStore),
//! [`CounterStore`](stats_core::CounterStore) and [`ThrottleStore`](stats_core::ThrottleStore).
//! Each database is behind a crate feature (`postgres`, `mysql`, `sqlite`) that compiles its
//! driver in; the URL picks the database at run time.
//!
//! ```no_run
//! # async fn demo() -> stats_core::Result<()> {
//! use stats_backend_sql::{SqlConfig, SqlStore};
//! use stats_core::{Batch, Key, MetricStore, values};
//!
//! let config = SqlConfig::from_url("postgres://app:secret@db.internal/app")?
//!     .table_prefix("metrics")?
//!     .max_connections(16);
//! let store = SqlStore::connect(config).await?;
//! store.setup().await?; // idempotent: creates the tables if missing
//!
//! let key = Key::bucket("orders", "1h".parse()?, 1_700_002_800)?;
//! let mut batch = Batch::new();
//! batch.inc([key.clone()], &values!({"count": 1, "amount": 12.5}))?;
//! store.apply(&batch).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! Three tables, named from a prefix (default `stats`; it must match
//! `^[a-z_][a-z0-9_]{0,40}$`, see [`TableNames`], and is quoted in every statement as well):
//!
//! | table | columns | primary key | holds |
//! |---|---|---|---|
//! | `<prefix>_buckets` | `metric`, `granularity`, `at` (bucket start, unix seconds), `path`, `op`, `int_value`, `float_value` | (`metric`, `granularity`, `at`, `path`) | one row per leaf of a bucket document, by flattened path (`by.country`) |
//! | `<prefix>_counters` | `namespace`, `counter_key`, `value` | (`namespace`, `counter_key`) | one row per counter |
//! | `<prefix>_throttles` | `throttle_key`, `expires_at` (unix milliseconds), index `<prefix>_throttles_expires_at` | (`throttle_key`) | one row per throttle key |
//! | `<prefix>_batches` | `id` (16 bytes), `applied_at` (unix seconds), index `<prefix>_batches_applied_at` | (`id`) | one row per batch applied with an id in the last 24 hours |
//!
//! - A batch with an id ([`Batch::with_id`](stats_core::Batch::with_id)) runs in one
//!   transaction that first inserts its id into `<prefix>_batches`; if the id is there already
//!   the batch was applied and the transaction is rolled back (the apply returns `Ok`). So a
//!   retry after an ambiguous failure applies once
//!   ([`Capabilities::idempotent_batch`](stats_core::Capabilities::idempotent_batch)). Ids
//!   older than [`BATCH_ID_WINDOW`](stats_core::BATCH_ID_WINDOW) are deleted by an apply with
//!   an id, at most once a minute per store. Tables set up by an older version get
//!   `<prefix>_batches` when `setup` runs again; until then an apply with an id fails.
//!
//! - A leaf holds its number in `int_value` (an exact `i64`) or `float_value` (an `f64`), never
//!   both: the CHECK constraint `<prefix>_buckets_one_number` says so. A row with neither is a
//!   map marker: writing `by.eu` also writes the row `by`, which says `by` is a map, so that a
//!   later write of a number at `by` (or of a map below a number) is refused as a path conflict
//!   in the same statement. Reads skip markers.
//! - A metric's status slot ([`Key::status`](stats_core::Key::status)) is the document with
//!   `granularity = ''` and `at = 0`; no bucket has an empty granularity.
//! - `op` carries the incoming operation into the upsert (see below); its stored value has no
//!   meaning for readers.
//! - A bucket read ([`range`](stats_core::MetricStore::range)) is one scan of the primary key:
//!   `WHERE metric = $1 AND granularity = $2 AND at BETWEEN $3 AND $4`, aligned to the starts
//!   asked afterwards. A read by keys is one statement (PostgreSQL) or one per 500 documents.
//!
//! | column kind | PostgreSQL | MySQL/MariaDB | SQLite |
//! |---|---|---|---|
//! | names | `text COLLATE "C"` | `VARBINARY(200)`, paths `VARBINARY(400)`, granularity `VARBINARY(16)` | `TEXT` (binary collation) |
//! | integers | `bigint` | `BIGINT` | `INTEGER` |
//! | floats | `double precision` | `DOUBLE` | `REAL` |
//! | table options | `fillfactor = 80` (buckets, counters) | InnoDB | `STRICT`, `WITHOUT ROWID` |
//!
//! Numbers are bound and read as `i64` and `f64` in the drivers' binary protocols, never as
//! text, so every value comes back bit for bit on all three databases: `i64::MIN` and
//! `i64::MAX`, `f64::MAX`, the smallest subnormal `5e-324` (MariaDB's `DOUBLE` keeps it),
//! `0.1`, `1/3` (checked by the conformance suite). `-0.0` never reaches them: the core
//! normalises it to `0.0`, which MySQL and SQLite could not tell apart anyway.
//!
//! Names compare byte by byte on every database: `é` is not `e`, `A` is not `a`, `x ` is not
//! `x`. Changing the time zone or week start of a tracker on existing data changes which bucket
//! starts it writes: that is a schema change (the old rows stay where they are).
//!
//! # Trifle layout
//!
//! [`SqlConfig::layout`]`(`[`Layout::Trifle`]`(`[`TrifleTable::default()`]`))` keeps metric
//! documents in the table of Trifle 2.6 (the Ruby gem `trifle-stats`,
//! `Trifle::Stats::Driver::Postgres`, `::Sqlite` and `::Mysql` with their defaults), so that a Rust
//! service and a Trifle application share one database: `Tracker::values` here over rows
//! Trifle wrote, and Trifle's `values` over rows written here, give the same numbers. The
//! default stays [`Layout::Ours`].
//!
//! ```no_run
//! # async fn demo() -> stats_core::Result<()> {
//! use stats_backend_sql::{Layout, SqlConfig, SqlStore, TrifleTable};
//! let config = SqlConfig::from_url("postgres://app@db.internal/app")?
//!     .layout(Layout::Trifle(TrifleTable::default()))?; // table `trifle_stats`
//! let store = SqlStore::connect(config).await?;
//! store.setup().await?; // creates `trifle_stats` as Trifle's setup! does, if missing
//! # Ok(()) }
//! ```
//!
//! The table is Trifle's `joined_identifier: :full` (its default): one row per bucket,
//!
//! | database | table (created by `setup` if missing, as Trifle's `setup!` creates it) |
//! |---|---|
//! | PostgreSQL | `key VARCHAR(255) PRIMARY KEY, data JSONB NOT NULL DEFAULT '{}'::jsonb` |
//! | SQLite | `key varchar(255), data json`, unique index `idx_<table>_key` on `key` |
//! | MySQL/MariaDB | `` `key` VARCHAR(255) PRIMARY KEY, `data` JSON NOT NULL ``, created here with `utf8mb4_bin` so that keys compare byte by byte (Trifle's `setup!` takes the server's default collation, usually case-insensitive) |
//!
//! - `key` is `<metric>::<granularity>::<unix start>` (`orders::1h::1699999200`); a status slot
//!   ([`Key::status`](stats_core::Key::status), Trifle has none) is the bare metric
//!   (`orders`), which no Trifle bucket key can be.
//! - `data` is the bucket as one JSON object of dot-joined paths (Trifle's `Packer.pack`):
//!   `{"count": 1, "amount": 12.5, "by.eu": 1}`.
//! - With [`Config::system_index`](stats_core::tracker::Config::system_index) the tracker
//!   writes Trifle's `system_tracking` rows: `__system__key__::<granularity>::<unix start>`
//!   with `{"count": n, "keys.<metric>": n}`. (A metric with a `.` differs: Trifle nests it,
//!   the tracker percent-escapes it, `keys.a%2Eb`.)
//! - Partial and separated identifiers (`joined_identifier: :partial` or `nil`, with `at` and
//!   `granularity` columns) are not offered.
//! - Counters, throttles and batch ids stay in this store's own tables (`setup` creates
//!   them as well, with the table prefix); Trifle never sees them. `drop_tables` drops the
//!   Trifle table too.
//!
//! **Writes.** A batch is one transaction: its batch id into `<prefix>_batches` (if there
//! already, nothing is written), then the rows it writes are read under a lock (PostgreSQL:
//! created empty if missing with `ON CONFLICT DO NOTHING`, then `SELECT ... ORDER BY key FOR
//! UPDATE`, which Trifle's own upserts wait for; MySQL: the same with a no-op `ON DUPLICATE
//! KEY UPDATE`; SQLite: `BEGIN IMMEDIATE`, the database's write lock), the batch is applied to them in memory with the core's rules, update by update
//! in batch order, and each row's whole object is written back. Reads unpack as Trifle's
//! `Packer.unpack` does: entries in stored order, paths split at `.`, a later entry merged
//! over an earlier one (maps merge, anything else is replaced). Numbers: a JSON integer that
//! fits `i64` is an integer, any other number a float (`2.0`, Ruby's `1.0e+20`, the
//! `2.0000000000` of Trifle's MySQL `DECIMAL(65,10)` sums, as Ruby reads them too); an integer
//! above `i64::MAX` (up to `u64::MAX`), a string, `true`, `null` or an array is refused with
//! [`Error::InvalidValue`](stats_core::Error::InvalidValue) naming the row and path. Floats are
//! written as plain decimals with a fraction (`2.0`, `1e20` as `100000000000000000000.0`),
//! because `jsonb` prints no exponent and would otherwise give back `1e20` as an integer.
//!
//! | guarantee | our layout | Trifle layout |
//! |---|---|---|
//! | a batch is atomic ([`Capabilities::atomic_batch`](stats_core::Capabilities::atomic_batch)) | yes | yes: one transaction |
//! | a batch with an id applies once ([`Capabilities::idempotent_batch`](stats_core::Capabilities::idempotent_batch)) | yes | yes: the id in `<prefix>_batches`, invisible to Trifle |
//! | integer sums exact, overflow refused naming key and path | yes (in SQL) | yes (in memory, under the row lock); Trifle's own increments cast to `int` (32 bits) on PostgreSQL and fail past ±2^31 |
//! | float kind kept (`2.0` stays a float) | yes (`float_value` column) | on rows written here, yes (`2.0`); Trifle's rows keep it while their text has a `.` or exponent, but PostgreSQL turns Ruby's `1.0e+16` into `10000000000000000`, read as an integer (the same number, as Trifle reads it) |
//! | float sums | IEEE doubles in SQL | IEEE doubles in memory; Trifle on PostgreSQL cannot add to a stored float at all (`'12.5'::int` fails), Trifle on SQLite adds doubles, Trifle on MySQL adds `DECIMAL(65,10)` (10 decimal places; its integer sums become floats) |
//! | path conflicts refused (a number below a number, a map replaced by a number) | yes (map marker rows) | yes within what `data` shows: the map/number shape is derived from the paths; no marker rows, so a map whose leaves were all removed is forgotten |
//! | max, min | yes | yes (Trifle has neither) |
//! | deadlock-free concurrent batches | rows in key order | rows locked in key order |
//! | purge | primary key ranges | lists keys holding `::<granularity>::`, deletes the expired ones by key: a scan of the table, not atomic with concurrent writes of those buckets |
//! | `remove_metric` | exact, counted under lock | `key = <metric> OR key starts with <metric>::`, counted by the delete |
//!
//! Trifle 2.6's SQLite driver inserts a new row with top-level dotted keys (`{"by.eu": 1}`) and
//! adds with `json_set(data, '$.by.eu', ...)`, which SQLite reads as a nested path: the next
//! increment writes `{"by.eu": 1, "by": {"eu": 1}}`, and Trifle's `unpack` lets the nested,
//! later entry win, so nested fields count from 0 after the first event. This store reads
//! such rows exactly as Trifle does (same numbers) and writes them back packed (`{"by.eu": 2}`),
//! which Trifle then reads correctly until its next increment nests again. Top-level fields
//! (`count`) are not affected. Trifle's MySQL driver quotes its paths (`$."by.eu"`) and keeps
//! them top-level; its insert uses `CAST(? AS JSON)`, which MariaDB lacks, so on MariaDB only
//! its conflict branch runs (the tests run that on rows written here). Versions of the drivers
//! followed: the PostgreSQL driver with `joined_identifier` and `system_tracking`, and the
//! SQLite and MySQL drivers of the latest generation (with `count:` and `tracking_key:`);
//! earlier SQLite versions write the same rows.
//!
//! # Storage decision: one row per leaf
//!
//! Two layouts were built far enough to measure bucket-field writes per second on PostgreSQL
//! 15 (default, durable settings) on this project's 2-core machine, with
//! `benches/benches/sql.rs` (4 tasks, batches of 1,000 increments), each beside the raw 100-row
//! upsert measured in the same run:
//!
//! - (a) one row per flattened path, `(metric, granularity, at, path) -> (int_value,
//!   float_value)`, multi-row `INSERT ... ON CONFLICT ... DO UPDATE` (this crate);
//! - (b) one row per bucket with a `jsonb` document of flattened paths, merged in SQL:
//!   `data = (SELECT jsonb_object_agg(k, <sum by kind>) FROM jsonb_each(t.data) o(k, v)
//!   FULL JOIN jsonb_each(EXCLUDED.data) n(k, v) USING (k))`, integers as JSON numbers summed
//!   as `int8` (overflow raises), floats as JSON strings summed as `float8` (so the kind
//!   survives). Only increments were built; max, min, set and path conflicts would have made it
//!   slower still.
//!
//! Field writes per second (median, with criterion's 95% interval), same run:
//!
//! | workload | (a) rows | (b) jsonb | raw upsert |
//! |---|---|---|---|
//! | dense: all 100 fields of each of 10 buckets per batch | 155,000 (128,000-175,000) | 779,000 (749,000-795,000) | 213,000-230,000 |
//! | sparse: 10 fields of each of 100 buckets holding 1,000 fields | 164,000 (155,000-173,000) | 20,000 (19,400-21,100) | 225,000-279,000 |
//!
//! (b) wins only when a batch rewrites every field of its buckets: its cost is the size of the
//! bucket document, which PostgreSQL rewrites whole (and TOASTs past 2 kB) on every update,
//! however few fields change. (a) costs the same per written field whatever the bucket holds.
//! Tracker writes touch a few fields of buckets that grow with every new dimension value (a
//! `by.country` map), so (a) is the layout: 8 times faster on the sparse workload, steady as
//! buckets grow, exact for both number kinds with the database's own arithmetic, and the same
//! simple SQL on all three databases (MySQL has no `FULL JOIN`, and each database's JSON
//! functions differ). An earlier (b) with an integer-only merge measured 847,000 dense; the
//! lead's generic deep merge measured 20,000 to 60,000, which is where (b) lands once documents
//! are large. The bench keeps only layout (a).
//!
//! # Performance
//!
//! `cargo xtask bench sql` (groups `sql/postgres-write`, `sql/postgres-range`,
//! `sql/sqlite-write`, `sql/sqlite-range`; see the bench's docs for the cases), medians of two
//! runs each on the 2-core machine, ours beside raw sqlx in the same run:
//!
//! | case | ours | raw | ours/raw |
//! |---|---|---|---|
//! | PostgreSQL write, field writes/s (xtask's throwaway server, `fsync=off`) | 283,000-325,000 | 325,000-389,000 | 0.84, 0.87 |
//! | PostgreSQL write, field writes/s (durable server, default settings) | 147,000-155,000 | 230,000-231,000 | 0.64, 0.67 |
//! | PostgreSQL range of 720 buckets, buckets/s | 262,000-272,000 | 353,000-370,000 | 0.74, 0.73 |
//! | SQLite write, field writes/s (WAL, `synchronous = NORMAL`) | 516,000-537,000 | 508,000-522,000 | 1.06, 0.99 |
//! | SQLite range of 720 buckets, buckets/s | 115,000-139,000 | 101,000-159,000 | 1.36 (raw ±48%), 0.72 |
//!
//! The spread (median absolute deviation over the median) was 3-13% except where noted. A write
//! batch is one statement of 1,000 rows against ten of 100 for raw; a range builds 720 documents
//! from 2,880 rows, which raw only collects.
//!
//! # Writes
//!
//! A [`Batch`](stats_core::Batch) becomes upsert statements in one transaction (or one
//! autocommitted statement when it fits in one, which is then atomic on its own):
//!
//! 1. Updates of one leaf that fold without changing the result are folded in memory: a `set`
//!    followed by anything is one `set`; integer increments of one sign add up; maxima fold.
//! 2. The `n`-th remaining update of a leaf goes into round `n`: one statement cannot update a
//!    row twice. Rounds run in order, so writes take effect in batch order.
//! 3. Each round's rows are sorted by (metric, granularity, start, path), the order in which
//!    statements lock rows, so that concurrent batches lock shared rows in the same order and
//!    cannot deadlock (later rounds only touch rows the first already locked). The test
//!    `concurrent_batches_in_different_orders_do_not_deadlock` fails without the sort.
//! 4. One statement applies every kind of update: each row carries its `op`, and the `DO UPDATE`
//!    computes from the stored and incoming row whether to add (integers with the database's
//!    checked `bigint` arithmetic, or as floats once either is a float), replace (set; max or
//!    min when the incoming number wins, compared exactly across integers and floats), keep, or
//!    refuse a path conflict (by setting both number columns, which the CHECK constraint
//!    rejects).
//!
//! Values are always bound parameters: PostgreSQL binds each column as one array and reads it
//! with `UNNEST` (one prepared statement for any batch size); MySQL and SQLite use sqlx's
//! `QueryBuilder::push_values`, 1,000 rows per statement. Only table names, already checked, are
//! placed in SQL text.
//!
//! # What is atomic
//!
//! - A metric batch is one transaction: all of it or nothing
//!   ([`Capabilities::atomic_batch`](stats_core::Capabilities::atomic_batch)). On overflow or a
//!   path conflict the transaction rolls back; the store then reads the batch's documents and
//!   replays the batch in memory to name the first failing key and path in the error.
//! - A batch the database rolled back for a deadlock or a serialization failure is run again,
//!   up to [`SqlConfig::deadlock_reruns`] times (default 5), with a short random pause.
//! - Counters: `inc` is one upsert (`INSERT ... ON CONFLICT DO UPDATE SET value = value + step
//!   RETURNING value`; MySQL: the upsert and a read of the locked row in one transaction).
//!   `default + step` is checked before sending; `value + step` overflows in the database,
//!   which writes nothing; the store then reads the counter to report
//!   [`Error::counter_overflow`](stats_core::Error::counter_overflow)
//!   (`<namespace>/<key>: <current> + <step>`, as every store does), and runs the increment
//!   again if the counter changed in between so that it fits.
//!   `compare_and_swap` is one conditional `UPDATE ... WHERE value = expected` (or an insert
//!   when the counter is missing and `expected` is 0); on a mismatch the current value is read
//!   and reported.
//! - Throttles: `try_acquire` is one statement, `INSERT ... ON CONFLICT DO UPDATE SET
//!   expires_at = ... WHERE expires_at <= now` (MySQL: delete the key if expired, then
//!   `INSERT IGNORE`; only one caller can find it free). The clock is the database's
//!   (PostgreSQL, MySQL), so application servers with drifting clocks agree; on SQLite it is
//!   the local machine's. TTLs up to [`MAX_TTL`](stats_core::store::MAX_TTL) (100 years)
//!   are held as given (as milliseconds, far inside `bigint`); longer ones are refused before
//!   any SQL. Expired rows are reused on the next acquire; call
//!   [`SqlStore::purge_expired_throttles`] now and then to delete the ones never used again.
//!
//! # Retention and removal
//!
//! - [`SqlConfig::retention`] keeps the buckets of each granularity for a period from their
//!   start (default: forever). [`SqlStore::connect`] then starts a tokio task that, every
//!   [`SqlConfig::sweep_interval`] (default 60 s, the first one interval after connecting),
//!   purges each granularity with a retention. The cutoff is by this machine's clock. The task
//!   holds only a weak reference to the pool and is aborted when the store is dropped or
//!   closed. It does not log: the failure of the latest sweep is kept for
//!   [`SqlStore::last_sweep_error`] (a sweep that succeeds clears it), and the next sweep
//!   tries again. [`SqlStore::purge_expired`] runs the same sweep on demand, and
//!   [`MetricStore::purge`](stats_core::MetricStore::purge) purges any granularity before any
//!   time. Status slots are never purged. Between sweeps, expired buckets are still read.
//! - A purge needs no index of its own. The primary key starts with the metric, so
//!   `WHERE granularity = ? AND at < ?` alone would scan the whole table (and on MySQL lock
//!   every row it scans), and an index on (`granularity`, `at`) would make every new row dearer:
//!   `cargo xtask bench sql -- fresh` measured 18% fewer new-bucket field writes per second on
//!   PostgreSQL (183,000 against 224,000 without it) and 39% fewer on SQLite (446,000 against
//!   727,000), medians of one run, spread 4-8%. So a purge lists the metrics by a loose scan of
//!   the primary key (one index descent per metric: a recursive `MIN(metric) ... WHERE metric >
//!   previous` on PostgreSQL and SQLite, MySQL's loose index scan for `DISTINCT`), then deletes
//!   `metric IN (...) AND granularity = ? AND at < ?`, one primary key range per metric, 500
//!   (PostgreSQL 1,000) metrics per statement: it costs one descent per metric plus the rows it
//!   deletes.
//! - [`MetricStore::remove_metric`](stats_core::MetricStore::remove_metric) deletes every row
//!   of one metric (`WHERE metric = ?`, exact, on the primary key) and returns the number of
//!   documents (distinct bucket starts and status) it held, counted under the same lock as the
//!   delete: PostgreSQL `DELETE ... RETURNING` counted in the same statement; MySQL a
//!   `SELECT ... FOR UPDATE` count and the delete in one transaction; SQLite both in one
//!   `BEGIN IMMEDIATE` transaction. `purge` counts its buckets the same way, per chunk of
//!   metrics.
//!
//! # Errors
//!
//! | driver error | core error | retryable |
//! |---|---|---|
//! | no pooled connection within the acquire timeout | [`Error::Timeout`](stats_core::Error::Timeout) | yes |
//! | I/O, pool closed; PostgreSQL `57P01`-`57P03`, `53300`, class `08`; MySQL 1040, 1053 | [`Error::Unavailable`](stats_core::Error::Unavailable) | yes |
//! | TLS: the server's certificate not trusted or not naming the host, TLS required but not offered | [`Error::Backend`](stats_core::Error::Backend) | no |
//! | PostgreSQL `40001`, `40P01`, `55P03`; MySQL 1213, 1205; SQLite `BUSY`, `LOCKED` | [`Error::Backend`](stats_core::Error::Backend) | yes |
//! | `bigint`/`double` out of range: PostgreSQL `22003`, MySQL 1690, SQLite "integer overflow" | [`Error::Overflow`](stats_core::Error::Overflow) | no |
//! | the `one_number` CHECK constraint | [`Error::PathConflict`](stats_core::Error::PathConflict) | no |
//! | bad URL or parameters | [`Error::InvalidInput`](stats_core::Error::InvalidInput) | no |
//! | anything else, constraint violations and refused logins included | [`Error::Backend`](stats_core::Error::Backend) | no |
//!
//! [`SqlStore::connect`] opens one connection of its own before the pool, within the acquire
//! timeout, because the pool retries a refused connection until its timeout and then reports
//! only the timeout. Its errors name the database by URL (password hidden) and keep the
//! driver's cause: `sql unavailable: cannot connect to postgres://app@db:5432/app: error
//! communicating with database: Connection refused (os error 111)`; an unknown host or an
//! unopenable SQLite file is named the same way. A server that goes away later makes calls
//! wait for the acquire timeout and fail with the retryable
//! [`Error::Timeout`](stats_core::Error::Timeout).
//!
//! A bad table prefix is [`Error::InvalidInput`](stats_core::Error::InvalidInput) from
//! [`SqlConfig::table_prefix`], before any connection. Bad names, keys and TTLs are refused by
//! the core's checks before any SQL.
//!
//! # Databases
//!
//! **PostgreSQL.** [`SqlStore::setup`] runs in one transaction under an advisory lock on the
//! prefix, so many processes (or tests) can run it at once: two concurrent
//! `CREATE TABLE IF NOT EXISTS` of one name can otherwise fail on the catalog's unique index.
//! `fillfactor = 80` leaves room on each page so that updates, which never change an indexed
//! column, stay on the page (HOT) without new index entries. Text columns use the `"C"`
//! collation: byte comparisons, the fastest for a primary key.
//!
//! **MySQL / MariaDB** (MySQL 8.0.17+ or MariaDB 10.4+, for enforced CHECK constraints and
//! `CAST(... AS DOUBLE)`; tested on MariaDB 10.11). Names are `VARBINARY`, so no collation folds case, accents or trailing
//! spaces; their lengths are the portable name rule's byte limits, so the primary key fits
//! InnoDB's index limit. `INSERT ... ON DUPLICATE KEY UPDATE` assigns left to right, each
//! assignment seeing the previous ones: the decision is stored in `op` first and the number
//! columns read it. Every session runs with `sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'`
//! (so MariaDB's `SIMULTANEOUS_ASSIGNMENT`, which would change that order, is off), and sqlx
//! runs sessions in UTC with `CLIENT_FOUND_ROWS` (a compare-and-swap to the same value counts
//! as a match). `setup` relies on the server's metadata locks for concurrent
//! `CREATE TABLE IF NOT EXISTS`; DDL commits on its own in MySQL.
//!
//! **SQLite** (bundled by sqlx, 3.46). Tables are `STRICT` and `WITHOUT ROWID` (rows in primary
//! key order: a range read is one contiguous scan). The file runs in WAL mode (readers never
//! wait for the writer) with `synchronous = NORMAL` (a commit survives the process crashing;
//! the last commits before a power loss may not) and a busy timeout
//! ([`SqlConfig::busy_timeout`], default 5 s). Transactions start with `BEGIN IMMEDIATE`, so
//! writers queue for the lock instead of failing on an upgrade. SQLite turns an integer sum that
//! leaves the `i64` range into a float, and a float sum past the largest double into infinity,
//! without an error; the store guards both sums in SQL (`CASE WHEN step > 0 AND value >
//! 9223372036854775807 - step ... THEN abs(-9223372036854775807 - 1)`, which SQLite refuses with
//! "integer overflow"), so overflow rolls back as on the other databases. `sqlite::memory:` is
//! one connection holding one database for the life of the store (not persistent).
//!
//! **TLS** to PostgreSQL and MySQL/MariaDB comes with the `tls` feature (`postgres-tls` or
//! `mysql-tls` of `stats`): rustls with its ring crypto provider, servers' certificates checked
//! against the system's trusted roots or a root file named in the URL. The URL's parameters
//! choose the mode (`sslmode=verify-full&sslrootcert=<path>` on PostgreSQL,
//! `ssl-mode=VERIFY_IDENTITY&ssl-ca=<path>` on MySQL/MariaDB); see [`SqlConfig::from_url`].
//!
//! # Tests
//!
//! `cargo xtask it postgres|mysql|sqlite` runs the conformance suite, the tracker checks and
//! this crate's own checks against a throwaway server (or `STATS_TEST_POSTGRES_URL`,
//! `STATS_TEST_MYSQL_URL`; SQLite files go to `STATS_TEST_SQLITE_DIR`). A missing URL is a
//! failure naming the command to run, never a skip. The Trifle layout has suites of its own:
//! `tests/trifle.rs` (PostgreSQL and SQLite, run by `it postgres`) and `tests/trifle_mysql.rs`
//! (`it mysql`): golden rows beside Trifle's statements, Trifle's rows read back, Trifle's
//! writers racing this store's, and the metric and tracker conformance checks.

#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(
        dead_code,
        unused_imports,
        unused_mut,
        unused_variables,
        unreachable_code,
        clippy::never_loop
    )
)]

mod config;
mod counters;
mod dialect;
mod error;
mod metrics;
mod plan;
mod store;
mod trifle;

pub use config::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_BUSY_TIMEOUT, DEFAULT_DEADLOCK_RERUNS,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SWEEP_INTERVAL, DEFAULT_TABLE_PREFIX, Database, Layout,
    MAX_TABLE_PREFIX_LEN, SqlConfig, TRIFLE_DEFAULT_TABLE, TableNames, TrifleTable,
};
pub use store::{STORE_NAME, SqlStore, SweepFailure};
