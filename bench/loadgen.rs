//! `loadgen`: a closed-loop load generator for Seismo's ingestion endpoints.
//!
//! `--concurrency` tokio tasks each send one request after another until `--duration` seconds
//! pass or `--max-requests` have been sent. Seismo answers success only after COMMIT, so the
//! latency of a success is the ack latency of a durable write. After a 429/503 (gRPC
//! RESOURCE_EXHAUSTED/UNAVAILABLE) a task backs off (`Retry-After`, at most 1 s), as an SDK
//! would. Traffic goes to 127.0.0.1 only: any other host is refused.
//!
//! Modes (`--mode`):
//! - `sentry` (default): realistic ~6 KB Python exception events spread over `--groups`
//!   groups (exception type and in-app function names differ per group; line numbers, ids
//!   and values differ within a group), each in a Sentry envelope with a fresh event id,
//!   POSTed over one shared keep-alive client. Target: `--dsn`. With `--resend-every N`,
//!   every Nth request of a task sends its previous envelope again, byte for byte: an SDK
//!   retrying a request whose answer it lost, or a replay. Seismo stores the event once and
//!   answers 200; the report counts those requests as `resent`, apart from `accepted`.
//! - `otlp-http`: OTLP/HTTP protobuf `POST /v1/traces` with `x-seismo-key: --key`, over one
//!   shared keep-alive HTTP/1.1 client. Target: `--target` (default 127.0.0.1:4318).
//! - `otlp-grpc`: OTLP/gRPC `TraceService/Export` with `x-seismo-key` metadata, over
//!   `--grpc-connections` HTTP/2 connections (default one per task). Target: `--target`
//!   (default 127.0.0.1:4317).
//!
//! An OTLP request is one `ExportTraceServiceRequest` with one resource (a service, its
//! version and environment) holding `--spans-per-request` HTTP server spans, each with fresh
//! random trace and span ids. One span in `--exception-every` has status ERROR and an
//! `exception` event carrying a ~2 KB Python traceback; the exceptions rotate over
//! `--groups` exception types. The request builder ([`TraceBatches`]) is separate from the
//! two senders ([`OtlpHttp`], [`OtlpGrpc`]), so both transports send the same requests.
//!
//! Output is plain `name value` lines (see [`print_report`]), plus `interval <t> <rate>`
//! lines with `--report-every` (events/s for Sentry, spans/s for OTLP), for `bench/ingest.sh`
//! and `bench/otlp.sh` to parse.
//!
//! Run: `cargo run --release --example loadgen -- --dsn http://KEY@127.0.0.1:8000/1`
//! or `… -- --mode otlp-grpc --key KEY --target 127.0.0.1:4317`

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

#[path = "sentry_events.rs"]
mod sentry_events;
use sentry_events::{build_event, EXCEPTION_TYPES, ID_PLACEHOLDER, NOUNS, SERVICES, VERBS};

/// Envelopes pre-built per group; requests cycle through them.
const VARIANTS_PER_GROUP: usize = 4;
/// A constant seed so every run sends the same events (apart from the ids).
const SEED: u64 = 0x5e15_0000;
/// Longest back-off after a 429/503, whatever `Retry-After` says; also the back-off after a
/// gRPC RESOURCE_EXHAUSTED/UNAVAILABLE, which carries no delay.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Sentry envelopes to `/api/<id>/envelope/`.
    Sentry,
    /// OTLP/HTTP protobuf to `/v1/traces`.
    OtlpHttp,
    /// OTLP/gRPC `TraceService/Export`.
    OtlpGrpc,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for Seismo's ingestion endpoints"
)]
struct Args {
    /// What to send.
    #[arg(long, value_enum, default_value_t = Mode::Sentry)]
    mode: Mode,
    /// Sentry DSN of the target project, e.g. http://KEY@127.0.0.1:8000/1 (127.0.0.1 only).
    #[arg(long)]
    dsn: Option<String>,
    /// OTLP: the project key, sent as `x-seismo-key`.
    #[arg(long, required_if_eq_any([("mode", "otlp-http"), ("mode", "otlp-grpc")]))]
    key: Option<String>,
    /// OTLP: base URL or host:port (127.0.0.1 only); default 127.0.0.1:4318 for HTTP,
    /// 127.0.0.1:4317 for gRPC.
    #[arg(long)]
    target: Option<String>,
    /// OTLP: spans in each request.
    #[arg(long, default_value_t = 100)]
    spans_per_request: usize,
    /// OTLP: one span in this many has status ERROR and an `exception` event (0: none).
    #[arg(long, default_value_t = 10)]
    exception_every: usize,
    /// OTLP/gRPC: HTTP/2 connections the tasks share (0: one per task).
    #[arg(long, default_value_t = 0)]
    grpc_connections: usize,
    /// Requests in flight at once (one tokio task each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Distinct issue groups the events (Sentry) or exception types (OTLP) fall into.
    #[arg(long, default_value_t = 50)]
    groups: usize,
    /// Safety bound on the number of requests sent.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Sentry: every this many requests, a task sends its previous envelope again, same
    /// event id and all (0: never).
    #[arg(long, default_value_t = 0)]
    resend_every: usize,
    /// Send bodies gzip-compressed (`Content-Encoding: gzip`, gRPC message compression),
    /// compressed per request.
    #[arg(long)]
    gzip: bool,
    /// Also print the accepted rate (events/s, or spans/s for OTLP) every this many seconds
    /// (0: only the final report).
    #[arg(long, default_value_t = 0)]
    report_every: u64,
}

