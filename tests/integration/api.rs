//! The read API and the issue lifecycle: auth, filters, sorting, pagination, resolve,
//! regressions (with and without releases).

use serde_json::{json, Value};

use crate::harness::{python_exception, TestApp};

/// Posts one event and asserts it was accepted.
async fn send(app: &TestApp, event: &Value) {
    let response = app.send_event(event).await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

fn from_release(mut event: Value, release: &str) -> Value {
    event["release"] = json!(release);
    event
}

async fn patch_issue(app: &TestApp, id: i64, body: Value) -> (u16, Value) {
    let response = app
        .http
        .patch(app.url(&format!("/api/v1/issues/{id}")))
        .bearer_auth(&app.token)
        .json(&body)
        .send()
        .await
        .expect("patch");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn only_issue(app: &TestApp) -> Value {
    let issues = app.issues().await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    issues[0].clone()
}

#[tokio::test]
async fn the_api_requires_a_valid_token_and_never_an_ingestion_key() {
    let app = TestApp::spawn().await;
    let path = app.url(&format!("/api/v1/projects/{}/issues", app.project.id));
    let cases = [
        (None, "no header"),
        (Some("Bearer not-a-token".to_owned()), "unknown token"),
        (Some(format!("Bearer {}", app.key())), "an ingestion key"),
        (Some(format!("Basic {}", app.token)), "wrong scheme"),
    ];
    for (header, case) in cases {
        let mut request = app.http.get(&path);
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let response = request.send().await.expect("get");
        assert_eq!(response.status(), 401, "{case}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{case}");
    }
    app.stop().await;
}

#[tokio::test]
async fn missing_things_are_404_and_bad_parameters_400() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/projects/999999/issues",
        "/api/v1/issues/999999",
        "/api/v1/issues/999999/events",
        "/api/v1/events/9ec79c33ec9942ab8353589fcb2e04dc",
        "/api/v1/nothing",
    ] {
        let (status, body) = app.api_get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let project = app.project.id;
    for query in [
        "status=open",
        "sort=size",
        "limit=0",
        "limit=101",
        "cursor=%%%",
        "bogus=1",
    ] {
        let (status, _) = app
            .api_get(&format!("/api/v1/projects/{project}/issues?{query}"))
            .await;
        assert_eq!(status, 400, "{query}");
    }
    let (status, _) = app.api_get("/api/v1/events/not-an-id").await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn issues_filter_sort_and_paginate() {
    let app = TestApp::spawn().await;
    for (i, ty) in [
        "AlphaError",
        "BetaError",
        "GammaError",
        "DeltaError",
        "EpsilonError",
    ]
    .iter()
    .enumerate()
    {
        for _ in 0..=i {
            send(&app, &python_exception(ty, "boom", &["handler"], 10)).await;
        }
    }
    let project = app.project.id;
    let by_count = app
        .api_ok(&format!("/api/v1/projects/{project}/issues?sort=count"))
        .await;
    let counts: Vec<i64> = by_count["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["count"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(counts, vec![5, 4, 3, 2, 1]);

    // Two pages of two, then the last one, with no issue seen twice.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for expected in [2, 2, 1] {
        let after = cursor
            .as_deref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page = app
            .api_ok(&format!(
                "/api/v1/projects/{project}/issues?sort=count&limit=2{after}"
            ))
            .await;
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), expected);
        seen.extend(items.iter().map(|i| i["id"].as_i64().unwrap_or(0)));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    let found = app
        .api_ok(&format!("/api/v1/projects/{project}/issues?query=gamma"))
        .await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["items"][0]["title"], "GammaError: boom");

    let id = found["items"][0]["id"].as_i64().expect("id");
    let (status, _) = patch_issue(&app, id, json!({"status": "ignored"})).await;
    assert_eq!(status, 200);
    let ignored = app
        .api_ok(&format!("/api/v1/projects/{project}/issues?status=ignored"))
        .await;
    assert_eq!(ignored["items"].as_array().map(Vec::len), Some(1));
    let unresolved = app
        .api_ok(&format!(
            "/api/v1/projects/{project}/issues?status=unresolved"
        ))
        .await;
    assert_eq!(unresolved["items"].as_array().map(Vec::len), Some(4));
    app.stop().await;
}

