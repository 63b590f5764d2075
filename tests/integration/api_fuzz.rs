//! Random input never makes the management API fail on its side: for every operation in the
//! OpenAPI document, random JSON bodies (shaped by the operation's request schema: its real
//! field names and enum values, mixed with wrong types, huge and negative numbers, unicode
//! and NUL strings, unknown fields), random path ids and random query strings. Every answer
//! must be below 500, and every 4xx must be `{"error":{"code","message"}}` with a status the
//! document lists for that operation. Operations come from the served document, so a new
//! route is fuzzed as soon as it is annotated.

use proptest::prelude::{any, prop, prop_oneof, BoxedStrategy, Just};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{any_json, call, TestApp};
use crate::openapi::{assert_error_body, fill, Document, Fixture, Operation};

const BODY_CASES: usize = 64;
const PATH_CASES: usize = 16;
const QUERY_CASES: usize = 32;

/// Integers at the edges that validation and the database care about, and real ids.
fn integer(ids: &[i64]) -> BoxedStrategy<Value> {
    let mut edges: Vec<Value> = [
        -1,
        0,
        1,
        2,
        5,
        60,
        1440,
        1441,
        3650,
        3651,
        i64::from(i32::MAX),
        i64::from(i32::MAX) + 1,
        i64::MAX,
        i64::MIN,
    ]
    .into_iter()
    .chain(ids.iter().copied())
    .map(Value::from)
    .collect();
    edges.push(json!(u64::MAX));
    edges.push(json!(1.5));
    edges.push(json!(1e300));
    prop_oneof![
        6 => prop::sample::select(edges),
        2 => any::<i64>().prop_map(Value::from),
    ]
    .boxed()
}

/// Text: plain words, any unicode, odd values (empty, NUL, bidi marks, long, times at the
/// edges of what PostgreSQL and chrono take), and words with a NUL inside (PostgreSQL text
/// cannot hold one: a handler must refuse it before the database does).
fn text() -> BoxedStrategy<Value> {
    let odd = vec![
        String::new(),
        " ".to_owned(),
        "\0".to_owned(),
        "é😀\u{202e}".to_owned(),
        "x".repeat(5000),
        "2026-01-01T00:00:00Z".to_owned(),
        "9999-12-31T23:59:59Z".to_owned(),
        "0000-01-01T00:00:00-23:59".to_owned(),
        "+275760-09-13T00:00:00Z".to_owned(),
    ];
    let word = "[a-z0-9][a-z0-9_.-]{0,11}";
    prop_oneof![
        3 => word.prop_map(Value::from),
        2 => any::<String>().prop_map(Value::from),
        2 => prop::sample::select(odd).prop_map(Value::from),
        2 => (word, word).prop_map(|(a, b)| Value::from(format!("{a}\0{b}"))),
    ]
    .boxed()
}

/// Values for `schema` (refs resolved through `document`): mostly of its type and within
/// its enum, now and then anything at all.
fn value_for(document: &Document, schema: &Value, ids: &[i64], depth: u32) -> BoxedStrategy<Value> {
    let schema = document.resolve(schema);
    let alternatives = ["oneOf", "anyOf", "allOf"]
        .iter()
        .find_map(|k| schema[*k].as_array())
        .filter(|a| !a.is_empty());
    let shaped = if let Some(alternatives) = alternatives {
        // One alternative at a time (for allOf a rough cut: the parts are not merged).
        let choices: Vec<BoxedStrategy<Value>> = alternatives
            .iter()
            .map(|s| value_for(document, s, ids, depth))
            .collect();
        one_of(choices)
    } else if let Some(words) = schema["enum"].as_array().filter(|w| !w.is_empty()) {
        prop::sample::select(words.clone()).boxed()
    } else {
        let types: Vec<String> = match &schema["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let choices: Vec<BoxedStrategy<Value>> = types
            .iter()
            .map(|t| match t.as_str() {
                "null" => Just(Value::Null).boxed(),
                "boolean" => any::<bool>().prop_map(Value::from).boxed(),
                "integer" | "number" => integer(ids),
                "string" => text(),
                "array" if depth > 0 => prop::collection::vec(
                    value_for(document, &schema["items"], ids, depth - 1),
                    0..4,
                )
                .prop_map(Value::from)
                .boxed(),
                "object" if depth > 0 => object_for(document, schema, ids, depth - 1),
                _ => any_json(),
            })
            .collect();
        if choices.is_empty() {
            any_json()
        } else {
            one_of(choices)
        }
    };
    prop_oneof![8 => shaped, 1 => any_json()].boxed()
}

fn one_of(choices: Vec<BoxedStrategy<Value>>) -> BoxedStrategy<Value> {
    let weighted: Vec<(u32, BoxedStrategy<Value>)> = choices.into_iter().map(|c| (1, c)).collect();
    prop::strategy::Union::new_weighted(weighted).boxed()
}

/// An object with the schema's fields (required ones nearly always, others half the time)
/// and now and then a field the schema does not have.
fn object_for(
    document: &Document,
    schema: &Value,
    ids: &[i64],
    depth: u32,
) -> BoxedStrategy<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .iter()
        .map(|(name, property)| {
            let presence = if required.contains(&name.as_str()) {
                0.95
            } else {
                0.5
            };
            let name = name.clone();
            prop::option::weighted(
                presence,
                value_for(document, property, ids, depth).prop_map(move |v| (name.clone(), v)),
            )
            .boxed()
        })
        .collect();
    let extra = prop::option::weighted(0.05, ("[a-z_]{1,8}", any_json()));
    (fields, extra)
        .prop_map(|(fields, extra)| {
            Value::Object(fields.into_iter().flatten().chain(extra).collect())
        })
        .boxed()
}

