//! HTTP: the axum router, the shared state, and the mapping of errors to answers. Handlers
//! are thin — extract, call the domain (`ingest`, `store`), map the result.
//!
//! Routes: Sentry ingestion (`sentry`), Seismo's JSON ingestion (`native`), the management
//! API (`api`), health and metrics (`health`). Only this module imports axum.

pub mod api;
pub mod body_timeout;
pub mod cors;
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
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Layer;

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
    routes.layer(observe::Observe::new(
        state.metrics.http_request_duration.clone(),
    ))
}

/// How long a client may take to send a request: its headers, then its body. A client
/// that trickles bytes (slowloris) would otherwise hold a connection and a task forever.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the moment the server waits for a request's headers (a new connection, or a
    /// kept-alive one between requests) until they are complete; past it the connection is
    /// closed.
    pub header: Duration,
    /// From the headers until the last byte of the body; past it the body read fails and
    /// the request is answered 408.
    pub body: Duration,
}

impl Timeouts {
    pub fn of(config: &crate::config::Config) -> Timeouts {
        Timeouts {
            header: config.http_header_timeout,
            body: config.http_body_timeout,
        }
    }
}

/// Serves `router` until `shutdown` resolves, then finishes the requests in flight.
///
/// An accept loop of its own rather than `axum::serve`, which offers no header read
/// timeout: each connection is served by hyper's HTTP/1 connection with a header timer, and
/// each request body gets a deadline (`body_timeout::Deadline`).
pub async fn serve(
    router: Router,
    listener: TcpListener,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The DSN-prefix rewrite must run before routing, so it wraps the router.
    let service = tower::util::MapRequestLayer::new(sentry::strip_dsn_prefix::<axum::body::Body>)
        .layer(router);
    let body_timeout = timeouts.body;
    let service = tower::util::MapRequestLayer::new(move |request: Request<Incoming>| {
        request.map(|body| axum::body::Body::new(body_timeout::Deadline::new(body, body_timeout)))
    })
    .layer(service);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            Err(error) => {
                accept_failed(&error).await;
                continue;
            }
        };
        // Small answers go out at once rather than waiting for more to send.
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An error from `accept` is about one connection (reset before it was taken) or about the
/// process (out of file descriptors); in the latter case the loop must not spin, so it
/// waits a moment, as `axum::serve` does.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