#[tokio::main]
async fn main() {
    if let Err(error) = run(Args::parse()).await {
        eprintln!("loadgen: {error:#}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.groups == 0 || args.duration == 0 {
        bail!("--concurrency, --groups and --duration must be positive");
    }
    let clients = match args.mode {
        Mode::Sentry => sentry_clients(&args)?,
        Mode::OtlpHttp | Mode::OtlpGrpc => otlp_clients(&args).await?,
    };
    let started = Instant::now();
    let tallies = run_tasks(&args, clients).await?;
    let elapsed = started.elapsed();
    print_report(args.mode, &merge(tallies), elapsed);
    Ok(())
}

/// One `Client` per task, all posting envelopes to the DSN's project.
fn sentry_clients(args: &Args) -> anyhow::Result<Vec<Client>> {
    let dsn = args
        .dsn
        .as_deref()
        .context("--dsn is required in sentry mode")?;
    let target = Arc::new(parse_dsn(dsn)?);
    let templates = Arc::new(build_templates(args.groups));
    print_sizes(&templates, args.gzip);
    let http = http_client(args.concurrency)?;
    Ok((0..args.concurrency)
        .map(|task| {
            Client::Sentry(SentryClient {
                http: http.clone(),
                target: target.clone(),
                templates: templates.clone(),
                gzip: args.gzip,
                next_template: task * 7,
                resend: Resend::every(args.resend_every),
            })
        })
        .collect())
}

/// One `Client` per task: its own request builder, and a sender over the chosen transport.
async fn otlp_clients(args: &Args) -> anyhow::Result<Vec<Client>> {
    let key = args
        .key
        .as_deref()
        .context("--key is required in OTLP modes")?;
    if args.spans_per_request == 0 {
        bail!("--spans-per-request must be positive");
    }
    let transports = match args.mode {
        Mode::OtlpHttp => http_transports(args, key)?,
        _ => grpc_transports(args, key).await?,
    };
    let corpus = Arc::new(TraceCorpus::build(
        args.groups,
        args.spans_per_request,
        args.exception_every,
    ));
    print_otlp_sizes(&corpus, args.gzip);
    Ok(transports
        .into_iter()
        .enumerate()
        .map(|(task, transport)| {
            Client::Otlp(Box::new(OtlpClient {
                batches: TraceBatches::new(corpus.clone(), task),
                transport,
            }))
        })
        .collect())
}

fn http_client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?)
}

// ---------------------------------------------------------------------------------------
// Targets

/// Parses `http://KEY@127.0.0.1:PORT/ID` into the envelope URL and auth header; refuses any
/// host but 127.0.0.1 so the benchmark never sends traffic elsewhere.
fn parse_dsn(dsn: &str) -> anyhow::Result<SentryTarget> {
    let url = reqwest::Url::parse(dsn).with_context(|| format!("invalid DSN {dsn:?}"))?;
    if url.scheme() != "http" {
        bail!("DSN scheme must be http, got {:?}", url.scheme());
    }
    require_loopback(&url)?;
    let key = url.username();
    if key.is_empty() {
        bail!("DSN has no public key");
    }
    let project_id = url.path().trim_matches('/');
    if project_id.is_empty() || !project_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!(
            "DSN path must be the numeric project id, got {:?}",
            url.path()
        );
    }
    let port = url.port().unwrap_or(80);
    Ok(SentryTarget {
        url: format!("http://127.0.0.1:{port}/api/{project_id}/envelope/"),
        auth: format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=seismo-loadgen/1"),
    })
}

/// `--target` (`host:port` or `http://host:port`, default port `default_port`) as the base
/// URL `http://127.0.0.1:PORT`; refuses any other host, scheme or a path.
fn otlp_base(target: Option<&str>, default_port: u16) -> anyhow::Result<String> {
    let target = target.unwrap_or("127.0.0.1");
    let with_scheme = match target.contains("://") {
        true => target.to_owned(),
        false => format!("http://{target}"),
    };
    let url = reqwest::Url::parse(&with_scheme)
        .with_context(|| format!("invalid --target {target:?}"))?;
    if url.scheme() != "http" {
        bail!("--target scheme must be http, got {:?}", url.scheme());
    }
    require_loopback(&url)?;
    if url.path() != "/" && !url.path().is_empty() {
        bail!("--target is a base (host:port), got path {:?}", url.path());
    }
    Ok(format!(
        "http://127.0.0.1:{}",
        url.port().unwrap_or(default_port)
    ))
}

