//! Delivery benchmarks against PostgreSQL and real receivers on loopback, with the delivery
//! worker `seismo serve` runs (default interval and concurrency):
//!
//! 1. **Latency**: incidents opened one at a time (every 100 ms, each committed with its
//!    outbox row exactly as the detector commits its decision) → the recovery webhook's
//!    request at the service. Prints p50 / p99 / max.
//! 2. **Burst**: 1,000 incidents opened in one transaction, a recovery endpoint and a
//!    notification webhook: the time until all 2,000 requests have arrived, and the rate.
//! 3. **Mail**: one incident announced to 300 email endpoints: mails per second through an
//!    SMTP server on loopback (each mail rendered with its chart).
//!
//! `cargo run --release --example deliver_bench` needs the machine's PostgreSQL at
//! 127.0.0.1:5432 (user postgres); it creates and drops a database of its own. Arguments:
//! `[latency incidents] [burst incidents] [mail endpoints]` (defaults 200, 1000, 300).

#[path = "../tests/integration/receivers.rs"]
#[allow(dead_code)]
mod receivers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use seismo::config::{Config, Sources};
use seismo::deliver::mail::transport::Mailer;
use seismo::deliver::ssrf::Guard;
use seismo::deliver::worker::Worker;
use seismo::deliver::Settings;
use seismo::metrics::Metrics;
use seismo::model::incident::message;
use seismo::model::{Kind, ProjectId, Scope};
use seismo::store::endpoints::{self, NewEndpoint};
use seismo::store::incidents::{self, NewIncident};
use seismo::store::{self, projects};
use sqlx::PgPool;

use receivers::{Receiver, SmtpServer};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |n: usize, default: usize| {
        std::env::args()
            .nth(n)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (latency, burst, mails) = (arg(1, 200), arg(2, 1000), arg(3, 300));
    let name = format!("seismo_bench_deliver_{}", std::process::id());
    let admin = store::connect(&format!("{SERVER}/postgres"), 1).await?;
    store::create_database_if_missing(&admin, &name).await?;
    let result = run(&format!("{SERVER}/{name}"), latency, burst, mails).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&admin)
        .await?;
    result
}

async fn run(url: &str, latency: usize, burst: usize, mails: usize) -> anyhow::Result<()> {
    let pool = store::connect(url, 16).await?;
    store::migrate(&pool).await?;
    let smtp = SmtpServer::start().await;
    let mut sources = Sources::default();
    sources.set("smtp_url", smtp.url());
    sources.set("mail_from", "seismo@example.com");
    sources.set("mail_group_wait_seconds", "0");
    sources.set("mail_repeat_minutes", "0");
    let config = Config::from_sources(&sources)?;
    let settings = Settings::from_config(&config);
    println!(
        "worker interval_ms {} concurrency {}",
        settings.interval.as_millis(),
        settings.concurrency
    );
    let mailer = Mailer::from_config(
        config.smtp_url.as_ref(),
        config.mail_from.as_deref(),
        Duration::from_secs(30),
    )?;
    let guard = Guard::new(&["127.0.0.0/8".to_owned()])?;
    let worker = Worker::new(
        pool.clone(),
        Arc::new(Metrics::new()),
        settings,
        guard,
        mailer,
    )?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));

    measure_latency(&pool, latency).await?;
    measure_burst(&pool, burst).await?;
    measure_mail(&pool, &smtp, mails).await?;

    let _ = stop.send(true);
    running.await?;
    Ok(())
}

async fn project(pool: &PgPool, slug: &str) -> anyhow::Result<ProjectId> {
    let mut conn = pool.acquire().await?;
    Ok(projects::create(&mut conn, slug, slug, None).await?.id)
}

fn hook(project_id: ProjectId, kind: &str, url: String) -> NewEndpoint {
    NewEndpoint {
        url: Some(url),
        secret: Some(seismo::deliver::signing::Secret::generate()),
        action: (kind == "recovery").then(|| "restart".to_owned()),
        ..NewEndpoint::new(project_id, kind)
    }
}

