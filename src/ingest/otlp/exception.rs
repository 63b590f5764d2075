//! One error found in OTLP data (a span's `exception` event, or a log record) → [`ErrorEvent`].
//!
//! The event id is derived from the trace and span ids and the exception itself, not drawn at
//! random: with the semantic conventions' `logs/dup` mode the same exception arrives once as a
//! span event and once as a log record, and both must land as one event (the writer stores an
//! event id once). The price: one exception raised twice, identically, inside one span is
//! stored once.

use chrono::{DateTime, TimeZone, Utc};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::attributes::{self, Origin};
use super::stacktrace;
use crate::ingest::received::{plausible_timestamp, Received};
use crate::model::{ErrorEvent, Exception, Level, ProjectId};

/// Exception messages and stack traces longer than these are cut (the grouping and the API
/// do not need more; a 1 MiB stack trace is a runaway recursion).
const MAX_MESSAGE: usize = 8 * 1024;
const MAX_STACKTRACE: usize = 256 * 1024;

/// An error as found, with its surroundings.
pub struct Found<'a> {
    pub origin: &'a Origin,
    /// The span event's or log record's own attributes (`exception.*` live here).
    pub attributes: &'a [KeyValue],
    /// The enclosing span's attributes, kept as tags (empty for logs).
    pub span_attributes: &'a [KeyValue],
    pub time_unix_nano: u64,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub level: Level,
    pub handled: bool,
    /// The log body, for log records without exception attributes.
    pub message: Option<String>,
    /// The span's name: the operation the error happened in.
    pub transaction: Option<String>,
    pub payload: Value,
}

/// True when the attributes describe an exception (semantic conventions `exception.*`).
pub fn has_exception(attributes: &[KeyValue]) -> bool {
    [
        "exception.type",
        "exception.message",
        "exception.stacktrace",
    ]
    .iter()
    .any(|key| attributes::text(attributes, key).is_some())
}

/// An all-zero trace or span id means "none" in OTLP: treat it as absent, or every such
/// exception would share one event id.
pub fn present(id: &[u8]) -> &[u8] {
    match id.iter().all(|b| *b == 0) {
        true => &[],
        false => id,
    }
}

pub fn to_event(mut found: Found<'_>, received: Received) -> ErrorEvent {
    found.trace_id = present(found.trace_id);
    found.span_id = present(found.span_id);
    let stacktrace = attributes::text(found.attributes, "exception.stacktrace");
    let exception = exception(&found, stacktrace.as_deref());
    let mut tags = attributes::tags([found.span_attributes, found.attributes], |key| {
        key.starts_with("exception.")
    });
    if let Some(host) = &found.origin.host {
        tags.insert("host".to_owned(), host.clone());
    }
    ErrorEvent {
        event_id: event_id(
            &found,
            received.project_id,
            exception.as_ref(),
            stacktrace.as_deref(),
        ),
        project_id: received.project_id,
        source: received.source,
        received_at: received.at,
        timestamp: plausible_timestamp(time(found.time_unix_nano), received.at),
        level: found.level,
        platform: found.origin.language.clone(),
        release: found.origin.version.clone(),
        environment: found.origin.environment.clone(),
        service: found.origin.service.clone(),
        message: found.message.clone(),
        exceptions: exception.into_iter().collect(),
        tags,
        fingerprint: None,
        transaction: found.transaction.clone(),
        trace_id: (!found.trace_id.is_empty()).then(|| hex::encode(found.trace_id)),
        handled: found.handled,
        payload: found.payload,
    }
}

fn exception(found: &Found<'_>, stacktrace: Option<&str>) -> Option<Exception> {
    if !has_exception(found.attributes) {
        return None;
    }
    let text = |key: &str| attributes::text(found.attributes, key);
    let frames = stacktrace
        .map(|trace| {
            stacktrace::parse(cut(trace, MAX_STACKTRACE), found.origin.language.as_deref())
        })
        .unwrap_or_default();
    Some(Exception {
        ty: text("exception.type").unwrap_or_else(|| "Error".to_owned()),
        value: text("exception.message").map(|m| cut(&m, MAX_MESSAGE).to_owned()),
        module: None,
        frames,
    })
}

fn cut(text: &str, max_bytes: usize) -> &str {
    match text
        .char_indices()
        .take_while(|(i, _)| *i <= max_bytes)
        .last()
    {
        Some((end, _)) if text.len() > max_bytes => &text[..end],
        _ => text,
    }
}

fn time(unix_nano: u64) -> Option<DateTime<Utc>> {
    let nanos = i64::try_from(unix_nano).ok().filter(|n| *n > 0)?;
    Some(Utc.timestamp_nanos(nanos))
}

/// Same trace, span and exception → same id. Without a span to tie it to, the time and
/// service make it unique instead; a message (no exception) always includes the time.
fn event_id(
    found: &Found<'_>,
    project_id: ProjectId,
    exception: Option<&Exception>,
    stacktrace: Option<&str>,
) -> Uuid {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(&project_id.get().to_be_bytes());
    part(found.trace_id);
    part(found.span_id);
    if found.span_id.is_empty() || exception.is_none() {
        part(&found.time_unix_nano.to_be_bytes());
        part(
            found
                .origin
                .service
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    match exception {
        Some(e) => {
            part(e.ty.as_bytes());
            part(e.value.as_deref().unwrap_or_default().as_bytes());
            part(stacktrace.unwrap_or_default().as_bytes());
        }
        None => part(found.message.as_deref().unwrap_or_default().as_bytes()),
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(Any::StringValue(value.into())),
            }),
        }
    }

    fn received() -> Received {
        Received {
            project_id: crate::model::ProjectId(1),
            source: crate::model::Source::OtlpHttp,
            at: Utc::now(),
            envelope_event_id: None,
        }
    }

    fn found<'a>(
        origin: &'a Origin,
        attributes: &'a [KeyValue],
        span_id: &'a [u8],
        time: u64,
    ) -> Found<'a> {
        Found {
            origin,
            attributes,
            span_attributes: &[],
            time_unix_nano: time,
            trace_id: &[7; 16],
            span_id,
            level: Level::Error,
            handled: true,
            message: None,
            transaction: None,
            payload: Value::Null,
        }
    }

    #[test]
    fn the_same_exception_in_one_span_has_one_id() {
        let origin = Origin::default();
        let attributes = [
            kv("exception.type", "KeyError"),
            kv("exception.message", "'id'"),
        ];
        let span_event = to_event(found(&origin, &attributes, &[1; 8], 1), received());
        let log_record = to_event(found(&origin, &attributes, &[1; 8], 2), received());
        assert_eq!(span_event.event_id, log_record.event_id);
        let other_span = to_event(found(&origin, &attributes, &[2; 8], 1), received());
        assert_ne!(span_event.event_id, other_span.event_id);
        assert_eq!(span_event.exceptions[0].ty, "KeyError");
        assert_eq!(
            span_event.trace_id.as_deref(),
            Some("07070707070707070707070707070707")
        );
    }

    #[test]
    fn without_a_span_the_time_separates_events() {
        let origin = Origin::default();
        let attributes = [kv("exception.type", "KeyError")];
        let first = to_event(found(&origin, &attributes, &[], 1), received());
        let second = to_event(found(&origin, &attributes, &[], 2), received());
        assert_ne!(first.event_id, second.event_id);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let text = "é".repeat(10);
        assert_eq!(cut(&text, 5), "éé");
        assert_eq!(cut("short", 10), "short");
    }
}
