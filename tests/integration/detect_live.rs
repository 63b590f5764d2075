//! Detection as a new user meets it, against a real database: a project a few minutes
//! old, services whose requests are known, releases resolved "in" a version, and a daily
//! rhythm over several days. Counts are written for past minutes the test chooses; the
//! passes are given the `now` at which their last bucket has just closed, so nothing
//! waits in real time.

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seismo::model::{Incident, Kind, ProjectId, Scope, State};
use seismo::store::{issues, rules};
use sqlx::PgPool;

use crate::detect::{
    from_release, incident, incidents_of, insert_issue, issue, issue_titled, minute, minute_of,
    now_closing, pass_through, passes, send_ok, topics_of, worker,
};
use crate::harness::{python_exception, TestApp};

/// One bucket of a series: events, and the requests and failed requests among them.
#[derive(Clone, Copy)]
struct Bucket {
    events: i64,
    requests: i64,
    failed: i64,
}

fn errors(events: i64) -> Bucket {
    Bucket {
        events,
        requests: 0,
        failed: 0,
    }
}

/// Writes a series' buckets, one a minute from `from`.
async fn write_buckets(
    pool: &PgPool,
    project_id: ProjectId,
    scope: &Scope,
    from: DateTime<Utc>,
    buckets: &[Bucket],
) {
    let (kind, service, issue_id) = scope.columns();
    let minutes: Vec<DateTime<Utc>> = (0..buckets.len() as i64)
        .map(|i| from + TimeDelta::minutes(i))
        .collect();
    let column = |f: fn(&Bucket) -> i64| buckets.iter().map(f).collect::<Vec<i64>>();
    sqlx::query(
        "INSERT INTO minute_counts (project_id, scope, service, issue_id, minute, events, requests, failed) \
         SELECT $1, $2, $3, $4, m, e, r, f FROM UNNEST($5::timestamptz[], $6::int8[], $7::int8[], $8::int8[]) \
           AS b(m, e, r, f) \
         ON CONFLICT (project_id, scope, service, issue_id, minute) DO UPDATE SET \
           events = EXCLUDED.events, requests = EXCLUDED.requests, failed = EXCLUDED.failed",
    )
    .bind(project_id)
    .bind(kind)
    .bind(service)
    .bind(issue_id)
    .bind(&minutes)
    .bind(column(|b| b.events))
    .bind(column(|b| b.requests))
    .bind(column(|b| b.failed))
    .execute(pool)
    .await
    .expect("write minute counts");
}

/// Poisson sample by inversion (small means) or its normal approximation.
fn poisson(rng: &mut StdRng, mean: f64) -> i64 {
    if mean > 200.0 {
        let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
        return (mean + z * mean.sqrt()).round().max(0.0) as i64;
    }
    let (mut k, mut p) = (0, (-mean).exp());
    let mut cumulative = p;
    let u: f64 = rng.random();
    while u > cumulative && k < 10_000 {
        k += 1;
        p *= mean / k as f64;
        cumulative += p;
    }
    k
}

/// The active or past incidents of one series.
fn on_series<'a>(all: &'a [Incident], scope: &Scope) -> Vec<&'a Incident> {
    all.iter().filter(|i| i.series == *scope).collect()
}

#[tokio::test]
async fn detect_a_fresh_project_pages_a_twentyfold_jump_within_two_buckets() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    // The detector meets the project before its first event, as it does live.
    let first = pass_through(&mut worker, minute(-1)).await;
    assert_eq!(first.projects, 1);
    // Six minutes at 2 errors a second (Poisson), then a new error adds 40 a second.
    let mut rng = StdRng::seed_from_u64(14);
    let mut history: Vec<Bucket> = (0..6).map(|_| errors(poisson(&mut rng, 120.0))).collect();
    history[0].events /= 2; // the first minute is only half covered
    let burst: Vec<Bucket> = (0..3).map(|_| errors(poisson(&mut rng, 2_520.0))).collect();
    let series: Vec<Bucket> = history.iter().chain(&burst).copied().collect();
    write_buckets(pool, project, &Scope::Project, minute(0), &series).await;

    let (quiet, _) = passes(&mut worker, 0, 5).await;
    assert!(
        quiet.is_empty(),
        "six steady minutes page nothing: {quiet:?}"
    );
    let (opened, _) = passes(&mut worker, 6, 7).await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    let paged = incident(pool, opened[0]).await;
    assert_eq!(
        (paged.kind, &paged.series),
        (Kind::Anomaly, &Scope::Project)
    );
    assert!(paged.opened_at <= minute(7), "{paged:?}");
    app.stop().await;
}

