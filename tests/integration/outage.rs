//! PostgreSQL going away under a running Seismo, on a throwaway cluster of the test's own
//! (never the machine's server): requests are refused with 503 + Retry-After (never a 200
//! for an event that is not stored), `/readyz` says so, and exactly the acknowledged events
//! are in the database when it returns.

use crate::harness::{python_exception, TestApp};
use seismo::pg_runner::EmbeddedPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_with_503_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let data_dir = dir.path().join("pg");
    let mut cluster = EmbeddedPostgres::start(&data_dir)
        .await
        .expect("start a throwaway cluster");
    let server = format!("postgres://postgres@127.0.0.1:{}", cluster.port());
    let app = TestApp::spawn_on(&server, |_| {}).await;
    let event = python_exception("KeyError", "'id'", &["load"], 1);
    let post = || app.send_event(&event);
    let readiness = || async {
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
    };
    assert_eq!(post().await.status(), 200);
    assert_eq!(readiness().await, 200);

    cluster.stop().await.expect("stop the cluster");
    let refused = post().await;
    assert_eq!(refused.status(), 503);
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("integer Retry-After");
    assert!(retry_after >= 1);
    assert_eq!(readiness().await, 503);
    assert!(
        app.metrics().contains("reason=\"storage_unavailable\""),
        "{}",
        app.metrics()
    );

    // The cluster comes back (on a new port): what was acknowledged is there, nothing else.
    let cluster = EmbeddedPostgres::start(&data_dir)
        .await
        .expect("restart the cluster");
    let database = app
        .database_url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned();
    app.stop().await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{database}",
        cluster.port()
    );
    let pool = seismo::store::connect(&url, 2).await.expect("reconnect");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 1, "exactly the acknowledged event is stored");
    drop(cluster);
}
