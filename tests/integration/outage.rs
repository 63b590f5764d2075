//! PostgreSQL going away under a running Seismo, on a throwaway cluster of the test's own
//! (never the machine's server): events keep being acknowledged into the spool, `/readyz`
//! and the metrics say so, and once the database is back every acknowledged event is
//! stored exactly once, counts and span totals included. A full spool answers 503; a
//! damaged spool is recovered at start, its good batches replayed, its losses counted.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use seismo::detect::worker::{Settings, Worker};
use seismo::grouping;
use seismo::ingest::received::Received;
use seismo::ingest::sentry::event::parse;
use seismo::metrics::Metrics;
use seismo::model::{ProjectId, Source};
use seismo::pg_runner::EmbeddedPostgres;
use seismo::store::events::NewEvent;
use seismo::store::spool::{watermarks, Spool};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{python_exception, TestApp};

/// A throwaway cluster in a folder the `postgres` user may enter.
async fn own_cluster() -> (tempfile::TempDir, EmbeddedPostgres) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let cluster = EmbeddedPostgres::start(&dir.path().join("pg"))
        .await
        .expect("start a throwaway cluster");
    (dir, cluster)
}

fn server_of(cluster: &EmbeddedPostgres) -> String {
    format!("postgres://postgres@127.0.0.1:{}", cluster.port())
}

/// An event with its own id, as an SDK sends it.
fn event_with_id(id: Uuid, n: u32) -> Value {
    let mut event = python_exception("KeyError", "'sku'", &["checkout", "price"], 10 + n);
    event["event_id"] = json!(id.simple().to_string());
    event
}

/// Three spans of service `api`, one failed, as OTLP/JSON.
fn traces() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let span = |id: u8, failed: bool| {
        json!({"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": format!("b7ad6b71692033{id:02x}"),
            "name": "GET /cart", "kind": 2, "startTimeUnixNano": (now - 1_000_000).to_string(),
            "endTimeUnixNano": now.to_string(), "status": {"code": if failed { 2 } else { 1 }}})
    };
    json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeSpans": [{"spans": [span(1, false), span(2, true), span(3, false)]}]}]})
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("readyz json"))
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(app.project.id)
        .fetch_one(&app.pool)
        .await
        .expect(sql)
}

/// Waits (at most 60 s) until the spool is drained and `events` rows are stored.
async fn wait_until_replayed(app: &TestApp, events: i64) {
    for _ in 0..600 {
        let drained = app.app.spool.as_ref().is_some_and(|s| s.pending() == 0);
        let stored = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&app.pool)
            .await
            .unwrap_or(-1);
        if drained && stored == events {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the spool did not drain into {events} stored events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_absorbed_by_the_spool_and_replayed_exactly_once() {
    let (_dir, mut cluster) = own_cluster().await;
    let app = TestApp::spawn_on(&server_of(&cluster), |s| s.set("spool_after_ms", "1000")).await;
    let before = Uuid::new_v4();
    assert_eq!(
        app.send_event(&event_with_id(before, 0)).await.status(),
        200
    );
    assert_eq!(readyz(&app).await.1["status"], "ready");

    cluster.stop().await.expect("stop the cluster");
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        let answer = app.send_event(&event_with_id(*id, n as u32)).await;
        assert_eq!(answer.status(), 200, "event {n} during the outage");
    }
    let spans = app
        .http
        .post(app.url("/v1/traces"))
        .header("x-seismo-key", app.key())
        .json(&traces())
        .send()
        .await
        .expect("traces");
    assert_eq!(spans.status(), 200);
    let (status, ready) = readyz(&app).await;
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("spooling")),
        "{ready}"
    );
    assert_eq!(ready["database"], "unreachable");
    assert!(ready["spool"]["records"].as_u64() >= Some(20), "{ready}");
    let metrics = app.metrics();
    assert!(!metrics.contains("seismo_spool_records 0"), "{metrics}");

    cluster.restart().await.expect("the cluster comes back");
    wait_until_replayed(&app, 21).await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM events WHERE event_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(stored, 20, "every acknowledged event, once");
    let project_events =
        "SELECT sum(events)::int8 FROM minute_counts WHERE project_id = $1 AND scope = 'project'";
    assert_eq!(
        scalar(&app, project_events).await,
        21,
        "counts are not doubled"
    );
    let seen = "SELECT sum(times_seen)::int8 FROM issues WHERE project_id = $1";
    assert_eq!(scalar(&app, seen).await, 21, "issue totals are not doubled");
    let requests = "SELECT sum(requests)::int8 FROM minute_counts WHERE project_id = $1 AND scope = 'service' AND service = 'api'";
    assert_eq!(scalar(&app, requests).await, 3, "span counts once");
    assert_eq!(readyz(&app).await.1["status"], "ready");

    // An SDK retrying a replayed event is told 200 and stores nothing twice.
    assert_eq!(
        app.send_event(&event_with_id(ids[0], 0)).await.status(),
        200
    );
    assert_eq!(scalar(&app, seen).await, 21);
    app.stop().await;
}

