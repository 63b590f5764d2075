//! `seismo eval csv`: the detector over one recorded count series, as it would have run
//! live (causal: no range, no probation; counts).
//!
//! ```text
//!  timestamp,count[,requests]     (timestamp: RFC 3339 or Unix seconds; header optional)
//!     │ parse: one-line errors "line N: reason"
//!     ▼
//!  Recorded ── points() ──► replay::scores ──► write(): the input columns + anomaly_score
//!                                          └─► Summary (points, alerts, episodes)
//! ```

use std::fmt::Write as _;

use chrono::DateTime;
use serde::Serialize;

use super::episodes;
use super::replay;
use crate::detect::anomaly::Sensitivity;
use crate::detect::series::{Point, ValueKind};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsvError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("no data rows")]
    Empty,
}

/// One input row: the text as read (written back unchanged) and the point it means.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    timestamp: String,
    count: String,
    requests: Option<String>,
    point: Point,
}

/// A parsed series; every row has a `requests` column or none does.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    rows: Vec<Row>,
    has_requests: bool,
}

impl Recorded {
    pub fn parse(text: &str) -> Result<Self, CsvError> {
        let mut rows = Vec::new();
        let mut columns = None;
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || (rows.is_empty() && is_header(line)) {
                continue;
            }
            let fail = |reason: String| CsvError::Line {
                line: line_number,
                reason,
            };
            let row = parse_row(line).map_err(fail)?;
            let width = 2 + usize::from(row.requests.is_some());
            let expected = *columns.get_or_insert(width);
            if expected != width {
                return Err(fail(format!(
                    "{width} columns, the rows above have {expected}"
                )));
            }
            if let Some(previous) = rows.last().map(|r: &Row| r.point.timestamp) {
                if row.point.timestamp < previous {
                    return Err(fail("timestamp is earlier than the line above".into()));
                }
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err(CsvError::Empty);
        }
        Ok(Self {
            has_requests: columns == Some(3),
            rows,
        })
    }

    pub fn points(&self) -> Vec<Point> {
        self.rows.iter().map(|row| row.point).collect()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The detector as production runs it on a live count series.
    pub fn replay(&self, sensitivity: Sensitivity) -> Vec<f64> {
        let options = replay::Options {
            sensitivity,
            kind: ValueKind::Count,
            range: None,
            probation: None,
        };
        replay::scores(&self.points(), &options)
    }

    /// The input columns as read, then `anomaly_score`.
    pub fn write(&self, scores: &[f64]) -> String {
        let mut out = String::with_capacity(self.rows.len() * 40);
        out.push_str(if self.has_requests {
            "timestamp,count,requests,anomaly_score\n"
        } else {
            "timestamp,count,anomaly_score\n"
        });
        for (row, score) in self.rows.iter().zip(scores) {
            // Writing into a String cannot fail.
            let _ = match &row.requests {
                Some(requests) => {
                    writeln!(out, "{},{},{requests},{score}", row.timestamp, row.count)
                }
                None => writeln!(out, "{},{},{score}", row.timestamp, row.count),
            };
        }
        out
    }

    pub fn summarize(&self, scores: &[f64], threshold: f64) -> Summary {
        let alerts = episodes::episodes(scores, threshold);
        let counts = self.rows.iter().map(|row| row.point.value);
        Summary {
            points: self.rows.len(),
            first: self.rows.first().map(|r| r.timestamp.clone()),
            last: self.rows.last().map(|r| r.timestamp.clone()),
            total_count: counts.clone().sum(),
            max_count: counts.fold(0.0, f64::max),
            max_score: scores.iter().copied().fold(0.0, f64::max),
            threshold,
            points_alerting: scores.iter().filter(|&&s| s >= threshold).count(),
            episodes: alerts.len(),
            first_alert: alerts
                .first()
                .and_then(|episode| self.rows.get(episode.start))
                .map(|row| row.timestamp.clone()),
        }
    }
}

/// What a user wants to know at a glance about a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub points: usize,
    pub first: Option<String>,
    pub last: Option<String>,
    pub total_count: f64,
    pub max_count: f64,
    pub max_score: f64,
    pub threshold: f64,
    /// Points whose score is ≥ the threshold.
    pub points_alerting: usize,
    /// Runs of consecutive alerting points: what would page someone.
    pub episodes: usize,
    pub first_alert: Option<String>,
}

