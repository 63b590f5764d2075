//! The OpenAPI 3.1 document of the management API, served without auth at
//! `GET /api/v1/openapi.json` (it is public, like Sentry's).
//!
//! How it is made, so that it cannot drift from the code:
//! 1. Each resource's router registers its handlers with `utoipa_axum::routes!`, which routes
//!    a handler and adds its `#[utoipa::path]` annotation (path, parameters, body, answers)
//!    to the document in one call; schemas come from `#[derive(ToSchema)]` on the very types
//!    the handlers serialize and deserialize.
//! 2. [`finish`] then adds what holds for every operation, from the code that decides it:
//!    the bearer scheme with the scope [`super::auth::required_scope`] demands (the same
//!    function the `ApiToken` extractor calls), the 401/403/503 answers that extractor and
//!    the store can give, and `required` on every property of an answer's schema (answers
//!    always carry every field, `null` when empty: DESIGN.md §3.5).
//! 3. The result is serialized once; each request gets the same bytes.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, OpenApi, Ref, ResponseBuilder, Type};

use super::auth::required_scope;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::AppState;

pub const PATH: &str = "/api/v1/openapi.json";
const SECURITY_SCHEME: &str = "bearer";

/// What the document says before the resources add their paths.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Seismo management API",
        description = "Issues, events, incidents, detection rules, projects and statistics. \
            Every operation takes `Authorization: Bearer <api token>` (`seismo token create`); \
            the scope it needs is in its description and its security requirement. Lists \
            answer `{\"items\": [...], \"next_cursor\": \"…\" | null}`; errors answer \
            `{\"error\": {\"code\", \"message\"}}` with a stable `snake_case` code."
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// A string that is one of `words`: the values a handler accepts or answers.
pub fn one_of(words: &[&str]) -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(words.iter().copied()))
        .build()
}

/// [`one_of`], or `null` (an optional field of a request body).
pub fn one_of_or_null(words: &[&str]) -> utoipa::openapi::Object {
    let values = words.iter().map(|w| Value::from(*w)).chain([Value::Null]);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
        .build()
}

/// `schema` with a description: a query parameter drawn with `schema_with` loses its doc
/// comment, so it carries the words in its schema instead.
pub fn described(schema: utoipa::openapi::Object, text: &str) -> utoipa::openapi::Object {
    ObjectBuilder::from(schema).description(Some(text)).build()
}

/// The router serving the finished document.
pub fn router(api: OpenApi) -> Router<AppState> {
    let body = match finish(api) {
        Ok(document) => Some(Bytes::from(document.to_string())),
        Err(error) => {
            tracing::error!(%error, "the OpenAPI document could not be serialized");
            None
        }
    };
    Router::new().route(
        PATH,
        get(move || {
            let body = body.clone();
            async move { serve(body) }
        }),
    )
}

fn serve(body: Option<Bytes>) -> Response {
    match body {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
        .into_response(),
    }
}

/// Adds what every operation shares (see the module docs) and returns the JSON document.
pub fn finish(mut api: OpenApi) -> Result<Value, serde_json::Error> {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SECURITY_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token: `seismo token create <name>`."))
                .build(),
        ),
    );
    for (path, item) in api.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                secure(operation, &method, path);
            }
        }
    }
    let mut document = serde_json::to_value(&api)?;
    require_every_answer_field(&mut document);
    Ok(document)
}

/// The scope this operation needs, said twice: in the security requirement (OpenAPI 3.1
/// lets a non-OAuth requirement list roles) and in words; plus the answers of a refused
/// token and of an unreachable database.
fn secure(operation: &mut Operation, method: &Method, path: &str) {
    let scope = required_scope(method, path).as_str();
    operation.security = Some(vec![SecurityRequirement::new(SECURITY_SCHEME, [scope])]);
    let needs = format!("Needs an API token with scope `{scope}` (or a wider one).");
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{needs}"),
        _ => needs,
    });
    let common = [
        ("401", "No valid API token."),
        ("403", "The token's scope is too narrow."),
        ("503", "The database is unavailable (with `Retry-After`)."),
    ];
    for (status, description) in common {
        let answer = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert(answer.into());
    }
}

