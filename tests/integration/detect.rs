//! Detection against a real database: counts in `minute_counts`, passes of the detection
//! loop, and the incidents, history, outbox rows and rule memory they leave behind.
//!
//! Time is the test's own: counts are written for minutes it chooses around a fixed base,
//! and every pass is given the `now` at which the bucket it should end on has just closed.
//! Where the writer must take part (new issues, regressions), real events go through the
//! ingestion path and the pass is placed after their wall-clock minute.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use reqwest::Method;
use seismo::detect::worker::{Pass, Settings, Worker};
use seismo::model::{Incident, IncidentId, IssueId, Kind, ProjectId, Scope, State};
use seismo::store::incidents::{self, NewIncident};
use seismo::store::{detector, issues, rules};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::harness::{call, python_exception, set_minute_counts, TestApp};

const MINUTE: TimeDelta = TimeDelta::minutes(1);

/// Minute `offset` of the synthetic timeline (minute 0 is a fixed, whole minute).
pub(crate) fn minute(offset: i64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2030, 3, 4, 12, 0, 0)
        .single()
        .expect("a valid base time");
    base + TimeDelta::minutes(offset)
}

/// A `now` at which `through` is the last closed bucket (past the 10 s grace, not the next).
pub(crate) fn now_closing(through: DateTime<Utc>) -> DateTime<Utc> {
    through + MINUTE + TimeDelta::seconds(30)
}

/// The minute `at` falls in.
pub(crate) fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(MINUTE).expect("truncate to the minute")
}

pub(crate) fn worker(app: &TestApp) -> Worker {
    worker_with(app, Settings::default())
}

fn worker_with(app: &TestApp, settings: Settings) -> Worker {
    Worker::new(app.pool.clone(), app.app.metrics.clone(), settings)
}

/// One pass ending on the bucket `through`.
pub(crate) async fn pass_through(worker: &mut Worker, through: DateTime<Utc>) -> Pass {
    worker
        .pass(now_closing(through))
        .await
        .expect("detection pass")
}

/// One pass per minute over `[first, last]`; returns every incident opened or resolved.
pub(crate) async fn passes(
    worker: &mut Worker,
    first: i64,
    last: i64,
) -> (Vec<IncidentId>, Vec<IncidentId>) {
    let (mut opened, mut resolved) = (Vec::new(), Vec::new());
    for offset in first..=last {
        let pass = pass_through(worker, minute(offset)).await;
        opened.extend(pass.opened);
        resolved.extend(pass.resolved);
    }
    (opened, resolved)
}

/// Sets the events of one series for every minute in `[first, last]` (offsets).
async fn set_counts(
    pool: &PgPool,
    project_id: ProjectId,
    scope: &Scope,
    first: i64,
    last: i64,
    events: i64,
) {
    set_minute_counts(pool, project_id, scope, minute(first), minute(last), events).await;
}

/// An issue as the writer would have created it, first seen at `first_seen`.
pub(crate) async fn insert_issue(
    pool: &PgPool,
    project_id: ProjectId,
    fingerprint: &str,
    first_seen: DateTime<Utc>,
) -> IssueId {
    sqlx::query_scalar(
        "INSERT INTO issues (project_id, fingerprint, grouping_strategy, title, level, \
           times_seen, first_seen, last_seen) \
         VALUES ($1, $2, 'custom', $3, 'error', 1, $4, $4) RETURNING id",
    )
    .bind(project_id)
    .bind(fingerprint)
    .bind(format!("{fingerprint}: boom"))
    .bind(first_seen)
    .fetch_one(pool)
    .await
    .expect("insert issue")
}

/// Every incident of the project, oldest first.
pub(crate) async fn incidents_of(pool: &PgPool, project_id: ProjectId) -> Vec<Incident> {
    let mut all = incidents::list(pool, project_id, 1_000)
        .await
        .expect("list incidents");
    all.sort_by_key(|i| i.id);
    all
}

pub(crate) async fn incident(pool: &PgPool, id: IncidentId) -> Incident {
    incidents::get(pool, id)
        .await
        .expect("get incident")
        .expect("the incident exists")
}

/// The outbox rows of one incident: (topic, payload), in the order they were written.
async fn outbox_of(pool: &PgPool, incident_id: IncidentId) -> Vec<(String, Value)> {
    sqlx::query_as("SELECT topic, payload FROM outbox WHERE incident_id = $1 ORDER BY id")
        .bind(incident_id)
        .fetch_all(pool)
        .await
        .expect("outbox rows")
}

pub(crate) async fn topics_of(pool: &PgPool, incident_id: IncidentId) -> Vec<String> {
    outbox_of(pool, incident_id)
        .await
        .into_iter()
        .map(|(topic, _)| topic)
        .collect()
}

async fn checkpoint(pool: &PgPool, project_id: ProjectId) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT last_bucket FROM detector_checkpoints WHERE project_id = $1")
        .bind(project_id)
        .fetch_optional(pool)
        .await
        .expect("read checkpoint")
}

/// The series of a project's stored detector document (zstd-compressed JSON).
async fn stored_series(pool: &PgPool, project_id: ProjectId) -> Vec<Value> {
    let document: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT series FROM detector_checkpoints WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(pool)
            .await
            .expect("read checkpoint");
    let json = zstd::decode_all(document.expect("series saved").as_slice()).expect("zstd");
    serde_json::from_slice(&json).expect("a JSON array")
}

async fn store_series(pool: &PgPool, project_id: ProjectId, series: &[Value]) {
    let json = serde_json::to_vec(series).expect("json");
    let document = zstd::encode_all(json.as_slice(), 1).expect("zstd");
    sqlx::query("UPDATE detector_checkpoints SET series = $2 WHERE project_id = $1")
        .bind(project_id)
        .bind(document)
        .execute(pool)
        .await
        .expect("write series");
}

