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
//!    that bursts are normal; "anomalous" is a fixed surprise ([`UNUSUAL_NATS`]) for
//!    every sensitivity (when it was the sensitivity's own hysteresis level, a `high`
//!    series froze its baseline on every mildly odd bucket and scored far worse on NAB
//!    than `medium`) — until a run of them lasts [`ACCEPT_RUN`] buckets: then the
//!    series has moved to a new level (a level shift, already reported) and the baseline
//!    jumps to the recent level instead of paging forever.
//!
//!    **A short history widens the prediction; it does not switch detection off.** A
//!    count or error-rate series may fire from its fourth bucket (three of history). Over
//!    its first 60 buckets the predicted variance adds what a few buckets cannot know:
//!    the uncertainty of their mean (`× (1 + 1/n)`, the Gamma–Poisson posterior
//!    predictive) and a prior belief that a rate wanders by half its value from bucket to
//!    bucket, fading as buckets come (error rates likewise: a beta-binomial, approximated
//!    by a negative binomial, whose spread also holds the few failures behind the ratio).
//!    After three steady buckets a ×4 bucket is about one in 100,000 and a ×20 one
//!    unthinkable, where a fixed ten-bucket warm-up left a new project's first burst
//!    unseen. (Continuous values keep the ten-bucket warm-up: NAB scores their start.)
//!
//!    **Where the traffic is known, errors follow it.** A count series whose scope has
//!    requests (spans) is scaled by the traffic of the bucket against its usual traffic
//!    instead of by the daily profile: errors that double because requests doubled are
//!    not news (the error *rate* series judges the ratio). Its baseline is the count at
//!    the usual traffic, rescaled when the usual traffic moves. Issues follow their
//!    project's traffic.
//! 2. **Seasonality.** A daily profile (24 hourly slots) is learnt per *service* and
//!    shared by that service's series (its issues are too sparse to learn one of their
//!    own); it scales the expected count (multiplicative for counts, additive for
//!    continuous values), interpolated between the centres of neighbouring hours. Three
//!    things keep the profile from inventing anomalies — on seeded error streams they
//!    made most of the false pages and missed quiet-series bursts: (a) each hour's slot
//!    remembers about three days of that hour (a slot that remembered only its last 20
//!    minutes carried yesterday's noise straight into today's expectation); (b) an
//!    anomalous bucket teaches the profile what was *expected*, not what was seen — a
//!    six-hour level shift otherwise made the same hours of the next day look like a
//!    drop, and a drop to zero made them look like a burst; (c) a profile is trusted in
//!    proportion to the events behind it (a quiet service's slots are Poisson noise: two
//!    events instead of one in an hour is not a busier hour) and ramps in over the
//!    second day instead of switching on at once (a switch moved every expectation by
//!    the whole daily swing in one bucket, and paged).
//!
//!    (b) keeps a one-off burst out of tomorrow, but it also kept a *recurring* pattern
//!    out for good: a daily morning ramp paged every day (scores 0.50–0.58). So the
//!    profile also remembers what its own series *showed* in each hour of its last two
//!    days, anomalies included, and a bucket of the series that teaches it is judged
//!    against the envelope of those hourly means around its hour (the hour before, this
//!    one, the one after; never today's own): upward tests from the higher of the
//!    expectation and the envelope's top, downward ones from the lower of it and the
//!    envelope's bottom ([`Seasonality::envelope`]). What happened yesterday at about
//!    this time is no news today; what did not happen yesterday is judged as before, so
//!    a one-off level shift still makes no drop tomorrow. Seeded rhythms (a ×2–×4
//!    morning ramp, an evening fall, a lunchtime peak): 0.04–0.06 false pages per
//!    series-week from the second day on (`seismo eval synthetic --cases live`). Issue
//!    series share their project's profile and have no envelope of their own.
//! 3. **Surprise.** Counts are scored by the tail of a negative binomial with the
//!    baseline's mean and variance (a Poisson when the series is not overdispersed), both
//!    upwards (bursts) and downwards (drops to zero); continuous values by a normal tail;
//!    error rates by a binomial tail of failed among requests against the baseline ratio.
//!    Surprise is `-ln p` (nats), computed in log space ([`super::tail`]). A continuous
//!    value's standard deviation is never taken below its *resolution*, 1 % of its range
//!    ([`RESOLUTION_SHARE`]: of the whole file's range when a like-for-like replay knows
//!    it, else of the range the series has shown so far): an EWMA variance of a smooth or
//!    quantised gauge collapses toward zero, and then a wobble of a fraction of a percent
//!    is "a one in a billion". (NAB tuning half, like-for-like / causal: 0.1 % scored
//!    52.6 / 50.5, 1 % 60.4 / 56.0, 3 % 60.3 / 52.0; HTM's encoders use about the same,
//!    range / 130.) A continuous value beyond every value the series has shown is half
//!    again as surprising ([`NEW_EXTREME`]): a new extreme is news in itself, where the
//!    same distance from the baseline inside the familiar range is one more wobble. (NAB,
//!    all files, like-for-like / causal: +2.2 / +3.2, and a gain with every one of five
//!    hash seeds of the shape memory below. Counts do not use it: on the synthetic error
//!    streams it cut precision to 0.78–0.82 — a busy series' bursts keep setting records.)
//! 4. **Novelty view.** Detectors of *shape* changes a single bucket cannot show. For
//!    counts, two CUSUMs of log-likelihood ratios (quasi-Poisson: divided by the
//!    dispersion): a raised rate (double, and at least one more event per bucket) against
//!    the baseline — a quiet issue now failing a few times a minute, a busy service at
//!    twice its rate — and a collapsed one (a quarter) — a service gone silent for several
//!    minutes where one empty minute is merely unusual. (Aimed at a tripled rate, the rise
//!    CUSUM scored NAB realTweets 58.2 instead of 52.9 — busy tweet counts drift by half
//!    their rate and back — but an error stream of 5 a minute doubling then paged within a
//!    quarter hour in 13 of 30 seeded cases instead of 28: twice the errors is trouble.)
//!    And for counts a *slow* rise CUSUM, the same evidence measured from the *anchor*, a
//!    baseline of about the last half day: the baseline follows a climb over hours
//!    closely enough that no bucket ever looks twice its expectation (a ramp to ×4 over
//!    three hours lagged it by a quarter), while the anchor does not. It runs only once
//!    the daily rhythm is known (the traffic, or a profile trusted at least half): on a
//!    first day the morning rise is a climb too. Its shape is `ramp`. Seeded ramps to
//!    ×3–×6 over 1–6 hours all paged, about 55 minutes after they began.
//!    For continuous values, a
//!    two-sided CUSUM on the standardised residual. And a flatline test (a series that
//!    normally moves and has not for [`FLAT_MIN`] buckets — a dead exporter, a stuck
//!    gauge). And for continuous values a *shape memory* ([`Shapes`]): every pair of
//!    consecutive buckets, each quantised to a cell (its value and its deviation from
//!    the expectation, on a grid of an eighth of the range), is hashed into a 768-bit
//!    set, and a bucket whose shape is already in the set carries no surprise at all,
//!    however far it lies from the baseline and however long it has been flat (a gauge
//!    resting at zero between spikes is flat by habit). A gauge's recurring structure —
//!    a square wave's edge, a nightly job's spike, a sawtooth of a period no daily
//!    profile holds — is then normal from its second occurrence, while a shape never
//!    shown pages. It never forgets: forgetting a shape after one to ten days made
//!    repeats page again and cost 1–7 NAB points (5–11 on the held-out half). NAB
//!    like-for-like, all files: 46.6 without the memory, 59.9 with it for the tail tests
//!    and CUSUM, 62.3 with the flatline test too; 57 with the value alone as a cell;
//!    two-bucket shapes beat one- and three-bucket ones. Counts do not use it: a repeat
//!    of yesterday's burst of errors is still trouble, and calibration (5.) already
//!    quiets a series whose bursts are routine.
//! 5. **Calibration.** A model is never exactly right (heavy tails, bursty clients). The
//!    detector keeps, for surprise levels from 3 to 200 nats, how often the series
//!    actually exceeded them (a slow moving average, started at the model's own promise
//!    `e^-L`). The ratio observed/promised is how much the model over-promises; dividing
//!    the p-value by it turns the surprise into a calibrated likelihood, so one threshold
//!    means the same thing for busy and quiet series. A series that spikes every hour
//!    stops paging for spikes of that size; a quiet one still pages on its first real
//!    burst. The levels reach far past any threshold because the spikes a model gets
//!    systematically wrong are the huge ones (a daily batch job, a square wave's edge
//!    scored against a smooth profile: 50–200 nats); with levels only up to 20 nats such
//!    a series was discounted by at most 20 nats and paged on every repeat. Past 20 nats
//!    a level discounts only once the series exceeded it *twice* (in about the last 500
//!    buckets): one huge burst is evidence of trouble, a repeated one of a model that is
//!    wrong — else a burst half an hour after another of the same size would not page.
//! 6. **Floors.** For counts a bucket must also hold at least `min_count` events and
//!    `min_ratio` times the expected count before it may fire (a sustained rise: its
//!    CUSUM must have gathered `min_count` events; a drop or a flat line: the series must
//!    expect `min_count`): three events on a quiet series are statistically odd and
//!    operationally boring.
//! 7. **Decision.** Score = `1 - 2^(-c / HALF_SCORE)` for a calibrated surprise of `c`
//!    nats ([`HALF_SCORE`] = 11.5: 0.5 ≈ a one in 100,000 bucket). It never saturates
//!    (a linear scale capped at 1 made every bucket past 23 nats tie at 1.0, so a
//!    threshold could not tell a large anomaly from a huge one). A series *fires* on an
//!    upward crossing of the sensitivity's threshold, then stays in the anomaly until its
//!    calibrated surprise falls below half of the threshold's (hysteresis) and cannot
//!    fire again for a refractory period (120 buckets: an open incident already covers
//!    the series; a flapping one must not page every few minutes)
//!    — unless it has been calm for [`REARM_AFTER_CALM`] buckets since: then new trouble
//!    pages at once. A calm bucket is an unremarkable one (under a quarter of the
//!    threshold's surprise), not merely one under the hysteresis level: a series that
//!    keeps hovering just under it is still in the same trouble. (Re-arming only after
//!    60 calm buckets scored 2–3 NAB points more, but an incident resolves after 5 calm
//!    buckets, and a second burst half an hour later must page.)
//!
//! The constants were chosen on the tuning half of NAB and on seeded synthetic error
//! streams (`seismo eval`); the held-out half and the results are in `bench/README.md`.
//!
//! State is a fixed-size struct (checked ≤ 256 bytes at compile time); each step is a
//! bounded amount of arithmetic.

