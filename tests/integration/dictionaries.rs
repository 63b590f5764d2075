//! Trained compression dictionaries: a project's events are stored smaller once it has
//! one, every row reads back the same whatever version compressed it, a project whose
//! events change gets a new version, and retention forgets a version only when no event
//! it keeps can need it. A process holds dictionaries only for its busiest projects.

use chrono::{Days, Utc};
use serde_json::{json, Value};

use seismo::model::Scope;
use seismo::store::dictionaries::training::{Plan, Trainer};
use seismo::store::dictionaries::Dictionaries;
use seismo::store::{dictionaries, projects, retention};

use crate::harness::{set_minute_counts, TestApp};

/// A Python exception as a Django service sends it, with what differs between events
/// (ids, line numbers, the order and user) drawn from `i`.
fn python_event(i: u32) -> Value {
    let frames: Vec<Value> = (0..14)
        .map(|depth| {
            json!({
                "filename": format!("shop/orders/step_{depth}.py"),
                "module": format!("shop.orders.step_{depth}"),
                "function": format!("apply_discount_step_{depth}"),
                "lineno": 20 + (i * 7 + depth) % 400,
                "in_app": depth > 3,
                "context_line": format!("    return apply_discount(order, {})", i % 97),
                "vars": {"order_id": format!("{}", 100_000 + i), "attempt": i % 3},
            })
        })
        .collect();
    json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(),
        "platform": "python",
        "level": "error",
        "release": "shop@3.1.0",
        "environment": "production",
        "server_name": format!("shop-web-{}", i % 5),
        "tags": {"region": "eu-west-1", "worker": format!("gunicorn-{}", i % 9)},
        "user": {"id": format!("{}", 5_000 + i * 13)},
        "request": {
            "url": format!("https://shop.example.com/api/orders/{}/", 100_000 + i),
            "method": "POST",
            "headers": {"User-Agent": "python-requests/2.32.3", "Accept": "application/json"},
        },
        "contexts": {"runtime": {"name": "CPython", "version": "3.12.3"}},
        "sdk": {"name": "sentry.python.django", "version": "2.19.0"},
        "exception": {"values": [{
            "type": "KeyError",
            "value": format!("'discount' while handling order {}", 100_000 + i),
            "stacktrace": {"frames": frames},
        }]},
    })
}

/// A Java exception: nothing in it looks like the Python events.
fn java_event(i: u32) -> Value {
    let frames: Vec<Value> = (0..40)
        .map(|depth| {
            json!({
                "module": format!("com.acme.billing.ledger.InvoiceReconciler{}", depth % 6),
                "function": format!("reconcileLedgerEntries$lambda${depth}"),
                "filename": format!("InvoiceReconciler{}.java", depth % 6),
                "lineno": 100 + (i * 3 + depth) % 700,
                "in_app": depth % 2 == 0,
            })
        })
        .collect();
    json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(),
        "platform": "java",
        "level": "fatal",
        "release": "billing-service@2026.12.1",
        "contexts": {"runtime": {"name": "OpenJDK 64-Bit Server VM", "version": "21.0.5+11-LTS"}},
        "exception": {"values": [{
            "type": "java.lang.IllegalStateException",
            "value": format!("Ledger entry {} is not balanced against invoice INV-{}", i * 31, i),
            "stacktrace": {"frames": frames},
        }]},
    })
}

async fn send_all(app: &TestApp, events: impl Iterator<Item = Value>) {
    for event in events {
        let response = app.send_event(&event).await;
        assert_eq!(response.status(), 200, "the event is stored");
    }
}

/// (rows, average stored bytes) of the project's events compressed with `version`.
async fn stored(app: &TestApp, version: Option<i32>) -> (i64, f64) {
    sqlx::query_as(
        "SELECT count(*), coalesce(avg(octet_length(data))::float8, 0) FROM events \
         WHERE project_id = $1 AND dictionary IS NOT DISTINCT FROM $2",
    )
    .bind(app.project.id)
    .bind(version)
    .fetch_one(&app.pool)
    .await
    .expect("stored sizes")
}