/// What happens when the processes holding the leases stop renewing them: their leases
/// and heartbeats lapse.
async fn expire_leases(pool: &PgPool) {
    for table in ["detector_leases", "detector_holders"] {
        sqlx::query(&format!(
            "UPDATE {table} SET expires_at = now() - interval '1 minute'"
        ))
        .execute(pool)
        .await
        .expect("expire leases");
    }
}

/// How many shards each process holds, fewest first.
async fn shards_per_holder(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM detector_leases WHERE expires_at > now() \
         GROUP BY holder ORDER BY count(*)",
    )
    .fetch_all(pool)
    .await
    .expect("leases")
}

pub(crate) async fn rule_id(pool: &PgPool, project_id: ProjectId, kind: &str) -> i64 {
    rules::list(pool, project_id)
        .await
        .expect("list rules")
        .into_iter()
        .find(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("a default {kind} rule"))
        .id
}

/// A threshold rule: 10 events in 5 minutes, on every issue of the project.
async fn ten_in_five_minutes_per_issue(pool: &PgPool, project_id: ProjectId) -> rules::Rule {
    let rule = rules::NewRule {
        kind: "threshold".to_owned(),
        scope: "issue".to_owned(),
        threshold: Some(10),
        window_minutes: Some(5),
        sensitivity: "medium".to_owned(),
    };
    rules::create(pool, project_id, &rule)
        .await
        .expect("create rule")
}

/// Posts one event and asserts it was accepted.
pub(crate) async fn send_ok(app: &TestApp, event: Value) {
    let response = app.send_event(&event).await;
    assert_eq!(response.status(), 200, "{event}");
}

pub(crate) fn from_release(mut event: Value, version: &str) -> Value {
    event["release"] = json!(version);
    event
}

pub(crate) async fn issue_titled(
    pool: &PgPool,
    project_id: ProjectId,
    title: &str,
) -> issues::Issue {
    let filter = issues::IssueFilter {
        limit: 100,
        ..Default::default()
    };
    issues::list(pool, project_id, &filter)
        .await
        .expect("list issues")
        .into_iter()
        .find(|i| i.title == title)
        .unwrap_or_else(|| panic!("an issue titled {title}"))
}

pub(crate) async fn issue(pool: &PgPool, id: IssueId) -> issues::Issue {
    issues::get(pool, id)
        .await
        .expect("get issue")
        .expect("the issue exists")
}

async fn fired(pool: &PgPool, rule_id: i64) -> Vec<Scope> {
    rules::fired_series(pool, rule_id)
        .await
        .expect("fired series")
}

/// Six hours of a steady project series (20 events a minute) before minute 0, and the
/// first pass (a warm-up) over them.
async fn warmed_up_on_steady_project(app: &TestApp, worker: &mut Worker) {
    set_counts(&app.pool, app.project.id, &Scope::Project, -360, -1, 20).await;
    let warm_up = pass_through(worker, minute(-1)).await;
    assert_eq!(warm_up.projects, 1, "{warm_up:?}");
    assert!(warm_up.opened.is_empty(), "{warm_up:?}");
}

#[tokio::test]
async fn detect_a_burst_opens_one_anomaly_incident_that_resolves_once_calm() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    warmed_up_on_steady_project(&app, &mut worker).await;
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    set_counts(pool, project, &Scope::Project, 1, 10, 20).await;

    let burst = pass_through(&mut worker, minute(0)).await;
    assert_eq!(burst.buckets, 1, "{burst:?}");
    assert_eq!(burst.opened.len(), 1, "{burst:?}");
    let all = incidents_of(pool, project).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let opened = &all[0];
    assert_eq!(opened.id, burst.opened[0]);
    assert_eq!(
        (
            opened.kind.as_str(),
            opened.series.kind(),
            opened.state.as_str()
        ),
        ("anomaly", "project", "open")
    );
    assert_eq!(opened.opened_at, minute(0), "opened at the burst's bucket");
    assert!(opened.resolved_at.is_none());
    assert!(opened.score > 0.0, "{opened:?}");
    assert_eq!(opened.details["shape"], "spike", "{}", opened.details);

    let history = incidents::history(pool, opened.id).await.expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].from_state, None);
    assert_eq!(history[0].to_state, "open");
    assert_eq!(history[0].at, minute(0));
    let outbox = outbox_of(pool, opened.id).await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].0, "incident.opened");
    assert_eq!(outbox[0].1["type"], "incident.opened");
    assert_eq!(outbox[0].1["data"]["incident"]["id"], opened.id.get());
    assert_eq!(outbox[0].1["data"]["incident"]["kind"], "anomaly");

    // Four calm buckets: still open, and the streak is kept on the incident.
    let (reopened, resolved) = passes(&mut worker, 1, 4).await;
    assert!(
        reopened.is_empty() && resolved.is_empty(),
        "{reopened:?} {resolved:?}"
    );
    let calming = incident(pool, opened.id).await;
    assert_eq!(calming.state, State::Open);
    assert_eq!(calming.calm_buckets, 4);

    // The fifth calm bucket resolves it.
    let fifth = pass_through(&mut worker, minute(5)).await;
    assert_eq!(fifth.resolved, vec![opened.id], "{fifth:?}");
    assert!(fifth.opened.is_empty(), "{fifth:?}");
    let done = incident(pool, opened.id).await;
    assert_eq!(done.state, State::Resolved);
    assert_eq!(done.resolved_at, Some(minute(5)));
    let history = incidents::history(pool, opened.id).await.expect("history");
    let states: Vec<(Option<&str>, &str)> = history
        .iter()
        .map(|t| (t.from_state.as_deref(), t.to_state.as_str()))
        .collect();
    assert_eq!(states, [(None, "open"), (Some("open"), "resolved")]);
    assert_eq!(
        topics_of(pool, opened.id).await,
        ["incident.opened", "incident.resolved"]
    );
    assert_eq!(
        incidents::pending_topics(pool, project)
            .await
            .expect("topics"),
        ["incident.opened", "incident.resolved"]
    );

    // The steady series afterwards changes nothing.
    let (later_opened, later_resolved) = passes(&mut worker, 6, 10).await;
    assert!(later_opened.is_empty() && later_resolved.is_empty());
    assert_eq!(incidents_of(pool, project).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn detect_the_first_pass_warms_up_without_paging() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    set_counts(pool, project, &Scope::Project, -360, 5, 20).await;
    // History holds a burst and a new issue: both are before the detector's time.
    set_counts(pool, project, &Scope::Project, -30, -30, 200).await;
    let old_issue = insert_issue(
        pool,
        project,
        "OldError",
        minute(-20) + TimeDelta::seconds(5),
    )
    .await;
    set_counts(pool, project, &Scope::Issue(old_issue), -20, -20, 1).await;

    let mut worker = worker(&app);
    let warm_up = pass_through(&mut worker, minute(-1)).await;
    assert_eq!(warm_up.projects, 1);
    assert_eq!(warm_up.buckets, 360, "six hours of history: {warm_up:?}");
    assert!(warm_up.opened.is_empty(), "{warm_up:?}");
    assert!(incidents_of(pool, project).await.is_empty());
    assert!(incidents::pending_topics(pool, project)
        .await
        .expect("topics")
        .is_empty());
    assert_eq!(checkpoint(pool, project).await, Some(minute(-1)));

    // After the checkpoint, a burst pages (and the old issue still does not).
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    let burst = pass_through(&mut worker, minute(0)).await;
    assert_eq!(burst.buckets, 1, "{burst:?}");
    assert_eq!(burst.opened.len(), 1, "{burst:?}");
    let all = incidents_of(pool, project).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (all[0].kind.as_str(), all[0].series.kind()),
        ("anomaly", "project")
    );
    assert_eq!(all[0].opened_at, minute(0));
    app.stop().await;
}