fn is_header(line: &str) -> bool {
    line.split(',')
        .next()
        .is_some_and(|first| first.trim().eq_ignore_ascii_case("timestamp"))
}

fn parse_row(line: &str) -> Result<Row, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let (timestamp, count, requests) = match fields.as_slice() {
        [t, c] => (*t, *c, None),
        [t, c, r] => (*t, *c, Some(*r)),
        _ => {
            return Err(format!(
                "expected `timestamp,count[,requests]`, found {} columns",
                fields.len()
            ))
        }
    };
    let point = Point {
        timestamp: parse_timestamp(timestamp)?,
        value: parse_count(count, "count")?,
        requests: requests.map(|r| parse_count(r, "requests")).transpose()?,
        traffic: None,
    };
    Ok(Row {
        timestamp: timestamp.to_owned(),
        count: count.to_owned(),
        requests: requests.map(str::to_owned),
        point,
    })
}

fn parse_timestamp(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp())
        .map_err(|_| format!("timestamp `{text}` is neither RFC 3339 nor Unix seconds"))
}

fn parse_count(text: &str, column: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("{column} `{text}` is not a non-negative number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_unix_seconds_with_or_without_requests() {
        let two =
            Recorded::parse("timestamp,count\n2026-01-05T00:00:00Z,3\n1767571260,0\n").unwrap();
        assert_eq!(
            two.points(),
            vec![
                Point {
                    timestamp: 1_767_571_200,
                    value: 3.0,
                    requests: None,
                    traffic: None,
                },
                Point {
                    timestamp: 1_767_571_260,
                    value: 0.0,
                    requests: None,
                    traffic: None,
                },
            ]
        );
        let three = Recorded::parse("1767571200,1,10\n1767571260,2,12\n").unwrap();
        assert_eq!(three.points()[1].requests, Some(12.0));
        assert_eq!(
            three.write(&[0.0, 0.25]),
            "timestamp,count,requests,anomaly_score\n1767571200,1,10,0\n1767571260,2,12,0.25\n"
        );
    }

    #[test]
    fn bad_input_is_one_line_with_its_line_number() {
        let error = |text: &str| Recorded::parse(text).unwrap_err().to_string();
        assert_eq!(
            error("timestamp,count\n1,2\nnoon,3\n"),
            "line 3: timestamp `noon` is neither RFC 3339 nor Unix seconds"
        );
        assert_eq!(
            error("1,-2\n"),
            "line 1: count `-2` is not a non-negative number"
        );
        assert_eq!(
            error("1,2\n2,3,4\n"),
            "line 2: 3 columns, the rows above have 2"
        );
        assert_eq!(
            error("5,1\n4,1\n"),
            "line 2: timestamp is earlier than the line above"
        );
        assert_eq!(
            error("1\n"),
            "line 1: expected `timestamp,count[,requests]`, found 1 columns"
        );
        assert_eq!(error("timestamp,count\n"), "no data rows");
    }

    #[test]
    fn the_summary_counts_alerting_points_and_episodes() {
        let recorded = Recorded::parse("1,1\n2,9\n3,9\n4,1\n5,9\n").unwrap();
        let summary = recorded.summarize(&[0.0, 0.7, 0.9, 0.1, 0.5], 0.5);
        assert_eq!(summary.points_alerting, 3);
        assert_eq!(summary.episodes, 2);
        assert_eq!(summary.first_alert.as_deref(), Some("2"));
        assert_eq!(summary.total_count, 29.0);
    }
}
