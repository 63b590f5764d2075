//! The writer under concurrency: counts stay exact, per-minute series add up, and what was
//! acknowledged is in the database.

use serde_json::json;

use crate::harness::{envelope, python_exception, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_counted_exactly() {
    let app = TestApp::spawn_with(|s| s.set("writer_batch_size", "16")).await;
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
    // One writer worker, so both batches go through the same kept connection; no spool, so
    // a batch the writer gave up on would be answered 503.
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
