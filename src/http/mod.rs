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
pub mod otlp;
pub mod sentry;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
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
    Router::new()
        .merge(sentry::router())
        .merge(native::router())
        .merge(otlp::router())
        .merge(api::router())
        .merge(health::router())
        .fallback(|| async { error::ApiError::not_found("route") })
        // Bodies are read whole up to the compressed limit; past it, 413.
        .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BYTES))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // The route template, never the raw URI (keys may sit in query strings).
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                tracing::debug_span!("request", method = %request.method(), route)
            }),
        )
        .with_state(AppState(app))
}

/// The OTLP/HTTP listener's routes: what exporters send to by default (port 4318).
pub fn otlp_router(app: Arc<App>) -> Router {
    Router::new()
        .merge(otlp::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BYTES))
        .with_state(AppState(app))
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
