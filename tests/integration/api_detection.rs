//! The detection side of the management API: incidents (list, history, acknowledge, resolve,
//! label, missed faults), detection rules, and ignoring an issue until it comes back.
//! Incidents are opened through the store, as the detector opens them.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::{any, prop, prop_oneof, BoxedStrategy};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use seismo::model::{Incident, IncidentId, IssueId, Kind, Scope, State};
use seismo::store::incidents::{self, NewIncident};
use seismo::store::issues;
use serde_json::{json, Value};

use crate::harness::{any_json, call, python_exception, TestApp};

async fn patch(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    call(app, Method::PATCH, path, Some(body)).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    call(app, Method::POST, path, Some(body)).await
}

/// Asserts an error answer: its status and `{"error":{"code","message"}}` with that code.
fn assert_error(case: &str, (status, body): &(u16, Value), expected: u16, code: &str) {
    assert_eq!(*status, expected, "{case}: {body}");
    assert_eq!(body["error"]["code"], code, "{case}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}: {body}"
    );
}

fn minutes_ago(minutes: i64) -> DateTime<Utc> {
    // Whole seconds, so the value survives PostgreSQL's microseconds unchanged.
    let now = Utc::now() - TimeDelta::minutes(minutes);
    DateTime::from_timestamp(now.timestamp(), 0).expect("a valid time")
}

/// Opens an incident the way the detector does.
async fn open_incident(
    app: &TestApp,
    kind: &'static str,
    scope: Scope,
    at: DateTime<Utc>,
) -> Incident {
    let mut conn = app.pool.acquire().await.expect("connection");
    let new = NewIncident {
        project_id: app.project.id,
        kind: Kind::parse(kind).expect("a kind"),
        kinds: vec![Kind::parse(kind).expect("a kind")],
        scope,
        opened_at: at,
        score: 0.8,
        details: json!({}),
        reason: "anomaly detected".to_owned(),
    };
    incidents::open(&mut conn, &new)
        .await
        .expect("open")
        .expect("the series has no active incident")
}

async fn outbox_of(app: &TestApp, incident_id: IncidentId) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT topic, payload FROM outbox WHERE incident_id = $1 ORDER BY id")
        .bind(incident_id)
        .fetch_all(&app.pool)
        .await
        .expect("outbox")
}

async fn rule_id(app: &TestApp, kind: &str) -> i64 {
    let (status, body) = call(app, Method::GET, &rules_path(app), None).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|r| r["kind"] == kind))
        .and_then(|r| r["id"].as_i64())
        .expect("a default rule of that kind")
}

fn rules_path(app: &TestApp) -> String {
    format!("/api/v1/projects/{}/rules", app.project.id)
}

