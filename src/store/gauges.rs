//! Gauges read from the database rather than counted in the process: issues by status and
//! the three probabilities of DESIGN.md §5, over all projects. `seismo serve` refreshes
//! them every [`INTERVAL`], so a scrape of `/metrics` never waits for a query; every replica
//! reports the same values (dashboards take their `max`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::{issues, stats, StoreError};
use crate::metrics::Metrics;

/// How often the gauges are refreshed.
pub const INTERVAL: Duration = Duration::from_secs(30);

/// The statuses an issue can have: each is exported, zeros included.
const STATUSES: [&str; 3] = ["unresolved", "resolved", "ignored"];

/// Reads the counts and sets the gauges.
pub async fn refresh(pool: &PgPool, metrics: &Metrics) -> Result<(), StoreError> {
    let counts = issues::count_by_status(pool).await?;
    for status in STATUSES {
        let count = counts
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        metrics.issues.with_label_values(&[status]).set(count);
    }
    stats::refresh_gauges(pool, metrics).await?;
    Ok(())
}

/// Refreshes now and then every [`INTERVAL`] until `stop` turns true.
pub async fn run_periodically(
    pool: PgPool,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(error) = refresh(&pool, &metrics).await {
            tracing::warn!(%error, "refreshing the gauges failed; retrying next interval");
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.changed() => break,
        }
    }
}
