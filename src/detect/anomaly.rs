//! The streaming anomaly detector: one small state per series, one O(1) step per closed
//! bucket, a score in [0, 1] and a decision.
//!
//! # The model, and why
//!
//! Error streams are counts, mostly small: a quiet issue sees a few events a day, a busy
//! service hundreds a minute. A z-score on raw counts pages on every third event of a quiet
//! series and misses real trouble on a busy one, so each step asks instead *how likely is a
//! bucket at least this extreme under the series' own recent behaviour*:
//!
//! 1. **Baseline.** An exponentially weighted mean and variance of the (deseasonalised)
//!    value, a running mean during the first buckets so a new series learns fast. Buckets
//!    judged anomalous do *not* enter the baseline — a burst must not teach the detector
//!    that bursts are normal — until a run of them lasts [`ACCEPT_RUN`] buckets: then the
//!    series has moved to a new level (a level shift, already reported) and the baseline
//!    jumps to the recent level instead of paging forever.
//! 2. **Seasonality.** A daily profile (24 hourly slots) is learnt per *service* and
//!    shared by that service's series (its issues are too sparse to learn one of their
//!    own); once it has seen two days it scales the expected count (multiplicative for
//!    counts, additive for continuous values).
//! 3. **Surprise.** Counts are scored by the tail of a negative binomial with the
//!    baseline's mean and variance (a Poisson when the series is not overdispersed), both
//!    upwards (bursts) and downwards (drops to zero); continuous values by a normal tail;
//!    error rates by a binomial tail of failed among requests against the baseline ratio.
//!    Surprise is `-ln p` (nats), computed in log space ([`super::tail`]).
//! 4. **Novelty view.** Detectors of *shape* changes a single bucket cannot show. For
//!    counts, two CUSUMs of log-likelihood ratios (quasi-Poisson: divided by the
//!    dispersion): a raised rate (double, and at least one more event per bucket) against
//!    the baseline — a quiet issue now failing a few times a minute, a busy service at
//!    twice its rate — and a collapsed one (a quarter) — a service gone silent for several
//!    minutes where one empty minute is merely unusual. For continuous values, a
//!    two-sided CUSUM on the standardised residual. And a flatline test (a series that
//!    normally moves and has not for [`FLAT_MIN`] buckets — a dead exporter, a stuck
//!    gauge).
//! 5. **Calibration.** A model is never exactly right (heavy tails, bursty clients). The
//!    detector keeps, for a few surprise levels, how often the series actually exceeded
//!    them (a slow moving average, started at the model's own promise `e^-L`). The ratio
//!    observed/promised is how much the model over-promises; dividing the p-value by it
//!    turns the surprise into a calibrated likelihood, so one threshold means the same
//!    thing for busy and quiet series. A series that spikes every hour stops paging for
//!    spikes of that size; a quiet one still pages on its first real burst.
//! 6. **Floors.** For counts a bucket must also hold at least `min_count` events and
//!    `min_ratio` times the expected count before it may fire (a sustained rise: its
//!    CUSUM must have gathered `min_count` events; a drop or a flat line: the series must
//!    expect `min_count`): three events on a quiet series are statistically odd and
//!    operationally boring.
//! 7. **Decision.** Score = calibrated surprise / [`SCORE_SCALE`], capped at 1 (0.5 ≈ a one
//!    in 100,000 bucket). A series *fires* on an upward crossing of the sensitivity's
//!    threshold, then stays in the anomaly until the score falls below half of it
//!    (hysteresis) and cannot fire again for a refractory period (120 buckets: an open
//!    incident already covers the series; a flapping one must not page every few minutes)
//!    — unless it has been calm for [`REARM_AFTER_CALM`] buckets since: then new trouble
//!    pages at once.
//!
//! The constants were chosen on the tuning half of NAB and on seeded synthetic error
//! streams (`seismo eval`); the held-out half and the results are in `bench/README.md`.
//!
//! State is a fixed-size struct (checked ≤ 256 bytes at compile time); each step is a
//! bounded amount of arithmetic.

use serde::{Deserialize, Serialize};

use super::series::{Point, ValueKind};
use super::tail::{binomial_upper, normal_upper, CountModel, MAX_SURPRISE};