mod calibration;
mod counts;
mod cusum;
mod season;
mod shapes;
mod state;
#[cfg(test)]
mod testing;

use serde::{Deserialize, Serialize};

pub use season::Seasonality;

/// The daily profile a series is judged with: none, its service's (shared), or its own
/// (the series teaches it: then what it showed on the last days also counts, see
/// [`Seasonality::envelope`]).
#[derive(Debug, Clone, Copy)]
pub enum Season<'a> {
    /// No profile: the series is judged on its own baseline.
    None,
    /// Its service's (or project's) profile, taught by another series.
    Shared(&'a Seasonality),
    /// The profile this series teaches: its envelope applies.
    Own(&'a Seasonality),
}
pub use state::SeriesState;

/// Calibrated surprise (nats) that maps to score 0.5; each further `HALF_SCORE` nats
/// halves the distance to 1.
pub const HALF_SCORE: f64 = 11.5;

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
            // Half the threshold's calibrated surprise.
            clear: score_of(nats_of(threshold) / 2.0),
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
    /// A slow climb over hours, measured against the slow baseline.
    Ramp,
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
    /// The bucket was kept out of the baseline (inside an anomaly, or unusual enough:
    /// `UNUSUAL_NATS`): what the shared profile should learn from it is `expected`, not
    /// the value.
    pub anomalous: bool,
}