/// Opens incidents on services `first..first+n` and writes their outbox rows, in one
/// transaction (the detector's commit); the commit's time.
async fn open(
    pool: &PgPool,
    project_id: ProjectId,
    first: usize,
    n: usize,
) -> anyhow::Result<Instant> {
    let at = Utc::now().duration_trunc(TimeDelta::minutes(1))?;
    let mut tx = pool.begin().await?;
    for i in first..first + n {
        let new = NewIncident {
            project_id,
            kind: Kind::Anomaly,
            scope: Scope::Service(format!("svc-{i}")),
            opened_at: at,
            score: 0.99,
            details: serde_json::json!({"expected": 3.0}),
            reason: "anomaly detected".into(),
            kinds: vec![Kind::Anomaly],
        };
        let incident = incidents::open(&mut tx, &new)
            .await?
            .expect("a fresh series");
        let body = message("incident.opened", incident.updated_at, &incident);
        incidents::enqueue(
            &mut tx,
            project_id,
            Some(incident.id),
            "incident.opened",
            &body,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Instant::now())
}

async fn measure_latency(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    let project_id = project(pool, "latency").await?;
    let service = Receiver::start(vec![]).await;
    endpoints::create(
        pool,
        &hook(project_id, "recovery", service.url("/admin/restart")),
    )
    .await?;
    let mut decided = Vec::with_capacity(n);
    for i in 0..n {
        decided.push(open(pool, project_id, i, 1).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = service.wait_for(n).await;
    // Requests are matched to decisions by the service in the payload.
    let mut latencies: Vec<f64> = got
        .iter()
        .map(|r| {
            let service = r.json()["data"]["service"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let i: usize = service.trim_start_matches("svc-").parse().unwrap_or(0);
            (r.at - decided[i]).as_secs_f64() * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "latency incidents {n} decision_to_request_ms p50 {:.0} p99 {:.0} max {:.0}",
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    Ok(())
}

async fn measure_burst(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    let project_id = project(pool, "burst").await?;
    let service = Receiver::start(vec![]).await;
    let chat = Receiver::start(vec![]).await;
    endpoints::create(
        pool,
        &hook(project_id, "recovery", service.url("/admin/restart")),
    )
    .await?;
    endpoints::create(pool, &hook(project_id, "webhook", chat.url("/hook"))).await?;
    let started = Instant::now();
    open(pool, project_id, 0, n).await?;
    let committed = started.elapsed();
    service.wait_for(n).await;
    chat.wait_for(n).await;
    let took = started.elapsed();
    println!(
        "burst incidents {n} requests {} commit_s {:.2} all_delivered_s {:.2} requests_per_s {:.0}",
        2 * n,
        committed.as_secs_f64(),
        took.as_secs_f64(),
        (2 * n) as f64 / (took - committed).as_secs_f64()
    );
    Ok(())
}

async fn measure_mail(pool: &PgPool, smtp: &SmtpServer, n: usize) -> anyhow::Result<()> {
    let project_id = project(pool, "mail").await?;
    for i in 0..n {
        let endpoint = NewEndpoint {
            addresses: vec![format!("oncall-{i}@example.com")],
            ..NewEndpoint::new(project_id, "email")
        };
        endpoints::create(pool, &endpoint).await?;
    }
    // The series around the incident, so every mail carries its chart.
    sqlx::query(
        "INSERT INTO minute_counts (project_id, scope, service, issue_id, minute, events) \
         SELECT $1, 'service', 'svc-0', 0, m, CASE WHEN m >= date_trunc('minute', now()) THEN 90 ELSE 3 END \
         FROM generate_series(date_trunc('minute', now()) - interval '30 minutes', \
                              date_trunc('minute', now()), interval '1 minute') AS m",
    )
    .bind(project_id)
    .execute(pool)
    .await?;
    let started = Instant::now();
    open(pool, project_id, 0, 1).await?;
    smtp.wait_for(n).await;
    let took = started.elapsed().as_secs_f64();
    let got = smtp.mails();
    let bytes: usize = got.iter().map(|m| m.data.len()).sum();
    let charted = got.iter().filter(|m| m.data.contains("image/png")).count();
    println!(
        "mail mails {n} with_chart {charted} seconds {took:.2} mails_per_s {:.0} avg_bytes {}",
        n as f64 / took,
        bytes / n.max(1)
    );
    Ok(())
}
