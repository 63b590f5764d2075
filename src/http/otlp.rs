//! OTLP/HTTP: `POST /v1/logs`, `/v1/traces`, `/v1/metrics`, on the main listener and on the
//! OTLP listener (4318 by default, the exporters' default port).
//!
//! Answers follow the OTLP/HTTP spec: the response is encoded like the request (protobuf or
//! JSON); success is an `Export*ServiceResponse` (`{}` in JSON) with `partial_success` when
//! records were rejected; failures carry a `google.rpc.Status` body; 429/503 carry
//! `Retry-After`, and only then should an exporter retry.
//! See <https://opentelemetry.io/docs/specs/otlp/#otlphttp>.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;
use serde_json::{json, Value};

use super::error::ingest_error_parts;
use super::extract::{header_text, ingestion_key, IngestBody};
use super::AppState;
use crate::ingest::otlp::{self, Exported, Format, OtlpRequest, Signal};
use crate::ingest::IngestError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
}

async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    IngestBody(body): IngestBody,
) -> Response {
    export(&state, &headers, body, Signal::Logs).await
}

async fn traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    IngestBody(body): IngestBody,
) -> Response {
    export(&state, &headers, body, Signal::Traces).await
}

async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    IngestBody(body): IngestBody,
) -> Response {
    export(&state, &headers, body, Signal::Metrics).await
}

async fn export(
    state: &AppState,
    headers: &HeaderMap,
    body: bytes::Bytes,
    signal: Signal,
) -> Response {
    let format =
        match Format::from_content_type(header_text(headers, header::CONTENT_TYPE).as_deref()) {
            Ok(format) => format,
            // The request's encoding is unknown; answer in JSON, which a person can read.
            Err(error) => return failure(&error, Format::Json),
        };
    let request = OtlpRequest {
        key: ingestion_key(headers),
        format,
        content_encoding: header_text(headers, header::CONTENT_ENCODING),
        body,
    };
    let started = std::time::Instant::now();
    let result = match signal {
        Signal::Logs => otlp::export_logs(&state.ingest, request).await,
        Signal::Traces => otlp::export_traces(&state.ingest, request).await,
        Signal::Metrics => otlp::export_metrics(&state.ingest, request).await,
    };
    state
        .metrics
        .ingest_request_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(exported) => success(&exported, signal, format),
        Err(error) => failure(&error, format),
    }
}

fn success(exported: &Exported, signal: Signal, format: Format) -> Response {
    match format {
        Format::Protobuf => {
            let body = match signal {
                Signal::Logs => exported.logs_response().encode_to_vec(),
                Signal::Traces => exported.traces_response().encode_to_vec(),
                // An empty ExportMetricsServiceResponse encodes to no bytes.
                Signal::Metrics => Vec::new(),
            };
            encoded(StatusCode::OK, format, body)
        }
        Format::Json => encoded(
            StatusCode::OK,
            format,
            success_json(exported, signal).to_string().into_bytes(),
        ),
    }
}

fn success_json(exported: &Exported, signal: Signal) -> Value {
    let rejected_field = match signal {
        Signal::Logs => "rejectedLogRecords",
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
    };
    match exported.rejected {
        0 => json!({}),
        rejected => json!({"partialSuccess": {
            rejected_field: rejected,
            "errorMessage": exported.message.clone().unwrap_or_default(),
        }}),
    }
}

/// `google.rpc.Status`, the error body OTLP/HTTP prescribes.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn failure(error: &IngestError, format: Format) -> Response {
    let (status, _, retry_after) = ingest_error_parts(error);
    let rpc = RpcStatus {
        code: error.grpc_code(),
        message: error.to_string(),
    };
    let body = match format {
        Format::Protobuf => rpc.encode_to_vec(),
        Format::Json => json!({"code": rpc.code, "message": rpc.message})
            .to_string()
            .into_bytes(),
    };
    let mut response = encoded(status, format, body);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn encoded(status: StatusCode, format: Format, body: Vec<u8>) -> Response {
    let content_type = match format {
        Format::Protobuf => "application/x-protobuf",
        Format::Json => "application/json",
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}