/// Calibrated surprise (nats) that maps to score 1.
pub const SCORE_SCALE: f64 = 23.0;
/// Buckets with a running mean before the exponential weights take over; nothing fires.
const WARMUP: u32 = 10;
/// Weight of a new bucket in the baseline (≈ the last 50 buckets).
const ALPHA: f64 = 0.02;
/// Weight of a new bucket in the recent level (≈ the last 4 buckets).
const FAST_ALPHA: f64 = 0.25;
/// Consecutive anomalous buckets after which the baseline adopts the new level.
const ACCEPT_RUN: u16 = 15;
/// CUSUM slack (in standard deviations) and the cap of one bucket's contribution.
const CUSUM_SLACK: f64 = 0.5;
const CUSUM_STEP_CAP: f64 = 4.0;
/// Calm buckets after which the refractory period ends early: a series that settled
/// down and then misbehaves again has a new problem.
const REARM_AFTER_CALM: u16 = 15;
/// Most nats one bucket adds to (or takes from) a count CUSUM.
const COUNT_CUSUM_STEP_CAP: f64 = 5.0;
/// Unchanged buckets before a flat line becomes suspicious.
const FLAT_MIN: u16 = 40;
/// Surprise levels (nats) whose observed exceedance calibrates the model.
const LEVELS: [f64; 6] = [3.0, 6.0, 9.0, 12.0, 16.0, 20.0];
/// Weight of one bucket in the exceedance frequencies (≈ the last 500 buckets).
const CALIBRATION_ALPHA: f64 = 1.0 / 500.0;
/// Counts below this mean are treated as this mean (a series that never saw an event).
const MIN_MEAN: f64 = 0.01;

/// How readily the detector pages: `High` fires on smaller deviations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Low,
    #[default]
    Medium,
    High,
}

/// The knobs a sensitivity preset sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Score at or above which an anomaly starts.
    pub threshold: f64,
    /// Score below which it ends (hysteresis).
    pub clear: f64,
    /// Fewest events (or failed requests) in a bucket that may fire.
    pub min_count: f64,
    /// Fewest times the expected count (or error ratio) that may fire.
    pub min_ratio: f64,
    /// Buckets after firing during which the series cannot fire again.
    pub refractory: u16,
}

impl Sensitivity {
    pub fn settings(self) -> Settings {
        let (threshold, min_count, min_ratio) = match self {
            Sensitivity::Low => (0.65, 10.0, 3.0),
            Sensitivity::Medium => (0.5, 5.0, 2.0),
            Sensitivity::High => (0.35, 3.0, 1.5),
        };
        Settings {
            threshold,
            clear: threshold / 2.0,
            min_count,
            min_ratio,
            refractory: 120,
        }
    }
}

/// Which way the series moved when it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Spike,
    Drop,
    LevelShift,
    Flatline,
}

/// What one step decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Calibrated score in [0, 1].
    pub score: f64,
    /// An anomaly started at this bucket (upward crossing, not refractory).
    pub fired: bool,
    /// The series is inside an anomaly (fired and not yet back under `clear`).
    pub alerting: bool,
    /// The series could fire at this bucket (warmed up, not alerting, not refractory).
    pub armed: bool,
    pub shape: Shape,
    /// What the baseline expected for this bucket.
    pub expected: f64,
}

/// A daily profile shared by the series of one service: 24 hourly slots (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seasonality {
    slots: [f32; 24],
    visits: [u16; 24],
    first_timestamp: i64,
    last_timestamp: i64,
}

impl Default for Seasonality {
    fn default() -> Self {
        Seasonality {
            slots: [0.0; 24],
            visits: [0; 24],
            first_timestamp: i64::MAX,
            last_timestamp: i64::MIN,
        }
    }
}

impl Seasonality {
    fn slot(timestamp: i64) -> usize {
        (timestamp.rem_euclid(86_400) / 3_600) as usize
    }

