//! Quotas in events per minute, counted at ingest, before anything is acknowledged: an event
//! over quota gets a 429 with `Retry-After`, never a 200 and a silent drop. A project may
//! have a quota, and each of its ingestion keys one of its own (a noisy client gets its own
//! ceiling without starving the others); a request must fit both, and counts against both
//! only when it does. Windows are aligned to the wall-clock minute. The count is per Seismo
//! process.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::model::ProjectId;
use crate::store::projects::KeyGrant;

/// What a quota is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    Project(ProjectId),
    Key(i64),
}

/// The quotas a request through this key must fit: its project's and the key's own.
pub fn limits_of(grant: &KeyGrant) -> [(Counter, Option<i32>); 2] {
    [
        (
            Counter::Project(grant.project_id),
            grant.rate_limit_per_minute,
        ),
        (Counter::Key(grant.key_id), grant.key_rate_limit_per_minute),
    ]
}

#[derive(Default)]
pub struct Quotas {
    /// Per counter: the minute it counts, and the events taken in it.
    used: Mutex<HashMap<Counter, (i64, u64)>>,
}

impl Quotas {
    /// Takes `n` events from the current minute of every counter with a limit, or takes
    /// nothing and says how many seconds until the next minute starts.
    pub fn take(
        &self,
        limits: &[(Counter, Option<i32>)],
        n: usize,
        now: DateTime<Utc>,
    ) -> Result<(), u64> {
        let limited: Vec<(Counter, u64)> = limits
            .iter()
            .filter_map(|(counter, limit)| Some((*counter, u64::try_from((*limit)?).ok()?)))
            .collect();
        if limited.is_empty() {
            return Ok(());
        }
        let minute = now.timestamp().div_euclid(60);
        let retry_after = (60 - now.timestamp().rem_euclid(60)).max(1) as u64;
        let Ok(mut used) = self.used.lock() else {
            return Ok(());
        };
        let used_now = |used: &HashMap<Counter, (i64, u64)>, counter: &Counter| {
            used.get(counter)
                .filter(|(at, _)| *at == minute)
                .map_or(0, |(_, count)| *count)
        };
        if limited
            .iter()
            .any(|(counter, limit)| used_now(&used, counter) + n as u64 > *limit)
        {
            return Err(retry_after);
        }
        for (counter, _) in &limited {
            let taken = used_now(&used, counter) + n as u64;
            used.insert(*counter, (minute, taken));
        }
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

    fn project(id: i64, limit: Option<i32>) -> [(Counter, Option<i32>); 1] {
        [(Counter::Project(ProjectId(id)), limit)]
    }

    #[test]
    fn quota_is_per_minute_and_per_project() {
        let quotas = Quotas::default();
        assert_eq!(quotas.take(&project(1, Some(3)), 2, at(10)), Ok(()));
        assert_eq!(quotas.take(&project(1, Some(3)), 2, at(15)), Err(45));
        assert_eq!(quotas.take(&project(1, Some(3)), 1, at(20)), Ok(()));
        assert_eq!(quotas.take(&project(2, Some(3)), 3, at(20)), Ok(()));
        assert_eq!(quotas.take(&project(1, None), 1000, at(20)), Ok(()));
        let next_minute = at(0) + chrono::TimeDelta::seconds(61);
        assert_eq!(quotas.take(&project(1, Some(3)), 3, next_minute), Ok(()));
    }

    #[test]
    fn a_request_must_fit_both_quotas_and_counts_against_both_only_then() {
        let quotas = Quotas::default();
        let noisy = [
            (Counter::Project(ProjectId(1)), Some(10)),
            (Counter::Key(7), Some(4)),
        ];
        let quiet = [
            (Counter::Project(ProjectId(1)), Some(10)),
            (Counter::Key(8), None),
        ];
        assert_eq!(quotas.take(&noisy, 4, at(1)), Ok(()));
        // The key is spent; refusing it takes nothing from the project.
        assert_eq!(quotas.take(&noisy, 1, at(2)), Err(58));
        assert_eq!(quotas.take(&quiet, 6, at(3)), Ok(()));
        // The project is spent now, for every key.
        assert_eq!(quotas.take(&quiet, 1, at(4)), Err(56));
    }
}
