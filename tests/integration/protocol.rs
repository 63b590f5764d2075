//! The ingestion protocol over raw HTTP: every way a key can arrive, every compression, the
//! store endpoint and DSN prefixes, item types, partial failures, malformed envelopes, quotas,
//! duplicates, CORS, payload leniency, Seismo's own JSON endpoint and backpressure.

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use reqwest::header::HeaderMap;
use reqwest::Response;
use seismo::store::projects;
use serde_json::{json, Value};

use crate::harness::{envelope, python_exception, TestApp};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A small message event with a fresh event id.
fn message_event(message: &str) -> Value {
    json!({"event_id": new_id(), "platform": "python", "level": "error", "message": message})
}

fn event_id_of(event: &Value) -> String {
    event["event_id"].as_str().expect("event_id").to_owned()
}

/// An envelope with one event item; the header carries the event's id.
fn single_event_envelope(event: &Value) -> Vec<u8> {
    let payload = serde_json::to_vec(event).expect("event");
    envelope(
        &json!({"event_id": event["event_id"]}),
        &[("event", &payload)],
    )
}

/// POSTs an envelope (no compression) authenticated with `X-Sentry-Auth`.
async fn post_envelope(app: &TestApp, body: Vec<u8>) -> Response {
    app.ingest_request(&app.envelope_url())
        .header("content-type", "application/x-sentry-envelope")
        .body(body)
        .send()
        .await
        .expect("envelope request")
}

/// POSTs an envelope with a `Content-Encoding`.
async fn post_encoded(app: &TestApp, encoding: &str, body: Vec<u8>) -> Response {
    app.ingest_request(&app.envelope_url())
        .header("content-encoding", encoding)
        .body(body)
        .send()
        .await
        .expect("envelope request")
}

/// Status, headers and JSON body of a response.
async fn parts(response: Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// Asserts a 200 whose body is `{"id": "<32 hex>"}` and returns the id.
async fn expect_ack(response: Response) -> String {
    let (status, _, body) = parts(response).await;
    assert_eq!(status, 200, "expected 200, got {status}: {body}");
    let id = body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_owned();
    assert_eq!(id.len(), 32, "id {id:?} is not 32 hex digits");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "id {id:?} is not lowercase hex"
    );
    id
}

/// Asserts an error answer: status, `error.code`, a non-empty `X-Sentry-Error`. Returns the
/// headers for further checks.
async fn expect_error(response: Response, status: u16, code: &str) -> HeaderMap {
    let (got, headers, body) = parts(response).await;
    assert_eq!(got, status, "expected {status} {code}, got {got}: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
    headers
}

/// Like [`expect_error`], and also requires the `X-Sentry-Error` header (ingestion errors).
async fn expect_ingest_error(response: Response, status: u16, code: &str) -> HeaderMap {
    let headers = expect_error(response, status, code).await;
    let sentry_error = headers
        .get("x-sentry-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        !sentry_error.is_empty(),
        "{status} {code} has no X-Sentry-Error header: {headers:?}"
    );
    headers
}

/// The stored event as the API shows it.
async fn stored_event(app: &TestApp, id: &str) -> Value {
    let event = app.api_ok(&format!("/api/v1/events/{id}")).await;
    assert_eq!(event["event_id"], id, "API returned another event: {event}");
    event
}

/// The value of a Prometheus sample with exactly these labels (in any order), if present.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let mut got: Vec<String> = label_text
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            got.sort();
            (got == wanted).then(|| value.parse().ok()).flatten()
        })
}

