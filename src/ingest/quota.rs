//! Per-project quotas in events per minute, counted at ingest, before anything is
//! acknowledged: an event over quota gets a 429 with `Retry-After`, never a 200 and a silent
//! drop. Windows are aligned to the wall-clock minute. The count is per Seismo process.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct Quotas {
    used: Mutex<HashMap<i64, (i64, u64)>>,
}

impl Quotas {
    /// Takes `n` events from the project's current minute, or says how many seconds until
    /// the next minute starts.
    pub fn take(
        &self,
        project_id: i64,
        per_minute: Option<i32>,
        n: usize,
        now: DateTime<Utc>,
    ) -> Result<(), u64> {
        let Some(limit) = per_minute.and_then(|l| u64::try_from(l).ok()) else {
            return Ok(());
        };
        let minute = now.timestamp().div_euclid(60);
        let retry_after = (60 - now.timestamp().rem_euclid(60)).max(1) as u64;
        let Ok(mut used) = self.used.lock() else {
            return Ok(());
        };
        let entry = used.entry(project_id).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 + n as u64 > limit {
            return Err(retry_after);
        }
        entry.1 += n as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, second)
            .single()
            .expect("valid")
    }

    #[test]
    fn quota_is_per_minute_and_per_project() {
        let quotas = Quotas::default();
        assert_eq!(quotas.take(1, Some(3), 2, at(10)), Ok(()));
        assert_eq!(quotas.take(1, Some(3), 2, at(15)), Err(45));
        assert_eq!(quotas.take(1, Some(3), 1, at(20)), Ok(()));
        assert_eq!(quotas.take(2, Some(3), 3, at(20)), Ok(()));
        assert_eq!(quotas.take(1, None, 1000, at(20)), Ok(()));
        let next_minute = at(0) + chrono::TimeDelta::seconds(61);
        assert_eq!(quotas.take(1, Some(3), 3, next_minute), Ok(()));
    }
}