    /// Learns from one bucket of the service's own series.
    pub fn observe(&mut self, timestamp: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let slot = Self::slot(timestamp);
        self.visits[slot] = self.visits[slot].saturating_add(1);
        let weight = (1.0 / f64::from(self.visits[slot])).max(0.05);
        let current = f64::from(self.slots[slot]);
        self.slots[slot] = (current + weight * (value - current)) as f32;
        self.first_timestamp = self.first_timestamp.min(timestamp);
        self.last_timestamp = self.last_timestamp.max(timestamp);
    }

    /// Two days seen, every hour visited: the profile is worth using.
    fn mature(&self) -> bool {
        self.last_timestamp.saturating_sub(self.first_timestamp) >= 2 * 86_400
            && self.visits.iter().all(|&v| v > 0)
    }

    fn daily_mean(&self) -> f64 {
        self.slots.iter().map(|&s| f64::from(s)).sum::<f64>() / 24.0
    }

    /// Multiplier of the daily mean at this time of day (1 until mature).
    pub fn factor(&self, timestamp: i64) -> f64 {
        let mean = self.daily_mean();
        if !self.mature() || mean <= 0.0 {
            return 1.0;
        }
        (f64::from(self.slots[Self::slot(timestamp)]) / mean).clamp(0.25, 4.0)
    }

    /// Offset from the daily mean at this time of day (0 until mature).
    pub fn offset(&self, timestamp: i64) -> f64 {
        if !self.mature() {
            return 0.0;
        }
        f64::from(self.slots[Self::slot(timestamp)]) - self.daily_mean()
    }
}

/// Everything the detector remembers about one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    seen: u32,
    /// Deseasonalised baseline level (for rate series: expected failures per request).
    level: f64,
    variance: f64,
    recent: f64,
    /// Rate series: smoothed requests and failures (their ratio is the baseline).
    requests: f64,
    failed: f64,
    cusum_up: f64,
    cusum_down: f64,
    last_value: f64,
    flat_run: u16,
    anomalous_run: u16,
    refractory: u16,
    /// Consecutive buckets scored under `clear`.
    calm_run: u16,
    alerting: bool,
    exceedance: [f32; LEVELS.len()],
    /// Events counted while the count CUSUM has been above zero.
    cusum_events: f64,
}

const _: () = assert!(std::mem::size_of::<SeriesState>() <= 256);

impl Default for SeriesState {
    fn default() -> Self {
        SeriesState {
            seen: 0,
            level: 0.0,
            variance: 0.0,
            recent: 0.0,
            requests: 0.0,
            failed: 0.0,
            cusum_up: 0.0,
            cusum_down: 0.0,
            last_value: f64::NAN,
            flat_run: 0,
            anomalous_run: 0,
            refractory: 0,
            calm_run: 0,
            alerting: false,
            exceedance: LEVELS.map(|level| (-level).exp() as f32),
            cusum_events: 0.0,
        }
    }
}

/// The raw reading of one bucket before calibration and decision.
struct Reading {
    surprise: f64,
    shape: Shape,
    expected: f64,
    /// The floors allow this bucket to fire.
    eligible: bool,
}

/// Scale hints for continuous values (like-for-like replays know the whole range).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scale {
    /// Smallest meaningful difference between two values.
    pub resolution: Option<f64>,
}

impl SeriesState {
    pub fn seen(&self) -> u32 {
        self.seen
    }

    /// True while the series is inside an anomaly.
    pub fn alerting(&self) -> bool {
        self.alerting
    }

    /// A series that has been quiet (near-zero baseline, not alerting) for so long that
    /// forgetting it loses nothing: a new event starts it afresh.
    pub fn is_idle(&self) -> bool {
        self.seen > WARMUP && self.level < 1e-3 && self.requests < 1e-3 && !self.alerting
    }

    /// One closed bucket. `season` is the shared profile of the series' service, if any.
    pub fn observe(
        &mut self,
        point: &Point,
        kind: ValueKind,
        season: Option<&Seasonality>,
        scale: Scale,
        settings: &Settings,
    ) -> Verdict {
        let reading = match point.requests {
            Some(requests) => self.read_rate(point.value, requests, settings),
            None => self.read_value(point, kind, season, scale, settings),
        };
        if self.warming_up() {
            // The baseline is still forming: nothing it says should carry over.
            self.forget_evidence();
        }
        let verdict = self.decide(&reading, settings);
        let anomalous = verdict.alerting || verdict.score >= settings.clear;
        self.learn(point, kind, season, &reading, anomalous);
        verdict
    }

