//! The shape memory of a continuous series (see the module doc, 4.).

use serde::{Deserialize, Serialize};

/// Width of a cell of the shape grid, in resolutions (see [`RESOLUTION_SHARE`]): an
/// eighth of the range. (NAB tuning half, like-for-like: a tenth 60.1, an eighth 62.4,
/// a sixth 62.5, a fifth 60.0; see [`Shapes`].)
pub(super) const SHAPE_CELL: f64 = 12.5;

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
    pub(super) fn is_empty(&self) -> bool {
        *self == Shapes::default()
    }

    /// Records the shape that ends in this bucket's cell; true when it is new.
    pub(super) fn record(&mut self, value: f64, deviation: f64, cell: f64) -> bool {
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
pub(super) fn grid(x: f64, cell: f64) -> i64 {
    (x / cell).floor().clamp(-1e15, 1e15) as i64
}

/// FNV-1a over the bytes of a few integers, folded so the low bits mix the high ones.
pub(super) fn fnv1a(parts: &[i64]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^ (hash >> 29)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{gauge_after_square_wave, square_wave, step_gauge};
    use super::super::SeriesState;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    pub(super) fn a_gauge_pages_on_a_shape_only_until_it_has_shown_it() {
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
    pub(super) fn a_gauge_still_pages_on_a_shape_it_never_showed() {
        let mut state = gauge_after_square_wave(19, 3_000);
        // Mid-way through a low half, the gauge jumps to a level it never reached.
        let fired = (3_010..3_013).any(|minute| step_gauge(&mut state, minute, 95.0).fired);
        assert!(fired);
    }
}