#[tokio::test]
async fn detect_a_restarted_worker_continues_from_the_stored_state() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let api = Scope::Service("api".to_owned());
    set_counts(pool, project, &api, -360, 10, 10).await;
    set_counts(pool, project, &Scope::Project, 0, 10, 20).await;
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    set_counts(pool, project, &api, 3, 3, 100).await;

    let mut first = worker(&app);
    warmed_up_on_steady_project(&app, &mut first).await;
    let (opened, resolved) = passes(&mut first, 0, 2).await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(resolved.is_empty());
    let project_incident = opened[0];
    assert_eq!(incident(pool, project_incident).await.calm_buckets, 2);
    let mut stored: Vec<(String, String, String)> = stored_series(pool, project)
        .await
        .iter()
        .map(|s| {
            let text = |field: &str| s[field].as_str().unwrap_or_default().to_owned();
            (text("scope"), text("service"), text("measure"))
        })
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("project".to_owned(), String::new(), "count".to_owned()),
            ("service".to_owned(), "api".to_owned(), "count".to_owned()),
        ]
    );
    let profiles: i64 =
        sqlx::query_scalar("SELECT count(*) FROM detector_profiles WHERE project_id = $1")
            .bind(project)
            .fetch_one(pool)
            .await
            .expect("profiles");
    assert!(profiles >= 1, "seasonal profiles are stored too");
    assert_eq!(checkpoint(pool, project).await, Some(minute(2)));

    // The first process goes away; its leases lapse and a new one takes over.
    drop(first);
    expire_leases(pool).await;
    let mut second = worker(&app);
    let resumed = pass_through(&mut second, minute(3)).await;
    assert_eq!(resumed.projects, 1, "{resumed:?}");
    assert_eq!(
        resumed.buckets, 1,
        "only the bucket after the checkpoint, no warm-up: {resumed:?}"
    );
    // A warm detector fires on the service's burst at once; a cold one could not.
    assert_eq!(resumed.opened.len(), 1, "{resumed:?}");
    let service_incident = incident(pool, resumed.opened[0]).await;
    assert_eq!(
        (
            service_incident.kind.as_str(),
            service_incident.series.kind()
        ),
        ("anomaly", "service")
    );
    assert_eq!(service_incident.series.service(), Some("api"));
    assert_eq!(service_incident.opened_at, minute(3));

    // The project incident's calm streak survived too: resolved after five calm buckets.
    let (opened, resolved) = passes(&mut second, 4, 5).await;
    assert!(opened.is_empty(), "{opened:?}");
    assert_eq!(resolved, [project_incident]);
    assert_eq!(
        incident(pool, project_incident).await.resolved_at,
        Some(minute(5))
    );
    assert_eq!(incidents_of(pool, project).await.len(), 2);
    app.stop().await;
}

/// A steady project, warmed up and decided through minute 2 by a first worker that then
/// goes away (its leases lapse), leaving its saved state behind.
async fn steady_project_left_behind(app: &TestApp) {
    let (pool, project) = (&app.pool, app.project.id);
    set_counts(pool, project, &Scope::Project, 0, 10, 20).await;
    let mut first = worker(app);
    warmed_up_on_steady_project(app, &mut first).await;
    let (opened, _) = passes(&mut first, 0, 2).await;
    assert!(opened.is_empty(), "{opened:?}");
    drop(first);
    expire_leases(pool).await;
}

/// A new worker takes the project over at minute 3: it loads, steps the one new bucket
/// and pages nothing (a series started afresh cannot page).
async fn taken_over_quietly(app: &TestApp) -> Worker {
    let mut second = worker(app);
    let resumed = pass_through(&mut second, minute(3)).await;
    assert_eq!(resumed.projects, 1, "the project still loads: {resumed:?}");
    assert_eq!(resumed.buckets, 1, "{resumed:?}");
    assert!(resumed.opened.is_empty(), "{resumed:?}");
    second
}

