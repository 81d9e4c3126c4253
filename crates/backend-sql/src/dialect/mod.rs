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
