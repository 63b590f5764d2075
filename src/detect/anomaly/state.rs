//! One series' state and its step: read the bucket (tails, CUSUMs, flatline, shapes),
//! calibrate, decide (floors, hysteresis, refractory period), learn.

use serde::{Deserialize, Serialize};

use super::super::series::{Point, ValueKind};
use super::super::tail::normal_upper;
use super::calibration::{exceedance_of_any_length, promised_exceedance, LEVELS};
use super::shapes::{Shapes, SHAPE_CELL};
use super::{
    nats_of, score_of, Scale, Season, Seasonality, Settings, Shape, Verdict, HALF_SCORE,
    RESOLUTION_SHARE,
};

/// Buckets with a running mean before the exponential weights take over (continuous
/// values: nothing fires before).
const WARMUP: u32 = 10;
/// Buckets of history a count (or error-rate) series needs before it may fire: fewer
/// only widen its prediction (see the module doc, 1.).
const MIN_HISTORY: u32 = 3;
/// Weight of a new bucket in the baseline (≈ the last 50 buckets).
const ALPHA: f64 = 0.02;
/// Weight of a new bucket in the recent level (≈ the last 4 buckets).
const FAST_ALPHA: f64 = 0.25;
/// Consecutive anomalous buckets after which the baseline adopts the new level.
const ACCEPT_RUN: u16 = 15;
/// Calm buckets after which the refractory period ends early: a series that settled
/// down and then misbehaves again has a new problem. Not longer: its incident resolves
/// after 5 calm buckets, and new trouble after that must page.
const REARM_AFTER_CALM: u16 = 15;
/// Calibrated surprise (nats) from which a bucket is kept out of the baseline, whatever
/// the sensitivity: what is normal is a property of the series, not of how readily its
/// owner wants to be paged.
const UNUSUAL_NATS: f64 = HALF_SCORE / 2.0;
/// Counts below this mean are treated as this mean (a series that never saw an event).
pub(super) const MIN_MEAN: f64 = 0.01;
/// Factor on the surprise of a continuous value beyond the whole range seen so far
/// (1.5 and 2 scored alike on NAB).
const NEW_EXTREME: f64 = 1.5;

