//! Faults against real `seismo serve` processes under load: PostgreSQL stopped for half a
//! minute (every client still gets 2xx, every acknowledged event is stored exactly once),
//! and `kill -9` mid-load (every acknowledged event is in the table after a restart).
//! Each uses a database of its own; the outage uses a throwaway cluster of its own.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use seismo::store::endpoints::{self, NewEndpoint};

use crate::harness::{envelope, fresh_database_on, python_exception, server_url};
use crate::process::{free_port, Served};
use crate::receivers::Receiver;

/// What a load run saw: the ids Seismo acknowledged, and every other answer.
#[derive(Default)]
struct Tally {
    acknowledged: Vec<Uuid>,
    refused: Vec<String>,
}

/// Sends events from `clients` concurrent clients until `stop` is set.
fn load(
    dsn: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Tally>>, Vec<tokio::task::JoinHandle<()>>) {
    let url = url::Url::parse(dsn).expect("a DSN");
    let key = url.username().to_owned();
    let project = url.path().trim_matches('/').to_owned();
    let port = url.port().expect("a port");
    let endpoint = format!("http://127.0.0.1:{port}/api/{project}/envelope/");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let tasks = (0..clients)
        .map(|client| {
            let (http, endpoint, key, tally, stop) = (
                http.clone(),
                endpoint.clone(),
                key.clone(),
                tally.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let id = Uuid::new_v4();
                    let mut event =
                        python_exception("TimeoutError", "upstream", &["pay"], client as u32);
                    event["event_id"] = json!(id.simple().to_string());
                    let payload = serde_json::to_vec(&event).expect("json");
                    let answer = http
                        .post(&endpoint)
                        .header(
                            "X-Sentry-Auth",
                            format!("Sentry sentry_key={key}, sentry_version=7"),
                        )
                        .body(envelope(&json!({}), &[("event", &payload)]))
                        .send()
                        .await;
                    let mut tally = tally.lock().expect("tally");
                    match answer {
                        Ok(answer) if answer.status().is_success() => tally.acknowledged.push(id),
                        Ok(answer) => tally
                            .refused
                            .push(format!("{} (request {n})", answer.status())),
                        Err(error) => tally.refused.push(format!("{error} (request {n})")),
                    }
                }
            })
        })
        .collect();
    (tally, tasks)
}

async fn finish(stop: Arc<AtomicBool>, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a client task");
    }
}

/// How many of `ids` are stored, and how many rows they make (equal when none is twice).
async fn stored(pool: &PgPool, ids: &[Uuid]) -> (i64, i64) {
    sqlx::query_as("SELECT count(DISTINCT event_id), count(*) FROM events WHERE event_id = ANY($1)")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap_or((-1, -1))
}