#[tokio::test]
async fn detect_a_stored_state_that_no_longer_reads_starts_that_series_afresh() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    steady_project_left_behind(&app).await;
    // States saved by some other layout of the detector.
    let mut series = stored_series(pool, project).await;
    assert!(!series.is_empty());
    for one in &mut series {
        one["state"] = json!({"layout": "not this one"});
    }
    store_series(pool, project, &series).await;
    taken_over_quietly(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn detect_a_stored_document_that_does_not_read_starts_every_series_afresh() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    steady_project_left_behind(&app).await;
    sqlx::query("UPDATE detector_checkpoints SET series = '\\x00ff'::bytea WHERE project_id = $1")
        .bind(project)
        .execute(pool)
        .await
        .expect("garbage document");
    let mut second = taken_over_quietly(&app).await;
    // The next save writes a readable document again.
    passes(&mut second, 4, 14).await;
    assert_eq!(stored_series(pool, project).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn detect_a_checkpoint_without_a_saved_state_warms_up_again_silently() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    steady_project_left_behind(&app).await;
    // As after the upgrade that moved the states into one document: the checkpoint stays,
    // the states are gone.
    sqlx::query(
        "UPDATE detector_checkpoints SET state_bucket = NULL, series = NULL WHERE project_id = $1",
    )
    .bind(project)
    .execute(pool)
    .await
    .expect("drop the saved state");
    let mut second = taken_over_quietly(&app).await;
    // Warmed up again on the stored counts: a burst pages at once.
    set_counts(pool, project, &Scope::Project, 5, 5, 200).await;
    let (opened, _) = passes(&mut second, 4, 5).await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(incident(pool, opened[0]).await.opened_at, minute(5));
    app.stop().await;
}

#[tokio::test]
async fn detect_two_workers_on_one_database_open_one_incident() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    set_counts(pool, project, &Scope::Project, -360, 10, 20).await;
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;

    let mut a = worker(&app);
    let mut b = worker(&app);
    let (warm_a, warm_b) = tokio::join!(
        a.pass(now_closing(minute(-1))),
        b.pass(now_closing(minute(-1)))
    );
    let (warm_a, warm_b) = (warm_a.expect("pass"), warm_b.expect("pass"));
    assert_eq!(
        warm_a.projects + warm_b.projects,
        1,
        "one process holds the project's shard: {warm_a:?} {warm_b:?}"
    );
    let (burst_a, burst_b) = tokio::join!(
        a.pass(now_closing(minute(0))),
        b.pass(now_closing(minute(0)))
    );
    let (burst_a, burst_b) = (burst_a.expect("pass"), burst_b.expect("pass"));
    assert_eq!(
        burst_a.opened.len() + burst_b.opened.len(),
        1,
        "{burst_a:?} {burst_b:?}"
    );
    assert_eq!(incidents_of(pool, project).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn detect_workers_share_the_shards_and_take_over_a_departed_ones() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    let now = now_closing(minute(0));
    let mut a = worker(&app);
    a.pass(now).await.expect("pass");
    assert_eq!(shards_per_holder(pool).await, [16]);

    // A second process: the first gives half back, the second takes it.
    let mut b = worker(&app);
    b.pass(now).await.expect("pass");
    assert_eq!(shards_per_holder(pool).await, [16], "nothing was free yet");
    a.pass(now).await.expect("pass");
    b.pass(now).await.expect("pass");
    assert_eq!(shards_per_holder(pool).await, [8, 8]);

    // A third: six each for the first two (16 / 3, rounded up), the rest for it.
    let mut c = worker(&app);
    c.pass(now).await.expect("pass");
    for worker in [&mut a, &mut b, &mut c] {
        worker.pass(now).await.expect("pass");
    }
    assert_eq!(shards_per_holder(pool).await, [4, 6, 6]);
    // Passes again change nothing.
    for worker in [&mut a, &mut b, &mut c] {
        worker.pass(now).await.expect("pass");
    }
    assert_eq!(shards_per_holder(pool).await, [4, 6, 6]);

    // The third stops renewing: its heartbeat and leases lapse, the others share its shards.
    sqlx::query(
        "UPDATE detector_holders SET expires_at = now() - interval '1 minute' WHERE holder = \
         (SELECT holder FROM detector_leases GROUP BY holder HAVING count(*) = 4)",
    )
    .execute(pool)
    .await
    .expect("third lapses");
    sqlx::query(
        "UPDATE detector_leases SET expires_at = now() - interval '1 minute' WHERE holder = \
         (SELECT holder FROM detector_holders WHERE expires_at < now())",
    )
    .execute(pool)
    .await
    .expect("third's leases lapse");
    drop(c);
    a.pass(now).await.expect("pass");
    b.pass(now).await.expect("pass");
    assert_eq!(shards_per_holder(pool).await, [8, 8]);
    // Its heartbeat went with the first pass after it lapsed: a crashed process leaves
    // no row behind.
    let heartbeats: i64 = sqlx::query_scalar("SELECT count(*) FROM detector_holders")
        .fetch_one(pool)
        .await
        .expect("heartbeats");
    assert_eq!(heartbeats, 2);
    app.stop().await;
}

#[tokio::test]
async fn detect_two_workers_holding_the_same_project_open_one_incident() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    set_counts(pool, project, &Scope::Project, -360, 10, 20).await;
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;

    // Leases that lapse at once: each pass takes every shard, whoever held it, so both
    // workers decide the same buckets; the checkpoint and the unique index must decide.
    let settings = Settings {
        lease: Duration::ZERO,
        ..Settings::default()
    };
    let mut a = worker_with(&app, settings.clone());
    let mut b = worker_with(&app, settings);
    let (warm_a, warm_b) = tokio::join!(
        a.pass(now_closing(minute(-1))),
        b.pass(now_closing(minute(-1)))
    );
    let (warm_a, warm_b) = (warm_a.expect("pass"), warm_b.expect("pass"));
    assert!(warm_a.opened.is_empty() && warm_b.opened.is_empty());
    assert_eq!(checkpoint(pool, project).await, Some(minute(-1)));
    let mut opened = 0;
    for offset in 0..=3 {
        let now = now_closing(minute(offset));
        let (pass_a, pass_b) = tokio::join!(a.pass(now), b.pass(now));
        let (pass_a, pass_b) = (pass_a.expect("pass"), pass_b.expect("pass"));
        opened += pass_a.opened.len() + pass_b.opened.len();
    }
    assert_eq!(opened, 1);
    let all = incidents_of(pool, project).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].opened_at, minute(0));
    assert_eq!(
        incidents::history(pool, all[0].id)
            .await
            .expect("history")
            .len(),
        1
    );
    assert_eq!(topics_of(pool, all[0].id).await, ["incident.opened"]);
    assert_eq!(checkpoint(pool, project).await, Some(minute(3)));
    // The premise: with such leases each worker does hold the project.
    let now = now_closing(minute(3));
    let again_a = a.pass(now).await.expect("pass");
    let again_b = b.pass(now).await.expect("pass");
    assert_eq!((again_a.projects, again_b.projects), (1, 1));
    app.stop().await;
}

