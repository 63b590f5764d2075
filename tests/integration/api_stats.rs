//! `GET /api/v1/stats`: the detection, recovery and handling probabilities on a hand-built
//! scenario with exact expected numbers, their `project` and `since` filters, the refused
//! requests, and the `seismo_*_probability` gauges a stats request refreshes.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::Method;
use seismo::model::{IssueId, Kind, ProjectId, Scope, State};
use seismo::store::incidents::{self, NewIncident};
use seismo::store::projects;
use serde_json::{json, Value};

use crate::harness::{call, python_exception, TestApp};

fn minutes_ago(minutes: i64) -> DateTime<Utc> {
    let now = Utc::now() - TimeDelta::minutes(minutes);
    DateTime::from_timestamp(now.timestamp(), 0).expect("a valid time")
}

/// A time as a query value: RFC 3339 with `Z`, so nothing needs escaping.
fn query_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Opens an incident on `scope` at `at` as the detector does, resolves it (so the series
/// is free again), and labels it through the API when `label` is given.
async fn incident(app: &TestApp, scope: Scope, at: DateTime<Utc>, label: Option<&str>) {
    let mut conn = app.pool.acquire().await.expect("connection");
    let new = NewIncident {
        project_id: app.project.id,
        kind: Kind::Anomaly,
        kinds: vec![Kind::Anomaly],
        scope,
        opened_at: at,
        score: 0.9,
        details: json!({}),
        reason: "anomaly detected".to_owned(),
    };
    let opened = incidents::open(&mut conn, &new)
        .await
        .expect("open")
        .expect("the series has no active incident");
    incidents::transition(&mut conn, opened.id, State::Resolved, "back to normal", at)
        .await
        .expect("transition")
        .expect("the incident was active");
    drop(conn);
    if let Some(label) = label {
        let path = format!("/api/v1/incidents/{}", opened.id);
        let (status, body) = call(app, Method::PATCH, &path, Some(json!({"label": label}))).await;
        assert_eq!(status, 200, "label {label}: {body}");
    }
}

async fn report_missed(app: &TestApp, project_id: ProjectId, at: DateTime<Utc>) {
    let body = json!({"project_id": project_id, "label": "missed", "opened_at": at});
    let (status, body) = call(app, Method::POST, "/api/v1/incidents", Some(body)).await;
    assert_eq!(status, 201, "{body}");
}

/// An exception event; `handled: false` in its mechanism makes it a crash.
async fn send_error(app: &TestApp, handled: bool, n: u32) {
    let mut event = python_exception("KeyError", "'cart'", &["checkout", "load_cart"], 10 + n);
    event["exception"]["values"][0]["mechanism"] = json!({"type": "generic", "handled": handled});
    let response = app.send_event(&event).await;
    assert_eq!(response.status().as_u16(), 200, "event accepted");
}

async fn stats(app: &TestApp, query: &str) -> Value {
    let (status, body) = call(app, Method::GET, &format!("/api/v1/stats{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn assert_probability(case: &str, value: &Value, expected: Option<f64>) {
    match expected {
        None => assert!(value.is_null(), "{case}: {value} should be null"),
        Some(expected) => {
            let got = value.as_f64().unwrap_or(f64::NAN);
            assert!(
                (got - expected).abs() < 1e-12,
                "{case}: {got} != {expected}"
            );
        }
    }
}

/// The value of a label-less gauge in the Prometheus text, if it has a sample.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().expect("a number"))
    })
}

