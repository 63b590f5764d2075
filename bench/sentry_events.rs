//! The realistic Sentry events the benchmarks send: ~6 KB Python exceptions from a Django
//! service, with request headers, breadcrumbs, contexts and 18 frames (in-app ones with
//! source context and locals). Shared by `loadgen` (over HTTP) and `prepare_cost` (in
//! process) so both measure the same events.

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

/// 32 characters, the length of a simple-format UUID, replaced by a fresh id per request.
pub(crate) const ID_PLACEHOLDER: &str = "EVENTIDPLACEHOLDEREVENTIDPLACEHO";

pub(crate) const EXCEPTION_TYPES: &[&str] = &[
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
pub(crate) const SERVICES: &[&str] = &["checkout", "billing", "search", "accounts", "inventory"];
pub(crate) const VERBS: &[&str] = &[
    "load", "save", "apply", "compute", "render", "fetch", "validate", "merge", "sync", "parse",
];
pub(crate) const NOUNS: &[&str] = &[
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

/// One Python exception event of `group`, with variant-specific line numbers and ids.
pub(crate) fn build_event(group: usize, variant: usize, now: f64, rng: &mut StdRng) -> Value {
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