fn events_received(app: &TestApp, source: &str, outcome: &str, reason: &str) -> f64 {
    metric(
        &app.metrics(),
        "seismo_events_received_total",
        &[("source", source), ("outcome", outcome), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn items_received(app: &TestApp, item_type: &str) -> f64 {
    metric(
        &app.metrics(),
        "seismo_envelope_items_total",
        &[("item_type", item_type)],
    )
    .unwrap_or(0.0)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("zlib");
    e.finish().expect("zlib")
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("deflate");
    e.finish().expect("deflate")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).expect("brotli");
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

// ---------------------------------------------------------------------------------------------
// 1. Authentication forms
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_auth_form_is_accepted() {
    let app = TestApp::spawn().await;
    let key = app.key().to_owned();
    let url = app.envelope_url();
    // Each form: its name, and the request carrying the key that way (body added below).
    let forms: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "x-sentry-auth",
            app.http.post(&url).header(
                "x-sentry-auth",
                format!("Sentry sentry_key={key}, sentry_version=7"),
            ),
        ),
        (
            "authorization",
            app.http
                .post(&url)
                .header("authorization", format!("Sentry sentry_key={key}")),
        ),
        (
            "query",
            app.http
                .post(format!("{url}?sentry_version=7&sentry_key={key}")),
        ),
        ("dsn", app.http.post(&url)),
    ];
    for (form, request) in forms {
        let event = message_event(&format!("via {form}"));
        let payload = serde_json::to_vec(&event).expect("event");
        // Only the last form puts the DSN in the envelope header.
        let header = match form {
            "dsn" => json!({"event_id": event["event_id"], "dsn": app.dsn()}),
            _ => json!({"event_id": event["event_id"]}),
        };
        let response = request
            .body(envelope(&header, &[("event", &payload)]))
            .send()
            .await
            .expect("request");
        let id = expect_ack(response).await;
        assert_eq!(id, event_id_of(&event), "{form}");
        assert_eq!(
            stored_event(&app, &id).await["message"],
            format!("via {form}")
        );
    }
    assert_eq!(app.event_count().await, 4);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Authentication failures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_failures_have_distinct_statuses_and_codes() {
    let app = TestApp::spawn().await;
    let body = || single_event_envelope(&message_event("refused"));

    // No key anywhere.
    let response = app
        .http
        .post(app.envelope_url())
        .body(body())
        .send()
        .await
        .expect("request");
    expect_ingest_error(response, 401, "missing_key").await;

    // A key that does not exist.
    let response = app
        .http
        .post(app.envelope_url())
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={}, sentry_version=7", new_id()),
        )
        .body(body())
        .send()
        .await
        .expect("request");
    expect_ingest_error(response, 403, "invalid_key").await;

    // Project A's key on project B's URL.
    let mut conn = app.pool.acquire().await.expect("connection");
    let other = projects::create(&mut conn, "other", "Other", None)
        .await
        .expect("create project B");
    drop(conn);
    let response = app
        .ingest_request(&app.url(&format!("/api/{}/envelope/", other.id)))
        .body(body())
        .send()
        .await
        .expect("request");
    expect_ingest_error(response, 403, "invalid_key").await;

    // A project that does not exist.
    let response = app
        .ingest_request(&app.url("/api/999999/envelope/"))
        .body(body())
        .send()
        .await
        .expect("request");
    expect_ingest_error(response, 404, "unknown_project").await;

    // A project id that is not a number.
    let response = app
        .ingest_request(&app.url("/api/abc/envelope/"))
        .body(body())
        .send()
        .await
        .expect("request");
    let (status, _, error) = parts(response).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "bad_request", "{error}");

    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Compression
// ---------------------------------------------------------------------------------------------

type Encoder = fn(&[u8]) -> Vec<u8>;

#[tokio::test]
async fn every_content_encoding_is_inflated_and_stored() {
    let app = TestApp::spawn().await;
    let encoders: [(&str, Encoder); 5] = [
        ("gzip", gzip),
        ("deflate", zlib),
        ("deflate", raw_deflate),
        ("br", brotli),
        ("zstd", zstd),
    ];
    for (i, (encoding, encode)) in encoders.iter().enumerate() {
        let message = format!("compressed with {encoding} #{i}");
        let event = message_event(&message);
        let compressed = encode(&single_event_envelope(&event));
        let id = expect_ack(post_encoded(&app, encoding, compressed).await).await;
        assert_eq!(id, event_id_of(&event), "{encoding} #{i}");
        assert_eq!(
            stored_event(&app, &id).await["message"],
            message.as_str(),
            "{encoding} #{i}"
        );
    }
    assert_eq!(app.event_count().await, 5);
    app.stop().await;
}

#[tokio::test]
async fn corrupt_and_unsupported_encodings_are_refused() {
    let app = TestApp::spawn().await;
    let plain = single_event_envelope(&message_event("never stored"));

    // A gzip stream with its middle overwritten.
    let mut corrupt = gzip(&plain);
    let middle = corrupt.len() / 2;
    for b in &mut corrupt[10..middle] {
        *b = 0xff;
    }
    let response = post_encoded(&app, "gzip", corrupt).await;
    expect_ingest_error(response, 400, "malformed").await;

    // Not gzip at all.
    let response = post_encoded(&app, "gzip", plain.clone()).await;
    expect_ingest_error(response, 400, "malformed").await;

    // An encoding Seismo does not speak.
    let response = post_encoded(&app, "compress", plain).await;
    expect_ingest_error(response, 415, "unsupported_encoding").await;

    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_gzip_bomb_is_cut_off_with_413() {
    let app = TestApp::spawn().await;
    // A valid envelope followed by 120 MiB of newlines (blank lines are legal between items):
    // if the decompressed-size limit did not hold, this would be stored.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&single_event_envelope(&message_event("bomb")))
        .expect("gzip");
    let chunk = vec![b'\n'; 1024 * 1024];
    for _ in 0..120 {
        encoder.write_all(&chunk).expect("gzip");
    }
    let bomb = encoder.finish().expect("gzip");
    assert!(bomb.len() < 1024 * 1024, "bomb is {} bytes", bomb.len());

    let started = Instant::now();
    let response = post_encoded(&app, "gzip", bomb).await;
    expect_ingest_error(response, 413, "too_large").await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");

    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Store endpoint and DSN path forms
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn store_endpoint_accepts_a_plain_event() {
    let app = TestApp::spawn().await;
    let event = python_exception("KeyError", "'user_id'", &["main", "get_user"], 10);
    let response = app
        .ingest_request(&app.url(&format!("/api/{}/store/", app.project.id)))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&event).expect("event"))
        .send()
        .await
        .expect("request");
    let id = expect_ack(response).await;
    assert_eq!(id, event_id_of(&event));
    let stored = stored_event(&app, &id).await;
    assert_eq!(stored["exception"][0]["type"], "KeyError", "{stored}");
    assert_eq!(stored["source"], "sentry");
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

#[tokio::test]
async fn dsn_path_prefix_and_missing_trailing_slash_are_routed() {
    let app = TestApp::spawn().await;
    let paths = [
        format!("/some/prefix/api/{}/envelope/", app.project.id),
        format!("/api/{}/envelope", app.project.id),
    ];
    for path in &paths {
        let event = message_event(&format!("posted to {path}"));
        let response = app
            .ingest_request(&app.url(path))
            .body(single_event_envelope(&event))
            .send()
            .await
            .expect("request");
        let id = expect_ack(response).await;
        assert_eq!(id, event_id_of(&event), "{path}");
        stored_event(&app, &id).await;
    }
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Item types
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn other_item_types_are_counted_and_skipped() {
    let app = TestApp::spawn().await;
    let event = message_event("the only error");
    let event_payload = serde_json::to_vec(&event).expect("event");
    let transaction = serde_json::to_vec(&json!({
        "type": "transaction", "transaction": "/checkout", "event_id": new_id(),
        "start_timestamp": 1764072000.0, "timestamp": 1764072001.0, "spans": []
    }))
    .expect("transaction");
    let session = br#"{"sid":"7c7b6585f4d04d5b9a9b6a1bd1f5a9c0","status":"ok","init":true}"#;
    let client_report =
        br#"{"timestamp":1764072000,"discarded_events":[{"reason":"queue_overflow","category":"error","quantity":1}]}"#;
    let attachment = b"line one\nline two\n\x00\x01binary";
    let weird = br#"{"whatever":"the future holds"}"#;
    let body = envelope(
        &json!({"event_id": event["event_id"]}),
        &[
            ("transaction", &transaction),
            ("session", session),
            ("event", &event_payload),
            ("client_report", client_report),
            ("attachment", attachment),
            ("weird_future_thing", weird),
        ],
    );
    let id = expect_ack(post_envelope(&app, body).await).await;
    assert_eq!(id, event_id_of(&event));
    stored_event(&app, &id).await;
    assert_eq!(app.event_count().await, 1);

    for item_type in [
        "event",
        "transaction",
        "session",
        "client_report",
        "attachment",
        "other",
    ] {
        assert_eq!(
            items_received(&app, item_type),
            1.0,
            "item_type={item_type}\n{}",
            app.metrics()
        );
    }
    assert_eq!(items_received(&app, "weird_future_thing"), 0.0);
    assert_eq!(events_received(&app, "sentry", "accepted", ""), 1.0);

    // An envelope with only a session: acknowledged, nothing stored.
    let body = envelope(&json!({}), &[("session", session)]);
    let (status, _, ack) = parts(post_envelope(&app, body).await).await;
    assert_eq!(status, 200, "{ack}");
    assert!(ack.is_object(), "{ack}");
    assert_eq!(app.event_count().await, 1);
    assert_eq!(items_received(&app, "session"), 2.0);
    assert_eq!(events_received(&app, "sentry", "accepted", ""), 1.0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Partial failures and per-event limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_malformed_item_does_not_drop_its_siblings() {
    let app = TestApp::spawn().await;
    let good = message_event("the good one");
    let good_payload = serde_json::to_vec(&good).expect("event");
    let body = envelope(
        &json!({}),
        &[
            ("event", b"{this is not json" as &[u8]),
            ("event", &good_payload),
        ],
    );
    let id = expect_ack(post_envelope(&app, body).await).await;
    assert_eq!(id, event_id_of(&good));
    stored_event(&app, &id).await;
    assert_eq!(app.event_count().await, 1);
    let text = app.metrics();
    assert!(
        text.lines().any(|l| l
            == "seismo_events_received_total{outcome=\"invalid\",reason=\"malformed\",source=\"sentry\"} 1"),
        "{text}"
    );
    assert_eq!(events_received(&app, "sentry", "accepted", ""), 1.0);

    // The only event is malformed: the request fails with its error.
    let body = envelope(&json!({}), &[("event", b"[1, 2, 3" as &[u8])]);
    expect_ingest_error(post_envelope(&app, body).await, 400, "malformed").await;
    // Valid JSON but not an object is malformed too.
    let body = envelope(&json!({}), &[("event", b"[1, 2, 3]" as &[u8])]);
    expect_ingest_error(post_envelope(&app, body).await, 400, "malformed").await;
    assert_eq!(events_received(&app, "sentry", "invalid", "malformed"), 3.0);
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_event_over_one_mebibyte_is_refused_alone_but_not_its_siblings() {
    let app = TestApp::spawn().await;
    let huge = message_event(&"x".repeat(1_100_000));
    let huge_payload = serde_json::to_vec(&huge).expect("event");
    assert!(huge_payload.len() > 1024 * 1024);

    // Alone: 413.
    let body = envelope(&json!({}), &[("event", &huge_payload)]);
    expect_ingest_error(post_envelope(&app, body).await, 413, "too_large").await;
    assert_eq!(app.event_count().await, 0);

    // Next to a valid one: 200, the valid one stored.
    let good = message_event("small and fine");
    let good_payload = serde_json::to_vec(&good).expect("event");
    let body = envelope(
        &json!({}),
        &[("event", &huge_payload), ("event", &good_payload)],
    );
    let id = expect_ack(post_envelope(&app, body).await).await;
    assert_eq!(id, event_id_of(&good));
    assert_eq!(stored_event(&app, &id).await["message"], "small and fine");
    assert_eq!(app.event_count().await, 1);
    let (status, _) = app
        .api_get(&format!("/api/v1/events/{}", event_id_of(&huge)))
        .await;
    assert_eq!(status, 404);
    assert_eq!(events_received(&app, "sentry", "invalid", "too_large"), 2.0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Malformed envelopes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_envelopes_are_400() {
    let app = TestApp::spawn().await;
    let event = serde_json::to_vec(&message_event("x")).expect("event");
    let mut truncated = b"{}\n".to_vec();
    truncated.extend_from_slice(
        format!("{{\"type\":\"event\",\"length\":{}}}\n", event.len() + 100).as_bytes(),
    );
    truncated.extend_from_slice(&event);
    truncated.push(b'\n');
    let mut bad_item_header = b"{}\nnot an item header\n".to_vec();
    bad_item_header.extend_from_slice(&event);
    let mut bad_header = b"not json at all\n{\"type\":\"event\"}\n".to_vec();
    bad_header.extend_from_slice(&event);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", Vec::new()),
        ("blank body", b"\n\n".to_vec()),
        ("header not JSON", bad_header),
        ("item header not JSON", bad_item_header),
        ("item longer than the body", truncated),
    ];
    for (name, body) in cases {
        let (status, headers, error) = parts(post_envelope(&app, body).await).await;
        assert_eq!(status, 400, "{name}: {error}");
        assert_eq!(error["error"]["code"], "malformed", "{name}: {error}");
        assert!(headers.contains_key("x-sentry-error"), "{name}");
    }
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 8. Quota
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn quota_answers_429_with_retry_after_and_rate_limits() {
    let app = TestApp::spawn().await;
    // Changed in the database directly, then forgotten by the key cache (which holds every
    // key from the start, for 30 s), as the API's project update does.
    projects::set_rate_limit(&app.pool, app.project.id, Some(3))
        .await
        .expect("set rate limit");
    app.app.ingest.forget_project(app.project.id);
    // Quota windows are wall-clock minutes: do not straddle a minute boundary.
    let second = Utc::now().second();
    if second >= 50 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }

    let mut ids = Vec::new();
    for i in 0..3 {
        let event = message_event(&format!("within quota {i}"));
        let id = expect_ack(post_envelope(&app, single_event_envelope(&event)).await).await;
        ids.push(id);
    }
    let refused = message_event("over quota");
    let response = post_envelope(&app, single_event_envelope(&refused)).await;
    let headers = expect_ingest_error(response, 429, "quota_exceeded").await;
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no integer Retry-After in {headers:?}"));
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let rate_limits = headers
        .get("x-sentry-rate-limits")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no X-Sentry-Rate-Limits in {headers:?}"));
    // retry_after:categories:scope:reason
    let fields: Vec<&str> = rate_limits.split(':').collect();
    assert!(fields.len() >= 3, "{rate_limits}");
    assert_eq!(fields[0], retry_after.to_string(), "{rate_limits}");
    assert_eq!(fields[2], "project", "{rate_limits}");

    assert_eq!(app.event_count().await, 3);
    for id in &ids {
        stored_event(&app, id).await;
    }
    let (status, _) = app
        .api_get(&format!("/api/v1/events/{}", event_id_of(&refused)))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        events_received(&app, "sentry", "rate_limited", "quota"),
        1.0
    );
    assert_eq!(events_received(&app, "sentry", "accepted", ""), 3.0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 9. Duplicates
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_duplicate_event_id_is_acknowledged_and_stored_once() {
    let app = TestApp::spawn().await;
    let event = python_exception("ValueError", "bad input", &["main", "parse"], 20);
    let body = single_event_envelope(&event);
    let first = expect_ack(post_envelope(&app, body.clone()).await).await;
    let second = expect_ack(post_envelope(&app, body).await).await;
    assert_eq!(first, event_id_of(&event));
    assert_eq!(second, first);

    assert_eq!(app.event_count().await, 1);
    let issues = app.issues().await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["count"], 1, "{}", issues[0]);
    let issue_id = issues[0]["id"].as_i64().expect("issue id");
    assert_eq!(app.events_of(issue_id).await.len(), 1);
    assert_eq!(
        events_received(&app, "sentry", "filtered", "duplicate"),
        1.0
    );
    assert_eq!(events_received(&app, "sentry", "accepted", ""), 1.0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 10. CORS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cors_preflight_and_exposed_headers() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.envelope_url())
        .header("origin", "http://example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "x-sentry-auth,content-type",
        )
        .send()
        .await
        .expect("preflight");
    let status = response.status();
    let headers = response.headers().clone();
    assert!(status.is_success(), "preflight: {status} {headers:?}");
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://example.com"),
        "{headers:?}"
    );
    let allowed_methods = headers
        .get("access-control-allow-methods")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(allowed_methods.contains("POST"), "{headers:?}");
    let allowed_headers = headers
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed_headers.contains("x-sentry-auth"), "{headers:?}");

    let expose = |headers: &HeaderMap| {
        headers
            .get("access-control-expose-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    // A successful POST from a page.
    let event = message_event("from a browser");
    let response = app
        .ingest_request(&app.envelope_url())
        .header("origin", "http://example.com")
        .body(single_event_envelope(&event))
        .send()
        .await
        .expect("post");
    let headers = response.headers().clone();
    expect_ack(response).await;
    let exposed = expose(&headers);
    for name in ["retry-after", "x-sentry-rate-limits", "x-sentry-error"] {
        assert!(exposed.contains(name), "{name} not exposed: {headers:?}");
    }
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://example.com")
    );

    // An error answer must be readable by the page too.
    let response = app
        .http
        .post(app.envelope_url())
        .header("origin", "http://example.com")
        .body(single_event_envelope(&message_event("no key")))
        .send()
        .await
        .expect("post");
    let headers = expect_ingest_error(response, 401, "missing_key").await;
    assert!(expose(&headers).contains("x-sentry-error"), "{headers:?}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 11. Payload leniency
// ---------------------------------------------------------------------------------------------

fn timestamp_of(event: &Value) -> DateTime<Utc> {
    let text = event["timestamp"].as_str().expect("timestamp");
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("timestamp {text:?}: {e}"))
        .with_timezone(&Utc)
}

#[tokio::test]
async fn lenient_payload_shapes_are_stored_normalized() {
    let app = TestApp::spawn().await;

    // Float timestamp (an hour ago: older than 30 days would not be believed), tags as
    // pairs, exception as a bare list, numeric level.
    let an_hour_ago = Utc::now().timestamp() - 3600;
    let first = json!({
        "event_id": new_id(),
        "timestamp": an_hour_ago as f64 + 0.5,
        "level": 50,
        "tags": [["region", "eu"], ["shard", 7], ["broken"]],
        "exception": [{"type": "ValueError", "value": "bad value"}]
    });
    let id = expect_ack(post_envelope(&app, single_event_envelope(&first)).await).await;
    let stored = stored_event(&app, &id).await;
    assert_eq!(
        timestamp_of(&stored).timestamp_millis(),
        an_hour_ago * 1000 + 500
    );
    assert_eq!(stored["level"], "fatal", "{stored}");
    assert_eq!(stored["tags"]["region"], "eu", "{stored}");
    assert_eq!(stored["tags"]["shard"], "7", "{stored}");
    assert!(stored["tags"].get("broken").is_none(), "{stored}");
    assert_eq!(stored["exception"][0]["type"], "ValueError", "{stored}");
    assert_eq!(stored["exception"][0]["value"], "bad value", "{stored}");

    // RFC 3339 timestamp with an offset, message as a logentry.
    let local = (Utc::now() - chrono::TimeDelta::hours(2))
        .with_timezone(&chrono::FixedOffset::east_opt(7200).expect("offset"));
    let second = json!({
        "event_id": new_id(),
        "timestamp": local.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        "message": {"formatted": "disk full on /var", "message": "disk full on %s"}
    });
    let id = expect_ack(post_envelope(&app, single_event_envelope(&second)).await).await;
    let stored = stored_event(&app, &id).await;
    assert_eq!(
        timestamp_of(&stored).timestamp_millis(),
        local.timestamp_millis()
    );
    assert_eq!(stored["message"], "disk full on /var", "{stored}");
    assert_eq!(stored["level"], "error", "{stored}");

    // NUL characters: accepted, stored without them.
    let third = json!({
        "event_id": new_id(),
        "message": "nul\u{0}here",
        "tags": {"k\u{0}ey": "v\u{0}al"}
    });
    let id = expect_ack(post_envelope(&app, single_event_envelope(&third)).await).await;
    let stored = stored_event(&app, &id).await;
    assert_eq!(stored["message"], "nulhere", "{stored}");
    assert_eq!(stored["tags"]["key"], "val", "{stored}");
    assert!(!stored.to_string().contains("\\u0000"), "{stored}");

    assert_eq!(app.event_count().await, 3);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 12. Seismo's own JSON endpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn native_json_endpoint() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/events");

    // One event, x-seismo-key.
    let response = app
        .http
        .post(&url)
        .header("x-seismo-key", app.key())
        .json(&json!({"message": "boom", "service": "api"}))
        .send()
        .await
        .expect("request");
    let (status, _, body) = parts(response).await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(body["ids"], json!([id]), "{body}");
    let stored = stored_event(&app, &id).await;
    assert_eq!(stored["service"], "api", "{stored}");
    assert_eq!(stored["message"], "boom", "{stored}");
    assert_eq!(stored["source"], "native", "{stored}");

    // An array of three.
    let response = app
        .http
        .post(&url)
        .header("x-seismo-key", app.key())
        .json(&json!([
            {"message": "one"},
            {"message": "two", "level": "warning"},
            {"message": "three", "service": "worker"}
        ]))
        .send()
        .await
        .expect("request");
    let (status, _, body) = parts(response).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<String> = body["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{body}");
    assert_eq!(body["id"], ids[0].as_str());
    for (id, message) in ids.iter().zip(["one", "two", "three"]) {
        assert_eq!(stored_event(&app, id).await["message"], message);
    }
    assert_eq!(app.event_count().await, 4);

    // Authorization: Bearer <ingestion key>.
    let response = app
        .http
        .post(&url)
        .bearer_auth(app.key())
        .json(&json!({"message": "bearer"}))
        .send()
        .await
        .expect("request");
    let (status, _, body) = parts(response).await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(stored_event(&app, &id).await["message"], "bearer");

    // No key.
    let response = app
        .http
        .post(&url)
        .json(&json!({"message": "anonymous"}))
        .send()
        .await
        .expect("request");
    expect_ingest_error(response, 401, "missing_key").await;

    // An API token is not an ingestion key.
    let response = app
        .http
        .post(&url)
        .bearer_auth(&app.token)
        .json(&json!({"message": "token"}))
        .send()
        .await
        .expect("request");
    expect_ingest_error(response, 403, "invalid_key").await;
    let response = app
        .http
        .post(&url)
        .header("x-seismo-key", &app.token)
        .json(&json!({"message": "token"}))
        .send()
        .await
        .expect("request");
    expect_ingest_error(response, 403, "invalid_key").await;

    assert_eq!(app.event_count().await, 5);
    assert_eq!(events_received(&app, "native", "accepted", ""), 5.0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 13. Backpressure
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_full_writer_queue_answers_503_with_retry_after() {
    let app = TestApp::spawn_with(|s| {
        s.set("writer_queue_capacity", "1");
    })
    .await;
    let a = serde_json::to_vec(&message_event("first of two")).expect("event");
    let b = serde_json::to_vec(&message_event("second of two")).expect("event");
    let body = envelope(&json!({}), &[("event", &a), ("event", &b)]);
    let headers = expect_ingest_error(post_envelope(&app, body).await, 503, "overloaded").await;
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no integer Retry-After in {headers:?}"));
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(app.event_count().await, 0);
    assert_eq!(
        events_received(&app, "sentry", "rate_limited", "backpressure"),
        2.0
    );

    // One event fits the queue.
    let event = message_event("alone");
    let id = expect_ack(post_envelope(&app, single_event_envelope(&event)).await).await;
    assert_eq!(id, event_id_of(&event));
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Races and edges found while probing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_duplicates_are_counted_once() {
    let app = TestApp::spawn().await;
    // The race needs two writer batches in flight at once; a few rounds make it near certain.
    let rounds = 6;
    let copies = 8;
    for round in 0..rounds {
        let event = python_exception(&format!("TimeoutError{round}"), "upstream", &["main"], 30);
        let body = single_event_envelope(&event);
        let tasks: Vec<_> = (0..copies)
            .map(|_| {
                let request = app.ingest_request(&app.envelope_url()).body(body.clone());
                tokio::spawn(async move { request.send().await.expect("request") })
            })
            .collect();
        for task in tasks {
            let id = expect_ack(task.await.expect("task")).await;
            assert_eq!(id, event_id_of(&event));
        }
    }
    assert_eq!(app.event_count().await, i64::from(rounds));
    let issues = app.issues().await;
    assert_eq!(issues.len(), rounds as usize, "{issues:?}");
    for issue in &issues {
        assert_eq!(issue["count"], 1, "times_seen: {issue}");
    }
    assert_eq!(
        events_received(&app, "sentry", "accepted", ""),
        f64::from(rounds)
    );
    assert_eq!(
        events_received(&app, "sentry", "filtered", "duplicate"),
        f64::from(rounds * (copies - 1))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unstorable_timestamp_is_treated_as_absent() {
    let app = TestApp::spawn().await;
    let ancient = json!({"event_id": new_id(), "message": "ancient", "timestamp": -300000000000.0});
    let good = message_event("sibling of an ancient event");
    let body = envelope(
        &json!({}),
        &[
            ("event", &serde_json::to_vec(&good).expect("event")),
            ("event", &serde_json::to_vec(&ancient).expect("event")),
        ],
    );
    let before = Utc::now();
    let id = expect_ack(post_envelope(&app, body).await).await;
    assert_eq!(id, event_id_of(&good));
    stored_event(&app, &id).await;
    // Like any field in a shape Seismo cannot use, the timestamp falls back to receipt time.
    let stored = stored_event(&app, &event_id_of(&ancient)).await;
    let timestamp = timestamp_of(&stored);
    assert!(
        timestamp >= before - chrono::TimeDelta::seconds(5),
        "{timestamp}"
    );
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

/// A body past the 20 MiB request limit is refused before it is read whole.
#[tokio::test]
async fn a_request_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let response = post_envelope(&app, vec![b'\n'; 21 * 1024 * 1024]).await;
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(app.event_count().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_request_body_over_the_limit_gets_the_json_error() {
    let app = TestApp::spawn().await;
    let response = post_envelope(&app, vec![b'\n'; 21 * 1024 * 1024]).await;
    expect_ingest_error(response, 413, "too_large").await;
    app.stop().await;
}