#[tokio::test]
async fn detect_concurrent_transactions_open_one_incident_per_series() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let new = NewIncident {
        project_id: project,
        kind: Kind::Anomaly,
        kinds: vec![Kind::Anomaly],
        scope: Scope::Service("api".to_owned()),
        opened_at: minute(0),
        score: 0.9,
        details: json!({}),
        reason: "anomaly detected".to_owned(),
    };
    let mut first = pool.begin().await.expect("begin");
    let mut second = pool.begin().await.expect("begin");
    let opened = incidents::open(&mut first, &new).await.expect("open");
    assert!(opened.is_some());
    // The second waits on the first's uncommitted row, then finds the series taken.
    let racing = {
        let new = new.clone();
        tokio::spawn(async move {
            let outcome = incidents::open(&mut second, &new).await.expect("open");
            second.commit().await.expect("commit");
            outcome
        })
    };
    first.commit().await.expect("commit");
    assert_eq!(racing.await.expect("task"), None);
    let all = incidents_of(pool, project).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        incidents::history(pool, all[0].id)
            .await
            .expect("history")
            .len(),
        1
    );

    // The checkpoint is swapped once: the second transaction from the same start loses.
    let mut first = pool.begin().await.expect("begin");
    let mut second = pool.begin().await.expect("begin");
    assert!(
        detector::advance_checkpoint(&mut first, project, None, minute(0))
            .await
            .expect("advance")
    );
    let racing = tokio::spawn(async move {
        let moved = detector::advance_checkpoint(&mut second, project, None, minute(0))
            .await
            .expect("advance");
        second.commit().await.expect("commit");
        moved
    });
    first.commit().await.expect("commit");
    assert!(!racing.await.expect("task"));
    assert_eq!(checkpoint(pool, project).await, Some(minute(0)));
    app.stop().await;
}

