//! The whole loop, end to end: a small fake service sends real Sentry events (the `sentry`
//! crate) and exposes `POST /admin/restart` and `/admin/rollback`; Seismo detects the
//! burst, sends the signed restart, verifies the recovery, and — when the restart does not
//! help — escalates: the rollback with the suspect and last healthy releases, and a mail.
//!
//! Time: the burst is real (events through the SDK in the current minute); the six hours
//! before it and the minutes after it are the test's own counts, and the detector is given
//! the `now` at which each minute has closed, so minutes pass at once. Delivery runs in the
//! background on the wall clock, as in `seismo serve`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use seismo::deliver::mail::transport::Mailer;
use seismo::deliver::signing::Secret;
use seismo::detect::worker::{Settings as DetectSettings, Worker as Detector};
use seismo::model::{IncidentId, Scope, State};
use seismo::store::incidents;
use sentry::protocol::{Event, Exception, Frame, Level, Stacktrace};
use serde_json::{json, Value};

use crate::delivery::{
    deliveries, endpoint, mailer, run_in_background, settings, wait_for_state, worker, LOOPBACK,
};
use crate::harness::{set_minute_counts, TestApp};
use crate::receivers::{Receiver, SmtpServer};

const MINUTE: TimeDelta = TimeDelta::minutes(1);
const BASELINE: i64 = 3;
const BURST: usize = 100;

/// The service under watch: its admin hooks, and a Sentry SDK pointed at Seismo.
struct FakeService {
    admin: Receiver,
    client: Arc<sentry::Client>,
    hub: Arc<sentry::Hub>,
}

impl FakeService {
    async fn start(app: &TestApp) -> FakeService {
        let options = sentry::ClientOptions {
            dsn: Some(app.dsn().parse().expect("the app's DSN parses")),
            environment: Some("production".into()),
            ..Default::default()
        };
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let scope = sentry::Scope::default();
        let hub = Arc::new(sentry::Hub::new(Some(client.clone()), Arc::new(scope)));
        hub.configure_scope(|scope| scope.set_tag("service", "checkout"));
        FakeService {
            admin: Receiver::start(vec![]).await,
            client,
            hub,
        }
    }

    fn hook(&self, action: &str) -> String {
        self.admin.url(&format!("/admin/{action}"))
    }

    /// Sends `n` errors of `ty` from `release` through the SDK and waits until they are in.
    async fn errors(&self, n: usize, ty: &'static str, release: &'static str) {
        let (client, hub) = (self.client.clone(), self.hub.clone());
        tokio::task::spawn_blocking(move || {
            for sent in 0..n {
                hub.capture_event(error_event(ty, release, sent));
                // The SDK's queue is bounded: flush in small batches so none is dropped.
                if sent % 20 == 19 {
                    assert!(
                        client.flush(Some(Duration::from_secs(10))),
                        "the SDK delivered"
                    );
                }
            }
            assert!(
                client.flush(Some(Duration::from_secs(10))),
                "the SDK delivered"
            );
        })
        .await
        .expect("sending thread");
    }
}

fn error_event(ty: &str, release: &'static str, n: usize) -> Event<'static> {
    let frame = |function: &str, line: u64| Frame {
        function: Some(function.into()),
        module: Some("shop.checkout".into()),
        filename: Some("shop/checkout.py".into()),
        lineno: Some(line),
        in_app: Some(true),
        ..Default::default()
    };
    Event {
        level: Level::Error,
        platform: "python".into(),
        release: Some(release.into()),
        exception: vec![Exception {
            ty: ty.into(),
            value: Some(format!("cart {n} has no price")),
            stacktrace: Some(Stacktrace {
                frames: vec![frame("handle", 10), frame("price", 42)],
                ..Default::default()
            }),
            ..Default::default()
        }]
        .into(),
        ..Default::default()
    }
}

/// A `now` at which `minute` has just closed for the detector.
fn closing(minute: DateTime<Utc>) -> DateTime<Utc> {
    minute + MINUTE + TimeDelta::seconds(30)
}

async fn counts(app: &TestApp, first: DateTime<Utc>, last: DateTime<Utc>, events: i64) {
    for scope in [Scope::Project, Scope::Service("checkout".into())] {
        set_minute_counts(&app.pool, app.project.id, &scope, first, last, events).await;
    }
}

/// A project with six steady hours behind it and one release (1.2.9) seen before, then a
/// burst of errors from 1.3.0 in the current minute, detected: the minute of the burst.
async fn burst_detected(
    app: &TestApp,
    service: &FakeService,
    detector: &mut Detector,
) -> DateTime<Utc> {
    // Keep the burst inside one wall-clock minute.
    if Utc::now().second() >= 50 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - Utc::now().second()))).await;
    }
    let burst_minute = Utc::now().duration_trunc(MINUTE).expect("a minute");
    service.errors(3, "TimeoutError", "shop@1.2.9").await;
    // Those errors belong to the healthy hours before the burst.
    sqlx::query("UPDATE events SET received_at = received_at - interval '20 minutes' WHERE release = 'shop@1.2.9'")
        .execute(&app.pool)
        .await
        .expect("age the old release's events");
    counts(
        app,
        burst_minute - TimeDelta::hours(6),
        burst_minute - MINUTE,
        BASELINE,
    )
    .await;
    let warm_up = detector
        .pass(closing(burst_minute - MINUTE))
        .await
        .expect("warm-up pass");
    assert!(warm_up.opened.is_empty(), "{warm_up:?}");
    service.errors(BURST, "KeyError", "shop@1.3.0").await;
    let pass = detector
        .pass(closing(burst_minute))
        .await
        .expect("detection pass");
    assert!(!pass.opened.is_empty(), "the burst opened incidents");
    burst_minute
}

