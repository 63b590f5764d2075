//! The daily profile a service's series share: 24 hourly slots, learnt from the service's
//! own counts, turned into a multiplier (counts) or an offset (continuous values) of the
//! baseline at a given time of day (see the module doc, 2.).

use serde::{Deserialize, Serialize};

/// Least weight of one bucket in its hourly slot of the seasonal profile (≈ the last
/// three days of that hour).
const SLOT_WEIGHT: f64 = 1.0 / 180.0;
/// Events a profile must have seen before its shape is half trusted.
const SHRINK_EVENTS: f64 = 30.0;

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
    pub(super) fn slot(timestamp: i64) -> usize {
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
    pub(super) fn maturity(&self) -> f64 {
        if self.visits.contains(&0) {
            return 0.0;
        }
        let span = self.last_timestamp.saturating_sub(self.first_timestamp) as f64;
        ((span - 86_400.0) / 86_400.0).clamp(0.0, 1.0)
    }

    pub(super) fn daily_mean(&self) -> f64 {
        self.slots.iter().map(|&s| f64::from(s)).sum::<f64>() / 24.0
    }

    /// The profile at this time of day, interpolated linearly between the centres of
    /// the two nearest hourly slots (a step at every hour would add its own error).
    pub(super) fn at(&self, timestamp: i64) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60;

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
