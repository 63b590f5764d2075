//! The OpenAPI document as the tests read it: its operations, which operation a concrete
//! path belongs to, and whether an answer matches what the document says for its status.
//! Shared by `api_openapi` (the contract test) and `api_fuzz` (random input).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeDelta, Utc};
use jsonschema::{Draft, Validator};
use reqwest::Method;
use seismo::model::{Kind, Scope};
use seismo::store::incidents::{self, NewIncident};
use serde_json::{json, Value};

use crate::harness::{call, python_exception, TestApp};

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Method,
    /// The path template, e.g. `/api/v1/issues/{id}`.
    pub path: String,
    pub spec: Value,
}

impl Operation {
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The request body's schema, when the operation takes one.
    pub fn body_schema(&self) -> Option<&Value> {
        self.spec
            .pointer("/requestBody/content/application~1json/schema")
    }

    /// The query parameters: (name, schema).
    pub fn query_parameters(&self) -> Vec<(String, Value)> {
        let parameters = self.spec["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        parameters
            .into_iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p["schema"].clone())))
            .collect()
    }
}

pub struct Document {
    pub json: Value,
    pub operations: Vec<Operation>,
    /// Compiled answer schemas by (operation, status).
    validators: BTreeMap<(String, String), Validator>,
}

impl Document {
    /// Fetches the document as any client would: without a token.
    pub async fn fetch(app: &TestApp) -> Document {
        let response = app
            .http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .expect("GET the OpenAPI document");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let json: Value = response.json().await.expect("the document is JSON");
        Document::new(json)
    }

    pub fn new(json: Value) -> Document {
        assert_eq!(json["openapi"], "3.1.0", "an OpenAPI 3.1 document");
        let mut operations = Vec::new();
        let paths = json["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, spec) in item.as_object().expect("a path item") {
                let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                    continue;
                };
                if spec.get("responses").is_none() {
                    continue; // `parameters` or `summary` of the path item
                }
                operations.push(Operation {
                    method,
                    path: path.clone(),
                    spec: spec.clone(),
                });
            }
        }
        let mut document = Document {
            json,
            operations,
            validators: BTreeMap::new(),
        };
        document.compile();
        document
    }

    /// Compiles every answer schema once; a schema the validator cannot compile fails here.
    fn compile(&mut self) {
        for operation in &self.operations {
            let answers = operation.spec["responses"].as_object().expect("responses");
            for (status, answer) in answers {
                let Some(schema) = answer.pointer("/content/application~1json/schema") else {
                    continue;
                };
                let validator = self.validator(schema).unwrap_or_else(|e| {
                    panic!(
                        "{} {status}: the schema does not compile: {e}",
                        operation.name()
                    )
                });
                self.validators
                    .insert((operation.name(), status.clone()), validator);
            }
        }
    }

    /// A validator for `schema`, its `$ref`s resolved against this document's components.
    pub fn validator(&self, schema: &Value) -> Result<Validator, String> {
        let root = json!({
            "allOf": [schema],
            "components": self.json["components"],
        });
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| e.to_string())
    }

    /// The schema `value` stands for, following a `$ref` into the components.
    pub fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                self.json.pointer(pointer).unwrap_or(&Value::Null)
            }
            None => value,
        }
    }

    /// The operation a request for `method` and a concrete `path` is routed to: the template
    /// with the same segments, literal segments winning over parameters (as in the router).
    pub fn operation_for(&self, method: &Method, path: &str) -> Option<&Operation> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method == method)
            .filter_map(|op| {
                let template: Vec<&str> = op.path.split('/').collect();
                if template.len() != segments.len() {
                    return None;
                }
                let mut literals = 0;
                for (t, s) in template.iter().zip(&segments) {
                    if t.starts_with('{') {
                        if s.is_empty() {
                            return None;
                        }
                    } else if t == s {
                        literals += 1;
                    } else {
                        return None;
                    }
                }
                Some((literals, op))
            })
            .max_by_key(|(literals, _)| *literals)
            .map(|(_, op)| op)
    }

    /// Whether `body` is what `operation` documents for `status`; `Err` says why not.
    pub fn check(&self, operation: &Operation, status: u16, body: &Value) -> Result<(), String> {
        let status_text = status.to_string();
        let answers = &operation.spec["responses"];
        let Some(answer) = answers.get(&status_text) else {
            let documented: Vec<&String> = answers
                .as_object()
                .map(|a| a.keys().collect())
                .unwrap_or_default();
            return Err(format!(
                "status {status} is not documented (documented: {documented:?}); body {body}"
            ));
        };
        if answer
            .pointer("/content/application~1json/schema")
            .is_none()
        {
            return match body {
                Value::Null => Ok(()),
                other => Err(format!("status {status} documents no body, got {other}")),
            };
        }
        let validator = &self.validators[&(operation.name(), status_text)];
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "status {status}: the body does not match its schema: {}; body {body}",
                errors.join("; ")
            ))
        }
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.operations.iter().map(Operation::name).collect()
    }
}

/// Asserts an error answer's shape: `{"error": {"code": "snake_case", "message": "…"}}`.
pub fn assert_error_body(case: &str, status: u16, body: &Value) {
    let code = body["error"]["code"].as_str().unwrap_or("");
    let message = body["error"]["message"].as_str().unwrap_or("");
    let snake = !code.is_empty()
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    assert!(
        snake && !message.is_empty(),
        "{case}: a {status} must carry {{\"error\": {{\"code\", \"message\"}}}}, got {body}"
    );
}

