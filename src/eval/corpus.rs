//! The Numenta Anomaly Benchmark on disk: reading a corpus, writing results.
//!
//! ```text
//!  <nab>/data/<category>/<file>.csv       timestamp,value          → DataFile (rows as read)
//!  <nab>/labels/combined_windows.json     {"<category>/<file>.csv": [[start, end], …]}
//!                                                                  → DataFile::windows (row ranges)
//!  <nab>/config/profiles.json             {"<name>": {"CostMatrix": {…}}} → Profile
//!  <out>/seismo/<category>/seismo_<file>.csv  timestamp,value,anomaly_score (results, NAB layout)
//! ```
//!
//! Timestamps and values are kept as the text read, so a result file repeats its input
//! byte for byte in its first two columns and NAB's own tools can line them up.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::scorer::CostMatrix;
use crate::detect::series::Point;

/// NAB writes `2015-02-26 21:42:53` in data files and adds `.000000` in label files.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// The name NAB results are filed under: `<out>/seismo/<category>/seismo_<file>.csv`.
pub const DETECTOR_NAME: &str = "seismo";

#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// The reason is the source, so `{:#}` shows it once: "<path>: <io error>".
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Row {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl NabError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn file(path: &Path, reason: impl Into<String>) -> Self {
        Self::File {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One row of a data file: the text as read and its parsed meaning.
#[derive(Debug, Clone)]
pub struct Row {
    pub timestamp_text: String,
    pub value_text: String,
    pub time: NaiveDateTime,
    pub value: f64,
}

/// One data file with its label windows as inclusive row ranges.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub category: String,
    /// The file name, e.g. `Twitter_volume_AAPL.csv`.
    pub name: String,
    pub rows: Vec<Row>,
    pub windows: Vec<(usize, usize)>,
}

impl DataFile {
    /// The key of this file in `combined_windows.json`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.category, self.name)
    }

    /// The rows as detector input; NAB timestamps carry no zone and are read as UTC.
    pub fn points(&self) -> Vec<Point> {
        self.rows
            .iter()
            .map(|row| Point {
                timestamp: row.time.and_utc().timestamp(),
                value: row.value,
                requests: None,
                traffic: None,
            })
            .collect()
    }

    /// The whole-range (min, max) of the values, what the published NAB entries are given.
    pub fn range(&self) -> Option<(f64, f64)> {
        let mut values = self.rows.iter().map(|row| row.value);
        let first = values.next()?;
        Some(values.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}

/// A cost profile of `config/profiles.json`.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub costs: CostMatrix,
}

/// A whole corpus: data files sorted by category then name, and the cost profiles.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub files: Vec<DataFile>,
    pub profiles: Vec<Profile>,
}

impl Corpus {
    pub fn load(nab: &Path) -> Result<Self, NabError> {
        let mut labels = read_labels(&nab.join("labels").join("combined_windows.json"))?;
        let profiles = read_profiles(&nab.join("config").join("profiles.json"))?;
        let mut files = Vec::new();
        for (category, path) in data_paths(&nab.join("data"))? {
            let mut file = read_data_file(&path, category)?;
            let windows = labels.remove(&file.key()).ok_or_else(|| {
                NabError::file(&path, "has no entry in labels/combined_windows.json")
            })?;
            file.windows = window_rows(&file.rows, &windows);
            files.push(file);
        }
        if files.is_empty() {
            return Err(NabError::file(nab, "no data/<category>/<file>.csv files"));
        }
        Ok(Self { files, profiles })
    }
}

/// `(category, path)` of every `data/<category>/*.csv`, sorted, so runs are reproducible.
fn data_paths(data: &Path) -> Result<Vec<(String, PathBuf)>, NabError> {
    let mut found = Vec::new();
    for category in sorted_entries(data)? {
        if !category.is_dir() {
            continue; // data/README.md
        }
        let name = file_name(&category);
        for path in sorted_entries(&category)? {
            if path.extension().is_some_and(|ext| ext == "csv") {
                found.push((name.clone(), path));
            }
        }
    }
    Ok(found)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, NabError> {
    let entries = std::fs::read_dir(dir).map_err(|e| NabError::io(dir, e))?;
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NabError::io(dir, e))?;
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn read_data_file(path: &Path, category: String) -> Result<DataFile, NabError> {
    let text = std::fs::read_to_string(path).map_err(|e| NabError::io(path, e))?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim_end() == "timestamp,value" => {}
        _ => {
            return Err(NabError::file(
                path,
                "the first line must be `timestamp,value`",
            ))
        }
    }
    let mut rows = Vec::new();
    for (index, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let row = parse_row(line).map_err(|reason| NabError::Row {
            path: path.to_owned(),
            line: index + 1,
            reason,
        })?;
        rows.push(row);
    }
    Ok(DataFile {
        category,
        name: file_name(path),
        rows,
        windows: Vec::new(),
    })
}

fn parse_row(line: &str) -> Result<Row, String> {
    let (timestamp, value) = line
        .split_once(',')
        .ok_or("expected two columns `timestamp,value`")?;
    if value.contains(',') {
        return Err("expected two columns `timestamp,value`".into());
    }
    let time = parse_timestamp(timestamp)?;
    let parsed: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("value `{value}` is not a number"))?;
    if !parsed.is_finite() {
        return Err(format!("value `{value}` is not finite"));
    }
    Ok(Row {
        timestamp_text: timestamp.to_owned(),
        value_text: value.to_owned(),
        time,
        value: parsed,
    })
}

