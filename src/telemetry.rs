//! Seismo's own logs and traces.
//!
//! ```text
//!  tracing spans/events ─┬─► fmt layer (SEISMO_LOG filter) ─► stderr, text or JSON
//!                        └─► OpenTelemetry layer ─► batch thread ─► OTLP/HTTP exporter
//!                            (only when OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set)
//! ```
//!
//! Self-tracing follows the standard OpenTelemetry variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_PROTOCOL` = `http/protobuf` |
//! `http/json`, `OTEL_SERVICE_NAME`, …), so Seismo can send its spans to any collector or to
//! a Seismo — itself included, in a project of its own. When no endpoint is set there is no
//! OpenTelemetry layer at all: the spans Seismo declares are at debug level, which the log
//! filter normally disables at their call sites, so they cost nothing.
//!
//! The exporter uses its blocking HTTP client on the batch processor's own thread: its async
//! client would need a Tokio runtime inside that thread (DESIGN.md §8).

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// Whether spans are being exported: only then is an incoming `traceparent` worth parsing.
static EXPORTING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("cannot start the OTLP span exporter: {0}")]
    Exporter(String),
}

/// Where Seismo's spans go, read from the standard OpenTelemetry variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The endpoint variable that was set (for the start-up log line; never its headers).
    pub endpoint: String,
    pub json: bool,
}

/// Self-tracing settings from the environment (`var` reads a variable): `None` when no
/// OTLP endpoint is set. gRPC is refused rather than silently sent over HTTP.
pub fn export_from(var: impl Fn(&str) -> Option<String>) -> Result<Option<Export>, TelemetryError> {
    let set = |key: &str| var(key).filter(|v| !v.trim().is_empty());
    let Some(endpoint) =
        set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
    else {
        return Ok(None);
    };
    let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled || matches!(set("OTEL_TRACES_EXPORTER").as_deref(), Some("none")) {
        return Ok(None);
    }
    let protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    let json = match protocol.as_str() {
        "http/protobuf" => false,
        "http/json" => true,
        other => {
            return Err(TelemetryError::Invalid {
                key: "OTEL_EXPORTER_OTLP_PROTOCOL",
                problem: format!(
                    "{other:?} is not supported for Seismo's own traces; use http/protobuf or http/json"
                ),
            })
        }
    };
    Ok(Some(Export { endpoint, json }))
}

/// Flushes and stops the span exporter when the command ends.
#[must_use = "keep it until the command ends, then call shutdown to flush the last spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "the span exporter did not shut down cleanly");
            }
        }
    }
}

/// Installs the global subscriber: logs filtered by `filter`, plus span export when the
/// OpenTelemetry variables ask for it. A second call (tests) keeps the first subscriber.
pub fn init(filter: &str, format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let export = export_from(|key| std::env::var(key).ok())?;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let (traces, provider) = match &export {
        Some(export) => {
            let provider = tracer_provider(export)?;
            (Some(span_layer(&provider)), Some(provider))
        }
        None => (None, None),
    };
    let installed = Registry::default()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
    }
    if let (true, Some(export)) = (installed, &export) {
        tracing::info!(endpoint = %export.endpoint, json = export.json, "exporting Seismo's own traces over OTLP");
    }
    Ok(Telemetry {
        provider: provider.filter(|_| installed),
    })
}

fn tracer_provider(export: &Export) -> Result<SdkTracerProvider, TelemetryError> {
    let protocol = match export.json {
        true => opentelemetry_otlp::Protocol::HttpJson,
        false => opentelemetry_otlp::Protocol::HttpBinary,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    // The default builder reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; without a
    // name of the user's, the service is "seismo".
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("seismo");
    }
    let resource = resource.build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Seismo's spans (debug level and above: requests, writer batches, detection passes) and
/// the log events inside them at info and above, which become span events.
fn span_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let tracer = provider.tracer("seismo");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter::filter_fn(|meta| {
            if meta.is_span() {
                meta.target().starts_with("seismo") && *meta.level() <= Level::DEBUG
            } else {
                *meta.level() <= Level::INFO
            }
        }))
}

/// Makes `span` a child of the caller's trace when the request carries a W3C
/// `traceparent` (and `tracestate`); `header` looks a request header up by name. Does
/// nothing unless spans are exported.
pub fn continue_remote_trace<'a>(span: &tracing::Span, header: impl Fn(&str) -> Option<&'a str>) {
    if !EXPORTING.load(Ordering::Relaxed) || span.is_disabled() {
        return;
    }
    let headers = Headers {
        traceparent: header("traceparent").map(str::to_owned),
        tracestate: header("tracestate").map(str::to_owned),
    };
    if headers.traceparent.is_none() {
        return;
    }
    let context = TraceContextPropagator::new().extract(&headers);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The two W3C trace-context headers of a request.
struct Headers {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent.as_deref(),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(vars: &[(&str, &str)]) -> Result<Option<Export>, TelemetryError> {
        export_from(|key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(export(&[]).expect("valid"), None);
        assert_eq!(
            export(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).expect("valid"),
            None
        );
        assert_eq!(
            export(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_TRACES_EXPORTER", "none")
            ])
            .expect("valid"),
            None
        );
        assert_eq!(
            export(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_SDK_DISABLED", "true")
            ])
            .expect("valid"),
            None
        );
    }

    #[test]
    fn the_traces_endpoint_and_protocol_win_over_the_generic_ones() {
        let chosen = export(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://b:4318/v1/traces",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ])
        .expect("valid")
        .expect("exporting");
        assert_eq!(chosen.endpoint, "http://b:4318/v1/traces");
        assert!(chosen.json);
    }

    #[test]
    fn grpc_is_refused_with_the_key_named() {
        let error = export(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .expect_err("grpc")
        .to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{error}");
    }
}
