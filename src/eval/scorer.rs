//! NAB's scoring rules and the threshold sweep.
//!
//! ```text
//!  scores of one file + its windows (row ranges)
//!     │ FileParts::new: drop the probation rows, give every other row the weight it earns
//!     │                 if detected (in a window: the TP sigmoid; outside: the FP sigmoid)
//!     ▼
//!  Sweep::new(files of a subset)    all candidate rows of the subset, by score, descending
//!     │ Sweep::best(costs)          lower the threshold one distinct score at a time,
//!     ▼                             keeping the raw score up to date in O(1) per row
//!  Outcome   threshold, raw / null / perfect, normalised score, TP / FP / FN
//! ```
//!
//! The rules, as NAB's scorer applies them (numenta/NAB `nab/sweeper.py`):
//! - the first `min(floor(0.15 N), 750)` rows of a file are probation: never scored;
//! - a detection is a row whose score is ≥ the threshold;
//! - in a window `[first, last]` only the earliest detection counts, worth
//!   `tpWeight · σ(pos) / σ(-1)` with `pos = -(last - i + 1) / (last - first + 1)`;
//! - a window without detection costs `fnWeight`;
//! - a detection outside every window costs `fpWeight · σ(pos)` (σ < 0 there) with
//!   `pos = (i - last of the previous window) / (length of that window - 1)`, or the full
//!   `fpWeight` when no window precedes it;
//! - `σ(x) = 2 / (1 + e^(5x)) - 1` (a scaled sigmoid), and `-1` from `x ≥ 3` on.
//!
//! One threshold per profile over a whole set of files, the one with the best raw score;
//! normalised `100 · (raw - null) / (perfect - null)`, null = never detecting
//! (`-fnWeight` per window), perfect = `tpWeight` per window.
//!
//! TP and FN count windows; FP counts detections (rows) outside every window.

use serde::Serialize;

/// The weights of a NAB cost profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostMatrix {
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

/// NAB: 15 % of the file, at most 15 % of 5000 rows.
pub fn probation_length(rows: usize) -> usize {
    (rows * 15 / 100).min(750)
}

/// NAB's scaled sigmoid: +0.987 at the start of a window, 0 at its end, → -1 past it.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// What one scorable row earns when it is a detection.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// In window `window` (numbered within the file): its TP weight, 1.0 for the first row.
    Window { window: usize, share: f64 },
    /// Outside every window: σ of its distance past the previous window (≤ 0).
    Outside { share: f64 },
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f64,
    row: usize,
    place: Place,
}

/// One file ready to score: its scorable rows and how many windows can be scored.
#[derive(Debug, Clone)]
pub struct FileParts {
    candidates: Vec<Candidate>,
    windows: usize,
}

impl FileParts {
    /// `windows` are inclusive row ranges in order, not overlapping.
    pub fn new(scores: &[f64], windows: &[(usize, usize)]) -> Self {
        let probation = probation_length(scores.len());
        let mut candidates = Vec::with_capacity(scores.len().saturating_sub(probation));
        let mut scored_windows = vec![false; windows.len()];
        for (row, &score) in scores.iter().enumerate().skip(probation) {
            let place = place(row, windows);
            if let Place::Window { window, .. } = place {
                scored_windows[window] = true;
            }
            // A NaN score is never a detection: it ranks below everything.
            let score = if score.is_nan() {
                f64::NEG_INFINITY
            } else {
                score
            };
            candidates.push(Candidate { score, row, place });
        }
        // A window lying wholly in probation is not scored, as in NAB; renumber the others.
        let renumber = renumbering(&scored_windows);
        for candidate in &mut candidates {
            if let Place::Window { window, .. } = &mut candidate.place {
                *window = renumber[*window];
            }
        }
        Self {
            candidates,
            windows: scored_windows.iter().filter(|&&s| s).count(),
        }
    }