/// Marks every property of every object schema an answer can contain as required. Schemas
/// that a request body also uses are left alone: there, absent means "not given".
fn require_every_answer_field(document: &mut Value) {
    let mut in_requests = BTreeSet::new();
    let mut in_answers = BTreeSet::new();
    let mut request_roots = Vec::new();
    let mut answer_roots = Vec::new();
    for operation in operations(document) {
        if let Some(body) = operation.get("requestBody") {
            request_roots.push(body.clone());
        }
        if let Some(Value::Object(answers)) = operation.get("responses") {
            answer_roots.extend(answers.values().cloned());
        }
    }
    for root in &request_roots {
        referenced(document, root, &mut in_requests);
    }
    for root in &answer_roots {
        referenced(document, root, &mut in_answers);
    }
    if let Some(Value::Object(schemas)) = document.pointer_mut("/components/schemas") {
        for (name, schema) in schemas.iter_mut() {
            if in_answers.contains(name) && !in_requests.contains(name) {
                require_all(schema);
            }
        }
    }
    // Schemas written inline in an answer (not components).
    for operation in operations_mut(document) {
        if let Some(Value::Object(answers)) = operation.get_mut("responses") {
            for answer in answers.values_mut() {
                require_all(answer);
            }
        }
    }
}

fn operations(document: &Value) -> Vec<&Value> {
    let Some(Value::Object(paths)) = document.get("paths") else {
        return Vec::new();
    };
    paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .filter(|operation| operation.get("responses").is_some())
        .collect()
}

fn operations_mut(document: &mut Value) -> Vec<&mut Value> {
    let Some(Value::Object(paths)) = document.get_mut("paths") else {
        return Vec::new();
    };
    paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter(|operation| operation.get("responses").is_some())
        .collect()
}

/// Adds to `names` every component schema `value` refers to, directly or through others.
fn referenced(document: &Value, value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                if names.insert(name.to_owned()) {
                    if let Some(schema) = document.pointer(&format!("/components/schemas/{name}")) {
                        referenced(document, schema, names);
                    }
                }
            }
            for inner in map.values() {
                referenced(document, inner, names);
            }
        }
        Value::Array(items) => {
            for inner in items {
                referenced(document, inner, names);
            }
        }
        _ => {}
    }
}

/// Sets `required` to all `properties` in every object schema within `value` (refs are
/// followed by the caller, through the component list).
fn require_all(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                let names: Vec<Value> = properties.keys().cloned().map(Value::from).collect();
                map.insert("required".to_owned(), Value::Array(names));
            }
            for inner in map.values_mut() {
                require_all(inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(require_all),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        let (_, api) = super::super::openapi_router().split_for_parts();
        finish(api).expect("the document serializes")
    }

    fn each_operation(document: &Value, mut check: impl FnMut(&str, &str, &Value)) {
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("a path item") {
                check(path, method, operation);
            }
        }
    }

    #[test]
    fn every_operation_states_the_scope_auth_enforces() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        each_operation(&document, |path, method, operation| {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let scope = required_scope(&method, path).as_str();
            let case = format!("{method} {path}");
            assert_eq!(
                operation["security"],
                serde_json::json!([{ SECURITY_SCHEME: [scope] }]),
                "{case}"
            );
            let description = operation["description"].as_str().unwrap_or_default();
            assert!(description.contains(&format!("`{scope}`")), "{case}");
            for status in ["401", "403", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{case} {status}"
                );
            }
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_owned()), "{case}: operationId {id} twice");
        });
        assert!(ids.len() >= 20, "{ids:?}");
    }

    #[test]
    fn answers_require_every_field_and_requests_do_not() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        let required = |name: &str| -> Vec<String> {
            serde_json::from_value(schemas[name]["required"].clone()).unwrap_or_default()
        };
        // Answer fields that may be null are still always present.
        let issue = required("Issue");
        assert!(issue.iter().any(|f| f == "first_release"), "{issue:?}");
        assert!(required("ErrorBody").contains(&"error".to_owned()));
        // A request's optional field stays optional.
        let update = required("IssueUpdate");
        assert_eq!(update, vec!["status".to_owned()]);
    }
}
