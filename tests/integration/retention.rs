//! Retention: old days are dropped whole, shorter project windows delete their rows, and a
//! project over its cap is thinned — while issue counts and per-minute counts stay exact.

use chrono::{Days, NaiveDate, Utc};
use serde_json::json;
use sqlx::PgPool;

use seismo::metrics::Metrics;
use seismo::model::ProjectId;
use seismo::store::partitions::{partition_name, Partitions};
use seismo::store::{projects, retention};

use crate::harness::{python_exception, TestApp};

fn days_ago(days: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(days))
        .expect("date")
}

/// Copies every stored event of the project into `day` (fresh ids), as if received then.
async fn copy_events_to_day(pool: &PgPool, project_id: ProjectId, day: NaiveDate) {
    let mut conn = pool.acquire().await.expect("a connection");
    Partitions::default()
        .ensure(&mut conn, [day])
        .await
        .expect("partition");
    sqlx::query(
        "INSERT INTO events (event_id, received_day, project_id, issue_id, received_at, timestamp, level, \
           source, platform, release, environment, service, title, trace_id, handled, top_frames, data) \
         SELECT gen_random_uuid(), $2, project_id, issue_id, $2::date + time '12:00', timestamp, level, \
           source, platform, release, environment, service, title, trace_id, handled, top_frames, data \
         FROM events WHERE project_id = $1 AND received_day = current_date",
    )
    .bind(project_id)
    .bind(day)
    .execute(pool)
    .await
    .expect("copy events");
}

async fn stored_events(pool: &PgPool, project_id: ProjectId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE project_id = $1")
        .bind(project_id)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("partitions")
}

/// (sum of times_seen over issues, sum of project-scope events in minute_counts)
async fn exact_counts(pool: &PgPool, project_id: ProjectId) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT coalesce(sum(times_seen), 0)::bigint FROM issues WHERE project_id = $1), \
                (SELECT coalesce(sum(events), 0)::bigint FROM minute_counts \
                 WHERE project_id = $1 AND scope = 'project')",
    )
    .bind(project_id)
    .fetch_one(pool)
    .await
    .expect("counts")
}

async fn send_events(app: &TestApp, ty: &str, n: usize) {
    for i in 0..n {
        let event = python_exception(ty, &format!("failure {i}"), &["handler", "charge"], 10);
        assert_eq!(app.send_event(&event).await.status(), 200);
    }
}

#[tokio::test]
async fn retention_drops_whole_days_older_than_every_project_keeps() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    send_events(&app, "ValueError", 3).await;
    projects::set_retention(pool, project, 5, None)
        .await
        .expect("retention");
    for age in [2, 5, 6, 30] {
        copy_events_to_day(pool, project, days_ago(age)).await;
    }
    let counts_before = exact_counts(pool, project).await;
    assert_eq!(stored_events(pool, project).await, 15);

    let report = retention::run(pool, Utc::now().date_naive())
        .await
        .expect("retention run");

    let expected: Vec<String> = [6, 30]
        .map(|age| partition_name(days_ago(age)))
        .into_iter()
        .rev()
        .collect();
    assert_eq!(report.partitions_dropped, expected);
    let left = partitions(pool).await;
    assert!(left.contains(&partition_name(days_ago(5))), "{left:?}");
    assert!(!left.contains(&partition_name(days_ago(6))), "{left:?}");
    assert_eq!(
        stored_events(pool, project).await,
        9,
        "today, 2 and 5 days ago"
    );
    assert_eq!(exact_counts(pool, project).await, counts_before);

    let metrics = Metrics::new();
    retention::record(&report, &metrics);
    assert!(metrics
        .render()
        .contains("seismo_retention_partitions_dropped_total 2"));
    app.stop().await;
}

#[tokio::test]
async fn retention_deletes_rows_of_a_project_with_a_shorter_window_only() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    let keeps_long = app.project.id;
    let mut conn = pool.acquire().await.expect("connection");
    let short = projects::create(&mut conn, "short", "Short", None)
        .await
        .expect("project");
    drop(conn);
    projects::set_retention(pool, short.id, 3, None)
        .await
        .expect("retention");
    send_events(&app, "KeyError", 2).await;
    // Events of the short-lived project, through its own key.
    let key = short.public_key.clone().expect("key");
    let event = python_exception("TypeError", "bad", &["view"], 3);
    let body = crate::harness::envelope(
        &json!({}),
        &[("event", &serde_json::to_vec(&event).expect("json"))],
    );
    let response = app
        .http
        .post(app.url(&format!("/api/{}/envelope/", short.id)))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    for project in [keeps_long, short.id] {
        copy_events_to_day(pool, project, days_ago(10)).await;
    }

    let report = retention::run(pool, Utc::now().date_naive())
        .await
        .expect("retention run");

    assert!(
        report.partitions_dropped.is_empty(),
        "the 90-day project still needs it"
    );
    assert_eq!(report.events_expired, 1);
    assert_eq!(
        stored_events(pool, short.id).await,
        1,
        "today's event stays"
    );
    assert_eq!(stored_events(pool, keeps_long).await, 4);
    app.stop().await;
}

#[tokio::test]
async fn retention_cap_thins_busy_issues_and_keeps_counts_exact() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    send_events(&app, "TimeoutError", 200).await;
    send_events(&app, "QuietError", 5).await;
    projects::set_retention(pool, project, 90, Some(60))
        .await
        .expect("cap");
    let counts_before = exact_counts(pool, project).await;
    let first_events: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT e.event_id FROM events e JOIN issues i ON i.id = e.issue_id \
         WHERE i.title LIKE 'TimeoutError%' ORDER BY e.received_at, e.event_id LIMIT 10",
    )
    .fetch_all(pool)
    .await
    .expect("first events");

    let report = retention::run(pool, Utc::now().date_naive())
        .await
        .expect("retention run");

    let stored = stored_events(pool, project).await;
    assert!(stored <= 60, "{stored} events stored over a cap of 60");
    assert_eq!(report.events_evicted, (205 - stored) as u64);
    assert_eq!(exact_counts(pool, project).await, counts_before);
    let quiet: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e JOIN issues i ON i.id = e.issue_id WHERE i.title LIKE 'QuietError%'",
    )
    .fetch_one(pool)
    .await
    .expect("quiet events");
    assert_eq!(quiet, 5, "a quiet issue keeps every event");
    let kept_first: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
            .bind(&first_events)
            .fetch_one(pool)
            .await
            .expect("first events kept");
    assert_eq!(kept_first, 10, "the first events of a busy issue are kept");
    // The API still reports the exact count.
    let busy = app
        .issues()
        .await
        .into_iter()
        .find(|i| {
            i["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("TimeoutError"))
        })
        .expect("busy issue");
    assert_eq!(busy["count"], 200);
    app.stop().await;
}