/// Twelve minutes of two services at 3,000 requests a minute with 1 % failed, then
/// `control` doubles its traffic at 1 % and `main` goes to 30 % at the same traffic.
#[tokio::test]
async fn detect_errors_that_follow_traffic_do_not_page_and_a_ratio_jump_opens_error_rate() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    pass_through(&mut worker, minute(-1)).await;
    let mut rng = StdRng::seed_from_u64(2);
    let mut bucket = |requests: i64, ratio: f64| {
        let failed = (0..requests)
            .filter(|_| rng.random::<f64>() < ratio)
            .count() as i64;
        Bucket {
            events: failed,
            requests,
            failed,
        }
    };
    let control: Vec<Bucket> = (0..16)
        .map(|m| bucket(if m < 12 { 3_000 } else { 6_000 }, 0.01))
        .collect();
    let main: Vec<Bucket> = (0..16)
        .map(|m| bucket(3_000, if m < 12 { 0.01 } else { 0.3 }))
        .collect();
    let total: Vec<Bucket> = control
        .iter()
        .zip(&main)
        .map(|(c, m)| Bucket {
            events: c.events + m.events,
            requests: c.requests + m.requests,
            failed: c.failed + m.failed,
        })
        .collect();
    let (control_scope, main_scope) = (
        Scope::Service("control".to_owned()),
        Scope::Service("main".to_owned()),
    );
    write_buckets(pool, project, &control_scope, minute(0), &control).await;
    write_buckets(pool, project, &main_scope, minute(0), &main).await;
    write_buckets(pool, project, &Scope::Project, minute(0), &total).await;

    let (steady, _) = passes(&mut worker, 0, 11).await;
    assert!(steady.is_empty(), "{steady:?}");
    passes(&mut worker, 12, 15).await;
    let all = incidents_of(pool, project).await;
    assert!(
        on_series(&all, &control_scope).is_empty(),
        "errors that doubled with the traffic are not news: {all:?}"
    );
    let main_incidents = on_series(&all, &main_scope);
    assert_eq!(main_incidents.len(), 1, "{all:?}");
    let paged = main_incidents[0];
    assert_eq!(paged.kind, Kind::ErrorRate, "{paged:?}");
    assert!(paged.opened_at <= minute(13), "{paged:?}");
    let ratio_before = paged.details["ratio_before"]
        .as_f64()
        .expect("ratio before");
    let ratio = paged.details["ratio"].as_f64().expect("ratio now");
    assert!((0.005..0.02).contains(&ratio_before), "{}", paged.details);
    assert!((0.25..0.35).contains(&ratio), "{}", paged.details);
    app.stop().await;
}

#[tokio::test]
async fn detect_releases_compare_by_version_and_a_regression_updates_the_open_incident() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    let warm_up = worker
        .pass(Utc::now() - TimeDelta::minutes(10))
        .await
        .expect("pass");
    assert_eq!(warm_up.projects, 1);

    let error = || python_exception("KeyError", "'cart'", &["checkout"], 12);
    send_ok(&app, from_release(error(), "app@1.1.0")).await;
    let id = issue_titled(pool, project, "KeyError: 'cart'").await.id;
    // Its new-issue incident opens in a pass over the minute it was first seen.
    let earlier = minute_of(Utc::now()) - TimeDelta::minutes(3);
    sqlx::query("UPDATE issues SET first_seen = $2 WHERE id = $1")
        .bind(id)
        .bind(earlier + TimeDelta::seconds(5))
        .execute(pool)
        .await
        .expect("move first seen");
    let first = worker.pass(now_closing(earlier)).await.expect("pass");
    assert_eq!(first.opened.len(), 1, "{first:?}");
    let new_issue = first.opened[0];

    // Resolved in app@1.1.0: app@1.0.9, never seen before, is older by version.
    issues::set_status(pool, id, issues::Status::Resolved, Some("app@1.1.0"))
        .await
        .expect("resolve");
    send_ok(&app, from_release(error(), "app@1.0.9")).await;
    assert_eq!(issue(pool, id).await.status, "resolved");
    assert_eq!(issue(pool, id).await.regressed_at, None);
    // app@1.2.0 is newer: a regression, while the new-issue incident is still open.
    send_ok(&app, from_release(error(), "app@1.2.0")).await;
    assert_eq!(issue(pool, id).await.status, "unresolved");

    let pass = worker
        .pass(now_closing(minute_of(Utc::now())))
        .await
        .expect("pass");
    assert!(pass.opened.is_empty(), "{pass:?}");
    assert_eq!(pass.updated, [new_issue], "{pass:?}");
    let worse = incident(pool, new_issue).await;
    assert_eq!(worse.kind, Kind::NewIssue);
    assert_eq!(worse.kinds, [Kind::NewIssue, Kind::Regression]);
    assert_eq!(worse.state, State::Open);
    assert_eq!(worse.details["findings"][0]["kind"], "regression");
    assert_eq!(
        worse.details["findings"][0]["details"]["release"],
        "app@1.2.0"
    );
    assert_eq!(
        topics_of(pool, new_issue).await,
        [
            "incident.opened",
            "issue.new",
            "incident.updated",
            "issue.regressed"
        ]
    );
    let history = seismo::store::incidents::history(pool, new_issue)
        .await
        .expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history[1].reason.contains("regression"), "{history:?}");
    app.stop().await;
}

