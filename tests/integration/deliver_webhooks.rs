//! Webhook delivery against real HTTP receivers on loopback: signatures, retries with the
//! same `webhook-id`, 410, redirects, timeouts, expiry, the circuit breaker, the SSRF
//! guard, and two workers sharing one database.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use seismo::deliver::fanout;
use seismo::deliver::mail::transport::Mailer;
use seismo::deliver::signing::Secret;
use seismo::model::{Kind, Scope, State};
use seismo::store::endpoints::{self, NewEndpoint};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use crate::delivery::{
    deliveries, endpoint, more_rounds, open_incident, rounds_until, settings, wait_for_state,
    worker, LOOPBACK,
};
use crate::harness::{call, TestApp};
use crate::receivers::{closed_port, Receiver, Reply};

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| s.set("webhook_allow_cidrs", LOOPBACK)).await
}

fn checkout() -> Scope {
    Scope::Service("checkout".into())
}

#[tokio::test]
async fn deliver_a_recovery_webhook_is_signed_and_moves_the_incident_to_recovering() {
    let app = spawn().await;
    let service = Receiver::start(vec![]).await;
    let secret = Secret::generate();
    let made = endpoint(
        &app,
        json!({"kind": "recovery", "url": service.url("/admin/restart"),
        "action": "restart", "secret": secret, "incident_kinds": ["anomaly"]}),
    )
    .await;
    assert_eq!(
        made["secret"], secret,
        "the secret is shown in the answer that made it"
    );
    let (_, shown) = call(
        &app,
        Method::GET,
        &format!("/api/v1/endpoints/{}", made["id"]),
        None,
    )
    .await;
    assert_eq!(shown["secret"], json!(null), "and never again");
    let incident = open_incident(&app, Kind::Anomaly, checkout()).await;
    let worker = worker(&app, settings(&app), &[LOOPBACK], Mailer::Disabled);

    rounds_until(&worker, || async { service.received().len() == 1 }).await;
    let request = &service.received()[0];
    assert_eq!(request.path, "/admin/restart");
    let id = request.header("webhook-id");
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(request.header("idempotency-key"), id);
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .parse()
        .expect("a timestamp");
    let key = Secret::parse(&secret).expect("the secret parses");
    assert!(key.verify(
        id,
        timestamp,
        &request.body,
        request.header("webhook-signature")
    ));
    assert!(!key.verify(
        id,
        timestamp + 1,
        &request.body,
        request.header("webhook-signature")
    ));
    let body = request.json();
    assert_eq!(body["type"], "recovery.requested");
    assert_eq!(body["data"]["action"], "restart");
    assert_eq!(body["data"]["service"], "checkout");
    assert_eq!(body["data"]["incident"]["id"], incident.id.get());
    assert_eq!(body["data"]["incident"]["expected"], 3.0);

    wait_for_state(&app, incident.id, State::Recovering).await;
    let done = deliveries(&app, "kind=recovery").await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["status"], "delivered");
    assert_eq!(done[0]["message_id"], id);
    assert_eq!(done[0]["last_status"], 200);
    let actions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM recovery_actions WHERE incident_id = $1")
            .bind(incident.id)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(actions, 1);
    assert!(app
        .metrics()
        .contains("seismo_deliveries_total{kind=\"recovery\",result=\"delivered\"} 1"));
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_fan_out_reads_the_incident_context_before_its_transaction() {
    let app = spawn().await;
    let service = Receiver::start(vec![]).await;
    endpoint(
        &app,
        json!({"kind": "recovery", "url": service.url("/admin/restart"), "action": "restart"}),
    )
    .await;
    let incident = open_incident(&app, Kind::Anomaly, checkout()).await;
    // One connection: reading the context on the pool while the fan-out's transaction holds
    // that connection would wait for another, and fail at the pool's timeout. A long
    // transaction stops PostgreSQL from pruning or vacuuming anything it might still see.
    let only_one = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&app.database_url)
        .await
        .expect("a pool of one connection");
    let taken = fanout::fan_out(&only_one, &settings(&app), Utc::now())
        .await
        .expect("fanned out");
    assert!(taken >= 1, "{taken} outbox rows");
    let requested: Vec<(String, String)> = sqlx::query_as(
        "SELECT status, payload->'data'->>'service' FROM deliveries \
         WHERE incident_id = $1 AND kind = 'recovery'",
    )
    .bind(incident.id)
    .fetch_all(&app.pool)
    .await
    .expect("the recovery deliveries");
    assert_eq!(requested, [("pending".to_owned(), "checkout".to_owned())]);
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_500_then_a_200_is_delivered_once_with_the_same_webhook_id() {
    let app = spawn().await;
    let receiver = Receiver::start(vec![Reply::Status(500)]).await;
    endpoint(
        &app,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    open_incident(&app, Kind::Anomaly, checkout()).await;
    let worker = worker(&app, settings(&app), &[LOOPBACK], Mailer::Disabled);
    rounds_until(&worker, || async {
        deliveries(&app, "status=delivered").await.len() == 1
    })
    .await;
    more_rounds(&worker, 10).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2, "one failure, one success, nothing after");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let delivery = &deliveries(&app, "").await[0];
    assert_eq!(
        (
            delivery["attempts"].as_i64(),
            delivery["last_status"].as_i64()
        ),
        (Some(2), Some(200))
    );
    assert_eq!(delivery["payload"]["type"], "incident.opened");
    app.stop().await;
}