#[tokio::test]
async fn detect_a_worker_back_from_a_lapsed_lease_does_not_decide_buckets_again() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    set_counts(pool, project, &Scope::Project, 0, 10, 20).await;
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;

    // A warms up, then stalls past its lease; B takes over, pages the burst, resolves it.
    let mut a = worker(&app);
    warmed_up_on_steady_project(&app, &mut a).await;
    expire_leases(pool).await;
    let mut b = worker(&app);
    let (opened, resolved) = passes(&mut b, 0, 5).await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(resolved, opened);

    // B goes away; A wakes up, takes the lapsed leases back and carries on.
    drop(b);
    expire_leases(pool).await;
    let back = pass_through(&mut a, minute(6)).await;
    assert_eq!(back.projects, 1, "{back:?}");
    assert!(
        back.opened.is_empty(),
        "the burst at minute 0 was decided by the other worker already: {back:?}"
    );
    assert_eq!(incidents_of(pool, project).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn detect_resolution_does_not_depend_on_how_passes_split_the_buckets() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    set_counts(pool, project, &Scope::Project, 0, 10, 20).await;
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    let mut worker = worker(&app);
    warmed_up_on_steady_project(&app, &mut worker).await;

    // One pass over the burst and five calm buckets (a loop catching up after a pause):
    // the same buckets one pass at a time resolve the incident at minute 5.
    let catch_up = pass_through(&mut worker, minute(5)).await;
    assert_eq!(catch_up.buckets, 6, "{catch_up:?}");
    assert_eq!(catch_up.opened.len(), 1, "{catch_up:?}");
    let next = pass_through(&mut worker, minute(6)).await;
    let id = catch_up.opened[0];
    let after = incident(pool, id).await;
    assert_eq!(
        (after.state.as_str(), after.resolved_at),
        ("resolved", Some(minute(5))),
        "calm buckets after the opening in the same pass count: {next:?} {after:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn detect_threshold_rule_fires_on_the_crossing_and_rearms_below_half() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let issue = insert_issue(pool, project, "ThresholdError", minute(-400)).await;
    let series = Scope::Issue(issue);
    let rule = ten_in_five_minutes_per_issue(pool, project).await;
    // One event a minute (5 in any window), then three a minute, none, three again.
    set_counts(pool, project, &series, -360, -1, 1).await;
    set_counts(pool, project, &series, 0, 6, 3).await;
    set_counts(pool, project, &series, 7, 10, 0).await;
    set_counts(pool, project, &series, 11, 14, 3).await;

    let mut worker = worker(&app);
    let warm_up = pass_through(&mut worker, minute(-1)).await;
    assert!(warm_up.opened.is_empty());
    // Window totals: 7 at minute 0, 9 at 1, 11 at 2 — the crossing.
    let (opened, _) = passes(&mut worker, 0, 1).await;
    assert!(opened.is_empty(), "{opened:?}");
    let crossing = pass_through(&mut worker, minute(2)).await;
    assert_eq!(crossing.opened.len(), 1, "{crossing:?}");
    let first = incident(pool, crossing.opened[0]).await;
    assert_eq!(
        (
            first.kind.as_str(),
            first.series.kind(),
            first.series.issue_id()
        ),
        ("threshold", "issue", Some(issue))
    );
    assert_eq!(first.opened_at, minute(2));
    assert_eq!(first.details["rule_id"], rule.id);
    assert_eq!(first.details["events"], 11);
    assert_eq!(first.details["threshold"], 10);
    assert_eq!(topics_of(pool, first.id).await, ["incident.opened"]);
    assert_eq!(fired(pool, rule.id).await, std::slice::from_ref(&series));

    // Above the threshold (13, 15, 15, 15, 12, 9) and then above half of it (6): no new
    // incident; the first one resolves once the series has been calm five buckets.
    let (opened, resolved) = passes(&mut worker, 3, 9).await;
    assert!(opened.is_empty(), "{opened:?}");
    assert_eq!(resolved, [first.id]);
    assert_eq!(
        fired(pool, rule.id).await,
        std::slice::from_ref(&series),
        "still fired at 6 of 10"
    );

    // 3 is below half of 10: re-armed.
    let rearm = pass_through(&mut worker, minute(10)).await;
    assert!(rearm.opened.is_empty(), "{rearm:?}");
    assert!(
        fired(pool, rule.id).await.is_empty(),
        "re-armed below half the threshold"
    );

    // Crossing again (3, 6, 9, 12) opens a second incident.
    let (opened, _) = passes(&mut worker, 11, 13).await;
    assert!(opened.is_empty(), "{opened:?}");
    let again = pass_through(&mut worker, minute(14)).await;
    assert_eq!(again.opened.len(), 1, "{again:?}");
    let second = incident(pool, again.opened[0]).await;
    assert_eq!(
        (
            second.kind.as_str(),
            second.series.issue_id(),
            second.opened_at
        ),
        ("threshold", Some(issue), minute(14))
    );
    assert_eq!(incident(pool, first.id).await.state, State::Resolved);
    assert_eq!(incidents_of(pool, project).await.len(), 2);
    assert_eq!(fired(pool, rule.id).await, [series]);
    app.stop().await;
}

#[tokio::test]
async fn detect_regressions_open_incidents_unless_from_an_older_release() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    // New issues would take the incident of their series first (one opening per series
    // per pass); this test is about regressions only.
    rules::set_enabled(pool, rule_id(pool, project, "new_issue").await, false)
        .await
        .expect("disable new_issue");
    let mut worker = worker(&app);
    let warm_up = worker
        .pass(Utc::now() - TimeDelta::minutes(10))
        .await
        .expect("pass");
    assert_eq!(warm_up.projects, 1);

    let plain = || python_exception("KeyError", "'id'", &["load"], 10);
    let fixed = || python_exception("ValueError", "bad", &["parse"], 20);
    let older = || python_exception("TypeError", "none", &["render"], 30);

    // Resolved without a release: any new event is a regression.
    send_ok(&app, plain()).await;
    let plain_id = issue_titled(pool, project, "KeyError: 'id'").await.id;
    issues::set_status(pool, plain_id, issues::Status::Resolved, None)
        .await
        .expect("resolve");
    send_ok(&app, plain()).await;
    // Resolved in 1.1: an event from 1.2 is a regression, one from 1.0 is not.
    send_ok(&app, from_release(fixed(), "1.0")).await;
    send_ok(&app, from_release(older(), "1.0")).await;
    let other = python_exception("Other", "x", &["x"], 1);
    send_ok(&app, from_release(other, "1.1")).await;
    let fixed_id = issue_titled(pool, project, "ValueError: bad").await.id;
    let older_id = issue_titled(pool, project, "TypeError: none").await.id;
    for id in [fixed_id, older_id] {
        issues::set_status(pool, id, issues::Status::Resolved, Some("1.1"))
            .await
            .expect("resolve in a release");
    }
    send_ok(&app, from_release(fixed(), "1.2")).await;
    send_ok(&app, from_release(older(), "1.0")).await;

    let plain_issue = issue(pool, plain_id).await;
    let fixed_issue = issue(pool, fixed_id).await;
    let older_issue = issue(pool, older_id).await;
    let plain_regressed = plain_issue
        .regressed_at
        .expect("the writer marks the regression");
    let fixed_regressed = fixed_issue
        .regressed_at
        .expect("the writer marks the regression");
    assert_eq!(older_issue.status, "resolved");
    assert_eq!(older_issue.regressed_at, None);

    // One pass over the minutes the events arrived in.
    let pass = worker
        .pass(now_closing(minute_of(Utc::now())))
        .await
        .expect("pass");
    assert_eq!(pass.opened.len(), 2, "{pass:?}");
    let all = incidents_of(pool, project).await;
    assert_eq!(all.len(), 2, "{all:?}");
    for (incident, issue_id, regressed_at) in [
        (&all[0], plain_id, plain_regressed),
        (&all[1], fixed_id, fixed_regressed),
    ] {
        assert_eq!(
            (
                incident.kind.as_str(),
                incident.series.kind(),
                incident.series.issue_id()
            ),
            ("regression", "issue", Some(issue_id))
        );
        assert_eq!(incident.opened_at, regressed_at);
        assert_eq!(
            topics_of(pool, incident.id).await,
            ["incident.opened", "issue.regressed"]
        );
    }
    assert_eq!(all[1].details["release"], "1.2");
    assert!(all.iter().all(|i| i.series.issue_id() != Some(older_id)));
    app.stop().await;
}

