//! Offline replay: the production detector over a recorded series, one point at a time,
//! exactly as the engine steps a live series (same state, same seasonality, same decision).

use crate::detect::anomaly::{
    Scale, Season, Seasonality, Sensitivity, SeriesState, RESOLUTION_SHARE,
};
use crate::detect::series::{Point, ValueKind};

/// What the replay may know beyond the points themselves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub sensitivity: Sensitivity,
    pub kind: ValueKind,
    /// Like-for-like with published NAB entries: the file's whole-range (min, max).
    pub range: Option<(f64, f64)>,
    /// Like-for-like: NAB's probation length (the detector may learn without scoring).
    pub probation: Option<usize>,
}

/// One anomaly score in [0, 1] per point, in order. A point scores only when the live
/// detector could have paged on it (warmed up, not already inside an anomaly, not in its
/// refractory period); elsewhere it scores 0, as a page would not have been sent.
pub fn scores(points: &[Point], options: &Options) -> Vec<f64> {
    let settings = options.sensitivity.settings();
    let scale = Scale {
        resolution: options
            .range
            .map(|(min, max)| ((max - min) * RESOLUTION_SHARE).max(f64::MIN_POSITIVE)),
    };
    let probation = options.probation.unwrap_or(0);
    let mut state = SeriesState::default();
    let mut season = Seasonality::default();
    points
        .iter()
        .enumerate()
        .map(|(index, point)| {
            let verdict =
                state.observe(point, options.kind, Season::Own(&season), scale, &settings);
            // Counts: an anomaly must not teach the profile (see `Verdict::normal_value`).
            // Continuous values: the profile learns every value. Their normal tail flags
            // long stretches (hysteresis), and a profile frozen through them went stale:
            // NAB 35 instead of 41 when it learnt only the normal buckets.
            let learnt = match options.kind {
                ValueKind::Count => verdict.normal_value(point.value),
                ValueKind::Continuous => point.value,
            };
            season.observe(point.timestamp, learnt, point.value);
            if index < probation || !verdict.armed {
                0.0
            } else {
                verdict.score
            }
        })
        .collect()
}
