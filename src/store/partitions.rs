//! Daily partitions of `events`. The writer makes sure the partition for each day in a batch
//! exists before the batch's transaction starts; creating is idempotent and safe when two
//! Seismo processes race for the same day.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{Days, NaiveDate};
use sqlx::PgConnection;

use super::StoreError;

/// Days known to have a partition, so the common case costs no query.
#[derive(Debug, Default)]
pub struct Partitions {
    known: Mutex<HashSet<NaiveDate>>,
}

pub fn partition_name(day: NaiveDate) -> String {
    format!("events_p{}", day.format("%Y%m%d"))
}

impl Partitions {
    pub async fn ensure(
        &self,
        conn: &mut PgConnection,
        days: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<(), StoreError> {
        for day in days {
            if self.is_known(day) {
                continue;
            }
            create(conn, day).await?;
            if let Ok(mut known) = self.known.lock() {
                known.insert(day);
            }
        }
        Ok(())
    }

    fn is_known(&self, day: NaiveDate) -> bool {
        self.known
            .lock()
            .map(|known| known.contains(&day))
            .unwrap_or(false)
    }
}

async fn create(conn: &mut PgConnection, day: NaiveDate) -> Result<(), StoreError> {
    let next = day
        .checked_add_days(Days::new(1))
        .ok_or_else(|| StoreError::Corrupt(format!("no day after {day}")))?;
    // Dates are formatted by chrono, never user text, so building the DDL is safe.
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ('{day}') TO ('{next}')",
        partition_name(day)
    );
    match sqlx::query(&sql).execute(conn).await {
        Ok(_) => Ok(()),
        // Another process created it between our IF NOT EXISTS check and the create.
        Err(e) if is_already_exists(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_already_exists(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P07" || code == "23505")
}
