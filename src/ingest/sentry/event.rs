//! A Sentry event payload (JSON) → [`ErrorEvent`].
//!
//! SDKs of every language and age send the same fields in different shapes, so this reads a
//! `serde_json::Value` field by field and accepts every shape real SDKs emit: timestamps as
//! floats or RFC 3339, tags as a map or as pairs, `exception` as `{values}` or a list
//! (read by `super::exception`), `message` as a string or a logentry, numeric levels. Only
//! "not a JSON object" is fatal; a field in an unknown shape is treated as absent (the
//! original stays in the payload).
//! See <https://develop.sentry.dev/sdk/data-model/event-payloads/>.
//!
//! [`parse_received`] builds the whole payload's tree; ingestion first tries
//! `super::members`, which builds only what [`event_of`] reads ([`NORMALIZED_MEMBERS`]).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::exception::{self, Exceptions};
use crate::ingest::received::plausible_timestamp;
use crate::ingest::received::Received;
use crate::model::event::remove_nul_in_json;
use crate::model::{ErrorEvent, Exception, Level};

/// Bounds that keep one event's cost predictable; the full data stays in the payload.
const MAX_TAG_VALUE: usize = 200;
const MAX_FIELD: usize = 250;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event is not valid JSON: {0}")]
    Json(String),
    #[error("event must be a JSON object")]
    NotAnObject,
}

pub fn parse(payload: &[u8], received: Received) -> Result<ErrorEvent, EventError> {
    parse_received(payload, received).map(|(event, _)| event)
}

/// Like [`parse`], and also says whether `event.payload` is exactly what the text says:
/// no NUL was stripped and no object repeated a key. Only then may the text be stored in
/// place of the payload.
pub fn parse_received(
    payload: &[u8],
    received: Received,
) -> Result<(ErrorEvent, bool), EventError> {
    let tree =
        super::tree::parse(payload).map_err(|e| EventError::Json(super::envelope::one_line(&e)))?;
    let mut value = tree.value;
    // Walking the whole tree for a NUL the text cannot hold was a measurable share of
    // ingest CPU.
    let may_hold_nul = may_hold_nul(payload);
    if may_hold_nul {
        remove_nul_in_json(&mut value);
    }
    let exact = !may_hold_nul && !tree.repeated_keys;
    Ok((normalize(value, received)?, exact))
}

/// Normalizes an already-parsed payload.
pub fn from_value(mut value: Value, received: Received) -> Result<ErrorEvent, EventError> {
    remove_nul_in_json(&mut value);
    normalize(value, received)
}

/// A NUL in JSON text: escaped as `\u0000`, the only way JSON text can hold one (the
/// parser refuses raw control characters). The pattern cannot fail to compile; were it to,
/// `None` makes every text suspect, which is only slower.
static ESCAPED_NUL: LazyLock<Option<regex::bytes::Regex>> =
    LazyLock::new(|| regex::bytes::Regex::new(r"\\u0000").ok());

/// Whether parsing the JSON text may give strings with a NUL (which [`parse`] strips, so
/// the payload then differs from the text).
pub(super) fn may_hold_nul(json: &[u8]) -> bool {
    ESCAPED_NUL.as_ref().is_none_or(|re| re.is_match(json))
}

/// The event of a payload without NULs.
fn normalize(value: Value, received: Received) -> Result<ErrorEvent, EventError> {
    let Value::Object(object) = &value else {
        return Err(EventError::NotAnObject);
    };
    let exceptions = exception::from_value(object.get("exception"));
    let mut event = event_of(object, exceptions, received);
    event.payload = value;
    Ok(event)
}

/// Every payload member [`event_of`] reads but `exception` (which `super::exception` reads
/// from text or tree alike), with the keys it reads inside it at any depth (`None`: all of
/// it). A tree pruned to these reads as the whole payload does: a reader of the received
/// text builds only them (see `super::members`). Whoever makes normalizing read one more
/// field adds it here; `ingest::prepare`'s test that both readers give the same row checks
/// it.
pub const NORMALIZED_MEMBERS: &[(&str, Option<&[&str]>)] = &[
    ("event_id", None),
    ("timestamp", None),
    ("level", None),
    ("platform", None),
    ("release", None),
    ("environment", None),
    ("service", None),
    ("tags", None),
    ("logentry", Some(&["formatted", "message"])),
    ("message", Some(&["formatted", "message"])),
    ("fingerprint", None),
    ("transaction", None),
    ("culprit", None),
    ("contexts", Some(&["trace", "trace_id"])),
];

