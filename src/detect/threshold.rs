//! "≥ N events in M minutes": threshold rules and the escalation of an issue ignored until
//! it sees N events in M minutes. A series *fires* on the upward crossing, stays fired while
//! above, and re-arms only once its total falls below half of N (hysteresis, so a series
//! hovering at N does not page on every wobble).
//!
//! The worker may decide many buckets in one pass (catching up after a restart), so the
//! rule is walked bucket by bucket over the per-minute counts ([`walk`]): a crossing inside
//! the gap fires at its own bucket even when the window has fallen back by the last one.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdStep {
    Fire,
    Rearm,
    Hold,
}

/// One step of the rule on one series, given whether it is fired and its window's total.
pub fn threshold_step(fired: bool, total: i64, threshold: i64) -> ThresholdStep {
    match fired {
        false if total >= threshold => ThresholdStep::Fire,
        true if total * 2 < threshold => ThresholdStep::Rearm,
        _ => ThresholdStep::Hold,
    }
}

/// A change of a series' rule state at one bucket, with the window's total there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The bucket (minute, Unix seconds) whose window crossed.
    pub at: i64,
    pub step: ThresholdStep,
    pub total: i64,
}

/// The rule over one series for each bucket in `[from, through]` (Unix seconds, whole
/// minutes), each window being the `window_minutes` ending with that bucket. `minutes` are
/// the series' (minute, events) from at least `from - window + 1 minute`, sorted; a minute
/// not listed holds no events. Returns the changes only (fires and re-arms), in order.
pub fn walk(
    mut fired: bool,
    minutes: &[(i64, i64)],
    window_minutes: i64,
    threshold: i64,
    from: i64,
    through: i64,
) -> Vec<Change> {
    let span = window_minutes * 60;
    let (mut entered, mut left, mut total) = (0, 0, 0);
    let mut changes = Vec::new();
    let mut at = from;
    while at <= through {
        // The window is (at - span, at]: add the minutes up to `at`, drop those before.
        while entered < minutes.len() && minutes[entered].0 <= at {
            total += minutes[entered].1;
            entered += 1;
        }
        while left < entered && minutes[left].0 <= at - span {
            total -= minutes[left].1;
            left += 1;
        }
        let step = threshold_step(fired, total, threshold);
        if step != ThresholdStep::Hold {
            fired = step == ThresholdStep::Fire;
            changes.push(Change { at, step, total });
        }
        at += 60;
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ThresholdStep::*;

    #[test]
    fn threshold_fires_on_the_crossing_and_rearms_with_hysteresis() {
        let mut fired = false;
        let mut steps = Vec::new();
        for total in [3, 9, 10, 14, 10, 6, 5, 4, 12] {
            let step = threshold_step(fired, total, 10);
            fired = match step {
                Fire => true,
                Rearm => false,
                Hold => fired,
            };
            steps.push(step);
        }
        assert_eq!(
            steps,
            [Hold, Hold, Fire, Hold, Hold, Hold, Hold, Rearm, Fire]
        );
    }

    /// Minute `m` of a timeline, in Unix seconds.
    fn m(minute: i64) -> i64 {
        1_800_000_000 / 60 * 60 + minute * 60
    }

    #[test]
    fn a_crossing_inside_a_long_gap_fires_at_its_own_bucket() {
        // 10 events at minute 3, nothing else: a 5-minute window holds them over minutes
        // 3..=7 and is empty again from minute 8 on.
        let minutes = [(m(3), 10)];
        let changes = walk(false, &minutes, 5, 10, m(0), m(20));
        assert_eq!(
            changes,
            [
                Change {
                    at: m(3),
                    step: Fire,
                    total: 10
                },
                Change {
                    at: m(8),
                    step: Rearm,
                    total: 0
                },
            ]
        );
        // Judged at the last bucket alone, the burst would be missed.
        assert!(walk(false, &minutes, 5, 10, m(20), m(20)).is_empty());
    }

    #[test]
    fn the_window_counts_minutes_before_the_first_bucket_walked() {
        // 6 events before `from` and 4 at it: the window ending at `from` holds 10.
        let minutes = [(m(-2), 6), (m(0), 4), (m(1), 1)];
        let changes = walk(false, &minutes, 3, 10, m(0), m(2));
        assert_eq!(
            changes,
            [Change {
                at: m(0),
                step: Fire,
                total: 10
            }]
        );
        // Already fired: it holds while at or above half, and re-arms below it.
        let changes = walk(true, &minutes, 3, 10, m(0), m(5));
        assert_eq!(
            changes,
            [Change {
                at: m(3),
                step: Rearm,
                total: 1
            }]
        );
    }
}
