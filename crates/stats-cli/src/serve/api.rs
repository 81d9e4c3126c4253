//! The `/v1` routes.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use stats::{Blanks, CasOutcome};

use super::{ApiError, Shared};
use crate::commands;
use crate::contract::{Event, SeriesDoc};
use crate::error::CliError;
use crate::time::parse_duration;

type Answer = Result<Response, ApiError>;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/track", post(track))
        .route("/v1/values", get(values))
        .route("/v1/metrics", get(metrics))
        .route("/v1/config", get(config))
        .route("/v1/counters", get(counters_info))
        .route(
            "/v1/counters/{namespace}",
            get(counters_list).delete(counters_delete_namespace),
        )
        .route(
            "/v1/counters/{namespace}/{key}",
            get(counter_get).put(counter_set).delete(counter_delete),
        )
        .route("/v1/counters/{namespace}/{key}/inc", post(counter_inc))
        .route("/v1/counters/{namespace}/{key}/cas", post(counter_cas))
        .route("/v1/throttles/{key}/acquire", post(throttle_acquire))
}

fn ok(value: Value) -> Answer {
    Ok(axum::Json(value).into_response())
}

/// A CLI helper's error with its option (`--from: ...`) named as the query parameter.
fn as_param(error: CliError) -> ApiError {
    match error {
        CliError::Input(m) => ApiError::bad(m.strip_prefix("--").unwrap_or(&m).to_owned()),
        other => other.into(),
    }
}

fn utf8(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|e| ApiError::bad(format!("the body is not UTF-8 ({e})")))
}

/// `POST /v1/track`: every event is checked (names, numbers, and its bucket in every
/// granularity) before the first is written, so a refused request writes nothing.
async fn track(State(app): State<Shared>, body: Bytes) -> Answer {
    let events = Event::parse_many(utf8(&body)?, Timestamp::now(), app.max_batch)?;
    let many = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let calendar = app.cx.config.calendar();
    // Every event has a bucket in every granularity before any is written (a write that fails
    // half-way through the request would leave the events before it written).
    for (i, (event, _)) in events.iter().enumerate() {
        let at_index = |e: &dyn std::fmt::Display| {
            if many {
                ApiError::bad(format!("[{i}]: {e}"))
            } else {
                ApiError::bad(e.to_string())
            }
        };
        for &granularity in app.cx.config.granularity_list() {
            calendar.floor(event.at, granularity).map_err(|e| {
                at_index(&format!(
                    "\"at\": {} has no {granularity} bucket ({e})",
                    event.at
                ))
            })?;
        }
    }
    for (event, fields) in &events {
        app.tracker
            .write(event.op, &event.key, event.at, fields)
            .await?;
        app.metrics.tracked(1);
    }
    ok(json!({ "tracked": events.len() }))
}

/// The query parameters, each at most once, none unknown.
fn query(
    pairs: Vec<(String, String)>,
    known: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (name, value) in pairs {
        if !known.contains(&name.as_str()) {
            return Err(ApiError::bad(format!(
                "unknown query parameter {name:?} (known: {})",
                known.join(", ")
            )));
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(ApiError::bad(format!(
                "query parameter {name:?} given more than once"
            )));
        }
    }
    Ok(out)
}

/// `GET /v1/values`: the document of `stats values --format json`, pending events included.
async fn values(State(app): State<Shared>, Query(pairs): Query<Vec<(String, String)>>) -> Answer {
    let q = query(pairs, &["key", "granularity", "from", "to"])?;
    let key = q
        .get("key")
        .ok_or_else(|| ApiError::bad("missing query parameter \"key\" (the metric key)"))?;
    let granularity =
        commands::tracked_granularity(&app.cx, q.get("granularity").map_or("1h", String::as_str))
            .map_err(as_param)?;
    let (from, to) = commands::series_range(
        &app.cx,
        granularity,
        q.get("from").map(String::as_str),
        q.get("to").map(String::as_str),
        Timestamp::now(),
    )
    .map_err(as_param)?;
    let series = app
        .tracker
        .values(key, from, to, granularity, Blanks::Keep)
        .await
        .map_err(|e| match CliError::from(e) {
            CliError::Input(m) => ApiError::bad(format!("\"key\": {m}")),
            other => other.into(),
        })?;
    let doc = SeriesDoc::new(key, granularity, &series, app.cx.zone());
    Ok(axum::Json(doc).into_response())
}

/// `GET /v1/metrics`.
async fn metrics(State(app): State<Shared>, Query(pairs): Query<Vec<(String, String)>>) -> Answer {
    let q = query(pairs, &["from", "to"])?;
    let (from, to) = commands::metrics_range(
        &app.cx,
        q.get("from").map(String::as_str),
        q.get("to").map(String::as_str),
        Timestamp::now(),
    )
    .map_err(as_param)?;
    let granularity = commands::coarsest(app.cx.config.granularity_list());
    let series = app
        .tracker
        .system_values(from, to, granularity, Blanks::Skip)
        .await?;
    ok(json!({ "metrics": commands::index_keys(&series) }))
}

/// `GET /v1/config`: what the dashboard offers.
async fn config(State(app): State<Shared>) -> Answer {
    let zone = app.cx.zone();
    let granularities: Vec<String> = app
        .cx
        .config
        .granularity_list()
        .iter()
        .map(ToString::to_string)
        .collect();
    ok(json!({
        "granularities": granularities,
        "time_zone": zone.iana_name().map_or_else(
            || crate::time::rfc3339_in(Timestamp::now(), zone),
            ToOwned::to_owned,
        ),
        "max_batch": app.max_batch,
        "max_body": app.max_body,
    }))
}

