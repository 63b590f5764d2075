//! Helpers the detector's unit tests share: stepping a count series or a gauge, and
//! seeded samples.

use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

use super::super::series::{Point, ValueKind};
use super::{Scale, Season, Sensitivity, SeriesState, Verdict, RESOLUTION_SHARE};

pub const MINUTE: i64 = 60;

pub fn step(state: &mut SeriesState, minute: i64, value: f64) -> Verdict {
    let point = Point {
        timestamp: minute * MINUTE,
        value,
        requests: None,
        traffic: None,
    };
    state.observe(
        &point,
        ValueKind::Count,
        Season::None,
        Scale::default(),
        &Sensitivity::Medium.settings(),
    )
}

/// One bucket of a gauge whose range is known to be 0–100 (as in a like-for-like
/// replay).
pub fn step_gauge(state: &mut SeriesState, minute: i64, value: f64) -> Verdict {
    let point = Point {
        timestamp: minute * MINUTE,
        value,
        requests: None,
        traffic: None,
    };
    let scale = Scale {
        resolution: Some(100.0 * RESOLUTION_SHARE),
    };
    state.observe(
        &point,
        ValueKind::Continuous,
        Season::None,
        scale,
        &Sensitivity::Medium.settings(),
    )
}

/// A square wave with a little noise: 50 buckets near 10, 50 near 60.
pub fn square_wave(rng: &mut StdRng, minute: i64) -> f64 {
    let level = if minute % 100 < 50 { 10.0 } else { 60.0 };
    level + rng.random_range(-1.0..1.0)
}

/// A gauge after `minutes` of the square wave (noise seeded by `seed`).
pub fn gauge_after_square_wave(seed: u64, minutes: i64) -> SeriesState {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut state = SeriesState::default();
    for minute in 0..minutes {
        step_gauge(&mut state, minute, square_wave(&mut rng, minute));
    }
    state
}

/// Poisson sample by inversion: enough for tests' small means.
pub fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    let (mut k, mut p, mut cumulative) = (0.0, (-mean).exp(), (-mean).exp());
    let u: f64 = rng.random();
    while u > cumulative && k < 10_000.0 {
        k += 1.0;
        p *= mean / k;
        cumulative += p;
    }
    k
}