fn require_loopback(url: &reqwest::Url) -> anyhow::Result<()> {
    if url.host_str() != Some("127.0.0.1") {
        bail!(
            "refusing to send load to {:?}: only 127.0.0.1 is allowed",
            url.host_str()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Sentry events

/// One pre-serialized envelope and where its event-id placeholders sit.
struct Template {
    bytes: Vec<u8>,
    event_len: usize,
    id_offsets: Vec<usize>,
}

/// Builds `VARIANTS_PER_GROUP` envelopes for each of `groups` groups.
fn build_templates(groups: usize) -> Vec<Template> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let mut templates = Vec::with_capacity(groups * VARIANTS_PER_GROUP);
    for variant in 0..VARIANTS_PER_GROUP {
        for group in 0..groups {
            let event = build_event(group, variant, now, &mut rng);
            templates.push(envelope_template(&event));
        }
    }
    templates
}

/// Serializes the envelope once and records where the id placeholder sits.
fn envelope_template(event: &Value) -> Template {
    let payload = serde_json::to_vec(event).expect("a JSON value serializes");
    let mut bytes = Vec::with_capacity(payload.len() + 128);
    writeln!(bytes, "{}", json!({"event_id": ID_PLACEHOLDER})).expect("write to Vec");
    writeln!(
        bytes,
        "{}",
        json!({"type": "event", "length": payload.len()})
    )
    .expect("write to Vec");
    bytes.extend_from_slice(&payload);
    bytes.push(b'\n');
    let id_offsets = find_all(&bytes, ID_PLACEHOLDER.as_bytes());
    assert_eq!(
        id_offsets.len(),
        2,
        "the id appears in the header and the event"
    );
    Template {
        bytes,
        event_len: payload.len(),
        id_offsets,
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(offset, _)| offset)
        .collect()
}

/// The template with a fresh event id, gzip-compressed if asked.
fn request_body(template: &Template, gzip: bool) -> Vec<u8> {
    let mut body = template.bytes.clone();
    let id = uuid::Uuid::new_v4().simple().to_string();
    for &offset in &template.id_offsets {
        body[offset..offset + id.len()].copy_from_slice(id.as_bytes());
    }
    if gzip {
        return gzip_bytes(&body);
    }
    body
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("write to Vec");
    encoder.finish().expect("finish a Vec")
}

fn print_sizes(templates: &[Template], gzip: bool) {
    let n = templates.len();
    let event: usize = templates.iter().map(|t| t.event_len).sum();
    let envelope: usize = templates.iter().map(|t| t.bytes.len()).sum();
    println!("templates {n}");
    println!("event_avg_bytes {}", event / n);
    println!("envelope_avg_bytes {}", envelope / n);
    if gzip {
        let compressed: usize = templates.iter().map(|t| gzip_bytes(&t.bytes).len()).sum();
        println!("gzip_body_avg_bytes {}", compressed / n);
    }
}

// ---------------------------------------------------------------------------------------
// Sentry sender

/// Where and how to post envelopes, from the DSN.
struct SentryTarget {
    url: String,
    auth: String,
}

/// One task's Sentry requests: envelopes cycled from the shared templates.
struct SentryClient {
    http: reqwest::Client,
    target: Arc<SentryTarget>,
    templates: Arc<Vec<Template>>,
    gzip: bool,
    next_template: usize,
    resend: Resend,
}

impl SentryClient {
    async fn send_one(&mut self) -> (Answer, Duration) {
        let (body, resent) = match self.resend.previous() {
            Some(previous) => (previous, true),
            None => {
                let template = &self.templates[self.next_template % self.templates.len()];
                self.next_template += 1;
                let body = request_body(template, self.gzip);
                self.resend.keep(&body);
                (body, false)
            }
        };
        let started = Instant::now();
        let answer = match self.post(body).await {
            Answer::Accepted(_) if resent => Answer::Accepted(Carried {
                resent: 1,
                ..Carried::default()
            }),
            answer => answer,
        };
        (answer, started.elapsed())
    }

    /// Posts one envelope; the answer once its body is read (so the connection goes back to
    /// the pool).
    async fn post(&self, body: Vec<u8>) -> Answer {
        let mut request = self
            .http
            .post(&self.target.url)
            .header("X-Sentry-Auth", &self.target.auth)
            .header("Content-Type", "application/x-sentry-envelope");
        if self.gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        let Ok(response) = request.body(body).send().await else {
            return Answer::Error;
        };
        let status = response.status().as_u16();
        let backoff = retry_after(&response).min(MAX_BACKOFF);
        if response.bytes().await.is_err() {
            return Answer::Error;
        }
        match status {
            200 => Answer::Accepted(Carried {
                units: 1,
                ..Carried::default()
            }),
            429 => Answer::TooMany(backoff),
            503 => Answer::Unavailable(backoff),
            _ => Answer::Other,
        }
    }
}

/// Which requests of a task send the previous envelope again (`--resend-every`).
struct Resend {
    every: usize,
    count: usize,
    previous: Option<Vec<u8>>,
}

impl Resend {
    fn every(every: usize) -> Resend {
        Resend {
            every,
            count: 0,
            previous: None,
        }
    }

    /// The previous envelope, when this request is one to send again.
    fn previous(&mut self) -> Option<Vec<u8>> {
        if self.every == 0 {
            return None;
        }
        self.count += 1;
        if !self.count.is_multiple_of(self.every) {
            return None;
        }
        self.previous.clone()
    }

    fn keep(&mut self, body: &[u8]) {
        if self.every > 0 {
            self.previous = Some(body.to_vec());
        }
    }
}

/// `Retry-After` in seconds, or 100 ms when it is missing or unreadable.
fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_millis(100))
}

