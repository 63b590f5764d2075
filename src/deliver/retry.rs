//! When to try a failed delivery again, and when to stop.
//!
//! Notifications retry for about a day (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) and
//! then die; a recovery action retries briefly and **expires** (default 10 minutes after it
//! was requested): a restart delivered an hour late may hit a service that has recovered,
//! or a new deployment. Each delay gets ±20 % jitter so receivers coming back from an
//! outage are not hit by every sender in the same second. A receiver's `Retry-After`
//! (seconds or an HTTP date) replaces the delay when it asks for longer.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;

/// Delays before each attempt (the first is the first attempt's).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub delays: Vec<Duration>,
}

impl Schedule {
    pub fn notifications() -> Schedule {
        let m = 60;
        let h = 60 * m;
        Schedule::of_seconds(&[0, 5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h])
    }

    pub fn recovery() -> Schedule {
        Schedule::of_seconds(&[0, 5, 15, 30, 60, 120, 180])
    }

    pub fn of_seconds(seconds: &[u64]) -> Schedule {
        Schedule {
            delays: seconds.iter().copied().map(Duration::from_secs).collect(),
        }
    }

    /// When attempt number `attempts + 1` is due after `attempts` failed ones, or `None`
    /// when the schedule (or the deadline) is exhausted.
    pub fn next(
        &self,
        attempts: usize,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let planned = jittered(*self.delays.get(attempts)?);
        let delay = retry_after.map_or(planned, |asked| asked.max(planned));
        let at = now + TimeDelta::from_std(delay).ok()?;
        match expires_at {
            Some(deadline) if at >= deadline => None,
            _ => Some(at),
        }
    }
}

fn jittered(delay: Duration) -> Duration {
    if delay.is_zero() {
        return delay;
    }
    delay.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// The longest wait a `Retry-After` may ask for; longer ones are taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3), as a wait from `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            let at: DateTime<Utc> = at.into();
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    #[test]
    fn notifications_retry_for_about_a_day_with_jitter() {
        let schedule = Schedule::notifications();
        let mut total = 0.0;
        for attempts in 0..8 {
            let due = schedule
                .next(attempts, at(0), None, None)
                .expect("within the schedule");
            let planned = schedule.delays[attempts].as_secs_f64();
            let waited = (due - at(0)).as_seconds_f64();
            assert!(
                waited >= planned * 0.8 - 1.0 && waited <= planned * 1.2 + 1.0,
                "{waited}"
            );
            total += planned;
        }
        assert!((24.0 * 3600.0..30.0 * 3600.0).contains(&total), "{total}");
        assert_eq!(schedule.next(8, at(0), None, None), None);
    }

    #[test]
    fn a_recovery_action_never_goes_past_its_deadline() {
        let schedule = Schedule::recovery();
        let deadline = at(600);
        assert!(schedule.next(1, at(0), None, Some(deadline)).is_some());
        assert_eq!(schedule.next(1, at(598), None, Some(deadline)), None);
        assert_eq!(
            schedule.next(1, at(0), Some(Duration::from_secs(900)), Some(deadline)),
            None,
            "a Retry-After past the deadline expires the action"
        );
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        let schedule = Schedule::of_seconds(&[0, 1]);
        let due = schedule
            .next(1, at(0), Some(Duration::from_secs(120)), None)
            .expect("due");
        assert_eq!(due, at(120));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
    }
}