    fn warming_up(&self) -> bool {
        self.seen < WARMUP
    }

    /// Drops the evidence accumulated against the current baseline (the CUSUMs): after
    /// warm-up, or once the baseline adopts a new level.
    fn forget_evidence(&mut self) {
        self.cusum_up = 0.0;
        self.cusum_down = 0.0;
        self.cusum_events = 0.0;
    }

    fn read_value(
        &mut self,
        point: &Point,
        kind: ValueKind,
        season: Option<&Seasonality>,
        scale: Scale,
        settings: &Settings,
    ) -> Reading {
        let x = point.value;
        let (expected, variance) = expected_at(self, kind, season, point.timestamp);
        let (up, down, rise, fall) = match kind {
            ValueKind::Count => {
                let model = CountModel {
                    mean: expected.max(MIN_MEAN),
                    variance: variance.max(expected.max(MIN_MEAN)),
                };
                let (rise, fall) = self.step_count_cusum(x, &model);
                (model.upper(x), model.lower(x), rise, fall)
            }
            ValueKind::Continuous => {
                let floor = scale.resolution.unwrap_or(1e-3 * expected.abs().max(1e-9));
                let deviation = (x - expected) / (variance + floor * floor).sqrt();
                (
                    normal_upper(deviation).max(0.0) * f64::from(deviation > 0.0),
                    normal_upper(-deviation).max(0.0) * f64::from(deviation < 0.0),
                    self.step_cusum(deviation),
                    0.0,
                )
            }
        };
        let flat = self.flatline_surprise(x, kind, expected, variance);
        let (surprise, shape) = [
            (up, Shape::Spike),
            (down, Shape::Drop),
            (rise, Shape::LevelShift),
            (fall, Shape::Drop),
            (flat, Shape::Flatline),
        ]
        .into_iter()
        .fold((0.0, Shape::Spike), |best, candidate| {
            if candidate.0 > best.0 {
                candidate
            } else {
                best
            }
        });
        let eligible = match (kind, shape) {
            (ValueKind::Continuous, _) => true,
            (ValueKind::Count, Shape::Spike) if x >= expected => {
                x >= settings.min_count && x >= settings.min_ratio * expected
            }
            // A sustained rise: judged on the events it brought, not on one bucket.
            (ValueKind::Count, Shape::LevelShift) => self.cusum_events >= settings.min_count,
            // A drop or a flat line matters only on a series busy enough to notice it.
            (ValueKind::Count, _) => expected >= settings.min_count,
        };
        Reading {
            surprise,
            shape,
            expected,
            eligible,
        }
    }

    /// Two-sided CUSUM on the standardised residual of a continuous value: small shifts
    /// add up until they are not small.
    fn step_cusum(&mut self, deviation: f64) -> f64 {
        let step = deviation.clamp(-CUSUM_STEP_CAP, CUSUM_STEP_CAP);
        self.cusum_up = (self.cusum_up + step - CUSUM_SLACK).max(0.0);
        self.cusum_down = (self.cusum_down - step - CUSUM_SLACK).max(0.0);
        self.cusum_up.max(self.cusum_down)
    }

    /// CUSUMs for counts, (rise, fall): log-likelihood ratios of a raised rate (double the
    /// baseline, and at least one more event per bucket) and of a collapsed one (a
    /// quarter of it) against the baseline, divided by the dispersion (quasi-Poisson) so
    /// an overdispersed series needs more evidence. They are in nats, like every other
    /// surprise, and see what no single bucket shows: a quiet issue that now fails a few
    /// times a minute, a busy service running at twice its rate, or one that went silent
    /// for several minutes where one empty minute is merely unusual.
    fn step_count_cusum(&mut self, x: f64, model: &CountModel) -> (f64, f64) {
        let mean = model.mean;
        let dispersion = (model.variance / mean).max(1.0);
        // Capped per bucket: one burst is the tail test's to judge; the CUSUMs gather
        // evidence that persists, and must fall back soon after a single odd bucket.
        let log_likelihood_ratio = |rate: f64| {
            ((x * (rate / mean).ln() - (rate - mean)) / dispersion)
                .clamp(-COUNT_CUSUM_STEP_CAP, COUNT_CUSUM_STEP_CAP)
        };
        let raised = (2.0 * mean).max(mean + 1.0);
        self.cusum_up = (self.cusum_up + log_likelihood_ratio(raised)).max(0.0);
        // Below about one event per bucket silence is the norm, not evidence.
        self.cusum_down = if mean >= 1.0 {
            (self.cusum_down + log_likelihood_ratio(mean / 4.0)).max(0.0)
        } else {
            0.0
        };
        self.cusum_events = if self.cusum_up > 0.0 {
            self.cusum_events + x
        } else {
            0.0
        };
        (self.cusum_up, self.cusum_down)
    }