/// The incident the restart was sent for, once the service has it (and its request).
async fn restarted(app: &TestApp, service: &FakeService, secret: &str) -> (IncidentId, Value) {
    let request = service.admin.wait_for(1).await.remove(0);
    assert_eq!(request.path, "/admin/restart");
    let key = Secret::parse(secret).expect("secret");
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .parse()
        .expect("timestamp");
    assert!(key.verify(
        request.header("webhook-id"),
        timestamp,
        &request.body,
        request.header("webhook-signature")
    ));
    let body = request.json();
    let id = IncidentId(
        body["data"]["incident"]["id"]
            .as_i64()
            .expect("an incident id"),
    );
    wait_for_state(app, id, State::Recovering).await;
    (id, body)
}

async fn recovery_stats(app: &TestApp) -> Value {
    app.api_ok(&format!("/api/v1/stats?project={}", app.project.id))
        .await["recovery"]
        .clone()
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| s.set("webhook_allow_cidrs", LOOPBACK)).await
}

async fn recovery_chain(app: &TestApp, service: &FakeService) -> String {
    let restart = endpoint(
        app,
        json!({"kind": "recovery", "url": service.hook("restart"),
        "action": "restart", "incident_kinds": ["anomaly"], "services": ["checkout"],
        "order": 1, "cooldown_minutes": 10}),
    )
    .await;
    endpoint(
        app,
        json!({"kind": "recovery", "url": service.hook("rollback"),
        "action": "rollback", "incident_kinds": ["anomaly"], "services": ["checkout"],
        "order": 2, "secret": restart["secret"]}),
    )
    .await;
    restart["secret"].as_str().expect("a secret").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_a_restart_that_works_resolves_the_incident_as_recovered() {
    let app = spawn().await;
    let service = FakeService::start(&app).await;
    let secret = recovery_chain(&app, &service).await;
    let stop = run_in_background(worker(&app, settings(&app), &[LOOPBACK], Mailer::Disabled));
    let mut detector = Detector::new(
        app.pool.clone(),
        app.app.metrics.clone(),
        DetectSettings::default(),
    );
    let burst = burst_detected(&app, &service, &mut detector).await;

    let (id, body) = restarted(&app, &service, &secret).await;
    assert_eq!(body["data"]["action"], "restart");
    assert_eq!(body["data"]["service"], "checkout");
    assert_eq!(body["data"]["environment"], "production");
    assert_eq!(body["data"]["incident"]["bucket"], json!(burst));
    assert!(
        body["data"]["incident"]["observed"].as_i64() >= Some(BURST as i64),
        "{body}"
    );
    assert!(
        body["data"]["top_issue"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("KeyError")),
        "{body}"
    );

    // The restart worked: the errors stop, the series is back at its baseline.
    counts(
        &app,
        burst + MINUTE,
        burst + TimeDelta::minutes(10),
        BASELINE,
    )
    .await;
    let mut resolved = Vec::new();
    for m in 1..=6 {
        resolved.extend(
            detector
                .pass(closing(burst + TimeDelta::minutes(m)))
                .await
                .expect("pass")
                .resolved,
        );
    }
    assert!(resolved.contains(&id), "{resolved:?}");
    let incident = incidents::get(&app.pool, id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(incident.state, State::Resolved);
    let history = incidents::history(&app.pool, id).await.expect("history");
    let states: Vec<&str> = history.iter().map(|t| t.to_state.as_str()).collect();
    assert_eq!(states, ["open", "recovering", "resolved"]);
    assert!(
        history[2].reason.starts_with("restart verified"),
        "{history:?}"
    );
    let shown = app.api_ok(&format!("/api/v1/incidents/{id}")).await;
    let actions: Vec<(Value, Value, Value)> = shown["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["action"].clone(),
                a["delivery_status"].clone(),
                a["verified"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [(json!("restart"), json!("delivered"), json!(true))]
    );
    let stats = recovery_stats(&app).await;
    assert_eq!(
        (stats["succeeded"].as_i64(), stats["attempts"].as_i64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert_eq!(stats["probability"], 1.0);
    // One restart, for the service's incident: the project's series fired too, but an
    // endpoint limited to checkout does not act on a project-wide incident.
    assert_eq!(service.admin.received().len(), 1);
    assert_eq!(deliveries(&app, "kind=recovery").await.len(), 1);
    let _ = stop.send(true);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_a_restart_that_does_not_help_escalates_to_rollback_and_mail() {
    let app = spawn().await;
    let service = FakeService::start(&app).await;
    let secret = recovery_chain(&app, &service).await;
    endpoint(
        &app,
        json!({"kind": "email", "addresses": ["oncall@example.com"]}),
    )
    .await;
    let smtp = SmtpServer::start().await;
    let mut short = settings(&app);
    short.verify_window = Duration::from_secs(180);
    let stop = run_in_background(worker(&app, short, &[LOOPBACK], mailer(&smtp.url())));
    let mut detector = Detector::new(
        app.pool.clone(),
        app.app.metrics.clone(),
        DetectSettings::default(),
    );
    let burst = burst_detected(&app, &service, &mut detector).await;
    let (id, _) = restarted(&app, &service, &secret).await;

    // The restart did not help: the errors go on past the three-minute window.
    counts(&app, burst + MINUTE, burst + TimeDelta::minutes(4), 100).await;
    for m in 1..=4 {
        detector
            .pass(closing(burst + TimeDelta::minutes(m)))
            .await
            .expect("pass");
    }
    wait_for_state(&app, id, State::Escalated).await;
    let rollback = service.admin.wait_for(2).await.remove(1);
    assert_eq!(rollback.path, "/admin/rollback");
    let key = Secret::parse(&secret).expect("secret");
    let timestamp: i64 = rollback
        .header("webhook-timestamp")
        .parse()
        .expect("timestamp");
    assert!(key.verify(
        rollback.header("webhook-id"),
        timestamp,
        &rollback.body,
        rollback.header("webhook-signature")
    ));
    let data = rollback.json()["data"].clone();
    assert_eq!(data["action"], "rollback");
    assert_eq!(data["suspect_release"], "shop@1.3.0", "{data}");
    assert_eq!(data["last_healthy_release"], "shop@1.2.9", "{data}");

    let mails = smtp.wait_for(2).await;
    let escalated = mails
        .iter()
        .find(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains(&format!("incident {id} escalated")))
        })
        .unwrap_or_else(|| {
            panic!(
                "no escalation mail in {:?}",
                mails
                    .iter()
                    .map(|m| m.header("Subject"))
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(escalated.to, ["oncall@example.com"]);
    let text = String::from_utf8(
        escalated
            .part_with("Content-Type: text/plain")
            .expect("text"),
    )
    .expect("utf-8");
    assert!(
        text.contains("restart at") && text.contains("not recovered"),
        "{text}"
    );

    // The rollback works. (Its window is set on the detector's clock, which runs ahead.)
    let recorded = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM recovery_actions WHERE action = 'rollback'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("count")
            == 1
    };
    while !recorded().await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query("UPDATE recovery_actions SET verify_until = $1 WHERE action = 'rollback'")
        .bind(burst + TimeDelta::minutes(40))
        .execute(&app.pool)
        .await
        .expect("align the window");
    counts(
        &app,
        burst + TimeDelta::minutes(5),
        burst + TimeDelta::minutes(30),
        BASELINE,
    )
    .await;
    // After five minutes of errors the detector needs a while to call the series calm
    // again (its rise evidence decays), then five calm minutes verify the rollback.
    let mut resolved = Vec::new();
    for m in 5..=25 {
        let pass = detector
            .pass(closing(burst + TimeDelta::minutes(m)))
            .await
            .expect("pass");
        resolved.extend(pass.resolved);
    }
    assert!(resolved.contains(&id), "{resolved:?}");
    let incident = incidents::get(&app.pool, id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(incident.state, State::Resolved);
    let shown = app.api_ok(&format!("/api/v1/incidents/{id}")).await;
    let actions: Vec<(Value, Value, Value)> = shown["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            (
                a["action"].clone(),
                a["delivery_status"].clone(),
                a["verified"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (json!("restart"), json!("delivered"), json!(false)),
            (json!("rollback"), json!("delivered"), json!(true))
        ]
    );
    let stats = recovery_stats(&app).await;
    assert_eq!(
        (
            stats["succeeded"].as_i64(),
            stats["not_recovered"].as_i64(),
            stats["false_recoveries"].as_i64()
        ),
        (Some(1), Some(1), Some(0)),
        "{stats}"
    );
    assert_eq!(stats["probability"], 0.5);
    assert!(
        app.metrics().contains("seismo_recovery_probability 0.5"),
        "the gauge follows"
    );
    let _ = stop.send(true);
    app.stop().await;
}