impl Verdict {
    /// What a seasonal profile may learn from this bucket: the value when it was normal,
    /// the expectation when it was anomalous (a burst or an outage must not teach
    /// tomorrow's profile that this hour is busy or dead).
    pub fn normal_value(&self, value: f64) -> f64 {
        if self.anomalous {
            self.expected
        } else {
            value
        }
    }
}

/// Score of a calibrated surprise (nats): 0.5 at [`HALF_SCORE`], approaching 1.
pub fn score_of(nats: f64) -> f64 {
    1.0 - (-nats.max(0.0) / HALF_SCORE * std::f64::consts::LN_2).exp()
}

/// Calibrated surprise (nats) of a score in [0, 1): the inverse of [`score_of`].
pub fn nats_of(score: f64) -> f64 {
    -(1.0 - score.clamp(0.0, 1.0 - 1e-12)).log2() * HALF_SCORE
}

/// Share of a continuous series' range that is the smallest difference worth one standard
/// deviation (see the module doc, 3.).
pub const RESOLUTION_SHARE: f64 = 0.01;

/// Scale hints for continuous values (like-for-like replays know the whole range).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scale {
    /// Smallest meaningful difference between two values.
    pub resolution: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_map_nats_both_ways_and_never_saturate() {
        assert!((score_of(HALF_SCORE) - 0.5).abs() < 1e-12);
        assert!((nats_of(score_of(7.0)) - 7.0).abs() < 1e-9);
        assert!(score_of(60.0) < score_of(80.0) && score_of(80.0) < 1.0);
        assert_eq!(score_of(0.0), 0.0);
    }
}
