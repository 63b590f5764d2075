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

use serde::{Deserialize, Serialize};

use super::series::{Point, ValueKind};
use super::tail::{binomial_upper, normal_upper, CountModel, MAX_SURPRISE};

/// Calibrated surprise (nats) that maps to score 0.5; each further `HALF_SCORE` nats
/// halves the distance to 1.
pub const HALF_SCORE: f64 = 11.5;
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
/// down and then misbehaves again has a new problem. Not longer: its incident resolves
/// after 5 calm buckets, and new trouble after that must page.
const REARM_AFTER_CALM: u16 = 15;
/// Calibrated surprise (nats) from which a bucket is kept out of the baseline, whatever
/// the sensitivity: what is normal is a property of the series, not of how readily its
/// owner wants to be paged.
const UNUSUAL_NATS: f64 = HALF_SCORE / 2.0;
/// Most nats one bucket adds to (or takes from) a count CUSUM.
const COUNT_CUSUM_STEP_CAP: f64 = 5.0;
/// Unchanged buckets before a flat line becomes suspicious.
const FLAT_MIN: u16 = 40;
/// Surprise levels (nats) whose observed exceedance calibrates the model. State saved
/// with the first six (up to 20 nats) still loads: see [`exceedance_of_any_length`].
const LEVELS: [f64; 10] = [3.0, 6.0, 9.0, 12.0, 16.0, 20.0, 30.0, 50.0, 100.0, 200.0];
/// Levels above this discount the model only once the series exceeded them twice.
const TRUSTED_LEVEL: f64 = 20.0;
/// Weight of one bucket in the exceedance frequencies (≈ the last 500 buckets).
const CALIBRATION_ALPHA: f64 = 1.0 / 500.0;
/// Least weight of one bucket in its hourly slot of the seasonal profile (≈ the last
/// three days of that hour).
const SLOT_WEIGHT: f64 = 1.0 / 180.0;
/// Events a profile must have seen before its shape is half trusted.
const SHRINK_EVENTS: f64 = 30.0;
/// Counts below this mean are treated as this mean (a series that never saw an event).
const MIN_MEAN: f64 = 0.01;
/// Width of a cell of the shape grid, in resolutions (see [`RESOLUTION_SHARE`]): an
/// eighth of the range. (NAB tuning half, like-for-like: a tenth 60.1, an eighth 62.4,
/// a sixth 62.5, a fifth 60.0; see [`Shapes`].)
const SHAPE_CELL: f64 = 12.5;
/// Factor on the surprise of a continuous value beyond the whole range seen so far
/// (1.5 and 2 scored alike on NAB).
const NEW_EXTREME: f64 = 1.5;

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
        let weight = (1.0 / f64::from(self.visits[slot])).max(SLOT_WEIGHT);
        let current = f64::from(self.slots[slot]);
        self.slots[slot] = (current + weight * (value - current)) as f32;
        self.first_timestamp = self.first_timestamp.min(timestamp);
        self.last_timestamp = self.last_timestamp.max(timestamp);
    }

    /// How far the profile is trusted, from 0 (less than a day seen, or an hour never
    /// visited) to 1 (two days seen). A ramp over the second day rather than a switch: a
    /// baseline learnt without the profile would otherwise see its expectation jump by
    /// the whole daily swing at one instant, and page on it.
    fn maturity(&self) -> f64 {
        if self.visits.contains(&0) {
            return 0.0;
        }
        let span = self.last_timestamp.saturating_sub(self.first_timestamp) as f64;
        ((span - 86_400.0) / 86_400.0).clamp(0.0, 1.0)
    }

    fn daily_mean(&self) -> f64 {
        self.slots.iter().map(|&s| f64::from(s)).sum::<f64>() / 24.0
    }

    /// The profile at this time of day, interpolated linearly between the centres of
    /// the two nearest hourly slots (a step at every hour would add its own error).
    fn at(&self, timestamp: i64) -> f64 {
        let hours = (timestamp.rem_euclid(86_400) as f64 / 3_600.0 - 0.5).rem_euclid(24.0);
        let before = hours.floor() as usize % 24;
        let after = (before + 1) % 24;
        let t = hours - hours.floor();
        f64::from(self.slots[before]) * (1.0 - t) + f64::from(self.slots[after]) * t
    }

    /// Multiplier of the daily mean at this time of day (1 until mature). A profile of a
    /// quiet service is mostly Poisson noise (a slot that saw two events instead of one
    /// is not twice as busy): the factor is shrunk toward 1 by how many events its slots
    /// have actually seen.
    pub fn factor(&self, timestamp: i64) -> f64 {
        let mean = self.daily_mean();
        let maturity = self.maturity();
        if maturity <= 0.0 || mean <= 0.0 {
            return 1.0;
        }
        let memory = self
            .visits
            .iter()
            .copied()
            .min()
            .map_or(1.0, f64::from)
            .min(1.0 / SLOT_WEIGHT);
        let evidence = mean * memory;
        let trust = maturity * evidence / (evidence + SHRINK_EVENTS);
        (1.0 + trust * (self.at(timestamp) / mean - 1.0)).clamp(0.25, 4.0)
    }

    /// Offset from the daily mean at this time of day (0 until mature).
    pub fn offset(&self, timestamp: i64) -> f64 {
        self.maturity() * (self.at(timestamp) - self.daily_mean())
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
    /// Consecutive calm buckets (scored under a quarter of the threshold's surprise).
    calm_run: u16,
    alerting: bool,
    #[serde(deserialize_with = "exceedance_of_any_length")]
    exceedance: [f32; LEVELS.len()],
    /// Events counted while the count CUSUM has been above zero.
    cusum_events: f64,
    /// Range of the values seen (continuous values: their resolution). State saved
    /// before these existed loads with 0: the range then grows from there.
    #[serde(default)]
    lowest: f32,
    #[serde(default)]
    highest: f32,
    /// Continuous values: the shapes shown so far. State saved before it existed loads
    /// with an empty memory, which fills again within a day or two. Count series never
    /// fill it, and do not save it.
    #[serde(default, skip_serializing_if = "Shapes::is_empty")]
    shapes: Shapes,
}