/// Everything the detector remembers about one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    pub(super) seen: u32,
    /// Deseasonalised baseline level (for rate series: expected failures per request).
    pub(super) level: f64,
    pub(super) variance: f64,
    pub(super) recent: f64,
    /// Rate series: smoothed requests and failures (their ratio is the baseline).
    pub(super) requests: f64,
    pub(super) failed: f64,
    pub(super) cusum_up: f64,
    pub(super) cusum_down: f64,
    pub(super) last_value: f64,
    pub(super) flat_run: u16,
    pub(super) anomalous_run: u16,
    pub(super) refractory: u16,
    /// Consecutive calm buckets (scored under a quarter of the threshold's surprise).
    pub(super) calm_run: u16,
    pub(super) alerting: bool,
    #[serde(deserialize_with = "exceedance_of_any_length")]
    pub(super) exceedance: [f32; LEVELS.len()],
    /// Events counted while the count CUSUM has been above zero.
    pub(super) cusum_events: f64,
    /// Range of the values seen (continuous values: their resolution). State saved
    /// before these existed loads with 0: the range then grows from there.
    #[serde(default)]
    pub(super) lowest: f32,
    #[serde(default)]
    pub(super) highest: f32,
    /// Continuous values: the shapes shown so far. State saved before it existed loads
    /// with an empty memory, which fills again within a day or two. Count series never
    /// fill it, and do not save it.
    #[serde(default, skip_serializing_if = "Shapes::is_empty")]
    pub(super) shapes: Shapes,
    /// Counts: the slow baseline (about the last half day, deseasonalised) a slow ramp
    /// is measured against, and the CUSUM of that ramp. State saved before they existed
    /// loads with 0: the anchor then starts from the next bucket.
    #[serde(default)]
    pub(super) anchor: f32,
    #[serde(default)]
    pub(super) cusum_slow: f32,
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
            exceedance: promised_exceedance(),
            cusum_events: 0.0,
            lowest: 0.0,
            highest: 0.0,
            shapes: Shapes::default(),
            anchor: 0.0,
            cusum_slow: 0.0,
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

    /// One closed bucket. `season` is the daily profile the series is judged with.
    pub fn observe(
        &mut self,
        point: &Point,
        kind: ValueKind,
        season: Season<'_>,
        scale: Scale,
        settings: &Settings,
    ) -> Verdict {
        let young = self.young(kind);
        let reading = match point.requests {
            Some(requests) => self.read_rate(point.value, requests, settings),
            None => self.read_value(point, kind, season, scale, settings),
        };
        if young {
            // Too little history to weigh evidence over buckets: it starts afresh.
            self.forget_evidence();
        }
        let mut verdict = self.decide(&reading, settings, young);
        let anomalous = verdict.alerting || verdict.score >= score_of(UNUSUAL_NATS);
        verdict.anomalous = anomalous;
        self.learn(point, kind, season.profile(), &reading, anomalous);
        verdict
    }

    fn warming_up(&self) -> bool {
        self.seen < WARMUP
    }

    /// Too little history to fire: [`MIN_HISTORY`] buckets for counts and error rates,
    /// whose prediction widens with a short history instead; [`WARMUP`] for continuous
    /// values.
    fn young(&self, kind: ValueKind) -> bool {
        let needed = match kind {
            ValueKind::Count => MIN_HISTORY,
            ValueKind::Continuous => WARMUP,
        };
        self.seen < needed
    }

    /// Drops the evidence accumulated against the current baseline (the CUSUMs): after
    /// warm-up, or once the baseline adopts a new level.
    fn forget_evidence(&mut self) {
        self.cusum_up = 0.0;
        self.cusum_down = 0.0;
        self.cusum_events = 0.0;
        self.cusum_slow = 0.0;
    }

    fn read_value(
        &mut self,
        point: &Point,
        kind: ValueKind,
        season: Season<'_>,
        scale: Scale,
        settings: &Settings,
    ) -> Reading {
        let x = point.value;
        let adjust = self.adjustment(point, kind, season.profile());
        let (expected, variance) = adjust.expected(self.level, self.variance);
        let mut known_shape = false;
        let mut slow = (0.0, f64::INFINITY);
        let (up, down, rise, fall) = match kind {
            ValueKind::Count => {
                let view = self.count_view(point, expected, variance, season);
                let (rise, fall) = self.step_count_cusum(x, &view.up, &view.down);
                let anchor_factor = self.anchor_factor(point, adjust, season.profile());
                slow = self.slow_rise(x, &view, anchor_factor);
                // A climb that has not come far enough to fire is no view at all: it
                // must not hide a sustained rise or a spike that may.
                if x < settings.min_count || x < settings.min_ratio * slow.1 {
                    slow.0 = 0.0;
                }
                (view.up.upper(x), view.down.lower(x), rise, fall)
            }
            ValueKind::Continuous => {
                // The file's resolution when the replay knows it, else that of the range
                // seen so far; never below 0.1 % of the level.
                let seen = f64::from(self.highest) - f64::from(self.lowest);
                let floor = scale
                    .resolution
                    .unwrap_or(RESOLUTION_SHARE * seen)
                    .max(1e-3 * expected.abs().max(1e-9));
                let deviation = (x - expected) / (variance + floor * floor).sqrt();
                known_shape = !self.shapes.record(x, x - expected, floor * SHAPE_CELL);
                (
                    normal_upper(deviation).max(0.0) * f64::from(deviation > 0.0),
                    normal_upper(-deviation).max(0.0) * f64::from(deviation < 0.0),
                    self.step_cusum(deviation),
                    0.0,
                )
            }
        };
        let flat = self.flatline_surprise(x, kind, expected, variance);
        let views = [
            (up, Shape::Spike),
            (down, Shape::Drop),
            (rise, Shape::LevelShift),
            (fall, Shape::Drop),
            (flat, Shape::Flatline),
            (slow.0, Shape::Ramp),
        ];
        // A shape the series has shown before is its normal, however far from the
        // baseline (see the module doc, 4.).
        let (surprise, shape) = if known_shape {
            (0.0, Shape::Spike)
        } else {
            strongest(views)
        };
        let surprise = surprise * self.extremity(x, kind);
        let eligible = match (kind, shape) {
            (ValueKind::Continuous, _) => true,
            (ValueKind::Count, Shape::Spike) if x >= expected => {
                x >= settings.min_count && x >= settings.min_ratio * expected
            }
            // A sustained rise: judged on the events it brought, not on one bucket.
            (ValueKind::Count, Shape::LevelShift) => self.cusum_events >= settings.min_count,
            // A slow climb: only counted once it came far enough (above).
            (ValueKind::Count, Shape::Ramp) => true,
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

    /// [`NEW_EXTREME`] for a continuous value beyond every value seen (once warmed up),
    /// else 1. Compared in `f32`, as the range is kept: a repeat of the maximum is no
    /// new extreme.
    fn extremity(&self, x: f64, kind: ValueKind) -> f64 {
        let x = x as f32;
        let beyond = x > self.highest || x < self.lowest;
        if kind == ValueKind::Continuous && !self.warming_up() && beyond {
            NEW_EXTREME
        } else {
            1.0
        }
    }

    fn read_rate(&mut self, failed: f64, requests: f64, settings: &Settings) -> Reading {
        // A prior of one failure in a thousand requests until the series has history.
        let baseline = (self.failed + 0.001) / (self.requests + 1.0);
        let expected = baseline * requests;
        let surprise = if requests > 0.0 {
            self.rate_surprise(failed, requests, baseline)
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
    fn decide(&mut self, reading: &Reading, settings: &Settings, young: bool) -> Verdict {
        let calibrated = (reading.surprise - self.overconfidence(reading.surprise)).max(0.0);
        let mut score = score_of(calibrated);
        if young || !reading.eligible {
            // Reported, but held under the threshold: it may not fire.
            score = score.min(settings.threshold * 0.99);
        }
        // Calm is back to unremarkable (under a quarter of the threshold's surprise, p ≳
        // 0.05 at medium), not merely under the hysteresis level: a series that keeps
        // hovering just under `clear` is still the same trouble.
        self.calm_run = if score < score_of(nats_of(settings.threshold) / 4.0) {
            self.calm_run.saturating_add(1)
        } else {
            0
        };
        if self.calm_run >= REARM_AFTER_CALM {
            // Quiet long enough: the next trouble is new trouble, and pages.
            self.refractory = 0;
        }
        let armed = !young && !self.alerting && self.refractory == 0;
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
            anomalous: false,
        }
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
        if point.value.is_finite() {
            let value = point.value as f32;
            (self.lowest, self.highest) = if self.seen == 0 {
                (value, value)
            } else {
                (self.lowest.min(value), self.highest.max(value))
            };
        }
        let settled = !self.young(kind);
        match point.requests {
            Some(requests) => self.learn_rate(point.value, requests, anomalous && settled),
            None => {
                self.learn_value(point, kind, season, anomalous && settled);
                self.learn_traffic(point);
            }
        }
        self.seen = self.seen.saturating_add(1);
    }

    fn learn_value(
        &mut self,
        point: &Point,
        kind: ValueKind,
        season: Option<&Seasonality>,
        anomalous: bool,
    ) {
        let adjust = self.adjustment(point, kind, season);
        let x = adjust.remove(point.value);
        self.recent = if self.seen == 0 {
            x
        } else {
            self.recent + FAST_ALPHA * (x - self.recent)
        };
        if anomalous {
            if self.anomalous_run >= ACCEPT_RUN {
                // The series lives at a new level now: adopt it rather than page forever.
                self.level = self.recent;
                self.anchor = self.recent as f32;
                self.forget_evidence();
                self.anomalous_run = 0;
                self.alerting = false;
            }
            return;
        }
        if self.seen == 0 {
            self.level = x;
            self.anchor = x as f32;
            return;
        }
        if kind == ValueKind::Count {
            self.learn_anchor(x);
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
        if requests <= 0.0 || anomalous {
            return;
        }
        let alpha = (1.0 / f64::from(self.seen + 1)).max(ALPHA);
        self.requests += alpha * (requests - self.requests);
        self.failed += alpha * (failed - self.failed);
        self.level = self.failed / self.requests.max(1e-9);
    }
}

/// The view with the most surprise (a spike when none has any).
fn strongest(views: [(f64, Shape); 6]) -> (f64, Shape) {
    views
        .into_iter()
        .fold((0.0, Shape::Spike), |best, candidate| {
            if candidate.0 > best.0 {
                candidate
            } else {
                best
            }
        })
}

/// How the time of day (or the traffic) moves a series' expectation away from its
/// baseline: a factor for counts, an offset for continuous values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Adjust {
    Factor(f64),
    Offset(f64),
}

impl Adjust {
    /// Expected value and variance, in the series' own units, of a baseline.
    pub(super) fn expected(self, level: f64, variance: f64) -> (f64, f64) {
        match self {
            Adjust::Factor(factor) => (level * factor, variance * factor * factor),
            Adjust::Offset(offset) => (level + offset, variance),
        }
    }

    /// The value as the baseline learns it.
    fn remove(self, value: f64) -> f64 {
        match self {
            Adjust::Factor(factor) => value / factor,
            Adjust::Offset(offset) => value - offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gauge_after_square_wave, poisson, step, step_gauge, MINUTE};
    use super::super::Sensitivity;
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

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

    /// The first page, in minutes after the step, of a Poisson(5) series whose rate steps
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
                traffic: None,
            };
            state.observe(
                &point,
                ValueKind::Count,
                Season::None,
                Scale::default(),
                &settings,
            )
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
    fn a_gauge_beyond_its_range_is_more_surprising_than_inside_it() {
        let mut rng = StdRng::seed_from_u64(29);
        let mut state = SeriesState::default();
        for minute in 0..500 {
            let excursion = if minute == 100 { 100.0 } else { 0.0 };
            step_gauge(
                &mut state,
                minute,
                50.0 + rng.random_range(-1.0..1.0) + excursion,
            );
        }
        // Two identical series, except that one has never been above 60.
        let mut familiar = state;
        let mut new_extreme = state;
        new_extreme.highest = 60.0;
        let inside = step_gauge(&mut familiar, 500, 75.0).score;
        let beyond = step_gauge(&mut new_extreme, 500, 75.0).score;
        assert!(inside > 0.0, "the jump is surprising either way");
        assert!(beyond > inside, "{beyond} vs {inside}");
        // The same for counts: no difference.
        let mut counts = SeriesState::default();
        for minute in 0..500 {
            step(&mut counts, minute, 10.0);
        }
        let mut lower = counts;
        lower.highest = 5.0;
        assert_eq!(
            step(&mut counts, 500, 30.0).score,
            step(&mut lower, 500, 30.0).score
        );
    }

    #[test]
    fn state_saved_before_the_shape_memory_loads_with_an_empty_one() {
        let state = gauge_after_square_wave(23, 200);
        let mut saved = serde_json::to_value(state).unwrap();
        assert!(
            saved["shapes"]["seen"].is_array(),
            "a gauge saves its shapes"
        );
        saved.as_object_mut().unwrap().remove("shapes");
        let loaded: SeriesState = serde_json::from_value(saved).unwrap();
        assert_eq!(loaded.shapes, Shapes::default());
        assert_eq!(loaded.level, state.level);
        let counts = serde_json::to_value(SeriesState::default()).unwrap();
        assert!(counts.get("shapes").is_none(), "a count series saves none");
    }

    #[test]
    fn state_saved_with_six_calibration_levels_still_loads() {
        let mut state = SeriesState::default();
        for minute in 0..100 {
            step(&mut state, minute, 5.0);
        }
        let mut saved = serde_json::to_value(state).unwrap();
        let old: Vec<serde_json::Value> = saved["exceedance"].as_array().unwrap()[..6].to_vec();
        saved["exceedance"] = serde_json::Value::Array(old);
        let loaded: SeriesState = serde_json::from_value(saved).unwrap();
        assert_eq!(loaded.exceedance[..6], state.exceedance[..6]);
        assert_eq!(loaded.exceedance[6..], promised_exceedance()[6..]);
    }
}
