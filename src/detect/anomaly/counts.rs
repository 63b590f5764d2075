//! How a count (or error-rate) series' next bucket is predicted: from a short history
//! (wider, so three buckets are enough to page on a gross change), against the traffic
//! where requests are known (errors rising with traffic are not news), and within the
//! envelope of what the series showed yesterday at this time (a daily pattern is not news
//! the second time). See the module doc, 1. to 3.

use super::super::series::{Point, ValueKind};
use super::super::tail::{binomial_upper, CountModel};
use super::state::{Adjust, MIN_MEAN};
use super::{Season, Seasonality, SeriesState};

/// Buckets after which the prediction is the baseline's own: before, it is widened for
/// the few buckets behind it.
const SHORT_HISTORY: f64 = 60.0;
/// How much a rate is believed to wander from bucket to bucket (its coefficient of
/// variation) before the series has shown how much it does; fades over
/// [`SHORT_HISTORY`]. (0.5: after three steady buckets a fourfold bucket is about one
/// in 100,000, a doubled one unremarkable.)
const PRIOR_WOBBLE: f64 = 0.5;
/// Traffic factors are kept within this range of the baseline traffic.
const TRAFFIC_RANGE: (f64, f64) = (0.1, 10.0);
/// Weight of a bucket in the anchor (≈ the last 12 hours).
const ANCHOR_ALPHA: f64 = 1.0 / 720.0;

/// The models a count bucket is judged with: upward tests against the higher of the
/// expectation and the envelope, downward ones against the lower.
pub(super) struct CountView {
    pub up: CountModel,
    pub down: CountModel,
    /// The top of the envelope, when the series has one.
    pub high: Option<f64>,
}

impl SeriesState {
    /// Counts of a series whose traffic is known follow the traffic (requests now over
    /// the usual requests); others the daily profile. Continuous values take an offset.
    pub(super) fn adjustment(
        &self,
        point: &Point,
        kind: ValueKind,
        season: Option<&Seasonality>,
    ) -> Adjust {
        match kind {
            ValueKind::Count => Adjust::Factor(
                self.traffic_factor(point)
                    .unwrap_or_else(|| season.map_or(1.0, |s| s.factor(point.timestamp))),
            ),
            ValueKind::Continuous => {
                Adjust::Offset(season.map_or(0.0, |s| s.offset(point.timestamp)))
            }
        }
    }

    fn traffic_factor(&self, point: &Point) -> Option<f64> {
        let traffic = point.traffic.filter(|t| *t > 0.0)?;
        (self.requests > 0.0)
            .then(|| (traffic / self.requests).clamp(TRAFFIC_RANGE.0, TRAFFIC_RANGE.1))
    }

    /// The usual traffic of a count series (rate series keep theirs in `learn_rate`). The
    /// baseline is the count expected *at* the usual traffic, so when the usual traffic
    /// moves, the baseline moves with it: a service whose traffic doubled for good
    /// expects twice the errors, not a baseline that must learn it again.
    pub(super) fn learn_traffic(&mut self, point: &Point) {
        let Some(traffic) = point.traffic.filter(|t| *t > 0.0) else {
            return;
        };
        if self.requests <= 0.0 {
            self.requests = traffic;
            return;
        }
        let alpha = (1.0 / f64::from(self.seen + 1)).max(ALPHA_TRAFFIC);
        let usual = self.requests + alpha * (traffic - self.requests);
        let scale = usual / self.requests;
        self.requests = usual;
        self.level *= scale;
        self.recent *= scale;
        self.variance *= scale * scale;
        self.anchor = (f64::from(self.anchor) * scale) as f32;
    }

    /// The factor the slow baseline is judged with, once the daily rhythm is known: the
    /// traffic, a profile trusted at least half, or a day of history without a profile.
    pub(super) fn anchor_factor(
        &self,
        point: &Point,
        adjust: Adjust,
        season: Option<&Seasonality>,
    ) -> Option<f64> {
        let Adjust::Factor(factor) = adjust else {
            return None;
        };
        let known = match season {
            _ if self.traffic_factor(point).is_some() => true,
            Some(profile) => profile.maturity() >= 0.5,
            None => self.seen >= 1_440,
        };
        known.then_some(factor)
    }