#[tokio::test]
async fn detect_an_ignored_issue_pages_only_once_it_reaches_its_limit() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let muted = insert_issue(pool, project, "MutedError", minute(-400)).await;
    let watched = insert_issue(pool, project, "WatchedError", minute(-400)).await;
    // Both issues: two events a minute, then a tenfold burst at minute 0.
    for issue in [muted, watched] {
        set_counts(pool, project, &Scope::Issue(issue), -360, 5, 2).await;
        set_counts(pool, project, &Scope::Issue(issue), 0, 0, 20).await;
    }
    // The ignored one comes back at 40 events in 10 minutes: 38 with the burst, 40 once a
    // later minute brings four.
    set_counts(pool, project, &Scope::Issue(muted), 2, 2, 4).await;
    issues::ignore(pool, muted, Some((40, 10)))
        .await
        .expect("ignore")
        .expect("the issue exists");

    let mut worker = worker(&app);
    pass_through(&mut worker, minute(-1)).await;
    let burst = pass_through(&mut worker, minute(0)).await;
    // The same burst pages on the issue nobody ignored, not on the ignored one.
    assert_eq!(burst.opened.len(), 1, "{burst:?}");
    let anomaly = incident(pool, burst.opened[0]).await;
    assert_eq!(
        (anomaly.kind.as_str(), anomaly.series.issue_id()),
        ("anomaly", Some(watched))
    );
    let quiet = pass_through(&mut worker, minute(1)).await;
    assert!(quiet.opened.is_empty(), "{quiet:?}");
    assert_eq!(issue(pool, muted).await.status, "ignored");

    let escalation = pass_through(&mut worker, minute(2)).await;
    assert_eq!(escalation.opened.len(), 1, "{escalation:?}");
    let escalated = incident(pool, escalation.opened[0]).await;
    assert_eq!(
        (
            escalated.kind.as_str(),
            escalated.series.kind(),
            escalated.series.issue_id()
        ),
        ("threshold", "issue", Some(muted))
    );
    assert_eq!(escalated.opened_at, minute(2));
    assert_eq!(escalated.details["reason"], "ignored issue escalated");
    assert_eq!(escalated.details["events"], 40);
    assert_eq!(escalated.details["threshold"], 40);
    assert_eq!(escalated.details["window_minutes"], 10);
    assert_eq!(topics_of(pool, escalated.id).await, ["incident.opened"]);
    assert_eq!(
        issue(pool, muted).await.status,
        "unresolved",
        "escalation unignores the issue"
    );
    assert!(issues::mutes(pool, project)
        .await
        .expect("mutes")
        .is_empty());
    assert_eq!(incidents_of(pool, project).await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn detect_new_issues_page_while_their_rule_is_enabled() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    let warm_up = worker
        .pass(Utc::now() - TimeDelta::minutes(10))
        .await
        .expect("pass");
    assert_eq!(warm_up.projects, 1);

    let response = app
        .send_event(&python_exception("FreshError", "first", &["start"], 5))
        .await;
    assert_eq!(response.status(), 200);
    let fresh = issue_titled(pool, project, "FreshError: first").await;
    let through = minute_of(Utc::now());
    let pass = worker.pass(now_closing(through)).await.expect("pass");
    assert_eq!(pass.opened.len(), 1, "{pass:?}");
    let new_issue = incident(pool, pass.opened[0]).await;
    assert_eq!(
        (
            new_issue.kind.as_str(),
            new_issue.series.kind(),
            new_issue.series.issue_id()
        ),
        ("new_issue", "issue", Some(fresh.id))
    );
    assert_eq!(new_issue.opened_at, fresh.first_seen);
    assert_eq!(new_issue.details["title"], "FreshError: first");
    let outbox = outbox_of(pool, new_issue.id).await;
    let topics: Vec<&str> = outbox.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, ["incident.opened", "issue.new"]);
    assert_eq!(
        outbox[1].1["data"]["incident"]["series"]["issue_id"],
        fresh.id.get()
    );

    // Switched off, the next new issue does not page; switched on again, the one after does.
    let rule = rule_id(pool, project, "new_issue").await;
    rules::set_enabled(pool, rule, false)
        .await
        .expect("disable");
    let quiet = insert_issue(
        pool,
        project,
        "QuietError",
        through + MINUTE + TimeDelta::seconds(5),
    )
    .await;
    let off = pass_through(&mut worker, through + MINUTE).await;
    assert_eq!(off.buckets, 1, "{off:?}");
    assert!(off.opened.is_empty(), "{off:?}");
    rules::set_enabled(pool, rule, true).await.expect("enable");
    let loud = insert_issue(
        pool,
        project,
        "LoudError",
        through + MINUTE * 2 + TimeDelta::seconds(5),
    )
    .await;
    let on = pass_through(&mut worker, through + MINUTE * 2).await;
    assert_eq!(on.opened.len(), 1, "{on:?}");
    let paged = incident(pool, on.opened[0]).await;
    assert_eq!(
        (paged.kind.as_str(), paged.series.issue_id()),
        ("new_issue", Some(loud))
    );
    assert!(incidents_of(pool, project)
        .await
        .iter()
        .all(|i| i.series.issue_id() != Some(quiet)));
    app.stop().await;
}

#[tokio::test]
async fn detect_the_open_incidents_gauge_counts_every_project_held() {
    let app = TestApp::spawn().await;
    let pool = &app.pool;
    let mut conn = pool.acquire().await.expect("connection");
    let other = seismo::store::projects::create(&mut conn, "other", "Other", None)
        .await
        .expect("project");
    drop(conn);
    for project in [app.project.id, other.id] {
        set_counts(pool, project, &Scope::Project, -360, -1, 20).await;
        set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    }
    let mut worker = worker(&app);
    pass_through(&mut worker, minute(-1)).await;
    let burst = pass_through(&mut worker, minute(0)).await;
    assert_eq!(burst.opened.len(), 2, "{burst:?}");
    assert!(
        app.metrics()
            .contains("seismo_incidents_open{kind=\"anomaly\"} 2"),
        "{}",
        app.metrics()
    );
    app.stop().await;
}

