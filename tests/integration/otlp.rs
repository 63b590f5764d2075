//! OTLP ingestion end to end: the real OpenTelemetry exporters (HTTP protobuf, HTTP JSON,
//! gRPC) and hand-built requests (protobuf and JSON) against a running Seismo, read back
//! through the API, the `minute_counts` table and the Prometheus metrics.

use std::collections::HashMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, Status, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    Compression, LogExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
    WithTonicConfig,
};
use opentelemetry_proto::tonic as proto;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use prost::Message;
use reqwest::Response;
use serde_json::{json, Value};

use crate::harness::TestApp;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// What a Python service's OpenTelemetry SDK records for an uncaught `KeyError`.
const PYTHON_TRACEBACK: &str = r#"Traceback (most recent call last):
  File "/usr/local/lib/python3.12/site-packages/flask/app.py", line 917, in full_dispatch_request
    rv = self.dispatch_request()
  File "/app/shop/views.py", line 42, in checkout
    order = build_order(request)
  File "/app/shop/orders.py", line 17, in build_order
    user = session["user_id"]
KeyError: 'user_id'
"#;

/// `google.rpc.Status`, the body of OTLP/HTTP failures (protobuf flavour).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The resource of the `checkout` service: version, environment, host, Python.
fn checkout_resource() -> Resource {
    Resource::builder()
        .with_service_name("checkout")
        .with_attributes([
            KeyValue::new("service.version", "1.4.2"),
            KeyValue::new("deployment.environment.name", "staging"),
            KeyValue::new("host.name", "web-1"),
            KeyValue::new("telemetry.sdk.language", "python"),
        ])
        .build()
}

fn key_headers(app: &TestApp) -> HashMap<String, String> {
    HashMap::from([("x-seismo-key".to_owned(), app.key().to_owned())])
}

/// The exporters are made on the thread that uses them (see [`with_tracer`]): these return
/// what makes them.
fn http_spans(app: &TestApp, protocol: Protocol) -> impl FnOnce() -> SpanExporter + Send + 'static {
    let (url, headers) = (app.url("/v1/traces"), key_headers(app));
    move || {
        SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(url)
            .with_headers(headers)
            .build()
            .expect("HTTP span exporter")
    }
}

fn http_logs(app: &TestApp, protocol: Protocol) -> impl FnOnce() -> LogExporter + Send + 'static {
    let (url, headers) = (app.url("/v1/logs"), key_headers(app));
    move || {
        LogExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(url)
            .with_headers(headers)
            .build()
            .expect("HTTP log exporter")
    }
}

/// The key as gRPC metadata `name`; `value` makes its value from the key.
fn grpc_metadata(app: &TestApp, name: &'static str, value: fn(&str) -> String) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert(name, value(app.key()).parse().expect("metadata value"));
    metadata
}

fn grpc_spans(
    app: &TestApp,
    metadata: MetadataMap,
) -> impl FnOnce() -> SpanExporter + Send + 'static {
    let endpoint = format!("http://{}", app.grpc_address);
    move || {
        SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_metadata(metadata)
            .with_compression(Compression::Gzip)
            .build()
            .expect("gRPC span exporter")
    }
}

fn grpc_logs(
    app: &TestApp,
    metadata: MetadataMap,
) -> impl FnOnce() -> LogExporter + Send + 'static {
    let endpoint = format!("http://{}", app.grpc_address);
    move || {
        LogExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_metadata(metadata)
            .build()
            .expect("gRPC log exporter")
    }
}