    /// The raw score at one threshold, rule by rule (the sweep must agree with it).
    pub fn raw_at(&self, costs: &CostMatrix, threshold: f64) -> f64 {
        let mut earliest: Vec<Option<f64>> = vec![None; self.windows];
        let mut raw = 0.0;
        for candidate in self.candidates.iter().filter(|c| c.score >= threshold) {
            match candidate.place {
                Place::Outside { share } => raw += costs.fp * share,
                // Rows come in order, so the first seen is the earliest.
                Place::Window { window, share } => {
                    earliest[window].get_or_insert(share);
                }
            }
        }
        for share in earliest {
            raw += match share {
                Some(share) => costs.tp * share,
                None => -costs.fn_,
            };
        }
        raw
    }
}

fn place(row: usize, windows: &[(usize, usize)]) -> Place {
    let mut previous: Option<(usize, usize)> = None;
    for (index, &(first, last)) in windows.iter().enumerate() {
        if row < first {
            break;
        }
        if row <= last {
            let length = (last - first + 1) as f64;
            let position = -((last - row + 1) as f64) / length;
            let share = scaled_sigmoid(position) / scaled_sigmoid(-1.0);
            return Place::Window {
                window: index,
                share,
            };
        }
        previous = Some((first, last));
    }
    let position = match previous {
        // A one-row window has no length to scale by: NAB would divide by zero.
        Some((first, last)) if last > first => (row - last) as f64 / (last - first) as f64,
        _ => 3.0,
    };
    Place::Outside {
        share: scaled_sigmoid(position),
    }
}

fn renumbering(scored: &[bool]) -> Vec<usize> {
    let mut next = 0;
    scored
        .iter()
        .map(|&s| {
            let number = next;
            next += usize::from(s);
            number
        })
        .collect()
}

/// The result of the threshold sweep for one profile over one set of files.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outcome {
    /// The chosen threshold; `None` when never detecting scores best.
    pub threshold: Option<f64>,
    pub raw: f64,
    pub null: f64,
    pub perfect: f64,
    /// `None` when the files have no window (perfect = null).
    pub score: Option<f64>,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
}

/// The scorable rows of a set of files, sorted once, swept once per profile.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Window numbers are global to the set; rows keep their file-local index, which only
    /// matters between rows of the same window.
    candidates: Vec<Candidate>,
    windows: usize,
}

impl Sweep {
    pub fn new<'a>(files: impl IntoIterator<Item = &'a FileParts>) -> Self {
        let mut candidates = Vec::new();
        let mut windows = 0;
        for file in files {
            candidates.extend(file.candidates.iter().map(|&c| offset(c, windows)));
            windows += file.windows;
        }
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        Self {
            candidates,
            windows,
        }
    }

    /// How many windows the files hold (those not wholly in probation).
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Lowers the threshold through every distinct score and keeps the best raw score;
    /// on a tie the higher threshold wins (fewer alerts for the same score).
    pub fn best(&self, costs: &CostMatrix) -> Outcome {
        let windows = self.windows as f64;
        let (null, perfect) = (-costs.fn_ * windows, costs.tp * windows);
        let mut state = SweepState::new(self.windows, null);
        let mut best = state.outcome(None);
        for group in self.candidates.chunk_by(|a, b| a.score == b.score) {
            for candidate in group {
                state.detect(candidate, costs);
            }
            if state.raw > best.raw && group[0].score.is_finite() {
                best = state.outcome(Some(group[0].score));
            }
        }
        best.null = null;
        best.perfect = perfect;
        best.score = (perfect > null).then(|| 100.0 * (best.raw - null) / (perfect - null));
        best
    }
}

fn offset(mut candidate: Candidate, windows: usize) -> Candidate {
    if let Place::Window { window, .. } = &mut candidate.place {
        *window += windows;
    }
    candidate
}

/// The raw score and counts at the current threshold.
struct SweepState {
    /// Per window: the row and share of its earliest detection so far.
    earliest: Vec<Option<(usize, f64)>>,
    raw: f64,
    true_positives: usize,
    false_positives: usize,
}

impl SweepState {
    fn new(windows: usize, null: f64) -> Self {
        Self {
            earliest: vec![None; windows],
            raw: null,
            true_positives: 0,
            false_positives: 0,
        }
    }

