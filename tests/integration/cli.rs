//! The `seismo` binary as a user runs it: `serve` on its own embedded PostgreSQL, `project`,
//! `token`, `send-test`, `check`, and a bad setting refused in one line.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::TestApp;
use crate::process::{free_port, seismo, terminate, wait_for_dsn, wait_with_deadline};

// Tests that run the binary while their own server serves use a multi-thread runtime: the
// blocking wait for the child must not stall the server.

fn run(command: &mut Command) -> Output {
    command.output().expect("run seismo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A bare HTTP/1.1 POST of a JSON body; returns the status code.
fn post_status(port: u16, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn serve_without_a_database_runs_its_own_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    // As root the cluster runs as `postgres`, which must be able to enter the directory.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let (port, otlp_http, otlp_grpc) = (free_port(), free_port(), free_port());
    let mut child = seismo()
        .arg("serve")
        .env("SEISMO_OTLP_HTTP_LISTEN", format!("127.0.0.1:{otlp_http}"))
        .env("SEISMO_OTLP_GRPC_LISTEN", format!("127.0.0.1:{otlp_grpc}"))
        .current_dir(dir.path())
        .env("SEISMO_LISTEN", format!("127.0.0.1:{port}"))
        .env("SEISMO_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start seismo serve");
    let dsn = wait_for_dsn(&mut child);
    assert!(
        dsn.starts_with("http://") && dsn.ends_with(&format!("@127.0.0.1:{port}/1")),
        "{dsn}"
    );

    // The OTLP listeners are up too: OTLP/HTTP answers (and wants a key), gRPC accepts.
    assert_eq!(post_status(otlp_http, "/v1/traces", "{}"), 401);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", otlp_grpc)).is_ok(),
        "gRPC listener"
    );

    let sent = run(seismo().args(["send-test", &dsn]));
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(
        text(&sent.stdout).contains("200 OK"),
        "{}",
        text(&sent.stdout)
    );

    let pg_port: u16 = std::fs::read_to_string(dir.path().join("seismo-data/pg/postmaster.pid"))
        .ok()
        .and_then(|pid| pid.lines().nth(3).and_then(|p| p.trim().parse().ok()))
        .expect("the embedded cluster's postmaster.pid names its port");
    terminate(&child);
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let first: Value =
        serde_json::from_str(stderr.lines().next().unwrap_or("{}")).expect("json log line");
    let first_message = first["fields"]["message"].as_str().unwrap_or_default();
    assert!(
        first_message.contains("embedded PostgreSQL"),
        "first log line: {first}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(),
        "the embedded cluster was stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_and_token_commands_print_what_they_create() {
    let app = TestApp::spawn().await;
    let created = run(seismo().args([
        "--database-url",
        &app.database_url,
        "project",
        "create",
        "shop",
        "--json",
    ]));
    assert!(created.status.success(), "{}", text(&created.stderr));
    let project: Value = serde_json::from_slice(&created.stdout).expect("project json");
    assert_eq!(project["slug"], "shop");
    let key = project["otlp_key"].as_str().expect("key");
    assert_eq!(
        project["dsn"],
        format!("http://{key}@127.0.0.1:8000/{}", project["id"])
    );
    assert!(project["created_at"].is_string());

    let again = run(seismo().args([
        "--database-url",
        &app.database_url,
        "project",
        "create",
        "shop",
    ]));
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    let token = run(seismo().args([
        "--database-url",
        &app.database_url,
        "token",
        "create",
        "ci",
        "--json",
    ]));
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token: Value = serde_json::from_slice(&token.stdout).expect("token json");
    let token = token["token"].as_str().expect("token");
    let response = app
        .http
        .get(app.url(&format!("/api/v1/projects/{}/issues", project["id"])))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200, "the printed token works");

    // A read-only token reads but may not change anything.
    let reader = run(seismo().args([
        "--database-url",
        &app.database_url,
        "token",
        "create",
        "dashboards",
        "--scope",
        "read",
        "--json",
    ]));
    assert!(reader.status.success(), "{}", text(&reader.stderr));
    let reader: Value = serde_json::from_slice(&reader.stdout).expect("token json");
    let reader = reader["token"].as_str().expect("token");
    let response = app
        .http
        .post(app.url(&format!("/api/v1/projects/{}/rules", project["id"])))
        .bearer_auth(reader)
        .json(&serde_json::json!({"kind": "anomaly"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 403, "read scope cannot write");
    let refused = run(seismo().args([
        "--database-url",
        &app.database_url,
        "token",
        "create",
        "x",
        "--scope",
        "root",
    ]));
    assert!(!refused.status.success(), "an unknown scope is refused");

    // Listed without their text; revoked, the reader is refused.
    let listed = run(seismo().args([
        "--database-url",
        &app.database_url,
        "token",
        "list",
        "--json",
    ]));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("token list json");
    let listed = listed.as_array().expect("an array");
    let names: Vec<&str> = listed.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["dashboards", "ci", "test"], "newest first");
    assert!(!listed.iter().any(|t| t.to_string().contains(reader)));
    let reader_id = listed[0]["id"].to_string();
    let revoked = run(seismo().args([
        "--database-url",
        &app.database_url,
        "token",
        "revoke",
        &reader_id,
    ]));
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let response = app
        .http
        .get(app.url("/api/v1/incidents"))
        .bearer_auth(reader)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 401, "a revoked token is refused");
    let unknown = run(seismo().args([
        "--database-url",
        &app.database_url,
        "token",
        "revoke",
        "999999",
    ]));
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no API token"),
        "{}",
        text(&unknown.stderr)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_reports_a_refusal() {
    let app = TestApp::spawn().await;
    let wrong = format!(
        "http://{}@{}/{}",
        "0".repeat(32),
        app.address,
        app.project.id
    );
    let output = run(seismo().args(["send-test", &wrong]));
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("403"),
        "{}",
        text(&output.stderr)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_dependency() {
    let app = TestApp::spawn().await;
    let ok = run(seismo().args(["--database-url", &app.database_url, "check"]));
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let stdout = text(&ok.stdout);
    assert!(
        stdout.contains("config:   ok") && stdout.contains("database: ok"),
        "{stdout}"
    );
    assert!(stdout.contains("smtp:     not configured"), "{stdout}");

    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let failed = run(seismo().args(["--database-url", &closed, "check"]).env(
        "SEISMO_SMTP_URL",
        format!("smtp://127.0.0.1:{}", free_port()),
    ));
    assert!(!failed.status.success());
    let stdout = text(&failed.stdout);
    assert!(
        stdout.contains("database: FAILED") && stdout.contains("smtp:     FAILED"),
        "{stdout}"
    );
    app.stop().await;
}

#[test]
fn a_bad_setting_is_refused_in_one_line_naming_the_key() {
    let output = run(seismo().arg("serve").env("SEISMO_LISTEN", "nowhere"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("listen") && stderr.contains("nowhere"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_commands_add_list_and_remove() {
    let app = TestApp::spawn().await;
    let db = app.database_url.clone();
    let added = run(seismo()
        .env("SEISMO_WEBHOOK_ALLOW_CIDRS", "127.0.0.0/8")
        .args([
            "--database-url",
            &db,
            "endpoint",
            "add",
            "recovery",
            "--url",
            "http://127.0.0.1:9/admin/restart",
            "--action",
            "restart",
            "--service",
            "checkout",
            "--json",
        ]));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let endpoint: Value = serde_json::from_slice(&added.stdout).expect("endpoint json");
    assert_eq!(endpoint["kind"], "recovery");
    assert_eq!(endpoint["services"], serde_json::json!(["checkout"]));
    assert!(
        endpoint["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{endpoint}"
    );

    let refused = run(seismo().args([
        "--database-url",
        &db,
        "endpoint",
        "add",
        "webhook",
        "--url",
        "http://127.0.0.1:9/hook",
    ]));
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("SEISMO_WEBHOOK_ALLOW_CIDRS"),
        "{}",
        text(&refused.stderr)
    );
    let bad_mail = run(seismo().args([
        "--database-url",
        &db,
        "endpoint",
        "add",
        "email",
        "--address",
        "nobody",
    ]));
    assert!(
        text(&bad_mail.stderr).contains("is not an email address"),
        "{}",
        text(&bad_mail.stderr)
    );

    let listed = run(seismo().args(["--database-url", &db, "endpoint", "list"]));
    let listing = text(&listed.stdout);
    assert!(
        listing.contains("http://127.0.0.1:9/admin/restart") && listing.contains("restart"),
        "{listing}"
    );
    assert!(
        !listing.contains("whsec_"),
        "secrets are never listed: {listing}"
    );
    let id = endpoint["id"].to_string();
    let removed = run(seismo().args(["--database-url", &db, "endpoint", "remove", &id]));
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let again = run(seismo().args(["--database-url", &db, "endpoint", "remove", &id]));
    assert!(!again.status.success());
    app.stop().await;
}
