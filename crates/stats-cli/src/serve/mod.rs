//! `stats serve`: the HTTP JSON API and the embedded dashboard.
//!
//! Every write goes through one [`BufferedTracker`] (events are folded in memory and written
//! in batches), and every read goes through it too, so that a tracked event is visible at
//! once. On SIGINT or SIGTERM the server stops accepting connections, finishes the requests in
//! flight, writes what the buffer holds and exits 1 if any batch could not be written.
//!
//! It listens on `127.0.0.1:8080` by default: only this machine can reach it. `--listen
//! 0.0.0.0:8080` exposes it to the network; give it a `--token` then (and put TLS in front of
//! it: the token travels in clear otherwise).
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/track` | one event or an array of events (the [`contract`](crate::contract)); all checked before any is written -> `{"tracked": n}` |
//! | `GET /v1/values?key=&granularity=&from=&to=` | the series document of `stats values --format json` |
//! | `GET /v1/metrics?from=&to=` | `{"metrics": {"<key>": <events>}}` |
//! | `GET /v1/config` | `{"granularities": [...], "time_zone": "..."}` |
//! | `GET /v1/counters` | the namespaces and their counters' numbers |
//! | `GET /v1/counters/{ns}` | `{"namespace": ns, "counters": {"<key>": n}}` |
//! | `GET/PUT/DELETE /v1/counters/{ns}/{key}` | `{"value": n}` (404 when missing); PUT takes `{"value": n}` |
//! | `POST /v1/counters/{ns}/{key}/inc` | `{"by": 1, "default": 0}` (both optional) -> `{"value": n}` |
//! | `POST /v1/counters/{ns}/{key}/cas` | `{"expected": a, "new": b}` -> 200 or 409 `{"swapped": bool, "value": n}` |
//! | `DELETE /v1/counters/{ns}` | `{"deleted": n}` |
//! | `POST /v1/throttles/{key}/acquire` | `{"ttl": "30s"}` or seconds -> 200 or 409 `{"acquired": bool}` |
//! | `GET /metrics` | the server's own metrics in the Prometheus text format (below); the same token rule as `/v1` |
//! | `GET /healthz` | `{"status": "ok"}` (no token needed) |
//! | `GET /` | the dashboard (no token needed to load it; it asks for one when the API does) |
//!
//! Every error is JSON, `{"error": "<message naming the field>"}`: 400 for bad input, 401
//! (with `WWW-Authenticate: Bearer`) for a missing or wrong token, 404, 405, 409, 413 for a
//! body over `--max-body`, 503 when the store fails. The token is compared in constant time
//! ([`subtle::ConstantTimeEq`]).
//!
//! `GET /metrics` follows the token rule of `/v1`: with `--token`, a scraper sends it too
//! (Prometheus: `authorization: {credentials: <token>}` in the scrape config), since the
//! counts tell who uses the server how much. It shows:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `stats_http_requests_total` | counter | `route` (the route template, such as `/v1/counters/{namespace}/{key}`; `dashboard` for the page and its assets; `unmatched` for a path no route has, never the path itself), `status` |
//! | `stats_http_request_duration_seconds` | histogram | `route` (the time until the response's headers are ready) |
//! | `stats_events_tracked_total` | counter | events written by `POST /v1/track` |
//! | `stats_buffer_pending` | gauge | leaf updates in the write buffer, not yet written |
//! | `stats_buffer_flushed_total` | counter | leaf updates the write buffer wrote |
//!
//! and the recorder's own `stats_metrics_refused_total{reason}` and
//! `stats_metrics_overflowed_total`. `--record-metrics` also keeps them as history in the
//! served store (under those names, drained every second through the write buffer); without
//! it nothing of them is written there.

mod api;
mod dashboard;
mod own_metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use stats::buffer::{BufferedTracker, Coalescing};
use subtle::ConstantTimeEq;

use crate::cli::{Context, ServeArgs};
use crate::error::{CliError, CliResult};

/// What every handler shares.
struct App {
    cx: Context,
    tracker: Arc<BufferedTracker>,
    metrics: own_metrics::SelfMetrics,
    token: Option<String>,
    max_batch: usize,
    max_body: usize,
}

type Shared = Arc<App>;

/// Runs `stats serve` until SIGINT or SIGTERM.
///
/// # Errors
/// [`CliError::Input`] for a bad `--listen` or `--token`; [`CliError::Failed`] when the address
/// cannot be bound, or when batches could not be written at shutdown (how many).
pub async fn run(cx: &Context, args: &ServeArgs) -> CliResult<String> {
    let addr: SocketAddr = args.listen.trim().parse().map_err(|e| {
        CliError::input(format!(
            "--listen: {:?} is not an address such as 127.0.0.1:8080 ({e})",
            args.listen
        ))
    })?;
    let token = match args.token.as_deref() {
        Some(token) if token.is_empty() || token.chars().any(|c| c.is_control()) => {
            return Err(CliError::input(
                "--token: must be non-empty printable text (it is sent in a header)",
            ));
        }
        other => other.map(ToOwned::to_owned),
    };
    let tracker = Arc::new(
        BufferedTracker::with(
            Arc::clone(&cx.stores.metrics),
            cx.config.clone(),
            Coalescing::default(),
        )
        .map_err(|e| CliError::failed(format!("the write buffer: {e}")))?,
    );
    let metrics = own_metrics::SelfMetrics::new(&tracker, args.record_metrics)?;
    let app = Arc::new(App {
        cx: cx.clone(),
        tracker,
        metrics,
        token,
        max_batch: args.max_batch,
        max_body: args.max_body,
    });
    let stop = stop_signal()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::failed(format!("--listen: cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::failed(format!("--listen: {e}")))?;
    // Tests and scripts read the port from this line (with `--listen 127.0.0.1:0`).
    println!("listening on http://{bound}");
    if !bound.ip().is_loopback() {
        eprintln!(
            "note: listening on {bound}, reachable from other machines{}",
            if app.token.is_none() {
                " with no --token: anyone who reaches it can write"
            } else {
                ""
            }
        );
    }
    let served = axum::serve(listener, router(Arc::clone(&app)))
        .with_graceful_shutdown(stop)
        .await;
    // Whatever ended the server, the buffer is written before the process ends (with
    // `--record-metrics`, after the recorder's last drain into it).
    let unwritten = app.metrics.shutdown(&app.tracker).await;
    served.map_err(|e| CliError::failed(format!("the server failed: {e}")))?;
    if !unwritten.is_empty() {
        return Err(CliError::failed(format!(
            "stopped, but {} batch(es) could not be written to {}",
            unwritten.len(),
            app.cx.stores.shown()
        )));
    }
    let stats = app.tracker.stats();
    Ok(format!(
        "stopped: everything written ({} leaf updates tracked, {} written in {} batches)",
        stats.tracked, stats.flushed, stats.batches
    ))
}

/// Installs the SIGINT and SIGTERM handlers (before the address is printed: a signal sent as
/// soon as the server is up must stop it gracefully, not kill it) and returns the future that
/// ends at the first of them.
fn stop_signal() -> CliResult<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| CliError::failed(format!("cannot watch {name}: {e}")))
        };
        let mut interrupt = watch(SignalKind::interrupt(), "SIGINT")?;
        let mut terminate = watch(SignalKind::terminate(), "SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            eprintln!("stopping: finishing the requests in flight, then writing the buffer");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping: finishing the requests in flight, then writing the buffer");
        })
    }
}

fn router(app: Shared) -> Router {
    let api = api::routes()
        .layer(DefaultBodyLimit::max(app.max_body))
        .route("/metrics", axum::routing::get(metrics_text))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), authorize));
    Router::new()
        .merge(api)
        .merge(dashboard::routes())
        .route("/healthz", axum::routing::get(healthz))
        .fallback(not_found)
        // Inside `errors_as_json`: it sees the status, which that layer keeps.
        .layer(middleware::from_fn_with_state(Arc::clone(&app), observe))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            errors_as_json,
        ))
        .with_state(app)
}

/// `GET /metrics`.
async fn metrics_text(State(app): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, stats::metrics::CONTENT_TYPE)],
        app.metrics.render(&app.tracker),
    )
        .into_response()
}

/// Counts every request by its route template (never its path: the label sets stay as few as
/// the routes) and status, and times it.
async fn observe(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = match request.extensions().get::<MatchedPath>() {
        None => own_metrics::UNMATCHED,
        // The assets' templates hold a `.`, which the store's path names refuse.
        Some(path) if dashboard::PATHS.contains(&path.as_str()) => dashboard::ROUTE,
        Some(path) => path.as_str(),
    }
    .to_owned();
    let response = next.run(request).await;
    app.metrics
        .request(&route, response.status().as_u16(), started.elapsed());
    response
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}", uri.path()),
    )
    .into_response()
}

/// The bearer token check of the `/v1` routes.
async fn authorize(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let Some(expected) = app.token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let refused = match given {
        None => "missing token: send the header `Authorization: Bearer <token>`",
        // Constant time in the token's contents (its length is not a secret worth hiding).
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            return next.run(request).await;
        }
        Some(_) => "wrong token in the Authorization header",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, refused).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"stats\""),
    );
    response
}

/// Every error response in the JSON shape, axum's own (a rejected path or query, a body over
/// the limit, a wrong method) included: they come as plain text or empty.
async fn errors_as_json(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        // The allowed methods are in the `Allow` header.
        StatusCode::METHOD_NOT_ALLOWED => format!("method {method} is not allowed on {path}"),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is larger than --max-body ({} bytes)",
            app.max_body
        ),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
        _ => text,
    };
    let mut out = ApiError::new(status, message).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<CliError> for ApiError {
    /// Bad input is 400, a negative answer 404 (the routes where it means a conflict answer
    /// 409 themselves), a store failure 503.
    fn from(error: CliError) -> Self {
        match error {
            CliError::Input(m) => ApiError::bad(m),
            CliError::Negative(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            CliError::Failed(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

impl From<stats::Error> for ApiError {
    fn from(error: stats::Error) -> Self {
        ApiError::from(CliError::from(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap_or_else(|_| self.status.into_response())
    }
}