// ---------------------------------------------------------------------------------------
// OTLP requests

/// Request templates per corpus; requests cycle through them (services rotate with them).
const TRACE_TEMPLATES: usize = 20;
/// Exception attribute sets per exception type (line numbers and messages differ).
const EXCEPTION_VARIANTS: usize = 4;
/// `Span.kind` SPAN_KIND_SERVER and `Status.code` STATUS_CODE_ERROR.
const SPAN_KIND_SERVER: i32 = 2;
const STATUS_CODE_ERROR: i32 = 2;
/// Application exception types after the Python built-ins: `<Noun><Kind>Error`.
const ERROR_KINDS: &[&str] = &["NotFound", "Conflict", "Invalid", "Expired", "Locked"];
const PYTHON_SITE_PACKAGES: &str = "/usr/local/lib/python3.12/site-packages";
/// Library frames at the bottom of every traceback (caller first): file under
/// site-packages, line, function, source line.
const PYTHON_LIBRARY_FRAMES: &[(&str, u32, &str, &str)] = &[
    (
        "django/core/handlers/exception.py",
        55,
        "inner",
        "response = get_response(request)",
    ),
    (
        "django/core/handlers/base.py",
        197,
        "_get_response",
        "response = wrapped_callback(request, *callback_args, **callback_kwargs)",
    ),
    (
        "django/views/decorators/csrf.py",
        65,
        "_view_wrapper",
        "return view_func(request, *args, **kwargs)",
    ),
    (
        "django/views/generic/base.py",
        104,
        "view",
        "return self.dispatch(request, *args, **kwargs)",
    ),
    (
        "rest_framework/views.py",
        509,
        "dispatch",
        "response = self.handle_exception(exc)",
    ),
    (
        "rest_framework/views.py",
        469,
        "handle_exception",
        "self.raise_uncaught_exception(exc)",
    ),
    (
        "rest_framework/views.py",
        480,
        "raise_uncaught_exception",
        "raise exc",
    ),
    (
        "rest_framework/views.py",
        506,
        "dispatch",
        "response = handler(request, *args, **kwargs)",
    ),
];
/// In-app frames above the library frames.
const PYTHON_IN_APP_FRAMES: usize = 7;

/// What every task's OTLP requests are made of, built once: request templates (spans
/// without ids) and the exception attribute sets the exception events take in turn.
struct TraceCorpus {
    templates: Vec<TraceTemplate>,
    exceptions: Vec<Vec<KeyValue>>,
}

struct TraceTemplate {
    request: ExportTraceServiceRequest,
    spans: u64,
    exceptions: u64,
}

/// One request ready to send, with what it carries.
struct TraceBatch {
    request: ExportTraceServiceRequest,
    spans: u64,
    exceptions: u64,
}

impl TraceCorpus {
    fn build(groups: usize, spans_per_request: usize, exception_every: usize) -> TraceCorpus {
        let mut rng = StdRng::seed_from_u64(SEED);
        let templates = (0..TRACE_TEMPLATES)
            .map(|t| trace_template(t, spans_per_request, exception_every, &mut rng))
            .collect();
        // Variant-major, so consecutive exceptions go through every type first.
        let exceptions = (0..EXCEPTION_VARIANTS)
            .flat_map(|_| 0..groups)
            .map(|group| exception_attributes(group, &mut rng))
            .collect();
        TraceCorpus {
            templates,
            exceptions,
        }
    }
}

/// Template `t`: one resource (a service, its version and environment) with the spans
/// numbered `t * spans_per_request ..`; every `exception_every`-th of those numbers fails.
fn trace_template(
    t: usize,
    spans_per_request: usize,
    exception_every: usize,
    rng: &mut StdRng,
) -> TraceTemplate {
    let service = SERVICES[t % SERVICES.len()];
    let first = t * spans_per_request;
    let spans: Vec<Span> = (0..spans_per_request)
        .map(|i| {
            let failed = exception_every > 0 && (first + i + 1).is_multiple_of(exception_every);
            server_span(service, i, failed, rng)
        })
        .collect();
    let exceptions = spans.iter().filter(|s| !s.events.is_empty()).count();
    let scope = InstrumentationScope {
        name: "opentelemetry.instrumentation.django".into(),
        version: "0.50b0".into(),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(service, t)),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    TraceTemplate {
        request,
        spans: spans_per_request as u64,
        exceptions: exceptions as u64,
    }
}