#[tokio::test]
async fn detect_resolving_or_ignoring_an_issue_ends_its_incidents() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    let mut worker = worker(&app);
    pass_through(&mut worker, minute(-1)).await;
    let resolved = insert_issue(pool, project, "ResolvedError", minute(0)).await;
    let ignored = insert_issue(pool, project, "IgnoredError", minute(0)).await;
    let untouched = insert_issue(pool, project, "OpenError", minute(0)).await;
    // They keep failing a little every minute: their series never calm down by themselves.
    for id in [resolved, ignored, untouched] {
        let scope = Scope::Issue(id);
        let buckets: Vec<Bucket> = (0..6).map(|_| errors(3)).collect();
        write_buckets(pool, project, &scope, minute(0), &buckets).await;
    }
    let opened = pass_through(&mut worker, minute(0)).await.opened;
    assert_eq!(opened.len(), 3, "{opened:?}");

    issues::set_status(pool, resolved, issues::Status::Resolved, None)
        .await
        .expect("resolve");
    issues::ignore(pool, ignored, None)
        .await
        .expect("ignore")
        .expect("the issue exists");
    let next = pass_through(&mut worker, minute(1)).await;
    assert_eq!(next.resolved.len(), 2, "{next:?}");
    let all = incidents_of(pool, project).await;
    for (id, state, reason) in [
        (resolved, State::Resolved, Some("its issue was resolved")),
        (ignored, State::Resolved, Some("its issue was ignored")),
        (untouched, State::Open, None),
    ] {
        let found = on_series(&all, &Scope::Issue(id));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].state, state, "{:?}", found[0]);
        if let Some(reason) = reason {
            let history = seismo::store::incidents::history(pool, found[0].id)
                .await
                .expect("history");
            assert_eq!(history.last().map(|t| t.reason.as_str()), Some(reason));
            assert_eq!(
                topics_of(pool, found[0].id).await,
                ["incident.opened", "issue.new", "incident.resolved"]
            );
        }
    }
    app.stop().await;
}

/// Ten errors a minute at night, forty from 08:00 to 16:00 (a sharp morning ramp and an
/// evening fall), Poisson noise, six days: the rhythm is news on the first day at most.
#[tokio::test]
async fn detect_a_daily_ramp_repeated_on_five_days_pages_at_most_on_the_first() {
    let app = TestApp::spawn().await;
    let (pool, project) = (&app.pool, app.project.id);
    // Only the anomaly rule: this is about the count series.
    for kind in ["new_issue", "regression", "error_rate"] {
        let id = crate::detect::rule_id(pool, project, kind).await;
        rules::set_enabled(pool, id, false).await.expect("disable");
    }
    let days = 6;
    let start = minute(-12 * 60); // 2030-03-04 00:00 UTC
    let mut rng = StdRng::seed_from_u64(4);
    let buckets: Vec<Bucket> = (0..days * 1_440)
        .map(|m| {
            let hour = (m % 1_440) / 60;
            let mean = if (8..16).contains(&hour) { 40.0 } else { 10.0 };
            errors(poisson(&mut rng, mean))
        })
        .collect();
    write_buckets(pool, project, &Scope::Project, start, &buckets).await;

    let mut worker = worker(&app);
    pass_through(&mut worker, start - TimeDelta::minutes(1)).await;
    // One pass an hour, as a process that was busy would catch up.
    for hour in 1..=days * 24 {
        let through = start + TimeDelta::hours(hour) - TimeDelta::minutes(1);
        pass_through(&mut worker, through).await;
    }
    let all = incidents_of(pool, project).await;
    let after_first_day: Vec<&Incident> = all
        .iter()
        .filter(|i| i.opened_at >= start + TimeDelta::days(1))
        .collect();
    assert!(
        after_first_day.is_empty(),
        "the rhythm paged again: {:?}",
        after_first_day
            .iter()
            .map(|i| (i.opened_at, &i.details))
            .collect::<Vec<_>>()
    );
    app.stop().await;
}
