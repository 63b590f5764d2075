//! Token scopes: read tokens only read, write tokens change issues, incidents and rules,
//! admin tokens (the harness's) also manage projects and keys; a refusal is a 403 that says
//! which scope the request needs.

use reqwest::Method;
use seismo::store::tokens::{self, Scope};
use serde_json::json;

use crate::harness::{call_as, python_exception, TestApp};

#[tokio::test]
async fn api_scopes_limit_what_a_token_may_do() {
    let app = TestApp::spawn().await;
    let event = python_exception("KeyError", "missing", &["handler"], 3);
    assert_eq!(app.send_event(&event).await.status(), 200);
    let issue = app.issues().await[0]["id"].as_i64().expect("issue id");
    let project = app.project.id;
    let read = tokens::create(&app.pool, "dashboards", Scope::Read)
        .await
        .expect("token")
        .token;
    let write = tokens::create(&app.pool, "on-call", Scope::Write)
        .await
        .expect("token")
        .token;
    let resolve = json!({"status": "resolved"});
    let new_project = json!({"slug": "another"});
    let issue_path = format!("/api/v1/issues/{issue}");
    let keys_path = format!("/api/v1/projects/{project}/keys");

    // read: every GET, nothing else.
    let (status, _) = call_as(&app, &read, Method::GET, &issue_path, None).await;
    assert_eq!(status, 200);
    let (status, body) = call_as(
        &app,
        &read,
        Method::PATCH,
        &issue_path,
        Some(resolve.clone()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("read") && message.contains("needs write"),
        "{message}"
    );

    // write: changes issues, not projects or keys (not even reading keys).
    let (status, body) = call_as(&app, &write, Method::PATCH, &issue_path, Some(resolve)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    let (status, _) = call_as(
        &app,
        &write,
        Method::POST,
        "/api/v1/projects",
        Some(new_project.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call_as(&app, &write, Method::GET, &keys_path, None).await;
    assert_eq!(status, 403);

    // admin: everything.
    let (status, body) = call_as(
        &app,
        &app.token,
        Method::POST,
        "/api/v1/projects",
        Some(new_project),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = call_as(&app, &app.token, Method::GET, &keys_path, None).await;
    assert_eq!(status, 200);
    app.stop().await;
}