/// The resource attributes a Python service's SDK sends.
fn resource(service: &str, t: usize) -> Resource {
    Resource {
        attributes: vec![
            text("service.name", service),
            text("service.version", &format!("2.{}.{}", t % 2, t % 7)),
            text("deployment.environment.name", "production"),
            text("host.name", &format!("{service}-web-{}", t % 4 + 1)),
            text("telemetry.sdk.language", "python"),
            text("telemetry.sdk.name", "opentelemetry"),
            text("telemetry.sdk.version", "1.29.0"),
        ],
        ..Default::default()
    }
}

/// An HTTP server span without ids, starting at 0 (both are set per request). A failed
/// span has status ERROR, a 500, and an empty `exception` event, filled per request.
fn server_span(service: &str, i: usize, failed: bool, rng: &mut StdRng) -> Span {
    let noun = NOUNS[i % NOUNS.len()];
    let method = if i.is_multiple_of(3) { "POST" } else { "GET" };
    let route = format!("/api/{service}/{noun}s/{{id}}");
    let path = format!(
        "/api/{service}/{noun}s/{}",
        rng.random_range(100_000..999_999)
    );
    let status_code = if failed { 500 } else { 200 };
    Span {
        name: format!("{method} {route}"),
        kind: SPAN_KIND_SERVER,
        start_time_unix_nano: 0,
        end_time_unix_nano: rng.random_range(2_000_000..80_000_000),
        attributes: vec![
            text("http.request.method", method),
            text("http.route", &route),
            text("url.path", &path),
            text("url.scheme", "https"),
            text("server.address", &format!("{service}.example.com")),
            integer("http.response.status_code", status_code),
            text("user_agent.original", "python-requests/2.32.3"),
        ],
        events: match failed {
            true => vec![span::Event {
                name: "exception".into(),
                ..Default::default()
            }],
            false => Vec::new(),
        },
        status: failed.then(|| Status {
            code: STATUS_CODE_ERROR,
            message: "Internal Server Error".into(),
        }),
        ..Default::default()
    }
}

/// The `exception.*` attributes of one exception of `group`, as OpenTelemetry's Python SDK
/// records an exception that escaped the span.
fn exception_attributes(group: usize, rng: &mut StdRng) -> Vec<KeyValue> {
    let (name, printed) = exception_type(group);
    let message = format!(
        "'item_{}' for order {}",
        rng.random_range(1..500),
        rng.random_range(100_000..999_999)
    );
    let traceback = python_traceback(group, &printed, &message, rng);
    vec![
        text("exception.type", &name),
        text("exception.message", &message),
        text("exception.stacktrace", &traceback),
        boolean("exception.escaped", true),
    ]
}

/// The type of `group`'s exceptions: its name, and the name a traceback prints. Python
/// built-ins first, then application errors (`app_3.errors.OrderNotFoundError`).
fn exception_type(group: usize) -> (String, String) {
    if let Some(builtin) = EXCEPTION_TYPES.get(group) {
        return (builtin.to_string(), builtin.to_string());
    }
    let i = group - EXCEPTION_TYPES.len();
    let noun = NOUNS[i % NOUNS.len()];
    let kind = ERROR_KINDS[(i / NOUNS.len()) % ERROR_KINDS.len()];
    let name = format!("{}{}{kind}Error", noun[..1].to_uppercase(), &noun[1..]);
    let printed = format!("app_{}.errors.{name}", group % 13);
    (name, printed)
}

/// A ~2 KB Python traceback: Django and DRF frames, then in-app frames whose file and
/// function names depend on the group only, with line numbers drawn per variant.
fn python_traceback(group: usize, printed_type: &str, message: &str, rng: &mut StdRng) -> String {
    let mut text = String::from("Traceback (most recent call last):\n");
    for (file, line, function, source) in PYTHON_LIBRARY_FRAMES {
        let _ = writeln!(
            text,
            "  File \"{PYTHON_SITE_PACKAGES}/{file}\", line {line}, in {function}\n    {source}"
        );
    }
    for depth in 0..PYTHON_IN_APP_FRAMES {
        let verb = VERBS[(group + depth) % VERBS.len()];
        let noun = NOUNS[(group / VERBS.len() + depth) % NOUNS.len()];
        let line = rng.random_range(20..900);
        let callee = match depth + 1 == PYTHON_IN_APP_FRAMES {
            true => format!("raise {printed_type}(key)"),
            false => format!(
                "return self.{}(ctx, limit={line})",
                VERBS[(group + depth + 1) % VERBS.len()]
            ),
        };
        let _ = writeln!(
            text,
            "  File \"/app/app_{}/{noun}s.py\", line {line}, in {verb}_{noun}_{group}\n    {callee}",
            group % 13
        );
    }
    let _ = write!(text, "{printed_type}: {message}");
    text
}

fn text(key: &str, value: &str) -> KeyValue {
    attribute(key, Any::StringValue(value.to_owned()))
}

