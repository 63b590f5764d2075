//! Triage through the management API: listing issues by level, release, environment,
//! service and time; merging issues (events, counts and future events follow); deleting
//! an issue with its events.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{call, call_as, python_exception, TestApp};

fn event(ty: &str, release: &str, environment: &str, service: &str) -> Value {
    let mut event = python_exception(ty, "boom", &["handler", ty], 7);
    event["release"] = json!(release);
    event["environment"] = json!(environment);
    event["tags"] = json!({"service": service});
    event
}

async fn send(app: &TestApp, event: &Value) {
    assert_eq!(app.send_event(event).await.status(), 200, "{event}");
}

/// The titles' exception types of the project's issues listed with `query`, sorted.
async fn types_listed(app: &TestApp, query: &str) -> Vec<String> {
    let path = format!("/api/v1/projects/{}/issues?{query}", app.project.id);
    let (status, body) = call(app, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{query}: {body}");
    let mut types: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["title"]
                .as_str()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    types.sort();
    types
}

async fn issue_of(app: &TestApp, ty: &str) -> Value {
    app.issues()
        .await
        .into_iter()
        .find(|i| i["title"].as_str().is_some_and(|t| t.starts_with(ty)))
        .unwrap_or_else(|| panic!("an issue for {ty}"))
}

#[tokio::test]
async fn api_issues_filter_by_level_release_environment_service_and_time() {
    let app = TestApp::spawn().await;
    send(&app, &event("AlphaError", "1.0", "production", "checkout")).await;
    send(&app, &event("BetaError", "1.1", "staging", "billing")).await;
    let mut warning = event("GammaWarning", "1.1", "production", "billing");
    warning["level"] = json!("warning");
    send(&app, &warning).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let between = Utc::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Alpha is seen again, later, in another release and environment.
    send(&app, &event("AlphaError", "1.2", "staging", "checkout")).await;
    let at = |t: chrono::DateTime<Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B")
    };

    assert_eq!(
        types_listed(&app, "").await,
        ["AlphaError", "BetaError", "GammaWarning"]
    );
    assert_eq!(types_listed(&app, "level=warning").await, ["GammaWarning"]);
    assert_eq!(
        types_listed(&app, "level=error").await,
        ["AlphaError", "BetaError"]
    );
    assert_eq!(
        types_listed(&app, "release=1.1").await,
        ["BetaError", "GammaWarning"]
    );
    assert_eq!(types_listed(&app, "release=1.2").await, ["AlphaError"]);
    assert_eq!(
        types_listed(&app, "environment=production").await,
        ["AlphaError", "GammaWarning"]
    );
    assert_eq!(
        types_listed(&app, "service=billing").await,
        ["BetaError", "GammaWarning"]
    );
    // One event must match every event filter at once.
    assert_eq!(
        types_listed(&app, "release=1.0&environment=staging").await,
        Vec::<String>::new()
    );
    assert_eq!(
        types_listed(&app, "release=1.2&environment=staging&service=checkout").await,
        ["AlphaError"]
    );
    assert_eq!(
        types_listed(&app, &format!("since={}", at(between))).await,
        ["AlphaError"]
    );
    assert_eq!(
        types_listed(&app, &format!("until={}", at(between))).await,
        ["AlphaError", "BetaError", "GammaWarning"]
    );
    assert_eq!(
        types_listed(&app, &format!("until={}&environment=staging", at(between))).await,
        ["BetaError"]
    );
    assert_eq!(
        types_listed(&app, "environment=production&level=warning&sort=count").await,
        ["GammaWarning"]
    );

    // Filters page like the plain list.
    let path = format!(
        "/api/v1/projects/{}/issues?service=billing&limit=1",
        app.project.id
    );
    let (_, first) = call(&app, Method::GET, &path, None).await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, second) = call(&app, Method::GET, &format!("{path}&cursor={cursor}"), None).await;
    assert_eq!(
        second["items"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);

    for query in [
        "level=loud",
        "since=yesterday",
        &format!("since={0}&until={0}", at(between)),
    ] {
        let path = format!("/api/v1/projects/{}/issues?{query}", app.project.id);
        let (status, body) = call(&app, Method::GET, &path, None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn api_issues_merge_moves_events_counts_and_future_events() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        send(&app, &event("AlphaError", "1.0", "production", "checkout")).await;
    }
    for _ in 0..2 {
        send(&app, &event("BetaError", "1.1", "production", "checkout")).await;
    }
    send(&app, &event("GammaError", "1.2", "production", "checkout")).await;
    let (alpha, beta, gamma) = (
        issue_of(&app, "AlphaError").await,
        issue_of(&app, "BetaError").await,
        issue_of(&app, "GammaError").await,
    );
    let id = |issue: &Value| issue["id"].as_i64().expect("id");

    let (status, merged) = call(
        &app,
        Method::POST,
        &format!("/api/v1/issues/{}/merge", id(&alpha)),
        Some(json!({"issues": [id(&beta), id(&gamma), id(&beta)]})),
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["id"], alpha["id"]);
    assert_eq!(merged["count"], 6);
    assert_eq!(merged["title"], alpha["title"], "the target keeps its name");
    assert_eq!(merged["first_seen"], alpha["first_seen"]);
    assert_eq!(merged["last_seen"], gamma["last_seen"]);
    assert_eq!(merged["first_release"], "1.0");
    assert_eq!(merged["last_release"], "1.2");
    assert_eq!(app.issues().await.len(), 1);
    assert_eq!(app.events_of(id(&alpha)).await.len(), 6);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issues/{}", id(&beta)),
        None,
    )
    .await;
    assert_eq!(status, 404, "the merged issue is gone");
    let issue_counts: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(events), 0)::int8 FROM minute_counts WHERE scope = 'issue' AND issue_id = $1",
    )
    .bind(id(&alpha))
    .fetch_one(&app.pool)
    .await
    .expect("issue counts");
    assert_eq!(issue_counts, 6, "the per-minute counts moved too");

    // Beta's next event joins Alpha instead of re-creating Beta.
    send(&app, &event("BetaError", "1.3", "production", "checkout")).await;
    let issues = app.issues().await;
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["count"], 7);
    assert_eq!(issues[0]["last_release"], "1.3");
    // Its filters see the moved events.
    assert_eq!(types_listed(&app, "release=1.1").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn api_issues_merge_refuses_what_it_cannot_merge() {
    let app = TestApp::spawn().await;
    send(&app, &event("AlphaError", "1.0", "production", "checkout")).await;
    let alpha = issue_of(&app, "AlphaError").await["id"]
        .as_i64()
        .expect("id");
    let (_, other) = call(
        &app,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"slug": "other"})),
    )
    .await;
    let other_issue: i64 = sqlx::query_scalar(
        "INSERT INTO issues (project_id, fingerprint, grouping_strategy, title, level, first_seen, last_seen) \
         VALUES ($1, 'elsewhere', 'custom', 'Elsewhere', 'error', now(), now()) RETURNING id",
    )
    .bind(other["id"].as_i64().expect("project id"))
    .fetch_one(&app.pool)
    .await
    .expect("an issue of another project");
    let merge = |target: i64| format!("/api/v1/issues/{target}/merge");
    let cases = [
        (merge(alpha), json!({"issues": []}), 422),
        (merge(alpha), json!({"issues": [alpha]}), 422),
        (merge(alpha), json!({"issues": [999999]}), 422),
        (merge(alpha), json!({"issues": [other_issue]}), 422),
        (
            merge(alpha),
            json!({"issues": (1..=101).collect::<Vec<i64>>()}),
            422,
        ),
        (merge(alpha), json!({"issue": [1]}), 400),
        (merge(alpha), json!({"issues": "all"}), 400),
        (merge(999999), json!({"issues": [alpha]}), 404),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = call(&app, Method::POST, &path, Some(body.clone())).await;
        assert_eq!(status, expected, "{path} {body} → {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    assert_eq!(app.issues().await[0]["count"], 1, "nothing changed");
    app.stop().await;
}

#[tokio::test]
async fn api_issues_delete_removes_the_issue_and_its_events_only() {
    let app = TestApp::spawn().await;
    for _ in 0..2 {
        send(&app, &event("AlphaError", "1.0", "production", "checkout")).await;
    }
    send(&app, &event("BetaError", "1.0", "production", "checkout")).await;
    let alpha = issue_of(&app, "AlphaError").await["id"]
        .as_i64()
        .expect("id");
    let event_id = app.events_of(alpha).await[0]["event_id"]
        .as_str()
        .expect("event id")
        .to_owned();
    let project_events = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(sum(events), 0)::int8 FROM minute_counts WHERE scope = 'project'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("project counts")
    };
    assert_eq!(project_events().await, 3);

    // Deleting data needs the admin scope.
    let (_, writer) = call(
        &app,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "triage", "scope": "write"})),
    )
    .await;
    let writer = writer["token"].as_str().expect("token").to_owned();
    let path = format!("/api/v1/issues/{alpha}");
    let (status, _) = call_as(&app, &writer, Method::DELETE, &path, None).await;
    assert_eq!(status, 403);

    let (status, _) = call(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/events/{event_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "its events went with it");
    assert_eq!(app.event_count().await, 1, "Beta's event stays");
    assert_eq!(
        project_events().await,
        3,
        "the project's history keeps what happened"
    );
    let (status, _) = call(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);

    // Seen again, it is a new issue with a fresh count.
    send(&app, &event("AlphaError", "1.0", "production", "checkout")).await;
    let again = issue_of(&app, "AlphaError").await;
    assert_ne!(again["id"].as_i64(), Some(alpha));
    assert_eq!(again["count"], 1);
    app.stop().await;
}