/// Runs `emit` with a tracer provider exporting each span as it ends (simple processor), on a
/// blocking thread (the exporters block), then shuts the provider down; returns what `emit`
/// returns. `exporter` is built on that thread too (the gRPC one needs the runtime entered).
async fn with_tracer<R: Send + 'static>(
    exporter: impl FnOnce() -> SpanExporter + Send + 'static,
    resource: Resource,
    emit: impl FnOnce(&opentelemetry_sdk::trace::SdkTracer) -> R + Send + 'static,
) -> R {
    tokio::task::spawn_blocking(move || {
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter())
            .with_resource(resource)
            .build();
        let result = emit(&provider.tracer("otlp-test"));
        provider.force_flush().expect("flush spans");
        provider.shutdown().expect("shut the tracer provider down");
        result
    })
    .await
    .expect("tracing thread")
}

/// Like [`with_tracer`], for logs.
async fn with_logger(
    exporter: impl FnOnce() -> LogExporter + Send + 'static,
    resource: Resource,
    emit: impl FnOnce(&opentelemetry_sdk::logs::SdkLogger) + Send + 'static,
) {
    tokio::task::spawn_blocking(move || {
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter())
            .with_resource(resource)
            .build();
        emit(&provider.logger("otlp-test"));
        provider.force_flush().expect("flush logs");
        provider.shutdown().expect("shut the logger provider down");
    })
    .await
    .expect("logging thread")
}

/// Ends a failed span carrying the `KeyError` as an `exception` event and a successful span;
/// returns the failed span's trace id (hex).
fn key_error_and_success(tracer: &opentelemetry_sdk::trace::SdkTracer) -> String {
    let mut failed = tracer.start("POST /checkout");
    failed.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", "KeyError"),
            KeyValue::new("exception.message", "'user_id'"),
            KeyValue::new("exception.stacktrace", PYTHON_TRACEBACK),
            KeyValue::new("exception.escaped", true),
        ],
    );
    failed.set_status(Status::error("KeyError: 'user_id'"));
    let trace_id = failed.span_context().trace_id().to_string();
    failed.end();
    let mut ok = tracer.start("GET /cart");
    ok.set_status(Status::Ok);
    ok.end();
    trace_id
}

/// Emits one ERROR log record carrying an exception.
fn value_error_log(logger: &opentelemetry_sdk::logs::SdkLogger) {
    let mut record = logger.create_log_record();
    record.set_severity_number(Severity::Error);
    record.set_severity_text("ERROR");
    record.set_body("payment rejected".into());
    record.add_attribute("exception.type", "ValueError");
    record.add_attribute("exception.message", "amount must be positive");
    logger.emit(record);
}

fn text(value: &str) -> Option<proto::common::v1::AnyValue> {
    Some(proto::common::v1::AnyValue {
        value: Some(proto::common::v1::any_value::Value::StringValue(
            value.to_owned(),
        )),
    })
}

fn kv(key: &str, value: &str) -> proto::common::v1::KeyValue {
    proto::common::v1::KeyValue {
        key: key.to_owned(),
        value: text(value),
        ..Default::default()
    }
}

fn exception_attributes(ty: &str, message: &str) -> Vec<proto::common::v1::KeyValue> {
    vec![
        kv("exception.type", ty),
        kv("exception.message", message),
        kv("exception.stacktrace", PYTHON_TRACEBACK),
    ]
}

fn proto_resource(service: &str) -> Option<proto::resource::v1::Resource> {
    Some(proto::resource::v1::Resource {
        attributes: vec![kv("service.name", service)],
        ..Default::default()
    })
}

fn now_nanos() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    // Whole milliseconds: the database keeps microseconds, so the value survives the trip.
    since_epoch.as_millis() as u64 * 1_000_000
}

