//! Seismo watching itself: `seismo serve` (the binary) with the standard
//! `OTEL_EXPORTER_OTLP_*` variables sends its own spans to a Seismo on loopback, joins the
//! trace of a caller that sends `traceparent`, and serves `/metrics` on a listener of its
//! own when `SEISMO_METRICS_LISTEN` is set.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::harness::{fresh_database_on, server_url, TestApp};
use crate::process::{free_port, Served};

/// `seismo serve` on a fresh database with `env` set: the process, its port, and the temp
/// dir of its spool (removed when the caller drops it).
async fn serve(env: &[(&str, &str)]) -> (Served, u16, tempfile::TempDir) {
    let (database_url, pool) = fresh_database_on(server_url().await).await;
    pool.close().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let served = Served::start(&database_url, &dir.path().join("spool"), port, env);
    (served, port, dir)
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

/// Exports every 200 ms instead of every 5 s, so the test waits less.
const QUICK_EXPORT: (&str, &str) = ("OTEL_BSP_SCHEDULE_DELAY", "200");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_tracing_sends_seismos_spans_to_a_seismo_on_loopback() {
    let receiver = TestApp::spawn().await;
    let endpoint = format!("http://{}", receiver.address);
    let headers = format!("x-seismo-key={}", receiver.key());
    let (traced, port, _dir) = serve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_HEADERS", &headers),
        ("OTEL_SERVICE_NAME", "seismo-self"),
        QUICK_EXPORT,
    ])
    .await;
    let client = reqwest::Client::new();
    for path in ["/readyz", "/healthz", "/no/such/route"] {
        client.get(url(port, path)).send().await.expect("request");
    }
    // The receiver counts the spans of each service per minute (the error-rate series).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut spans: i64 = 0;
    while Instant::now() < deadline && spans == 0 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        spans = sqlx::query_scalar(
            "SELECT coalesce(sum(requests), 0)::bigint FROM minute_counts \
             WHERE scope = 'service' AND service = 'seismo-self'",
        )
        .fetch_one(&receiver.pool)
        .await
        .expect("count spans");
    }
    assert!(spans >= 3, "the receiving Seismo counted {spans} spans");
    traced.kill();
    receiver.stop().await;
}

/// An OTLP/HTTP receiver that keeps every span it is sent.
async fn span_catcher() -> (String, Arc<Mutex<Vec<Span>>>) {
    let caught: Arc<Mutex<Vec<Span>>> = Arc::default();
    let keep = caught.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| async move {
            if let Ok(request) = ExportTraceServiceRequest::decode(body) {
                let spans = request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans);
                keep.lock().expect("lock").extend(spans);
            }
            ""
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), caught)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_traceparent_makes_the_request_span_part_of_the_callers_trace() {
    let (endpoint, caught) = span_catcher().await;
    let (traced, port, _dir) =
        serve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), QUICK_EXPORT]).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let answer = reqwest::Client::new()
        .get(url(port, "/readyz"))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let joined = caught
            .lock()
            .expect("lock")
            .iter()
            .find(|span| {
                hex::encode(&span.trace_id) == trace_id
                    && hex::encode(&span.parent_span_id) == parent
            })
            .cloned();
        if let Some(span) = joined {
            break span;
        }
        assert!(
            Instant::now() < deadline,
            "no span joined the caller's trace"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(found.name, "GET /readyz");
    assert_eq!(attribute(&found, "http.route"), Some("/readyz"));
    assert_eq!(found.kind, SpanKind::Server as i32);
    // The answer's status, recorded when the route answered.
    let status = found
        .attributes
        .iter()
        .find(|a| a.key == "http.response.status_code")
        .and_then(|a| a.value.as_ref()?.value.clone());
    assert_eq!(status, Some(Any::IntValue(200)), "{:?}", found.attributes);
    traced.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_of_its_own_takes_metrics_off_the_main_port() {
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let (served, port, _dir) = serve(&[("SEISMO_METRICS_LISTEN", &listen)]).await;
    let main = reqwest::get(url(port, "/metrics")).await.expect("GET");
    assert_eq!(main.status(), 404);
    let own = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("GET");
    assert_eq!(own.status(), 200);
    let text = own.text().await.expect("text");
    assert!(text.contains("seismo_build_info{version="), "{text}");
    // `serve` refreshes the gauges read from the database in the background.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        if text.contains("seismo_issues{status=\"unresolved\"} 0") {
            break;
        }
        assert!(Instant::now() < deadline, "no issue gauges in:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    served.kill();
}