fn integer(key: &str, value: i64) -> KeyValue {
    attribute(key, Any::IntValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    attribute(key, Any::BoolValue(value))
}

fn attribute(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// One task's requests: templates taken in turn, with fresh random ids (16-byte trace,
/// 8-byte span) for every span, times ending now, and the next exception set for every
/// exception event.
struct TraceBatches {
    corpus: Arc<TraceCorpus>,
    rng: StdRng,
    next_template: usize,
    next_exception: usize,
}

impl TraceBatches {
    fn new(corpus: Arc<TraceCorpus>, task: usize) -> TraceBatches {
        TraceBatches {
            corpus,
            // Not seeded: ids must differ between runs (Seismo derives event ids from them).
            rng: StdRng::from_os_rng(),
            next_template: task,
            next_exception: task * 7,
        }
    }

    fn next(&mut self) -> TraceBatch {
        let corpus = self.corpus.clone();
        let template = &corpus.templates[self.next_template % corpus.templates.len()];
        self.next_template += 1;
        let mut request = template.request.clone();
        let now = unix_nanos();
        for resource_spans in &mut request.resource_spans {
            for scope_spans in &mut resource_spans.scope_spans {
                for span in &mut scope_spans.spans {
                    self.refresh(span, now);
                }
            }
        }
        TraceBatch {
            request,
            spans: template.spans,
            exceptions: template.exceptions,
        }
    }

    /// Fresh ids, the span moved to end now, and its exception events filled.
    fn refresh(&mut self, span: &mut Span, now: u64) {
        span.trace_id = random_id(&mut self.rng, 16);
        span.span_id = random_id(&mut self.rng, 8);
        let length = span.end_time_unix_nano - span.start_time_unix_nano;
        span.start_time_unix_nano = now - length;
        span.end_time_unix_nano = now;
        for event in &mut span.events {
            let exceptions = &self.corpus.exceptions;
            event.time_unix_nano = now - length / 4;
            event.attributes = exceptions[self.next_exception % exceptions.len()].clone();
            self.next_exception += 1;
        }
    }
}

/// `len` random bytes, never all zero (OTLP's "no id").
fn random_id(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut id = vec![0u8; len];
    rng.fill(id.as_mut_slice());
    if id.iter().all(|b| *b == 0) {
        id[len - 1] = 1;
    }
    id
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// Sizes of one request per template (the same requests the tasks send).
fn print_otlp_sizes(corpus: &Arc<TraceCorpus>, gzip: bool) {
    let mut batches = TraceBatches::new(corpus.clone(), 0);
    let n = corpus.templates.len();
    let (mut bytes, mut compressed, mut spans, mut exceptions) = (0, 0, 0, 0);
    for _ in 0..n {
        let batch = batches.next();
        let encoded = batch.request.encode_to_vec();
        bytes += encoded.len();
        if gzip {
            compressed += gzip_bytes(&encoded).len();
        }
        spans += batch.spans;
        exceptions += batch.exceptions;
    }
    let traceback: usize = corpus
        .exceptions
        .iter()
        .filter_map(|set| set.iter().find(|kv| kv.key == "exception.stacktrace"))
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.len()),
            _ => None,
        })
        .sum();
    println!("templates {n}");
    println!("exception_sets {}", corpus.exceptions.len());
    println!("spans_per_request {:.1}", spans as f64 / n as f64);
    println!("exceptions_per_request {:.1}", exceptions as f64 / n as f64);
    println!(
        "stacktrace_avg_bytes {}",
        traceback / corpus.exceptions.len().max(1)
    );
    println!("request_avg_bytes {}", bytes / n);
    if gzip {
        println!("gzip_body_avg_bytes {}", compressed / n);
    }
}

// ---------------------------------------------------------------------------------------
// OTLP senders

/// One task's OTLP requests: built by its `TraceBatches`, sent by its transport.
struct OtlpClient {
    batches: TraceBatches,
    transport: OtlpTransport,
}

enum OtlpTransport {
    Http(OtlpHttp),
    Grpc(OtlpGrpc),
}

impl OtlpClient {
    /// Builds and sends one request; the latency runs from handing the message to the
    /// transport (which encodes it) to the answer.
    async fn send_one(&mut self) -> (Answer, Duration) {
        let batch = self.batches.next();
        let started = Instant::now();
        let result = match &mut self.transport {
            OtlpTransport::Http(http) => http.export(batch.request).await,
            OtlpTransport::Grpc(grpc) => grpc.export(batch.request).await,
        };
        let latency = started.elapsed();
        let answer = match result {
            Ok(response) => {
                let rejected = response
                    .partial_success
                    .map_or(0, |p| p.rejected_spans.max(0) as u64);
                Answer::Accepted(Carried {
                    units: batch.spans - rejected,
                    spans: batch.spans - rejected,
                    // Which spans were rejected is not said; none should be (ids are valid).
                    exceptions: batch.exceptions,
                    rejected_spans: rejected,
                    resent: 0,
                })
            }
            Err(answer) => answer,
        };
        (answer, latency)
    }
}

/// OTLP/HTTP: protobuf bodies POSTed to `<base>/v1/traces` over a shared keep-alive client.
struct OtlpHttp {
    http: reqwest::Client,
    url: Arc<str>,
    key: Arc<str>,
    gzip: bool,
}

