//! OTLP: OpenTelemetry logs and traces → error events, and spans → request counts.
//!
//! ```text
//! OTLP/HTTP body ─ decompress ─ decode (protobuf | JSON) ─┐
//! OTLP/gRPC message (decoded by tonic) ───────────────────┴─► logs::extract / traces::extract
//!     ─► ErrorEvents (exception span events, exception or ERROR log records) + SpanTallies
//!     ─► grouping, quota, writer (one commit for the request's events and counts)
//! ```
//!
//! Exceptions go through the same grouping and writer as Sentry events; their stack traces
//! (`exception.stacktrace`, the language's own text) are parsed into frames by
//! [`stacktrace`]. Records that break the protocol (ids of the wrong length) are rejected one
//! by one and reported in the answer's `partial_success`, the rest are kept.

pub mod attributes;
pub mod exception;
pub mod logs;
pub mod stacktrace;
pub mod traces;

use bytes::Bytes;
use chrono::Utc;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::received::Received;
use super::{decompress_body, Ingest, IngestError};
use crate::model::SpanTally;
use crate::model::{ErrorEvent, Source};
use crate::store::projects::KeyGrant;

/// How an OTLP/HTTP body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// `application/x-protobuf`, `application/protobuf` or `application/json` (parameters
    /// such as `charset` are ignored); anything else is refused with 415.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Format, IngestError> {
        let essence = content_type
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            other => Err(IngestError::UnsupportedMediaType(format!(
                "content type {other:?} is not OTLP (application/x-protobuf or application/json)"
            ))),
        }
    }
}

/// What the HTTP layer extracted from an OTLP/HTTP request.
#[derive(Debug)]
pub struct OtlpRequest {
    pub key: Option<String>,
    pub format: Format,
    pub content_encoding: Option<String>,
    pub body: Bytes,
}

/// A successful export: how many records were rejected, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exported {
    pub rejected: i64,
    pub message: Option<String>,
}

impl Exported {
    fn partial(&self) -> Option<(i64, String)> {
        (self.rejected > 0).then(|| (self.rejected, self.message.clone().unwrap_or_default()))
    }

    /// The OTLP answer to a logs export (`partial_success` only when something was rejected).
    pub fn logs_response(&self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: self.partial().map(|(rejected_log_records, error_message)| {
                ExportLogsPartialSuccess {
                    rejected_log_records,
                    error_message,
                }
            }),
        }
    }

    /// The OTLP answer to a traces export.
    pub fn traces_response(&self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: self.partial().map(|(rejected_spans, error_message)| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        }
    }
}

/// Which OTLP signal, for metrics and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Traces,
    Metrics,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }
}

/// `POST /v1/logs`.
pub async fn export_logs(ingest: &Ingest, request: OtlpRequest) -> Result<Exported, IngestError> {
    let (grant, decoded) = open::<ExportLogsServiceRequest>(ingest, request).await?;
    logs(ingest, &grant, &decoded, Source::OtlpHttp).await
}

/// `POST /v1/traces`.
pub async fn export_traces(ingest: &Ingest, request: OtlpRequest) -> Result<Exported, IngestError> {
    let (grant, decoded) = open::<ExportTraceServiceRequest>(ingest, request).await?;
    traces(ingest, &grant, &decoded, Source::OtlpHttp).await
}

/// `POST /v1/metrics`: accepted and counted, not stored (Seismo's series come from spans).
pub async fn export_metrics(
    ingest: &Ingest,
    request: OtlpRequest,
) -> Result<Exported, IngestError> {
    decompress_body(request.content_encoding, request.body).await?;
    ingest.authorize(request.key.as_deref(), None).await?;
    ingest
        .metrics()
        .count_otlp(Signal::Metrics.as_str(), "ignored", 1);
    Ok(Exported::default())
}

/// Authorizes, decompresses and decodes an OTLP/HTTP body.
async fn open<M>(ingest: &Ingest, request: OtlpRequest) -> Result<(KeyGrant, M), IngestError>
where
    M: prost::Message + Default + serde::de::DeserializeOwned,
{
    let grant = ingest.authorize(request.key.as_deref(), None).await?;
    let body = decompress_body(request.content_encoding, request.body).await?;
    let decoded = match request.format {
        Format::Protobuf => M::decode(body.as_ref())
            .map_err(|e| IngestError::Malformed(format!("invalid OTLP protobuf: {e}"))),
        Format::Json => serde_json::from_slice(&body).map_err(|e| {
            IngestError::Malformed(format!("invalid OTLP JSON: {e}").replace('\n', " "))
        }),
    }?;
    Ok((grant, decoded))
}

/// Stores the errors of decoded logs (from either transport).
pub async fn logs(
    ingest: &Ingest,
    grant: &KeyGrant,
    request: &ExportLogsServiceRequest,
    source: Source,
) -> Result<Exported, IngestError> {
    let extracted = logs::extract(request, received(grant, source));
    store(ingest, grant, source, extracted.events, Vec::new()).await?;
    count(ingest, Signal::Logs, extracted.accepted, extracted.rejected);
    Ok(exported(extracted.rejected, "log records"))
}

/// Stores the errors and request counts of decoded traces (from either transport).
pub async fn traces(
    ingest: &Ingest,
    grant: &KeyGrant,
    request: &ExportTraceServiceRequest,
    source: Source,
) -> Result<Exported, IngestError> {
    let extracted = traces::extract(request, received(grant, source));
    store(ingest, grant, source, extracted.events, extracted.spans).await?;
    count(
        ingest,
        Signal::Traces,
        extracted.accepted,
        extracted.rejected,
    );
    Ok(exported(extracted.rejected, "spans"))
}

fn received(grant: &KeyGrant, source: Source) -> Received {
    Received {
        project_id: grant.project_id,
        source,
        at: Utc::now(),
        envelope_event_id: None,
    }
}

async fn store(
    ingest: &Ingest,
    grant: &KeyGrant,
    source: Source,
    events: Vec<ErrorEvent>,
    spans: Vec<SpanTally>,
) -> Result<(), IngestError> {
    // An event that fails to prepare is counted invalid there; its siblings go on.
    let prepared: Vec<_> = events
        .into_iter()
        .filter_map(|e| ingest.prepare_event(e, &grant.scrub).ok())
        .collect();
    if prepared.is_empty() && spans.is_empty() {
        return Ok(());
    }
    ingest
        .accept_with_spans(grant, source, prepared, spans)
        .await
        .map(drop)
}

fn count(ingest: &Ingest, signal: Signal, accepted: i64, rejected: i64) {
    ingest
        .metrics()
        .count_otlp(signal.as_str(), "accepted", accepted);
    ingest
        .metrics()
        .count_otlp(signal.as_str(), "rejected", rejected);
}

fn exported(rejected: i64, what: &str) -> Exported {
    Exported {
        rejected,
        message: (rejected > 0)
            .then(|| format!("{rejected} {what} had a trace or span id of the wrong length")),
    }
}
