//! What every request leaves behind: a span named by its method and route template (joined
//! to the caller's trace when it sends a W3C `traceparent`), and its duration in
//! `seismo_http_request_duration_seconds{method,route,status}`. Routes are templates such as
//! `/api/{project_id}/envelope/` — never the raw path, which may carry keys and ids.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use prometheus::HistogramVec;
use tower::{Layer, Service};

use crate::telemetry;

/// The route label of a request's matched template (`unmatched`: the fallback's).
fn route(matched: Option<&MatchedPath>) -> &str {
    matched.map_or("unmatched", MatchedPath::as_str)
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
/// (`GET /readyz`, server kind, method, route; status and error recorded when it is
/// answered); a child of the caller's trace when it sent `traceparent`.
fn request_span(request: &Request, route: &str) -> tracing::Span {
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

/// The layer that observes every request of the routes it wraps: their span and duration.
///
/// A service of its own rather than `axum::middleware::from_fn` with tower-http's
/// `TraceLayer`: those boxed the inner service, wrapped the response body and ran their
/// hooks for every request, with CORS about 3 % of the instructions of a stored event
/// (bench/README.md). This one makes the span (nothing when it is disabled), polls the
/// route inside it, and records the answer.
#[derive(Clone)]
pub struct Observe {
    durations: HistogramVec,
}

impl Observe {
    /// `durations`: `seismo_http_request_duration_seconds{method,route,status}`.
    pub fn new(durations: HistogramVec) -> Observe {
        Observe { durations }
    }
}

impl<S> Layer<S> for Observe {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            inner,
            durations: self.durations.clone(),
        }
    }
}

/// A route's service, observed (see [`Observe`]).
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    durations: HistogramVec,
}

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Observing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Observing<S::Future> {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let span = request_span(&request, self::route(route.as_ref()));
        let method = method(request.method());
        let inner = span.in_scope(|| self.inner.call(request));
        Observing {
            inner,
            span,
            started,
            method,
            route,
            durations: self.durations.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// One request's answer on its way, polled inside the request's span.
    pub struct Observing<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        started: Instant,
        method: &'static str,
        route: Option<MatchedPath>,
        durations: HistogramVec,
    }
}

impl<F, E> Future for Observing<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            std::task::ready!(this.inner.poll(cx))
        };
        if let Ok(response) = &result {
            let status = response.status();
            record_status(this.span, status);
            this.durations
                .with_label_values(&[this.method, route(this.route.as_ref()), status.as_str()])
                .observe(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

/// The answer's status on the request's span; a 5xx marks it failed (the server's fault;
/// a 4xx is the client's, as OpenTelemetry's conventions say).
fn record_status(span: &tracing::Span, status: StatusCode) {
    if span.is_disabled() {
        return;
    }
    // As a signed integer: tracing-opentelemetry sends unsigned ones as text, where
    // OpenTelemetry's conventions say an int.
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
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
