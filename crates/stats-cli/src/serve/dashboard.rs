//! The dashboard: one page, a script and a style sheet, embedded in the binary (no CDN, no
//! build step). The script draws the chart as SVG from the `/v1` API.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::Shared;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// The dashboard's routes: the page, its script and its style sheet.
pub(super) const PATHS: [&str; 3] = ["/", "/app.js", "/style.css"];

/// The `route` label of the requests for any of [`PATHS`] in `GET /metrics`.
pub(super) const ROUTE: &str = "dashboard";

pub(super) fn routes() -> Router<Shared> {
    let [page, script, style] = PATHS;
    Router::new()
        .route(page, get(|| asset("text/html; charset=utf-8", INDEX)))
        .route(
            script,
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(style, get(|| asset("text/css; charset=utf-8", STYLE)))
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // The page loads only its own script and style, and talks only to this server.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}