#[tokio::test]
async fn detect_a_silenced_burst_is_recorded_but_announces_nothing() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    warmed_up_on_steady_project(&app, &mut worker).await;
    let window = |kind: &str| {
        json!({"project_id": project, "kind": kind, "comment": "deploying",
               "starts_at": minute(-1), "ends_at": minute(30)})
    };
    let (status, other) = call(
        &app,
        Method::POST,
        "/api/v1/silences",
        Some(window("threshold")),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    let (status, silence) = call(
        &app,
        Method::POST,
        "/api/v1/silences",
        Some(window("anomaly")),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    set_counts(pool, project, &Scope::Project, 1, 10, 20).await;

    let burst = pass_through(&mut worker, minute(0)).await;
    assert_eq!(
        burst.opened.len(),
        1,
        "the incident is still recorded: {burst:?}"
    );
    let opened = incident(pool, burst.opened[0]).await;
    assert_eq!(
        opened.silence_id,
        silence["id"].as_i64(),
        "the anomaly silence, not the threshold one"
    );
    let history = incidents::history(pool, opened.id).await.expect("history");
    assert!(
        history[0].reason.contains("silenced by silence"),
        "{history:?}"
    );
    let (_, shown) = call(
        &app,
        Method::GET,
        &format!("/api/v1/incidents/{}", opened.id),
        None,
    )
    .await;
    assert_eq!(shown["silence_id"], silence["id"]);

    let (_, resolved) = passes(&mut worker, 1, 5).await;
    assert_eq!(resolved, vec![opened.id]);
    assert!(
        topics_of(pool, opened.id).await.is_empty(),
        "neither opening nor resolution announced"
    );
    app.stop().await;
}

#[tokio::test]
async fn detect_a_burst_after_its_silence_ended_is_announced() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    warmed_up_on_steady_project(&app, &mut worker).await;
    // Over before the burst's bucket (the bucket decides, not the wall clock); and one for
    // another service.
    let ended = json!({"project_id": project, "starts_at": minute(-30), "ends_at": minute(0)});
    let elsewhere = json!({"project_id": project, "service": "billing", "duration_minutes": 600,
                           "starts_at": minute(-1)});
    for silence in [ended, elsewhere] {
        let (status, body) = call(&app, Method::POST, "/api/v1/silences", Some(silence)).await;
        assert_eq!(status, 201, "{body}");
    }
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    set_counts(pool, project, &Scope::Project, 1, 10, 20).await;

    let burst = pass_through(&mut worker, minute(0)).await;
    assert_eq!(burst.opened.len(), 1, "{burst:?}");
    let opened = incident(pool, burst.opened[0]).await;
    assert_eq!(opened.silence_id, None);
    assert_eq!(topics_of(pool, opened.id).await, ["incident.opened"]);
    app.stop().await;
}

#[tokio::test]
async fn detect_a_pass_catching_up_sees_crossings_inside_the_gap() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    // The burst would page as an anomaly first (one opening per series per pass): this
    // test is about the counting rules.
    rules::set_enabled(pool, rule_id(pool, project, "anomaly").await, false)
        .await
        .expect("disable anomaly");
    let counted = insert_issue(pool, project, "CountedError", minute(-400)).await;
    let muted = insert_issue(pool, project, "MutedError", minute(-400)).await;
    let rule = ten_in_five_minutes_per_issue(pool, project).await;
    issues::ignore(pool, muted, Some((10, 5)))
        .await
        .expect("ignore")
        .expect("the issue exists");
    // A quiet event a minute, one burst of 12 at minute 3, then silence.
    for issue in [counted, muted] {
        set_counts(pool, project, &Scope::Issue(issue), -360, 2, 1).await;
        set_counts(pool, project, &Scope::Issue(issue), 3, 3, 12).await;
    }

    let mut worker = worker(&app);
    pass_through(&mut worker, minute(-1)).await;
    // Seismo was down: one pass decides minutes 0..=20. By minute 20 every window is empty
    // again; the crossings at minute 3 must still be seen, at minute 3.
    let caught_up = pass_through(&mut worker, minute(20)).await;
    assert_eq!(caught_up.buckets, 21, "{caught_up:?}");
    let opened: Vec<Incident> = incidents_of(pool, project)
        .await
        .into_iter()
        .filter(|i| i.kind == Kind::Threshold)
        .collect();
    let mut summary: Vec<(Option<IssueId>, DateTime<Utc>, Value, Value)> = opened
        .iter()
        .map(|i| {
            (
                i.series.issue_id(),
                i.opened_at,
                i.details["events"].clone(),
                i.details["reason"].clone(),
            )
        })
        .collect();
    summary.sort_by_key(|s| s.0);
    let escalated = json!("ignored issue escalated");
    assert_eq!(
        summary,
        [
            (Some(counted), minute(3), json!(16), Value::Null),
            (Some(muted), minute(3), json!(16), escalated)
        ],
        "the rule pages for the issue nobody ignored, the mute's escalation for the other: {opened:?}"
    );
    let by_rule = opened
        .iter()
        .find(|i| i.series.issue_id() == Some(counted))
        .expect("the rule's incident");
    assert_eq!(by_rule.details["rule_id"], rule.id);
    assert!(
        fired(pool, rule.id).await.is_empty(),
        "re-armed by minute 20"
    );
    assert_eq!(issue(pool, muted).await.status, "unresolved", "escalated");
    app.stop().await;
}

#[tokio::test]
async fn detect_an_escalated_incident_with_nothing_left_to_verify_resolves_once_calm() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    warmed_up_on_steady_project(&app, &mut worker).await;
    set_counts(pool, project, &Scope::Project, 0, 0, 200).await;
    set_counts(pool, project, &Scope::Project, 1, 10, 20).await;
    let burst = pass_through(&mut worker, minute(0)).await;
    let id = burst.opened[0];
    // Escalated (a recovery action failed its verification, people were told).
    let mut conn = pool.acquire().await.expect("connection");
    incidents::transition(
        &mut conn,
        id,
        State::Escalated,
        "restart did not help",
        minute(0),
    )
    .await
    .expect("escalate")
    .expect("active");
    drop(conn);
    let (_, resolved) = passes(&mut worker, 1, 5).await;
    assert_eq!(resolved, vec![id], "five calm buckets resolve it");
    assert_eq!(incident(pool, id).await.state, State::Resolved);
    assert_eq!(
        topics_of(pool, id).await,
        ["incident.opened", "incident.resolved"]
    );
    app.stop().await;
}
