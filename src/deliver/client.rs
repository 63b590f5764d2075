//! The webhook HTTP client: one POST of a signed body, through the SSRF guard, with no
//! redirects and bounded time, classified into what the delivery worker does next.
//!
//! Any 2xx is delivered. A 410 means the receiver is gone for good (the endpoint is
//! disabled). Everything else, a 3xx included (a redirect is never followed: it could lead
//! anywhere, the guard's checks included), a timeout or a refused connection, is a failure
//! to retry; a `Retry-After` on the answer is kept for the schedule.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use url::Url;

use super::retry::parse_retry_after;
use super::signing::{signature_header, Secret};
use super::ssrf::Guard;

/// Bytes of a receiver's answer kept with the delivery (what a person debugging needs).
pub const EXCERPT_BYTES: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    /// The whole request, answer included.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(10),
        }
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 410 Gone: stop sending to this endpoint.
    Gone,
    Failed,
    /// The guard refused the target: retrying will not help.
    Refused,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub verdict: Verdict,
    pub status: Option<u16>,
    /// The start of the answer's body, or the error.
    pub excerpt: String,
    pub retry_after: Option<Duration>,
}

impl Attempt {
    fn failed(verdict: Verdict, excerpt: String) -> Attempt {
        Attempt {
            verdict,
            status: None,
            excerpt,
            retry_after: None,
        }
    }
}

/// One signed message to send.
pub struct Message<'a> {
    pub url: &'a str,
    /// `webhook-id`: the same on every attempt of a delivery.
    pub id: &'a str,
    pub secrets: &'a [Secret],
    pub body: &'a [u8],
}

#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    guard: Arc<Guard>,
}

impl WebhookClient {
    pub fn new(guard: Guard, timeouts: Timeouts) -> Result<WebhookClient, reqwest::Error> {
        let guard = Arc::new(guard);
        let http = reqwest::Client::builder()
            .dns_resolver(guard.resolver())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.response)
            .build()?;
        Ok(WebhookClient { http, guard })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub async fn send(&self, message: &Message<'_>) -> Attempt {
        let url = match Url::parse(message.url) {
            Ok(url) => url,
            Err(e) => return Attempt::failed(Verdict::Refused, format!("bad URL: {e}")),
        };
        if let Err(refused) = self.guard.check_url(&url) {
            return Attempt::failed(Verdict::Refused, refused.to_string());
        }
        let headers = headers(message);
        let sent = self
            .http
            .post(url)
            .headers(headers)
            .body(message.body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => classify(response).await,
            Err(error) => Attempt::failed(Verdict::Failed, describe(&error)),
        }
    }
}

fn headers(message: &Message<'_>) -> HeaderMap {
    let timestamp = Utc::now().timestamp();
    let signature = signature_header(message.secrets, message.id, timestamp, message.body);
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put("webhook-id", message.id);
    put("idempotency-key", message.id);
    put("webhook-timestamp", &timestamp.to_string());
    put("webhook-signature", &signature);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("Seismo/", env!("CARGO_PKG_VERSION"))),
    );
    headers
}

async fn classify(mut response: reqwest::Response) -> Attempt {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()));
    let mut body = Vec::new();
    // The excerpt is best effort: a body cut short by the timeout keeps what arrived.
    while body.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(EXCERPT_BYTES);
    let verdict = if status.is_success() {
        Verdict::Delivered
    } else if status == reqwest::StatusCode::GONE {
        Verdict::Gone
    } else {
        Verdict::Failed
    };
    Attempt {
        verdict,
        status: Some(status.as_u16()),
        excerpt: String::from_utf8_lossy(&body).into_owned(),
        retry_after,
    }
}

/// The error with its causes, without the URL (it may carry a token in its query).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = what.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