#[tokio::test]
async fn a_resolved_issue_regresses_on_a_new_event() {
    let app = TestApp::spawn().await;
    let event = || python_exception("KeyError", "'id'", &["load"], 10);
    send(&app, &event()).await;
    let id = only_issue(&app).await["id"].as_i64().expect("id");
    let (status, resolved) = patch_issue(&app, id, json!({"status": "resolved"})).await;
    assert_eq!(status, 200);
    assert_eq!(resolved["status"], "resolved");
    assert!(resolved["resolved_at"].is_string());

    send(&app, &event()).await;
    let issue = only_issue(&app).await;
    assert_eq!(
        issue["status"], "unresolved",
        "an event after resolution reopens it"
    );
    assert!(issue["regressed_at"].is_string());
    assert!(issue["resolved_at"].is_null());
    assert_eq!(issue["count"], 2);
    app.stop().await;
}

#[tokio::test]
async fn resolved_in_a_release_ignores_older_releases() {
    let app = TestApp::spawn().await;
    let event = || python_exception("KeyError", "'id'", &["load"], 10);
    send(&app, &from_release(event(), "1.0")).await;
    send(
        &app,
        &from_release(python_exception("Other", "x", &["x"], 1), "1.1"),
    )
    .await;
    let id = app
        .issues()
        .await
        .iter()
        .find(|i| i["title"] == "KeyError: 'id'")
        .expect("issue")["id"]
        .as_i64()
        .expect("id");
    let (status, _) =
        patch_issue(&app, id, json!({"status": "resolved", "in_release": "1.1"})).await;
    assert_eq!(status, 200);

    send(&app, &from_release(event(), "1.0")).await;
    let issue = app.api_ok(&format!("/api/v1/issues/{id}")).await;
    assert_eq!(
        issue["status"], "resolved",
        "an older release does not reopen it"
    );
    assert_eq!(issue["count"], 2, "but the event still counts");

    send(&app, &from_release(event(), "1.2")).await;
    let issue = app.api_ok(&format!("/api/v1/issues/{id}")).await;
    assert_eq!(issue["status"], "unresolved", "a newer release reopens it");
    assert_eq!(issue["last_release"], "1.2");
    assert_eq!(issue["first_release"], "1.0");
    app.stop().await;
}

#[tokio::test]
async fn resolved_in_a_release_not_seen_yet_waits_for_it() {
    let app = TestApp::spawn().await;
    let event = || python_exception("KeyError", "'id'", &["load"], 10);
    send(&app, &from_release(event(), "1.0")).await;
    let id = only_issue(&app).await["id"].as_i64().expect("id");
    patch_issue(&app, id, json!({"status": "resolved", "in_release": "2.0"})).await;
    send(&app, &from_release(event(), "1.0")).await;
    assert_eq!(only_issue(&app).await["status"], "resolved");
    send(&app, &from_release(event(), "2.0")).await;
    assert_eq!(
        only_issue(&app).await["status"],
        "unresolved",
        "the fix did not hold in 2.0"
    );
    app.stop().await;
}

#[tokio::test]
async fn patch_validates_its_body() {
    let app = TestApp::spawn().await;
    send(&app, &python_exception("KeyError", "'id'", &["load"], 10)).await;
    let id = only_issue(&app).await["id"].as_i64().expect("id");
    for body in [
        json!({"status": "fixed"}),
        json!({"status": "ignored", "in_release": "1"}),
        json!({"state": "resolved"}),
    ] {
        let (status, answer) = patch_issue(&app, id, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, _) = patch_issue(&app, 999_999, json!({"status": "resolved"})).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn events_of_an_issue_page_newest_first() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let event = python_exception("KeyError", "'id'", &["load"], 10);
        ids.push(event["event_id"].as_str().expect("id").to_owned());
        send(&app, &event).await;
    }
    let issue = only_issue(&app).await["id"].as_i64().expect("id");
    let first = app
        .api_ok(&format!("/api/v1/issues/{issue}/events?limit=3"))
        .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a full page has a cursor");
    let second = app
        .api_ok(&format!(
            "/api/v1/issues/{issue}/events?limit=3&cursor={cursor}"
        ))
        .await;
    let listed: Vec<String> = [first, second]
        .iter()
        .flat_map(|page| page["items"].as_array().cloned().unwrap_or_default())
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
    app.stop().await;
}
