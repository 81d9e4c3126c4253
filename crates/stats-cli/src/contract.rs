//! The JSON contract shared by `stats import`, `stats values --format json` and the HTTP API.
//!
//! An **event** (one import line, one `POST /v1/track` body or one element of an array body):
//!
//! ```json
//! {"key": "orders", "at": "2026-12-07T10:15:00Z", "values": {"count": 1, "total": 49.9}, "op": "inc"}
//! ```
//!
//! - `key` (string, required): the metric key.
//! - `at` (optional, default now): unix seconds (an integer, or a number with a fraction) or an
//!   RFC 3339 string with an offset.
//! - `values` (object, required): nested maps of numbers; integers must fit `i64`.
//! - `op` (optional): `inc` (default), `set`, `max` or `min`.
//!
//! Any other field is refused (a typo is not silently ignored).
//!
//! A **series** (`stats values --format json`, `GET /v1/values`): every bucket of the timeline
//! from the bucket holding `from` to the one holding `to`, empty buckets as `{}`:
//!
//! ```json
//! {"key": "orders", "granularity": "1h", "at": ["2026-12-07T10:00:00+01:00"], "values": [{"count": 3}]}
//! ```

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use stats::{Op, Series, Values};

use crate::error::{CliError, CliResult};
use crate::time::{rfc3339_in, unix_seconds, unix_seconds_f64};

/// One event of the contract, checked: nothing about it can be refused by the name or number
/// rules any more (a store may still refuse it, for an overflow against what it holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The metric key.
    pub key: String,
    /// When it happened.
    pub at: Timestamp,
    /// The values.
    pub values: Values,
    /// What to do with them.
    pub op: Op,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    key: String,
    #[serde(default)]
    at: Option<serde_json::Value>,
    #[serde(borrow)]
    values: &'a RawValue,
    #[serde(default)]
    op: Option<String>,
}

/// The spelling of an [`Op`] in the contract.
pub fn op_name(op: Op) -> &'static str {
    match op {
        Op::Inc => "inc",
        Op::Set => "set",
        Op::Max => "max",
        Op::Min => "min",
    }
}

/// An [`Op`] from its spelling in the contract.
///
/// # Errors
/// [`CliError::Input`] naming the text.
pub fn parse_op(text: &str) -> CliResult<Op> {
    match text {
        "inc" => Ok(Op::Inc),
        "set" => Ok(Op::Set),
        "max" => Ok(Op::Max),
        "min" => Ok(Op::Min),
        other => Err(CliError::input(format!(
            "\"op\": {other:?} is not one of \"inc\", \"set\", \"max\", \"min\""
        ))),
    }
}

impl Event {
    /// Parses one event from JSON text; `now` is its `at` when it has none.
    ///
    /// ```
    /// use stats_cli::contract::Event;
    /// let now = "2026-12-07T12:00:00Z".parse()?;
    /// let e = Event::parse(r#"{"key": "orders", "at": 1733572800, "values": {"count": 1}}"#, now)?;
    /// assert_eq!(e.at.to_string(), "2024-12-07T12:00:00Z");
    /// let bad = Event::parse(r#"{"key": "orders", "values": {"count": 1}, "when": 5}"#, now);
    /// assert!(bad.unwrap_err().to_string().contains("when"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`CliError::Input`] naming the field: not JSON, a missing or unknown field, a bad key,
    /// time, op, value name or number (an integer outside `i64`, for one).
    pub fn parse(text: &str, now: Timestamp) -> CliResult<Event> {
        Event::parse_fields(text, now).map(|(event, _)| event)
    }

    /// [`Event::parse`], also returning the event's values flattened as the tracker writes
    /// them (the parse flattens them anyway to check them; `stats import` hands them to the
    /// buffer as they are).
    ///
    /// # Errors
    /// As [`Event::parse`].
    pub fn parse_fields(text: &str, now: Timestamp) -> CliResult<(Event, stats::Fields)> {
        let raw: RawEvent<'_> = serde_json::from_str(text)
            .map_err(|e| CliError::input(format!("not an event ({e}); expected {}", shape())))?;
        let key = raw.key;
        stats_core::tracker::check_user_key(&key)
            .map_err(|e| CliError::input(format!("\"key\": {e}")))?;
        let at = match raw.at {
            None | Some(serde_json::Value::Null) => now,
            Some(at) => parse_at(&at)?,
        };
        let (values, fields) = parse_values(raw.values.get(), "\"values\"")?;
        let op = match raw.op.as_deref() {
            None => Op::Inc,
            Some(op) => parse_op(op)?,
        };
        let event = Event {
            key,
            at,
            values,
            op,
        };
        Ok((event, fields))
    }

