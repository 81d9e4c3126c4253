//! The commands that talk to the store directly: setup, track, assert, values, metrics,
//! counters and throttles.

use std::collections::BTreeMap;

use jiff::{Span, Timestamp};
use stats::{Blanks, CasOutcome, Granularity, Number, Op, Series, Unit, Values};

use crate::chart;
use crate::cli::{
    AssertArgs, Context, CounterCommand, Format, ListFormat, MetricsArgs, ThrottleCommand,
    TrackArgs, ValuesArgs,
};
use crate::contract::{SeriesDoc, parse_op};
use crate::error::{CliError, CliResult};
use crate::output;
use crate::time::{parse_duration, parse_instant};

/// `stats setup`.
///
/// # Errors
/// The store's.
pub async fn setup(cx: &Context) -> CliResult<String> {
    cx.stores.setup().await?;
    Ok(format!("{} is set up", cx.stores.shown()))
}

fn values_arg(text: &str) -> CliResult<Values> {
    crate::contract::parse_values(text, "--values").map(|(values, _)| values)
}

fn at_arg(cx: &Context, option: &str, text: Option<&str>, now: Timestamp) -> CliResult<Timestamp> {
    match text {
        None => Ok(now),
        Some(text) => parse_instant(text, cx.zone(), now)
            .map_err(|e| CliError::input(format!("{option}: {e}"))),
    }
}

async fn write(cx: &Context, op: Op, key: &str, at: Timestamp, values: &Values) -> CliResult {
    let tracker = cx.tracker();
    let mut batch = stats::Batch::new();
    tracker
        .add_to_batch(&mut batch, op, key, at, values)
        .map_err(CliError::from)?;
    tracker.apply(&batch).await?;
    Ok(())
}

/// `stats track`.
///
/// # Errors
/// [`CliError::Input`] for a bad key, values, time or op (nothing written); the store's.
pub async fn track(cx: &Context, args: &TrackArgs) -> CliResult<String> {
    let op = parse_op(&args.op).map_err(|e| CliError::input(format!("--op: {e}")))?;
    let values = values_arg(&args.values)?;
    let at = at_arg(cx, "--at", args.at.as_deref(), Timestamp::now())?;
    write(cx, op, &args.key, at, &values).await?;
    Ok(String::new())
}

/// `stats assert`.
///
/// # Errors
/// As [`track`].
pub async fn assert(cx: &Context, args: &AssertArgs) -> CliResult<String> {
    let values = values_arg(&args.values)?;
    let at = at_arg(cx, "--at", args.at.as_deref(), Timestamp::now())?;
    write(cx, Op::Set, &args.key, at, &values).await?;
    Ok(String::new())
}

/// `count` buckets of `granularity` as a calendar span.
pub fn span_of(granularity: Granularity, buckets: i64) -> Span {
    let n = i64::from(granularity.count()) * buckets;
    match granularity.unit() {
        Unit::Second => Span::new().seconds(n),
        Unit::Minute => Span::new().minutes(n),
        Unit::Hour => Span::new().hours(n),
        Unit::Day => Span::new().days(n),
        Unit::Week => Span::new().weeks(n),
        Unit::Month => Span::new().months(n),
        Unit::Quarter => Span::new().months(3 * n),
        Unit::Year => Span::new().years(n),
    }
}

/// A granularity option, naming it in the error.
///
/// # Errors
/// [`CliError::Input`].
pub fn granularity_arg(option: &str, text: &str) -> CliResult<Granularity> {
    text.parse()
        .map_err(|e| CliError::input(format!("{option}: {e}")))
}

/// A `--granularity` that must be one of the tracked granularities (`--granularities`): any
/// other reads blank, which is a mistake worth telling.
///
/// # Errors
/// [`CliError::Input`] naming the granularity and the tracked ones.
pub fn tracked_granularity(cx: &Context, text: &str) -> CliResult<Granularity> {
    let granularity = granularity_arg("--granularity", text)?;
    let tracked = cx.config.granularity_list();
    if !tracked.contains(&granularity) {
        let list: Vec<String> = tracked.iter().map(ToString::to_string).collect();
        return Err(CliError::input(format!(
            "--granularity: {granularity} is not tracked (the tracked granularities are {}; \
             --granularities names the ones your data was tracked with)",
            list.join(",")
        )));
    }
    Ok(granularity)
}

/// The range `stats values` and `GET /v1/values` read: `to` (default `now`) and `from`
/// (default: 23 buckets of `granularity` before `to`), as the CLI takes them.
///
/// # Errors
/// [`CliError::Input`] for a bad time or `from` after `to`, naming `--from` or `--to`.
pub fn series_range(
    cx: &Context,
    granularity: Granularity,
    from: Option<&str>,
    to: Option<&str>,
    now: Timestamp,
) -> CliResult<(Timestamp, Timestamp)> {
    range(cx, from, to, now, span_of(granularity, 23))
}

