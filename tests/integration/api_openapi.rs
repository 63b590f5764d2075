//! The OpenAPI document against the real API: every documented operation is called for
//! real, each answer is validated against the schema the document gives for its status,
//! and an operation the document lists but this test never saw succeed fails the test (a
//! new route needs a case here).

use std::collections::BTreeSet;

use reqwest::Method;
use seismo::store::tokens::{self, Scope};
use serde_json::{json, Value};

use crate::harness::{call_as, TestApp};
use crate::openapi::{assert_error_body, Document, Fixture};

/// Calls the API and holds every answer to the document.
struct Contract<'a> {
    app: &'a TestApp,
    document: Document,
    /// Operations that answered 2xx with a body matching their schema.
    succeeded: BTreeSet<String>,
}

impl Contract<'_> {
    /// `method path` with the admin token must answer `expected`, as documented.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let token = self.app.token.clone();
        self.expect_as(&token, method, path, body, expected).await
    }

    async fn expect_as(
        &mut self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let case = format!("{method} {path}");
        let operation = self
            .document
            .operation_for(&method, path)
            .unwrap_or_else(|| panic!("{case}: no documented operation"))
            .clone();
        let (status, answer) = call_as(self.app, token, method, path, body).await;
        assert_eq!(status, expected, "{case}: {answer}");
        if let Err(why) = self.document.check(&operation, status, &answer) {
            panic!("{case} ({}): {why}", operation.name());
        }
        if status >= 400 {
            assert_error_body(&case, status, &answer);
        } else {
            self.succeeded.insert(operation.name());
        }
        answer
    }
}

