//! What the delivery tests share: a delivery worker with short schedules against the test
//! app's database, endpoints made through the API, and incidents opened and announced
//! exactly as the detector does it (the incident row, then its outbox row).

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use reqwest::Method;
use seismo::deliver::breaker::Policy;
use seismo::deliver::client::Timeouts;
use seismo::deliver::mail::transport::Mailer;
use seismo::deliver::payload::Links;
use seismo::deliver::retry::Schedule;
use seismo::deliver::ssrf::Guard;
use seismo::deliver::worker::Worker;
use seismo::deliver::Settings;
use seismo::model::incident::message;
use seismo::model::Scope;
use seismo::model::{Incident, IncidentId, Kind, State};
use seismo::store::incidents::{self, NewIncident};
use serde_json::{json, Value};

use crate::harness::{call, TestApp};

pub const LOOPBACK: &str = "127.0.0.0/8";

fn millis(values: &[u64]) -> Schedule {
    Schedule {
        delays: values.iter().copied().map(Duration::from_millis).collect(),
    }
}

/// Settings for tests: retries within a second or two, no mail grouping or pacing.
pub fn settings(app: &TestApp) -> Settings {
    Settings {
        interval: Duration::from_millis(20),
        batch: 200,
        lease: Duration::from_secs(30),
        concurrency: 16,
        notifications: millis(&[0, 100, 200, 300]),
        recovery: millis(&[0, 100, 200]),
        recovery_expiry: Duration::from_secs(60),
        verify_window: Duration::from_secs(600),
        mail_group_wait: Duration::ZERO,
        mail_repeat: Duration::ZERO,
        breaker: Policy {
            threshold: 100,
            cool_off: Duration::from_secs(1),
            probe_deadline: Duration::from_secs(5),
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(2),
        },
        links: Links::new(app.url("/").parse().expect("a URL"), None),
    }
}

pub fn worker(app: &TestApp, settings: Settings, allow: &[&str], mailer: Mailer) -> Worker {
    let cidrs: Vec<String> = allow.iter().map(|c| c.to_string()).collect();
    let guard = Guard::new(&cidrs).expect("valid CIDRs");
    Worker::new(
        app.pool.clone(),
        app.app.metrics.clone(),
        settings,
        guard,
        mailer,
    )
    .expect("a delivery worker")
}

/// A mailer for an SMTP URL, sending as Seismo.
pub fn mailer(url: &str) -> Mailer {
    let url = seismo::config::Config::from_sources(&{
        let mut sources = seismo::config::Sources::default();
        sources.set("smtp_url", url);
        sources
    })
    .expect("valid SMTP URL")
    .smtp_url;
    Mailer::from_config(
        url.as_ref(),
        Some("Seismo <seismo@example.com>"),
        Duration::from_secs(5),
    )
    .expect("a mailer")
}

/// Creates an endpoint through the API; the answer (with its secret).
pub async fn endpoint(app: &TestApp, body: Value) -> Value {
    let mut body = body;
    body["project_id"] = json!(app.project.id);
    let (status, made) = call(app, Method::POST, "/api/v1/endpoints", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    made
}

/// Opens an incident on `scope` and writes its `incident.opened` row, as the detector does.
pub async fn open_incident(app: &TestApp, kind: Kind, scope: Scope) -> Incident {
    let mut tx = app.pool.begin().await.expect("transaction");
    let incident = incidents::open(
        &mut tx,
        &NewIncident {
            project_id: app.project.id,
            kind,
            scope,
            opened_at: Utc::now()
                .duration_trunc(TimeDelta::minutes(1))
                .expect("a minute"),
            score: 0.9,
            details: json!({"expected": 3.0}),
            reason: "anomaly detected".into(),
            kinds: vec![kind],
        },
    )
    .await
    .expect("open")
    .expect("no active incident on the series");
    let body = message("incident.opened", incident.updated_at, &incident);
    incidents::enqueue(
        &mut tx,
        app.project.id,
        Some(incident.id),
        "incident.opened",
        &body,
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");
    incident
}

/// Deliveries through the API for a query string (`status=dead&kind=webhook`).
pub async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let body = app
        .api_ok(&format!("/api/v1/deliveries?limit=100&{query}"))
        .await;
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Runs delivery rounds until `done` holds (up to 20 s).
pub async fn rounds_until<F, Fut>(worker: &Worker, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        worker.round().await.expect("a delivery round");
        if done().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `n` more delivery rounds, a little apart: what would happen next, if anything.
pub async fn more_rounds(worker: &Worker, n: usize) {
    for _ in 0..n {
        worker.round().await.expect("a delivery round");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the worker in the background until the returned sender is dropped or set.
pub fn run_in_background(worker: Worker) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(worker.run(stopped));
    stop
}

/// Waits until the incident is in `state` (up to 20 s).
pub async fn wait_for_state(app: &TestApp, id: IncidentId, state: State) -> Incident {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let incident = incidents::get(&app.pool, id)
            .await
            .expect("get")
            .expect("exists");
        if incident.state == state {
            return incident;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "incident {id} is {:?} after 20 s, not {state:?}",
            incident.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