/// Every page of the project's issues under `query` (`limit=2`), sending `during` before
/// each page after the first; returns the ids in the order listed.
async fn page_through(app: &TestApp, query: &str, during: &[Value]) -> Vec<i64> {
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut arriving = during.iter();
    loop {
        let after = cursor
            .as_deref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let path = format!(
            "/api/v1/projects/{}/issues?{query}&limit=2{after}",
            app.project.id
        );
        let (status, page) = call(app, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        listed.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|i| i["id"].as_i64()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return listed,
        }
        if let Some(event) = arriving.next() {
            send(app, event).await;
        }
    }
}

#[tokio::test]
async fn api_issue_pages_stay_stable_while_events_keep_arriving() {
    let app = TestApp::spawn().await;
    let types = ["AError", "BError", "CError", "DError", "EError", "FError"];
    for ty in types {
        send(&app, &event(ty, "1.0", "production", "checkout")).await;
    }
    let before: Vec<i64> = app
        .issues()
        .await
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    // While paging: new issues, and new events for issues on every page.
    let arriving = [
        event("NewOneError", "1.0", "production", "checkout"),
        event("AError", "1.0", "production", "checkout"),
        event("NewTwoError", "1.0", "production", "checkout"),
        event("FError", "1.0", "production", "checkout"),
    ];
    let by_first_seen = page_through(&app, "sort=first_seen", &arriving).await;
    let mut sorted = by_first_seen.clone();
    sorted.sort();
    let mut expected = before.clone();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "each issue there when paging began, once; none that came later"
    );

    // By last seen, an issue seen again moves ahead of the pages already read: never twice.
    let by_last_seen = page_through(&app, "sort=last_seen", &arriving).await;
    let mut unique = by_last_seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), by_last_seen.len(), "{by_last_seen:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_issues_merged_while_events_arrive_lose_none() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    send(&app, &event("AlphaError", "1.0", "production", "checkout")).await;
    send(&app, &event("BetaError", "1.0", "production", "checkout")).await;
    let alpha = issue_of(&app, "AlphaError").await["id"]
        .as_i64()
        .expect("id");
    let beta = issue_of(&app, "BetaError").await["id"]
        .as_i64()
        .expect("id");
    // Beta's events keep arriving, eight senders at once, while Beta is merged into Alpha.
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    send(&app, &event("BetaError", "1.0", "production", "checkout")).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, merged) = call(
        &app,
        Method::POST,
        &format!("/api/v1/issues/{alpha}/merge"),
        Some(json!({"issues": [beta]})),
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    for sender in senders {
        sender.await.expect("sender");
    }

    // Every accepted event (2 + 200) sits in an issue that exists, and counts match rows.
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM issues i WHERE i.id = e.issue_id)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("orphans");
    assert_eq!(orphans, 0);
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT i.id, i.times_seen, (SELECT count(*) FROM events e WHERE e.issue_id = i.id) FROM issues i",
    )
    .fetch_all(&app.pool)
    .await
    .expect("issues");
    assert_eq!(
        rows,
        [(alpha, 202, 202)],
        "one issue, its count equal to its events"
    );
}