/// Path ids a client might send by mistake or on purpose, and now and then a real one.
fn path_id(real: String) -> BoxedStrategy<String> {
    let odd: Vec<String> = [
        "-1",
        "0",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "99999999999999999999999",
        "1.5",
        "1e3",
        "0x10",
        " 1",
        "abc",
        "null",
        "ü",
        "😀",
        "%",
        "\0",
        "a/b",
        "00000000000000000000000000000000",
        "0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF-0123-4567-89AB-CDEF01234567",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    prop_oneof![
        6 => prop::sample::select(odd),
        // "." and ".." are dot-segments: the client resolves them away, so the request
        // would go to another route than the operation's.
        2 => any::<String>().prop_filter("a non-empty segment", |s| {
            !s.is_empty() && s != "." && s != ".."
        }),
        1 => Just(real),
    ]
    .boxed()
}

/// Cursors that decode (base64url of `key|id`, as `pagination` makes them) but carry keys
/// and ids a page never ended on: times at the edges, huge counts, ids of the wrong kind.
fn cursor() -> BoxedStrategy<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let keys = vec![
        "2026-01-01T00:00:00Z",
        "0000-01-01T00:00:00-23:59",
        "9999-12-31T23:59:59+00:00",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999",
        "",
        "\0",
    ];
    let ids = vec![
        "1",
        "-1",
        "9223372036854775807",
        "0123456789abcdef0123456789abcdef",
        "x",
        "",
    ];
    (prop::sample::select(keys), prop::sample::select(ids))
        .prop_map(|(key, id)| URL_SAFE_NO_PAD.encode(format!("{key}|{id}")))
        .boxed()
}

/// A query string of the operation's parameters (and now and then an unknown one).
fn query_for(document: &Document, operation: &Operation, ids: &[i64]) -> BoxedStrategy<String> {
    let parameters: Vec<BoxedStrategy<Option<(String, String)>>> = operation
        .query_parameters()
        .into_iter()
        .chain([("unknown".to_owned(), json!({"type": "string"}))])
        .map(|(name, schema)| {
            let presence = if name == "unknown" { 0.05 } else { 0.5 };
            let as_text = |v: Value| match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let values = if name == "cursor" {
                prop_oneof![3 => cursor(), 1 => value_for(document, &schema, ids, 0).prop_map(as_text)].boxed()
            } else {
                prop_oneof![
                    3 => value_for(document, &schema, ids, 0).prop_map(as_text),
                    1 => any::<String>(),
                ]
                .boxed()
            };
            prop::option::weighted(presence, values.prop_map(move |v| (name.clone(), v))).boxed()
        })
        .collect();
    parameters
        .prop_map(|pairs| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs.into_iter().flatten() {
                query.append_pair(&name, &value);
            }
            query.finish()
        })
        .boxed()
}

/// Sends one request and holds the answer to the rules of this file; returns the status.
async fn probe(
    app: &TestApp,
    document: &Document,
    operation: &Operation,
    path: &str,
    body: Option<Value>,
) -> u16 {
    let shown = body.as_ref().map(Value::to_string).unwrap_or_default();
    let case = format!("{} {path} {shown}", operation.method);
    let (status, answer) = call(app, operation.method.clone(), path, body).await;
    assert!(status < 500, "{case} answered {status}: {answer}");
    if status >= 400 {
        assert_error_body(&case, status, &answer);
    }
    if let Err(why) = document.check(operation, status, &answer) {
        panic!("{case} ({}): {why}", operation.name());
    }
    status
}