/// `--from` and `--to` (default now); `--from` defaults to `back` before `--to`, on the
/// zone's calendar.
///
/// # Errors
/// [`CliError::Input`] for a bad time, or `--from` after `--to`.
fn range(
    cx: &Context,
    from: Option<&str>,
    to: Option<&str>,
    now: Timestamp,
    back: Span,
) -> CliResult<(Timestamp, Timestamp)> {
    let to = at_arg(cx, "--to", to, now)?;
    let from = match from {
        Some(_) => at_arg(cx, "--from", from, now)?,
        None => to
            .to_zoned(cx.zone().clone())
            .checked_sub(back)
            .map(|z| z.timestamp())
            .unwrap_or(to),
    };
    if from > to {
        return Err(CliError::input(format!(
            "--from ({from}) is after --to ({to})"
        )));
    }
    Ok((from, to))
}

/// The series `stats values` prints: the range from the options (default: the 24 buckets up
/// to now).
///
/// # Errors
/// [`CliError::Input`] for a bad option; the store's.
pub async fn read_series(
    cx: &Context,
    key: &str,
    granularity: Granularity,
    from: Option<&str>,
    to: Option<&str>,
) -> CliResult<Series> {
    let (from, to) = series_range(cx, granularity, from, to, Timestamp::now())?;
    Ok(cx
        .tracker()
        .values(key, from, to, granularity, Blanks::Keep)
        .await?)
}

/// The path a chart draws: the one asked for, else `count`, else the only one.
///
/// # Errors
/// [`CliError::Input`] listing the paths when none can be chosen.
pub fn chart_path(series: &Series, asked: Option<&str>) -> CliResult<String> {
    if let Some(path) = asked {
        return Ok(path.to_owned());
    }
    let paths = output::paths(series);
    if paths.iter().any(|p| p == "count") || paths.is_empty() {
        return Ok("count".to_owned());
    }
    if paths.len() == 1 {
        return Ok(paths[0].clone());
    }
    Err(CliError::input(format!(
        "--path: which path to chart? one of {}",
        paths.join(", ")
    )))
}

/// `stats values`.
///
/// # Errors
/// As [`read_series`].
pub async fn values(cx: &Context, args: &ValuesArgs) -> CliResult<String> {
    let granularity = tracked_granularity(cx, &args.granularity)?;
    let series = read_series(
        cx,
        &args.key,
        granularity,
        args.from.as_deref(),
        args.to.as_deref(),
    )
    .await?;
    match args.format {
        Format::Table => Ok(output::table(&series, cx.zone())),
        Format::Csv => output::csv(&series, cx.zone()),
        Format::Json => {
            let doc = SeriesDoc::new(&args.key, granularity, &series, cx.zone());
            serde_json::to_string(&doc).map_err(|e| CliError::failed(format!("JSON: {e}")))
        }
        Format::Chart => {
            let path = chart_path(&series, args.path.as_deref())?;
            let points: Vec<_> = series
                .iter()
                .map(|(at, v)| (at, v.number_at(&path).map(number_f64)))
                .collect();
            Ok(chart::render(
                &format!("{} {path} per {granularity}", args.key),
                &points,
                cx.zone(),
                chart::Size::terminal(),
            ))
        }
    }
}

/// A number as a float, for a chart.
pub fn number_f64(n: Number) -> f64 {
    match n {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    }
}

/// The metric keys the system index has counted from `from` to `to`, with their event counts,
/// read at the coarsest configured granularity.
///
/// # Errors
/// [`CliError::Input`] for a bad range; the store's.
pub async fn metric_keys(
    cx: &Context,
    from: Timestamp,
    to: Timestamp,
) -> CliResult<BTreeMap<String, i64>> {
    let granularity = coarsest(cx.config.granularity_list());
    let series = cx
        .tracker()
        .system_values(from, to, granularity, Blanks::Skip)
        .await?;
    Ok(index_keys(&series))
}

/// The metric keys and their event counts in a series of the system index (as
/// `system_values` reads it, from a [`stats::Tracker`] or a buffered tracker).
pub fn index_keys(series: &Series) -> BTreeMap<String, i64> {
    let mut keys: BTreeMap<String, i64> = BTreeMap::new();
    for (_, doc) in series.iter() {
        if let Some(stats::Value::Map(map)) = doc.get("keys") {
            for (field, value) in map.iter() {
                if let stats::Value::Number(Number::Int(n)) = value {
                    let entry = keys
                        .entry(stats::tracker::unescape_field(field))
                        .or_default();
                    *entry = entry.saturating_add(*n);
                }
            }
        }
    }
    keys
}

/// The coarsest of the granularities (the one the system index is read at).
pub fn coarsest(list: &[Granularity]) -> Granularity {
    fn rank(g: Granularity) -> (u8, u32) {
        let unit = match g.unit() {
            Unit::Second => 0,
            Unit::Minute => 1,
            Unit::Hour => 2,
            Unit::Day => 3,
            Unit::Week => 4,
            Unit::Month => 5,
            Unit::Quarter => 6,
            Unit::Year => 7,
        };
        (unit, g.count())
    }
    list.iter()
        .copied()
        .max_by_key(|g| rank(*g))
        .unwrap_or_else(|| Granularity::new(1, Unit::Day).expect("1d is valid"))
}