fn parse_timestamp(text: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(text.trim(), TIMESTAMP_FORMAT)
        .map_err(|_| format!("timestamp `{text}` is not `YYYY-MM-DD hh:mm:ss`"))
}

type Windows = BTreeMap<String, Vec<(NaiveDateTime, NaiveDateTime)>>;

fn read_labels(path: &Path) -> Result<Windows, NabError> {
    let text = std::fs::read_to_string(path).map_err(|e| NabError::io(path, e))?;
    let raw: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&text).map_err(|e| NabError::file(path, e.to_string()))?;
    raw.into_iter()
        .map(|(key, windows)| {
            let parsed = windows
                .iter()
                .map(|(start, end)| Ok((parse_timestamp(start)?, parse_timestamp(end)?)))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|reason| NabError::file(path, format!("{key}: {reason}")))?;
            Ok((key, parsed))
        })
        .collect()
}

/// Windows as inclusive row ranges: from the first row at or after the start, through the
/// rows that follow while they are at or before the end. A window with no row is dropped:
/// nothing could detect it, and NAB's own scorer would not count it either.
pub fn window_rows(
    rows: &[Row],
    windows: &[(NaiveDateTime, NaiveDateTime)],
) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    for &(start, end) in windows {
        let Some(first) = rows.iter().position(|row| row.time >= start) else {
            continue;
        };
        let run = rows[first..]
            .iter()
            .take_while(|row| row.time <= end)
            .count();
        if run > 0 {
            ranges.push((first, first + run - 1));
        }
    }
    ranges
}

#[derive(Deserialize)]
struct ProfileEntry {
    #[serde(rename = "CostMatrix")]
    cost_matrix: CostEntry,
}

#[derive(Deserialize)]
struct CostEntry {
    #[serde(rename = "tpWeight")]
    tp: f64,
    #[serde(rename = "fpWeight")]
    fp: f64,
    #[serde(rename = "fnWeight")]
    fn_: f64,
}

/// The profiles, `standard` first (the one published tables quote), then by name.
fn read_profiles(path: &Path) -> Result<Vec<Profile>, NabError> {
    let text = std::fs::read_to_string(path).map_err(|e| NabError::io(path, e))?;
    let raw: BTreeMap<String, ProfileEntry> =
        serde_json::from_str(&text).map_err(|e| NabError::file(path, e.to_string()))?;
    let mut profiles: Vec<Profile> = raw
        .into_iter()
        .map(|(name, entry)| Profile {
            name,
            costs: CostMatrix {
                tp: entry.cost_matrix.tp,
                fp: entry.cost_matrix.fp,
                fn_: entry.cost_matrix.fn_,
            },
        })
        .collect();
    profiles.sort_by_key(|profile| profile.name != "standard");
    if profiles.is_empty() {
        return Err(NabError::file(path, "defines no profile"));
    }
    Ok(profiles)
}

/// Writes `<root>/seismo/<category>/seismo_<file>.csv`; returns its path.
pub fn write_results(root: &Path, file: &DataFile, scores: &[f64]) -> Result<PathBuf, NabError> {
    let dir = root.join(DETECTOR_NAME).join(&file.category);
    std::fs::create_dir_all(&dir).map_err(|e| NabError::io(&dir, e))?;
    let path = dir.join(format!("{DETECTOR_NAME}_{}", file.name));
    let mut text = String::with_capacity(file.rows.len() * 40);
    text.push_str("timestamp,value,anomaly_score\n");
    for (row, score) in file.rows.iter().zip(scores) {
        // Writing into a String cannot fail.
        let _ = writeln!(text, "{},{},{score}", row.timestamp_text, row.value_text);
    }
    std::fs::write(&path, text).map_err(|e| NabError::io(&path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(times: &[&str]) -> Vec<Row> {
        times
            .iter()
            .map(|t| parse_row(&format!("{t},1")).unwrap())
            .collect()
    }

    fn at(text: &str) -> NaiveDateTime {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn nab_windows_become_inclusive_row_ranges() {
        let rows = rows(&[
            "2014-01-01 00:00:00",
            "2014-01-01 00:05:00",
            "2014-01-01 00:10:00",
            "2014-01-01 00:15:00",
        ]);
        let windows = [
            (
                at("2014-01-01 00:03:00.000000"),
                at("2014-01-01 00:10:00.000000"),
            ),
            (at("2014-01-01 00:11:00"), at("2014-01-01 00:12:00")), // no row: dropped
        ];
        assert_eq!(window_rows(&rows, &windows), vec![(1, 2)]);
    }

    #[test]
    fn bad_rows_name_the_reason() {
        assert!(parse_row("2014-01-01 00:00:00,abc")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_row("yesterday,1").unwrap_err().contains("timestamp"));
        assert!(parse_row("2014-01-01 00:00:00,1,2")
            .unwrap_err()
            .contains("two columns"));
    }
}
