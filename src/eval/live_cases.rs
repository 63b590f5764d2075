//! `seismo eval synthetic --cases live`: seeded, labelled streams of the four situations a
//! new user meets first, replayed through the production detector.
//!
//! ```text
//!  seed ─► per family, per case its own RNG (seed, family, index):
//!    fresh   3–10 steady buckets (the first one partial), then ×10–×20 for 3–10 buckets
//!    rhythm  7 days of a sharp morning ramp (×2–×4), an evening fall and a lunchtime
//!            peak, no anomaly; judged from the second day (the first is news)
//!    ramp    4 days of a smooth daily cycle; after the second day the rate climbs to
//!            ×3–×6 over 1–6 hours, holds an hour, and falls back
//!    ratio   200–5,000 requests a minute at 0.5–3 % failed, traffic doubling at some
//!            point (no anomaly), and the ratio ×5–×30 for 5–30 buckets (after 3–10
//!            buckets of history for half of them); replayed as the error-rate series and
//!            as the error count judged against its traffic
//!     ▼
//!  replay::scores ─► episodes::judge (alert at the threshold, grace) ─► per family:
//!  precision, recall, median delay, false pages per series-week
//! ```

use std::ops::Range;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::episodes::{self, median, ratio};
use super::parallel;
use super::replay;
use super::sampling;
use super::synthetic::{AlertRule, BUCKETS_PER_DAY};
use crate::detect::series::{Point, ValueKind};

/// Monday 2026-01-05 00:00:00 UTC.
const START: i64 = 1_767_571_200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Fresh,
    Rhythm,
    Ramp,
    Ratio,
}

impl Family {
    pub const EVERY: [Family; 4] = [Self::Fresh, Self::Rhythm, Self::Ramp, Self::Ratio];

    pub fn name(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Rhythm => "rhythm",
            Self::Ramp => "slow_ramp",
            Self::Ratio => "ratio",
        }
    }
}

/// One replayed stream: its points, its labelled anomalies, and the row from which its
/// alerts are judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub family: Family,
    pub points: Vec<Point>,
    pub labels: Vec<Range<usize>>,
    pub judged_from: usize,
}

/// `per_family` cases of each family (the ratio family gives two replays per case).
pub fn generate(seed: u64, per_family: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for (number, family) in Family::EVERY.into_iter().enumerate() {
        for index in 0..per_family {
            let mut rng = StdRng::seed_from_u64(mix(seed, number as u64, index as u64));
            match family {
                Family::Fresh => cases.push(fresh(&mut rng)),
                Family::Rhythm => cases.push(rhythm(&mut rng)),
                Family::Ramp => cases.push(ramp(&mut rng)),
                Family::Ratio => cases.extend(ratio_jump(&mut rng)),
            }
        }
    }
    cases
}

fn mix(seed: u64, family: u64, index: u64) -> u64 {
    let mut z = seed
        ^ family.wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn log_uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    rng.random_range(low.ln()..high.ln()).exp()
}

/// Counts drawn from per-row rates, Poisson or negative binomial (size 5–20).
fn counts(rng: &mut StdRng, rates: &[f64]) -> Vec<Point> {
    let size = rng.random_bool(0.5).then(|| rng.random_range(5.0..20.0));
    rates
        .iter()
        .enumerate()
        .map(|(row, &rate)| {
            let value = match size {
                Some(size) => sampling::negative_binomial(rng, rate, size),
                None => sampling::poisson(rng, rate),
            };
            point(row, value as f64)
        })
        .collect()
}

fn point(row: usize, value: f64) -> Point {
    Point {
        timestamp: START + 60 * row as i64,
        value,
        requests: None,
        traffic: None,
    }
}

fn fresh(rng: &mut StdRng) -> Case {
    let base = log_uniform(rng, 2.0, 200.0);
    let history = rng.random_range(3..=10);
    let length = rng.random_range(3..=10);
    let factor = rng.random_range(10.0..20.0);
    let mut rates: Vec<f64> = (0..history + length + 20)
        .map(|row| {
            let changed = (history..history + length).contains(&row);
            base * if changed { factor } else { 1.0 }
        })
        .collect();
    // Errors began during the first minute: it is only partly covered.
    rates[0] *= rng.random_range(0.3..1.0);
    Case {
        family: Family::Fresh,
        points: counts(rng, &rates),
        labels: std::iter::once(history..history + length).collect(),
        judged_from: 0,
    }
}

/// A value that moves from `from` to `to` linearly over `[start, start + span)`.
fn ramp_between(minute: f64, start: f64, span: f64, from: f64, to: f64) -> f64 {
    let t = ((minute - start) / span).clamp(0.0, 1.0);
    from + t * (to - from)
}