/// Waits (at most `limit`) until every id is stored; returns what is stored then.
async fn wait_for_all(pool: &PgPool, ids: &[Uuid], limit: Duration) -> (i64, i64) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let found = stored(pool, ids).await;
        if found.0 == ids.len() as i64 || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_postgres_stopped_for_30_s_under_load_clients_get_2xx_and_every_event_is_stored_once()
{
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut cluster = seismo::pg_runner::EmbeddedPostgres::start(&dir.path().join("pg"))
        .await
        .expect("start a throwaway cluster");
    let server = format!("postgres://postgres@127.0.0.1:{}", cluster.port());
    let (database_url, pool) = fresh_database_on(&server).await;
    let spool = tempfile::tempdir().expect("a spool folder");
    let served = Served::start(&database_url, spool.path(), free_port(), &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = load(&served.dsn, 8, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.stop().await.expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_secs(30)).await;
    cluster.restart().await.expect("start PostgreSQL again");
    tokio::time::sleep(Duration::from_secs(3)).await;
    finish(stop, tasks).await;

    let (acknowledged, refused) = {
        let tally = tally.lock().expect("tally");
        (tally.acknowledged.clone(), tally.refused.clone())
    };
    let some = |list: &[String]| list[..list.len().min(10)].join("; ");
    assert!(
        refused.is_empty(),
        "refused during the outage: {}",
        some(&refused)
    );
    assert!(
        acknowledged.len() > 100,
        "{} acknowledged",
        acknowledged.len()
    );
    let (distinct, rows) = wait_for_all(&pool, &acknowledged, Duration::from_secs(90)).await;
    assert_eq!(
        distinct,
        acknowledged.len() as i64,
        "every acknowledged event is stored; the log ends:\n{}",
        served.log_tail()
    );
    assert_eq!(rows, distinct, "none twice");
    let counted: i64 =
        sqlx::query_scalar("SELECT sum(events)::int8 FROM minute_counts WHERE scope = 'project'")
            .fetch_one(&pool)
            .await
            .expect("counts");
    assert_eq!(counted, distinct, "counts not doubled");
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_kill_9_mid_load_then_restart_every_acknowledged_event_is_stored() {
    let (database_url, pool) = fresh_database_on(server_url().await).await;
    let spool = tempfile::tempdir().expect("a spool folder");
    let port = free_port();
    let served = Served::start(&database_url, spool.path(), port, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, tasks) = load(&served.dsn, 8, stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    served.kill();
    finish(stop, tasks).await;
    let acknowledged = tally.lock().expect("tally").acknowledged.clone();
    assert!(!acknowledged.is_empty());

    let restarted = Served::start(&database_url, spool.path(), port, &[]);
    let (distinct, rows) = wait_for_all(&pool, &acknowledged, Duration::from_secs(30)).await;
    assert_eq!(
        distinct,
        acknowledged.len() as i64,
        "every acknowledged event survived kill -9"
    );
    assert_eq!(rows, distinct);
    let unique: HashSet<&Uuid> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len());
    drop(restarted);
}

/// `count` events of one new issue, spread over the processes' envelope endpoints.
async fn burst(dsns: &[String], count: usize) -> usize {
    let http = reqwest::Client::new();
    let mut acknowledged = 0;
    for n in 0..count {
        let url = url::Url::parse(&dsns[n % dsns.len()]).expect("a DSN");
        let endpoint = format!(
            "http://127.0.0.1:{}/api{}/envelope/",
            url.port().expect("a port"),
            url.path().trim_end_matches('/')
        );
        let event = python_exception("DeadlockDetected", "checkout", &["reserve"], 7);
        let payload = serde_json::to_vec(&event).expect("json");
        let answer = http
            .post(&endpoint)
            .header(
                "X-Sentry-Auth",
                format!("Sentry sentry_key={}, sentry_version=7", url.username()),
            )
            .body(envelope(&json!({}), &[("event", &payload)]))
            .send()
            .await
            .expect("a burst request");
        acknowledged += usize::from(answer.status().is_success());
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_three_replicas_on_one_database_open_one_incident_per_series() {
    let (database_url, pool) = fresh_database_on(server_url().await).await;
    // Half an hour of a quiet, steady project before the replicas start (so their first
    // pass learns it).
    let mut conn = pool.acquire().await.expect("a connection");
    let project = seismo::store::projects::create(&mut conn, "shop", "Shop", None)
        .await
        .expect("a project");
    drop(conn);
    sqlx::query(
        "INSERT INTO minute_counts (project_id, scope, service, issue_id, minute, events) \
         SELECT $1, 'project', '', 0, m, 3 FROM generate_series( \
           date_trunc('minute', now()) - interval '30 minutes', \
           date_trunc('minute', now()) - interval '1 minute', interval '1 minute') AS m",
    )
    .bind(project.id)
    .execute(&pool)
    .await
    .expect("history");
    // Every incident announced to a webhook, and a restart asked of a recovery endpoint.
    let receiver = Receiver::start(vec![]).await;
    let mut webhook = NewEndpoint::new(project.id, "webhook");
    webhook.url = Some(receiver.url("/hooks"));
    webhook.events = vec!["incident.opened".into()];
    let mut restart = NewEndpoint::new(project.id, "recovery");
    restart.url = Some(receiver.url("/admin/restart"));
    restart.action = Some("restart".into());
    restart.incident_kinds = vec!["anomaly".into()];
    for endpoint in [webhook, restart] {
        endpoints::create(&pool, &endpoint)
            .await
            .expect("an endpoint");
    }
    let spools: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("spool"))
        .collect();
    let allow = [("SEISMO_WEBHOOK_ALLOW_CIDRS", "127.0.0.1/32")];
    let replicas: Vec<Served> = spools
        .iter()
        .map(|spool| Served::start(&database_url, spool.path(), free_port(), &allow))
        .collect();
    let dsns: Vec<String> = replicas.iter().map(|r| r.dsn.clone()).collect();
    assert_eq!(burst(&dsns, 300).await, 300);

    // The burst's minute closes within a minute and ten seconds; then every replica has had
    // several passes at it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let mut settled = None;
    while tokio::time::Instant::now() < deadline {
        let opened: i64 =
            sqlx::query_scalar("SELECT count(*) FROM incidents WHERE kind <> 'new_issue'")
                .fetch_one(&pool)
                .await
                .expect("incidents");
        match (opened > 0, settled) {
            (true, None) => settled = Some(tokio::time::Instant::now() + Duration::from_secs(20)),
            (true, Some(at)) if tokio::time::Instant::now() > at => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let per_series: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT scope, service, issue_id, count(*) FROM incidents \
         GROUP BY scope, service, issue_id ORDER BY scope, service, issue_id",
    )
    .fetch_all(&pool)
    .await
    .expect("incidents per series");
    assert!(
        per_series.iter().any(|(scope, ..)| scope == "project"),
        "the burst paged the project: {per_series:?}; a log ends:\n{}",
        replicas[0].log_tail()
    );
    assert!(
        per_series.iter().all(|(.., count)| *count == 1),
        "one incident per series, whichever replica decided it: {per_series:?}"
    );

    // One delivery per incident and endpoint, each webhook-id received once.
    let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&pool)
        .await
        .expect("incidents");
    let anomalies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM incidents WHERE kind = 'anomaly'")
            .fetch_one(&pool)
            .await
            .expect("anomalies");
    assert!(
        anomalies > 0,
        "the burst opened an anomaly incident to restart for"
    );
    let expected = usize::try_from(incidents + anomalies).expect("a count");
    receiver.wait_for(expected).await;
    // A duplicate would arrive after the expected ones: give it time to.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    let received = ids.len();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (received, unique.len()),
        (expected, expected),
        "{incidents} incidents announced once each, {anomalies} restarts asked once each"
    );
    let per_action: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT endpoint_id, incident_id, count(*) FROM deliveries \
         GROUP BY endpoint_id, incident_id HAVING count(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .expect("deliveries");
    assert!(
        per_action.is_empty(),
        "duplicate deliveries: {per_action:?}"
    );
    drop(replicas);
}
