//! The CUSUMs and the flatline test: evidence that builds over several buckets where no
//! single bucket is remarkable (see the module doc, 4.).

use super::super::series::ValueKind;
use super::super::tail::{CountModel, MAX_SURPRISE};
use super::counts::CountView;
use super::state::MIN_MEAN;
use super::SeriesState;

/// CUSUM slack (in standard deviations) and the cap of one bucket's contribution.
const CUSUM_SLACK: f64 = 0.5;
const CUSUM_STEP_CAP: f64 = 4.0;
/// Most nats one bucket adds to (or takes from) a count CUSUM.
const COUNT_CUSUM_STEP_CAP: f64 = 5.0;
/// Unchanged buckets before a flat line becomes suspicious.
const FLAT_MIN: u16 = 40;

impl SeriesState {
    /// Two-sided CUSUM on the standardised residual of a continuous value: small shifts
    /// add up until they are not small.
    pub(super) fn step_cusum(&mut self, deviation: f64) -> f64 {
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
    /// for several minutes where one empty minute is merely unusual. The rise is measured
    /// from the top of the envelope (`up`), the fall from its bottom (`down`).
    pub(super) fn step_count_cusum(
        &mut self,
        x: f64,
        up: &CountModel,
        down: &CountModel,
    ) -> (f64, f64) {
        self.cusum_up = (self.cusum_up + rise_evidence(x, up)).max(0.0);
        // Below about one event per bucket silence is the norm, not evidence.
        self.cusum_down = if down.mean >= 1.0 {
            let dispersion = (down.variance / down.mean).max(1.0);
            let fall = log_likelihood_ratio(x, down.mean, down.mean / 4.0, dispersion);
            (self.cusum_down + fall).max(0.0)
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

    /// The slow ramp's CUSUM: the rise CUSUM's evidence, measured from the slow baseline
    /// (the anchor, about the last half day) rather than the baseline, which follows a
    /// climb over hours closely enough that no bucket ever looks twice its expectation.
    /// Returns (surprise, the anchor's expectation). Only once the daily rhythm is known
    /// (a mature profile, or the traffic): on a first day the morning rise is a climb too.
    pub(super) fn slow_rise(
        &mut self,
        x: f64,
        view: &CountView,
        anchor_factor: Option<f64>,
    ) -> (f64, f64) {
        let Some(factor) = anchor_factor else {
            self.cusum_slow = 0.0;
            return (0.0, f64::INFINITY);
        };
        // What yesterday showed at this hour is no news either.
        let mean = (f64::from(self.anchor) * factor)
            .max(view.high.unwrap_or(0.0))
            .max(MIN_MEAN);
        let dispersion = (view.up.variance / view.up.mean).max(1.0);
        let model = CountModel {
            mean,
            variance: dispersion * mean,
        };
        let step = rise_evidence(x, &model);
        self.cusum_slow = (f64::from(self.cusum_slow) + step).max(0.0) as f32;
        (f64::from(self.cusum_slow), mean)
    }

    /// Surprise of a run of identical values on a series that normally moves.
    pub(super) fn flatline_surprise(
        &mut self,
        x: f64,
        kind: ValueKind,
        expected: f64,
        variance: f64,
    ) -> f64 {
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
}

/// Evidence (nats) that a bucket comes from a rate twice the model's (and at least one
/// more event per bucket) rather than the model's own.
fn rise_evidence(x: f64, model: &CountModel) -> f64 {
    let dispersion = (model.variance / model.mean).max(1.0);
    let raised = (2.0 * model.mean).max(model.mean + 1.0);
    log_likelihood_ratio(x, model.mean, raised, dispersion)
}

/// Poisson log-likelihood ratio of `x` under `rate` against `mean`, divided by the
/// dispersion (quasi-Poisson). Capped per bucket: one burst is the tail test's to judge;
/// the CUSUMs gather evidence that persists, and must fall back soon after a single odd
/// bucket.
fn log_likelihood_ratio(x: f64, mean: f64, rate: f64, dispersion: f64) -> f64 {
    ((x * (rate / mean).ln() - (rate - mean)) / dispersion)
        .clamp(-COUNT_CUSUM_STEP_CAP, COUNT_CUSUM_STEP_CAP)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{poisson, step};
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// to `mean` after ten hours (within two hours of the step).
    pub(super) fn first_page_after_a_step(seed: u64, mean: f64) -> Option<i64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut state = SeriesState::default();
        for minute in 0..600 {
            step(&mut state, minute, poisson(&mut rng, 5.0));
        }
        (0..120).find(|&minute| step(&mut state, 600 + minute, poisson(&mut rng, mean)).fired)
    }

    #[test]
    pub(super) fn a_moderate_series_at_double_its_rate_pages_within_a_quarter_hour() {
        // No single bucket of Poisson(10) is remarkable against a baseline of 5: the rise
        // CUSUM must gather it. Aimed at a tripled rate instead of a doubled one, it paged
        // 13 of these 30 in time (see the module doc, 4.).
        let paged = (1..=30)
            .filter(|&seed| first_page_after_a_step(seed, 10.0).is_some_and(|m| m < 15))
            .count();
        assert!(paged >= 27, "{paged} of 30 paged within 15 minutes");
    }
}
