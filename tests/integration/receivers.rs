//! Real servers on loopback for the delivery tests: an HTTP receiver that records every
//! request and answers from a script, and a small SMTP server that records every mail.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How a receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with one header (e.g. `Retry-After`, `Location`).
    WithHeader(u16, &'static str, String),
    /// Waits this long before answering 200 (longer than the client waits).
    Slow(Duration),
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    received: Vec<Received>,
}

/// An HTTP receiver on a free loopback port: answers each request with the next scripted
/// reply (200 once the script is used up) and records it.
#[derive(Clone)]
pub struct Receiver {
    pub address: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    pub async fn start(replies: Vec<Reply>) -> Receiver {
        Receiver::start_on(0, replies).await
    }

    /// On a given port (0: any), e.g. to come back where a stopped receiver was.
    pub async fn start_on(port: u16, replies: Vec<Reply>) -> Receiver {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            received: Vec::new(),
        }));
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let address = listener.local_addr().expect("address");
        let state = script.clone();
        let app = Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { answer(state, uri.path().to_owned(), headers, body).await }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { address, script }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().expect("lock").received.clone()
    }

    /// Waits (up to 20 s) until `count` requests have arrived; returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        eventually(Duration::from_secs(20), || {
            let got = self.received();
            (got.len() >= count).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("expected {count} requests, got {:?}", self.received().len()))
    }
}

async fn answer(
    state: Arc<Mutex<Script>>,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut script = state.lock().expect("lock");
        script.received.push(Received {
            at: std::time::Instant::now(),
            path,
            headers,
            body,
        });
        script.replies.pop_front().unwrap_or(Reply::Status(200))
    };
    let status = |code: u16| StatusCode::from_u16(code).expect("a status");
    match reply {
        Reply::Status(code) => (status(code), "ok").into_response(),
        Reply::WithHeader(code, name, value) => {
            (status(code), [(name, value)], "see header").into_response()
        }
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            (StatusCode::OK, "late").into_response()
        }
    }
}

/// Polls `check` every 20 ms until it gives a value or `limit` passes.
pub async fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One mail an SMTP server took.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and MIME body), dot-stuffing undone.
    pub data: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(&prefix))
    }

    /// The body of the MIME part whose headers contain `marker`, decoded when base64.
    pub fn part_with(&self, marker: &str) -> Option<Vec<u8>> {
        let start = self.data.find(marker)?;
        let rest = &self.data[start..];
        let body_start = rest.find("\r\n\r\n")? + 4;
        let body = &rest[body_start..];
        let end = body.find("\r\n--").unwrap_or(body.len());
        let headers = &rest[..body_start];
        let body = &body[..end];
        if headers.contains("Content-Transfer-Encoding: base64") {
            use base64::Engine;
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
        } else if headers.contains("Content-Transfer-Encoding: quoted-printable") {
            Some(quoted_printable(body))
        } else {
            Some(body.as_bytes().to_vec())
        }
    }
}

/// Decodes quoted-printable (RFC 2045 §6.7): soft line breaks and `=XX` escapes.
fn quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.replace("=\r\n", "").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// A minimal SMTP server (RFC 5321's commands a client needs: EHLO/HELO, MAIL, RCPT,
/// DATA, RSET, NOOP, QUIT) on a loopback port, recording what it receives.
#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        SmtpServer::start_on(0).await
    }

    /// On a given port (0: any), e.g. to come back where a stopped one was.
    pub async fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind SMTP");
        let port = listener.local_addr().expect("address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let store = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = session(stream, store).await;
                });
            }
        });
        SmtpServer { port, mails }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    pub async fn wait_for(&self, count: usize) -> Vec<Mail> {
        eventually(Duration::from_secs(20), || {
            let got = self.mails();
            (got.len() >= count).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("expected {count} mails, got {}", self.mails().len()))
    }
}

/// A free loopback port nobody listens on (an SMTP server that is down).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

async fn session(
    stream: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 localhost ESMTP test\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-localhost\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            (from, to) = (String::new(), Vec::new());
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address_in(&command);
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address_in(&command));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let data = read_data(&mut lines).await?;
            let mail = Mail {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
            };
            store.lock().expect("lock").push(mail);
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

fn address_in(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command.rfind('>').unwrap_or(command.len());
    command[start..end].to_owned()
}

async fn read_data(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 || line == ".\r\n" {
            return Ok(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