/// The API's view of the project's newest event with the given dictionary version.
async fn read_back(app: &TestApp, version: Option<i32>) -> Value {
    let event_id: uuid::Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE project_id = $1 \
         AND dictionary IS NOT DISTINCT FROM $2 ORDER BY received_at DESC LIMIT 1",
    )
    .bind(app.project.id)
    .bind(version)
    .fetch_one(&app.pool)
    .await
    .expect("an event with that version");
    app.api_ok(&format!("/api/v1/events/{}", event_id.simple()))
        .await
}

fn exception_type(event: &Value) -> &str {
    event["exception"][0]["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_trained_dictionary_shrinks_stored_events_and_they_read_back_unchanged() {
    let app = TestApp::spawn().await;
    let mut trainer = Trainer::new(Plan::default());
    send_all(&app, (0..150).map(python_event)).await;
    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert!(
        report.trained.is_empty(),
        "150 events are too few: {report:?}"
    );

    send_all(&app, (150..250).map(python_event)).await;
    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert_eq!(report.trained.len(), 1, "{report:?}");
    let (project_id, version, ratio) = report.trained[0];
    assert_eq!((project_id, version), (app.project.id, 1));
    assert!(ratio > 0.0 && ratio < 0.2, "held-out ratio {ratio}");
    assert_eq!(
        app.app
            .dictionaries
            .refresh(&app.pool)
            .await
            .expect("refresh"),
        1
    );

    send_all(&app, (250..300).map(python_event)).await;
    let (plain_rows, plain_bytes) = stored(&app, None).await;
    let (dictionary_rows, dictionary_bytes) = stored(&app, Some(1)).await;
    assert_eq!((plain_rows, dictionary_rows), (250, 50));
    assert!(
        dictionary_bytes < plain_bytes * 0.7,
        "{dictionary_bytes:.0} bytes per event with the dictionary, {plain_bytes:.0} without"
    );

    let event = read_back(&app, Some(1)).await;
    assert_eq!(exception_type(&event), "KeyError");
    assert_eq!(event["payload"]["request"]["method"], "POST");
    assert_eq!(event["payload"]["tags"]["region"], "eu-west-1");
    let issue = event["issue_id"].as_i64().expect("an issue id");
    assert_eq!(
        app.events_of(issue).await.len(),
        100,
        "a page of both kinds of rows"
    );

    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert!(
        report.trained.is_empty() && report.rejected.is_empty(),
        "a fresh dictionary is not retrained: {report:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_project_whose_events_change_gets_a_new_version_and_old_rows_still_read() {
    let app = TestApp::spawn().await;
    let mut trainer = Trainer::new(Plan {
        min_age: chrono::Duration::zero(),
        ..Plan::default()
    });
    send_all(&app, (0..250).map(python_event)).await;
    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert_eq!(report.trained.len(), 1, "{report:?}");
    app.app
        .dictionaries
        .refresh(&app.pool)
        .await
        .expect("refresh");

    send_all(&app, (0..50).map(python_event)).await;
    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert!(report.trained.is_empty(), "no drift yet: {report:?}");

    // The service now sends Java exceptions: its rows compress far worse with version 1.
    send_all(&app, (0..250).map(java_event)).await;
    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert_eq!(report.trained.len(), 1, "{report:?}");
    assert_eq!(report.trained[0].1, 2);
    app.app
        .dictionaries
        .refresh(&app.pool)
        .await
        .expect("refresh");
    send_all(&app, (250..260).map(java_event)).await;

    assert_eq!(stored(&app, Some(2)).await.0, 10);
    assert_eq!(exception_type(&read_back(&app, None).await), "KeyError");
    assert_eq!(
        exception_type(&read_back(&app, Some(1)).await),
        "java.lang.IllegalStateException"
    );
    assert_eq!(
        exception_type(&read_back(&app, Some(2)).await),
        "java.lang.IllegalStateException"
    );
    app.stop().await;
}

/// An event whose bulk is a random token: nothing a dictionary could know in advance.
fn random_event() -> Value {
    let noise: String = (0..256)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(),
        "platform": "other",
        "extra": {"blob": noise},
        "exception": {"values": [{"type": "NoiseError", "value": "random"}]},
    })
}