/// The event an object payload describes, its exceptions read already, without the payload
/// itself (`Value::Null`: the caller sets it).
pub fn event_of(
    object: &Map<String, Value>,
    exceptions: Exceptions,
    received: Received,
) -> ErrorEvent {
    let tags = tags(object.get("tags"));
    ErrorEvent {
        event_id: str_field(object, "event_id")
            .and_then(|id| parse_event_id(&id))
            .or(received.envelope_event_id)
            .unwrap_or_else(Uuid::new_v4),
        project_id: received.project_id,
        source: received.source,
        received_at: received.at,
        timestamp: plausible_timestamp(object.get("timestamp").and_then(timestamp), received.at),
        level: object.get("level").and_then(level).unwrap_or(Level::Error),
        platform: str_field(object, "platform"),
        release: str_field(object, "release"),
        environment: str_field(object, "environment"),
        service: str_field(object, "service").or_else(|| service(&tags)),
        message: message(object),
        handled: !exceptions.unhandled,
        exceptions: exceptions.list,
        fingerprint: fingerprint(object.get("fingerprint")),
        transaction: str_field(object, "transaction").or_else(|| str_field(object, "culprit")),
        trace_id: object
            .get("contexts")
            .and_then(|c| c.get("trace"))
            .and_then(|t| t.get("trace_id"))
            .and_then(scalar_string),
        tags,
        payload: Value::Null,
    }
}

/// Accepts 32 hex digits with or without dashes, any case.
pub fn parse_event_id(text: &str) -> Option<Uuid> {
    Uuid::try_parse(text.trim()).ok().filter(|id| !id.is_nil())
}

/// Strings, numbers and booleans as text (SDKs send `release: 2` or `lineno: "10"`).
fn scalar_string(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    field_text(text)
}

/// A normalized field's text: absent when empty, cut to the field limit.
pub(super) fn field_text(text: String) -> Option<String> {
    (!text.is_empty()).then(|| truncate(text, MAX_FIELD))
}

fn str_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(scalar_string)
}

pub(super) fn truncate(mut text: String, max_chars: usize) -> String {
    // No more bytes than the limit is no more characters: nothing to count (the common
    // case, and counting ran for every field of every frame).
    if text.len() <= max_chars {
        return text;
    }
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
    }
    text
}

fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            let millis = (seconds * 1000.0).round();
            (millis.is_finite() && millis.abs() < 1e15)
                .then(|| Utc.timestamp_millis_opt(millis as i64).single())
                .flatten()
        }
        Value::String(s) => parse_time_text(s.trim()),
        _ => None,
    }
}

fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return timestamp(&Value::from(seconds));
    }
    // Older SDKs send naive UTC times: "2026-11-25T10:00:00" or with fractions.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

fn level(value: &Value) -> Option<Level> {
    match value {
        Value::String(s) => {
            Level::from_name(s).or_else(|| s.trim().parse::<f64>().ok().map(Level::from_number))
        }
        Value::Number(n) => n.as_f64().map(Level::from_number),
        _ => None,
    }
}

/// `message` is a string or a logentry object; `logentry` is the newer name.
fn message(object: &Map<String, Value>) -> Option<String> {
    ["logentry", "message"]
        .iter()
        .filter_map(|key| object.get(*key))
        .find_map(|value| match value {
            Value::Object(entry) => {
                str_field(entry, "formatted").or_else(|| str_field(entry, "message"))
            }
            other => scalar_string(other),
        })
}

/// A Sentry event's normalized exceptions, from its payload: what ingestion groups by, and
/// what readers show for a stored event (whose document does not repeat them; see
/// `store::events::stores_exceptions`).
pub fn exceptions_of(payload: &Value) -> Vec<Exception> {
    exception::from_value(payload.get("exception")).list
}