/// A span; with `exception`, it failed and carries that exception as an event.
fn span(
    trace_id: &[u8],
    span_id: &[u8],
    exception: Option<(&str, &str)>,
) -> proto::trace::v1::Span {
    let now = now_nanos();
    let events = exception
        .map(|(ty, message)| proto::trace::v1::span::Event {
            name: "exception".to_owned(),
            time_unix_nano: now,
            attributes: exception_attributes(ty, message),
            ..Default::default()
        })
        .into_iter()
        .collect();
    proto::trace::v1::Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: "POST /pay".to_owned(),
        kind: 2,
        start_time_unix_nano: now - 5_000_000,
        end_time_unix_nano: now,
        events,
        status: exception.map(|_| proto::trace::v1::Status {
            code: 2,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn traces_request(service: &str, spans: Vec<proto::trace::v1::Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![proto::trace::v1::ResourceSpans {
            resource: proto_resource(service),
            scope_spans: vec![proto::trace::v1::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A log record of `severity` with `body`, tied to a span when the ids are not empty.
fn log_record(
    severity: i32,
    body: &str,
    trace_id: &[u8],
    span_id: &[u8],
    attributes: Vec<proto::common::v1::KeyValue>,
) -> proto::logs::v1::LogRecord {
    proto::logs::v1::LogRecord {
        time_unix_nano: now_nanos() + 1_000_000,
        severity_number: severity,
        body: text(body),
        attributes,
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        ..Default::default()
    }
}

fn logs_request(
    service: &str,
    log_records: Vec<proto::logs::v1::LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![proto::logs::v1::ResourceLogs {
            resource: proto_resource(service),
            scope_logs: vec![proto::logs::v1::ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// POSTs a body to an OTLP/HTTP path with the project's key.
async fn post(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> Response {
    post_with(
        app,
        path,
        &[("x-seismo-key", app.key())],
        content_type,
        body,
    )
    .await
}

/// POSTs a body with exactly the given extra headers (e.g. no key, another key).
async fn post_with(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: Vec<u8>,
) -> Response {
    let mut request = app
        .http
        .post(app.url(path))
        .header("content-type", content_type);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).send().await.expect("OTLP request")
}

async fn post_proto(app: &TestApp, path: &str, message: &impl Message) -> Response {
    post(app, path, PROTOBUF, message.encode_to_vec()).await
}

/// Status, content type and body bytes.
async fn parts(response: Response) -> (u16, String, Vec<u8>) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.bytes().await.expect("response body").to_vec();
    (status, content_type, body)
}

/// Asserts a JSON answer and returns its body.
async fn json_answer(response: Response, status: u16) -> Value {
    let (actual, content_type, body) = parts(response).await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(actual, status, "body: {text}");
    assert_eq!(content_type, JSON);
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"))
}

/// Asserts a protobuf `google.rpc.Status` answer and returns it.
async fn proto_status(response: Response, status: u16) -> RpcStatus {
    let (actual, content_type, body) = parts(response).await;
    assert_eq!(actual, status, "body: {}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, PROTOBUF);
    RpcStatus::decode(body.as_slice()).expect("a google.rpc.Status body")
}

/// The single issue and its single event.
async fn only_event(app: &TestApp) -> (Value, Value) {
    let issues = app.issues().await;
    assert_eq!(issues.len(), 1, "issues: {issues:#?}");
    let issue = issues[0].clone();
    let events = app.events_of(issue["id"].as_i64().expect("issue id")).await;
    assert_eq!(events.len(), 1, "events: {events:#?}");
    (issue, events[0].clone())
}

/// The event of the issue titled `title`.
async fn event_titled(app: &TestApp, title: &str) -> Value {
    let issues = app.issues().await;
    let issue = issues
        .iter()
        .find(|i| i["title"] == title)
        .unwrap_or_else(|| panic!("an issue titled {title:?} in {issues:#?}"));
    let events = app.events_of(issue["id"].as_i64().expect("issue id")).await;
    assert_eq!(events.len(), 1, "events: {events:#?}");
    events[0].clone()
}

/// `(requests, failed)` of a service, summed over minutes.
async fn service_requests(app: &TestApp, service: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT COALESCE(SUM(requests), 0)::int8, COALESCE(SUM(failed), 0)::int8 \
         FROM minute_counts WHERE project_id = $1 AND scope = 'service' AND service = $2",
    )
    .bind(app.project.id)
    .bind(service)
    .fetch_one(&app.pool)
    .await
    .expect("minute counts")
}

/// The sum of the samples of metric `name` that carry all `labels`.
fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    app.metrics()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, label_text) = series.split_once('{').unwrap_or((series, "}"));
            let pairs: Vec<&str> = label_text.trim_end_matches('}').split(',').collect();
            let matches = series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| pairs.contains(&format!("{k}=\"{v}\"").as_str()));
            matches.then(|| value.parse::<f64>().expect("sample value"))
        })
        .sum()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

// ---------------------------------------------------------------------------------------------
// Real exporters
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_exporter_span_exception_becomes_an_issue_and_spans_count() {
    let app = TestApp::spawn().await;
    let exporter = http_spans(&app, Protocol::HttpBinary);
    let trace_id = with_tracer(exporter, checkout_resource(), key_error_and_success).await;

    let (issue, event) = only_event(&app).await;
    assert_eq!(issue["title"], "KeyError: 'user_id'");
    assert_eq!(issue["count"], 1);
    assert_eq!(event["title"], "KeyError: 'user_id'");
    assert_eq!(event["level"], "error");
    assert_eq!(event["service"], "checkout");
    assert_eq!(event["environment"], "staging");
    assert_eq!(event["release"], "1.4.2");
    assert_eq!(event["trace_id"], trace_id.as_str());
    assert_eq!(trace_id.len(), 32);
    assert_eq!(event["source"], "otlp_http");
    assert_eq!(event["platform"], "python");
    assert_eq!(event["handled"], false, "exception.escaped = true");
    assert_eq!(event["tags"]["host"], "web-1");
    assert_eq!(event["exception"][0]["type"], "KeyError");
    assert_eq!(event["exception"][0]["value"], "'user_id'");
    assert_eq!(event["payload"]["span"]["name"], "POST /checkout");
    assert_eq!(event["payload"]["span"]["trace_id"], trace_id.as_str());
    assert_eq!(event["payload"]["resource"]["service.name"], "checkout");

    assert_eq!(service_requests(&app, "checkout").await, (2, 1));
    assert_eq!(
        metric(
            &app,
            "seismo_otlp_records_total",
            &[("signal", "traces"), ("result", "accepted")]
        ),
        2.0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stack_trace_of_an_exporter_span_is_parsed_into_frames() {
    let app = TestApp::spawn().await;
    let exporter = http_spans(&app, Protocol::HttpBinary);
    with_tracer(exporter, checkout_resource(), key_error_and_success).await;

    let (_, event) = only_event(&app).await;
    let frames = event["exception"][0]["frames"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let summary: Vec<(String, String, i64)> = frames
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap_or_default().to_owned(),
                f["filename"].as_str().unwrap_or_default().to_owned(),
                f["lineno"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    // Caller first, the crashing frame last (Python's own order, and Sentry's).
    assert_eq!(
        summary,
        vec![
            (
                "full_dispatch_request".to_owned(),
                "/usr/local/lib/python3.12/site-packages/flask/app.py".to_owned(),
                917
            ),
            ("checkout".to_owned(), "/app/shop/views.py".to_owned(), 42),
            (
                "build_order".to_owned(),
                "/app/shop/orders.py".to_owned(),
                17
            ),
        ],
        "frames: {frames:#?}"
    );
    assert_eq!(frames[1]["in_app"], true);
    assert_eq!(frames[2]["in_app"], true);
    assert_ne!(frames[0]["in_app"], true, "site-packages is not the app");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_log_exporter_error_record_becomes_an_issue() {
    let app = TestApp::spawn().await;
    let exporter = http_logs(&app, Protocol::HttpJson);
    // The environment under its older name, which some SDKs still send.
    let resource = Resource::builder()
        .with_service_name("payments")
        .with_attributes([KeyValue::new("deployment.environment", "production")])
        .build();
    with_logger(exporter, resource, value_error_log).await;

    let (issue, event) = only_event(&app).await;
    assert_eq!(issue["title"], "ValueError: amount must be positive");
    assert_eq!(event["title"], "ValueError: amount must be positive");
    assert_eq!(event["service"], "payments");
    assert_eq!(event["environment"], "production");
    assert_eq!(event["source"], "otlp_http");
    assert_eq!(event["level"], "error");
    assert_eq!(event["trace_id"], Value::Null, "logged outside any span");
    assert_eq!(
        event["payload"]["log_record"]["body"], "payment rejected",
        "the record is kept"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exporters_store_traces_and_logs_with_source_otlp_grpc() {
    let app = TestApp::spawn().await;
    // Traces: the key in `x-seismo-key`, gzip-compressed messages.
    let metadata = grpc_metadata(&app, "x-seismo-key", str::to_owned);
    let trace_id = with_tracer(
        grpc_spans(&app, metadata),
        checkout_resource(),
        key_error_and_success,
    )
    .await;
    // Logs: the key as `authorization: Bearer`.
    let metadata = grpc_metadata(&app, "authorization", |key| format!("Bearer {key}"));
    let payments = Resource::builder().with_service_name("payments").build();
    with_logger(grpc_logs(&app, metadata), payments, value_error_log).await;

    assert_eq!(app.issues().await.len(), 2);
    let span_event = event_titled(&app, "KeyError: 'user_id'").await;
    assert_eq!(span_event["source"], "otlp_grpc");
    assert_eq!(span_event["service"], "checkout");
    assert_eq!(span_event["environment"], "staging");
    assert_eq!(span_event["release"], "1.4.2");
    assert_eq!(span_event["trace_id"], trace_id.as_str());
    let log_event = event_titled(&app, "ValueError: amount must be positive").await;
    assert_eq!(log_event["source"], "otlp_grpc");
    assert_eq!(log_event["service"], "payments");
    assert_eq!(service_requests(&app, "checkout").await, (2, 1));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Raw requests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_same_exception_as_span_event_and_log_record_is_stored_once() {
    let app = TestApp::spawn().await;
    let (trace_id, span_id) = ([0x4b; 16], [0x5c; 8]);
    let traces = traces_request(
        "checkout",
        vec![span(&trace_id, &span_id, Some(("KeyError", "'user_id'")))],
    );
    let logs = logs_request(
        "checkout",
        vec![log_record(
            17,
            "unhandled error",
            &trace_id,
            &span_id,
            exception_attributes("KeyError", "'user_id'"),
        )],
    );
    assert_eq!(post_proto(&app, "/v1/traces", &traces).await.status(), 200);
    assert_eq!(post_proto(&app, "/v1/logs", &logs).await.status(), 200);

    assert_eq!(app.event_count().await, 1);
    let (issue, event) = only_event(&app).await;
    assert_eq!(issue["count"], 1);
    assert_eq!(event["trace_id"], hex::encode(trace_id));
    let duplicates = [
        ("source", "otlp_http"),
        ("outcome", "filtered"),
        ("reason", "duplicate"),
    ];
    assert_eq!(
        metric(&app, "seismo_events_received_total", &duplicates),
        1.0
    );

    // The same exception logged in another span is another occurrence.
    let other_span = logs_request(
        "checkout",
        vec![log_record(
            17,
            "unhandled error",
            &trace_id,
            &[0x6d; 8],
            exception_attributes("KeyError", "'user_id'"),
        )],
    );
    assert_eq!(
        post_proto(&app, "/v1/logs", &other_span).await.status(),
        200
    );
    assert_eq!(app.event_count().await, 2);
    assert_eq!(app.issues().await[0]["count"], 2);
    app.stop().await;
}

#[tokio::test]
async fn hand_written_json_with_its_quirks_is_accepted() {
    let app = TestApp::spawn().await;
    let now = now_nanos();
    let traces = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "EEE19B7EC3C1B174",
            "name": "charge",
            "kind": 2,
            "startTimeUnixNano": (now - 1_000_000).to_string(),
            "endTimeUnixNano": now,
            "status": {"code": 2},
            "events": [{
                "name": "exception",
                "timeUnixNano": now.to_string(),
                "attributes": [
                    {"key": "exception.type", "value": {"stringValue": "CardError"}},
                    {"key": "exception.message", "value": {"stringValue": "card declined"}},
                    {"key": "attempt", "value": {"intValue": "3"}}
                ]
            }]
        }]}]
    }]});
    let logs = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": now,
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": "ledger out of balance"},
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": "b7ad6b7169203331"
        }]}]
    }]});
    let traces_answer = post(&app, "/v1/traces", JSON, traces.to_string().into_bytes()).await;
    assert_eq!(json_answer(traces_answer, 200).await, json!({}));
    // Media-type parameters are ignored.
    let json_utf8 = "application/json; charset=utf-8";
    let logs_answer = post(&app, "/v1/logs", json_utf8, logs.to_string().into_bytes()).await;
    assert_eq!(json_answer(logs_answer, 200).await, json!({}));

    let card = event_titled(&app, "CardError: card declined").await;
    assert_eq!(card["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(card["service"], "billing");
    assert_eq!(card["tags"]["attempt"], "3");
    assert_eq!(card["payload"]["span"]["kind"], 2);
    assert_eq!(card["payload"]["span"]["span_id"], "eee19b7ec3c1b174");
    let at = chrono::DateTime::parse_from_rfc3339(card["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339 timestamp");
    assert_eq!(at.timestamp_millis() as u64, now / 1_000_000);

    let ledger = event_titled(&app, "ledger out of balance").await;
    assert_eq!(ledger["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(ledger["level"], "error");
    assert_eq!(ledger["message"], "ledger out of balance");
    assert_eq!(ledger["exception"], json!([]));
    assert_eq!(service_requests(&app, "billing").await, (1, 1));
    app.stop().await;
}

#[tokio::test]
async fn a_gzip_protobuf_body_is_inflated_and_stored() {
    let app = TestApp::spawn().await;
    let request = traces_request(
        "checkout",
        vec![span(&[0x21; 16], &[0x22; 8], Some(("KeyError", "'sku'")))],
    );
    let bearer = format!("Bearer {}", app.key());
    let response = post_with(
        &app,
        "/v1/traces",
        &[("authorization", &bearer), ("content-encoding", "gzip")],
        PROTOBUF,
        gzip(&request.encode_to_vec()),
    )
    .await;
    let (status, content_type, body) = parts(response).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, PROTOBUF);
    let answer = ExportTraceServiceResponse::decode(body.as_slice()).expect("a trace response");
    assert_eq!(answer.partial_success, None);
    let (issue, _) = only_event(&app).await;
    assert_eq!(issue["title"], "KeyError: 'sku'");
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_their_status_and_a_google_rpc_status_body() {
    let app = TestApp::spawn().await;
    let request = traces_request(
        "checkout",
        vec![span(&[1; 16], &[2; 8], Some(("KeyError", "'x'")))],
    );
    let encoded = request.encode_to_vec();
    let json_body = serde_json::to_vec(&request).expect("OTLP JSON");

    // Not an OTLP content type: 415, answered in JSON.
    let plain = post(&app, "/v1/traces", "text/plain", b"hello".to_vec()).await;
    let status = json_answer(plain, 415).await;
    assert_eq!(status["code"], 3);
    let message = status["message"].as_str().expect("message");
    assert!(message.contains("text/plain"), "{message}");

    // No key: 401 / UNAUTHENTICATED (16), in the request's encoding.
    let no_key = post_with(&app, "/v1/traces", &[], JSON, json_body.clone()).await;
    assert_eq!(json_answer(no_key, 401).await["code"], 16);
    let no_key = post_with(&app, "/v1/traces", &[], PROTOBUF, encoded.clone()).await;
    assert_eq!(proto_status(no_key, 401).await.code, 16);

    // A key Seismo does not know: 403 / PERMISSION_DENIED (7).
    let wrong = [("x-seismo-key", "0123456789abcdef0123456789abcdef")];
    let wrong_key = post_with(&app, "/v1/logs", &wrong, JSON, b"{}".to_vec()).await;
    assert_eq!(json_answer(wrong_key, 403).await["code"], 7);
    let wrong_key = post_with(&app, "/v1/traces", &wrong, PROTOBUF, encoded.clone()).await;
    let status = proto_status(wrong_key, 403).await;
    assert_eq!(status.code, 7);
    assert_eq!(
        status.message,
        "the ingestion key is not valid for this project"
    );

    // A protobuf body cut in half: 400 / INVALID_ARGUMENT (3).
    let truncated = encoded[..encoded.len() / 2].to_vec();
    let cut = post(&app, "/v1/traces", PROTOBUF, truncated).await;
    let status = proto_status(cut, 400).await;
    assert_eq!(status.code, 3);
    assert!(
        status.message.starts_with("invalid OTLP protobuf"),
        "{}",
        status.message
    );

    // Broken JSON: 400 / INVALID_ARGUMENT (3).
    let broken = post(&app, "/v1/logs", JSON, b"{\"resourceLogs\": [".to_vec()).await;
    let status = json_answer(broken, 400).await;
    assert_eq!(status["code"], 3);
    let message = status["message"].as_str().expect("message");
    assert!(message.starts_with("invalid OTLP JSON"), "{message}");

    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn spans_with_ids_of_the_wrong_length_are_rejected_alone() {
    let app = TestApp::spawn().await;
    // JSON: one valid span, one with a 3-byte trace id.
    let traces = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "search"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
             "name": "query", "kind": 2},
            {"traceId": "abcdef", "spanId": "0102030405060709", "name": "broken", "kind": 2}
        ]}]
    }]});
    let answer = post(&app, "/v1/traces", JSON, traces.to_string().into_bytes()).await;
    let body = json_answer(answer, 200).await;
    assert_eq!(body["partialSuccess"]["rejectedSpans"], 1, "{body}");
    let message = body["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(!message.is_empty(), "{body}");

    // Protobuf: the same, answered as an ExportTraceServiceResponse.
    let request = traces_request(
        "search",
        vec![
            span(&[7; 16], &[8; 8], None),
            span(&[1, 2, 3], &[9; 8], None),
        ],
    );
    let (status, content_type, bytes) = parts(post_proto(&app, "/v1/traces", &request).await).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, PROTOBUF);
    let answer = ExportTraceServiceResponse::decode(bytes.as_slice()).expect("a trace response");
    let partial = answer.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(!partial.error_message.is_empty());

    // The valid spans are counted, the broken ones are not.
    assert_eq!(service_requests(&app, "search").await, (2, 0));

    // Logs: ids are optional, but a present one must have its length.
    let logs = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"severityNumber": 17, "body": {"stringValue": "kept"}},
        {"severityNumber": 17, "body": {"stringValue": "dropped"}, "traceId": "abcdef"}
    ]}]}]});
    let answer = post(&app, "/v1/logs", JSON, logs.to_string().into_bytes()).await;
    let body = json_answer(answer, 200).await;
    assert_eq!(body["partialSuccess"]["rejectedLogRecords"], 1, "{body}");
    let titles: Vec<Value> = app
        .issues()
        .await
        .iter()
        .map(|i| i["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("kept")]);
    let traces_with = |result| [("signal", "traces"), ("result", result)];
    assert_eq!(
        metric(&app, "seismo_otlp_records_total", &traces_with("accepted")),
        2.0
    );
    assert_eq!(
        metric(&app, "seismo_otlp_records_total", &traces_with("rejected")),
        2.0
    );
    app.stop().await;
}

#[tokio::test]
async fn an_error_log_without_exception_is_a_message_event_and_info_is_ignored() {
    let app = TestApp::spawn().await;
    let request = logs_request(
        "inventory",
        vec![
            log_record(17, "stock sync failed for warehouse 7", &[], &[], vec![]),
            log_record(9, "stock sync started", &[], &[], vec![]),
        ],
    );
    assert_eq!(post_proto(&app, "/v1/logs", &request).await.status(), 200);

    let (issue, event) = only_event(&app).await;
    assert_eq!(issue["title"], "stock sync failed for warehouse 7");
    assert_eq!(event["title"], "stock sync failed for warehouse 7");
    assert_eq!(event["message"], "stock sync failed for warehouse 7");
    assert_eq!(event["level"], "error");
    assert_eq!(event["service"], "inventory");
    assert_eq!(event["exception"], json!([]));
    assert_eq!(event["handled"], true, "a logged error was handled");
    assert_eq!(
        metric(
            &app,
            "seismo_otlp_records_total",
            &[("signal", "logs"), ("result", "accepted")]
        ),
        2.0
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_accepted_counted_and_not_stored() {
    let app = TestApp::spawn().await;
    let response = post(
        &app,
        "/v1/metrics",
        JSON,
        br#"{"resourceMetrics": []}"#.to_vec(),
    )
    .await;
    assert_eq!(json_answer(response, 200).await, json!({}));
    assert!(
        app.metrics()
            .contains("seismo_otlp_records_total{result=\"ignored\",signal=\"metrics\"} 1\n"),
        "{}",
        app.metrics()
    );
    // An empty ExportMetricsServiceRequest is an empty protobuf body.
    let (status, content_type, body) =
        parts(post(&app, "/v1/metrics", PROTOBUF, vec![]).await).await;
    assert_eq!((status, content_type.as_str()), (200, PROTOBUF));
    assert!(body.is_empty());
    let ignored = [("signal", "metrics"), ("result", "ignored")];
    assert_eq!(metric(&app, "seismo_otlp_records_total", &ignored), 2.0);
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_counters_move_per_transport() {
    let app = TestApp::spawn().await;
    let accepted = |source| [("source", source), ("outcome", "accepted"), ("reason", "")];
    assert_eq!(
        metric(&app, "seismo_events_received_total", &accepted("otlp_http")),
        0.0
    );
    assert_eq!(
        metric(&app, "seismo_events_received_total", &accepted("otlp_grpc")),
        0.0
    );

    let request = traces_request(
        "checkout",
        vec![span(&[3; 16], &[4; 8], Some(("KeyError", "'a'")))],
    );
    assert_eq!(post_proto(&app, "/v1/traces", &request).await.status(), 200);
    assert_eq!(
        metric(&app, "seismo_events_received_total", &accepted("otlp_http")),
        1.0
    );

    let metadata = grpc_metadata(&app, "x-seismo-key", str::to_owned);
    with_tracer(
        grpc_spans(&app, metadata),
        checkout_resource(),
        key_error_and_success,
    )
    .await;
    assert_eq!(
        metric(&app, "seismo_events_received_total", &accepted("otlp_grpc")),
        1.0
    );
    assert_eq!(
        metric(&app, "seismo_events_received_total", &accepted("otlp_http")),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn all_zero_ids_do_not_merge_separate_occurrences() {
    let app = TestApp::spawn().await;
    // The OTLP spec calls all-zero ids invalid, i.e. no span; a client may still send them.
    for _ in 0..2 {
        let request = logs_request(
            "checkout",
            vec![log_record(
                17,
                "unhandled error",
                &[0; 16],
                &[0; 8],
                exception_attributes("KeyError", "'user_id'"),
            )],
        );
        assert_eq!(post_proto(&app, "/v1/logs", &request).await.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(app.event_count().await, 2);
    assert_eq!(app.issues().await[0]["count"], 2);
    app.stop().await;
}
