//! Hostile input over every ingestion door (Sentry envelope, store endpoint, OTLP JSON) and
//! slow clients: each gets a clear 4xx (status and one-line reason), a timeout, or is stored
//! safely; Seismo stays ready, and a valid event sent in the same run is stored.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{python_exception, TestApp};

/// A valid event, sent beside the hostile input: it must be stored.
async fn valid_event_is_stored(app: &TestApp, value: &str) {
    let event = python_exception("ValueError", value, &["checkout", "pay"], 10);
    let response = app.send_event(&event).await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let found = app.issues().await.iter().any(|issue| {
        issue["title"]
            .as_str()
            .is_some_and(|title| title.contains(value))
            || issue["culprit"].as_str().is_some_and(|c| c.contains(value))
            || issue.to_string().contains(value)
    });
    assert!(
        found,
        "the valid event {value:?} is stored: {:?}",
        app.issues().await
    );
}

async fn assert_ready(app: &TestApp) {
    let response = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status(), 200, "Seismo is still ready");
}

/// Reads what the server sends until it closes the connection or `limit` passes; returns
/// the bytes and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
        }
    }
}

/// Spawns with one-second header and body timeouts, so that slow clients are cut quickly.
async fn spawn_with_short_timeouts() -> TestApp {
    TestApp::spawn_with(|sources| {
        sources.set("http_header_timeout_seconds", "1");
        sources.set("http_body_timeout_seconds", "1");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_too_slowly_close_the_connection() {
    let app = spawn_with_short_timeouts().await;
    let mut stream = TcpStream::connect(app.address).await.expect("connect");
    let started = Instant::now();
    // A header line a byte at a time, never finished: the server must not wait forever.
    let trickle = async {
        for byte in b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), trickle)
        .await
        .ok();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the slow connection is closed");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed after {:?}",
        started.elapsed()
    );
    valid_event_is_stored(&app, "beside slow headers").await;
    assert_ready(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_gets_408() {
    let app = spawn_with_short_timeouts().await;
    let mut stream = TcpStream::connect(app.address).await.expect("connect");
    let head = format!(
        "POST /api/{}/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: Sentry sentry_key={}\r\nContent-Length: 1000\r\n\r\n",
        app.project.id,
        app.key()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    // A byte every 200 ms: each arrives well within any per-read timeout, but the body as a
    // whole would take 200 s.
    let trickle = async {
        loop {
            if stream.write_all(b"{").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), trickle)
        .await
        .ok();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(8));
    valid_event_is_stored(&app, "beside a slow body").await;
    assert_ready(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_client_on_a_slow_server_setting_is_served() {
    // The timeouts cut slow clients only: a request sent at once, and a second one on the
    // same kept-alive connection, are answered.
    let app = spawn_with_short_timeouts().await;
    valid_event_is_stored(&app, "first on the connection").await;
    valid_event_is_stored(&app, "second on the connection").await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// Hostile bodies
// ---------------------------------------------------------------------------------------

/// Sends `body` to the ingestion URL `url` and asserts a clear answer (see `clear_answer`).
async fn ingest_clearly_answered(app: &TestApp, url: &str, body: Vec<u8>, what: &str) {
    let response = app
        .ingest_request(url)
        .body(body)
        .send()
        .await
        .expect("an ingestion request");
    clear_answer(response, what).await;
}

/// After hostile input: Seismo is ready, a valid event is stored, and whatever hostile
/// input was stored reads back through the API.
async fn still_healthy(app: &TestApp, what: &str) {
    assert_ready(app).await;
    valid_event_is_stored(app, what).await;
    assert_stored_safely(app).await;
}

/// Asserts a 4xx with a one-line reason, or a 200 (stored safely); returns the status.
async fn clear_answer(response: reqwest::Response, what: &str) -> u16 {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert!(
        status == 200 || (400..500).contains(&status),
        "{what}: {status} {body}"
    );
    if status != 200 {
        let reason: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        // Seismo's `{"error":{...}}`, or OTLP's `google.rpc.Status` (`{"code","message"}`).
        let message = reason["error"]["message"]
            .as_str()
            .or_else(|| reason["message"].as_str())
            .unwrap_or_default();
        assert!(
            !message.is_empty() && !message.contains('\n') && message.len() < 500,
            "{what}: the reason is one clear line: {body}"
        );
    }
    status
}

/// The hostile event payloads (each a JSON body or bytes), by name.
fn hostile_payloads() -> Vec<(&'static str, Vec<u8>)> {
    let frames = |n: usize| -> Value {
        json!({"exception": {"values": [{"type": "Deep", "value": "many frames",
            "stacktrace": {"frames": vec![json!({}); n]}}]}})
    };
    let mut named_frames = frames(0);
    named_frames["exception"]["values"][0]["stacktrace"]["frames"] = Value::Array(
        (0..100_000)
            .map(|i| json!({"function": format!("f{i}"), "in_app": true}))
            .collect(),
    );
    let event_with = |timestamp: Value| -> Vec<u8> {
        serde_json::to_vec(&json!({"message": "odd time", "timestamp": timestamp})).expect("json")
    };
    vec![
        ("100k nested arrays", "[".repeat(100_000).into_bytes()),
        ("100k nested objects", "{\"a\":".repeat(100_000).into_bytes()),
        (
            "a 10 MB string",
            serde_json::to_vec(&json!({"message": "x".repeat(10 * 1024 * 1024)})).expect("json"),
        ),
        ("invalid UTF-8", b"{\"message\": \"\xff\xfe\xc3\x28\"}".to_vec()),
        (
            "NUL in strings and keys",
            br#"{"message": "nul\u0000inside", "tags": {"k\u0000ey": "v\u0000al"}, "extra": {"\u0000": "\u0000"}, "exception": {"values": [{"type": "Nul\u0000Error", "value": "v\u0000", "stacktrace": {"frames": [{"function": "f\u0000", "filename": "a\u0000.py", "vars": {"x\u0000": "\u0000"}}]}}]}}"#.to_vec(),
        ),
        ("100,000 empty frames", serde_json::to_vec(&frames(100_000)).expect("json")),
        ("100,000 named frames", serde_json::to_vec(&named_frames).expect("json")),
        ("a negative timestamp", event_with(json!(-1))),
        ("a huge timestamp", event_with(json!(1e300))),
        ("a huge negative timestamp", event_with(json!(-1e300))),
        ("a NaN timestamp", event_with(json!("NaN"))),
        ("an infinite timestamp", event_with(json!("Infinity"))),
        ("a timestamp past year 9999", event_with(json!("+275760-09-13T00:00:00Z"))),
        ("u64::MAX timestamp", event_with(json!(u64::MAX))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_over_the_envelope_endpoint() {
    let app = TestApp::spawn().await;
    for (what, payload) in hostile_payloads() {
        let body = crate::harness::envelope(&json!({}), &[("event", &payload)]);
        ingest_clearly_answered(&app, &app.envelope_url(), body, what).await;
    }
    // Envelope headers that are themselves hostile.
    for (what, header) in [
        ("a nested header", "[".repeat(100_000).into_bytes()),
        (
            "an invalid UTF-8 header",
            b"{\"event_id\": \"\xff\"}".to_vec(),
        ),
        (
            "a NUL header",
            br#"{"event_id": "\u0000", "dsn": "\u0000"}"#.to_vec(),
        ),
    ] {
        let mut body = header;
        body.extend_from_slice(b"\n{\"type\":\"event\"}\n{}\n");
        ingest_clearly_answered(&app, &app.envelope_url(), body, what).await;
    }
    still_healthy(&app, "after hostile envelopes").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_over_the_store_endpoint() {
    let app = TestApp::spawn().await;
    let url = app.url(&format!("/api/{}/store/", app.project.id));
    for (what, payload) in hostile_payloads() {
        ingest_clearly_answered(&app, &url, payload, what).await;
    }
    still_healthy(&app, "after hostile store bodies").await;
    app.stop().await;
}

/// Whatever was stored reads back through the API.
async fn assert_stored_safely(app: &TestApp) {
    for issue in app.issues().await {
        let id = issue["id"].as_i64().expect("id");
        assert!(!app.events_of(id).await.is_empty(), "issue {id} has events");
    }
}

fn otlp_log(attributes: &Value, body: &Value) -> Value {
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeLogs": [{"logRecords": [{
            "severityNumber": 17,
            "timeUnixNano": "1700000000000000000",
            "body": body,
            "attributes": attributes,
        }]}]
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_otlp_json() {
    let app = TestApp::spawn().await;
    let exception = |ty: &str, message: &str, stack: &str| {
        json!([
            {"key": "exception.type", "value": {"stringValue": ty}},
            {"key": "exception.message", "value": {"stringValue": message}},
            {"key": "exception.stacktrace", "value": {"stringValue": stack}},
        ])
    };
    let frames: String = (0..100_000)
        .map(|i| format!("  File \"app/m{i}.py\", line {i}, in f{i}\n"))
        .collect();
    let python_stack = format!("Traceback (most recent call last):\n{frames}ValueError: deep");
    let mut nested = json!({"stringValue": "leaf"});
    for _ in 0..200 {
        nested = json!({"arrayValue": {"values": [nested]}});
    }
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("100k nested arrays", "[".repeat(100_000).into_bytes()),
        ("invalid UTF-8", b"{\"resourceLogs\": \"\xff\"}".to_vec()),
    ];
    let bodies = [
        (
            "100,000 frames",
            otlp_log(
                &exception("ValueError", "deep", &python_stack),
                &json!({"stringValue": "x"}),
            ),
        ),
        (
            "a 10 MB message",
            otlp_log(
                &exception("Big", &"x".repeat(10 * 1024 * 1024), ""),
                &json!({"stringValue": "x"}),
            ),
        ),
        (
            "NUL everywhere",
            otlp_log(
                &json!([
                    {"key": "exception.type", "value": {"stringValue": "Nul\u{0}Error"}},
                    {"key": "exception.message", "value": {"stringValue": "m\u{0}"}},
                    {"key": "k\u{0}ey", "value": {"stringValue": "\u{0}"}},
                    {"key": "exception.stacktrace", "value": {"stringValue": "Traceback (most recent call last):\n  File \"a\u{0}.py\", line 1, in f\u{0}\nNulError: m"}},
                ]),
                &json!({"stringValue": "body\u{0}"}),
            ),
        ),
        (
            "deeply nested attribute values",
            otlp_log(
                &json!([
                    {"key": "exception.type", "value": {"stringValue": "NestError"}},
                    {"key": "deep", "value": nested},
                ]),
                &json!({"stringValue": "x"}),
            ),
        ),
    ];
    for (what, body) in &bodies {
        cases.push((what, serde_json::to_vec(body).expect("json")));
    }
    for (time, what) in [
        ("-1", "a negative time"),
        ("18446744073709551615", "u64::MAX time"),
        ("NaN", "a NaN time"),
    ] {
        let mut body = otlp_log(
            &exception("TimeError", what, ""),
            &json!({"stringValue": "x"}),
        );
        body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["timeUnixNano"] = json!(time);
        cases.push((what, serde_json::to_vec(&body).expect("json")));
    }
    for (what, body) in cases {
        let response = app
            .http
            .post(app.url("/v1/logs"))
            .header("x-seismo-key", app.key())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("otlp");
        clear_answer(response, what).await;
    }
    still_healthy(&app, "after hostile OTLP").await;
    app.stop().await;
}