#[tokio::test]
async fn deliver_retry_after_is_honoured() {
    let app = spawn().await;
    let receiver = Receiver::start(vec![Reply::WithHeader(503, "retry-after", "1".into())]).await;
    endpoint(
        &app,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    open_incident(&app, Kind::Anomaly, checkout()).await;
    let worker = worker(&app, settings(&app), &[LOOPBACK], Mailer::Disabled);
    rounds_until(&worker, || async { receiver.received().len() == 2 }).await;
    let got = receiver.received();
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "the second attempt came after {waited:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_410_disables_the_endpoint() {
    let app = spawn().await;
    let receiver = Receiver::start(vec![Reply::Status(410)]).await;
    let made = endpoint(
        &app,
        json!({"kind": "webhook", "url": receiver.url("/gone")}),
    )
    .await;
    open_incident(&app, Kind::Anomaly, checkout()).await;
    let worker = worker(&app, settings(&app), &[LOOPBACK], Mailer::Disabled);
    rounds_until(&worker, || async {
        deliveries(&app, "status=dead").await.len() == 1
    })
    .await;
    let shown = app
        .api_ok(&format!("/api/v1/endpoints/{}", made["id"]))
        .await;
    assert_eq!(shown["enabled"], false);
    assert!(
        shown["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{shown}"
    );
    open_incident(&app, Kind::Threshold, Scope::Service("billing".into())).await;
    more_rounds(&worker, 10).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing more goes to a disabled endpoint"
    );
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_redirect_is_a_failure_and_is_not_followed() {
    let app = spawn().await;
    let elsewhere = Receiver::start(vec![]).await;
    let moved = Reply::WithHeader(302, "location", elsewhere.url("/stolen"));
    let receiver = Receiver::start(vec![moved.clone(), moved.clone(), moved.clone(), moved]).await;
    endpoint(
        &app,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    open_incident(&app, Kind::Anomaly, checkout()).await;
    let worker = worker(&app, settings(&app), &[LOOPBACK], Mailer::Disabled);
    rounds_until(&worker, || async {
        deliveries(&app, "status=dead").await.len() == 1
    })
    .await;
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
    assert_eq!(
        receiver.received().len(),
        4,
        "every attempt of the schedule was made"
    );
    let dead = &deliveries(&app, "").await[0];
    assert_eq!(dead["last_status"], 302);
    assert_eq!(dead["response_excerpt"], "see header");
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_slow_receiver_times_out_and_is_retried() {
    let app = spawn().await;
    let receiver = Receiver::start(vec![Reply::Slow(Duration::from_secs(3))]).await;
    endpoint(
        &app,
        json!({"kind": "webhook", "url": receiver.url("/slow")}),
    )
    .await;
    open_incident(&app, Kind::Anomaly, checkout()).await;
    let mut short = settings(&app);
    short.timeouts.response = Duration::from_millis(300);
    let worker = worker(&app, short, &[LOOPBACK], Mailer::Disabled);
    rounds_until(&worker, || async {
        deliveries(&app, "status=delivered").await.len() == 1
    })
    .await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    app.stop().await;
}

#[tokio::test]
async fn deliver_an_expired_recovery_action_is_never_sent() {
    let app = spawn().await;
    let service = Receiver::start(vec![]).await;
    endpoint(
        &app,
        json!({"kind": "recovery", "url": service.url("/admin/restart"),
        "action": "restart"}),
    )
    .await;
    let incident = open_incident(&app, Kind::Anomaly, checkout()).await;
    let mut late = settings(&app);
    // The action's deadline passes before any sender gets to it (a backlog, an outage).
    late.recovery_expiry = Duration::from_millis(1);
    let worker = worker(&app, late, &[LOOPBACK], Mailer::Disabled);
    rounds_until(&worker, || async {
        deliveries(&app, "status=expired").await.len() == 1
    })
    .await;
    assert!(service.received().is_empty(), "an expired restart was sent");
    let still = seismo::store::incidents::get(&app.pool, incident.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        still.state,
        State::Open,
        "nothing was done, so nothing is being verified"
    );
    app.stop().await;
}

#[tokio::test]
async fn deliver_the_breaker_opens_then_lets_one_probe_through() {
    let app = spawn().await;
    // The first round sends all three at once (the breaker is closed then); all fail.
    let receiver = Receiver::start(vec![Reply::Status(500); 3]).await;
    let made = endpoint(
        &app,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    for service in ["a", "b", "c"] {
        open_incident(&app, Kind::Anomaly, Scope::Service(service.into())).await;
    }
    let mut tripping = settings(&app);
    tripping.breaker.threshold = 2;
    tripping.breaker.cool_off = Duration::from_millis(1500);
    tripping.notifications.delays = vec![Duration::ZERO; 8];
    let worker = worker(&app, tripping, &[LOOPBACK], Mailer::Disabled);
    let shown = format!("/api/v1/endpoints/{}", made["id"]);
    rounds_until(&worker, || async {
        app.api_ok(&shown).await["breaker"]["state"] == "open"
    })
    .await;
    let while_open = receiver.received().len();
    assert_eq!(while_open, 3, "the breaker opened after the failures");
    more_rounds(&worker, 10).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "nothing is sent while the breaker is open"
    );
    // After the cool-off one probe goes; it succeeds, the breaker closes, the rest follow.
    rounds_until(&worker, || async {
        deliveries(&app, "status=delivered").await.len() == 3
    })
    .await;
    let breaker = &app.api_ok(&shown).await["breaker"];
    assert_eq!(breaker["state"], "closed", "{breaker}");
    let got = receiver.received();
    assert_eq!(got.len(), 6, "three failures, one probe, the other two");
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_loopback_target_outside_the_allow_list_is_refused() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(vec![]).await;
    let body =
        json!({"project_id": app.project.id, "kind": "webhook", "url": receiver.url("/hook")});
    let (status, answer) = call(&app, Method::POST, "/api/v1/endpoints", Some(body)).await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("SEISMO_WEBHOOK_ALLOW_CIDRS"), "{message}");
    // One stored while it was allowed (the allow-list changed since) is refused on sending.
    endpoints::create(
        &app.pool,
        &NewEndpoint {
            url: Some(receiver.url("/hook")),
            secret: Some(Secret::generate()),
            ..NewEndpoint::new(app.project.id, "webhook")
        },
    )
    .await
    .expect("stored");
    open_incident(&app, Kind::Anomaly, checkout()).await;
    let worker = worker(&app, settings(&app), &[], Mailer::Disabled);
    rounds_until(&worker, || async {
        deliveries(&app, "status=dead").await.len() == 1
    })
    .await;
    assert!(
        receiver.received().is_empty(),
        "a refused address was reached"
    );
    let dead = &deliveries(&app, "").await[0];
    assert!(
        dead["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("127.0.0.1")),
        "{dead}"
    );
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_receiver_down_gets_every_notification_once_it_is_back() {
    let app = spawn().await;
    let port = closed_port().await;
    endpoint(
        &app,
        json!({"kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook")}),
    )
    .await;
    for service in ["a", "b", "c", "d"] {
        open_incident(&app, Kind::Anomaly, Scope::Service(service.into())).await;
    }
    let mut patient = settings(&app);
    patient.notifications.delays = vec![Duration::from_millis(200); 30];
    let worker = worker(&app, patient, &[LOOPBACK], Mailer::Disabled);
    more_rounds(&worker, 5).await;
    let failing = deliveries(&app, "status=pending").await;
    assert_eq!(failing.len(), 4);
    assert!(
        failing.iter().all(|d| d["attempts"].as_i64() >= Some(1)),
        "{failing:?}"
    );
    let receiver = Receiver::start_on(port, vec![]).await;
    rounds_until(&worker, || async {
        deliveries(&app, "status=delivered").await.len() == 4
    })
    .await;
    more_rounds(&worker, 10).await;
    let mut ids: HashMap<String, usize> = HashMap::new();
    for request in receiver.received() {
        *ids.entry(request.header("webhook-id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(ids.len(), 4);
    assert!(
        ids.values().all(|n| *n == 1),
        "a webhook-id was answered 2xx twice: {ids:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_two_workers_on_one_database_never_send_a_row_twice() {
    let app = spawn().await;
    let receiver = Receiver::start(vec![]).await;
    endpoint(
        &app,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    const INCIDENTS: usize = 150;
    for n in 0..INCIDENTS {
        open_incident(&app, Kind::Anomaly, Scope::Service(format!("svc-{n}"))).await;
    }
    let mut small = settings(&app);
    small.batch = 10;
    small.concurrency = 4;
    // Two processes: each with a pool of its own, as two `seismo serve` would have.
    let mut process = Vec::new();
    for _ in 0..2 {
        let pool = seismo::store::connect(&app.database_url, 4)
            .await
            .expect("a pool");
        let guard = seismo::deliver::ssrf::Guard::new(&[LOOPBACK.to_owned()]).expect("valid");
        let metrics = app.app.metrics.clone();
        let worker = seismo::deliver::worker::Worker::new(
            pool,
            metrics,
            small.clone(),
            guard,
            Mailer::Disabled,
        );
        process.push(worker.expect("a worker"));
    }
    let (b, a) = (process.pop().expect("two"), process.pop().expect("two"));
    let pool = app.pool.clone();
    let all_done = || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM deliveries WHERE status <> 'delivered')",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        pending == 0
    };
    let drive = |w: seismo::deliver::worker::Worker| async move {
        let mut idle = 0;
        for _ in 0..500 {
            let work = w.round().await.expect("round");
            idle = if work == 0 { idle + 1 } else { 0 };
            if idle == 5 {
                break;
            }
        }
    };
    tokio::join!(drive(a), drive(b));
    assert!(all_done().await, "everything was delivered");
    let got = receiver.received();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for request in &got {
        *ids.entry(request.header("webhook-id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(ids.len(), INCIDENTS);
    assert!(ids.values().all(|n| *n == 1), "a row was sent twice");
    app.stop().await;
}

#[tokio::test]
async fn deliver_a_recovery_endpoint_acts_on_a_service_once_per_cooldown() {
    let app = spawn().await;
    let service = Receiver::start(vec![]).await;
    endpoint(
        &app,
        json!({"kind": "recovery", "url": service.url("/admin/restart"),
        "action": "restart", "services": ["checkout"], "cooldown_minutes": 10}),
    )
    .await;
    let worker = worker(&app, settings(&app), &[LOOPBACK], Mailer::Disabled);
    let first = open_incident(&app, Kind::Anomaly, checkout()).await;
    rounds_until(&worker, || async { service.received().len() == 1 }).await;
    // The first incident is over; the service misbehaves again within the cooldown.
    let mut conn = app.pool.acquire().await.expect("connection");
    seismo::store::incidents::transition(
        &mut conn,
        first.id,
        State::Resolved,
        "calm",
        chrono::Utc::now(),
    )
    .await
    .expect("resolve")
    .expect("active");
    drop(conn);
    open_incident(&app, Kind::Anomaly, checkout()).await;
    // A project-wide incident is no one service's: the checkout endpoint leaves it alone.
    open_incident(&app, Kind::Anomaly, Scope::Project).await;
    rounds_until(&worker, || async {
        deliveries(&app, "kind=recovery&status=skipped").await.len() == 1
    })
    .await;
    more_rounds(&worker, 5).await;
    assert_eq!(
        service.received().len(),
        1,
        "a second restart within the cooldown"
    );
    assert_eq!(deliveries(&app, "kind=recovery").await.len(), 2);
    app.stop().await;
}