impl OtlpHttp {
    async fn export(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, Answer> {
        let mut body = request.encode_to_vec();
        let mut post = self
            .http
            .post(&*self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("x-seismo-key", &*self.key);
        if self.gzip {
            body = gzip_bytes(&body);
            post = post.header("Content-Encoding", "gzip");
        }
        let response = post.body(body).send().await.map_err(|_| Answer::Error)?;
        let status = response.status().as_u16();
        let backoff = retry_after(&response).min(MAX_BACKOFF);
        let bytes = response.bytes().await.map_err(|_| Answer::Error)?;
        match status {
            200 => ExportTraceServiceResponse::decode(bytes).map_err(|_| Answer::Other),
            429 => Err(Answer::TooMany(backoff)),
            503 => Err(Answer::Unavailable(backoff)),
            _ => Err(Answer::Other),
        }
    }
}

/// OTLP/gRPC: `TraceService/Export` with the key in metadata.
struct OtlpGrpc {
    client: TraceServiceClient<Channel>,
    key: MetadataValue<Ascii>,
}

impl OtlpGrpc {
    async fn export(
        &mut self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, Answer> {
        let mut request = tonic::Request::new(request);
        request
            .metadata_mut()
            .insert("x-seismo-key", self.key.clone());
        match self.client.export(request).await {
            Ok(response) => Ok(response.into_inner()),
            // A status with a source is the client's own (connection, timeout), not Seismo's.
            Err(status) if std::error::Error::source(&status).is_some() => Err(Answer::Error),
            Err(status) => Err(match status.code() {
                tonic::Code::ResourceExhausted => Answer::TooMany(MAX_BACKOFF),
                tonic::Code::Unavailable => Answer::Unavailable(MAX_BACKOFF),
                _ => Answer::Other,
            }),
        }
    }
}

/// One `OtlpHttp` per task, sharing one keep-alive client.
fn http_transports(args: &Args, key: &str) -> anyhow::Result<Vec<OtlpTransport>> {
    let base = otlp_base(args.target.as_deref(), 4318)?;
    let http = http_client(args.concurrency)?;
    let url: Arc<str> = format!("{base}/v1/traces").into();
    let key: Arc<str> = key.into();
    Ok((0..args.concurrency)
        .map(|_| {
            OtlpTransport::Http(OtlpHttp {
                http: http.clone(),
                url: url.clone(),
                key: key.clone(),
                gzip: args.gzip,
            })
        })
        .collect())
}

/// One `OtlpGrpc` per task, over `--grpc-connections` connections (each task its own by
/// default), all connected before the clock starts.
async fn grpc_transports(args: &Args, key: &str) -> anyhow::Result<Vec<OtlpTransport>> {
    let base = otlp_base(args.target.as_deref(), 4317)?;
    let key: MetadataValue<Ascii> = key.parse().context("--key is not valid gRPC metadata")?;
    let connections = match args.grpc_connections {
        0 => args.concurrency,
        n => n.min(args.concurrency),
    };
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = Endpoint::from_shared(base.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .with_context(|| format!("cannot connect to {base}"))?;
        channels.push(channel);
    }
    println!("grpc_connections {connections}");
    Ok((0..args.concurrency)
        .map(|task| {
            let mut client = TraceServiceClient::new(channels[task % connections].clone());
            if args.gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            OtlpTransport::Grpc(OtlpGrpc {
                client,
                key: key.clone(),
            })
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Load

/// What one task sends.
enum Client {
    Sentry(SentryClient),
    Otlp(Box<OtlpClient>),
}

impl Client {
    /// Sends one request: the answer and its latency.
    async fn send_one(&mut self) -> (Answer, Duration) {
        match self {
            Client::Sentry(client) => client.send_one().await,
            Client::Otlp(client) => client.send_one().await,
        }
    }
}

/// How a request ended. For gRPC, RESOURCE_EXHAUSTED counts as 429, UNAVAILABLE as 503.
enum Answer {
    Accepted(Carried),
    TooMany(Duration),
    Unavailable(Duration),
    Other,
    Error,
}

/// What an accepted request carried.
#[derive(Debug, Default, Clone, Copy)]
struct Carried {
    /// The unit of the progress lines: 1 event (Sentry) or the spans accepted (OTLP).
    units: u64,
    spans: u64,
    exceptions: u64,
    rejected_spans: u64,
    /// 1 for a Sentry envelope sent again (its event was stored before).
    resent: u64,
}

/// What one task observed.
#[derive(Default)]
struct Tally {
    ack_latencies_us: Vec<u64>,
    ok: u64,
    resent: u64,
    spans: u64,
    exceptions: u64,
    rejected_spans: u64,
    too_many: u64,
    unavailable: u64,
    other: u64,
    errors: u64,
}

impl Tally {
    /// Counts an answer; returns how long to back off after a 429/503.
    fn record(&mut self, answer: Answer, latency: Duration) -> Option<Duration> {
        match answer {
            Answer::Accepted(carried) => {
                self.ok += 1;
                self.resent += carried.resent;
                self.spans += carried.spans;
                self.exceptions += carried.exceptions;
                self.rejected_spans += carried.rejected_spans;
                self.ack_latencies_us.push(latency.as_micros() as u64);
                None
            }
            Answer::TooMany(backoff) => {
                self.too_many += 1;
                Some(backoff)
            }
            Answer::Unavailable(backoff) => {
                self.unavailable += 1;
                Some(backoff)
            }
            Answer::Other => {
                self.other += 1;
                None
            }
            Answer::Error => {
                self.errors += 1;
                None
            }
        }
    }
}

async fn run_tasks(args: &Args, clients: Vec<Client>) -> anyhow::Result<Vec<Tally>> {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    if args.report_every > 0 {
        let every = Duration::from_secs(args.report_every);
        let intervals = args.duration / args.report_every;
        tokio::spawn(report_progress(accepted.clone(), every, intervals));
    }
    let handles: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let worker = Worker {
                client,
                sent: sent.clone(),
                accepted: accepted.clone(),
                max_requests: args.max_requests,
                deadline,
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let mut tallies = Vec::with_capacity(handles.len());
    for handle in handles {
        tallies.push(handle.await?);
    }
    Ok(tallies)
}

struct Worker {
    client: Client,
    sent: Arc<AtomicU64>,
    /// Accepted units (events or spans), for the progress lines.
    accepted: Arc<AtomicU64>,
    max_requests: u64,
    deadline: Instant,
}

impl Worker {
    /// Sends one request after another until the deadline or the request bound.
    async fn run(mut self) -> Tally {
        let mut tally = Tally::default();
        while Instant::now() < self.deadline
            && self.sent.fetch_add(1, Ordering::Relaxed) < self.max_requests
        {
            let (answer, latency) = self.client.send_one().await;
            if let Answer::Accepted(carried) = &answer {
                self.accepted.fetch_add(carried.units, Ordering::Relaxed);
            }
            if let Some(backoff) = tally.record(answer, latency) {
                let left = self.deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(backoff.min(left)).await;
            }
        }
        tally
    }
}

/// Prints `interval <end second> <accepted/s>` for each of `intervals` periods of `every`,
/// to show whether throughput holds steady over a run.
async fn report_progress(accepted: Arc<AtomicU64>, every: Duration, intervals: u64) {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await; // The first tick is immediate.
    let mut last = 0;
    for _ in 0..intervals {
        ticker.tick().await;
        let now = accepted.load(Ordering::Relaxed);
        let rate = (now - last) as f64 / every.as_secs_f64();
        println!("interval {:.0}s {rate:.1}", started.elapsed().as_secs_f64());
        last = now;
    }
}

// ---------------------------------------------------------------------------------------
// Report

fn merge(tallies: Vec<Tally>) -> Tally {
    let mut total = Tally::default();
    for tally in tallies {
        total.ack_latencies_us.extend(tally.ack_latencies_us);
        total.ok += tally.ok;
        total.resent += tally.resent;
        total.spans += tally.spans;
        total.exceptions += tally.exceptions;
        total.rejected_spans += tally.rejected_spans;
        total.too_many += tally.too_many;
        total.unavailable += tally.unavailable;
        total.other += tally.other;
        total.errors += tally.errors;
    }
    total.ack_latencies_us.sort_unstable();
    total
}

/// The value at quantile `q` of sorted latencies, in milliseconds.
fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[index] as f64 / 1000.0
}

/// `accepted` counts accepted requests (one event each for Sentry) but not the `resent`
/// ones, whose event was stored before (`status_200` counts both); OTLP runs add the
/// spans and exceptions those requests carried. For gRPC, `status_200` is OK,
/// `status_429` RESOURCE_EXHAUSTED, `status_503` UNAVAILABLE, `errors` client-side failures.
fn print_report(mode: Mode, tally: &Tally, elapsed: Duration) {
    let requests = tally.ok + tally.too_many + tally.unavailable + tally.other + tally.errors;
    let seconds = elapsed.as_secs_f64();
    let lat = &tally.ack_latencies_us;
    println!("elapsed_s {seconds:.2}");
    println!("requests {requests}");
    let accepted = tally.ok - tally.resent;
    println!("accepted {accepted}");
    println!("accepted_per_s {:.1}", accepted as f64 / seconds);
    if mode == Mode::Sentry {
        println!("resent {}", tally.resent);
    }
    if mode != Mode::Sentry {
        println!("spans {}", tally.spans);
        println!("spans_per_s {:.1}", tally.spans as f64 / seconds);
        println!("exceptions {}", tally.exceptions);
        println!("exceptions_per_s {:.1}", tally.exceptions as f64 / seconds);
        println!("rejected_spans {}", tally.rejected_spans);
    }
    println!("ack_p50_ms {:.2}", percentile_ms(lat, 0.50));
    println!("ack_p90_ms {:.2}", percentile_ms(lat, 0.90));
    println!("ack_p99_ms {:.2}", percentile_ms(lat, 0.99));
    println!("ack_max_ms {:.2}", percentile_ms(lat, 1.0));
    println!("status_200 {}", tally.ok);
    println!("status_429 {}", tally.too_many);
    println!("status_503 {}", tally.unavailable);
    println!("status_other {}", tally.other);
    println!("errors {}", tally.errors);
}