    /// Parses one event or a JSON array of events (the `POST /v1/track` body). An error
    /// names the array index of the event it is about.
    ///
    /// Each event comes with its values flattened, as [`Event::parse_fields`] gives them.
    ///
    /// # Errors
    /// As [`Event::parse`], and [`CliError::Input`] for more than `max` events.
    pub fn parse_many(
        text: &str,
        now: Timestamp,
        max: usize,
    ) -> CliResult<Vec<(Event, stats::Fields)>> {
        let trimmed = text.trim_start();
        if !trimmed.starts_with('[') {
            return Ok(vec![Event::parse_fields(text, now)?]);
        }
        let items: Vec<&RawValue> = serde_json::from_str(trimmed)
            .map_err(|e| CliError::input(format!("not a JSON array of events ({e})")))?;
        if items.len() > max {
            return Err(CliError::input(format!(
                "{} events in one request; at most {max}",
                items.len()
            )));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Event::parse_fields(item.get(), now)
                    .map_err(|e| CliError::input(format!("[{i}]: {e}")))
            })
            .collect()
    }

    /// The event as contract JSON (`at` in unix seconds when whole, RFC 3339 otherwise).
    pub fn to_json(&self) -> serde_json::Value {
        let at = if self.at.subsec_nanosecond() == 0 {
            serde_json::Value::from(self.at.as_second())
        } else {
            serde_json::Value::from(self.at.to_string())
        };
        serde_json::json!({
            "key": self.key,
            "at": at,
            "values": serde_json::Value::from(&self.values),
            "op": op_name(self.op),
        })
    }
}

/// Values from JSON text, checked as the tracker checks them before writing (numbers, names,
/// the leaves' paths), with their leaves; an error starts with `what` (`"values"`,
/// `--values`).
///
/// ```
/// use stats_cli::contract::parse_values;
/// let (values, fields) = parse_values(r#"{"count": 1, "ms": {"sum": 2.5}}"#, "--values")?;
/// assert_eq!(fields.as_slice().len(), 2);
/// assert!(parse_values(r#"{"count": "1"}"#, "--values").unwrap_err().to_string().starts_with("--values: "));
/// # Ok::<(), stats_cli::CliError>(())
/// ```
///
/// # Errors
/// [`CliError::Input`] for text that is not a JSON object of numbers and maps, an integer
/// outside `i64`, or a bad name or path.
pub fn parse_values(text: &str, what: &str) -> CliResult<(Values, stats::Fields)> {
    let values = Values::from_json(text).map_err(|e| CliError::input(format!("{what}: {e}")))?;
    let fields =
        stats::Fields::from_values(&values).map_err(|e| CliError::input(format!("{what}: {e}")))?;
    Ok((values, fields))
}

fn shape() -> &'static str {
    r#"{"key": "...", "at": <unix seconds or RFC 3339>, "values": {...}, "op": "inc"|"set"|"max"|"min"}"#
}

fn parse_at(at: &serde_json::Value) -> CliResult<Timestamp> {
    let bad = |why: String| CliError::input(format!("\"at\": {why}"));
    match at {
        serde_json::Value::Number(n) => {
            if let Some(whole) = n.as_i64() {
                unix_seconds(whole).map_err(bad)
            } else if let Some(float) = n.as_f64() {
                unix_seconds_f64(float).map_err(bad)
            } else {
                Err(bad(format!("{n} is not a number of seconds")))
            }
        }
        serde_json::Value::String(s) => s
            .parse::<Timestamp>()
            .map_err(|e| bad(format!("{s:?} is not RFC 3339 with an offset ({e})"))),
        other => Err(bad(format!(
            "{other} is neither unix seconds nor an RFC 3339 string"
        ))),
    }
}

