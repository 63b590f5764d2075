//! Log records → error events.
//!
//! A record carrying `exception.*` attributes is an exception, whatever its severity; a record
//! of severity ERROR (17) or above without them is a message event. Anything else is ordinary
//! logging and is not Seismo's business. A record whose trace or span id has the wrong length
//! is rejected (and reported back in `partial_success`).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{json, Value};

use super::attributes::{self, Origin};
use super::exception::{self, Found};
use crate::ingest::received::Received;
use crate::model::{ErrorEvent, Level};

#[derive(Debug, Default)]
pub struct Extracted {
    pub events: Vec<ErrorEvent>,
    pub accepted: i64,
    pub rejected: i64,
}

pub fn extract(request: &ExportLogsServiceRequest, received: Received) -> Extracted {
    let mut extracted = Extracted::default();
    for resource_logs in &request.resource_logs {
        let origin = Origin::of(resource_logs.resource.as_ref());
        for scope_logs in &resource_logs.scope_logs {
            for record in &scope_logs.log_records {
                if !ids_are_valid(record) {
                    extracted.rejected += 1;
                    continue;
                }
                extracted.accepted += 1;
                if let Some(event) =
                    error_event(&origin, scope_logs.scope.as_ref(), record, received)
                {
                    extracted.events.push(event);
                }
            }
        }
    }
    extracted
}

/// Ids are optional in logs, but when present they must have their OTLP lengths.
fn ids_are_valid(record: &LogRecord) -> bool {
    matches!(record.trace_id.len(), 0 | 16) && matches!(record.span_id.len(), 0 | 8)
}

fn error_event(
    origin: &Origin,
    scope: Option<&InstrumentationScope>,
    record: &LogRecord,
    received: Received,
) -> Option<ErrorEvent> {
    let level = level(record);
    let is_exception = exception::has_exception(&record.attributes);
    if !is_exception && level < Level::Error {
        return None;
    }
    let escaped = attributes::bool_value(&record.attributes, "exception.escaped") == Some(true);
    let time = if record.time_unix_nano > 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    let found = Found {
        origin,
        attributes: &record.attributes,
        span_attributes: &[],
        time_unix_nano: time,
        trace_id: &record.trace_id,
        span_id: &record.span_id,
        level,
        // Below fatal, the application logged the error and went on: it handled it.
        handled: level < Level::Fatal && !escaped,
        message: record
            .body
            .as_ref()
            .and_then(attributes::any_text)
            .filter(|m| !m.is_empty()),
        transaction: None,
        payload: payload(origin, scope, record),
    };
    Some(exception::to_event(found, received))
}

/// OTLP severity numbers: 1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–20 error,
/// 21–24 fatal; unset (0) falls back to the severity text.
fn level(record: &LogRecord) -> Level {
    match record.severity_number {
        21.. => Level::Fatal,
        17..=20 => Level::Error,
        13..=16 => Level::Warning,
        9..=12 => Level::Info,
        1..=8 => Level::Debug,
        _ => Level::from_name(&record.severity_text).unwrap_or(Level::Info),
    }
}

fn payload(origin: &Origin, scope: Option<&InstrumentationScope>, record: &LogRecord) -> Value {
    json!({
        "resource": origin.attributes,
        "scope": scope.map(|s| json!({"name": s.name, "version": s.version})),
        "log_record": {
            "time_unix_nano": record.time_unix_nano,
            "observed_time_unix_nano": record.observed_time_unix_nano,
            "severity_number": record.severity_number,
            "severity_text": record.severity_text,
            "body": record.body.as_ref().map(attributes::any_json),
            "attributes": attributes::map(&record.attributes),
            "trace_id": hex::encode(&record.trace_id),
            "span_id": hex::encode(&record.span_id),
            "event_name": record.event_name,
        },
    })
}
