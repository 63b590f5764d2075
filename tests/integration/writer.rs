//! The writer under concurrency: counts stay exact, per-minute series add up, and what was
//! acknowledged is in the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use seismo::ingest::prepare;
use seismo::ingest::received::Received;
use seismo::metrics::Metrics;
use seismo::model::{IssueId, Source, SpanTally};
use seismo::scrub::Settings;
use seismo::store::batch::{self, EnsuredIssue, IssueKey};
use seismo::store::events::NewEvent;
use seismo::store::partitions::Partitions;
use seismo::store::projects;
use seismo::store::writer::{Batch, Writer, WriterSettings, WriterTasks, Written, REPLAN_EVERY};
use serde_json::json;
use uuid::Uuid;

use crate::harness::{envelope, fresh_database_on, python_exception, server_url, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_counted_exactly() {
    // Small batches on three workers, so that transactions on the same issues overlap.
    let app = TestApp::spawn_with(|s| {
        s.set("writer_batch_size", "16");
        s.set("writer_concurrency", "3");
    })
    .await;
    let groups = ["AError", "BError", "CError"];
    let requests = 120;
    let mut tasks = Vec::new();
    for i in 0..requests {
        let client = app.http.clone();
        let url = app.envelope_url();
        let key = app.key().to_owned();
        let mut event = python_exception(groups[i % groups.len()], "boom", &["handler"], i as u32);
        event["tags"] = json!({"service": if i % 2 == 0 { "api" } else { "worker" }});
        let payload = serde_json::to_vec(&event).expect("json");
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("X-Sentry-Auth", format!("Sentry sentry_key={key}"))
                .body(envelope(&json!({}), &[("event", &payload)]))
                .send()
                .await
                .expect("post");
            response.status().as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }

    assert_eq!(app.event_count().await, requests as i64);
    let issues = app.issues().await;
    assert_eq!(issues.len(), 3);
    assert!(issues.iter().all(|i| i["count"] == 40), "{issues:?}");
    let series: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT scope, service, sum(events)::int8 FROM minute_counts GROUP BY scope, service ORDER BY scope, service",
    )
    .fetch_all(&app.pool)
    .await
    .expect("series");
    assert_eq!(
        series,
        vec![
            ("issue".to_owned(), String::new(), 120),
            ("project".to_owned(), String::new(), 120),
            ("service".to_owned(), "api".to_owned(), 60),
            ("service".to_owned(), "worker".to_owned(), 60),
        ]
    );
    let metrics = app.metrics();
    assert!(
        metrics.contains(
            "seismo_events_received_total{outcome=\"accepted\",reason=\"\",source=\"sentry\"} 120"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn payloads_are_stored_compressed_with_the_fields_queries_need() {
    let app = TestApp::spawn().await;
    let mut event = python_exception("KeyError", "'user_id'", &["main", "load_user"], 10);
    event["message"] = json!("x".repeat(20_000));
    let payload = serde_json::to_vec(&event).expect("json");
    assert_eq!(app.send_event(&event).await.status(), 200);
    let (stored, top_frames): (i32, String) =
        sqlx::query_as("SELECT octet_length(data), top_frames FROM events")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert!(
        (stored as usize) < payload.len() / 10,
        "{stored} bytes stored for {} sent",
        payload.len()
    );
    assert_eq!(
        top_frames.lines().next(),
        Some("shop.load_user.load_user (shop/load_user.py:11)")
    );
    let partitions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass")
            .fetch_one(&app.pool)
            .await
            .expect("partitions");
    assert_eq!(partitions, 1, "today's partition was created");
    app.stop().await;
}

#[tokio::test]
async fn a_writer_connection_the_server_closed_is_replaced_without_losing_the_batch() {
    // One writer worker (the default, set here because the test depends on it), so both
    // batches go through the same kept connection; no spool, so a batch the writer gave up
    // on would be answered 503.
    let app = TestApp::spawn_with(|s| {
        s.set("writer_concurrency", "1");
        s.set("spool_dir", "off");
    })
    .await;
    let first = python_exception("AError", "boom", &["handler"], 1);
    assert_eq!(app.send_event(&first).await.status().as_u16(), 200);
    assert_eq!(app.event_count().await, 1);

    // As a PostgreSQL restart or an idle timeout would: every connection Seismo keeps to
    // its database is closed by the server between two batches.
    let closed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&app.pool)
    .await
    .expect("terminate");
    assert!(!closed.is_empty());

    let second = python_exception("AError", "boom", &["handler"], 2);
    assert_eq!(app.send_event(&second).await.status().as_u16(), 200);
    assert_eq!(app.event_count().await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_another_writer_commits_while_a_batch_opens_gets_the_batch_events() {
    let (pool, received) = database_with_a_project("race").await;
    let event = prepared(received, "RaceError", 1);
    let fingerprint = event.grouping.fingerprint.clone();

    let (other_issue, other) = insert_issue_uncommitted(&pool, &event).await;

    // The batch's insert of the same issue waits for the other writer; when that commits,
    // the batch's snapshot (taken before) does not show the issue.
    let batch_pool = pool.clone();
    let batch_event = event.clone();
    let opening = tokio::spawn(async move {
        let mut tx = batch_pool.begin().await.expect("begin");
        let key = IssueKey::of(&batch_event);
        let opened = batch::open(&mut tx, &[key], &[], &[&batch_event])
            .await
            .expect("opened");
        tx.commit().await.expect("commit");
        opened
    });
    wait_for_a_lock_wait(&pool).await;
    other.commit().await.expect("the other writer commits");
    let opened = opening.await.expect("the batch");

    assert_eq!(
        opened.issues,
        [EnsuredIssue {
            id: other_issue,
            project_id: received.project_id,
            fingerprint,
            created: false,
        }]
    );
    assert!(opened.stored.contains(&event.event_id));
    let stored_in: IssueId = sqlx::query_scalar("SELECT issue_id FROM events WHERE event_id = $1")
        .bind(event.event_id)
        .fetch_one(&pool)
        .await
        .expect("the event is stored");
    assert_eq!(stored_in, other_issue);
}

#[tokio::test]
async fn a_batch_holding_an_event_stored_before_counts_only_the_new_ones() {
    let (pool, received) = database_with_a_project("again").await;
    let metrics = Arc::new(Metrics::new());
    let (writer, tasks) = start_writer_counting(&pool, metrics.clone());
    let first = prepared(received, "AgainError", 1);
    let second = prepared(received, "AgainError", 2);
    let other = prepared(received, "OtherError", 3);

    let written = writer.write(batch_of(&[&first])).await.expect("written");
    let [Written::Stored { issue_id }] = written[..] else {
        panic!("{written:?}");
    };
    // A retry of the first event, arriving with two new ones: only they count.
    let written = writer
        .write(batch_of(&[&second, &first, &other]))
        .await
        .expect("written");
    assert!(
        matches!(written[..], [Written::Stored { issue_id: a }, Written::Duplicate, Written::Stored { issue_id: b }]
            if a == issue_id && b != issue_id),
        "{written:?}"
    );
    // And the same event twice in one batch is stored once.
    let third = prepared(received, "AgainError", 4);
    let written = writer
        .write(batch_of(&[&third, &third]))
        .await
        .expect("written");
    assert!(
        matches!(written[..], [Written::Stored { .. }, Written::Duplicate]),
        "{written:?}"
    );
    drop(writer);
    tasks.join().await;

    assert_eq!(times_seen(&pool, issue_id).await, 3);
    assert_eq!(minute_events(&pool, "issue", issue_id).await, 3);
    assert_eq!(minute_events(&pool, "project", IssueId(0)).await, 4);
    // The first batch went whole; the retry fell back; the batch after it went step by step
    // without trying.
    let batches = |way: &str| metrics.writer_batches.with_label_values(&[way]).get();
    assert_eq!(
        (
            batches("whole"),
            batches("fell_back"),
            batches("step_by_step")
        ),
        (1, 1, 1)
    );
}

/// A writer whose session first wrote while `issues` was small finds, locks and updates its
/// issues through the indexes once the table has grown: its plans are made again
/// (`REPLAN_EVERY`, here before every batch), where plans kept from the first batches would
/// scan the whole table for every batch.
#[tokio::test]
async fn a_writer_that_began_on_few_issues_probes_the_indexes_once_there_are_many() {
    const GROWN: i64 = 20_000;
    let (pool, received) = database_with_a_project("grown").await;
    // An analyze of the grown table would have the plans made again anyway.
    no_autovacuum_of_issues(&pool).await;
    let settings = WriterSettings {
        replan_every: Duration::ZERO,
        ..test_settings()
    };
    let (writer, tasks) = Writer::start(&pool, settings, Arc::new(Metrics::new()), None);
    let write = |n: u32| {
        let writer = writer.clone();
        let event = prepared(received, "GrownError", n);
        async move { writer.write(batch_of(&[&event])).await.expect("written") }
    };
    // More calls than the five after which PostgreSQL may settle on a generic plan.
    for n in 0..8 {
        write(n).await;
    }
    sqlx::query(
        "INSERT INTO issues (project_id, fingerprint, grouping_strategy, title, level, \
         first_seen, last_seen) \
         SELECT $1, 'other-' || g, 'custom', 'other', 'error', now(), now() \
         FROM generate_series(1, $2) g",
    )
    .bind(received.project_id)
    .bind(GROWN)
    .execute(&pool)
    .await
    .expect("many more issues");
    for n in 8..12 {
        write(n).await;
    }
    stop_writer_until_its_statistics_are_in(&pool, writer, tasks).await;

    let (read_by_scans, times_seen): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'issues'), \
                (SELECT times_seen FROM issues WHERE fingerprint NOT LIKE 'other-%')",
    )
    .fetch_one(&pool)
    .await
    .expect("the scans of issues");
    assert_eq!(times_seen, 12);
    assert!(
        read_by_scans < GROWN,
        "the writer read {read_by_scans} issue rows by scanning the table"
    );
}

/// Every batch updates its issues; those updates change no indexed column, so PostgreSQL
/// makes them in place (HOT): no index entries, and old versions pruned as the page is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_updates_its_issues_in_place_leaving_no_index_entries() {
    const BATCHES: u32 = 60;
    let (pool, received) = database_with_a_project("in-place").await;
    // No vacuum between the batches: only the updates themselves keep the table small.
    no_autovacuum_of_issues(&pool).await;
    let (writer, tasks) = start_writer(&pool);
    for n in 0..BATCHES {
        let group = ["FirstError", "SecondError", "ThirdError"][n as usize % 3];
        // Each a moment later than the one before: its issue's last seen moves too.
        let later = Received {
            at: received.at + TimeDelta::milliseconds(i64::from(n)),
            ..received
        };
        let event = prepared(later, group, n);
        writer.write(batch_of(&[&event])).await.expect("written");
    }
    stop_writer_until_its_statistics_are_in(&pool, writer, tasks).await;

    let (updates, in_place, seen): (i64, i64, i64) = sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd, (SELECT sum(times_seen)::int8 FROM issues) \
         FROM pg_stat_user_tables WHERE relname = 'issues'",
    )
    .fetch_one(&pool)
    .await
    .expect("the updates of issues");
    assert_eq!(seen, i64::from(BATCHES));
    let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM issues WHERE last_seen > first_seen")
        .fetch_one(&pool)
        .await
        .expect("the issues whose last seen moved");
    assert_eq!(moved, 3);
    assert!(updates >= i64::from(BATCHES), "{updates} issue updates");
    // An indexed column the batches change (last seen, times seen) makes every one of them
    // write a new entry in every index of the table.
    assert!(
        in_place * 10 >= updates * 9,
        "{in_place} of {updates} issue updates were in place (HOT)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_another_writer_commits_while_the_writer_writes_gets_the_events_and_counts() {
    let (pool, received) = database_with_a_project("meanwhile").await;
    let (writer, tasks) = start_writer(&pool);
    let event = prepared(received, "MeanwhileError", 1);
    let (other_issue, other) = insert_issue_uncommitted(&pool, &event).await;

    let writing = {
        let writer = writer.clone();
        let batch = batch_of(&[&event]);
        tokio::spawn(async move { writer.write(batch).await })
    };
    wait_for_a_lock_wait(&pool).await;
    other.commit().await.expect("the other writer commits");
    let written = writing.await.expect("task").expect("written");
    assert!(
        matches!(written[..], [Written::Stored { issue_id }] if issue_id == other_issue),
        "{written:?}"
    );
    drop(writer);
    tasks.join().await;

    assert_eq!(times_seen(&pool, other_issue).await, 1);
    assert_eq!(minute_events(&pool, "issue", other_issue).await, 1);
    assert_eq!(minute_events(&pool, "project", IssueId(0)).await, 1);
}

#[tokio::test]
async fn a_batch_written_again_under_its_id_adds_its_span_counts_once() {
    let (pool, received) = database_with_a_project("twice").await;
    let (writer, tasks) = start_writer(&pool);
    let event = prepared(received, "TwiceError", 1);
    let minute = received
        .at
        .duration_trunc(TimeDelta::minutes(1))
        .expect("a minute");
    let batch = || Batch {
        events: vec![event.clone()],
        spans: vec![SpanTally {
            project_id: received.project_id,
            service: Some("api".to_owned()),
            minute,
            requests: 10,
            failed: 2,
        }],
    };
    // As the spool's replayer does with a batch whose first COMMIT raced a timeout.
    let id = Uuid::new_v4();
    let first = writer
        .write_to_database(batch(), id)
        .await
        .expect("written");
    let again = writer
        .write_to_database(batch(), id)
        .await
        .expect("written");
    assert!(matches!(first[..], [Written::Stored { .. }]), "{first:?}");
    assert!(matches!(again[..], [Written::Duplicate]), "{again:?}");
    drop(writer);
    tasks.join().await;

    let counts: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT scope, sum(events)::int8, sum(requests)::int8, sum(failed)::int8 \
         FROM minute_counts GROUP BY scope ORDER BY scope",
    )
    .fetch_all(&pool)
    .await
    .expect("minute counts");
    assert_eq!(
        counts,
        [
            ("issue".to_owned(), 1, 0, 0),
            ("project".to_owned(), 1, 10, 2),
            // The event names no service.
            ("service".to_owned(), 0, 10, 2),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_writer_connection_is_replaced_once_older_than_the_pools_max_lifetime() {
    let (pool, received) = database_with_a_project("aging").await;

    // The writer takes its connection settings and their lifetime from the pool it is given;
    // the name tells its connections apart from the test's own.
    let name = "seismo-aging-writer";
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .application_name(name);
    let lifetime = Duration::from_millis(500);
    let writer_pool = sqlx::postgres::PgPoolOptions::new()
        .max_lifetime(lifetime)
        .connect_lazy_with(options);
    let (writer, tasks) = Writer::start(
        &writer_pool,
        test_settings(),
        Arc::new(Metrics::new()),
        None,
    );
    let write = |n: u32| {
        let batch = batch_of(&[&prepared(received, "AgeError", n)]);
        let writer = writer.clone();
        async move {
            let written = writer.write(batch).await.expect("written");
            assert!(
                matches!(written[..], [Written::Stored { .. }]),
                "{written:?}"
            );
        }
    };
    let backends = || async {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
        )
        .bind(name)
        .fetch_all(&pool)
        .await
        .expect("pg_stat_activity");
        pids
    };

    write(1).await;
    let first = backends().await;
    assert_eq!(first.len(), 1, "one kept connection: {first:?}");
    write(2).await;
    assert_eq!(backends().await, first, "kept while young");

    tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
    write(3).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut now = backends().await;
    while now.contains(&first[0]) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = backends().await;
    }
    assert_eq!(
        now.len(),
        1,
        "the old connection was closed, not leaked: {now:?}"
    );
    assert_ne!(now, first, "replaced once older than the lifetime");

    drop(writer);
    tasks.join().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 3);
}

