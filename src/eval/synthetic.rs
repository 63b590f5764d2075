//! `seismo eval synthetic`: seeded per-minute error-count streams with labelled anomalies,
//! replayed through the detector and judged by alert episodes.
//!
//! ```text
//!  Settings (seed, series, days)
//!     │ generate: per series its own RNG (seed, index) → Spec (base rate, daily cycle,
//!     │           Poisson or negative-binomial noise) + Anomalies placed after a
//!     │           one-day warm-up → counts drawn from rate(row)
//!     ▼
//!  Series ── replay::scores (causal, Count) ──► episodes::judge(threshold, grace)
//!     ▼
//!  Metrics: precision over alert episodes, recall over anomalies, median delay
//! ```
//!
//! What the streams look like: base rates log-uniform from 0.05 to 50 per minute (one error
//! every 20 minutes to a busy service), a daily cycle of up to ±70 %, half of them
//! over-dispersed. Anomalies: short bursts, level shifts up lasting hours, drops to zero
//! (busy series only: on a quiet one zero is normal), and new-issue bursts (a series that
//! was silent starts emitting, then stops when the bug is fixed). Magnitudes have a floor
//! in absolute terms (e.g. a burst adds at least 3 per minute) so that on a quiet series
//! the anomaly is one a person would want to hear about.
//!
//! Series `i` depends only on (seed, i): adding series or days keeps the others' rates and
//! anomalies, so runs of different sizes stay comparable.

use std::ops::Range;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::episodes::{self, median, ratio};
use super::parallel;
use super::replay;
use super::sampling;
use crate::detect::anomaly::Sensitivity;
use crate::detect::series::{Point, ValueKind};

/// Minutes in a day: one bucket per minute.
pub const BUCKETS_PER_DAY: usize = 1440;
/// Monday 2026-01-05 00:00:00 UTC: series start at a midnight so the daily cycle lines up.
const START: i64 = 1_767_571_200;
/// The detector gets a day of normal traffic before anything is injected.
const WARM_UP: usize = BUCKETS_PER_DAY;
/// Anomalies are kept this many buckets apart so each one is judged on its own.
const SPACING: usize = 120;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SyntheticError {
    #[error("--days must be at least 2 (one day of warm-up, then anomalies), got {0}")]
    TooFewDays(usize),
    #[error("--series must be at least 1")]
    NoSeries,
    #[error("--threshold must be a number in (0, 1], got {0}")]
    Threshold(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    Burst,
    LevelShift,
    Drop,
    NewIssue,
}

impl AnomalyKind {
    pub const EVERY: [AnomalyKind; 4] = [Self::Burst, Self::LevelShift, Self::Drop, Self::NewIssue];

    pub fn name(self) -> &'static str {
        match self {
            Self::Burst => "burst",
            Self::LevelShift => "level_shift",
            Self::Drop => "drop",
            Self::NewIssue => "new_issue",
        }
    }
}

/// One injected anomaly: the rows it covers (its label) and what it does there.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub rows: Range<usize>,
    /// Errors per minute added (bursts, shifts, new issues); unused by drops.
    pub extra: f64,
}

