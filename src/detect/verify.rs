//! Did a recovery action work? The verdict on one action from its incident's series, as
//! the detector sees it after each pass (pure: the worker feeds it and records the result).
//!
//! ```text
//!  action delivered ──► back at baseline (calm streak ≥ CLEARED_AFTER_CALM_BUCKETS) and
//!        │              still there when the window ends, or calm for
//!        │              RESOLVE_AFTER_CALM_BUCKETS ───────────────────────► succeeded
//!        ├──► cleared, then misbehaving again within the window ──────────► false recovery
//!        └──► the window ends and it never cleared ───────────────────────► not recovered
//! ```
//!
//! The window is the time the series has to *get back* to its baseline (DESIGN.md §5), not
//! to stay there five minutes: the detector needs a few buckets after a burst to call the
//! series calm, and a restart that worked must not be judged a failure for that. Both
//! failures escalate the incident; success resolves it. The counts make P_recover
//! (`store::stats`).

use chrono::{DateTime, Utc};

use super::incidents::RESOLVE_AFTER_CALM_BUCKETS;

/// Calm buckets after which the series counts as having cleared (once).
pub const CLEARED_AFTER_CALM_BUCKETS: i32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    FalseRecovery,
    NotRecovered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::FalseRecovery => "false_recovery",
            Outcome::NotRecovered => "not_recovered",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Keep watching; `cleared_now` when the series cleared for the first time.
    Waiting {
        cleared_now: bool,
    },
    Decided(Outcome),
}

/// The verdict after a pass that ended on bucket `through`, with the series' calm streak
/// at its end, whether it had cleared in an earlier pass, and the window's end.
pub fn verify(
    cleared_before: bool,
    calm: i32,
    through: DateTime<Utc>,
    verify_until: DateTime<Utc>,
) -> Verification {
    if calm >= RESOLVE_AFTER_CALM_BUCKETS {
        return Verification::Decided(Outcome::Succeeded);
    }
    if cleared_before && calm == 0 {
        return Verification::Decided(Outcome::FalseRecovery);
    }
    let cleared = cleared_before || calm >= CLEARED_AFTER_CALM_BUCKETS;
    if through >= verify_until {
        // Cleared and not come back (a calm streak is running): it worked.
        let outcome = match cleared && calm > 0 {
            true => Outcome::Succeeded,
            false => Outcome::NotRecovered,
        };
        return Verification::Decided(outcome);
    }
    Verification::Waiting {
        cleared_now: cleared && !cleared_before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + 60 * minute, 0).expect("a time")
    }

    #[test]
    fn back_at_baseline_is_a_success() {
        let until = at(10);
        assert_eq!(
            verify(false, RESOLVE_AFTER_CALM_BUCKETS, at(6), until),
            Verification::Decided(Outcome::Succeeded)
        );
        assert_eq!(
            verify(true, RESOLVE_AFTER_CALM_BUCKETS, at(20), until),
            Verification::Decided(Outcome::Succeeded),
            "a streak long enough wins even at the window's end"
        );
    }

    #[test]
    fn clearing_then_coming_back_is_a_false_recovery() {
        let until = at(10);
        assert_eq!(
            verify(false, CLEARED_AFTER_CALM_BUCKETS, at(3), until),
            Verification::Waiting { cleared_now: true }
        );
        assert_eq!(
            verify(true, 3, at(4), until),
            Verification::Waiting { cleared_now: false }
        );
        assert_eq!(
            verify(true, 0, at(5), until),
            Verification::Decided(Outcome::FalseRecovery)
        );
    }

    #[test]
    fn cleared_and_still_calm_when_the_window_ends_is_a_success() {
        let until = at(10);
        assert_eq!(
            verify(false, CLEARED_AFTER_CALM_BUCKETS, at(10), until),
            Verification::Decided(Outcome::Succeeded)
        );
        assert_eq!(
            verify(true, 1, at(10), until),
            Verification::Decided(Outcome::Succeeded)
        );
        assert_eq!(
            verify(false, 1, at(10), until),
            Verification::Decided(Outcome::NotRecovered),
            "one calm bucket is not back at baseline"
        );
    }

    #[test]
    fn the_shortest_window_configurable_leaves_room_for_a_success() {
        let shortest = i32::try_from(crate::config::MIN_RECOVERY_VERIFY_MINUTES).expect("small");
        assert!(shortest > RESOLVE_AFTER_CALM_BUCKETS);
    }

    #[test]
    fn never_clearing_within_the_window_is_no_recovery() {
        let until = at(10);
        assert_eq!(
            verify(false, 0, at(9), until),
            Verification::Waiting { cleared_now: false }
        );
        assert_eq!(
            verify(false, 1, at(10), until),
            Verification::Decided(Outcome::NotRecovered)
        );
    }
}
