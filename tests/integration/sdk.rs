//! End to end with the real `sentry` crate as the client: what a Rust service using Sentry's
//! SDK unchanged (only the DSN points at Seismo) sends, read back through the API.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use sentry::protocol::{Breadcrumb, Event, Exception, Frame, Level, Mechanism, Stacktrace};
use serde_json::Value;

use crate::harness::TestApp;

/// A client and hub of its own (no process-global state), sending to the app's DSN.
fn sdk(app: &TestApp) -> (Arc<sentry::Client>, Arc<sentry::Hub>) {
    let options = sentry::ClientOptions {
        dsn: Some(app.dsn().parse().expect("the app's DSN parses")),
        release: Some("shop@1.2.0".into()),
        environment: Some("production".into()),
        ..Default::default()
    };
    // `apply_defaults` is what `sentry::init` does: it installs the default HTTP transport.
    let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
    let hub = Arc::new(sentry::Hub::new(
        Some(client.clone()),
        Arc::new(sentry::Scope::default()),
    ));
    (client, hub)
}

fn frame(function: &str, module: &str, line: u64) -> Frame {
    Frame {
        function: Some(function.into()),
        module: Some(module.into()),
        filename: Some(format!("{}.py", module.replace('.', "/"))),
        lineno: Some(line),
        in_app: Some(true),
        ..Default::default()
    }
}

fn key_error(line: u64, handled: bool) -> Event<'static> {
    Event {
        level: Level::Error,
        platform: "python".into(),
        exception: vec![Exception {
            ty: "KeyError".into(),
            value: Some(format!("'user_id' (request {line})")),
            mechanism: Some(Mechanism {
                ty: "generic".into(),
                handled: Some(handled),
                ..Default::default()
            }),
            stacktrace: Some(Stacktrace {
                frames: vec![
                    frame("main", "shop.app", 10),
                    frame("load_user", "shop.users", line),
                ],
                ..Default::default()
            }),
            ..Default::default()
        }]
        .into(),
        ..Default::default()
    }
}

/// Runs `send` on a blocking thread (the SDK's flush blocks) and waits for delivery.
async fn send_with(app: &TestApp, send: impl FnOnce(&sentry::Hub) + Send + 'static) {
    let (client, hub) = sdk(app);
    tokio::task::spawn_blocking(move || {
        send(&hub);
        assert!(
            client.flush(Some(Duration::from_secs(10))),
            "the SDK delivered its events"
        );
    })
    .await
    .expect("sending thread");
}

fn issue_titled<'a>(issues: &'a [Value], title: &str) -> &'a Value {
    issues
        .iter()
        .find(|i| i["title"].as_str().is_some_and(|t| t.starts_with(title)))
        .unwrap_or_else(|| panic!("no issue titled {title:?} in {issues:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_group_by_call_path_not_by_line_or_request() {
    let app = TestApp::spawn().await;
    send_with(&app, |hub| {
        hub.configure_scope(|scope| scope.set_tag("service", "checkout"));
        hub.capture_event(key_error(42, true));
        hub.capture_event(key_error(57, false));
        let mut other = key_error(42, true);
        other.exception.values[0].ty = "ValueError".into();
        hub.capture_event(other);
    })
    .await;

    let issues = app.issues().await;
    assert_eq!(issues.len(), 2, "{issues:?}");
    let key_error = issue_titled(&issues, "KeyError: 'user_id'");
    assert_eq!(key_error["count"], 2);
    assert_eq!(key_error["culprit"], "shop.users in load_user");
    assert_eq!(key_error["first_release"], "shop@1.2.0");
    assert_eq!(
        key_error["handled"], false,
        "one of its events was unhandled"
    );
    assert_eq!(key_error["grouping_strategy"], "stacktrace");
    assert_eq!(issue_titled(&issues, "ValueError")["count"], 1);

    let events = app
        .events_of(key_error["id"].as_i64().expect("issue id"))
        .await;
    assert_eq!(events.len(), 2);
    let event = &events[0];
    assert_eq!(event["release"], "shop@1.2.0");
    assert_eq!(event["environment"], "production");
    assert_eq!(event["service"], "checkout");
    assert_eq!(event["tags"]["service"], "checkout");
    assert_eq!(event["platform"], "python");
    let frames = event["exception"][0]["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1]["function"], "load_user");
    assert_eq!(frames[1]["module"], "shop.users");
    assert_eq!(frames[1]["in_app"], true);
    assert_eq!(
        event["payload"]["sdk"]["name"], "sentry.rust",
        "the original payload is kept"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_keep_breadcrumbs_and_level() {
    let app = TestApp::spawn().await;
    send_with(&app, |hub| {
        hub.add_breadcrumb(Breadcrumb {
            category: Some("http".into()),
            message: Some("GET /cart".into()),
            ..Default::default()
        });
        hub.capture_message("payment provider timed out after 30s", Level::Warning);
    })
    .await;

    let issues = app.issues().await;
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!(issue["title"], "payment provider timed out after 30s");
    assert_eq!(issue["level"], "warning");
    assert_eq!(issue["grouping_strategy"], "message");
    let events = app.events_of(issue["id"].as_i64().expect("id")).await;
    assert_eq!(events[0]["message"], "payment provider timed out after 30s");
    let crumbs = &events[0]["payload"]["breadcrumbs"]["values"];
    assert_eq!(crumbs[0]["message"], "GET /cart", "{crumbs}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_fingerprints_split_and_merge_issues() {
    let app = TestApp::spawn().await;
    send_with(&app, |hub| {
        for tenant in ["acme", "globex", "acme"] {
            hub.with_scope(
                |scope| scope.set_fingerprint(Some(&["{{ default }}", tenant])),
                || hub.capture_event(key_error(42, true)),
            );
        }
        // Different errors forced into one issue.
        for ty in ["TimeoutError", "ConnectionError"] {
            hub.with_scope(
                |scope| scope.set_fingerprint(Some(&["database-unreachable"])),
                || {
                    let mut event = key_error(1, true);
                    event.exception.values[0].ty = ty.into();
                    hub.capture_event(event)
                },
            );
        }
    })
    .await;

    let issues = app.issues().await;
    let mut counts: Vec<i64> = issues
        .iter()
        .map(|i| i["count"].as_i64().unwrap_or(0))
        .collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2, 2], "{issues:?}");
    assert!(issues.iter().all(|i| i["grouping_strategy"] == "custom"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzipped_envelope_from_the_sdk_is_stored() {
    let app = TestApp::spawn().await;
    let mut event = key_error(42, true);
    event.release = Some("shop@2.0.0".into());
    let event_id = event.event_id;
    let mut raw = Vec::new();
    sentry::Envelope::from(event)
        .to_writer(&mut raw)
        .expect("serialize the envelope");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&raw).expect("gzip");
    let body = gzip.finish().expect("gzip");

    let response = app
        .http
        .post(app.envelope_url())
        .header(
            "X-Sentry-Auth",
            format!("Sentry sentry_key={}, sentry_version=7", app.key()),
        )
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json answer");
    assert_eq!(answer["id"], event_id.simple().to_string());

    let stored = app
        .api_ok(&format!("/api/v1/events/{}", event_id.simple()))
        .await;
    assert_eq!(stored["release"], "shop@2.0.0");
    assert_eq!(stored["exception"][0]["type"], "KeyError");
    app.stop().await;
}