/// One of everything the API manages, with real ids: what a template's `{id}` is filled with.
pub struct Fixture {
    pub project_id: i64,
    pub issue_id: i64,
    pub event_id: String,
    pub incident_id: i64,
    pub rule_id: i64,
    pub key_id: i64,
    /// A read token of its own (revoking it leaves the harness's admin token alone).
    pub token_id: i64,
    pub silence_id: i64,
    pub endpoint_id: i64,
    pub delivery_id: i64,
}

impl Fixture {
    /// Two events (one issue), an anomaly incident opened as the detector opens them, a
    /// threshold rule, a second ingestion key, a silence, a webhook endpoint and a dead
    /// delivery to it, all in the harness's project; and a read token.
    pub async fn build(app: &TestApp) -> Fixture {
        let event = python_exception("KeyError", "missing 'sku'", &["checkout", "price"], 10);
        for _ in 0..2 {
            let mut event = event.clone();
            event["event_id"] = json!(uuid::Uuid::new_v4().simple().to_string());
            assert_eq!(app.send_event(&event).await.status(), 200);
        }
        let issue_id = app.issues().await[0]["id"].as_i64().expect("an issue");
        let event_id = app.events_of(issue_id).await[0]["event_id"]
            .as_str()
            .expect("an event")
            .to_owned();
        let mut conn = app.pool.acquire().await.expect("connection");
        let incident = incidents::open(
            &mut conn,
            &NewIncident {
                project_id: app.project.id,
                kind: Kind::Anomaly,
                kinds: vec![Kind::Anomaly],
                scope: Scope::Service("checkout".to_owned()),
                opened_at: Utc::now() - TimeDelta::minutes(5),
                score: 0.8,
                details: json!({"observed": 42, "expected": 3.5}),
                reason: "anomaly detected".to_owned(),
            },
        )
        .await
        .expect("open")
        .expect("the series has no active incident");
        drop(conn);
        let rules = format!("/api/v1/projects/{}/rules", app.project.id);
        let rule = json!({"kind": "threshold", "threshold": 10, "window_minutes": 5});
        let (status, rule) = call(app, Method::POST, &rules, Some(rule)).await;
        assert_eq!(status, 201, "{rule}");
        let keys = format!("/api/v1/projects/{}/keys", app.project.id);
        let (status, key) = call(app, Method::POST, &keys, Some(json!({}))).await;
        assert_eq!(status, 201, "{key}");
        let token = json!({"name": "fixture", "scope": "read"});
        let (status, token) = call(app, Method::POST, "/api/v1/tokens", Some(token)).await;
        assert_eq!(status, 201, "{token}");
        let silence = json!({"project_id": app.project.id, "duration_minutes": 60});
        let (status, silence) = call(app, Method::POST, "/api/v1/silences", Some(silence)).await;
        assert_eq!(status, 201, "{silence}");
        let hook = json!({"project_id": app.project.id, "kind": "webhook",
            "url": "https://8.8.8.8/hook", "events": ["incident.opened"]});
        let (status, hook) = call(app, Method::POST, "/api/v1/endpoints", Some(hook)).await;
        assert_eq!(status, 201, "{hook}");
        let endpoint_id = hook["id"].as_i64().expect("endpoint id");
        let mut conn = app.pool.acquire().await.expect("connection");
        let delivery_id = seismo::store::deliveries::insert(
            &mut conn,
            &seismo::store::deliveries::NewDelivery {
                endpoint_id,
                project_id: app.project.id,
                incident_id: Some(incident.id),
                kind: "webhook".into(),
                topic: "incident.opened".into(),
                action: None,
                dedup_key: "fixture".into(),
                payload: json!({"type": "incident.opened"}),
                status: "dead",
                note: Some("the receiver answered 500".into()),
                next_attempt_at: Utc::now(),
                expires_at: None,
            },
        )
        .await
        .expect("insert a delivery")
        .expect("a new delivery");
        drop(conn);
        Fixture {
            project_id: app.project.id.get(),
            issue_id,
            event_id,
            incident_id: incident.id.get(),
            rule_id: rule["id"].as_i64().expect("rule id"),
            key_id: key["id"].as_i64().expect("key id"),
            token_id: token["id"].as_i64().expect("token id"),
            silence_id: silence["id"].as_i64().expect("silence id"),
            endpoint_id,
            delivery_id,
        }
    }

    /// The real id for the parameter after `resource` (`/projects/{id}` → the project id);
    /// a resource this fixture does not know gets `1`, which reaches the handler all the same.
    pub fn id_after(&self, resource: &str) -> String {
        match resource {
            "projects" => self.project_id.to_string(),
            "issues" => self.issue_id.to_string(),
            "events" => self.event_id.clone(),
            "incidents" => self.incident_id.to_string(),
            "rules" => self.rule_id.to_string(),
            "keys" => self.key_id.to_string(),
            "tokens" => self.token_id.to_string(),
            "silences" => self.silence_id.to_string(),
            "endpoints" => self.endpoint_id.to_string(),
            "deliveries" => self.delivery_id.to_string(),
            _ => "1".to_owned(),
        }
    }

    /// `template` with every parameter replaced by a real id.
    pub fn path(&self, template: &str) -> String {
        fill(template, |resource, _| self.id_after(resource))
    }
}

/// `template` with each `{param}` segment replaced by `value(segment before it, index of
/// the parameter)`; the value is percent-encoded as one path segment.
pub fn fill(template: &str, mut value: impl FnMut(&str, usize) -> String) -> String {
    let mut previous = "";
    let mut index = 0;
    let segments: Vec<String> = template
        .split('/')
        .map(|segment| {
            let filled = if segment.starts_with('{') {
                let v = value(previous, index);
                index += 1;
                encode_segment(&v)
            } else {
                segment.to_owned()
            };
            previous = segment;
            filled
        })
        .collect();
    segments.join("/")
}

fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