/// A JSON object body (empty means `{}`) with only the `known` fields.
fn object(body: &Bytes, known: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let text = utf8(body)?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad(format!("the body is not JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad(format!(
            "the body must be a JSON object with {}, not {value}",
            known.join(", ")
        )));
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad(format!(
            "unknown field {unknown:?} (known: {})",
            known.join(", ")
        )));
    }
    Ok(map)
}

/// An integer field that must fit `i64`.
fn int(map: &Map<String, Value>, field: &str) -> Result<Option<i64>, ApiError> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
            ApiError::bad(format!(
                "{field:?}: {n} is not an integer from -9223372036854775808 to 9223372036854775807"
            ))
        }),
        Some(other) => Err(ApiError::bad(format!(
            "{field:?}: {other} is not an integer"
        ))),
    }
}

fn required(map: &Map<String, Value>, field: &str) -> Result<i64, ApiError> {
    int(map, field)?.ok_or_else(|| ApiError::bad(format!("missing field {field:?}")))
}

async fn counters_info(State(app): State<Shared>) -> Answer {
    let info = app.cx.stores.counters.info().await?;
    ok(json!({
        "store": info.store,
        "counters": info.counters,
        "capacity": info.capacity,
        "namespaces": info.namespaces.iter().map(|n| json!({
            "namespace": n.namespace,
            "counters": n.counters,
        })).collect::<Vec<_>>(),
    }))
}

async fn counters_list(State(app): State<Shared>, Path(namespace): Path<String>) -> Answer {
    let all = app.cx.stores.counters.get_all(&namespace).await?;
    let counters: Map<String, Value> = all.into_iter().map(|(k, v)| (k, v.into())).collect();
    ok(json!({ "namespace": namespace, "counters": counters }))
}

async fn counters_delete_namespace(
    State(app): State<Shared>,
    Path(namespace): Path<String>,
) -> Answer {
    let deleted = app.cx.stores.counters.delete_namespace(&namespace).await?;
    ok(json!({ "deleted": deleted }))
}

fn missing(namespace: &str, key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("counter {key:?} does not exist in namespace {namespace:?}"),
    )
}

async fn counter_get(
    State(app): State<Shared>,
    Path((namespace, key)): Path<(String, String)>,
) -> Answer {
    match app.cx.stores.counters.get(&namespace, &key).await? {
        Some(value) => ok(json!({ "value": value })),
        None => Err(missing(&namespace, &key)),
    }
}

async fn counter_set(
    State(app): State<Shared>,
    Path((namespace, key)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let map = object(&body, &["value"])?;
    let value = required(&map, "value")?;
    app.cx.stores.counters.set(&namespace, &key, value).await?;
    ok(json!({ "value": value }))
}

async fn counter_delete(
    State(app): State<Shared>,
    Path((namespace, key)): Path<(String, String)>,
) -> Answer {
    if app.cx.stores.counters.delete(&namespace, &key).await? {
        ok(json!({ "deleted": true }))
    } else {
        Err(missing(&namespace, &key))
    }
}

async fn counter_inc(
    State(app): State<Shared>,
    Path((namespace, key)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let map = object(&body, &["by", "default"])?;
    let by = int(&map, "by")?.unwrap_or(1);
    let default = int(&map, "default")?.unwrap_or(0);
    let value = app
        .cx
        .stores
        .counters
        .inc(&namespace, &key, by, default)
        .await?;
    ok(json!({ "value": value }))
}

async fn counter_cas(
    State(app): State<Shared>,
    Path((namespace, key)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let map = object(&body, &["expected", "new"])?;
    let expected = required(&map, "expected")?;
    let new = required(&map, "new")?;
    match app
        .cx
        .stores
        .counters
        .compare_and_swap(&namespace, &key, expected, new)
        .await?
    {
        CasOutcome::Swapped(value) => ok(json!({ "swapped": true, "value": value })),
        CasOutcome::Mismatch(current) => Ok((
            StatusCode::CONFLICT,
            axum::Json(json!({ "swapped": false, "value": current })),
        )
            .into_response()),
    }
}

/// A TTL: a duration as text (`30s`, `1h 30m`) or positive seconds as a number.
fn ttl(map: &Map<String, Value>) -> Result<Duration, ApiError> {
    let bad = |why: String| ApiError::bad(format!("\"ttl\": {why}"));
    match map.get("ttl") {
        None => Err(ApiError::bad(
            "missing field \"ttl\" (such as \"30s\" or 30)",
        )),
        Some(Value::String(text)) => parse_duration(text).map_err(|e| bad(e.to_string())),
        Some(Value::Number(n)) => {
            let seconds = n.as_f64().unwrap_or(0.0);
            if seconds.is_nan() || seconds <= 0.0 {
                return Err(bad(format!("{n} seconds is not a positive duration")));
            }
            Duration::try_from_secs_f64(seconds)
                .map_err(|_| bad(format!("{n} seconds is too long a duration")))
        }
        Some(other) => Err(bad(format!(
            "{other} is neither a duration such as \"30s\" nor a number of seconds"
        ))),
    }
}

async fn throttle_acquire(
    State(app): State<Shared>,
    Path(key): Path<String>,
    body: Bytes,
) -> Answer {
    let map = object(&body, &["ttl"])?;
    let ttl = ttl(&map)?;
    if app.cx.stores.throttles.try_acquire(&key, ttl).await? {
        ok(json!({ "acquired": true }))
    } else {
        Ok((
            StatusCode::CONFLICT,
            axum::Json(json!({ "acquired": false })),
        )
            .into_response())
    }
}