/// Tags as `{"k": "v"}` or `[["k", "v"], …]`; non-string values become text.
fn tags(value: Option<&Value>) -> BTreeMap<String, String> {
    let pairs: Vec<(String, &Value)> = match value {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|pair| match pair.as_array()?.as_slice() {
                [k, v] => Some((scalar_string(k)?, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                truncate(k.trim().to_owned(), MAX_TAG_VALUE),
                truncate(scalar_string(v)?, MAX_TAG_VALUE),
            ))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Sentry has no service field; the tag `service` (or OTel's `service.name`) names it.
/// (Seismo's native JSON has a top-level `service`, read before this.)
fn service(tags: &BTreeMap<String, String>) -> Option<String> {
    tags.get("service")
        .or_else(|| tags.get("service.name"))
        .cloned()
}

fn fingerprint(value: Option<&Value>) -> Option<Vec<String>> {
    let parts: Vec<String> = value?
        .as_array()?
        .iter()
        .filter_map(scalar_string)
        .collect();
    (!parts.is_empty()).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;
    use serde_json::json;

    fn received() -> Received {
        Received {
            project_id: crate::model::ProjectId(1),
            source: Source::Sentry,
            at: Utc
                .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
                .single()
                .expect("valid time"),
            envelope_event_id: None,
        }
    }

    fn parse_json(value: Value) -> ErrorEvent {
        parse(value.to_string().as_bytes(), received()).expect("valid event")
    }

    /// A stored Sentry event's exceptions are normalized again from its scrubbed payload
    /// (`store::events::stores_exceptions`): that must give what ingestion normalized and
    /// scrubbed, secrets filtered the same way.
    #[test]
    fn exceptions_from_the_scrubbed_payload_are_the_scrubbed_exceptions() {
        let settings = crate::scrub::Settings::default();
        let values = [
            json!("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl rejected"),
            json!("  card 4111 1111 1111 1111 declined  "),
            json!("login failed: password=hunter2&user=bob"),
            json!("postgres://app:s3cret@db:5432/shop unreachable"),
            json!(42),
            json!("plain 'discount'"),
        ];
        for value in values {
            let mut event = parse_json(json!({
                "exception": {"values": [
                    {"type": "KeyError", "value": "'cause'"},
                    {"type": "ValueError", "value": value, "module": "shop.orders",
                     "stacktrace": {"frames": [
                        {"function": "apply", "module": "shop.orders", "filename": "orders.py",
                         "lineno": 3, "in_app": true, "vars": {"password": "hunter2"}},
                    ]}},
                ]},
            }));
            crate::scrub::scrub_event_parts(&mut event, &settings);
            assert_eq!(exceptions_of(&event.payload), event.exceptions, "{value}");
        }
    }

    #[test]
    fn python_exception() {
        let event = parse_json(json!({
            "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
            "timestamp": 1795604400.5,
            "level": "error",
            "platform": "python",
            "release": "shop@1.2.0",
            "environment": "production",
            "tags": {"service": "checkout", "region": "eu"},
            "exception": {"values": [{
                "type": "KeyError", "value": "'user_id'", "module": "builtins",
                "mechanism": {"type": "excepthook", "handled": false},
                "stacktrace": {"frames": [
                    {"function": "main", "module": "app", "filename": "app.py", "lineno": 10, "in_app": true},
                    {"function": "get", "module": "shop.cart", "filename": "shop/cart.py", "lineno": "42", "in_app": true}
                ]}
            }]},
            "contexts": {"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}}
        }));
        assert_eq!(
            event.event_id.simple().to_string(),
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
        assert_eq!(event.timestamp.timestamp_millis(), 1_795_604_400_500);
        assert_eq!(event.release.as_deref(), Some("shop@1.2.0"));
        assert_eq!(event.service.as_deref(), Some("checkout"));
        assert!(!event.handled);
        let main = event.main_exception().expect("exception");
        assert_eq!(main.ty, "KeyError");
        assert_eq!(main.frames[1].lineno, Some(42));
        assert_eq!(main.frames[1].module.as_deref(), Some("shop.cart"));
        assert_eq!(
            event.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }

    #[test]
    fn lenient_shapes() {
        let event = parse_json(json!({
            "timestamp": "2026-11-25T10:00:00",
            "level": 30,
            "tags": [["a", "1"], ["b", 2], ["bad"]],
            "exception": [{"type": "ValueError", "value": 7}],
            "breadcrumbs": [{"message": "clicked"}],
            "logentry": {"message": "fmt %s", "formatted": "fmt x"},
            "fingerprint": ["{{ default }}", 42],
            "release": 3
        }));
        assert_eq!(
            event.timestamp,
            Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
                .single()
                .expect("t")
        );
        assert_eq!(event.level, Level::Warning);
        assert_eq!(event.tags.get("b").map(String::as_str), Some("2"));
        assert_eq!(event.tags.len(), 2);
        assert_eq!(event.exceptions[0].value.as_deref(), Some("7"));
        assert_eq!(event.message.as_deref(), Some("fmt x"));
        assert_eq!(
            event.fingerprint,
            Some(vec!["{{ default }}".to_owned(), "42".to_owned()])
        );
        assert_eq!(event.release.as_deref(), Some("3"));
        assert!(event.handled);
    }

    #[test]
    fn implausible_timestamps_fall_back_to_receipt() {
        let at = received().at;
        for stamp in [
            json!(-3e11),
            json!(1e14),
            json!(at.timestamp() - 31 * 86_400),
            json!(at.timestamp() + 3600),
        ] {
            let event = parse_json(json!({"timestamp": stamp}));
            assert_eq!(event.timestamp, at, "{stamp}");
        }
        let recent = parse_json(json!({"timestamp": at.timestamp() - 3600}));
        assert_eq!(recent.timestamp.timestamp(), at.timestamp() - 3600);
    }

    #[test]
    fn message_forms_and_defaults() {
        let event = parse_json(json!({"message": {"formatted": "disk full"}}));
        assert_eq!(event.message.as_deref(), Some("disk full"));
        assert_eq!(event.level, Level::Error);
        assert_eq!(event.timestamp, received().at);
        let plain = parse_json(json!({"message": "plain", "level": "WARN"}));
        assert_eq!(plain.message.as_deref(), Some("plain"));
        assert_eq!(plain.level, Level::Warning);
    }

    #[test]
    fn nul_characters_are_stripped() {
        let event = parse(
            br#"{"message":"a\u0000b","tags":{"k\u0000":"v"}}"#,
            received(),
        )
        .expect("valid");
        assert_eq!(event.message.as_deref(), Some("ab"));
        assert!(event.tags.contains_key("k"));
        assert!(!event.payload.to_string().contains("\\u0000"));
        assert!(may_hold_nul(br#"{"message":"a\u0000b"}"#));
    }

    #[test]
    fn only_text_with_an_escaped_nul_is_walked_for_nuls() {
        let text = br#"{"message":"a\u0001b"}"#;
        assert!(!may_hold_nul(text));
        let event = parse(text, received()).expect("valid");
        assert_eq!(event.message.as_deref(), Some("a\u{1}b"));
        // An escaped backslash, then "u0000": no NUL, and the text is kept; the check
        // errs on the side of walking.
        let text = br#"{"message":"a\\u0000b"}"#;
        assert!(may_hold_nul(text));
        let event = parse(text, received()).expect("valid");
        assert_eq!(event.message.as_deref(), Some(r"a\u0000b"));
    }

    #[test]
    fn envelope_event_id_is_the_fallback() {
        let id = Uuid::new_v4();
        let mut r = received();
        r.envelope_event_id = Some(id);
        assert_eq!(parse(b"{}", r).expect("valid").event_id, id);
    }

    #[test]
    fn not_an_event() {
        assert!(matches!(
            parse(b"[1,2]", received()),
            Err(EventError::NotAnObject)
        ));
        assert!(matches!(parse(b"{", received()), Err(EventError::Json(_))));
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        let keys = prop_oneof![
            Just("exception".to_owned()),
            Just("values".to_owned()),
            Just("stacktrace".to_owned()),
            Just("frames".to_owned()),
            Just("tags".to_owned()),
            Just("timestamp".to_owned()),
            Just("level".to_owned()),
            Just("message".to_owned()),
            Just("logentry".to_owned()),
            Just("fingerprint".to_owned()),
            Just("mechanism".to_owned()),
            Just("handled".to_owned()),
            Just("type".to_owned()),
            Just("value".to_owned()),
            Just("lineno".to_owned()),
            ".{0,6}",
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_json_object_normalizes_without_panicking(value in arbitrary_json()) {
            let result = from_value(value.clone(), received());
            proptest::prop_assert_eq!(result.is_ok(), value.is_object());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse(&bytes, received());
        }
    }
}
