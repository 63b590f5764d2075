//! CORS for the ingestion routes: browser SDKs post events cross-origin, and must be able
//! to read the rate-limit headers of the answer.
//!
//! - A preflight (`OPTIONS`) is answered here, never routed: any origin, `POST`, the
//!   headers the page asks for, cached for an hour.
//! - Every other answer gets the page's origin back (when it sent one) and the list of
//!   headers the page may read.
//!
//! A layer of its own rather than tower-http's `CorsLayer`, which built a header map for
//! every request whether it came from a page or not; here the headers are constants, and
//! only the origin is copied.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN,
    VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use tower::{Layer, Service};

/// The answer depends on these request headers: caches must keep them apart.
const VARY_ON: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);
/// What a page may read of an answer: when to retry, and why it was refused.
const EXPOSED: HeaderValue =
    HeaderValue::from_static("retry-after,x-sentry-rate-limits,x-sentry-error");
const METHODS: HeaderValue = HeaderValue::from_static("POST,OPTIONS");
/// How long a browser may reuse a preflight's answer: an hour, in seconds.
const MAX_AGE: HeaderValue = HeaderValue::from_static("3600");

/// The layer (see the module docs).
#[derive(Clone, Copy, Default)]
pub struct Cors;

impl<S> Layer<S> for Cors {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> CorsService<S> {
        CorsService { inner }
    }
}

/// A route's service, behind CORS.
#[derive(Clone)]
pub struct CorsService<S> {
    inner: S,
}

impl<S> Service<Request> for CorsService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Answering<S::Future> {
        if request.method() == Method::OPTIONS {
            return Answering::Preflight {
                answer: Some(preflight(request.headers())),
            };
        }
        Answering::Route {
            origin: request.headers().get(ORIGIN).cloned(),
            inner: self.inner.call(request),
        }
    }
}

/// The answer to a preflight.
fn preflight(request: &HeaderMap) -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(VARY, VARY_ON);
    if let Some(origin) = request.get(ORIGIN) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, METHODS);
    if let Some(asked) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    response
}

pin_project_lite::pin_project! {
    /// A route's answer on its way, or a preflight's, ready.
    #[project = AnsweringProjection]
    pub enum Answering<F> {
        Route {
            #[pin]
            inner: F,
            // The page's origin, allowed on the answer.
            origin: Option<HeaderValue>,
        },
        Preflight {
            // Taken when polled (a second poll, past completion, gets an empty one).
            answer: Option<Response>,
        },
    }
}

impl<F, E> Future for Answering<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (inner, origin) = match self.project() {
            AnsweringProjection::Preflight { answer } => {
                return Poll::Ready(Ok(answer.take().unwrap_or_default()));
            }
            AnsweringProjection::Route { inner, origin } => (inner, origin),
        };
        let mut result = std::task::ready!(inner.poll(cx));
        if let Ok(response) = &mut result {
            let headers = response.headers_mut();
            headers.insert(VARY, VARY_ON);
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
            if let Some(origin) = origin.take() {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    /// A route that answers 201, and counts how often it was called.
    fn route(
        calls: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl Service<Request, Response = Response, Error = std::convert::Infallible, Future: Send> + Clone
    {
        let calls = calls.clone();
        tower::service_fn(move |_request: Request| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::CREATED;
            std::future::ready(Ok(response))
        })
    }

    async fn answer(request: Request) -> (Response, usize) {
        let calls = std::sync::Arc::default();
        let response = Cors
            .layer(route(&calls))
            .oneshot(request)
            .await
            .expect("infallible");
        (response, calls.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_preflight_is_answered_without_the_route() {
        let request = Request::builder()
            .method(Method::OPTIONS)
            .header(ORIGIN, "https://shop.example")
            .header("access-control-request-method", "POST")
            .header(ACCESS_CONTROL_REQUEST_HEADERS, "x-sentry-auth,content-type")
            .body(Body::empty())
            .expect("a request");
        let (response, calls) = answer(request).await;
        assert_eq!(calls, 0, "a preflight never reaches the route");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some("https://shop.example")
        );
        assert_eq!(
            header(&response, "access-control-allow-methods"),
            Some("POST,OPTIONS")
        );
        assert_eq!(
            header(&response, "access-control-allow-headers"),
            Some("x-sentry-auth,content-type")
        );
        assert_eq!(header(&response, "access-control-max-age"), Some("3600"));
        assert!(header(&response, "vary").is_some_and(|v| v.contains("origin")));
    }

    #[tokio::test]
    async fn a_page_gets_its_origin_back_and_may_read_the_rate_limit_headers() {
        let request = Request::builder()
            .method(Method::POST)
            .header(ORIGIN, "https://shop.example")
            .body(Body::empty())
            .expect("a request");
        let (response, calls) = answer(request).await;
        assert_eq!(calls, 1);
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "the route's own answer"
        );
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some("https://shop.example")
        );
        let exposed = header(&response, "access-control-expose-headers").unwrap_or_default();
        for name in ["retry-after", "x-sentry-rate-limits", "x-sentry-error"] {
            assert!(exposed.contains(name), "{name} in {exposed:?}");
        }
        assert!(header(&response, "vary").is_some_and(|v| v.contains("origin")));
    }

    #[tokio::test]
    async fn a_server_sdk_without_an_origin_gets_no_allowed_origin() {
        let request = Request::builder()
            .method(Method::POST)
            .body(Body::empty())
            .expect("a request");
        let (response, calls) = answer(request).await;
        assert_eq!(calls, 1);
        assert_eq!(header(&response, "access-control-allow-origin"), None);
    }
}