fn rhythm(rng: &mut StdRng) -> Case {
    let base = log_uniform(rng, 1.0, 50.0);
    let day_level = rng.random_range(2.0..4.0);
    let morning = rng.random_range(360.0..540.0);
    let evening = rng.random_range(960.0..1_200.0);
    let (rise, fall) = (rng.random_range(15.0..60.0), rng.random_range(15.0..60.0));
    let lunch = rng.random_range(690.0..750.0);
    let (lunch_length, lunch_peak) = (rng.random_range(45.0..90.0), rng.random_range(1.3..2.0));
    let rates: Vec<f64> = (0..7 * BUCKETS_PER_DAY)
        .map(|row| {
            let minute = (row % BUCKETS_PER_DAY) as f64;
            let up = ramp_between(minute, morning, rise, 1.0, day_level);
            let level = ramp_between(minute, evening, fall, up, 1.0);
            let at_lunch = (lunch..lunch + lunch_length).contains(&minute);
            base * level * if at_lunch { lunch_peak } else { 1.0 }
        })
        .collect();
    Case {
        family: Family::Rhythm,
        points: counts(rng, &rates),
        labels: Vec::new(),
        judged_from: BUCKETS_PER_DAY,
    }
}

fn ramp(rng: &mut StdRng) -> Case {
    let base = log_uniform(rng, 2.0, 50.0);
    let amplitude = rng.random_range(0.0..0.5);
    let peak = rng.random_range(0.0..BUCKETS_PER_DAY as f64);
    let climb = rng.random_range(60..=360);
    let factor = rng.random_range(3.0..6.0);
    let start = rng.random_range(2 * BUCKETS_PER_DAY..4 * BUCKETS_PER_DAY - climb - 180);
    let end = start + climb + 60;
    let rates: Vec<f64> = (0..4 * BUCKETS_PER_DAY)
        .map(|row| {
            let minute = (row % BUCKETS_PER_DAY) as f64;
            let phase = std::f64::consts::TAU * (minute - peak) / BUCKETS_PER_DAY as f64;
            let normal = base * (1.0 + amplitude * phase.cos());
            let lift = if (start..end).contains(&row) {
                ramp_between(row as f64, start as f64, climb as f64, 1.0, factor)
            } else {
                1.0
            };
            normal * lift
        })
        .collect();
    Case {
        family: Family::Ramp,
        points: counts(rng, &rates),
        labels: std::iter::once(start..end).collect(),
        judged_from: 0,
    }
}

/// One service's requests and failed requests; replayed as its error-rate series and as
/// its error count judged against the traffic.
fn ratio_jump(rng: &mut StdRng) -> [Case; 2] {
    let requests = log_uniform(rng, 200.0, 5_000.0);
    let usual: f64 = rng.random_range(0.005..0.03);
    let (length, factor) = (rng.random_range(5..=30), rng.random_range(5.0..30.0));
    let rows = BUCKETS_PER_DAY + 120;
    let start = match rng.random_bool(0.5) {
        true => rng.random_range(3..=10),
        false => rng.random_range(360..BUCKETS_PER_DAY),
    };
    let doubling = rng.random_range(60..rows - 60);
    let mut rate_points = Vec::with_capacity(rows);
    let mut count_points = Vec::with_capacity(rows);
    for row in 0..rows {
        let minute = (row % BUCKETS_PER_DAY) as f64;
        let daily = 1.0 + 0.3 * (std::f64::consts::TAU * minute / BUCKETS_PER_DAY as f64).cos();
        let traffic = if row >= doubling { 2.0 } else { 1.0 };
        let sent = sampling::poisson(rng, requests * daily * traffic) as f64;
        let share = if (start..start + length).contains(&row) {
            (usual * factor).min(0.6)
        } else {
            usual
        };
        let failed = binomial(rng, sent, share);
        let mut rate = point(row, failed);
        rate.requests = Some(sent);
        let mut count = point(row, failed);
        count.traffic = Some(sent);
        rate_points.push(rate);
        count_points.push(count);
    }
    let labels: Vec<Range<usize>> = std::iter::once(start..start + length).collect();
    [rate_points, count_points].map(|points| Case {
        family: Family::Ratio,
        points,
        labels: labels.clone(),
        judged_from: 0,
    })
}