#[tokio::test]
async fn api_stats_counts_the_three_probabilities_with_filters_and_gauges() {
    let app = TestApp::spawn().await;
    let a = app.project.id;
    let mut conn = app.pool.acquire().await.expect("connection");
    let b = projects::create(&mut conn, "other", "Other", None)
        .await
        .expect("create project")
        .id;
    drop(conn);

    let metrics = app.metrics();
    for name in [
        "seismo_detection_probability",
        "seismo_recovery_probability",
        "seismo_handling_probability",
    ] {
        assert_eq!(
            gauge(&metrics, name),
            None,
            "{name} before anything is known"
        );
    }

    // Project A, last half hour: 3 true positives, 1 false positive, 1 unlabelled (not
    // counted), 1 missed fault. Three hours ago: 1 more true positive.
    let recent = minutes_ago(30);
    for (i, label) in [
        "true_positive",
        "true_positive",
        "true_positive",
        "false_positive",
    ]
    .into_iter()
    .enumerate()
    {
        incident(
            &app,
            Scope::Issue(IssueId(i as i64 + 1)),
            recent,
            Some(label),
        )
        .await;
    }
    incident(&app, Scope::Service("checkout".into()), recent, None).await;
    report_missed(&app, a, recent).await;
    incident(
        &app,
        Scope::Project,
        minutes_ago(180),
        Some("true_positive"),
    )
    .await;
    // Project B: one missed fault and nothing else.
    report_missed(&app, b, recent).await;
    // Project A's events: 3 handled, 1 crash.
    for (n, handled) in [true, true, false, true].into_iter().enumerate() {
        send_error(&app, handled, n as u32).await;
    }

    // A, last hour: P_detect = 1 − 1/5 − 1/5 = 0.6, P_handle = 3/4.
    let since = minutes_ago(60);
    let body = stats(&app, &format!("?project={a}&since={}", query_time(since))).await;
    assert_eq!(body["project_id"], a.get());
    let echoed: DateTime<Utc> = serde_json::from_value(body["since"].clone()).expect("since");
    assert_eq!(echoed, since);
    let detection = &body["detection"];
    assert_eq!(detection["true_positives"], 3, "{body}");
    assert_eq!(detection["false_positives"], 1, "{body}");
    assert_eq!(detection["missed"], 1, "{body}");
    assert_eq!(detection["labelled"], 5, "{body}");
    assert_probability("A since 1h detection", &detection["probability"], Some(0.6));
    let recovery = &body["recovery"];
    assert_eq!(
        *recovery,
        json!({"probability": null, "succeeded": 0, "false_recoveries": 0, "not_recovered": 0, "attempts": 0}),
        "no recovery actions exist yet"
    );
    let handling = &body["handling"];
    assert_eq!(handling["handled"], 3, "{body}");
    assert_eq!(handling["unhandled"], 1, "{body}");
    assert_eq!(handling["events"], 4, "{body}");
    assert_probability("A since 1h handling", &handling["probability"], Some(0.75));

    // A, all time: the old true positive counts too (4 of 6).
    let body = stats(&app, &format!("?project={a}")).await;
    assert!(body["since"].is_null(), "{body}");
    assert_eq!(body["detection"]["labelled"], 6, "{body}");
    assert_probability(
        "A all time",
        &body["detection"]["probability"],
        Some(4.0 / 6.0),
    );
    assert_eq!(body["handling"]["events"], 4, "{body}");

    // B: one missed fault and no events.
    let body = stats(&app, &format!("?project={b}")).await;
    assert_eq!(body["detection"]["missed"], 1, "{body}");
    assert_probability("B detection", &body["detection"]["probability"], Some(0.0));
    assert_eq!(body["handling"]["events"], 0, "{body}");
    assert_probability("B handling", &body["handling"]["probability"], None);

    // Nothing opened or received after `since`: undefined, not zero.
    let future = query_time(Utc::now() + TimeDelta::hours(1));
    let body = stats(&app, &format!("?project={a}&since={future}")).await;
    assert_eq!(body["detection"]["labelled"], 0, "{body}");
    assert_probability("future detection", &body["detection"]["probability"], None);
    assert_probability("future handling", &body["handling"]["probability"], None);

    // An offset other than Z, its `+` escaped.
    let body = stats(
        &app,
        &format!("?project={a}&since=2000-01-01T02:00:00%2B02:00"),
    )
    .await;
    assert_eq!(body["detection"]["labelled"], 6, "{body}");

    // All projects, all time: TP 4, FP 1, missed 2.
    let body = stats(&app, "").await;
    assert!(body["project_id"].is_null(), "{body}");
    assert_eq!(body["detection"]["true_positives"], 4, "{body}");
    assert_eq!(body["detection"]["false_positives"], 1, "{body}");
    assert_eq!(body["detection"]["missed"], 2, "{body}");
    assert_probability("all", &body["detection"]["probability"], Some(4.0 / 7.0));
    assert_probability("all handling", &body["handling"]["probability"], Some(0.75));

    // The gauges hold the all-project, all-time values; recovery stays without a sample.
    let metrics = app.metrics();
    let detect = gauge(&metrics, "seismo_detection_probability").expect("detection gauge");
    assert!((detect - 4.0 / 7.0).abs() < 1e-12, "{detect}");
    assert_eq!(gauge(&metrics, "seismo_handling_probability"), Some(0.75));
    assert_eq!(gauge(&metrics, "seismo_recovery_probability"), None);
    assert!(
        metrics.contains("# HELP seismo_detection_probability"),
        "{metrics}"
    );
}

#[tokio::test]
async fn api_stats_refuses_bad_requests() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(app.url("/api/v1/stats"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401, "no token");
    let response = app
        .http
        .get(app.url("/api/v1/stats"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401, "unknown token");

    let cases = [
        ("?since=yesterday", 400, "bad_request"),
        ("?since=2026-13-01T00:00:00Z", 400, "bad_request"),
        ("?project=abc", 400, "bad_request"),
        ("?window=1h", 400, "bad_request"),
        ("?project=999999", 404, "not_found"),
    ];
    for (query, expected, code) in cases {
        let (status, body) = call(&app, Method::GET, &format!("/api/v1/stats{query}"), None).await;
        assert_eq!(status, expected, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{query}: {body}"
        );
    }

    // An empty database: every probability is undefined, and no gauge has a sample.
    let body = stats(&app, &format!("?project={}", app.project.id)).await;
    for part in ["detection", "recovery", "handling"] {
        assert!(body[part]["probability"].is_null(), "{part}: {body}");
    }
    let metrics = app.metrics();
    assert_eq!(gauge(&metrics, "seismo_detection_probability"), None);
    assert_eq!(gauge(&metrics, "seismo_handling_probability"), None);
}
