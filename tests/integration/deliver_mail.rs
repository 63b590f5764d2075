//! Email through a real SMTP server on loopback: what a mail says and carries (text, HTML,
//! the inline chart by `cid:`), digests, an SMTP outage, and silences.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use seismo::model::{Kind, Scope};
use serde_json::{json, Value};

use crate::delivery::{
    deliveries, endpoint, mailer, more_rounds, open_incident, rounds_until, settings, worker,
};
use crate::harness::{call, python_exception, TestApp};
use crate::receivers::{closed_port, SmtpServer};

fn checkout_event(release: &str) -> Value {
    let mut event = python_exception("KeyError", "missing 'sku'", &["checkout", "price"], 10);
    event["tags"] = json!({"service": "checkout"});
    event["release"] = json!(release);
    event["environment"] = json!("production");
    event
}

async fn mail_endpoint(app: &TestApp) -> Value {
    endpoint(
        app,
        json!({"kind": "email", "addresses": ["ops@example.com", "Dev Team <dev@example.com>"]}),
    )
    .await
}

#[tokio::test]
async fn deliver_mail_says_what_happened_with_text_html_and_an_inline_chart() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        assert_eq!(
            app.send_event(&checkout_event("shop@1.3.0")).await.status(),
            200
        );
    }
    mail_endpoint(&app).await;
    let smtp = SmtpServer::start().await;
    let incident = open_incident(&app, Kind::Anomaly, Scope::Service("checkout".into())).await;
    let worker = worker(&app, settings(&app), &[], mailer(&smtp.url()));
    rounds_until(&worker, || async { smtp.mails().len() == 1 }).await;

    let mail = &smtp.mails()[0];
    assert_eq!(mail.from, "seismo@example.com");
    assert_eq!(mail.to, ["ops@example.com", "dev@example.com"]);
    let subject = mail.header("Subject").expect("a subject");
    assert_eq!(
        subject,
        format!(
            "[Seismo] Test: incident {} opened: anomaly on service checkout",
            incident.id
        )
    );
    let text = String::from_utf8(
        mail.part_with("Content-Type: text/plain")
            .expect("a text part"),
    )
    .expect("text");
    for needle in [
        "against 3.0 expected",
        "Service:     checkout",
        "Environment: production",
        "Release:     shop@1.3.0",
        "Top issue: KeyError: missing 'sku'",
        "Stack trace (top frames):",
        "No recovery action was taken.",
        &format!("/api/v1/incidents/{}", incident.id),
    ] {
        assert!(
            text.contains(needle),
            "the text part lacks {needle:?}:\n{text}"
        );
    }
    let html = String::from_utf8(
        mail.part_with("Content-Type: text/html")
            .expect("an HTML part"),
    )
    .expect("html");
    let cid = format!("chart-{}@seismo", incident.id);
    assert!(html.contains(&format!("src=\"cid:{cid}\"")), "{html}");
    assert!(
        html.contains("KeyError: missing &#x27;sku&#x27;")
            || html.contains("KeyError: missing &#39;sku&#39;"),
        "HTML is escaped: {html}"
    );
    let png = mail
        .part_with(&format!("Content-ID: <{cid}>"))
        .expect("the image the HTML refers to");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        deliveries(&app, "kind=email&status=delivered").await.len(),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn deliver_incidents_firing_together_arrive_as_one_digest() {
    let app = TestApp::spawn().await;
    mail_endpoint(&app).await;
    let smtp = SmtpServer::start().await;
    for service in ["a", "b", "c"] {
        open_incident(&app, Kind::Anomaly, Scope::Service(service.into())).await;
    }
    let mut grouped = settings(&app);
    grouped.mail_group_wait = Duration::from_millis(300);
    grouped.mail_repeat = Duration::from_secs(3600);
    let worker = worker(&app, grouped, &[], mailer(&smtp.url()));
    rounds_until(&worker, || async { smtp.mails().len() == 1 }).await;
    let subject = smtp.mails()[0].header("Subject").map(str::to_owned);
    assert_eq!(subject.as_deref(), Some("[Seismo] Test: 3 incidents"));
    // Within the repeat interval, a new incident waits for the next digest.
    open_incident(&app, Kind::Anomaly, Scope::Service("d".into())).await;
    more_rounds(&worker, 20).await;
    assert_eq!(smtp.mails().len(), 1);
    let waiting = deliveries(&app, "kind=email&status=pending").await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["last_error"], "waiting for the repeat interval");
    app.stop().await;
}

#[tokio::test]
async fn deliver_mail_waits_out_an_smtp_outage_and_is_sent_once() {
    let app = TestApp::spawn().await;
    mail_endpoint(&app).await;
    let port = closed_port().await;
    open_incident(&app, Kind::Anomaly, Scope::Service("checkout".into())).await;
    let mut patient = settings(&app);
    patient.notifications.delays = vec![Duration::from_millis(200); 30];
    let worker = worker(
        &app,
        patient,
        &[],
        mailer(&format!("smtp://127.0.0.1:{port}")),
    );
    rounds_until(&worker, || async {
        deliveries(&app, "kind=email").await[0]["attempts"].as_i64() >= Some(2)
    })
    .await;
    let failing = &deliveries(&app, "kind=email").await[0];
    assert_eq!(failing["status"], "pending", "{failing}");
    let smtp = SmtpServer::start_on(port).await;
    rounds_until(&worker, || async { smtp.mails().len() == 1 }).await;
    more_rounds(&worker, 10).await;
    assert_eq!(smtp.mails().len(), 1, "the mail was sent twice");
    assert_eq!(
        deliveries(&app, "kind=email").await[0]["status"],
        "delivered"
    );
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_silence_made_after_an_incident_opened_quiets_it() {
    let app = TestApp::spawn().await;
    mail_endpoint(&app).await;
    let smtp = SmtpServer::start().await;
    open_incident(&app, Kind::Anomaly, Scope::Service("checkout".into())).await;
    let silence = json!({"project_id": app.project.id, "service": "checkout",
        "starts_at": Utc::now() - chrono::TimeDelta::minutes(5), "duration_minutes": 60});
    let (status, made) = call(&app, Method::POST, "/api/v1/silences", Some(silence)).await;
    assert_eq!(status, 201, "{made}");
    let worker = worker(&app, settings(&app), &[], mailer(&smtp.url()));
    rounds_until(&worker, || async {
        deliveries(&app, "status=skipped").await.len() == 1
    })
    .await;
    more_rounds(&worker, 5).await;
    assert!(smtp.mails().is_empty(), "a silenced incident was mailed");
    app.stop().await;
}
