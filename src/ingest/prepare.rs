//! From an event's payload to the row it is stored as: read, scrub, group, compress.
//!
//! ```text
//! Sentry / native JSON text ─► sentry::members::read ─(declined)─► sentry::event::parse_received
//!                                      │                                   │
//! other sources' ErrorEvent ───────────┴──────────► scrub ─► group ─► NewEvent (zstd)
//! ```
//!
//! Grouping sees the scrubbed event: two events that differ only in a secret (another
//! user's password, another session's token) are one issue, and no secret can leak into a
//! title, a culprit or a fingerprint.
//!
//! The stored payload is made from the received text whenever there is one that reads as
//! the parsed payload: serializing a parsed payload again costs as much as parsing it.

use crate::grouping;
use crate::ingest::received::Received;
use crate::ingest::sentry::event::{self, EventError};
use crate::ingest::sentry::members::{self, EventText};
use crate::model::ErrorEvent;
use crate::scrub::{self, Scrubbed};
use crate::store::dictionaries::Dictionary;
use crate::store::events::{Member, NewEvent, ReceivedPayload};
use crate::store::StoreError;

/// An event ready for the writer.
#[derive(Debug)]
pub struct Prepared {
    pub row: NewEvent,
    /// How many values scrubbing replaced.
    pub scrubbed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A Sentry event payload (also Seismo's native JSON): read member by member when the
/// reader takes the text, else parsed whole. Both give the same row.
pub fn sentry_event(
    text: &[u8],
    received: Received,
    settings: &scrub::Settings,
    dictionary: Option<&Dictionary>,
) -> Result<Prepared, PrepareError> {
    match members::read(text, received, settings) {
        Some(EventText {
            event,
            members,
            rebuilt,
        }) => {
            let stored = StoredText::Members {
                text,
                members: &members,
                rebuilt: &rebuilt,
            };
            Ok(finish(event, settings, stored, dictionary)?)
        }
        None => sentry_event_as_tree(text, received, settings, dictionary),
    }
}

/// [`sentry_event`] building the payload's whole tree, whatever the text.
pub fn sentry_event_as_tree(
    text: &[u8],
    received: Received,
    settings: &scrub::Settings,
    dictionary: Option<&Dictionary>,
) -> Result<Prepared, PrepareError> {
    let (event, exact) = event::parse_received(text, received)?;
    // Parsing strips NULs, and keeps the last of a repeated key's values: the payload
    // then differs from the text, which is not stored as it is.
    let stored = match exact {
        true => StoredText::Exact(text),
        false => StoredText::None,
    };
    Ok(finish(event, settings, stored, dictionary)?)
}

/// An event some other source (OTLP, say) has already normalized.
pub fn normalized_event(
    mut event: ErrorEvent,
    settings: &scrub::Settings,
    dictionary: Option<&Dictionary>,
) -> Result<Prepared, StoreError> {
    // The Sentry readers strip NULs as they parse; other sources' events may hold them.
    event.remove_nul();
    finish(event, settings, StoredText::None, dictionary)
}

/// What the stored payload is made from, besides the event's (scrubbed) payload tree.
enum StoredText<'a> {
    /// Nothing: the tree is serialized.
    None,
    /// The text the whole tree was parsed from, exactly.
    Exact(&'a [u8]),
    /// The text [`members::read`] split; the tree holds the `rebuilt` members only.
    Members {
        text: &'a [u8],
        members: &'a [Member<'a>],
        rebuilt: &'a [String],
    },
}

fn finish(
    mut event: ErrorEvent,
    settings: &scrub::Settings,
    stored: StoredText<'_>,
    dictionary: Option<&Dictionary>,
) -> Result<Prepared, StoreError> {
    let scrubbed = scrub::scrub_event_parts(&mut event, settings);
    let received = match stored {
        StoredText::None => None,
        StoredText::Exact(text) => received_payload(text, &scrubbed),
        StoredText::Members {
            text,
            members,
            rebuilt,
        } => Some(ReceivedPayload {
            text,
            members: Some(members),
            changed_members: rebuilt,
        }),
    };
    let grouping = grouping::group(&event);
    let row = NewEvent::with_received_payload(event, grouping, received, dictionary)?;
    Ok(Prepared {
        row,
        scrubbed: scrubbed.payload + scrubbed.fields,
    })
}

/// The received text of a whole parsed payload, once scrubbing has run: `None` when
/// scrubbing changed something it could not name a top-level member for (only a payload
/// that is not an object), which leaves no text to patch. Every change to an object
/// payload is named by its member, and a Sentry event always is one.
fn received_payload<'a>(text: &'a [u8], scrubbed: &'a Scrubbed) -> Option<ReceivedPayload<'a>> {
    let patchable = scrubbed.payload == 0 || !scrubbed.changed_members.is_empty();
    patchable.then_some(ReceivedPayload {
        text,
        members: None,
        changed_members: &scrubbed.changed_members,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::ingest::sentry::tree;
    use crate::model::{ProjectId, Source};
    use crate::store::events::decompress;

    fn received() -> Received {
        Received {
            project_id: ProjectId(1),
            source: Source::Sentry,
            at: chrono::Utc
                .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
                .single()
                .expect("valid time"),
            // Fixed, so that both readers give an event without an id the same one.
            envelope_event_id: Some(uuid::Uuid::from_u128(7)),
        }
    }

    /// A JSON text's tree, with objects that may repeat a key.
    #[derive(Debug, Clone)]
    enum Json {
        Leaf(Value),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
    }

    impl Json {
        fn write(&self, out: &mut String, spaced: bool) {
            let comma = if spaced { ", " } else { "," };
            match self {
                Json::Leaf(value) => out.push_str(&value.to_string()),
                Json::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(comma);
                        }
                        item.write(out, spaced);
                    }
                    out.push(']');
                }
                Json::Object(members) => {
                    out.push('{');
                    for (i, (key, value)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push_str(comma);
                        }
                        out.push_str(&Value::from(key.as_str()).to_string());
                        out.push_str(if spaced { ": " } else { ":" });
                        value.write(out, spaced);
                    }
                    out.push('}');
                }
            }
        }
    }

    /// Keys normalizing reads, keys scrubbing looks for, and others.
    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "event_id",
            "timestamp",
            "level",
            "message",
            "logentry",
            "formatted",
            "exception",
            "values",
            "type",
            "value",
            "module",
            "mechanism",
            "handled",
            "stacktrace",
            "frames",
            "function",
            "filename",
            "abs_path",
            "lineno",
            "in_app",
            "tags",
            "contexts",
            "trace",
            "trace_id",
            "fingerprint",
            "transaction",
            "culprit",
            "release",
            "service",
            "user",
            "request",
            "env",
            "ip_address",
            "REMOTE_ADDR",
            "password",
            "Authorization",
            "headers",
            "vars",
            "note",
            "\u{e9}",
            "quo\"te",
        ])
        .prop_map(str::to_owned)
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            Just(Value::from(4_111_111_111_111_111_u64)),
            Just(Value::from(1_795_604_400.5)),
            prop::sample::select(vec![
                "plain",
                "error",
                "30",
                "42",
                "service",
                "2026-11-25T10:00:00",
                "9ec79c33ec9942ab8353589fcb2e04dc",
                "Bearer abcdefghijklmnopqrstuvwx",
                "4111 1111 1111 1111",
                "https://me:hunter2@example.com/x",
                "login password=hunter2&user=bob",
                "10.0.0.1",
                "{{auto}}",
                "[Filtered]",
                "tab\tand \"quote\"",
                "nul\u{0}",
            ])
            .prop_map(Value::from),
        ]
    }

    fn json() -> impl Strategy<Value = Json> {
        leaf()
            .prop_map(Json::Leaf)
            .prop_recursive(4, 48, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                    prop::collection::vec((key(), inner.clone()), 0..2).prop_map(|pairs| {
                        // `[name, value]` pairs, as Sentry sends headers.
                        Json::Array(
                            pairs
                                .into_iter()
                                .map(|(k, v)| Json::Array(vec![Json::Leaf(k.into()), v]))
                                .collect(),
                        )
                    }),
                    prop::collection::vec((key(), inner), 0..5).prop_map(Json::Object),
                ]
            })
    }

    /// An object of the members given (`None`: left out).
    fn object(members: Vec<(&str, Option<Json>)>) -> Json {
        Json::Object(
            members
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect(),
        )
    }

    fn some(strategy: impl Strategy<Value = Json>) -> impl Strategy<Value = Option<Json>> {
        prop::option::weighted(0.7, strategy)
    }

    fn scalar() -> impl Strategy<Value = Json> {
        leaf().prop_map(Json::Leaf)
    }

    /// A Sentry exception, every field normalizing reads in place (or not), beside others.
    fn exception() -> impl Strategy<Value = Json> {
        let frame = (
            some(scalar()),
            some(scalar()),
            some(scalar()),
            some(scalar()),
            some(scalar()),
            some(scalar()),
            some(json()),
        )
            .prop_map(
                |(function, module, filename, abs_path, lineno, in_app, vars)| {
                    object(vec![
                        ("function", function),
                        ("module", module),
                        ("filename", filename),
                        ("abs_path", abs_path),
                        ("lineno", lineno),
                        ("in_app", in_app),
                        ("vars", vars),
                    ])
                },
            );
        (
            some(scalar()),
            some(scalar()),
            some(scalar()),
            some(scalar()),
            prop::collection::vec(frame, 0..4),
            some(json()),
        )
            .prop_map(|(ty, value, module, handled, frames, data)| {
                let mechanism = object(vec![("handled", handled)]);
                let stacktrace = object(vec![("frames", Some(Json::Array(frames)))]);
                object(vec![
                    ("type", ty),
                    ("value", value),
                    ("module", module),
                    ("mechanism", Some(mechanism)),
                    ("stacktrace", Some(stacktrace)),
                    ("data", data),
                ])
            })
    }

    /// The members normalizing reads deep inside, in the shapes SDKs send them.
    fn deep_members() -> impl Strategy<Value = Vec<(String, Json)>> {
        let exceptions = prop::collection::vec(exception(), 0..3).boxed();
        let exception_member = prop_oneof![
            exceptions
                .clone()
                .prop_map(|list| object(vec![("values", Some(Json::Array(list)))])),
            exceptions.prop_map(Json::Array),
            exception(),
        ];
        let trace = (some(scalar()), some(scalar()))
            .prop_map(|(id, span)| object(vec![("trace_id", id), ("span_id", span)]));
        let contexts = (some(trace), some(json()))
            .prop_map(|(trace, os)| object(vec![("trace", trace), ("os", os)]));
        let logentry = (some(scalar()), some(scalar()), some(json()))
            .prop_map(|(formatted, message, params)| {
                object(vec![
                    ("formatted", formatted),
                    ("message", message),
                    ("params", params),
                ])
            })
            .boxed();
        (
            some(exception_member),
            some(contexts),
            some(logentry.clone()),
            some(logentry),
        )
            .prop_map(|(exception, contexts, logentry, message)| {
                let members = [
                    ("exception", exception),
                    ("contexts", contexts),
                    ("logentry", logentry),
                    ("message", message),
                ];
                members
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                    .collect()
            })
    }

    fn settings() -> impl Strategy<Value = scrub::Settings> {
        let default = scrub::Settings::default();
        prop::sample::select(vec![
            default.clone(),
            scrub::Settings {
                keep_ip_addresses: true,
                ..default.clone()
            },
            scrub::Settings {
                enabled: false,
                ..default.clone()
            },
            scrub::Settings {
                extra_keys: vec!["note".to_owned()],
                safe_keys: vec!["password".to_owned()],
                ..default
            },
        ])
    }

    /// The row without its compressed bytes, and the document those hold.
    fn opened(prepared: &Prepared) -> (Value, Value, usize) {
        let mut row = serde_json::to_value(&prepared.row).expect("a row serializes");
        row["data"] = Value::Null;
        let json = decompress(&prepared.row.data, None).expect("the document reads back");
        let document = tree::parse(&json).expect("the document is JSON");
        assert!(
            !document.repeated_keys,
            "{}",
            String::from_utf8_lossy(&json)
        );
        (row, document.value, prepared.scrubbed)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Ingestion's whole storing rule. The whole-tree way stores a payload that reads
        /// back as exactly the scrubbed tree; reading the event member by member gives the
        /// same row: the same event, grouping and scrub count, and a stored document that
        /// reads back as the same JSON (with no repeated key).
        #[test]
        fn reading_members_gives_the_row_the_whole_tree_gives(
            mut members in prop::collection::vec((key(), json()), 0..6),
            deep in deep_members(),
            spaced in any::<bool>(),
            settings in settings(),
        ) {
            members.extend(deep);
            let keys: Vec<String> = members.iter().map(|(k, _)| k.clone()).collect();
            let mut text = String::new();
            Json::Object(members).write(&mut text, spaced);
            let read = members::read(text.as_bytes(), received(), &settings);
            let fast = sentry_event(text.as_bytes(), received(), &settings, None)
                .map(|p| opened(&p));
            let whole = sentry_event_as_tree(text.as_bytes(), received(), &settings, None)
                .map(|p| opened(&p));
            // What is stored reads back as exactly the scrubbed tree, whatever the text's
            // spacing and whichever members scrubbing changed.
            if let (Ok((_, document, _)), Ok(mut scrubbed)) =
                (&whole, event::parse(text.as_bytes(), received()))
            {
                scrub::scrub_event_parts(&mut scrubbed, &settings);
                prop_assert_eq!(document.get("payload"), Some(&scrubbed.payload));
            }
            prop_assert_eq!(fast.map_err(|e| e.to_string()), whole.map_err(|e| e.to_string()));
            // Only texts the reader cannot take go the other way: a NUL, a top-level key
            // with an escape, or one repeated.
            let repeated = keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k));
            let declined = text.contains("\\u0000") || keys.contains(&"quo\"te".to_owned()) || repeated;
            prop_assert!(read.is_some() || declined, "{}", text);
        }
    }

    #[test]
    fn a_scrubbed_member_is_written_again_and_the_rest_kept_as_sent() {
        let text = br#"{"user": {"id": "7", "ip_address": "10.0.0.1"}, "extra": {"k":  "v"},
            "exception": {"values": [{"type": "E", "value": "x",
              "stacktrace": {"frames": [{"function": "f", "vars": {"password": "hunter2"}}]}}]}}"#;
        let read = members::read(text, received(), &scrub::Settings::default()).expect("read");
        assert_eq!(read.rebuilt, ["user", "exception"]);
        let prepared =
            sentry_event(text, received(), &scrub::Settings::default(), None).expect("prepared");
        assert_eq!(prepared.scrubbed, 2);
        let json = decompress(&prepared.row.data, None).expect("reads back");
        let json = String::from_utf8(json).expect("UTF-8");
        assert!(json.contains(r#""extra":{"k":  "v"}"#), "{json}");
        assert!(json.contains(r#""ip_address":"[Filtered]""#), "{json}");
        assert!(json.contains(r#""password":"[Filtered]""#), "{json}");
    }
}
