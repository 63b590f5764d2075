//! `seismo eval nab`: the detector over the whole NAB corpus, in one or both modes.
//!
//! ```text
//!  Corpus::load(<nab>)
//!     │ for each mode: replay::scores over every file (one thread per core)
//!     ▼
//!  <out>/<mode>/seismo/<category>/seismo_<file>.csv     (NAB results layout)
//!     │ FileParts per file (probation, windows)
//!     ▼
//!  for each subset (all, tuning half, held-out half, realTweets): one Sweep,
//!  then for each profile its own best threshold → Report
//! ```
//!
//! Modes: `like-for-like` gives the detector what published NAB entries get (the file's
//! whole-range min/max and the probation length); `causal` gives it nothing a live system
//! would not have. Results always go to `<out>/<mode>/`, whichever modes run, so a results
//! folder never changes meaning with the flags.
//!
//! The halves: within each category, files in name order alternate between the tuning
//! half (1st, 3rd, …) and the held-out half (2nd, 4th, …). Fixed, so a threshold or a
//! parameter tuned on one half can be checked on the other.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::corpus::{self, Corpus, DataFile, NabError};
use super::parallel;
use super::replay;
use super::scorer::{probation_length, FileParts, Outcome, Sweep};
use crate::detect::anomaly::Sensitivity;
use crate::detect::series::ValueKind;

/// The category whose files are counts (mentions per 5 minutes), like error counts.
pub const COUNT_CATEGORY: &str = "realTweets";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    LikeForLike,
    Causal,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::LikeForLike => "like-for-like",
            Self::Causal => "causal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subset {
    All,
    Tuning,
    HeldOut,
    #[serde(rename = "realTweets")]
    RealTweets,
}

impl Subset {
    pub const EVERY: [Subset; 4] = [Self::All, Self::Tuning, Self::HeldOut, Self::RealTweets];

    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Tuning => "tuning",
            Self::HeldOut => "held-out",
            Self::RealTweets => COUNT_CATEGORY,
        }
    }

    /// `position` is the file's index among the files of its category, in name order.
    fn holds(self, file: &DataFile, position: usize) -> bool {
        match self {
            Self::All => true,
            Self::Tuning => position.is_multiple_of(2),
            Self::HeldOut => !position.is_multiple_of(2),
            Self::RealTweets => file.category == COUNT_CATEGORY,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub nab: PathBuf,
    pub out: PathBuf,
    pub sensitivity: Sensitivity,
    pub modes: Vec<Mode>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub sensitivity: Sensitivity,
    pub files: usize,
    pub rows: usize,
    pub modes: Vec<ModeReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub mode: Mode,
    /// The NAB results folder of this mode (holds `seismo/<category>/…`).
    pub results: PathBuf,
    pub profiles: Vec<ProfileReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    pub profile: String,
    pub subsets: Vec<SubsetReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubsetReport {
    pub subset: Subset,
    pub files: usize,
    pub windows: usize,
    #[serde(flatten)]
    pub outcome: Outcome,
}

pub fn run(options: &Options) -> Result<Report, NabError> {
    let corpus = Corpus::load(&options.nab)?;
    let positions = category_positions(&corpus.files);
    let mut modes = Vec::new();
    for &mode in &options.modes {
        let results = results_dir(&options.out, mode);
        let scores = parallel::map(&corpus.files, |file| {
            replay::scores(
                &file.points(),
                &replay_options(file, mode, options.sensitivity),
            )
        });
        for (file, file_scores) in corpus.files.iter().zip(&scores) {
            corpus::write_results(&results, file, file_scores)?;
        }
        let parts: Vec<FileParts> = corpus
            .files
            .iter()
            .zip(&scores)
            .map(|(file, file_scores)| FileParts::new(file_scores, &file.windows))
            .collect();
        let profiles = score_profiles(&corpus, &parts, &positions);
        modes.push(ModeReport {
            mode,
            results,
            profiles,
        });
    }
    Ok(Report {
        sensitivity: options.sensitivity,
        files: corpus.files.len(),
        rows: corpus.files.iter().map(|f| f.rows.len()).sum(),
        modes,
    })
}

/// What the detector is told about one file in one mode.
pub fn replay_options(file: &DataFile, mode: Mode, sensitivity: Sensitivity) -> replay::Options {
    let kind = if file.category == COUNT_CATEGORY {
        ValueKind::Count
    } else {
        ValueKind::Continuous
    };
    let (range, probation) = match mode {
        Mode::LikeForLike => (file.range(), Some(probation_length(file.rows.len()))),
        Mode::Causal => (None, None),
    };
    replay::Options {
        sensitivity,
        kind,
        range,
        probation,
    }
}

/// Each file's index among the files of its category (files are sorted by category).
fn category_positions(files: &[DataFile]) -> Vec<usize> {
    let mut positions = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        let same_before = index > 0 && files[index - 1].category == file.category;
        positions.push(if same_before {
            positions[index - 1] + 1
        } else {
            0
        });
    }
    positions
}

fn score_profiles(corpus: &Corpus, parts: &[FileParts], positions: &[usize]) -> Vec<ProfileReport> {
    let sweeps: Vec<(Subset, usize, Sweep)> = Subset::EVERY
        .iter()
        .map(|&subset| {
            let members: Vec<&FileParts> = corpus
                .files
                .iter()
                .zip(parts)
                .zip(positions)
                .filter(|((file, _), &position)| subset.holds(file, position))
                .map(|((_, part), _)| part)
                .collect();
            (subset, members.len(), Sweep::new(members))
        })
        .collect();
    corpus
        .profiles
        .iter()
        .map(|profile| ProfileReport {
            profile: profile.name.clone(),
            subsets: sweeps
                .iter()
                .map(|(subset, files, sweep)| SubsetReport {
                    subset: *subset,
                    files: *files,
                    windows: sweep.windows(),
                    outcome: sweep.best(&profile.costs),
                })
                .collect(),
        })
        .collect()
}

/// Where a mode's results land, for callers that print it.
pub fn results_dir(out: &Path, mode: Mode) -> PathBuf {
    out.join(mode.name())
}