    /// Surprise of a run of identical values on a series that normally moves.
    fn flatline_surprise(&mut self, x: f64, kind: ValueKind, expected: f64, variance: f64) -> f64 {
        let unchanged = (x - self.last_value).abs() <= 1e-9 * x.abs().max(1.0);
        self.flat_run = if unchanged {
            self.flat_run.saturating_add(1)
        } else {
            0
        };
        let moves = match kind {
            // A busy count series that used to vary like counts do.
            ValueKind::Count => expected >= 10.0 && variance >= 0.5 * expected,
            ValueKind::Continuous => variance > 1e-12 * expected.abs().max(1.0),
        };
        if !moves || self.flat_run < FLAT_MIN {
            return 0.0;
        }
        (3.0 * f64::from(self.flat_run - FLAT_MIN + 1)).min(MAX_SURPRISE)
    }

    fn read_rate(&mut self, failed: f64, requests: f64, settings: &Settings) -> Reading {
        // A prior of one failure in a thousand requests until the series has history.
        let baseline = (self.failed + 0.001) / (self.requests + 1.0);
        let expected = baseline * requests;
        let surprise = if requests > 0.0 {
            binomial_upper(failed, requests, baseline)
        } else {
            0.0
        };
        let ratio = if requests > 0.0 {
            failed / requests
        } else {
            0.0
        };
        Reading {
            surprise,
            shape: Shape::Spike,
            expected,
            eligible: failed >= settings.min_count && ratio >= settings.min_ratio * baseline,
        }
    }

    /// Calibration, floors, hysteresis and refractory period.
    fn decide(&mut self, reading: &Reading, settings: &Settings) -> Verdict {
        let calibrated = (reading.surprise - self.overconfidence(reading.surprise)).max(0.0);
        let mut score = (calibrated / SCORE_SCALE).min(1.0);
        if self.warming_up() || !reading.eligible {
            // Reported, but held under the threshold: it may not fire.
            score = score.min(settings.threshold * 0.99);
        }
        self.calm_run = if score < settings.clear {
            self.calm_run.saturating_add(1)
        } else {
            0
        };
        if self.calm_run >= REARM_AFTER_CALM {
            // Quiet long enough: the next trouble is new trouble, and pages.
            self.refractory = 0;
        }
        let armed = !self.warming_up() && !self.alerting && self.refractory == 0;
        let fired = armed && score >= settings.threshold;
        self.refractory = self.refractory.saturating_sub(1);
        if fired {
            self.alerting = true;
            self.refractory = settings.refractory;
        } else if self.alerting && score < settings.clear {
            self.alerting = false;
        }
        Verdict {
            score,
            fired,
            alerting: self.alerting,
            armed,
            shape: reading.shape,
            expected: reading.expected,
        }
    }

    /// `ln` of how much more often the series exceeded the highest level at or below
    /// `surprise` than the model promised (0 when it kept its promise).
    fn overconfidence(&self, surprise: f64) -> f64 {
        LEVELS
            .iter()
            .zip(self.exceedance)
            .filter(|(level, _)| **level <= surprise)
            .map(|(level, observed)| (f64::from(observed).ln() + level).max(0.0))
            .fold(0.0, f64::max)
    }