/// A fresh database with one project, today's partition made, and how its events arrive.
async fn database_with_a_project(slug: &str) -> (sqlx::PgPool, Received) {
    let (_, pool) = fresh_database_on(server_url().await).await;
    let mut conn = pool.acquire().await.expect("a connection");
    let project = projects::create(&mut conn, slug, slug, None)
        .await
        .expect("project");
    let received = Received {
        project_id: project.id,
        source: Source::Sentry,
        at: Utc::now(),
        envelope_event_id: None,
    };
    Partitions::default()
        .ensure(&mut conn, [received.at.date_naive()])
        .await
        .expect("the day's partition");
    (pool, received)
}

/// Waits until some backend of the test's database waits for a lock.
async fn wait_for_a_lock_wait(pool: &sqlx::PgPool) {
    wait_until_activity(
        pool,
        "EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock')",
        "a backend to wait for a lock",
    )
    .await;
}

/// Waits until `holds` (an SQL condition, on `pg_stat_activity` say) is true: checked every
/// 10 ms, for 5 s at most.
async fn wait_until_activity(pool: &sqlx::PgPool, holds: &str, what: &str) {
    for _ in 0..500 {
        let held: bool = sqlx::query_scalar(&format!("SELECT {holds}"))
            .fetch_one(pool)
            .await
            .expect("the condition");
        if held {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("waited 5 s for {what}");
}

async fn no_autovacuum_of_issues(pool: &sqlx::PgPool) {
    sqlx::query("ALTER TABLE issues SET (autovacuum_enabled = false)")
        .execute(pool)
        .await
        .expect("autovacuum off for issues");
}

/// Stops the writer and waits until its backend has exited: a backend reports its table
/// statistics (`pg_stat_user_tables`) as it exits.
async fn stop_writer_until_its_statistics_are_in(
    pool: &sqlx::PgPool,
    writer: Writer,
    tasks: WriterTasks,
) {
    let writer_backend: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'SELECT seismo_write_batch(%'",
    )
    .fetch_one(pool)
    .await
    .expect("the writer's backend");
    drop(writer);
    tasks.join().await;
    wait_until_activity(
        pool,
        &format!("NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {writer_backend})"),
        "the writer's backend to exit",
    )
    .await;
}

/// A writer of one worker on the test's database.
fn start_writer(pool: &sqlx::PgPool) -> (Writer, WriterTasks) {
    start_writer_counting(pool, Arc::new(Metrics::new()))
}

fn start_writer_counting(pool: &sqlx::PgPool, metrics: Arc<Metrics>) -> (Writer, WriterTasks) {
    Writer::start(pool, test_settings(), metrics, None)
}

/// One worker, small batches, plans made again as in production.
fn test_settings() -> WriterSettings {
    WriterSettings {
        queue_capacity: 100,
        batch_size: 10,
        concurrency: 1,
        spool_after: Duration::from_secs(5),
        replan_every: REPLAN_EVERY,
    }
}

/// A Python exception of the group, prepared as ingestion prepares it.
fn prepared(received: Received, group: &str, n: u32) -> NewEvent {
    let text = serde_json::to_vec(&python_exception(group, "boom", &["handler"], n)).expect("JSON");
    prepare::sentry_event(&text, received, &Settings::default(), None)
        .expect("prepared")
        .row
}

fn batch_of(events: &[&NewEvent]) -> Batch {
    Batch {
        events: events.iter().map(|e| (*e).clone()).collect(),
        spans: Vec::new(),
    }
}

/// Another writer creates the event's issue and has not committed yet.
async fn insert_issue_uncommitted(
    pool: &sqlx::PgPool,
    event: &NewEvent,
) -> (IssueId, sqlx::Transaction<'static, sqlx::Postgres>) {
    let mut other = pool.begin().await.expect("begin");
    let issue: IssueId = sqlx::query_scalar(
        "INSERT INTO issues (project_id, fingerprint, grouping_strategy, title, culprit, level, \
           first_seen, last_seen) VALUES ($1, $2, $3, 't', 'c', 'error', now(), now()) \
         RETURNING id",
    )
    .bind(event.project_id)
    .bind(event.grouping.fingerprint.as_str())
    .bind(event.grouping.strategy.as_str())
    .fetch_one(&mut *other)
    .await
    .expect("the other writer's issue");
    (issue, other)
}

async fn times_seen(pool: &sqlx::PgPool, issue: IssueId) -> i64 {
    sqlx::query_scalar("SELECT times_seen FROM issues WHERE id = $1")
        .bind(issue)
        .fetch_one(pool)
        .await
        .expect("the issue")
}

/// The events counted per minute in one scope (`issue` 0 but for the issue scope).
async fn minute_events(pool: &sqlx::PgPool, scope: &str, issue: IssueId) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(events), 0)::int8 FROM minute_counts WHERE scope = $1 AND issue_id = $2",
    )
    .bind(scope)
    .bind(issue)
    .fetch_one(pool)
    .await
    .expect("minute counts")
}
