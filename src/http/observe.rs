//! What every request leaves behind: a span named by its method and route template (joined
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

/// The span of one request, named and described as OpenTelemetry's HTTP conventions say
/// (`GET /readyz`, server kind, method, route; status and error recorded by
/// [`record_duration`]); a child of the caller's trace when it sent `traceparent`.
pub fn request_span(request: &Request) -> tracing::Span {
    let route = route(request);
    let span = tracing::debug_span!(
        "request",
        otel.name = format!("{} {route}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %request.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
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
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            // A 5xx is the server's failure; a 4xx is the client's (OpenTelemetry semconv).
            span.record("otel.status_code", "ERROR");
        }
    }
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
