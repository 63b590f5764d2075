//! One whole detection pass against PostgreSQL: read a closed minute of counts, step every
//! series, decide, and commit incidents + state + checkpoint — for a project with many
//! series. Complements `detect_tick` (the in-memory step alone).
//!
//! `cargo run --release --example detect_pass -- [series]` needs the machine's PostgreSQL
//! at 127.0.0.1:5432 (user postgres); it creates and drops a database of its own. It fills
//! `minute_counts` with 32 minutes of counts for `series` issue series, warms the detector
//! up (first pass, which also saves the state), then times twelve one-minute passes: one of
//! them saves every series' state again (the worker saves every ten minutes). Last, a new
//! worker takes the project over, as after a restart: it loads the saved state and steps it
//! up to the checkpoint.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use seismo::detect::worker::{Settings, Worker};
use seismo::metrics::Metrics;
use seismo::store::{self, projects};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const MINUTES: i64 = 32;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let series: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let name = format!("seismo_bench_detect_{}", std::process::id());
    let admin = store::connect(&format!("{SERVER}/postgres"), 1).await?;
    store::create_database_if_missing(&admin, &name).await?;
    let result = run(&format!("{SERVER}/{name}"), series).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&admin)
        .await?;
    result
}

async fn run(url: &str, series: i64) -> anyhow::Result<()> {
    let pool = store::connect(url, 4).await?;
    store::migrate(&pool).await?;
    let mut conn = pool.acquire().await?;
    let project = projects::create(&mut conn, "bench", "Bench", None).await?;
    drop(conn);
    let start = Utc::now().duration_trunc(TimeDelta::minutes(1))? - TimeDelta::minutes(MINUTES);
    let filled = Instant::now();
    // Every series has a few events in every minute: all of them stay alive.
    sqlx::query(
        "INSERT INTO minute_counts (project_id, scope, service, issue_id, minute, events) \
         SELECT $1, 'issue', '', s, $2 + m * interval '1 minute', 1 + (s + m) % 5 \
         FROM generate_series(1::bigint, $3) AS s, generate_series(0::bigint, $4 - 1) AS m",
    )
    .bind(project.id)
    .bind(start)
    .bind(series)
    .bind(MINUTES)
    .execute(&pool)
    .await?;
    println!(
        "filled {} count rows in {:.1} s",
        series * MINUTES,
        filled.elapsed().as_secs_f64()
    );
    let mut worker = Worker::new(pool.clone(), Arc::new(Metrics::new()), Settings::default());
    let at = |minute: i64| -> DateTime<Utc> {
        start + TimeDelta::minutes(minute) + TimeDelta::seconds(30)
    };
    let warm = Instant::now();
    let pass = worker.pass(at(MINUTES - 12)).await?;
    println!(
        "warm-up pass: {} buckets in {:.2} s",
        pass.buckets,
        warm.elapsed().as_secs_f64()
    );
    for minute in MINUTES - 11..=MINUTES {
        let timed = Instant::now();
        let pass = worker.pass(at(minute)).await?;
        println!(
            "one-minute pass over {series} series: {:.2} s ({} bucket, {} incidents opened)",
            timed.elapsed().as_secs_f64(),
            pass.buckets,
            pass.opened.len()
        );
    }
    let document: i64 = sqlx::query_scalar(
        "SELECT coalesce(length(series), 0)::bigint FROM detector_checkpoints WHERE project_id = $1",
    )
    .bind(project.id)
    .fetch_one(&pool)
    .await?;
    println!(
        "saved state: {:.1} MB compressed for {series} series",
        document as f64 / 1e6
    );
    // A restart: the first process is gone and its leases with it.
    drop(worker);
    sqlx::query("DELETE FROM detector_leases")
        .execute(&pool)
        .await?;
    let mut restarted = Worker::new(pool.clone(), Arc::new(Metrics::new()), Settings::default());
    let timed = Instant::now();
    let pass = restarted.pass(at(MINUTES)).await?;
    println!(
        "restart: load {series} series' state and step it to the checkpoint: {:.2} s ({} buckets)",
        timed.elapsed().as_secs_f64(),
        pass.buckets
    );
    pool.close().await;
    Ok(())
}
