//! OTLP attributes (`KeyValue` lists of `AnyValue`) read as text and JSON, and the resource
//! attributes Seismo keys on: the service, its version, environment, host and language.
//! Names follow the OpenTelemetry semantic conventions.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{json, Map, Value};

/// Attributes kept as tags, at most; the full set stays in the payload.
const MAX_TAGS: usize = 50;
const MAX_TAG_VALUE: usize = 200;

/// The value of attribute `key`, as text (numbers and booleans rendered).
pub fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(any_text)
        .filter(|t| !t.is_empty())
}

pub fn bool_value(attributes: &[KeyValue], key: &str) -> Option<bool> {
    match attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        Any::BoolValue(b) => Some(*b),
        Any::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

/// Scalars as text; arrays and maps as compact JSON.
pub fn any_text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        other => Some(any_json_value(other).to_string()),
    }
}

pub fn any_json(value: &AnyValue) -> Value {
    value
        .value
        .as_ref()
        .map(any_json_value)
        .unwrap_or(Value::Null)
}

fn any_json_value(value: &Any) -> Value {
    match value {
        Any::StringValue(s) => json!(s),
        Any::BoolValue(b) => json!(b),
        Any::IntValue(i) => json!(i),
        Any::DoubleValue(d) => json!(d),
        Any::ArrayValue(array) => Value::Array(array.values.iter().map(any_json).collect()),
        Any::KvlistValue(list) => map(&list.values),
        Any::BytesValue(bytes) => json!(hex::encode(bytes)),
        // Indexes into a dictionary only profiles use; nothing to resolve them against here.
        Any::StringValueStrindex(index) => json!(index),
    }
}

/// Attributes as a JSON object (for the stored payload).
pub fn map(attributes: &[KeyValue]) -> Value {
    let object: Map<String, Value> = attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(any_json).unwrap_or(Value::Null),
            )
        })
        .collect();
    Value::Object(object)
}

/// Attributes as tags, skipping those `skip` rejects; long values are cut.
pub fn tags<'a>(
    sources: impl IntoIterator<Item = &'a [KeyValue]>,
    skip: impl Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for kv in sources.into_iter().flatten() {
        if tags.len() >= MAX_TAGS || skip(&kv.key) {
            continue;
        }
        if let Some(value) = kv.value.as_ref().and_then(any_text) {
            tags.insert(kv.key.clone(), value.chars().take(MAX_TAG_VALUE).collect());
        }
    }
    tags
}

/// What the resource says about where telemetry came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub service: Option<String>,
    pub version: Option<String>,
    pub environment: Option<String>,
    pub host: Option<String>,
    /// `telemetry.sdk.language`: picks the stack-trace format.
    pub language: Option<String>,
    pub attributes: Value,
}

impl Origin {
    pub fn of(resource: Option<&Resource>) -> Origin {
        let attributes = resource
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        Origin {
            service: text(attributes, "service.name"),
            version: text(attributes, "service.version"),
            // The stable name first, then the one older SDKs still send.
            environment: text(attributes, "deployment.environment.name")
                .or_else(|| text(attributes, "deployment.environment")),
            host: text(attributes, "host.name"),
            language: text(attributes, "telemetry.sdk.language"),
            attributes: map(attributes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    #[test]
    fn resource_attributes_name_the_origin() {
        let resource = Resource {
            attributes: vec![
                kv("service.name", Any::StringValue("checkout".into())),
                kv("service.version", Any::StringValue("1.4.2".into())),
                kv(
                    "deployment.environment",
                    Any::StringValue("old-name".into()),
                ),
                kv("host.name", Any::StringValue("web-1".into())),
                kv("telemetry.sdk.language", Any::StringValue("python".into())),
            ],
            ..Default::default()
        };
        let origin = Origin::of(Some(&resource));
        assert_eq!(origin.service.as_deref(), Some("checkout"));
        assert_eq!(origin.version.as_deref(), Some("1.4.2"));
        assert_eq!(origin.environment.as_deref(), Some("old-name"));
        assert_eq!(origin.host.as_deref(), Some("web-1"));
        assert_eq!(origin.language.as_deref(), Some("python"));
    }

    #[test]
    fn the_stable_environment_name_wins() {
        let attributes = vec![
            kv("deployment.environment", Any::StringValue("old".into())),
            kv(
                "deployment.environment.name",
                Any::StringValue("new".into()),
            ),
        ];
        let resource = Resource {
            attributes,
            ..Default::default()
        };
        assert_eq!(
            Origin::of(Some(&resource)).environment.as_deref(),
            Some("new")
        );
    }

    #[test]
    fn values_render_as_text_and_json() {
        let attributes = vec![
            kv("n", Any::IntValue(7)),
            kv("b", Any::BoolValue(true)),
            kv("s", Any::StringValue("x".into())),
        ];
        assert_eq!(text(&attributes, "n").as_deref(), Some("7"));
        assert_eq!(bool_value(&attributes, "b"), Some(true));
        assert_eq!(map(&attributes), json!({"n": 7, "b": true, "s": "x"}));
        let tags = tags([attributes.as_slice()], |k| k == "s");
        assert_eq!(tags.len(), 2);
    }
}