    fn learn(
        &mut self,
        point: &Point,
        kind: ValueKind,
        season: Option<&Seasonality>,
        reading: &Reading,
        anomalous: bool,
    ) {
        self.anomalous_run = if anomalous {
            self.anomalous_run.saturating_add(1)
        } else {
            0
        };
        // The first bucket of an anomaly counts toward calibration (a series that keeps
        // spiking learns its spikes are normal); the rest of the anomaly does not.
        if !self.warming_up() && self.anomalous_run <= 1 {
            self.calibrate(reading.surprise);
        }
        self.last_value = point.value;
        match point.requests {
            Some(requests) => self.learn_rate(point.value, requests, anomalous),
            None => self.learn_value(point, kind, season, anomalous),
        }
        self.seen = self.seen.saturating_add(1);
    }

    fn calibrate(&mut self, surprise: f64) {
        for (level, observed) in LEVELS.iter().zip(self.exceedance.iter_mut()) {
            let hit = if surprise >= *level { 1.0 } else { 0.0 };
            let current = f64::from(*observed);
            *observed = (current + CALIBRATION_ALPHA * (hit - current)) as f32;
        }
    }

    fn learn_value(
        &mut self,
        point: &Point,
        kind: ValueKind,
        season: Option<&Seasonality>,
        anomalous: bool,
    ) {
        let x = deseasonalise(point.value, kind, season, point.timestamp);
        self.recent = if self.seen == 0 {
            x
        } else {
            self.recent + FAST_ALPHA * (x - self.recent)
        };
        if anomalous && !self.warming_up() {
            if self.anomalous_run >= ACCEPT_RUN {
                // The series lives at a new level now: adopt it rather than page forever.
                self.level = self.recent;
                self.forget_evidence();
                self.anomalous_run = 0;
                self.alerting = false;
            }
            return;
        }
        if self.seen == 0 {
            self.level = x;
            return;
        }
        let alpha = (1.0 / f64::from(self.seen + 1)).max(ALPHA);
        let residual = x - self.level;
        // Winsorised: one odd bucket may widen the variance, not explode it.
        let bound = 4.0 * self.variance.sqrt().max(1.0);
        let clipped = if self.seen < WARMUP {
            residual
        } else {
            residual.clamp(-bound, bound)
        };
        self.level += alpha * clipped;
        self.variance += alpha * (clipped * clipped - self.variance);
    }

    fn learn_rate(&mut self, failed: f64, requests: f64, anomalous: bool) {
        if requests <= 0.0 || (anomalous && !self.warming_up()) {
            return;
        }
        let alpha = (1.0 / f64::from(self.seen + 1)).max(ALPHA);
        self.requests += alpha * (requests - self.requests);
        self.failed += alpha * (failed - self.failed);
        self.level = self.failed / self.requests.max(1e-9);
    }
}

/// Expected value and variance at `timestamp`, in the series' own units.
fn expected_at(
    state: &SeriesState,
    kind: ValueKind,
    season: Option<&Seasonality>,
    timestamp: i64,
) -> (f64, f64) {
    match (kind, season) {
        (ValueKind::Count, Some(season)) => {
            let factor = season.factor(timestamp);
            (state.level * factor, state.variance * factor * factor)
        }
        (ValueKind::Continuous, Some(season)) => {
            (state.level + season.offset(timestamp), state.variance)
        }
        (_, None) => (state.level, state.variance),
    }
}