    pub(super) fn learn_anchor(&mut self, x: f64) {
        let alpha = (1.0 / f64::from(self.seen + 1)).max(ANCHOR_ALPHA);
        let anchor = f64::from(self.anchor);
        self.anchor = (anchor + alpha * (x - anchor)) as f32;
    }

    /// The count models of this bucket: the baseline's expectation, widened while the
    /// history is short, and stretched to what the series' own profile showed around
    /// this hour on the last two days.
    pub(super) fn count_view(
        &self,
        point: &Point,
        expected: f64,
        variance: f64,
        season: Season<'_>,
    ) -> CountView {
        let mean = expected.max(MIN_MEAN);
        let variance = self.predictive_variance(mean, variance.max(mean));
        let envelope = season.envelope(point.timestamp);
        let (low, high) =
            envelope.map_or((mean, mean), |(low, high)| (mean.min(low), mean.max(high)));
        let model = |at: f64| CountModel {
            mean: at.max(MIN_MEAN),
            variance: variance * (at / mean).max(1.0),
        };
        CountView {
            up: model(high),
            down: model(low),
            high: envelope.map(|(_, high)| high),
        }
    }

    /// The variance of the next bucket: the observed one while the history is long;
    /// with few buckets behind, the uncertainty of their mean is added (`1 + 1/n`) and
    /// a prior belief that rates wander ([`PRIOR_WOBBLE`]), fading as buckets come.
    fn predictive_variance(&self, mean: f64, observed: f64) -> f64 {
        let seen = f64::from(self.seen).max(1.0);
        if seen >= SHORT_HISTORY {
            return observed;
        }
        let fading = 1.0 - seen / SHORT_HISTORY;
        observed * (1.0 + 1.0 / seen) + mean * mean * PRIOR_WOBBLE * PRIOR_WOBBLE * fading
    }

    /// Surprise of `failed` among `requests` against the baseline ratio: a binomial tail
    /// once the series has a long history; before, an overdispersed count whose spread
    /// also holds the uncertainty of a ratio learnt from a few buckets (beta-binomial,
    /// approximated by a negative binomial of the same mean and variance).
    pub(super) fn rate_surprise(&self, failed: f64, requests: f64, baseline: f64) -> f64 {
        let seen = f64::from(self.seen).max(1.0);
        if seen >= SHORT_HISTORY {
            return binomial_upper(failed, requests, baseline);
        }
        let mean = (baseline * requests).max(MIN_MEAN);
        let failures_seen = self.failed * seen + 1.0;
        let fading = 1.0 - seen / SHORT_HISTORY;
        let wander = 1.0 / failures_seen + PRIOR_WOBBLE * PRIOR_WOBBLE * fading;
        let binomial = mean * (1.0 - baseline).max(0.0) * (1.0 + 1.0 / seen);
        CountModel {
            mean,
            variance: binomial + mean * mean * wander,
        }
        .upper(failed)
    }
}

impl<'a> Season<'a> {
    /// The profile the expectation follows, if any.
    pub fn profile(self) -> Option<&'a Seasonality> {
        match self {
            Season::None => None,
            Season::Shared(profile) | Season::Own(profile) => Some(profile),
        }
    }

    /// What the series showed around this hour on its last two days: only a series that
    /// teaches its profile has one (the profile holds its own values).
    fn envelope(self, timestamp: i64) -> Option<(f64, f64)> {
        match self {
            Season::Own(profile) => profile.envelope(timestamp),
            _ => None,
        }
    }
}

/// Weight of a bucket in a count series' usual traffic (≈ the last 50 buckets, as the
/// baseline).
const ALPHA_TRAFFIC: f64 = 0.02;
