//! Projects and their keys through the management API: create, read, change, delete (with
//! everything the project owns), and keys that are added, limited and revoked.

use chrono::{Timelike, Utc};
use reqwest::Method;
use seismo::model::ProjectId;
use serde_json::{json, Value};

use crate::harness::{call, envelope, python_exception, TestApp};

async fn create_project(app: &TestApp, body: Value) -> Value {
    let (status, project) = call(app, Method::POST, "/api/v1/projects", Some(body)).await;
    assert_eq!(status, 201, "{project}");
    project
}

/// Sends one event to `project_id` with `key`; returns the status.
async fn send_with_key(app: &TestApp, project_id: ProjectId, key: &str, event: &Value) -> u16 {
    let payload = serde_json::to_vec(event).expect("event json");
    let body = envelope(&json!({}), &[("event", &payload)]);
    app.http
        .post(app.url(&format!("/api/{project_id}/envelope/")))
        .header(
            "X-Sentry-Auth",
            format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=raw-http/1.0"),
        )
        .body(body)
        .send()
        .await
        .expect("envelope request")
        .status()
        .as_u16()
}

async fn rows(app: &TestApp, table: &str, project_id: ProjectId) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE project_id = $1"
    ))
    .bind(project_id)
    .fetch_one(&app.pool)
    .await
    .expect("count rows")
}