const _: () = assert!(std::mem::size_of::<SeriesState>() <= 256);

/// The short shapes a continuous series has shown: pairs of consecutive cells, a cell
/// being the value and its deviation from the expectation, each on a grid of
/// [`SHAPE_CELL`] resolutions. A fixed-size set of hashed bits: it never forgets and
/// never grows, and a collision merely takes a shape for known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Shapes {
    seen: [u64; 12],
    /// Hash of the previous bucket's cell; `None` before the first bucket.
    previous: Option<u64>,
}

impl Shapes {
    fn is_empty(&self) -> bool {
        *self == Shapes::default()
    }

    /// Records the shape that ends in this bucket's cell; true when it is new.
    fn record(&mut self, value: f64, deviation: f64, cell: f64) -> bool {
        // The deviation's cells are centred on 0, so a small wobble either side of the
        // expectation is one cell, not two.
        let here = fnv1a(&[grid(value, cell), grid(deviation + cell / 2.0, cell)]);
        let Some(previous) = self.previous.replace(here) else {
            return false;
        };
        let bits = self.seen.len() * 64;
        let bit = (fnv1a(&[previous as i64, here as i64]) % bits as u64) as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let new = self.seen[word] & mask == 0;
        self.seen[word] |= mask;
        new
    }
}

/// Index of the grid cell holding `x` (cells of width `cell`, saturating far out).
fn grid(x: f64, cell: f64) -> i64 {
    (x / cell).floor().clamp(-1e15, 1e15) as i64
}

/// FNV-1a over the bytes of a few integers, folded so the low bits mix the high ones.
fn fnv1a(parts: &[i64]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^ (hash >> 29)
}

/// What the model promises before any evidence: level `L` exceeded with frequency `e^-L`.
fn promised_exceedance() -> [f32; LEVELS.len()] {
    LEVELS.map(|level| (-level).exp() as f32)
}

/// Reads exceedance frequencies saved with fewer (or more) levels: the levels present keep
/// what they learnt, the missing ones start at the model's promise. State saved before the
/// levels went past 20 nats loads instead of failing the whole project's load.
fn exceedance_of_any_length<'de, D>(deserializer: D) -> Result<[f32; LEVELS.len()], D::Error>
where
    D: serde::Deserializer<'de>,
{
    let saved = Vec::<f32>::deserialize(deserializer)?;
    let mut exceedance = promised_exceedance();
    for (slot, observed) in exceedance.iter_mut().zip(saved) {
        *slot = observed;
    }
    Ok(exceedance)
}

/// Score of a calibrated surprise (nats): 0.5 at [`HALF_SCORE`], approaching 1.
pub fn score_of(nats: f64) -> f64 {
    1.0 - (-nats.max(0.0) / HALF_SCORE * std::f64::consts::LN_2).exp()
}

/// Calibrated surprise (nats) of a score in [0, 1): the inverse of [`score_of`].
pub fn nats_of(score: f64) -> f64 {
    -(1.0 - score.clamp(0.0, 1.0 - 1e-12)).log2() * HALF_SCORE
}

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

