//! API tokens through the management API: created (shown once), listed with their last
//! use, revoked; only with the admin scope.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{call, call_as, TestApp};

async fn listed(app: &TestApp) -> Vec<Value> {
    let (status, body) = call(app, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["next_cursor"], Value::Null);
    body["items"].as_array().cloned().expect("items")
}

#[tokio::test]
async fn api_tokens_are_created_listed_used_and_revoked() {
    let app = TestApp::spawn().await;
    let (status, created) = call(
        &app,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "grafana", "scope": "read"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "grafana");
    assert_eq!(created["scope"], "read");
    assert_eq!(created["last_used_at"], Value::Null);
    let token = created["token"].as_str().expect("token text").to_owned();
    assert!(token.starts_with("seismo_"), "{token}");
    let id = created["id"].as_i64().expect("id");

    // It reads, and its use is recorded; the list never shows a token's text.
    let (status, _) = call_as(&app, &token, Method::GET, "/api/v1/incidents", None).await;
    assert_eq!(status, 200);
    let tokens = listed(&app).await;
    assert_eq!(
        tokens.len(),
        2,
        "the harness's token and this one: {tokens:?}"
    );
    let shown = tokens.iter().find(|t| t["id"] == id).expect("listed");
    assert!(shown["last_used_at"].is_string(), "{shown}");
    assert_eq!(shown["revoked_at"], Value::Null);
    assert!(
        tokens
            .iter()
            .all(|t| t.get("token").is_none() && !t.to_string().contains(&token)),
        "{tokens:?}"
    );

    // A read token may not manage tokens.
    let (status, body) = call_as(&app, &token, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    // Revoked: refused from the next request on; revoking twice keeps the first time.
    let path = format!("/api/v1/tokens/{id}");
    let (status, _) = call(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = call_as(&app, &token, Method::GET, "/api/v1/incidents", None).await;
    assert_eq!(status, 401, "{body}");
    let revoked_at = listed(&app)
        .await
        .into_iter()
        .find(|t| t["id"] == id)
        .expect("listed")["revoked_at"]
        .clone();
    assert!(revoked_at.is_string());
    let (status, _) = call(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let again = listed(&app)
        .await
        .into_iter()
        .find(|t| t["id"] == id)
        .expect("listed");
    assert_eq!(again["revoked_at"], revoked_at);

    // Without a scope, a token is admin (as `seismo token create`).
    let (status, admin) = call(
        &app,
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": "ops"})),
    )
    .await;
    assert_eq!(status, 201, "{admin}");
    assert_eq!(admin["scope"], "admin");
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_refuse_bad_requests() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"name": ""}), 422),
        (json!({"name": "   "}), 422),
        (json!({"name": "x".repeat(201)}), 422),
        (json!({"name": "ci", "scope": "root"}), 400),
        (json!({"name": "ci", "expires": "never"}), 400),
        (json!({"scope": "read"}), 400),
        (json!(["ci"]), 400),
    ];
    for (body, expected) in cases {
        let (status, answer) = call(&app, Method::POST, "/api/v1/tokens", Some(body.clone())).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    for path in [
        "/api/v1/tokens/999999",
        "/api/v1/tokens/abc",
        "/api/v1/tokens/-1",
    ] {
        let (status, answer) = call(&app, Method::DELETE, path, None).await;
        assert!(status == 404 || status == 400, "{path}: {status} {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    let (status, _) = call_as(
        &app,
        "seismo_not_a_token",
        Method::GET,
        "/api/v1/tokens",
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(listed(&app).await.len(), 1, "nothing was created");
    app.stop().await;
}
