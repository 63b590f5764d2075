//! Spans → exceptions and request counts.
//!
//! Every span is one request of its service; a span with status ERROR, or with an exception
//! event, is a failed one — together they make the service's error-rate series. Each span event
//! named `exception` (or ending in `.exception`) becomes an error event. A span whose trace or
//! span id has the wrong length (or is all zero) breaks the protocol: it is rejected (and reported back in
//! `partial_success`), the rest of the request is kept.

use std::collections::BTreeMap;

use chrono::{DurationRound, TimeDelta};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{span, Span};
use serde_json::{json, Value};

use super::attributes::{self, Origin};
use super::exception::{self, Found};
use crate::ingest::received::Received;
use crate::model::SpanTally;
use crate::model::{ErrorEvent, Level};

/// `Status.code` of a failed span.
const STATUS_ERROR: i32 = 2;

#[derive(Debug, Default)]
pub struct Extracted {
    pub events: Vec<ErrorEvent>,
    pub spans: Vec<SpanTally>,
    pub accepted: i64,
    pub rejected: i64,
}

pub fn extract(request: &ExportTraceServiceRequest, received: Received) -> Extracted {
    let mut extracted = Extracted::default();
    let mut per_service: BTreeMap<Option<String>, (i64, i64)> = BTreeMap::new();
    for resource_spans in &request.resource_spans {
        let origin = Origin::of(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                if !ids_are_valid(span) {
                    extracted.rejected += 1;
                    continue;
                }
                extracted.accepted += 1;
                let exceptions: Vec<&span::Event> =
                    span.events.iter().filter(|e| is_exception(e)).collect();
                let failed = span.status.as_ref().is_some_and(|s| s.code == STATUS_ERROR)
                    || !exceptions.is_empty();
                let counts = per_service.entry(origin.service.clone()).or_default();
                counts.0 += 1;
                counts.1 += i64::from(failed);
                for event in exceptions {
                    let payload = payload(&origin, scope_spans.scope.as_ref(), span, event);
                    extracted.events.push(exception::to_event(
                        found(&origin, span, event, payload),
                        received,
                    ));
                }
            }
        }
    }
    let minute = received
        .at
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap_or(received.at);
    extracted.spans = per_service
        .into_iter()
        .map(|(service, (requests, failed))| SpanTally {
            project_id: received.project_id,
            service,
            minute,
            requests,
            failed,
        })
        .collect();
    extracted
}

/// A span must have a trace id of 16 bytes and a span id of 8, neither all zero.
fn ids_are_valid(span: &Span) -> bool {
    span.trace_id.len() == 16
        && span.span_id.len() == 8
        && !exception::present(&span.trace_id).is_empty()
        && !exception::present(&span.span_id).is_empty()
}

fn is_exception(event: &span::Event) -> bool {
    event.name == "exception" || event.name.ends_with(".exception")
}

fn found<'a>(
    origin: &'a Origin,
    span: &'a Span,
    event: &'a span::Event,
    payload: Value,
) -> Found<'a> {
    Found {
        origin,
        attributes: &event.attributes,
        span_attributes: &span.attributes,
        time_unix_nano: event.time_unix_nano,
        trace_id: &span.trace_id,
        span_id: &span.span_id,
        level: Level::Error,
        // An exception that escaped the span was not handled by the code the span covers.
        handled: attributes::bool_value(&event.attributes, "exception.escaped") != Some(true),
        message: None,
        transaction: Some(span.name.clone()).filter(|n| !n.is_empty()),
        payload,
    }
}

/// What is kept of the original: the resource, scope, span and event, as JSON.
fn payload(
    origin: &Origin,
    scope: Option<&InstrumentationScope>,
    span: &Span,
    event: &span::Event,
) -> Value {
    json!({
        "resource": origin.attributes,
        "scope": scope.map(|s| json!({"name": s.name, "version": s.version})),
        "span": {
            "trace_id": hex::encode(&span.trace_id),
            "span_id": hex::encode(&span.span_id),
            "parent_span_id": hex::encode(&span.parent_span_id),
            "name": span.name,
            "kind": span.kind,
            "start_time_unix_nano": span.start_time_unix_nano,
            "end_time_unix_nano": span.end_time_unix_nano,
            "status": span.status.as_ref().map(|s| json!({"code": s.code, "message": s.message})),
            "attributes": attributes::map(&span.attributes),
        },
        "event": {
            "name": event.name,
            "time_unix_nano": event.time_unix_nano,
            "attributes": attributes::map(&event.attributes),
        },
    })
}