/// The series document of the contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesDoc {
    /// The metric key.
    pub key: String,
    /// The granularity (`1h`, `15m`, ...).
    pub granularity: String,
    /// The start of every bucket, RFC 3339 with the zone's offset at that instant.
    pub at: Vec<String>,
    /// The document of every bucket (`{}` when empty).
    pub values: Vec<Values>,
}

impl SeriesDoc {
    /// The document of `series`, its instants shown in `zone`.
    ///
    /// ```
    /// use stats::{Series, values};
    /// use stats_cli::contract::SeriesDoc;
    /// let series = Series::new(
    ///     vec!["2026-12-07T09:00:00Z".parse()?, "2026-12-07T10:00:00Z".parse()?],
    ///     vec![values!({"count": 3}), values!({})],
    /// )?;
    /// let zone = jiff::tz::TimeZone::get("Europe/Berlin")?;
    /// let doc = SeriesDoc::new("orders", "1h".parse()?, &series, &zone);
    /// assert_eq!(
    ///     serde_json::to_string(&doc)?,
    ///     r#"{"key":"orders","granularity":"1h","at":["2026-12-07T10:00:00+01:00","2026-12-07T11:00:00+01:00"],"values":[{"count":3},{}]}"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        key: &str,
        granularity: stats::Granularity,
        series: &Series,
        zone: &TimeZone,
    ) -> Self {
        let (at, values) = series
            .iter()
            .map(|(at, values)| (rfc3339_in(at, zone), values.clone()))
            .unzip();
        SeriesDoc {
            key: key.to_owned(),
            granularity: granularity.to_string(),
            at,
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    fn refused(text: &str, needle: &str) {
        let err = Event::parse(text, now()).unwrap_err();
        assert!(matches!(err, CliError::Input(_)), "{text}: {err}");
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }

    #[test]
    fn events() {
        let e = Event::parse(
            r#"{"key":"k","at":"2026-12-07T10:00:00+01:00","values":{"a":{"b":2}},"op":"max"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(e.at.to_string(), "2026-12-07T09:00:00Z");
        assert_eq!(e.op, Op::Max);
        assert_eq!(
            Event::parse(&e.to_json().to_string(), now()).unwrap(),
            e,
            "round trip"
        );
        let e = Event::parse(r#"{"key":"k","values":{"a":1}}"#, now()).unwrap();
        assert_eq!((e.at, e.op), (now(), Op::Inc));
        refused("{", "not an event");
        refused(r#"{"values":{"a":1}}"#, "key");
        refused(r#"{"key":"k"}"#, "values");
        refused(r#"{"key":"k","values":{"a":1},"opp":"inc"}"#, "opp");
        refused(r#"{"key":"k","values":{"a":1},"op":"add"}"#, "\"add\"");
        refused(r#"{"key":"","values":{"a":1}}"#, "\"key\"");
        refused(r#"{"key":"k","values":{"a":"1"}}"#, "\"values\"");
        refused(
            r#"{"key":"k","values":{"a":9223372036854775808}}"#,
            "9223372036854775808",
        );
        refused(r#"{"key":"k","values":{"a":1},"at":"yesterday"}"#, "\"at\"");
        refused(r#"{"key":"k","values":{"a":1},"at":1e300}"#, "\"at\"");
        refused(r#"{"key":"k","values":{"a":1},"at":true}"#, "\"at\"");
        refused(r#"{"key":"k","values":[1]}"#, "\"values\"");
    }

    #[test]
    fn arrays() {
        let many = Event::parse_many(
            r#"[{"key":"a","values":{"n":1}},{"key":"b","values":{"n":2}}]"#,
            now(),
            10,
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        let err = Event::parse_many(
            r#"[{"key":"a","values":{"n":1}},{"key":"b","values":{"n":"x"}}]"#,
            now(),
            10,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("[1]: "), "{err}");
        let err = Event::parse_many(r#"[1,2,3]"#, now(), 2).unwrap_err();
        assert!(err.to_string().contains("at most 2"), "{err}");
    }
}