/// The range `stats metrics` and `GET /v1/metrics` read: `to` (default `now`) and `from`
/// (default: 30 days before `to`).
///
/// # Errors
/// [`CliError::Input`] for a bad time or `from` after `to`, naming `--from` or `--to`.
pub fn metrics_range(
    cx: &Context,
    from: Option<&str>,
    to: Option<&str>,
    now: Timestamp,
) -> CliResult<(Timestamp, Timestamp)> {
    range(cx, from, to, now, Span::new().days(30))
}

/// `stats metrics`.
///
/// # Errors
/// As [`metric_keys`].
pub async fn metrics(cx: &Context, args: &MetricsArgs) -> CliResult<String> {
    let (from, to) = metrics_range(
        cx,
        args.from.as_deref(),
        args.to.as_deref(),
        Timestamp::now(),
    )?;
    let keys = metric_keys(cx, from, to).await?;
    Ok(match args.format {
        ListFormat::Json => serde_json::json!({ "metrics": keys }).to_string(),
        ListFormat::Table => {
            let pairs: Vec<_> = keys
                .iter()
                .map(|(k, n)| (k.clone(), n.to_string()))
                .collect();
            output::pairs_table(["metric", "events"], &pairs)
        }
    })
}

/// `stats counter ...`.
///
/// # Errors
/// [`CliError::Input`] for a bad name or an overflow; [`CliError::Negative`] for a missing
/// counter (`get`, `delete`) or a compare-and-swap that did not swap; the store's.
pub async fn counter(cx: &Context, command: &CounterCommand) -> CliResult<String> {
    let counters = &cx.stores.counters;
    Ok(match command {
        CounterCommand::Inc {
            namespace,
            key,
            by,
            default,
        } => counters
            .inc(namespace, key, *by, *default)
            .await?
            .to_string(),
        CounterCommand::Get { namespace, key } => match counters.get(namespace, key).await? {
            Some(value) => value.to_string(),
            None => {
                return Err(CliError::Negative(format!(
                    "counter {key:?} does not exist in namespace {namespace:?}"
                )));
            }
        },
        CounterCommand::Set {
            namespace,
            key,
            value,
        } => {
            counters.set(namespace, key, *value).await?;
            value.to_string()
        }
        CounterCommand::Cas {
            namespace,
            key,
            expected,
            new,
        } => match counters
            .compare_and_swap(namespace, key, *expected, *new)
            .await?
        {
            CasOutcome::Swapped(value) => value.to_string(),
            CasOutcome::Mismatch(current) => {
                return Err(CliError::Negative(format!(
                    "not swapped: counter {key:?} holds {current}, not {expected}"
                )));
            }
        },
        CounterCommand::List { namespace, format } => {
            let all = counters.get_all(namespace).await?;
            match format {
                ListFormat::Json => {
                    let map: serde_json::Map<String, serde_json::Value> = all
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::from(v)))
                        .collect();
                    serde_json::Value::Object(map).to_string()
                }
                ListFormat::Table => {
                    let pairs: Vec<_> = all.into_iter().map(|(k, v)| (k, v.to_string())).collect();
                    output::pairs_table(["counter", "value"], &pairs)
                }
            }
        }
        CounterCommand::Delete { namespace, key } => {
            if counters.delete(namespace, key).await? {
                "deleted".to_owned()
            } else {
                return Err(CliError::Negative(format!(
                    "counter {key:?} does not exist in namespace {namespace:?}"
                )));
            }
        }
        CounterCommand::DeleteNamespace { namespace } => {
            counters.delete_namespace(namespace).await?.to_string()
        }
        CounterCommand::Info { format } => {
            let info = counters.info().await?;
            match format {
                ListFormat::Json => serde_json::json!({
                    "store": info.store,
                    "counters": info.counters,
                    "capacity": info.capacity,
                    "namespaces": info.namespaces.iter().map(|n| serde_json::json!({
                        "namespace": n.namespace,
                        "counters": n.counters,
                    })).collect::<Vec<_>>(),
                })
                .to_string(),
                ListFormat::Table => {
                    let pairs: Vec<_> = info
                        .namespaces
                        .iter()
                        .map(|n| (n.namespace.clone(), n.counters.to_string()))
                        .collect();
                    output::pairs_table(["namespace", "counters"], &pairs)
                }
            }
        }
    })
}

/// `stats throttle ...`.
///
/// # Errors
/// [`CliError::Input`] for a bad key or TTL; [`CliError::Negative`] when the throttle is held;
/// the store's.
pub async fn throttle(cx: &Context, command: &ThrottleCommand) -> CliResult<String> {
    match command {
        ThrottleCommand::Acquire { key, ttl } => {
            let ttl = parse_duration(ttl).map_err(|e| CliError::input(format!("--ttl: {e}")))?;
            if cx.stores.throttles.try_acquire(key, ttl).await? {
                Ok("acquired".to_owned())
            } else {
                Err(CliError::Negative("held".to_owned()))
            }
        }
    }
}
