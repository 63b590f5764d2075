//! What every request leaves behind: a `request` span named by its route template (joined
//! to the caller's trace when it sends a W3C `traceparent`), and its duration in
//! `seismo_http_request_duration_seconds{method,route,status}`. Routes are templates such as
//! `/api/{project_id}/envelope/` — never the raw path, which may carry keys and ids.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::telemetry;

/// The route template a request matched (`unmatched` for the fallback).
fn route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched")
}

/// A method label from a fixed set, so a client cannot mint new series.
fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The span of one request; a child of the caller's trace when it sent `traceparent`.
pub fn request_span(request: &Request) -> tracing::Span {
    let span = tracing::debug_span!("request", method = %request.method(), route = route(request));
    telemetry::continue_remote_trace(&span, |name| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    });
    span
}

/// Middleware: times the request and counts it by method, route and status.
pub async fn record_duration(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method(request.method());
    let route = route(&request).to_owned();
    let response = next.run(request).await;
    state
        .metrics
        .http_request_duration
        .with_label_values(&[method, route.as_str(), response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method(&Method::POST), "POST");
        let custom = Method::from_bytes(b"PURGE").expect("a valid token");
        assert_eq!(method(&custom), "other");
    }
}
