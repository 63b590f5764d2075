//! Alert episodes and how they match labelled anomalies: the measure of what a user
//! lives with (pages, missed incidents, time to know), rather than of single points.
//!
//! ```text
//!  scores ── episodes(threshold) ──► runs of consecutive points with score ≥ threshold
//!  labels (row ranges) + grace   ──► judge: an episode is true when it overlaps
//!                                    [start, end + grace) of some anomaly; an anomaly is
//!                                    detected when an episode overlaps that span, after
//!                                    max(0, episode start - anomaly start) buckets
//! ```
//!
//! The grace lets the alert that fires as a burst ends (the detector sees the drop back)
//! count with the burst rather than as a false alarm.

use std::ops::Range;

/// Runs of consecutive points whose score is ≥ `threshold`, as row ranges.
pub fn episodes(scores: &[f64], threshold: f64) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut open: Option<usize> = None;
    for (row, &score) in scores.iter().enumerate() {
        match (score >= threshold, open) {
            (true, None) => open = Some(row),
            (false, Some(start)) => {
                found.push(start..row);
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        found.push(start..scores.len());
    }
    found
}

/// How the alert episodes of one series meet its labelled anomalies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub episodes: usize,
    /// Episodes that overlap an anomaly (or its grace).
    pub true_episodes: usize,
    /// Per anomaly, in the order given: the detection delay in buckets, or `None` if missed.
    pub delays: Vec<Option<usize>>,
}

pub fn judge(alerts: &[Range<usize>], anomalies: &[Range<usize>], grace: usize) -> Judged {
    let spans: Vec<Range<usize>> = anomalies
        .iter()
        .map(|a| a.start..a.end.saturating_add(grace))
        .collect();
    let true_episodes = alerts
        .iter()
        .filter(|episode| spans.iter().any(|span| overlaps(episode, span)))
        .count();
    let delays = spans
        .iter()
        .map(|span| {
            // Episodes are in order: the first that overlaps is the earliest alert.
            alerts
                .iter()
                .find(|episode| overlaps(episode, span))
                .map(|episode| episode.start.saturating_sub(span.start))
        })
        .collect();
    Judged {
        episodes: alerts.len(),
        true_episodes,
        delays,
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The median (the mean of the two middle values for an even count).
pub fn median(values: &[usize]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle] as f64),
        _ => Some((sorted[middle - 1] + sorted[middle]) as f64 / 2.0),
    }
}

/// `part / whole`, or `None` when there is nothing to divide.
pub fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_are_runs_at_or_above_the_threshold() {
        let scores = [0.6, 0.5, 0.1, 0.0, 0.9, 0.2, 0.7];
        assert_eq!(episodes(&scores, 0.5), vec![0..2, 4..5, 6..7]);
        assert!(episodes(&scores, 0.95).is_empty());
    }

    /// 30 buckets, grace 2. Anomalies: A = 5..8 (span 5..10), B = 20..22 (span 20..24),
    /// C = 26..27 (span 26..29).
    /// Scores alert at 1 (false: before A), 7..9 (true: A, delay 7 - 5 = 2),
    /// 9 is still A's grace so one episode, 12 (false: after A's grace ends at 10),
    /// 23 (true: B's grace, delay 23 - 20 = 3). C is missed.
    /// → 4 episodes, 2 true: precision 1/2; recall 2/3; delays [2, 3] → median 2.5.
    #[test]
    fn judging_a_hand_made_case() {
        let mut scores = [0.0; 30];
        for row in [1, 7, 8, 9, 12, 23] {
            scores[row] = 0.8;
        }
        let alerts = episodes(&scores, 0.5);
        assert_eq!(alerts, vec![1..2, 7..10, 12..13, 23..24]);
        let judged = judge(&alerts, &[5..8, 20..22, 26..27], 2);
        assert_eq!(
            judged,
            Judged {
                episodes: 4,
                true_episodes: 2,
                delays: vec![Some(2), Some(3), None],
            }
        );
        assert_eq!(median(&[2, 3]), Some(2.5));
        assert_eq!(median(&[4, 1, 9]), Some(4.0));
        assert_eq!(median(&[]), None);
        assert_eq!(ratio(2, 4), Some(0.5));
    }

    #[test]
    fn an_alert_already_open_when_an_anomaly_starts_detects_it_at_once() {
        let (alert, anomaly) = (3..12, 5..8);
        let judged = judge(
            std::slice::from_ref(&alert),
            std::slice::from_ref(&anomaly),
            0,
        );
        assert_eq!(judged.delays, vec![Some(0)]);
        assert_eq!(judged.true_episodes, 1);
    }
}