/// The project sent nothing since Seismo started, then the database went away: its key
/// was cached at start, so its first event is spooled, not refused (an SDK drops an event
/// answered 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_unused_since_the_start_works_through_an_outage() {
    let (_dir, mut cluster) = own_cluster().await;
    let app = TestApp::spawn_on(&server_of(&cluster), |s| s.set("spool_after_ms", "1000")).await;
    cluster.stop().await.expect("stop the cluster");
    let id = Uuid::new_v4();
    let answer = app.send_event(&event_with_id(id, 0)).await;
    assert_eq!(
        answer.status(),
        200,
        "{}",
        answer.text().await.unwrap_or_default()
    );

    cluster.restart().await.expect("the cluster comes back");
    wait_until_replayed(&app, 1).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(stored, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_with_retry_after() {
    let (_dir, mut cluster) = own_cluster().await;
    let app = TestApp::spawn_on(&server_of(&cluster), |s| s.set("spool_max_bytes", "300")).await;
    // The key is known from before the outage (a service that was already sending).
    assert_eq!(
        app.send_event(&event_with_id(Uuid::new_v4(), 0))
            .await
            .status(),
        200
    );
    cluster.stop().await.expect("stop the cluster");
    let refused = app.send_event(&event_with_id(Uuid::new_v4(), 1)).await;
    assert_eq!(refused.status(), 503);
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("integer Retry-After");
    assert!(retry_after >= 1);
    assert!(
        app.metrics().contains("reason=\"spool_full\""),
        "{}",
        app.metrics()
    );
    cluster.restart().await.expect("restart");
    app.stop().await;
}

/// An event for project 1 (the harness's project in a fresh database), ready for the writer.
fn new_event(n: u32) -> NewEvent {
    let payload = serde_json::to_vec(&event_with_id(Uuid::new_v4(), n)).expect("json");
    let received = Received {
        project_id: ProjectId(1),
        source: Source::Sentry,
        at: Utc::now(),
        envelope_event_id: None,
    };
    let event = parse(&payload, received).expect("a valid event");
    let grouping = grouping::group(&event);
    NewEvent::new(event, grouping).expect("an event row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spool_is_recovered_at_start_its_good_batches_replayed_and_the_loss_counted() {
    let folder = tempfile::tempdir().expect("a spool folder");
    let spool =
        Spool::open(folder.path(), 1 << 20, std::sync::Arc::new(Metrics::new())).expect("open");
    let (good, damaged, later) = (new_event(1), [new_event(2), new_event(3)], new_event(4));
    spool
        .append(Uuid::new_v4(), std::slice::from_ref(&good), &[])
        .await
        .expect("append");
    spool
        .append(Uuid::new_v4(), &damaged, &[])
        .await
        .expect("append");
    spool
        .append(Uuid::new_v4(), std::slice::from_ref(&later), &[])
        .await
        .expect("append");
    drop(spool);
    let segment = std::fs::read_dir(folder.path())
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|e| e == "spool"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    // Garbage over the middle record, and a record torn in half at the end.
    let middle = bytes.len() / 2;
    bytes[middle..middle + 64].fill(0xa5);
    bytes.extend_from_slice(b"SPR1\x10\x00");
    std::fs::write(&segment, bytes).expect("damage the spool");

    let path = folder.path().display().to_string();
    let app = TestApp::spawn_with(|s| s.set("spool_dir", path)).await;
    wait_until_replayed(&app, 2).await;
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM events ORDER BY received_at")
        .fetch_all(&app.pool)
        .await
        .expect("events");
    assert!(
        stored.contains(&good.event_id) && stored.contains(&later.event_id),
        "{stored:?}"
    );
    let metrics = app.metrics();
    let corrupt = metrics
        .lines()
        .find_map(|l| l.strip_prefix("seismo_spool_corrupt_records_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the corrupt counter");
    assert!(
        corrupt >= 2.0,
        "the torn tail and the damaged record: {corrupt}"
    );
    assert_eq!(
        app.send_event(&event_with_id(Uuid::new_v4(), 9))
            .await
            .status(),
        200
    );
    assert_eq!(app.event_count().await, 3, "and it serves");
    app.stop().await;
}

/// The last bucket a detection pass at `now` decided for the test project.
async fn decided_through(app: &TestApp, worker: &mut Worker, now: DateTime<Utc>) -> DateTime<Utc> {
    worker.pass(now).await.expect("a detection pass");
    sqlx::query_scalar("SELECT last_bucket FROM detector_checkpoints WHERE project_id = $1")
        .bind(app.project.id)
        .fetch_one(&app.pool)
        .await
        .expect("a checkpoint")
}

#[tokio::test]
async fn detection_waits_for_spooled_minutes_instead_of_seeing_silence() {
    let app = TestApp::spawn().await;
    let minute = |m: i64| {
        Utc.with_ymd_and_hms(2030, 3, 4, 12, 0, 0)
            .single()
            .expect("a time")
            + TimeDelta::minutes(m)
    };
    let now = minute(20) + TimeDelta::seconds(30); // minute 19 is the last closed bucket
    let folder = tempfile::tempdir().expect("a spool folder");
    let spool = Spool::open(folder.path(), 1 << 20, app.app.metrics.clone()).expect("open");
    let mut event = new_event(1);
    event.received_at = minute(12);
    spool
        .append(Uuid::new_v4(), &[event], &[])
        .await
        .expect("append");
    // Leases that lapse at once: the second worker below takes the project over.
    let settings = Settings {
        lease: Duration::ZERO,
        ..Settings::default()
    };
    let mut local = Worker::new(app.pool.clone(), app.app.metrics.clone(), settings.clone())
        .with_spool(Some(spool));
    assert_eq!(
        decided_through(&app, &mut local, now).await,
        minute(11),
        "its own spool"
    );

    // Another process only knows what the spooling one published.
    drop(local);
    tokio::time::sleep(Duration::from_millis(20)).await;
    watermarks::publish(&app.pool, Uuid::new_v4(), minute(15))
        .await
        .expect("publish");
    let mut other = Worker::new(app.pool.clone(), app.app.metrics.clone(), settings);
    assert_eq!(
        decided_through(&app, &mut other, now).await,
        minute(14),
        "a published watermark"
    );
    app.stop().await;
}
