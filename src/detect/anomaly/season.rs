//! The daily profile a service's series share: 24 hourly slots, learnt from the service's
//! own counts, turned into a multiplier (counts) or an offset (continuous values) of the
//! baseline at a given time of day (see the module doc, 2.).
//!
//! Beside the profile, which learns only what was normal, it keeps what the owning
//! series really showed in each hour of the last two days (anomalies included): the
//! *envelope* of "like yesterday" a bucket may fall in without being news.

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
    /// Mean value the owner showed in each hour on its last two visits (the last one
    /// first), anomalies included; NaN until seen. Profiles saved before it load empty.
    #[serde(default = "unseen_days", with = "nan_as_null")]
    days: [[f32; 24]; 2],
    /// The hour being visited: its slot, its sum and its buckets so far.
    #[serde(default)]
    hour: (u8, f32, u16),
}

impl Default for Seasonality {
    fn default() -> Self {
        Seasonality {
            slots: [0.0; 24],
            visits: [0; 24],
            first_timestamp: i64::MAX,
            last_timestamp: i64::MIN,
            days: unseen_days(),
            hour: (0, 0.0, 0),
        }
    }
}

fn unseen_days() -> [[f32; 24]; 2] {
    [[f32::NAN; 24]; 2]
}

/// JSON has no NaN: an hour never seen is saved as `null`.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Days = [[f32; 24]; 2];

    pub fn serialize<S: Serializer>(days: &Days, serializer: S) -> Result<S::Ok, S::Error> {
        let saved: Vec<Vec<Option<f32>>> = days
            .iter()
            .map(|day| day.iter().map(|v| v.is_finite().then_some(*v)).collect())
            .collect();
        saved.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Days, D::Error> {
        let saved = Vec::<Vec<Option<f32>>>::deserialize(deserializer)?;
        let mut days = super::unseen_days();
        for (day, values) in days.iter_mut().zip(saved) {
            for (slot, value) in day.iter_mut().zip(values) {
                *slot = value.unwrap_or(f32::NAN);
            }
        }
        Ok(days)
    }
}

impl Seasonality {
    pub(super) fn slot(timestamp: i64) -> usize {
        (timestamp.rem_euclid(86_400) / 3_600) as usize
    }

    /// Learns from one bucket of the service's own series: `value` is what the profile
    /// may learn (the expectation where the bucket was anomalous), `shown` what it was.
    pub fn observe(&mut self, timestamp: i64, value: f64, shown: f64) {
        if !value.is_finite() {
            return;
        }
        let slot = Self::slot(timestamp);
        self.remember_hour(slot, shown);
        self.visits[slot] = self.visits[slot].saturating_add(1);
        let weight = (1.0 / f64::from(self.visits[slot])).max(SLOT_WEIGHT);
        let current = f64::from(self.slots[slot]);
        self.slots[slot] = (current + weight * (value - current)) as f32;
        self.first_timestamp = self.first_timestamp.min(timestamp);
        self.last_timestamp = self.last_timestamp.max(timestamp);
    }

    /// Adds a bucket to the hour being visited; when a new hour begins, the finished one
    /// becomes the last visit of its slot (and the one before moves back a day).
    fn remember_hour(&mut self, slot: usize, shown: f64) {
        let (current, sum, buckets) = self.hour;
        if usize::from(current) != slot && buckets > 0 {
            let done = usize::from(current) % 24;
            self.days[1][done] = self.days[0][done];
            self.days[0][done] = sum / f32::from(buckets);
            self.hour = (slot as u8, 0.0, 0);
        }
        let (_, sum, buckets) = self.hour;
        self.hour = (slot as u8, sum + shown as f32, buckets.saturating_add(1));
    }

    /// The values the owner showed around this time of day on its last two days — the
    /// hour before, this hour and the hour after — as (lowest, highest) hourly means;
    /// `None` before any full hour. A pattern seen yesterday at about this time is no
    /// news today (a ramp that starts a little earlier is still the same ramp). Today's
    /// own hours never count: the hour before was last visited today, so its previous
    /// visit is taken — else an outage an hour old would explain itself.
    pub fn envelope(&self, timestamp: i64) -> Option<(f64, f64)> {
        let slot = Self::slot(timestamp);
        let (before, after) = ((slot + 23) % 24, (slot + 1) % 24);
        // The hour before is today's once it is over (it is no longer being visited).
        let yesterday_before = if usize::from(self.hour.0) == before {
            0
        } else {
            1
        };
        let shown = [
            self.days[yesterday_before][before],
            self.days[0][slot],
            self.days[1][slot],
            self.days[0][after],
            self.days[1][after],
        ];
        shown
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(None, |range, v| {
                let v = f64::from(v);
                Some(range.map_or((v, v), |(low, high): (f64, f64)| (low.min(v), high.max(v))))
            })
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
            let value = if hour < 12 { 10.0 } else { 30.0 };
            season.observe(minute * MINUTE, value, value);
        }
        assert!((season.factor(6 * 3_600) - 0.5).abs() < 0.05);
        assert!((season.factor(18 * 3_600) - 1.5).abs() < 0.05);
    }

    #[test]
    fn the_envelope_holds_what_the_last_two_days_showed_around_this_hour() {
        let mut season = Seasonality::default();
        assert_eq!(season.envelope(0), None);
        // Day 0: 10 a minute, but 40 from 08:00 to 09:00 (kept out of the profile).
        for minute in 0..1_440 {
            let shown = if (480..540).contains(&minute) {
                40.0
            } else {
                10.0
            };
            season.observe(minute * MINUTE, 10.0, shown);
        }
        let at = |hour: i64, minute: i64| (hour * 60 + minute) * MINUTE + 86_400;
        assert_eq!(season.envelope(at(8, 30)), Some((10.0, 40.0)));
        assert_eq!(
            season.envelope(at(7, 10)),
            Some((10.0, 40.0)),
            "an hour early"
        );
        assert_eq!(season.envelope(at(14, 0)), Some((10.0, 10.0)));
        // Today's 08:00 hour, once over, does not explain 09:00 today (only yesterday's
        // 08:00 would, and there was none).
        for minute in 1_440..1_440 + 540 {
            let shown = if minute >= 1_440 + 480 { 0.0 } else { 10.0 };
            season.observe(minute * MINUTE, 10.0, shown);
        }
        assert_eq!(season.envelope(at(9, 0)), Some((10.0, 40.0)), "not 0");
        season.observe(at(9, 0), 10.0, 10.0);
        assert_eq!(season.envelope(at(9, 1)), Some((10.0, 40.0)), "still not 0");
        // Saved and loaded, the hours never seen stay unseen.
        let saved = serde_json::to_string(&Seasonality::default()).unwrap();
        let loaded: Seasonality = serde_json::from_str(&saved).unwrap();
        assert_eq!(loaded.envelope(0), None);
        let saved = serde_json::to_string(&season).unwrap();
        let loaded: Seasonality = serde_json::from_str(&saved).unwrap();
        assert_eq!(loaded.envelope(at(9, 1)), Some((10.0, 40.0)));
    }
}