#[tokio::test]
async fn api_detection_routes_require_a_valid_token() {
    let app = TestApp::spawn().await;
    let project = app.project.id;
    let routes = [
        (Method::GET, "/api/v1/incidents".to_owned()),
        (Method::POST, "/api/v1/incidents".to_owned()),
        (Method::GET, "/api/v1/incidents/1".to_owned()),
        (Method::PATCH, "/api/v1/incidents/1".to_owned()),
        (Method::GET, format!("/api/v1/projects/{project}/rules")),
        (Method::POST, format!("/api/v1/projects/{project}/rules")),
        (Method::GET, "/api/v1/rules/1".to_owned()),
        (Method::PATCH, "/api/v1/rules/1".to_owned()),
        (Method::DELETE, "/api/v1/rules/1".to_owned()),
        (Method::PATCH, "/api/v1/issues/1".to_owned()),
    ];
    for (method, path) in routes {
        for token in [None, Some("not-a-token"), Some(app.key())] {
            let mut request = app
                .http
                .request(method.clone(), app.url(&path))
                .json(&json!({"action": "resolve"}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_error(
                &format!("{method} {path} {token:?}"),
                &(status, body),
                401,
                "unauthorized",
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn api_detection_incident_list_pages_through_every_incident_exactly_once() {
    let app = TestApp::spawn().await;
    let mut opened = Vec::new();
    let base = minutes_ago(60);
    for i in 0..7 {
        // Pairs share an opening time: ties are broken by id, never lost between pages.
        let at = base + TimeDelta::minutes(i / 2);
        let kind = if i % 2 == 0 { "anomaly" } else { "threshold" };
        opened.push(open_incident(&app, kind, Scope::Service(format!("svc-{i}")), at).await);
    }
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/incidents?project={}&limit=3", app.project.id);
    loop {
        let page = app.api_ok(&path).await;
        for item in page["items"].as_array().expect("items") {
            seen.push((
                item["opened_at"].as_str().expect("opened_at").to_owned(),
                item["id"].as_i64().expect("id"),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!(
                    "/api/v1/incidents?project={}&limit=3&cursor={cursor}",
                    app.project.id
                )
            }
            None => break,
        }
    }
    let ids: Vec<i64> = seen.iter().map(|s| s.1).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "{ids:?}"
    );
    let mut expected: Vec<i64> = opened.iter().map(|i| i.id.get()).collect();
    expected.sort_unstable_by_key(|id| {
        let incident = opened.iter().find(|i| i.id.get() == *id).expect("opened");
        std::cmp::Reverse((incident.opened_at, incident.id))
    });
    assert_eq!(ids, expected, "newest first, ties by id");

    let anomalies = app
        .api_ok("/api/v1/incidents?kind=anomaly&state=open&limit=100")
        .await;
    let items = anomalies["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{anomalies}");
    assert!(items
        .iter()
        .all(|i| i["kind"] == "anomaly" && i["state"] == "open"));
    assert_eq!(
        items[0]["series"],
        json!({"scope": "service", "service": "svc-6", "issue_id": null})
    );
    assert_eq!(items[0]["acknowledged_at"], Value::Null);
    let resolved = app.api_ok("/api/v1/incidents?state=resolved").await;
    assert_eq!(resolved, json!({"items": [], "next_cursor": null}));
    app.stop().await;
}

#[tokio::test]
async fn api_detection_incident_list_refuses_bad_parameters() {
    let app = TestApp::spawn().await;
    for (path, status, code) in [
        ("/api/v1/incidents?colour=red", 400, "bad_request"),
        ("/api/v1/incidents?state=sleeping", 400, "bad_request"),
        ("/api/v1/incidents?kind=earthquake", 400, "bad_request"),
        ("/api/v1/incidents?project=abc", 400, "bad_request"),
        (
            "/api/v1/incidents?cursor=bm90LWEtY3Vyc29y",
            400,
            "bad_request",
        ),
        ("/api/v1/incidents?limit=0", 400, "bad_request"),
        ("/api/v1/incidents?limit=101", 400, "bad_request"),
        ("/api/v1/incidents?project=999999", 404, "not_found"),
    ] {
        assert_error(path, &app.api_get(path).await, status, code);
    }
    app.stop().await;
}

#[tokio::test]
async fn api_detection_incident_show_has_its_history_and_unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    let incident = open_incident(&app, "anomaly", Scope::Project, minutes_ago(5)).await;
    let body = app
        .api_ok(&format!("/api/v1/incidents/{}", incident.id))
        .await;
    assert_eq!(body["id"], incident.id.get());
    assert_eq!(body["state"], "open");
    assert_eq!(body["series"]["scope"], "project");
    assert_eq!(
        body["history"],
        json!([{"at": incident.opened_at, "from_state": null, "to_state": "open", "reason": "anomaly detected"}])
    );
    assert_error(
        "unknown",
        &app.api_get("/api/v1/incidents/999999").await,
        404,
        "not_found",
    );
    assert_error(
        "not a number",
        &app.api_get("/api/v1/incidents/abc").await,
        400,
        "bad_request",
    );
    let unknown = patch(
        &app,
        "/api/v1/incidents/999999",
        json!({"action": "resolve"}),
    )
    .await;
    assert_error("patch unknown", &unknown, 404, "not_found");
    let unknown = patch(
        &app,
        "/api/v1/incidents/999999",
        json!({"label": "true_positive"}),
    )
    .await;
    assert_error("label unknown", &unknown, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn api_detection_resolving_writes_one_history_row_and_one_outbox_row() {
    let app = TestApp::spawn().await;
    let incident = open_incident(
        &app,
        "anomaly",
        Scope::Service("api".into()),
        minutes_ago(10),
    )
    .await;
    let path = format!("/api/v1/incidents/{}", incident.id);
    let (status, body) = patch(&app, &path, json!({"action": "resolve"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "resolved");
    assert!(body["resolved_at"].is_string(), "{body}");

    let history = incidents::history(&app.pool, incident.id)
        .await
        .expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1].from_state.as_deref(), Some("open"));
    assert_eq!(history[1].to_state, "resolved");
    let outbox = outbox_of(&app, incident.id).await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].0, "incident.resolved");
    assert_eq!(outbox[0].1["type"], "incident.resolved");
    assert_eq!(outbox[0].1["data"]["incident"]["id"], incident.id.get());
    assert_eq!(outbox[0].1["data"]["incident"]["state"], "resolved");

    // Resolved stays resolved: refused, and nothing more is written.
    let again = patch(&app, &path, json!({"action": "resolve"})).await;
    assert_error("resolve twice", &again, 409, "invalid_transition");
    assert_eq!(outbox_of(&app, incident.id).await.len(), 1);
    assert_eq!(
        incidents::history(&app.pool, incident.id)
            .await
            .expect("history")
            .len(),
        2
    );
    let shown = app.api_ok(&path).await;
    assert_eq!(
        shown["history"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    app.stop().await;
}

#[tokio::test]
async fn api_detection_acknowledging_keeps_the_state_and_the_first_time() {
    let app = TestApp::spawn().await;
    let incident = open_incident(&app, "anomaly", Scope::Project, minutes_ago(3)).await;
    let path = format!("/api/v1/incidents/{}", incident.id);
    let (status, first) = patch(&app, &path, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["state"], "open");
    assert!(first["acknowledged_at"].is_string(), "{first}");
    let (status, second) = patch(&app, &path, json!({"action": "acknowledge"})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["acknowledged_at"], first["acknowledged_at"]);
    assert_eq!(
        incidents::history(&app.pool, incident.id)
            .await
            .expect("history")
            .len(),
        1
    );
    assert!(outbox_of(&app, incident.id).await.is_empty());

    let (status, _) = patch(&app, &path, json!({"action": "resolve"})).await;
    assert_eq!(status, 200);
    let late = patch(&app, &path, json!({"action": "acknowledge"})).await;
    assert_error("acknowledge resolved", &late, 409, "invalid_transition");
    app.stop().await;
}

#[tokio::test]
async fn api_detection_labels_are_recorded_and_bad_bodies_refused() {
    let app = TestApp::spawn().await;
    let incident =
        open_incident(&app, "threshold", Scope::Issue(IssueId(42)), minutes_ago(3)).await;
    let path = format!("/api/v1/incidents/{}", incident.id);
    let (status, body) = patch(&app, &path, json!({"label": "false_positive"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"], "false_positive");
    assert_eq!(body["state"], "open", "a label is not a state change");
    let (status, body) = patch(&app, &path, json!({"label": "true_positive"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"], "true_positive");
    assert_eq!(
        body["series"],
        json!({"scope": "issue", "service": null, "issue_id": 42})
    );

    for (case, body, status, code) in [
        ("empty", json!({}), 422, "validation_failed"),
        (
            "both",
            json!({"action": "resolve", "label": "true_positive"}),
            422,
            "validation_failed",
        ),
        (
            "unknown action",
            json!({"action": "explode"}),
            422,
            "validation_failed",
        ),
        (
            "missed via patch",
            json!({"label": "missed"}),
            422,
            "validation_failed",
        ),
        (
            "unknown field",
            json!({"action": "resolve", "colour": "red"}),
            400,
            "bad_request",
        ),
        ("wrong type", json!({"action": 5}), 400, "bad_request"),
        ("not an object", json!(["resolve"]), 400, "bad_request"),
    ] {
        assert_error(case, &patch(&app, &path, body).await, status, code);
    }
    let response = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("patch");
    let status = response.status().as_u16();
    assert_error(
        "malformed",
        &(status, response.json().await.unwrap_or(Value::Null)),
        400,
        "bad_request",
    );
    let unchanged = incidents::get(&app.pool, incident.id)
        .await
        .expect("get")
        .expect("incident");
    assert_eq!(unchanged.state, State::Open);
    assert_eq!(unchanged.label.as_deref(), Some("true_positive"));
    app.stop().await;
}

#[tokio::test]
async fn api_detection_a_missed_fault_is_listed_resolved_with_label_missed() {
    let app = TestApp::spawn().await;
    // An active project-wide incident: the missed fault must not compete for its slot.
    let active = open_incident(&app, "anomaly", Scope::Project, minutes_ago(30)).await;
    let opened_at = minutes_ago(90);
    let body = json!({"project_id": app.project.id, "label": "missed", "opened_at": opened_at, "note": "checkout was down"});
    let (status, missed) = post(&app, "/api/v1/incidents", body).await;
    assert_eq!(status, 201, "{missed}");
    assert_eq!(missed["kind"], "anomaly");
    assert_eq!(missed["state"], "resolved");
    assert_eq!(missed["label"], "missed");
    assert_eq!(missed["series"]["scope"], "project");
    assert_eq!(missed["details"]["note"], "checkout was down");
    assert_eq!(missed["opened_at"], json!(opened_at));
    assert!(missed["resolved_at"].is_string(), "{missed}");
    let (status, bare) = post(
        &app,
        "/api/v1/incidents",
        json!({"project_id": app.project.id, "label": "missed"}),
    )
    .await;
    assert_eq!(status, 201, "{bare}");

    let list = app
        .api_ok(&format!(
            "/api/v1/incidents?project={}&state=resolved",
            app.project.id
        ))
        .await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    assert!(items.iter().all(|i| i["label"] == "missed"), "{list}");
    assert!(items.iter().any(|i| i["id"] == missed["id"]));
    let still = incidents::get(&app.pool, active.id)
        .await
        .expect("get")
        .expect("incident");
    assert_eq!(still.state, State::Open);
    assert!(
        outbox_of(&app, IncidentId(missed["id"].as_i64().expect("id")))
            .await
            .is_empty(),
        "a missed fault pages nobody"
    );

    let future = minutes_ago(-60);
    let project = app.project.id;
    for (case, body, status, code) in [
        (
            "label",
            json!({"project_id": project, "label": "true_positive"}),
            422,
            "validation_failed",
        ),
        (
            "future",
            json!({"project_id": project, "label": "missed", "opened_at": future}),
            422,
            "validation_failed",
        ),
        (
            "nul in note",
            json!({"project_id": project, "label": "missed", "note": "a\u{0}b"}),
            422,
            "validation_failed",
        ),
        (
            "no label",
            json!({"project_id": project}),
            400,
            "bad_request",
        ),
        (
            "unknown field",
            json!({"project_id": project, "label": "missed", "state": "open"}),
            400,
            "bad_request",
        ),
        (
            "bad time",
            json!({"project_id": project, "label": "missed", "opened_at": "yesterday"}),
            400,
            "bad_request",
        ),
        (
            "unknown project",
            json!({"project_id": 999999, "label": "missed"}),
            404,
            "not_found",
        ),
    ] {
        assert_error(
            case,
            &post(&app, "/api/v1/incidents", body).await,
            status,
            code,
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn api_detection_rules_are_created_listed_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let (status, list) = call(&app, Method::GET, &rules_path(&app), None).await;
    assert_eq!(status, 200, "{list}");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["new_issue", "regression", "anomaly", "error_rate"]);
    assert_eq!(list["next_cursor"], Value::Null);

    let body =
        json!({"kind": "threshold", "scope": "service", "threshold": 100, "window_minutes": 15});
    let (status, rule) = post(&app, &rules_path(&app), body).await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["kind"], "threshold");
    assert_eq!(rule["scope"], "service");
    assert_eq!(rule["threshold"], 100);
    assert_eq!(rule["window_minutes"], 15);
    assert_eq!(rule["enabled"], true);
    assert_eq!(rule["sensitivity"], Value::Null);
    assert_eq!(rule["project_id"], app.project.id.get());
    let path = format!("/api/v1/rules/{}", rule["id"]);
    assert_eq!(app.api_ok(&path).await, rule);

    let (status, changed) = patch(
        &app,
        &path,
        json!({"threshold": 50, "window_minutes": 5, "enabled": false}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["threshold"].clone(),
            changed["window_minutes"].clone(),
            changed["enabled"].clone()
        ),
        (json!(50), json!(5), json!(false))
    );
    let anomaly = rule_id(&app, "anomaly").await;
    let (status, tuned) = patch(
        &app,
        &format!("/api/v1/rules/{anomaly}"),
        json!({"sensitivity": "high"}),
    )
    .await;
    assert_eq!(status, 200, "{tuned}");
    assert_eq!(tuned["sensitivity"], "high");
    let (status, sensitive) = post(
        &app,
        &rules_path(&app),
        json!({"kind": "error_rate", "sensitivity": "low"}),
    )
    .await;
    assert_eq!(status, 201, "{sensitive}");
    assert_eq!(sensitive["sensitivity"], "low");

    let (status, _) = call(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_error("gone", &app.api_get(&path).await, 404, "not_found");
    assert_error(
        "delete twice",
        &call(&app, Method::DELETE, &path, None).await,
        404,
        "not_found",
    );
    assert_error(
        "patch gone",
        &patch(&app, &path, json!({"enabled": true})).await,
        404,
        "not_found",
    );
    assert_error(
        "list unknown project",
        &app.api_get("/api/v1/projects/999999/rules").await,
        404,
        "not_found",
    );
    let unknown = post(
        &app,
        "/api/v1/projects/999999/rules",
        json!({"kind": "new_issue"}),
    )
    .await;
    assert_error("create in unknown project", &unknown, 404, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn api_detection_rules_refuse_fields_their_kind_does_not_take() {
    let app = TestApp::spawn().await;
    let path = rules_path(&app);
    for (case, body, status, code) in [
        (
            "unknown kind",
            json!({"kind": "earthquake"}),
            422,
            "validation_failed",
        ),
        (
            "threshold without window",
            json!({"kind": "threshold", "threshold": 10}),
            422,
            "validation_failed",
        ),
        (
            "threshold without threshold",
            json!({"kind": "threshold", "window_minutes": 10}),
            422,
            "validation_failed",
        ),
        (
            "threshold zero",
            json!({"kind": "threshold", "threshold": 0, "window_minutes": 10}),
            422,
            "validation_failed",
        ),
        (
            "window zero",
            json!({"kind": "threshold", "threshold": 5, "window_minutes": 0}),
            422,
            "validation_failed",
        ),
        (
            "window over a day",
            json!({"kind": "threshold", "threshold": 5, "window_minutes": 1441}),
            422,
            "validation_failed",
        ),
        (
            "threshold with sensitivity",
            json!({"kind": "threshold", "threshold": 5, "window_minutes": 5, "sensitivity": "high"}),
            422,
            "validation_failed",
        ),
        (
            "anomaly with threshold",
            json!({"kind": "anomaly", "threshold": 5}),
            422,
            "validation_failed",
        ),
        (
            "error rate with window",
            json!({"kind": "error_rate", "window_minutes": 5}),
            422,
            "validation_failed",
        ),
        (
            "bad sensitivity",
            json!({"kind": "anomaly", "sensitivity": "extreme"}),
            422,
            "validation_failed",
        ),
        (
            "new issue with sensitivity",
            json!({"kind": "new_issue", "sensitivity": "low"}),
            422,
            "validation_failed",
        ),
        (
            "bad scope",
            json!({"kind": "threshold", "scope": "galaxy", "threshold": 5, "window_minutes": 5}),
            422,
            "validation_failed",
        ),
        ("no kind", json!({"threshold": 5}), 400, "bad_request"),
        (
            "unknown field",
            json!({"kind": "anomaly", "colour": "red"}),
            400,
            "bad_request",
        ),
        (
            "window too big for its type",
            json!({"kind": "threshold", "threshold": 5, "window_minutes": 1u64 << 40}),
            400,
            "bad_request",
        ),
        (
            "fractional threshold",
            json!({"kind": "threshold", "threshold": 2.5, "window_minutes": 5}),
            400,
            "bad_request",
        ),
    ] {
        assert_error(case, &post(&app, &path, body).await, status, code);
    }

    let anomaly = format!("/api/v1/rules/{}", rule_id(&app, "anomaly").await);
    let new_issue = format!("/api/v1/rules/{}", rule_id(&app, "new_issue").await);
    let (status, threshold) = post(
        &app,
        &path,
        json!({"kind": "threshold", "threshold": 5, "window_minutes": 5}),
    )
    .await;
    assert_eq!(status, 201, "{threshold}");
    let threshold = format!("/api/v1/rules/{}", threshold["id"]);
    for (case, rule, body, status, code) in [
        (
            "anomaly threshold",
            &anomaly,
            json!({"threshold": 5}),
            422,
            "validation_failed",
        ),
        (
            "anomaly bad sensitivity",
            &anomaly,
            json!({"sensitivity": "extreme"}),
            422,
            "validation_failed",
        ),
        (
            "new issue sensitivity",
            &new_issue,
            json!({"sensitivity": "low"}),
            422,
            "validation_failed",
        ),
        (
            "threshold sensitivity",
            &threshold,
            json!({"sensitivity": "low"}),
            422,
            "validation_failed",
        ),
        (
            "threshold window zero",
            &threshold,
            json!({"window_minutes": 0}),
            422,
            "validation_failed",
        ),
        (
            "threshold negative",
            &threshold,
            json!({"threshold": -1}),
            422,
            "validation_failed",
        ),
        (
            "kind is fixed",
            &threshold,
            json!({"kind": "anomaly"}),
            400,
            "bad_request",
        ),
        (
            "enabled as text",
            &anomaly,
            json!({"enabled": "yes"}),
            400,
            "bad_request",
        ),
        (
            "not a number",
            &"/api/v1/rules/abc".to_owned(),
            json!({"enabled": true}),
            400,
            "bad_request",
        ),
    ] {
        assert_error(case, &patch(&app, rule, body).await, status, code);
    }
    let (status, new_issue_rule) = patch(&app, &new_issue, json!({"enabled": false})).await;
    assert_eq!(status, 200, "{new_issue_rule}");
    assert_eq!(new_issue_rule["enabled"], false);
    app.stop().await;
}

#[tokio::test]
async fn api_detection_ignoring_an_issue_until_it_comes_back() {
    let app = TestApp::spawn().await;
    let event = python_exception("KeyError", "'sku'", &["checkout", "price"], 10);
    assert_eq!(app.send_event(&event).await.status(), 200);
    let issue = IssueId(app.issues().await[0]["id"].as_i64().expect("issue id"));
    let path = format!("/api/v1/issues/{issue}");
    let mutes = || issues::mutes(&app.pool, app.project.id);

    let body = json!({"status": "ignored", "ignore_until": {"count": 100, "window_minutes": 60}});
    let (status, ignored) = patch(&app, &path, body).await;
    assert_eq!(status, 200, "{ignored}");
    assert_eq!(ignored["status"], "ignored");
    let muted = mutes().await.expect("mutes");
    assert_eq!(
        muted,
        [issues::Mute {
            issue_id: issue,
            count: 100,
            window_minutes: 60
        }]
    );

    // Plain ignore, as before: ignored for good, no condition left.
    let (status, plain) = patch(&app, &path, json!({"status": "ignored"})).await;
    assert_eq!(
        (status, plain["status"].clone()),
        (200, json!("ignored")),
        "{plain}"
    );
    assert!(mutes().await.expect("mutes").is_empty());
    let (status, back) = patch(&app, &path, json!({"status": "unresolved"})).await;
    assert_eq!(
        (status, back["status"].clone()),
        (200, json!("unresolved")),
        "{back}"
    );

    for (case, body, status, code) in [
        (
            "count zero",
            json!({"status": "ignored", "ignore_until": {"count": 0, "window_minutes": 5}}),
            422,
            "validation_failed",
        ),
        (
            "window zero",
            json!({"status": "ignored", "ignore_until": {"count": 5, "window_minutes": 0}}),
            422,
            "validation_failed",
        ),
        (
            "window over a day",
            json!({"status": "ignored", "ignore_until": {"count": 5, "window_minutes": 1441}}),
            422,
            "validation_failed",
        ),
        (
            "with resolved",
            json!({"status": "resolved", "ignore_until": {"count": 5, "window_minutes": 5}}),
            400,
            "bad_request",
        ),
        (
            "unknown field",
            json!({"status": "ignored", "ignore_until": {"count": 5, "window_minutes": 5, "users": 3}}),
            400,
            "bad_request",
        ),
        (
            "missing window",
            json!({"status": "ignored", "ignore_until": {"count": 5}}),
            400,
            "bad_request",
        ),
    ] {
        assert_error(case, &patch(&app, &path, body).await, status, code);
    }
    assert_eq!(
        issues::get(&app.pool, issue)
            .await
            .expect("get")
            .expect("issue")
            .status,
        "unresolved"
    );
    let unknown = patch(
        &app,
        "/api/v1/issues/999999",
        json!({"status": "ignored", "ignore_until": {"count": 5, "window_minutes": 5}}),
    )
    .await;
    assert_error("unknown issue", &unknown, 404, "not_found");
    app.stop().await;
}

/// Mostly one of `words` (valid or nearly), now and then anything.
fn word(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        8 => prop::sample::select(words).prop_map(Value::from),
        1 => any_json(),
    ]
    .boxed()
}

/// Mostly a number at or around a limit, now and then anything.
fn number(edges: Vec<i64>) -> BoxedStrategy<Value> {
    prop_oneof![
        6 => prop::sample::select(edges).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any_json(),
    ]
    .boxed()
}

/// An object whose fields are each present with their probability, now and then with a
/// field too many; sometimes not an object at all.
fn object(fields: Vec<(&'static str, f64, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(name, presence, value)| {
            prop::option::weighted(presence, value.prop_map(move |v| (name.to_owned(), v)))
        })
        .collect();
    let extra = prop::option::weighted(0.05, ("[a-z_]{1,8}", any_json()));
    let object = (fields, extra).prop_map(|(fields, extra)| {
        Value::Object(fields.into_iter().flatten().chain(extra).collect())
    });
    prop_oneof![15 => object, 1 => any_json()].boxed()
}

fn incident_change() -> BoxedStrategy<Value> {
    let actions = &["acknowledge", "resolve", "close"];
    let labels = &["true_positive", "false_positive", "missed"];
    object(vec![
        ("action", 0.5, word(actions)),
        ("label", 0.5, word(labels)),
    ])
}

fn new_rule() -> BoxedStrategy<Value> {
    let kinds = &[
        "new_issue",
        "regression",
        "threshold",
        "anomaly",
        "error_rate",
        "slow",
    ];
    let counts = vec![-1, 0, 1, 5, 1440, 1441, i64::from(i32::MAX) + 1, i64::MAX];
    object(vec![
        ("kind", 0.95, word(kinds)),
        (
            "scope",
            0.3,
            word(&["project", "service", "issue", "galaxy"]),
        ),
        ("threshold", 0.5, number(counts.clone())),
        ("window_minutes", 0.5, number(counts)),
        (
            "sensitivity",
            0.3,
            word(&["low", "medium", "high", "extreme"]),
        ),
    ])
}

fn missed_fault(project_id: i64) -> BoxedStrategy<Value> {
    let times = &[
        "2026-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-01-01T00:00:00+14:00",
    ];
    let note = prop_oneof![4 => any::<String>().prop_map(Value::from), 1 => any_json()];
    object(vec![
        (
            "project_id",
            0.95,
            number(vec![project_id, project_id, project_id, 0, -1, i64::MAX]),
        ),
        ("label", 0.95, word(&["missed", "missed", "true_positive"])),
        ("opened_at", 0.5, word(times)),
        ("note", 0.5, note.boxed()),
    ])
}

#[tokio::test]
async fn api_detection_random_bodies_never_cause_a_server_error() {
    let app = TestApp::spawn().await;
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let (change, rule, missed) = (
        incident_change(),
        new_rule(),
        missed_fault(app.project.id.get()),
    );
    // Bodies are drawn here and sent from the async test (the runner is synchronous); a
    // failure names the body, which is what shrinking would give.
    let mut statuses: [Vec<u16>; 3] = Default::default();
    for case in 0..64 {
        // A fresh incident each time, so resolving and acknowledging find an open one.
        let series = Scope::Service(format!("s{case}"));
        let incident = open_incident(&app, "anomaly", series, minutes_ago(5)).await;
        let requests = [
            (
                Method::PATCH,
                format!("/api/v1/incidents/{}", incident.id),
                &change,
            ),
            (Method::POST, rules_path(&app), &rule),
            (Method::POST, "/api/v1/incidents".to_owned(), &missed),
        ];
        for (route, (method, path, strategy)) in requests.into_iter().enumerate() {
            let body = strategy.new_tree(&mut runner).expect("a body").current();
            let (status, answer) = call(&app, method.clone(), &path, Some(body.clone())).await;
            assert!(
                status < 500,
                "{method} {path} with {body} answered {status}: {answer}"
            );
            if status >= 400 {
                assert!(
                    answer["error"]["code"].is_string(),
                    "{method} {path} with {body}: {answer}"
                );
            }
            statuses[route].push(status);
        }
    }
    // The bodies reach past parsing (into validation or the store) on every route, and some
    // are taken; proportions vary with the seed, these do not in practice.
    for (route, seen) in statuses.iter().enumerate() {
        let past_parsing = |s: &u16| (200..300).contains(s) || *s == 422;
        assert!(seen.iter().any(past_parsing), "route {route}: {seen:?}");
    }
    assert!(statuses.iter().flatten().any(|s| (200..300).contains(s)));
    app.stop().await;
}
