//! `loadgen`: a closed-loop load generator for Seismo's Sentry ingestion endpoint.
//!
//! It pre-builds realistic ~6 KB Python exception events spread over `--groups` distinct
//! groups (exception type and in-app function names differ per group; line numbers, ids and
//! values differ within a group), wraps each in a Sentry envelope, and runs `--concurrency`
//! tokio tasks that POST envelopes over one shared keep-alive client until `--duration`
//! seconds pass or `--max-requests` have been sent. Every request carries a fresh event id.
//!
//! Seismo answers 200 only after the event is committed, so the latency of a 200 is the
//! ack latency of a durable write. On 429/503 a task sleeps for `Retry-After` (at most 1 s)
//! before its next request, as an SDK would back off.
//!
//! Output is plain `name value` lines (see [`print_report`]), plus `interval <t> <events/s>`
//! lines with `--report-every`, for `bench/ingest.sh` to parse.
//! Traffic goes to 127.0.0.1 only: any other DSN host is refused.
//!
//! Run: `cargo run --release --example loadgen -- --dsn http://KEY@127.0.0.1:8000/1`

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Envelopes pre-built per group; requests cycle through them.
const VARIANTS_PER_GROUP: usize = 4;
/// 32 characters, the length of a simple-format UUID, replaced by a fresh id per request.
const ID_PLACEHOLDER: &str = "EVENTIDPLACEHOLDEREVENTIDPLACEHO";
/// A constant seed so every run sends the same events (apart from the ids).
const SEED: u64 = 0x5e15_0000;
/// Longest back-off after a 429/503, whatever `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for Seismo's Sentry envelope endpoint"
)]
struct Args {
    /// Sentry DSN of the target project, e.g. http://KEY@127.0.0.1:8000/1 (127.0.0.1 only).
    #[arg(long)]
    dsn: String,
    /// Requests in flight at once (one tokio task each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Distinct issue groups the events fall into.
    #[arg(long, default_value_t = 50)]
    groups: usize,
    /// Safety bound on the number of requests sent.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Send bodies gzip-compressed (`Content-Encoding: gzip`), compressed per request.
    #[arg(long)]
    gzip: bool,
    /// Also print accepted events/s every this many seconds (0: only the final report).
    #[arg(long, default_value_t = 0)]
    report_every: u64,
}

/// Where and how to post envelopes, from the DSN.
struct Target {
    url: String,
    auth: String,
}

/// One pre-serialized envelope and where its event-id placeholders sit.
struct Template {
    bytes: Vec<u8>,
    event_len: usize,
    id_offsets: Vec<usize>,
}