#[tokio::test]
async fn api_fuzz_random_bodies_ids_and_queries_never_cause_a_server_error() {
    let app = TestApp::spawn().await;
    let fixture = Fixture::build(&app).await;
    let document = Document::fetch(&app).await;
    let ids = [
        fixture.project_id,
        fixture.issue_id,
        fixture.incident_id,
        fixture.rule_id,
        fixture.key_id,
    ];
    let mut runner = TestRunner::new(Config::default());
    // Deleting goes last, so the other operations meet the fixture's real rows.
    let mut operations = document.operations.clone();
    operations.sort_by_key(|op| (op.method == Method::DELETE, op.path.clone()));
    for operation in &operations {
        let body_strategy = operation
            .body_schema()
            .map(|schema| value_for(&document, schema, &ids, 3));
        let draw_body = |runner: &mut TestRunner| {
            body_strategy
                .as_ref()
                .map(|s| s.new_tree(runner).expect("a body").current())
        };

        // Bodies, on real ids. A body that gets past parsing (a 2xx, 404, 409 or 422 rather
        // than a 400) shows the generator reaches the handler's own checks.
        let mut past_parsing = 0;
        if body_strategy.is_some() {
            for _ in 0..BODY_CASES {
                let body = draw_body(&mut runner);
                let status = probe(
                    &app,
                    &document,
                    operation,
                    &fixture.path(&operation.path),
                    body,
                )
                .await;
                past_parsing += usize::from(status != 400);
            }
            assert!(
                past_parsing > 0,
                "{}: every random body was refused as malformed",
                operation.name()
            );
        }

        // Path ids, one parameter at a time (the others real).
        let parameters = operation.path.matches('{').count();
        for target in 0..parameters {
            for _ in 0..PATH_CASES {
                let path = fill(&operation.path, |resource, index| {
                    let real = fixture.id_after(resource);
                    if index == target {
                        path_id(real)
                            .new_tree(&mut runner)
                            .expect("an id")
                            .current()
                    } else {
                        real
                    }
                });
                let body = draw_body(&mut runner);
                probe(&app, &document, operation, &path, body).await;
            }
        }

        // Query strings.
        if !operation.query_parameters().is_empty() {
            let queries = query_for(&document, operation, &ids);
            for _ in 0..QUERY_CASES {
                let query = queries.new_tree(&mut runner).expect("a query").current();
                let path = format!("{}?{query}", fixture.path(&operation.path));
                probe(&app, &document, operation, &path, None).await;
            }
        }
    }
    app.stop().await;
}

/// What the fuzz found: text with a NUL reached PostgreSQL (which cannot store one) and
/// came back as a 500. Each is now refused where it enters.
#[tokio::test]
async fn api_fuzz_text_with_nul_is_refused_before_the_database() {
    let app = TestApp::spawn().await;
    let fixture = Fixture::build(&app).await;
    let project = format!("/api/v1/projects/{}", fixture.project_id);
    let cases = [
        (
            Method::PATCH,
            format!("/api/v1/issues/{}", fixture.issue_id),
            Some(json!({"status": "resolved", "in_release": "1.0\u{0}"})),
            422,
        ),
        (
            Method::POST,
            "/api/v1/projects".to_owned(),
            Some(json!({"slug": "nul", "name": "a\u{0}b"})),
            422,
        ),
        (
            Method::PATCH,
            project.clone(),
            Some(json!({"name": "a\u{0}b"})),
            422,
        ),
        (
            Method::GET,
            format!("{project}/issues?query=a%00b"),
            None,
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = call(&app, method.clone(), &path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert_error_body(&format!("{method} {path}"), status, &answer);
    }
    // Nothing was half-done: the issue is still unresolved, no project was created.
    let (_, issue) = call(
        &app,
        Method::GET,
        &format!("/api/v1/issues/{}", fixture.issue_id),
        None,
    )
    .await;
    assert_eq!(issue["status"], "unresolved");
    let (_, projects) = call(&app, Method::GET, "/api/v1/projects", None).await;
    assert_eq!(
        projects["items"].as_array().map(Vec::len),
        Some(1),
        "{projects}"
    );
    app.stop().await;
}
