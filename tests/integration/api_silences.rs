//! Silences through the management API: created with matchers and a window, listed by
//! state, extended, expired early, deleted; refused with a reason when they make no sense.
//! (What a silence does to incidents is tested with the detector, in `detect`.)

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{call, python_exception, TestApp};

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, silence) = call(app, Method::POST, "/api/v1/silences", Some(body)).await;
    assert_eq!(status, 201, "{silence}");
    silence
}

async fn ids_in(app: &TestApp, query: &str) -> Vec<i64> {
    let (status, body) = call(app, Method::GET, &format!("/api/v1/silences{query}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn api_silences_are_created_listed_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let project = app.project.id;
    let now = Utc::now();
    let active = create(
        &app,
        json!({"project_id": project, "kind": "anomaly", "service": "checkout",
               "comment": "deploy 42", "duration_minutes": 60}),
    )
    .await;
    assert_eq!(active["state"], "active");
    assert_eq!(active["kind"], "anomaly");
    assert_eq!(active["service"], "checkout");
    assert_eq!(active["issue_id"], Value::Null);
    assert_eq!(active["comment"], "deploy 42");
    assert!(
        active["created_by"].is_i64(),
        "the token that made it: {active}"
    );
    let starts = active["starts_at"].as_str().expect("starts_at");
    let ends = active["ends_at"].as_str().expect("ends_at");
    let span = chrono::DateTime::parse_from_rfc3339(ends).expect("time")
        - chrono::DateTime::parse_from_rfc3339(starts).expect("time");
    assert_eq!(span, Duration::minutes(60));
    let pending = create(
        &app,
        json!({"project_id": project, "starts_at": now + Duration::hours(2),
               "ends_at": now + Duration::hours(3)}),
    )
    .await;
    assert_eq!(pending["state"], "pending");
    let (active_id, pending_id) = (
        active["id"].as_i64().expect("id"),
        pending["id"].as_i64().expect("id"),
    );

    assert_eq!(
        ids_in(&app, "").await,
        [pending_id, active_id],
        "newest first"
    );
    assert_eq!(ids_in(&app, "?state=active").await, [active_id]);
    assert_eq!(ids_in(&app, "?state=pending").await, [pending_id]);
    assert_eq!(
        ids_in(&app, &format!("?project={project}&limit=1")).await,
        [pending_id]
    );
    let (_, first_page) = call(&app, Method::GET, "/api/v1/silences?limit=1", None).await;
    let cursor = first_page["next_cursor"].as_str().expect("a next page");
    assert_eq!(
        ids_in(&app, &format!("?limit=1&cursor={cursor}")).await,
        [active_id]
    );

    // Extended, then expired early: it stays, as history, in state expired.
    let path = format!("/api/v1/silences/{active_id}");
    let later = now + Duration::hours(5);
    let (status, extended) = call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"ends_at": later, "comment": "longer"})),
    )
    .await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(extended["comment"], "longer");
    assert_eq!(extended["state"], "active");
    let (status, expired) = call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"ends_at": Utc::now()})),
    )
    .await;
    assert_eq!(status, 200, "{expired}");
    assert_eq!(expired["state"], "expired");
    assert_eq!(ids_in(&app, "?state=expired").await, [active_id]);
    let (status, shown) = call(&app, Method::GET, &path, None).await;
    assert_eq!((status, shown["id"].as_i64()), (200, Some(active_id)));

    let (status, _) = call(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, gone) = call(&app, Method::GET, &path, None).await;
    assert_eq!(status, 404, "{gone}");
    assert_eq!(ids_in(&app, "").await, [pending_id]);
    app.stop().await;
}

#[tokio::test]
async fn api_silences_refuse_what_makes_no_sense() {
    let app = TestApp::spawn().await;
    let project = app.project.id;
    let event = python_exception("KeyError", "boom", &["handler"], 1);
    assert_eq!(app.send_event(&event).await.status(), 200);
    let issue = app.issues().await[0]["id"].as_i64().expect("issue id");
    let (_, other) = call(
        &app,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"slug": "other"})),
    )
    .await;
    let other = other["id"].as_i64().expect("other project");
    let now = Utc::now();
    let cases = [
        (json!({"project_id": 999999, "duration_minutes": 5}), 422),
        (json!({"project_id": project}), 422),
        (
            json!({"project_id": project, "duration_minutes": 5, "ends_at": now + Duration::hours(1)}),
            422,
        ),
        (json!({"project_id": project, "duration_minutes": 0}), 422),
        (
            json!({"project_id": project, "duration_minutes": 10_000_000}),
            422,
        ),
        (
            json!({"project_id": project, "ends_at": now - Duration::hours(1)}),
            422,
        ),
        (
            json!({"project_id": project, "starts_at": now, "ends_at": now - Duration::minutes(1)}),
            422,
        ),
        (
            json!({"project_id": project, "kind": "outage", "duration_minutes": 5}),
            422,
        ),
        (
            json!({"project_id": project, "service": "", "duration_minutes": 5}),
            422,
        ),
        (
            json!({"project_id": other, "issue_id": issue, "duration_minutes": 5}),
            422,
        ),
        (
            json!({"project_id": project, "comment": "x".repeat(4001), "duration_minutes": 5}),
            422,
        ),
        (
            json!({"project_id": project, "duration_minutes": 5, "matchers": {}}),
            400,
        ),
        (json!({"project_id": "one", "duration_minutes": 5}), 400),
        (json!({"project_id": project, "ends_at": "tomorrow"}), 400),
    ];
    for (body, expected) in cases {
        let (status, answer) =
            call(&app, Method::POST, "/api/v1/silences", Some(body.clone())).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    let silence = create(
        &app,
        json!({"project_id": project, "issue_id": issue, "duration_minutes": 5}),
    )
    .await;
    let path = format!("/api/v1/silences/{}", silence["id"]);
    let starts = silence["starts_at"].clone();
    for (body, expected) in [
        (json!({"ends_at": starts}), 422),
        (json!({"ends_at": now + Duration::days(400)}), 422),
        (json!({"starts_at": now}), 400),
    ] {
        let (status, answer) = call(&app, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, expected, "{body} → {answer}");
    }
    for (method, path) in [
        (Method::GET, "/api/v1/silences/999999"),
        (Method::PATCH, "/api/v1/silences/999999"),
        (Method::DELETE, "/api/v1/silences/999999"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"comment": "x"}));
        let (status, _) = call(&app, method.clone(), path, body).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    for query in [
        "?state=forever",
        "?project=999999",
        "?cursor=!!",
        "?limit=0",
        "?color=red",
    ] {
        let (status, answer) =
            call(&app, Method::GET, &format!("/api/v1/silences{query}"), None).await;
        assert!(status == 400 || status == 404, "{query}: {status} {answer}");
    }
    app.stop().await;
}
