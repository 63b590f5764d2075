//! Calibration (see the module doc, 5.): how often a series really exceeded each surprise
//! level, against how often its model promised, and the discount that follows.

use serde::Deserialize;

use super::SeriesState;

/// Surprise levels (nats) whose observed exceedance calibrates the model. State saved
/// with the first six (up to 20 nats) still loads: see [`exceedance_of_any_length`].
pub(super) const LEVELS: [f64; 10] = [3.0, 6.0, 9.0, 12.0, 16.0, 20.0, 30.0, 50.0, 100.0, 200.0];
/// Levels above this discount the model only once the series exceeded them twice.
pub(super) const TRUSTED_LEVEL: f64 = 20.0;
/// Weight of one bucket in the exceedance frequencies (≈ the last 500 buckets).
pub(super) const CALIBRATION_ALPHA: f64 = 1.0 / 500.0;

/// What the model promises before any evidence: level `L` exceeded with frequency `e^-L`.
pub(super) fn promised_exceedance() -> [f32; LEVELS.len()] {
    LEVELS.map(|level| (-level).exp() as f32)
}

/// Reads exceedance frequencies saved with fewer (or more) levels: the levels present keep
/// what they learnt, the missing ones start at the model's promise. State saved before the
/// levels went past 20 nats loads instead of failing the whole project's load.
pub(super) fn exceedance_of_any_length<'de, D>(
    deserializer: D,
) -> Result<[f32; LEVELS.len()], D::Error>
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

impl SeriesState {
    /// `ln` of how much more often the series exceeded the highest level at or below
    /// `surprise` than the model promised (0 when it kept its promise).
    pub(super) fn overconfidence(&self, surprise: f64) -> f64 {
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

    pub(super) fn calibrate(&mut self, surprise: f64) {
        for (level, observed) in LEVELS.iter().zip(self.exceedance.iter_mut()) {
            let hit = if surprise >= *level { 1.0 } else { 0.0 };
            let current = f64::from(*observed);
            *observed = (current + CALIBRATION_ALPHA * (hit - current)) as f32;
        }
    }
}