/// Share of a continuous series' range that is the smallest difference worth one standard
/// deviation (see the module doc, 3.).
pub const RESOLUTION_SHARE: f64 = 0.01;

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
        let mut verdict = self.decide(&reading, settings);
        let anomalous = verdict.alerting || verdict.score >= score_of(UNUSUAL_NATS);
        verdict.anomalous = anomalous;
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
        let mut known_shape = false;
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
        let mut score = score_of(calibrated);
        if self.warming_up() || !reading.eligible {
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
            anomalous: false,
        }
    }

    /// `ln` of how much more often the series exceeded the highest level at or below
    /// `surprise` than the model promised (0 when it kept its promise).
    fn overconfidence(&self, surprise: f64) -> f64 {
        LEVELS
            .iter()
            .zip(self.exceedance)
            .filter(|(level, _)| **level <= surprise)
            .map(|(level, observed)| {
                // Past the levels any threshold uses, one hit is not yet evidence against
                // the model: it must have happened twice.
                let once = if *level > TRUSTED_LEVEL {
                    CALIBRATION_ALPHA
                } else {
                    0.0
                };
                let observed = (f64::from(observed) - once).max(f64::MIN_POSITIVE);
                (observed.ln() + level).max(0.0)
            })
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
        if point.value.is_finite() {
            let value = point.value as f32;
            (self.lowest, self.highest) = if self.seen == 0 {
                (value, value)
            } else {
                (self.lowest.min(value), self.highest.max(value))
            };
        }
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

/// The view with the most surprise (a spike when none has any).
fn strongest(views: [(f64, Shape); 5]) -> (f64, Shape) {
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

    /// One bucket of a gauge whose range is known to be 0–100 (as in a like-for-like
    /// replay).
    fn step_gauge(state: &mut SeriesState, minute: i64, value: f64) -> Verdict {
        let point = Point {
            timestamp: minute * MINUTE,
            value,
            requests: None,
        };
        let scale = Scale {
            resolution: Some(100.0 * RESOLUTION_SHARE),
        };
        state.observe(
            &point,
            ValueKind::Continuous,
            None,
            scale,
            &Sensitivity::Medium.settings(),
        )
    }

    /// A square wave with a little noise: 50 buckets near 10, 50 near 60.
    fn square_wave(rng: &mut StdRng, minute: i64) -> f64 {
        let level = if minute % 100 < 50 { 10.0 } else { 60.0 };
        level + rng.random_range(-1.0..1.0)
    }

    /// A gauge after `minutes` of the square wave (noise seeded by `seed`).
    fn gauge_after_square_wave(seed: u64, minutes: i64) -> SeriesState {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut state = SeriesState::default();
        for minute in 0..minutes {
            step_gauge(&mut state, minute, square_wave(&mut rng, minute));
        }
        state
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

    /// The first page, in minutes after the step, of a Poisson(5) series whose rate steps
    /// to `mean` after ten hours (within two hours of the step).
    fn first_page_after_a_step(seed: u64, mean: f64) -> Option<i64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut state = SeriesState::default();
        for minute in 0..600 {
            step(&mut state, minute, poisson(&mut rng, 5.0));
        }
        (0..120).find(|&minute| step(&mut state, 600 + minute, poisson(&mut rng, mean)).fired)
    }

    #[test]
    fn a_moderate_series_at_double_its_rate_pages_within_a_quarter_hour() {
        // No single bucket of Poisson(10) is remarkable against a baseline of 5: the rise
        // CUSUM must gather it. Aimed at a tripled rate instead of a doubled one, it paged
        // 13 of these 30 in time (see the module doc, 4.).
        let paged = (1..=30)
            .filter(|&seed| first_page_after_a_step(seed, 10.0).is_some_and(|m| m < 15))
            .count();
        assert!(paged >= 27, "{paged} of 30 paged within 15 minutes");
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
    fn a_gauge_pages_on_a_shape_only_until_it_has_shown_it() {
        let mut rng = StdRng::seed_from_u64(17);
        let mut state = SeriesState::default();
        let fired: Vec<i64> = (0..3_000)
            .filter(|&minute| step_gauge(&mut state, minute, square_wave(&mut rng, minute)).fired)
            .collect();
        // The first edges are news; from the third period on every edge is a known shape.
        assert!(
            fired.iter().all(|&minute| minute < 300),
            "paged at {fired:?}"
        );
    }

    #[test]
    fn a_gauge_still_pages_on_a_shape_it_never_showed() {
        let mut state = gauge_after_square_wave(19, 3_000);
        // Mid-way through a low half, the gauge jumps to a level it never reached.
        let fired = (3_010..3_013).any(|minute| step_gauge(&mut state, minute, 95.0).fired);
        assert!(fired);
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

    #[test]
    fn scores_map_nats_both_ways_and_never_saturate() {
        assert!((score_of(HALF_SCORE) - 0.5).abs() < 1e-12);
        assert!((nats_of(score_of(7.0)) - 7.0).abs() < 1e-9);
        assert!(score_of(60.0) < score_of(80.0) && score_of(80.0) < 1.0);
        assert_eq!(score_of(0.0), 0.0);
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