#[tokio::test]
async fn api_projects_create_read_change_and_list() {
    let app = TestApp::spawn().await;
    let created = create_project(
        &app,
        json!({"slug": "checkout", "name": "Checkout", "rate_limit": 600, "retention_days": 30}),
    )
    .await;
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["slug"], "checkout");
    assert_eq!(created["name"], "Checkout");
    assert_eq!(created["rate_limit"], 600);
    assert_eq!(created["retention_days"], 30);
    assert_eq!(created["max_events"], Value::Null);
    let key = created["otlp_key"].as_str().expect("otlp_key");
    let dsn = created["dsn"].as_str().expect("dsn");
    assert!(
        dsn.contains(key) && dsn.ends_with(&format!("/{id}")),
        "{dsn}"
    );
    assert!(created["created_at"].is_string());

    let defaults = create_project(&app, json!({"slug": "billing"})).await;
    assert_eq!(defaults["name"], "billing");
    assert_eq!(defaults["rate_limit"], Value::Null);
    assert_eq!(defaults["retention_days"], 90);

    let (status, shown) = call(&app, Method::GET, &format!("/api/v1/projects/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(shown, created);

    let (status, changed) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/projects/{id}"),
        Some(json!({"name": "Checkout v2", "retention_days": 7, "max_events": 1000})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Checkout v2");
    assert_eq!(changed["retention_days"], 7);
    assert_eq!(changed["max_events"], 1000);
    assert_eq!(
        changed["rate_limit"], 600,
        "absent fields stay as they were"
    );
    let (_, cleared) = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/projects/{id}"),
        Some(json!({"rate_limit": null, "max_events": null})),
    )
    .await;
    assert_eq!(cleared["rate_limit"], Value::Null);
    assert_eq!(cleared["max_events"], Value::Null);
    assert_eq!(cleared["retention_days"], 7);
    assert_eq!(cleared["name"], "Checkout v2");

    let (status, listed) = call(&app, Method::GET, "/api/v1/projects", None).await;
    assert_eq!(status, 200);
    let slugs: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["slug"].as_str())
        .collect();
    assert_eq!(slugs, ["test", "checkout", "billing"]);
    assert_eq!(listed["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn api_projects_refuse_bad_requests() {
    let app = TestApp::spawn().await;
    let id = app.project.id;
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM project_keys WHERE project_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("key id");

    // No token: 401 on every route.
    for (method, path) in [
        (Method::GET, "/api/v1/projects".to_owned()),
        (Method::POST, "/api/v1/projects".to_owned()),
        (Method::GET, format!("/api/v1/projects/{id}")),
        (Method::PATCH, format!("/api/v1/projects/{id}")),
        (Method::DELETE, format!("/api/v1/projects/{id}")),
        (Method::GET, format!("/api/v1/projects/{id}/keys")),
        (Method::POST, format!("/api/v1/projects/{id}/keys")),
        (
            Method::PATCH,
            format!("/api/v1/projects/{id}/keys/{key_id}"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/projects/{id}/keys/{key_id}"),
        ),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(&path))
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401, "{method} {path}");
    }

    // Unknown ids: 404, and a key of another project is unknown to this one.
    let other = create_project(&app, json!({"slug": "other"})).await;
    let other_id = other["id"].as_i64().expect("id");
    for (method, path, body) in [
        (Method::GET, "/api/v1/projects/999999".to_owned(), None),
        (
            Method::PATCH,
            "/api/v1/projects/999999".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, "/api/v1/projects/999999".to_owned(), None),
        (Method::GET, "/api/v1/projects/999999/keys".to_owned(), None),
        (
            Method::POST,
            "/api/v1/projects/999999/keys".to_owned(),
            Some(json!({})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/projects/{id}/keys/999999"),
            Some(json!({"rate_limit": 5})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/projects/{other_id}/keys/{key_id}"),
            Some(json!({"rate_limit": 5})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/projects/{other_id}/keys/{key_id}"),
            None,
        ),
    ] {
        let (status, body) = call(&app, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{method} {path}");
    }
    let revoked: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM project_keys WHERE id = $1")
            .bind(key_id)
            .fetch_one(&app.pool)
            .await
            .expect("revoked_at");
    assert_eq!(revoked, None, "another project's DELETE left the key alone");

    // A taken slug: 409.
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/projects",
        Some(json!({"slug": "test"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");

    // Values out of range: 422.
    for body in [
        json!({"slug": "Checkout"}),
        json!({"slug": "-checkout"}),
        json!({"slug": ""}),
        json!({"slug": "a".repeat(65)}),
        json!({"slug": "has space"}),
        json!({"slug": "ok", "retention_days": 0}),
        json!({"slug": "ok", "retention_days": 3651}),
        json!({"slug": "ok", "rate_limit": 0}),
        json!({"slug": "ok", "max_events": 0}),
        json!({"slug": "ok", "name": " "}),
    ] {
        let (status, answer) =
            call(&app, Method::POST, "/api/v1/projects", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed", "{body}");
    }
    for body in [
        json!({"retention_days": 4000}),
        json!({"rate_limit": -1}),
        json!({"max_events": 0}),
    ] {
        let (status, _) = call(
            &app,
            Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body}");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/api/v1/projects/{id}/keys"),
        Some(json!({"rate_limit": 0})),
    )
    .await;
    assert_eq!(status, 422);

    // Unknown fields and malformed bodies: 400.
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/projects".to_owned(),
            json!({"slug": "new", "colour": "red"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/projects/{id}"),
            json!({"slug": "renamed"}),
        ),
        (
            Method::POST,
            format!("/api/v1/projects/{id}/keys"),
            json!({"public_key": "0".repeat(32)}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/projects/{id}/keys/{key_id}"),
            json!({"rate_limit": 5, "revoked": true}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/projects/{id}/keys/{key_id}"),
            json!({}),
        ),
    ] {
        let (status, answer) = call(&app, method.clone(), &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }
    let (status, _) = call(&app, Method::GET, "/api/v1/projects/abc", None).await;
    assert_eq!(status, 400);
    let (status, listed) = call(&app, Method::GET, "/api/v1/projects", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}

#[tokio::test]
async fn api_projects_delete_removes_everything_the_project_owns() {
    let app = TestApp::spawn().await;
    let doomed = create_project(&app, json!({"slug": "doomed"})).await;
    let doomed_id = ProjectId(doomed["id"].as_i64().expect("id"));
    let doomed_key = doomed["otlp_key"].as_str().expect("key").to_owned();
    for ty in ["AlphaError", "BetaError"] {
        let event = python_exception(ty, "boom", &["handler"], 10);
        assert_eq!(
            send_with_key(&app, doomed_id, &doomed_key, &event).await,
            200
        );
        // Its own event: an event id is stored once, whichever project sends it.
        let event = python_exception(ty, "boom", &["handler"], 10);
        assert_eq!(app.send_event(&event).await.status(), 200);
    }
    let kept = app.project.id;
    for table in ["issues", "events", "minute_counts"] {
        assert!(rows(&app, table, doomed_id).await > 0, "{table} before");
        assert!(rows(&app, table, kept).await > 0, "{table} before");
    }

    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/projects/{doomed_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    for table in [
        "issues",
        "events",
        "minute_counts",
        "project_keys",
        "detection_rules",
        "releases",
        "incidents",
    ] {
        assert_eq!(rows(&app, table, doomed_id).await, 0, "{table} after");
    }
    for table in ["issues", "events", "minute_counts", "project_keys"] {
        assert!(
            rows(&app, table, kept).await > 0,
            "{table} of the other project"
        );
    }
    // Ingestion may still hold the deleted project's key for a few seconds: what it sends
    // then is refused and stores nothing, and the other project goes on ingesting.
    let late = python_exception("GammaError", "late", &["handler"], 10);
    let status = send_with_key(&app, doomed_id, &doomed_key, &late).await;
    assert!(matches!(status, 401 | 403 | 404), "answered {status}");
    for table in ["issues", "events", "minute_counts"] {
        assert_eq!(
            rows(&app, table, doomed_id).await,
            0,
            "{table} after a late event"
        );
    }
    let event = python_exception("DeltaError", "still here", &["handler"], 10);
    assert_eq!(app.send_event(&event).await.status(), 200);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/projects/{doomed_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/projects/{doomed_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn api_projects_keys_are_added_limited_and_revoked() {
    let app = TestApp::spawn().await;
    let id = app.project.id;
    let keys_path = format!("/api/v1/projects/{id}/keys");

    let (status, first) = call(&app, Method::GET, &keys_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(first["next_cursor"], Value::Null, "one page");
    let first = first["items"].as_array().expect("items").clone();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["public_key"], app.key());
    assert_eq!(first[0]["revoked_at"], Value::Null);
    assert_eq!(first[0]["rate_limit"], Value::Null);
    assert!(first[0]["dsn"]
        .as_str()
        .is_some_and(|d| d.contains(app.key())));

    // A new key ingests at once (ingestion has never seen it).
    let (status, added) = call(
        &app,
        Method::POST,
        &keys_path,
        Some(json!({"rate_limit": 100})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["rate_limit"], 100);
    let new_key = added["public_key"].as_str().expect("key").to_owned();
    let new_id = added["id"].as_i64().expect("id");
    assert_ne!(new_key, app.key());
    let event = python_exception("KeyError", "boom", &["handler"], 1);
    assert_eq!(send_with_key(&app, id, &new_key, &event).await, 200);

    let (status, changed) = call(
        &app,
        Method::PATCH,
        &format!("{keys_path}/{new_id}"),
        Some(json!({"rate_limit": 5})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["rate_limit"], 5);
    let (_, cleared) = call(
        &app,
        Method::PATCH,
        &format!("{keys_path}/{new_id}"),
        Some(json!({"rate_limit": null})),
    )
    .await;
    assert_eq!(cleared["rate_limit"], Value::Null);

    // A key revoked before ingestion ever saw it is refused from its first envelope.
    let (_, third) = call(&app, Method::POST, &keys_path, Some(json!({}))).await;
    let third_key = third["public_key"].as_str().expect("key").to_owned();
    let third_id = third["id"].as_i64().expect("id");
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{keys_path}/{third_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let status = send_with_key(&app, id, &third_key, &event).await;
    assert!(
        status == 401 || status == 403,
        "revoked key answered {status}"
    );
    // Revoking again keeps the first revocation.
    let (_, listed) = call(&app, Method::GET, &keys_path, None).await;
    let revoked_at = listed["items"][2]["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{listed}");
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{keys_path}/{third_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, listed) = call(&app, Method::GET, &keys_path, None).await;
    assert_eq!(listed["items"][2]["revoked_at"], revoked_at);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(3));

    // The project's DSN is its first active key: revoking that one moves it to the next.
    let first_id = first[0]["id"].as_i64().expect("id");
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("{keys_path}/{first_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, project) = call(&app, Method::GET, &format!("/api/v1/projects/{id}"), None).await;
    assert_eq!(project["otlp_key"], new_key.as_str());
    app.stop().await;
}

#[tokio::test]
async fn api_projects_a_key_quota_limits_that_key_only() {
    let app = TestApp::spawn().await;
    let id = app.project.id;
    let keys_path = format!("/api/v1/projects/{id}/keys");
    let (status, limited) = call(
        &app,
        Method::POST,
        &keys_path,
        Some(json!({"rate_limit": 2})),
    )
    .await;
    assert_eq!(status, 201, "{limited}");
    let key = limited["public_key"].as_str().expect("key").to_owned();
    // The quota window is the wall-clock minute: start well inside one.
    if Utc::now().second() >= 55 {
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    }
    let event = python_exception("KeyError", "boom", &["handler"], 1);
    for _ in 0..2 {
        assert_eq!(send_with_key(&app, id, &key, &event).await, 200);
    }
    assert_eq!(
        send_with_key(&app, id, &key, &event).await,
        429,
        "the key's quota is spent"
    );
    assert_eq!(
        app.send_event(&event).await.status(),
        200,
        "the project's other key is not limited"
    );

    // Lifting the key's quota applies to the next request.
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("{keys_path}/{}", limited["id"]),
        Some(json!({"rate_limit": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(send_with_key(&app, id, &key, &event).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn api_projects_events_for_a_project_deleted_by_another_process_are_refused_not_failed() {
    let app = TestApp::spawn().await;
    let doomed = create_project(&app, json!({"slug": "doomed"})).await;
    let doomed_id = ProjectId(doomed["id"].as_i64().expect("id"));
    let key = doomed["otlp_key"].as_str().expect("key").to_owned();
    let event = python_exception("KeyError", "boom", &["handler"], 1);
    assert_eq!(send_with_key(&app, doomed_id, &key, &event).await, 200);
    // Another Seismo process deletes it: this one still holds the key in its cache.
    sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(doomed_id)
        .execute(&app.pool)
        .await
        .expect("delete the project");
    let late = python_exception("LateError", "boom", &["handler"], 1);
    assert_eq!(send_with_key(&app, doomed_id, &key, &late).await, 404);
    assert_eq!(
        app.send_event(&late).await.status(),
        200,
        "other projects go on"
    );
    assert!(
        app.metrics().contains("reason=\"project_deleted\""),
        "counted as refused"
    );
    app.stop().await;
}
