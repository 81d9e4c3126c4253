//! A small web service instrumented only with the `metrics` crate's macros, whose metrics get
//! a history in a SQLite file (one line at start-up) and a Prometheus scrape endpoint.
//!
//! Run it, send it requests, stop it with Ctrl-C, then read the requests per minute back:
//!
//! ```text
//! cargo run -p stats --example metrics_service --features metrics,sqlite
//! curl http://127.0.0.1:3000/hello
//! curl http://127.0.0.1:3000/orders/7
//! curl http://127.0.0.1:3000/metrics
//! stats values http_requests_total --store sqlite://metrics_service.db -g 1m
//! ```
//!
//! The SQLite file is the first argument, else `$METRICS_SERVICE_DB`, else
//! `metrics_service.db`; the address to listen on the second argument, else
//! `$METRICS_SERVICE_LISTEN`, else `127.0.0.1:3000` (port 0 picks a free port). The bound
//! address is printed on standard output as `listening on http://ADDR`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Path, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use stats::Config;
use stats::buffer::BufferedTracker;
use stats::sql::{SqlConfig, SqlStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .or_else(|| std::env::var("METRICS_SERVICE_DB").ok())
        .unwrap_or_else(|| "metrics_service.db".to_owned());
    let listen = args
        .next()
        .or_else(|| std::env::var("METRICS_SERVICE_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());

    // The store: a SQLite file (created when missing) with its tables. Any other store works
    // the same way: PostgreSQL, MySQL, Redis, MongoDB, or the in-process one.
    let store = SqlStore::connect(SqlConfig::from_url(&format!("sqlite://{file}"))?).await?;
    store.setup().await?;

    // The one line: every `counter!`, `gauge!` and `histogram!` of this process now records
    // into the store, through a write buffer (one store write per second and field, whatever
    // the traffic), in minute, hour, day, week, month, quarter and year buckets. The handle
    // renders the current values for Prometheus and writes what is pending at shutdown.
    let metrics = stats::metrics::install(BufferedTracker::new(Arc::new(store), Config::new())?)?;

    // The service: two routes of its own, and `/metrics` for a Prometheus scraper. The
    // middleware counts and times every request (the handlers know nothing of metrics).
    let scrape = metrics.clone();
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/orders/{id}", get(order))
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, stats::metrics::CONTENT_TYPE)],
                    scrape.render(),
                )
            }),
        )
        .layer(middleware::from_fn(record_request));

    // Watch for Ctrl-C and SIGTERM before saying we listen: a signal sent as soon as the
    // address is out must stop the service gracefully, not kill it.
    let stop = stop_signal()?;
    // Port 0 picks a free port: the line below says which (a test reads it).
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);

    // Serve until Ctrl-C or SIGTERM; the requests in flight are finished first.
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;

    // Write everything the recorder and its buffer still hold; what could not be written
    // (the store was down through every retry) comes back.
    let unwritten = metrics.shutdown().await;
    if !unwritten.is_empty() {
        return Err(format!(
            "{} batch(es) could not be written to {file}",
            unwritten.len()
        )
        .into());
    }
    eprintln!("stopped: every metric written to {file}");
    Ok(())
}

/// Counts each request by route and status, and times it, with nothing but the `metrics`
/// macros. The `route` label is the route's template (`/orders/{id}`), never the path: one
/// series per route however many ids clients send (the recorder would fold the excess into
/// an overflow series past 1,000 label sets, but a bounded label is the right design).
async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    // Stored per minute as the path `route=/hello.status=200.count` of the key
    // `http_requests_total`; exposed as `http_requests_total{route="/hello",status="200"}`.
    metrics::counter!("http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    // Stored as bucket counts (`le.5e-3`, ..., `le.+Inf`), `count`, `sum`, `min` and `max`.
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn hello() -> &'static str {
    "hello\n"
}

/// An order by id: orders 1 to 100 exist, the others are 404 (a status label of its own).
async fn order(Path(id): Path<u64>) -> Response {
    if (1..=100).contains(&id) {
        axum::Json(serde_json::json!({ "id": id, "status": "shipped" })).into_response()
    } else {
        (StatusCode::NOT_FOUND, format!("no order {id}\n")).into_response()
    }
}

/// The future that ends at the first Ctrl-C (SIGINT) or SIGTERM (what `kill`, systemd and
/// Kubernetes send); the handlers are installed now.
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
