//! OTLP/HTTP protobuf bodies (logs, then traces), decoded and turned into events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use seismo::ingest::otlp::{logs, traces};
use seismo::model::Source;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ExportLogsServiceRequest::decode(data) {
        for event in logs::extract(&request, common::received(Source::OtlpHttp)).events {
            common::store_path(event);
        }
    }
    if let Ok(request) = ExportTraceServiceRequest::decode(data) {
        for event in traces::extract(&request, common::received(Source::OtlpHttp)).events {
            common::store_path(event);
        }
    }
});