fn deseasonalise(value: f64, kind: ValueKind, season: Option<&Seasonality>, timestamp: i64) -> f64 {
    match (kind, season) {
        (ValueKind::Count, Some(season)) => value / season.factor(timestamp),
        (ValueKind::Continuous, Some(season)) => value - season.offset(timestamp),
        (_, None) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const MINUTE: i64 = 60;

    fn step(state: &mut SeriesState, minute: i64, value: f64) -> Verdict {
        let point = Point {
            timestamp: minute * MINUTE,
            value,
            requests: None,
        };
        state.observe(
            &point,
            ValueKind::Count,
            None,
            Scale::default(),
            &Sensitivity::Medium.settings(),
        )
    }

    /// Poisson sample by inversion: enough for tests' small means.
    fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
        let (mut k, mut p, mut cumulative) = (0.0, (-mean).exp(), (-mean).exp());
        let u: f64 = rng.random();
        while u > cumulative && k < 10_000.0 {
            k += 1.0;
            p *= mean / k;
            cumulative += p;
        }
        k
    }

    proptest! {
        #[test]
        fn a_constant_series_never_fires(value in 0u32..100_000, length in 20usize..600) {
            let mut state = SeriesState::default();
            for minute in 0..length as i64 {
                prop_assert!(!step(&mut state, minute, f64::from(value)).fired);
            }
        }
    }

    #[test]
    fn a_tenfold_burst_on_a_busy_series_fires_within_two_buckets() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut state = SeriesState::default();
        for minute in 0..600 {
            let verdict = step(&mut state, minute, poisson(&mut rng, 40.0));
            assert!(!verdict.fired, "background fired at minute {minute}");
        }
        let fired_at = (600..602).find(|&minute| step(&mut state, minute, 400.0).fired);
        assert_eq!(fired_at, Some(600));
    }

    #[test]
    fn three_events_on_a_quiet_series_do_not_page() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut state = SeriesState::default();
        for minute in 0..2_000 {
            step(&mut state, minute, poisson(&mut rng, 0.02));
        }
        assert!(!step(&mut state, 2_000, 3.0).fired);
    }

    #[test]
    fn a_real_burst_on_a_quiet_series_pages() {
        let mut state = SeriesState::default();
        for minute in 0..500 {
            step(&mut state, minute, if minute % 97 == 0 { 1.0 } else { 0.0 });
        }
        assert!(step(&mut state, 500, 30.0).fired);
    }

    #[test]
    fn a_busy_series_dropping_to_zero_fires() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut state = SeriesState::default();
        for minute in 0..300 {
            step(&mut state, minute, poisson(&mut rng, 25.0));
        }
        let verdict = step(&mut state, 300, 0.0);
        assert!(verdict.fired);
        assert_eq!(verdict.shape, Shape::Drop);
    }

    #[test]
    fn a_level_shift_fires_once_then_becomes_the_baseline() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut state = SeriesState::default();
        for minute in 0..300 {
            step(&mut state, minute, poisson(&mut rng, 10.0));
        }
        let fired: Vec<i64> = (300..500)
            .filter(|&minute| step(&mut state, minute, poisson(&mut rng, 60.0)).fired)
            .collect();
        assert_eq!(fired.first(), Some(&300));
        assert!(fired.len() <= 2, "paged {} times: {fired:?}", fired.len());
        assert!(!state.alerting(), "the new level became normal");
    }

    #[test]
    fn hysteresis_keeps_one_anomaly_one_page() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut state = SeriesState::default();
        for minute in 0..300 {
            step(&mut state, minute, poisson(&mut rng, 5.0));
        }
        let fired = (300..306)
            .filter(|&minute| step(&mut state, minute, 80.0 + (minute % 2) as f64 * 30.0).fired)
            .count();
        assert_eq!(fired, 1);
    }

    #[test]
    fn error_rate_spike_fires_on_the_binomial_test() {
        let mut rng = StdRng::seed_from_u64(13);
        let mut state = SeriesState::default();
        let settings = Sensitivity::Medium.settings();
        let observe = |state: &mut SeriesState, minute: i64, failed: f64| {
            let point = Point {
                timestamp: minute * MINUTE,
                value: failed,
                requests: Some(1_000.0),
            };
            state.observe(&point, ValueKind::Count, None, Scale::default(), &settings)
        };
        for minute in 0..300 {
            let failed = (0..1_000).filter(|_| rng.random::<f64>() < 0.01).count() as f64;
            assert!(
                !observe(&mut state, minute, failed).fired,
                "minute {minute}"
            );
        }
        assert!(observe(&mut state, 300, 60.0).fired);
    }

    #[test]
    fn seasonality_scales_the_expectation_once_mature() {
        let mut season = Seasonality::default();
        for minute in 0..(3 * 1_440) {
            let hour = (minute / 60) % 24;
            season.observe(minute * MINUTE, if hour < 12 { 10.0 } else { 30.0 });
        }
        assert!((season.factor(6 * 3_600) - 0.5).abs() < 0.05);
        assert!((season.factor(18 * 3_600) - 1.5).abs() < 0.05);
    }
}