impl Anomaly {
    fn apply(&self, baseline: f64) -> f64 {
        match self.kind {
            AnomalyKind::Drop => 0.0,
            _ => baseline + self.extra,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    Poisson,
    /// Negative binomial of this size: variance = rate + rate² / size.
    NegativeBinomial {
        size: f64,
    },
}

/// The normal behaviour of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Mean errors per minute over a day; 0 for a series that only a new issue fills.
    pub base: f64,
    /// Relative height of the daily cycle, in [0, 0.7].
    pub amplitude: f64,
    /// Minute of the day when traffic peaks.
    pub peak: f64,
    pub noise: Noise,
}

impl Spec {
    /// The expected count of a row without anomalies.
    pub fn baseline(&self, row: usize) -> f64 {
        let minute = (row % BUCKETS_PER_DAY) as f64;
        let phase = std::f64::consts::TAU * (minute - self.peak) / BUCKETS_PER_DAY as f64;
        self.base * (1.0 + self.amplitude * phase.cos())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub spec: Spec,
    pub anomalies: Vec<Anomaly>,
    pub points: Vec<Point>,
}

impl Series {
    /// The expected count of a row, anomalies included: what the counts are drawn from.
    pub fn rate(&self, row: usize) -> f64 {
        let baseline = self.spec.baseline(row);
        self.anomalies
            .iter()
            .find(|anomaly| anomaly.rows.contains(&row))
            .map_or(baseline, |anomaly| anomaly.apply(baseline))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub seed: u64,
    pub series: usize,
    pub days: usize,
}

pub fn generate(settings: &Settings) -> Result<Vec<Series>, SyntheticError> {
    if settings.days < 2 {
        return Err(SyntheticError::TooFewDays(settings.days));
    }
    if settings.series == 0 {
        return Err(SyntheticError::NoSeries);
    }
    let rows = settings.days * BUCKETS_PER_DAY;
    Ok((0..settings.series)
        .map(|index| generate_one(settings.seed, index, rows))
        .collect())
}

fn generate_one(seed: u64, index: usize, rows: usize) -> Series {
    let mut rng = StdRng::seed_from_u64(mix(seed, index as u64));
    let (spec, anomalies) = if rng.random_bool(0.15) {
        new_issue_series(&mut rng, rows)
    } else {
        busy_series(&mut rng, rows)
    };
    let mut series = Series {
        spec,
        anomalies,
        points: Vec::with_capacity(rows),
    };
    for row in 0..rows {
        let rate = series.rate(row);
        let count = match spec.noise {
            Noise::Poisson => sampling::poisson(&mut rng, rate),
            Noise::NegativeBinomial { size } => sampling::negative_binomial(&mut rng, rate, size),
        };
        series.points.push(Point {
            timestamp: START + 60 * row as i64,
            value: count as f64,
            requests: None,
            traffic: None,
        });
    }
    series
}

/// SplitMix64 of (seed, index): nearby seeds and indexes give unrelated streams.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Silent until a new issue appears: it emits for 30 minutes to 3 hours, then is fixed.
fn new_issue_series(rng: &mut StdRng, rows: usize) -> (Spec, Vec<Anomaly>) {
    let spec = Spec {
        base: 0.0,
        amplitude: 0.0,
        peak: 0.0,
        noise: Noise::Poisson,
    };
    let duration = rng.random_range(30..=180);
    let extra = log_uniform(rng, 0.5, 10.0);
    let anomalies = place(rng, rows, &[], duration)
        .map(|rows| Anomaly {
            kind: AnomalyKind::NewIssue,
            rows,
            extra,
        })
        .into_iter()
        .collect();
    (spec, anomalies)
}

fn busy_series(rng: &mut StdRng, rows: usize) -> (Spec, Vec<Anomaly>) {
    let base = log_uniform(rng, 0.05, 50.0);
    let noise = if rng.random_bool(0.5) {
        Noise::Poisson
    } else {
        Noise::NegativeBinomial {
            size: rng.random_range(1.0..20.0),
        }
    };
    let spec = Spec {
        base,
        amplitude: rng.random_range(0.0..0.7),
        peak: rng.random_range(0.0..BUCKETS_PER_DAY as f64),
        noise,
    };
    let mut anomalies: Vec<Anomaly> = Vec::new();
    for _ in 0..rng.random_range(0..=3) {
        let (kind, duration, extra) = pick_anomaly(rng, base);
        if let Some(rows) = place(rng, rows, &anomalies, duration) {
            anomalies.push(Anomaly { kind, rows, extra });
        }
    }
    anomalies.sort_by_key(|anomaly| anomaly.rows.start);
    (spec, anomalies)
}

/// (kind, duration in buckets, errors per minute added).
fn pick_anomaly(rng: &mut StdRng, base: f64) -> (AnomalyKind, usize, f64) {
    // A drop to zero is only an anomaly where zero is rare: ≥ 5 per minute.
    let kinds = if base >= 5.0 { 3 } else { 2 };
    match rng.random_range(0..kinds) {
        0 => {
            let extra = (base * rng.random_range(4.0..10.0)).max(rng.random_range(3.0..10.0));
            (AnomalyKind::Burst, rng.random_range(2..=10), extra)
        }
        1 => {
            let extra = (base * rng.random_range(1.5..4.0)).max(rng.random_range(1.0..3.0));
            (AnomalyKind::LevelShift, rng.random_range(60..=360), extra)
        }
        _ => (AnomalyKind::Drop, rng.random_range(10..=60), 0.0),
    }
}

/// A start after the warm-up, `SPACING` away from the others; `None` after a few misses.
fn place(
    rng: &mut StdRng,
    rows: usize,
    taken: &[Anomaly],
    duration: usize,
) -> Option<Range<usize>> {
    let last_start = rows.checked_sub(duration + SPACING)?;
    if last_start <= WARM_UP {
        return None;
    }
    (0..20).find_map(|_| {
        let start = rng.random_range(WARM_UP..last_start);
        let candidate = start..start + duration;
        let clear = taken.iter().all(|other| {
            candidate.end + SPACING <= other.rows.start || other.rows.end + SPACING <= start
        });
        clear.then_some(candidate)
    })
}

fn log_uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    rng.random_range(low.ln()..high.ln()).exp()
}

/// When an alert fires, and how long after an anomaly ends an alert still belongs to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRule {
    pub sensitivity: Sensitivity,
    /// A point alerts when its score is ≥ this.
    pub threshold: f64,
    /// Buckets after an anomaly's end during which an alert still counts as caused by it.
    pub grace: usize,
}

impl AlertRule {
    pub fn validate(&self) -> Result<(), SyntheticError> {
        if self.threshold > 0.0 && self.threshold <= 1.0 {
            Ok(())
        } else {
            Err(SyntheticError::Threshold(self.threshold))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub series: usize,
    pub buckets: usize,
    pub threshold: f64,
    pub grace: usize,
    pub episodes: usize,
    pub true_episodes: usize,
    /// True episodes / all episodes.
    pub precision: Option<f64>,
    /// Episodes that match no anomaly, per series and day: the noise a user lives with.
    pub false_episodes_per_series_day: f64,
    pub anomalies: usize,
    pub detected: usize,
    /// Detected anomalies / all anomalies.
    pub recall: Option<f64>,
    /// In buckets (minutes), over detected anomalies.
    pub median_delay: Option<f64>,
    pub kinds: Vec<KindMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindMetrics {
    pub kind: AnomalyKind,
    pub anomalies: usize,
    pub detected: usize,
    pub recall: Option<f64>,
    pub median_delay: Option<f64>,
}

/// Replays every series (causal, counts) and judges its alerts against its labels.
pub fn evaluate(series: &[Series], rule: &AlertRule) -> Metrics {
    let options = replay::Options {
        sensitivity: rule.sensitivity,
        kind: ValueKind::Count,
        range: None,
        probation: None,
    };
    let judged = parallel::map(series, |one| {
        let scores = replay::scores(&one.points, &options);
        let alerts = episodes::episodes(&scores, rule.threshold);
        let labels: Vec<Range<usize>> = one.anomalies.iter().map(|a| a.rows.clone()).collect();
        episodes::judge(&alerts, &labels, rule.grace)
    });
    summarize(series, &judged, rule)
}

fn summarize(series: &[Series], judged: &[episodes::Judged], rule: &AlertRule) -> Metrics {
    let buckets: usize = series.iter().map(|s| s.points.len()).sum();
    let episodes: usize = judged.iter().map(|j| j.episodes).sum();
    let true_episodes: usize = judged.iter().map(|j| j.true_episodes).sum();
    // (kind, delay if detected) for every anomaly.
    let outcomes: Vec<(AnomalyKind, Option<usize>)> = series
        .iter()
        .zip(judged)
        .flat_map(|(one, j)| one.anomalies.iter().map(|a| a.kind).zip(j.delays.clone()))
        .collect();
    let all = delays_of(&outcomes, |_| true);
    let series_days = buckets as f64 / BUCKETS_PER_DAY as f64;
    Metrics {
        series: series.len(),
        buckets,
        threshold: rule.threshold,
        grace: rule.grace,
        episodes,
        true_episodes,
        precision: ratio(true_episodes, episodes),
        false_episodes_per_series_day: (episodes - true_episodes) as f64 / series_days.max(1.0),
        anomalies: outcomes.len(),
        detected: all.len(),
        recall: ratio(all.len(), outcomes.len()),
        median_delay: median(&all),
        kinds: AnomalyKind::EVERY
            .iter()
            .map(|&kind| {
                let total = outcomes.iter().filter(|(k, _)| *k == kind).count();
                let delays = delays_of(&outcomes, |k| k == kind);
                KindMetrics {
                    kind,
                    anomalies: total,
                    detected: delays.len(),
                    recall: ratio(delays.len(), total),
                    median_delay: median(&delays),
                }
            })
            .collect(),
    }
}

fn delays_of(
    outcomes: &[(AnomalyKind, Option<usize>)],
    keep: impl Fn(AnomalyKind) -> bool,
) -> Vec<usize> {
    outcomes
        .iter()
        .filter(|(kind, _)| keep(*kind))
        .filter_map(|(_, delay)| *delay)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Settings = Settings {
        seed: 42,
        series: 60,
        days: 3,
    };

    #[test]
    fn the_same_seed_gives_the_same_series_and_series_do_not_depend_on_the_count() {
        let first = generate(&SMALL).unwrap();
        assert_eq!(first, generate(&SMALL).unwrap());
        let fewer = generate(&Settings {
            series: 10,
            ..SMALL
        })
        .unwrap();
        assert_eq!(fewer[..], first[..10]);
        let other = generate(&Settings { seed: 43, ..SMALL }).unwrap();
        assert_ne!(first, other);
    }

    #[test]
    fn labels_cover_exactly_the_rows_where_the_rate_was_changed() {
        for series in generate(&SMALL).unwrap() {
            for row in 0..series.points.len() {
                let label = series.anomalies.iter().find(|a| a.rows.contains(&row));
                let (baseline, rate) = (series.spec.baseline(row), series.rate(row));
                let count = series.points[row].value;
                match label.map(|a| a.kind) {
                    None => assert_eq!(rate, baseline),
                    Some(AnomalyKind::Drop) => assert_eq!((rate, count), (0.0, 0.0)),
                    Some(_) => assert!(rate >= baseline + 0.5),
                }
                if series.spec.base == 0.0 && label.is_none() {
                    assert_eq!(count, 0.0, "a silent series emits only inside its label");
                }
            }
        }
    }

    #[test]
    fn labels_start_after_the_warm_up_apart_from_each_other_and_every_kind_occurs() {
        let all = generate(&Settings {
            series: 200,
            ..SMALL
        })
        .unwrap();
        for series in &all {
            for pair in series.anomalies.windows(2) {
                assert!(pair[0].rows.end + SPACING <= pair[1].rows.start);
            }
            for anomaly in &series.anomalies {
                assert!(anomaly.rows.start >= WARM_UP && anomaly.rows.end <= 3 * 1440);
                if anomaly.kind == AnomalyKind::Drop {
                    assert!(series.spec.base >= 5.0, "drops only on busy series");
                }
            }
        }
        for kind in AnomalyKind::EVERY {
            assert!(all
                .iter()
                .flat_map(|s| &s.anomalies)
                .any(|a| a.kind == kind));
        }
        assert!(
            all.iter().any(|s| s.anomalies.is_empty()),
            "quiet series measure noise"
        );
    }

    #[test]
    fn bursts_show_in_the_counts() {
        let all = generate(&Settings {
            series: 200,
            ..SMALL
        })
        .unwrap();
        let (mut seen, mut expected) = (0.0, 0.0);
        for series in &all {
            for anomaly in series
                .anomalies
                .iter()
                .filter(|a| a.kind == AnomalyKind::Burst)
            {
                for row in anomaly.rows.clone() {
                    seen += series.points[row].value;
                    expected += series.spec.baseline(row);
                }
            }
        }
        assert!(
            seen > 3.0 * expected,
            "bursts: {seen} events vs {expected} normal"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(
            generate(&Settings { days: 1, ..SMALL }).unwrap_err(),
            SyntheticError::TooFewDays(1)
        );
        let rule = AlertRule {
            sensitivity: Sensitivity::Medium,
            threshold: 1.5,
            grace: 10,
        };
        assert_eq!(rule.validate(), Err(SyntheticError::Threshold(1.5)));
    }

    #[test]
    fn metrics_add_up_over_series_and_kinds() {
        let series = generate(&SMALL).unwrap();
        // Hand-made judgements, not the detector: the arithmetic is what is tested.
        let judged: Vec<episodes::Judged> = series
            .iter()
            .map(|s| episodes::Judged {
                episodes: 2,
                true_episodes: 1,
                delays: s
                    .anomalies
                    .iter()
                    .enumerate()
                    .map(|(i, _)| (i == 0).then_some(4))
                    .collect(),
            })
            .collect();
        let rule = AlertRule {
            sensitivity: Sensitivity::Medium,
            threshold: 0.5,
            grace: 10,
        };
        let metrics = summarize(&series, &judged, &rule);
        let with_anomalies = series.iter().filter(|s| !s.anomalies.is_empty()).count();
        assert_eq!(metrics.episodes, 2 * series.len());
        assert_eq!(metrics.precision, Some(0.5));
        assert_eq!(metrics.detected, with_anomalies);
        assert_eq!(metrics.median_delay, Some(4.0));
        // 60 false episodes over 60 series × 3 days.
        assert!((metrics.false_episodes_per_series_day - 1.0 / 3.0).abs() < 1e-12);
        let per_kind: usize = metrics.kinds.iter().map(|k| k.anomalies).sum();
        assert_eq!(per_kind, metrics.anomalies);
    }
}