/// What one task observed.
#[derive(Default)]
struct Tally {
    ack_latencies_us: Vec<u64>,
    ok: u64,
    too_many: u64,
    unavailable: u64,
    other: u64,
    errors: u64,
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
    let target = parse_dsn(&args.dsn)?;
    let templates = Arc::new(build_templates(args.groups));
    print_sizes(&templates, args.gzip);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    let tallies = run_tasks(&args, client, Arc::new(target), templates).await?;
    let elapsed = started.elapsed();
    print_report(&merge(tallies), elapsed);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// DSN

/// Parses `http://KEY@127.0.0.1:PORT/ID` into the envelope URL and auth header; refuses any
/// host but 127.0.0.1 so the benchmark never sends traffic elsewhere.
fn parse_dsn(dsn: &str) -> anyhow::Result<Target> {
    let url = reqwest::Url::parse(dsn).with_context(|| format!("invalid DSN {dsn:?}"))?;
    if url.scheme() != "http" {
        bail!("DSN scheme must be http, got {:?}", url.scheme());
    }
    if url.host_str() != Some("127.0.0.1") {
        bail!(
            "refusing to send load to {:?}: only 127.0.0.1 is allowed",
            url.host_str()
        );
    }
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
    Ok(Target {
        url: format!("http://127.0.0.1:{port}/api/{project_id}/envelope/"),
        auth: format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=seismo-loadgen/1"),
    })
}

// ---------------------------------------------------------------------------------------
// Events

const EXCEPTION_TYPES: &[&str] = &[
    "KeyError",
    "ValueError",
    "TypeError",
    "AttributeError",
    "IndexError",
    "ZeroDivisionError",
    "RuntimeError",
    "TimeoutError",
    "ConnectionError",
    "PermissionError",
    "LookupError",
    "NotImplementedError",
];
const TIERS: &[&str] = &["free", "pro", "enterprise"];
const SERVICES: &[&str] = &["checkout", "billing", "search", "accounts", "inventory"];
const VERBS: &[&str] = &[
    "load", "save", "apply", "compute", "render", "fetch", "validate", "merge", "sync", "parse",
];
const NOUNS: &[&str] = &[
    "order", "invoice", "cart", "user", "coupon", "stock", "price", "session", "report", "shipment",
];
/// Library frames at the bottom of every stack (not in-app).
const LIBRARY_FRAMES: &[(&str, &str, &str)] = &[
    (
        "django/core/handlers/exception.py",
        "django.core.handlers.exception",
        "inner",
    ),
    (
        "django/core/handlers/base.py",
        "django.core.handlers.base",
        "_get_response",
    ),
    (
        "django/views/generic/base.py",
        "django.views.generic.base",
        "view",
    ),
    (
        "django/views/generic/base.py",
        "django.views.generic.base",
        "dispatch",
    ),
    (
        "rest_framework/views.py",
        "rest_framework.views",
        "dispatch",
    ),
    (
        "rest_framework/views.py",
        "rest_framework.views",
        "handle_exception",
    ),
    ("django/db/transaction.py", "django.db.transaction", "inner"),
];
const FRAMES_PER_STACK: usize = 18;
const BREADCRUMBS: usize = 10;

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

/// One Python exception event of `group`, with variant-specific line numbers and ids.
fn build_event(group: usize, variant: usize, now: f64, rng: &mut StdRng) -> Value {
    let exception_type = EXCEPTION_TYPES[group % EXCEPTION_TYPES.len()];
    let service = SERVICES[group % SERVICES.len()];
    let order_id = rng.random_range(100_000..999_999);
    json!({
        "event_id": ID_PLACEHOLDER,
        "timestamp": now,
        "platform": "python",
        "level": "error",
        "logger": format!("{service}.views"),
        "release": format!("{service}@2.{}.{}", variant % 2, group % 7),
        "environment": "production",
        "server_name": format!("{service}-web-{}", rng.random_range(1..9)),
        "transaction": format!("/api/{service}/{}/", NOUNS[group % NOUNS.len()]),
        "tags": {
            "service": service,
            "region": "eu-west-1",
            "customer_tier": TIERS[variant % TIERS.len()],
            "worker": format!("gunicorn-{}", rng.random_range(1..17)),
        },
        "user": {
            "id": format!("{}", rng.random_range(1_000..99_999)),
            "ip_address": format!("10.0.{}.{}", rng.random_range(0..255), rng.random_range(1..255)),
        },
        "request": request_block(service, group, order_id),
        "breadcrumbs": {"values": breadcrumbs(service, order_id, now)},
        "contexts": contexts(),
        "sdk": {"name": "sentry.python.django", "version": "2.19.0"},
        "exception": {"values": [{
            "type": exception_type,
            "value": format!("{exception_type} while handling order {order_id}: 'item_{}'", rng.random_range(1..500)),
            "module": if exception_type == "ConnectionError" { Value::from("requests.exceptions") } else { Value::Null },
            "mechanism": {"type": "django", "handled": false},
            "stacktrace": {"frames": frames(group, rng)},
        }]},
    })
}

fn request_block(service: &str, group: usize, order_id: u32) -> Value {
    json!({
        "url": format!("https://{service}.example.com/api/{service}/{}/{order_id}/", NOUNS[group % NOUNS.len()]),
        "method": "POST",
        "query_string": format!("expand=items&trace={order_id}"),
        "headers": {
            "Host": format!("{service}.example.com"),
            "User-Agent": "python-requests/2.32.3",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-Request-Id": format!("req-{order_id}-{}", group),
        },
    })
}

fn breadcrumbs(service: &str, order_id: u32, now: f64) -> Vec<Value> {
    (0..BREADCRUMBS)
        .map(|i| {
            let timestamp = ((now - (BREADCRUMBS - i) as f64 * 0.05) * 1000.0).round() / 1000.0;
            if i % 3 == 0 {
                json!({"timestamp": timestamp, "type": "http", "category": "httplib",
                       "data": {"url": format!("http://stock.internal/{order_id}"), "status_code": 200}})
            } else {
                json!({"timestamp": timestamp, "type": "default", "category": "query",
                       "message": format!("SELECT * FROM {service}_orders LIMIT {}", i + 1)})
            }
        })
        .collect()
}

fn contexts() -> Value {
    json!({
        "runtime": {"name": "CPython", "version": "3.12.3"},
        "os": {"name": "Linux", "version": "6.1.0-18-amd64"},
        "trace": {"trace_id": "4c79f60c11214eb38604f4ae0781bfb2", "span_id": "fa90fdead5f74052", "op": "http.server"},
    })
}

/// `FRAMES_PER_STACK` frames, oldest first: library frames, then in-app frames whose
/// module and function names depend on the group only (so grouping is per group).
fn frames(group: usize, rng: &mut StdRng) -> Vec<Value> {
    let mut frames: Vec<Value> = LIBRARY_FRAMES
        .iter()
        .map(|(file, module, function)| frame(file, module, function, false, rng))
        .collect();
    let in_app = FRAMES_PER_STACK - frames.len();
    for depth in 0..in_app {
        let verb = VERBS[(group + depth) % VERBS.len()];
        let noun = NOUNS[(group / VERBS.len() + depth) % NOUNS.len()];
        let module = format!("app_{}.{noun}s", group % 13);
        let file = format!("app_{}/{noun}s.py", group % 13);
        let function = format!("{verb}_{noun}_{group}");
        frames.push(frame(&file, &module, &function, true, rng));
    }
    frames
}

/// A frame; in-app frames also carry source context and local variables, as SDKs send
/// them for application code.
fn frame(file: &str, module: &str, function: &str, in_app: bool, rng: &mut StdRng) -> Value {
    let lineno = rng.random_range(20..900);
    let mut frame = json!({
        "filename": file,
        "module": module,
        "function": function,
        "lineno": lineno,
        "in_app": in_app,
        "context_line": format!("    return {function}(ctx, {lineno})"),
    });
    if in_app {
        frame["pre_context"] = json!(["    ctx = self.context(request)"]);
        frame["post_context"] = json!([""]);
        frame["vars"] = json!({"limit": lineno});
    }
    frame
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
// Load

async fn run_tasks(
    args: &Args,
    client: reqwest::Client,
    target: Arc<Target>,
    templates: Arc<Vec<Template>>,
) -> anyhow::Result<Vec<Tally>> {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    if args.report_every > 0 {
        let every = Duration::from_secs(args.report_every);
        let intervals = args.duration / args.report_every;
        tokio::spawn(report_progress(accepted.clone(), every, intervals));
    }
    let mut handles = Vec::with_capacity(args.concurrency);
    for task in 0..args.concurrency {
        let worker = Worker {
            client: client.clone(),
            target: target.clone(),
            templates: templates.clone(),
            sent: sent.clone(),
            accepted: accepted.clone(),
            max_requests: args.max_requests,
            gzip: args.gzip,
            deadline,
            next_template: task * 7,
        };
        handles.push(tokio::spawn(worker.run()));
    }
    let mut tallies = Vec::with_capacity(handles.len());
    for handle in handles {
        tallies.push(handle.await?);
    }
    Ok(tallies)
}

struct Worker {
    client: reqwest::Client,
    target: Arc<Target>,
    templates: Arc<Vec<Template>>,
    sent: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    max_requests: u64,
    gzip: bool,
    deadline: Instant,
    next_template: usize,
}

impl Worker {
    /// Sends one request after another until the deadline or the request bound.
    async fn run(mut self) -> Tally {
        let mut tally = Tally::default();
        while Instant::now() < self.deadline
            && self.sent.fetch_add(1, Ordering::Relaxed) < self.max_requests
        {
            let template = &self.templates[self.next_template % self.templates.len()];
            self.next_template += 1;
            let body = request_body(template, self.gzip);
            if let Some(backoff) = self.send(body, &mut tally).await {
                let left = self.deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(backoff.min(left)).await;
            }
        }
        tally
    }

    /// Posts one envelope and counts the answer; returns a back-off on 429/503.
    async fn send(&self, body: Vec<u8>, tally: &mut Tally) -> Option<Duration> {
        let mut request = self
            .client
            .post(&self.target.url)
            .header("X-Sentry-Auth", &self.target.auth)
            .header("Content-Type", "application/x-sentry-envelope");
        if self.gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        let started = Instant::now();
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(_) => {
                tally.errors += 1;
                return None;
            }
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        // Read the body so the connection goes back to the pool.
        let read = response.bytes().await;
        let latency = started.elapsed();
        match (status, read) {
            (_, Err(_)) => tally.errors += 1,
            (200, Ok(_)) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                tally.ok += 1;
                tally.ack_latencies_us.push(latency.as_micros() as u64);
            }
            (429, Ok(_)) => tally.too_many += 1,
            (503, Ok(_)) => tally.unavailable += 1,
            (_, Ok(_)) => tally.other += 1,
        }
        matches!(status, 429 | 503).then(|| retry_after.min(MAX_BACKOFF))
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
// Report

fn merge(tallies: Vec<Tally>) -> Tally {
    let mut total = Tally::default();
    for tally in tallies {
        total.ack_latencies_us.extend(tally.ack_latencies_us);
        total.ok += tally.ok;
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

fn print_report(tally: &Tally, elapsed: Duration) {
    let requests = tally.ok + tally.too_many + tally.unavailable + tally.other + tally.errors;
    let seconds = elapsed.as_secs_f64();
    let lat = &tally.ack_latencies_us;
    println!("elapsed_s {seconds:.2}");
    println!("requests {requests}");
    println!("accepted {}", tally.ok);
    println!("accepted_per_s {:.1}", tally.ok as f64 / seconds);
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