/// Binomial by its normal approximation (Poisson where the mean is small).
fn binomial(rng: &mut StdRng, trials: f64, share: f64) -> f64 {
    let mean = trials * share;
    if mean < 30.0 {
        return (sampling::poisson(rng, mean) as f64).min(trials);
    }
    let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
    (mean + z * (mean * (1.0 - share)).sqrt())
        .round()
        .clamp(0.0, trials)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyMetrics {
    pub family: Family,
    pub series: usize,
    pub episodes: usize,
    pub true_episodes: usize,
    pub precision: Option<f64>,
    /// Episodes matching no anomaly per series and week of judged buckets.
    pub false_pages_per_series_week: f64,
    pub anomalies: usize,
    pub detected: usize,
    pub recall: Option<f64>,
    pub median_delay: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveMetrics {
    pub threshold: f64,
    pub grace: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub median_delay: Option<f64>,
    pub families: Vec<FamilyMetrics>,
}

/// Replays every case (causal, counts) and judges its alerts from its judged row on.
pub fn evaluate(cases: &[Case], rule: &AlertRule) -> LiveMetrics {
    let options = replay::Options {
        sensitivity: rule.sensitivity,
        kind: ValueKind::Count,
        range: None,
        probation: None,
    };
    let judged = parallel::map(cases, |case| {
        let mut scores = replay::scores(&case.points, &options);
        scores[..case.judged_from].fill(0.0);
        let alerts = episodes::episodes(&scores, rule.threshold);
        episodes::judge(&alerts, &case.labels, rule.grace)
    });
    let families = Family::EVERY
        .into_iter()
        .map(|family| summarize(family, cases, &judged))
        .collect();
    let all_delays: Vec<usize> = judged
        .iter()
        .flat_map(|j| j.delays.iter().flatten().copied())
        .collect();
    let anomalies: usize = judged.iter().map(|j| j.delays.len()).sum();
    let episodes: usize = judged.iter().map(|j| j.episodes).sum();
    let true_episodes: usize = judged.iter().map(|j| j.true_episodes).sum();
    LiveMetrics {
        threshold: rule.threshold,
        grace: rule.grace,
        precision: ratio(true_episodes, episodes),
        recall: ratio(all_delays.len(), anomalies),
        median_delay: median(&all_delays),
        families,
    }
}

fn summarize(family: Family, cases: &[Case], judged: &[episodes::Judged]) -> FamilyMetrics {
    let mine: Vec<(&Case, &episodes::Judged)> = cases
        .iter()
        .zip(judged)
        .filter(|(case, _)| case.family == family)
        .collect();
    let episodes: usize = mine.iter().map(|(_, j)| j.episodes).sum();
    let true_episodes: usize = mine.iter().map(|(_, j)| j.true_episodes).sum();
    let delays: Vec<usize> = mine
        .iter()
        .flat_map(|(_, j)| j.delays.iter().flatten().copied())
        .collect();
    let anomalies: usize = mine.iter().map(|(_, j)| j.delays.len()).sum();
    let judged_buckets: usize = mine
        .iter()
        .map(|(case, _)| case.points.len() - case.judged_from)
        .sum();
    let series_weeks = judged_buckets as f64 / (7 * BUCKETS_PER_DAY) as f64;
    FamilyMetrics {
        family,
        series: mine.len(),
        episodes,
        true_episodes,
        precision: ratio(true_episodes, episodes),
        false_pages_per_series_week: (episodes - true_episodes) as f64
            / series_weeks.max(f64::MIN_POSITIVE),
        anomalies,
        detected: delays.len(),
        recall: ratio(delays.len(), anomalies),
        median_delay: median(&delays),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_seeded_labelled_where_the_rate_changed_and_every_family_occurs() {
        let cases = generate(7, 6);
        assert_eq!(cases, generate(7, 6));
        assert_ne!(cases, generate(8, 6));
        for family in Family::EVERY {
            assert!(cases.iter().any(|c| c.family == family));
        }
        for case in &cases {
            for label in &case.labels {
                assert!(label.end <= case.points.len());
                assert!(label.start >= 3, "at least three buckets of history first");
            }
            match case.family {
                Family::Rhythm => assert!(case.labels.is_empty() && case.judged_from == 1_440),
                Family::Fresh => {
                    let label = &case.labels[0];
                    let before: f64 = case.points[..label.start].iter().map(|p| p.value).sum();
                    let during: f64 = case.points[label.clone()].iter().map(|p| p.value).sum();
                    let (before, during) =
                        (before / label.start as f64, during / label.len() as f64);
                    assert!(during > 5.0 * before, "{during} vs {before}");
                }
                Family::Ratio => {
                    let label = &case.labels[0];
                    let share = |rows: Range<usize>| {
                        let failed: f64 = case.points[rows.clone()].iter().map(|p| p.value).sum();
                        let sent: f64 = case.points[rows]
                            .iter()
                            .map(|p| p.requests.or(p.traffic).unwrap_or(0.0))
                            .sum();
                        failed / sent
                    };
                    let after = label.end..case.points.len();
                    assert!(share(label.clone()) > 3.0 * share(after));
                }
                Family::Ramp => assert!(case.labels[0].start >= 2 * 1_440),
            }
        }
    }

    #[test]
    fn a_case_judged_from_a_later_row_ignores_earlier_alerts() {
        let rule = AlertRule {
            sensitivity: crate::detect::anomaly::Sensitivity::Medium,
            threshold: 0.5,
            grace: 10,
        };
        let mut case = fresh(&mut StdRng::seed_from_u64(3));
        let metrics = evaluate(std::slice::from_ref(&case), &rule);
        assert_eq!(metrics.families[0].detected, 1, "{metrics:?}");
        case.judged_from = case.points.len();
        let metrics = evaluate(std::slice::from_ref(&case), &rule);
        assert_eq!(metrics.families[0].episodes, 0);
        assert_eq!(metrics.families[0].detected, 0);
    }
}