#[tokio::test]
async fn api_openapi_every_operation_answers_as_documented() {
    let app = TestApp::spawn().await;
    let fixture = Fixture::build(&app).await;
    let mut api = Contract {
        app: &app,
        document: Document::fetch(&app).await,
        succeeded: BTreeSet::new(),
    };
    let project = format!("/api/v1/projects/{}", fixture.project_id);
    let issue = format!("/api/v1/issues/{}", fixture.issue_id);
    let incident = format!("/api/v1/incidents/{}", fixture.incident_id);
    let rule = format!("/api/v1/rules/{}", fixture.rule_id);
    let key = format!("{project}/keys/{}", fixture.key_id);

    // Projects and their keys.
    api.expect(Method::GET, "/api/v1/projects", None, 200).await;
    api.expect(Method::GET, &project, None, 200).await;
    api.expect(Method::GET, "/api/v1/projects/999999", None, 404)
        .await;
    api.expect(Method::GET, "/api/v1/projects/abc", None, 400)
        .await;
    let second = json!({"slug": "second", "rate_limit": 600, "max_events": 1000});
    let created = api
        .expect(Method::POST, "/api/v1/projects", Some(second.clone()), 201)
        .await;
    api.expect(Method::POST, "/api/v1/projects", Some(second), 409)
        .await;
    api.expect(
        Method::POST,
        "/api/v1/projects",
        Some(json!({"slug": "Not A Slug"})),
        422,
    )
    .await;
    let second = format!("/api/v1/projects/{}", created["id"]);
    let change = json!({"name": "Second", "rate_limit": null, "retention_days": 30});
    api.expect(Method::PATCH, &second, Some(change), 200).await;
    api.expect(Method::GET, &format!("{project}/keys"), None, 200)
        .await;
    let keys = format!("{project}/keys");
    api.expect(Method::POST, &keys, Some(json!({"rate_limit": 100})), 201)
        .await;
    api.expect(Method::POST, &keys, Some(json!({"rate_limit": 0})), 422)
        .await;
    api.expect(Method::PATCH, &key, Some(json!({"rate_limit": 50})), 200)
        .await;
    api.expect(Method::PATCH, &key, Some(json!({})), 400).await;
    api.expect(Method::DELETE, &key, None, 204).await;
    api.expect(Method::DELETE, &format!("{project}/keys/999999"), None, 404)
        .await;

    // Issues and events.
    let issues = format!("{project}/issues?status=unresolved&sort=count&limit=1");
    let page = api.expect(Method::GET, &issues, None, 200).await;
    assert!(page["next_cursor"].is_string(), "{page}");
    api.expect(
        Method::GET,
        &format!("{project}/issues?sort=loud"),
        None,
        400,
    )
    .await;
    api.expect(Method::GET, &issue, None, 200).await;
    api.expect(Method::GET, "/api/v1/issues/999999", None, 404)
        .await;
    let resolve = json!({"status": "resolved", "in_release": "1.2.0"});
    api.expect(Method::PATCH, &issue, Some(resolve), 200).await;
    let ignore = json!({"status": "ignored", "ignore_until": {"count": 0, "window_minutes": 5}});
    api.expect(Method::PATCH, &issue, Some(ignore), 422).await;
    api.expect(Method::PATCH, &issue, Some(json!({"status": "gone"})), 400)
        .await;
    let events = api
        .expect(Method::GET, &format!("{issue}/events?limit=1"), None, 200)
        .await;
    assert!(
        events["items"][0]["exception"][0]["frames"].is_array(),
        "{events}"
    );
    let event = format!("/api/v1/events/{}", fixture.event_id);
    api.expect(Method::GET, &event, None, 200).await;
    api.expect(Method::GET, "/api/v1/events/not-hex", None, 400)
        .await;

    // Incidents.
    api.expect(Method::GET, "/api/v1/incidents", None, 200)
        .await;
    api.expect(Method::GET, "/api/v1/incidents?state=sleeping", None, 400)
        .await;
    api.expect(
        Method::PATCH,
        &incident,
        Some(json!({"action": "acknowledge"})),
        200,
    )
    .await;
    api.expect(
        Method::PATCH,
        &incident,
        Some(json!({"action": "resolve"})),
        200,
    )
    .await;
    api.expect(
        Method::PATCH,
        &incident,
        Some(json!({"action": "resolve"})),
        409,
    )
    .await;
    api.expect(
        Method::PATCH,
        &incident,
        Some(json!({"label": "true_positive"})),
        200,
    )
    .await;
    api.expect(Method::PATCH, &incident, Some(json!({})), 422)
        .await;
    let shown = api.expect(Method::GET, &incident, None, 200).await;
    assert!(
        shown["history"].as_array().is_some_and(|h| h.len() >= 2),
        "{shown}"
    );
    let missed =
        json!({"project_id": fixture.project_id, "label": "missed", "note": "checkout down"});
    api.expect(Method::POST, "/api/v1/incidents", Some(missed), 201)
        .await;
    let unknown = json!({"project_id": 999999, "label": "missed"});
    api.expect(Method::POST, "/api/v1/incidents", Some(unknown), 404)
        .await;

    // Rules.
    let rules = format!("{project}/rules");
    api.expect(Method::GET, &rules, None, 200).await;
    let anomaly = json!({"kind": "anomaly", "scope": "service", "sensitivity": "high"});
    api.expect(Method::POST, &rules, Some(anomaly), 201).await;
    let wrong = json!({"kind": "new_issue", "threshold": 3});
    api.expect(Method::POST, &rules, Some(wrong), 422).await;
    api.expect(Method::GET, &rule, None, 200).await;
    api.expect(
        Method::PATCH,
        &rule,
        Some(json!({"threshold": 20, "enabled": false})),
        200,
    )
    .await;
    api.expect(Method::DELETE, &rule, None, 204).await;
    api.expect(Method::GET, &rule, None, 404).await;

    // Statistics.
    api.expect(Method::GET, "/api/v1/stats", None, 200).await;
    let since = format!(
        "/api/v1/stats?project={}&since=2026-01-01T00:00:00Z",
        fixture.project_id
    );
    api.expect(Method::GET, &since, None, 200).await;
    api.expect(Method::GET, "/api/v1/stats?since=yesterday", None, 400)
        .await;

    // Tokens: none, or one whose scope is too narrow, as every operation documents.
    api.expect_as("not-a-token", Method::GET, &issue, None, 401)
        .await;
    let read = tokens::create(&app.pool, "dashboards", Scope::Read)
        .await
        .expect("token")
        .token;
    api.expect_as(&read, Method::PATCH, &rule, Some(json!({})), 403)
        .await;

    // API tokens.
    api.expect(Method::GET, "/api/v1/tokens", None, 200).await;
    let made = api
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ci", "scope": "write"})),
            201,
        )
        .await;
    api.expect(
        Method::POST,
        "/api/v1/tokens",
        Some(json!({"name": ""})),
        422,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/api/v1/tokens/{}", made["id"]),
        None,
        204,
    )
    .await;
    api.expect(Method::DELETE, "/api/v1/tokens/999999", None, 404)
        .await;

    // Silences.
    let silence = format!("/api/v1/silences/{}", fixture.silence_id);
    api.expect(Method::GET, "/api/v1/silences?state=active", None, 200)
        .await;
    let new_silence = json!({"project_id": fixture.project_id, "kind": "anomaly",
        "service": "checkout", "issue_id": fixture.issue_id, "duration_minutes": 30});
    let made = api
        .expect(Method::POST, "/api/v1/silences", Some(new_silence), 201)
        .await;
    let endless = json!({"project_id": fixture.project_id});
    api.expect(Method::POST, "/api/v1/silences", Some(endless), 422)
        .await;
    api.expect(Method::GET, &silence, None, 200).await;
    api.expect(
        Method::PATCH,
        &silence,
        Some(json!({"comment": "deploy"})),
        200,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/api/v1/silences/{}", made["id"]),
        None,
        204,
    )
    .await;
    api.expect(Method::GET, "/api/v1/silences/999999", None, 404)
        .await;

    // Endpoints and deliveries.
    let endpoints = "/api/v1/endpoints";
    api.expect(
        Method::GET,
        &format!("{endpoints}?project={}&kind=webhook", fixture.project_id),
        None,
        200,
    )
    .await;
    api.expect(Method::GET, &format!("{endpoints}?kind=pager"), None, 400)
        .await;
    let recovery = json!({"project_id": fixture.project_id, "kind": "recovery",
        "url": "https://8.8.8.8/restart", "action": "restart", "incident_kinds": ["anomaly"]});
    let made = api
        .expect(Method::POST, endpoints, Some(recovery), 201)
        .await;
    assert!(
        made["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{made}"
    );
    let loopback = json!({"project_id": fixture.project_id, "kind": "webhook",
        "url": "http://127.0.0.1:9/hook"});
    api.expect(Method::POST, endpoints, Some(loopback), 422)
        .await;
    let bad_action = json!({"project_id": fixture.project_id, "kind": "recovery",
        "url": "https://8.8.8.8/", "action": "reboot"});
    api.expect(Method::POST, endpoints, Some(bad_action), 422)
        .await;
    let bad_mail =
        json!({"project_id": fixture.project_id, "kind": "email", "addresses": ["nobody"]});
    api.expect(Method::POST, endpoints, Some(bad_mail), 422)
        .await;
    let endpoint = format!("{endpoints}/{}", made["id"]);
    api.expect(Method::GET, &endpoint, None, 200).await;
    let rotated = api
        .expect(
            Method::PATCH,
            &endpoint,
            Some(json!({"rotate_secret": true, "order": 2})),
            200,
        )
        .await;
    assert!(
        rotated["secret"]
            .as_str()
            .is_some_and(|s| s != made["secret"]),
        "{rotated}"
    );
    api.expect(
        Method::PATCH,
        &endpoint,
        Some(json!({"addresses": ["a@example.com"]})),
        422,
    )
    .await;
    api.expect(Method::DELETE, &endpoint, None, 204).await;
    api.expect(Method::GET, &endpoint, None, 404).await;
    let delivery = format!("/api/v1/deliveries/{}", fixture.delivery_id);
    api.expect(
        Method::GET,
        "/api/v1/deliveries?status=dead&kind=webhook",
        None,
        200,
    )
    .await;
    api.expect(Method::GET, "/api/v1/deliveries?status=lost", None, 400)
        .await;
    api.expect(Method::GET, &delivery, None, 200).await;
    let again = api
        .expect(Method::POST, &format!("{delivery}/redeliver"), None, 200)
        .await;
    assert_eq!(again["status"], "pending");
    api.expect(
        Method::POST,
        "/api/v1/deliveries/999999/redeliver",
        None,
        404,
    )
    .await;

    // Merging and deleting issues (the fixture's issue goes last).
    let other = crate::harness::python_exception("ValueError", "other", &["checkout"], 3);
    assert_eq!(app.send_event(&other).await.status(), 200);
    let other_id = app
        .issues()
        .await
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .find(|id| *id != fixture.issue_id)
        .expect("a second issue");
    let merge = format!("{issue}/merge");
    api.expect(
        Method::POST,
        &merge,
        Some(json!({"issues": [other_id]})),
        200,
    )
    .await;
    api.expect(Method::POST, &merge, Some(json!({"issues": []})), 422)
        .await;
    api.expect(Method::DELETE, &issue, None, 204).await;
    api.expect(Method::DELETE, &issue, None, 404).await;

    api.expect(Method::DELETE, &second, None, 204).await;

    let untested: Vec<String> = api
        .document
        .names()
        .difference(&api.succeeded)
        .cloned()
        .collect();
    assert!(
        untested.is_empty(),
        "documented operations this test never saw succeed (add a case above): {untested:?}"
    );
    app.stop().await;
}
