//! HTTP: the axum router, the shared state, and the mapping of errors to answers. Handlers
//! are thin — extract, call the domain (`ingest`, `store`), map the result.
//!
//! Routes: Sentry ingestion (`sentry`), Seismo's JSON ingestion (`native`), the management
//! API (`api`), health and metrics (`health`). Only this module imports axum.

pub mod api;
pub mod error;
pub mod extract;
pub mod grpc;
pub mod health;
pub mod native;
pub mod observe;
pub mod otlp;
pub mod sentry;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::Router;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::ingest::MAX_COMPRESSED_BYTES;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

pub fn router(app: Arc<App>) -> Router {
    // With a metrics listener of its own, /metrics is served there only.
    let metrics_here = app.config.metrics_listen.is_none();
    let state = AppState(app);
    let routes = Router::new()
        .merge(sentry::router())
        .merge(native::router())
        .merge(otlp::router())
        .merge(api::router())
        .merge(health::router(metrics_here))
        .fallback(|| async { error::ApiError::not_found("route") });
    observed(routes, &state)
        // Bodies are read whole up to the compressed limit; past it, 413.
        .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BYTES))
        .with_state(state)
}

/// The OTLP/HTTP listener's routes: what exporters send to by default (port 4318).
pub fn otlp_router(app: Arc<App>) -> Router {
    let state = AppState(app);
    let routes = Router::new()
        .merge(otlp::router())
        .merge(health::router(false));
    observed(routes, &state)
        .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BYTES))
        .with_state(state)
}

/// The metrics listener's routes (`SEISMO_METRICS_LISTEN`): `/metrics` and `/healthz`.
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .merge(health::metrics_router())
        .with_state(AppState(app))
}

/// Every request: a span by route template, and its duration by route and status.
fn observed(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::record_duration,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(observe::request_span))
}

/// Serves `router` until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The DSN-prefix rewrite must run before routing, so it wraps the router.
    let service = tower::util::MapRequestLayer::new(sentry::strip_dsn_prefix::<axum::body::Body>)
        .layer(router);
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(service),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