    fn detect(&mut self, candidate: &Candidate, costs: &CostMatrix) {
        match candidate.place {
            Place::Outside { share } => {
                self.raw += costs.fp * share;
                self.false_positives += 1;
            }
            Place::Window { window, share } => match self.earliest[window] {
                None => {
                    self.raw += costs.fn_ + costs.tp * share;
                    self.true_positives += 1;
                    self.earliest[window] = Some((candidate.row, share));
                }
                Some((row, old)) if candidate.row < row => {
                    self.raw += costs.tp * (share - old);
                    self.earliest[window] = Some((candidate.row, share));
                }
                Some(_) => {}
            },
        }
    }

    fn outcome(&self, threshold: Option<f64>) -> Outcome {
        Outcome {
            threshold,
            raw: self.raw,
            null: 0.0,
            perfect: 0.0,
            score: None,
            true_positives: self.true_positives,
            false_positives: self.false_positives,
            false_negatives: self.earliest.len() - self.true_positives,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: CostMatrix = CostMatrix {
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// σ(x) = 2 / (1 + e^(5x)) - 1, computed independently of `scaled_sigmoid`.
    fn sigma(x: f64) -> f64 {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }

    /// 20 rows → probation = floor(0.15 · 20) = 3 rows (0, 1, 2).
    /// Windows (inclusive rows): A = [5, 8] (length 4), B = [14, 15] (length 2).
    /// Scores ≥ 0.5 (the threshold below) at rows:
    ///   1  — in probation: ignored (else it would cost the full -0.11);
    ///   4  — before any window: σ = -1 → -0.11;
    ///   6, 7 in A — only the earliest (6) counts: pos = -(8 - 6 + 1)/4 = -0.75,
    ///        weight σ(-0.75)/σ(-1) (row 7 alone would give σ(-0.5)/σ(-1));
    ///   10 — after A: pos = (10 - 8)/(4 - 1) = 2/3 → 0.11 · σ(2/3);
    ///   B has no detection → -1.
    ///
    /// raw = -0.11 + σ(-0.75)/σ(-1) + 0.11·σ(2/3) - 1
    ///     = -0.11 + 0.95405 / 0.98661 + 0.11·(-0.93111) - 1 ≈ -0.24543
    /// null = -2 (two windows missed), perfect = +2
    /// normalised = 100 · (raw + 2) / 4 ≈ 43.86
    #[test]
    fn nab_rules_on_a_hand_computed_case() {
        let mut scores = vec![0.0; 20];
        for row in [1, 4, 6, 7, 10] {
            scores[row] = 0.9;
        }
        // Below the threshold that wins: would they count, the sweep would pick 0.3.
        scores[15] = 0.3;
        scores[16] = 0.3;
        let parts = FileParts::new(&scores, &[(5, 8), (14, 15)]);
        let expected = -0.11 + sigma(-0.75) / sigma(-1.0) + 0.11 * sigma(2.0 / 3.0) - 1.0;
        assert!(close(parts.raw_at(&STANDARD, 0.5), expected));
        assert!((expected - -0.245_43).abs() < 1e-5);

        // At 0.3, B is detected at its last row (pos = -1/2, σ(-0.5)/σ(-1) = 0.85979) and
        // row 16 right after B costs 0.11·σ((16-15)/(2-1) = 1) = -0.10853: raw rises to
        // -0.24543 + 1 + 0.85979 - 0.10853 = 1.50583, normalised 100 · 3.50583 / 4 = 87.646,
        // so the sweep picks 0.3 with 2 TP, 3 FP (rows 4, 10, 16), 0 FN.
        let at_low = expected + 1.0 + sigma(-0.5) / sigma(-1.0) + 0.11 * sigma(1.0);
        let best = Sweep::new([&parts]).best(&STANDARD);
        assert_eq!(best.threshold, Some(0.3));
        assert!(close(best.raw, at_low));
        assert!(close(best.null, -2.0) && close(best.perfect, 2.0));
        assert!(close(best.score.unwrap(), 100.0 * (at_low + 2.0) / 4.0));
        assert!((best.score.unwrap() - 87.646).abs() < 1e-3);
        assert_eq!(
            (
                best.true_positives,
                best.false_positives,
                best.false_negatives
            ),
            (2, 3, 0)
        );
    }

    #[test]
    fn never_detecting_scores_zero_and_detecting_every_first_row_scores_100() {
        // 200 rows, one window: flagging every row would cost ~170 FPs of ~-0.11 each, far
        // below the null score of -1, so a constant score is best never flagged.
        let windows = [(100, 109)];
        let null = Sweep::new([&FileParts::new(&[0.0; 200], &windows)]).best(&STANDARD);
        assert_eq!(null.threshold, None);
        assert!(close(null.raw, -1.0) && close(null.score.unwrap(), 0.0));
        let mut perfect = vec![0.0; 200];
        perfect[100] = 1.0;
        let best = Sweep::new([&FileParts::new(&perfect, &windows)]).best(&STANDARD);
        assert_eq!(best.threshold, Some(1.0));
        assert!(close(best.score.unwrap(), 100.0));
    }

    #[test]
    fn on_a_short_file_flagging_every_row_can_beat_never_flagging() {
        // 20 rows, windows [5, 8] and [14, 15]: flagging all of rows 3..20 earns 2 full TPs
        // and 11 FPs worth 0.11 · (−1 −1 + σ(1/3) + σ(2/3) + σ(1) + σ(4/3) + σ(5/3)
        // + σ(1) + σ(2) + σ(3) + σ(4)) ≈ −1.16 (σ = −1 from 3 on), so raw ≈ 0.84 > −2:
        // NAB's rules reward it too.
        let best = Sweep::new([&FileParts::new(&[0.0; 20], &[(5, 8), (14, 15)])]).best(&STANDARD);
        assert_eq!(best.threshold, Some(0.0));
        let fp: f64 = [
            3.0,
            3.0,
            1.0 / 3.0,
            2.0 / 3.0,
            1.0,
            4.0 / 3.0,
            5.0 / 3.0,
            1.0,
            2.0,
            3.0,
            4.0,
        ]
        .iter()
        .map(|&x| if x >= 3.0 { -1.0 } else { sigma(x) })
        .sum();
        assert!(close(best.raw, 2.0 + 0.11 * fp));
        assert!((best.raw - 0.83582).abs() < 1e-5);
    }

    #[test]
    fn a_window_inside_probation_is_not_scored() {
        // 20 rows, probation 3: the window [0, 2] cannot be detected nor missed.
        let parts = FileParts::new(&[0.0; 20], &[(0, 2), (10, 12)]);
        let best = Sweep::new([&parts]).best(&STANDARD);
        assert!(close(best.null, -1.0));
    }

    #[test]
    fn the_sweep_agrees_with_the_direct_rules_at_every_threshold() {
        // A deterministic jumble of scores over 3 files; every distinct score is checked.
        let files: Vec<FileParts> = (0..3)
            .map(|f| {
                let scores: Vec<f64> = (0..200)
                    .map(|i| ((i * 37 + f * 11) % 23) as f64 / 22.0)
                    .collect();
                FileParts::new(&scores, &[(40, 60), (100, 101), (150, 190)])
            })
            .collect();
        let sweep = Sweep::new(&files);
        let best = sweep.best(&STANDARD);
        let mut best_direct = f64::NEG_INFINITY;
        for step in 0..=23 {
            let threshold = step as f64 / 22.0;
            let raw: f64 = files.iter().map(|f| f.raw_at(&STANDARD, threshold)).sum();
            best_direct = best_direct.max(raw);
        }
        assert!(close(best.raw, best_direct));
        let at = files
            .iter()
            .map(|f| f.raw_at(&STANDARD, best.threshold.unwrap()))
            .sum::<f64>();
        assert!(close(best.raw, at));
    }

    #[test]
    fn the_scaled_sigmoid_matches_nab_landmarks() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert!(close(scaled_sigmoid(0.0), 0.0));
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert!(close(scaled_sigmoid(3.0), -1.0));
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750() {
        assert_eq!(probation_length(20), 3);
        assert_eq!(probation_length(4032), 604);
        assert_eq!(probation_length(22_695), 750);
    }
}