#[tokio::test]
async fn a_dictionary_that_saves_too_little_is_not_kept_nor_tried_again_at_once() {
    let app = TestApp::spawn().await;
    let mut trainer = Trainer::new(Plan::default());
    send_all(&app, (0..250).map(|_| random_event())).await;
    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert_eq!(report.rejected, vec![app.project.id], "{report:?}");
    assert!(report.trained.is_empty());
    let report = trainer.train_due(&app.pool).await.expect("a run");
    assert!(
        report.rejected.is_empty() && report.trained.is_empty(),
        "not tried again within the hour: {report:?}"
    );
    assert_eq!(stored(&app, None).await.0, 250);
    app.stop().await;
}

#[tokio::test]
async fn retention_forgets_a_version_only_once_no_kept_event_can_need_it() {
    let app = TestApp::spawn().await;
    let project = app.project.id;
    for _ in 0..3 {
        dictionaries::insert_next(&app.pool, project, b"dictionary bytes", 0.1, 100)
            .await
            .expect("a version");
    }
    projects::set_retention(&app.pool, project, 30, None)
        .await
        .expect("30 days");
    let versions = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT version FROM event_dictionaries WHERE project_id = $1 ORDER BY 1",
        )
        .bind(project)
        .fetch_all(&app.pool)
        .await
        .expect("versions")
    };
    let trained_days_ago = |version: i32, days: i32| {
        sqlx::query(
            "UPDATE event_dictionaries SET created_at = now() - make_interval(days => $3) \
             WHERE project_id = $1 AND version = $2",
        )
        .bind(project)
        .bind(version)
        .bind(days)
        .execute(&app.pool)
    };
    // Version 2 replaced version 1 40 days ago: every event version 1 wrote is past the
    // 30 days kept. Version 3 replaced version 2 only yesterday.
    trained_days_ago(1, 60).await.expect("backdate");
    trained_days_ago(2, 40).await.expect("backdate");
    trained_days_ago(3, 1).await.expect("backdate");
    let today = Utc::now().date_naive();
    retention::run(&app.pool, today).await.expect("retention");
    assert_eq!(versions().await, vec![2, 3]);

    // 29 days on, version 3 was trained 30 days before: still inside the window's margin.
    let later = today.checked_add_days(Days::new(29)).expect("date");
    retention::run(&app.pool, later).await.expect("retention");
    assert_eq!(versions().await, vec![2, 3]);
    let later = today.checked_add_days(Days::new(31)).expect("date");
    retention::run(&app.pool, later).await.expect("retention");
    assert_eq!(
        versions().await,
        vec![3],
        "the newest version is always kept"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_process_holds_dictionaries_only_for_its_busiest_projects() {
    let app = TestApp::spawn().await;
    let quiet = app.project.id;
    let mut conn = app.pool.acquire().await.expect("connection");
    let busy = projects::create(&mut conn, "busy", "Busy", None)
        .await
        .expect("create project")
        .id;
    drop(conn);
    for project in [quiet, busy] {
        dictionaries::insert_next(&app.pool, project, b"dictionary bytes", 0.1, 100)
            .await
            .expect("a version");
    }
    let now = Utc::now();
    let minute = chrono::TimeDelta::minutes(1);
    let set_events = |project, events| {
        set_minute_counts(
            &app.pool,
            project,
            &Scope::Project,
            now - minute * 10,
            now,
            events,
        )
    };
    set_events(quiet, 5).await;
    set_events(busy, 50).await;

    let held = Dictionaries::new(1);
    assert_eq!(held.refresh(&app.pool).await.expect("refresh"), 1);
    assert!(held.newest(busy).is_some(), "the busiest project keeps one");
    assert!(held.newest(quiet).is_none(), "beyond the budget");

    // The quiet project gets busier: it takes the place, and the other is forgotten.
    set_events(quiet, 500).await;
    assert_eq!(held.refresh(&app.pool).await.expect("refresh"), 1);
    assert!(held.newest(quiet).is_some());
    assert!(held.newest(busy).is_none(), "no longer among the busiest");

    let both = Dictionaries::new(2);
    assert_eq!(both.refresh(&app.pool).await.expect("refresh"), 2);
    assert!(both.newest(quiet).is_some() && both.newest(busy).is_some());
    app.stop().await;
}
