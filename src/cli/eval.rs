//! `seismo eval nab | csv | synthetic`: the detector replayed offline. No database, no
//! config: these read files, call `eval`, and print a table (or JSON).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::detect::anomaly::Sensitivity;
use crate::eval::csv_replay::Recorded;
use crate::eval::live_cases::{self, LiveMetrics};
use crate::eval::nab::{self, Mode};
use crate::eval::scorer::Outcome;
use crate::eval::synthetic::{self, AlertRule, Metrics, Settings};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score the detector on the Numenta Anomaly Benchmark (NAB rules, three profiles).
    ///
    /// Results are written in NAB's layout under <OUT>/<mode>/seismo/<category>/, one
    /// folder per mode. The tuning and held-out halves alternate files in name order
    /// within each category (1st, 3rd, … tune; 2nd, 4th, … held out); each subset gets
    /// its own threshold.
    Nab(NabArgs),
    /// Replay the detector over one recorded count series: timestamp,count[,requests].
    Csv(CsvArgs),
    /// Generate seeded error-count streams with labelled anomalies and measure the alerts.
    Synthetic(SyntheticArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SensitivityArg {
    Low,
    Medium,
    High,
}

impl From<SensitivityArg> for Sensitivity {
    fn from(arg: SensitivityArg) -> Self {
        match arg {
            SensitivityArg::Low => Self::Low,
            SensitivityArg::Medium => Self::Medium,
            SensitivityArg::High => Self::High,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// What published NAB entries get: each file's min/max and the probation length.
    LikeForLike,
    /// Only what a live system has.
    Causal,
    Both,
}

impl ModeArg {
    fn modes(self) -> Vec<Mode> {
        match self {
            Self::LikeForLike => vec![Mode::LikeForLike],
            Self::Causal => vec![Mode::Causal],
            Self::Both => vec![Mode::LikeForLike, Mode::Causal],
        }
    }
}

#[derive(Debug, Args)]
pub struct NabArgs {
    /// The NAB folder (holds data/, labels/, config/).
    #[arg(long, default_value = "../shared/nab")]
    nab: PathBuf,
    /// Where to write the results (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "medium")]
    sensitivity: SensitivityArg,
    #[arg(long, value_enum, default_value = "both")]
    mode: ModeArg,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CsvArgs {
    /// The input: `timestamp,count[,requests]`, timestamps RFC 3339 or Unix seconds.
    file: PathBuf,
    /// Write the input columns plus `anomaly_score` here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "medium")]
    sensitivity: SensitivityArg,
    /// The alert rule of the summary: a point alerts when its score is ≥ this.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Which seeded streams `eval synthetic` generates.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CasesArg {
    /// 7 days of low-count error streams with bursts, level shifts, drops, new issues.
    Classic,
    /// Fresh series, daily rhythms, slow ramps and error-ratio jumps (`--series` of each).
    Live,
}

#[derive(Debug, Args)]
pub struct SyntheticArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value = "classic")]
    cases: CasesArg,
    #[arg(long, default_value_t = 200)]
    series: usize,
    #[arg(long, default_value_t = 7)]
    days: usize,
    /// A point alerts when its score is ≥ this.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Minutes after an anomaly ends during which an alert still counts as caused by it.
    #[arg(long, default_value_t = 10)]
    grace: usize,
    #[arg(long, value_enum, default_value = "medium")]
    sensitivity: SensitivityArg,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs on the caller's thread: the work is CPU-bound, spreads over scoped threads, and
/// nothing else shares the runtime during `eval`.
pub fn run(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Nab(args) => run_nab(args),
        EvalCommand::Csv(args) => run_csv(args),
        EvalCommand::Synthetic(args) => run_synthetic(args),
    }
}

fn run_nab(args: NabArgs) -> anyhow::Result<()> {
    let options = nab::Options {
        nab: args.nab,
        out: args.out,
        sensitivity: args.sensitivity.into(),
        modes: args.mode.modes(),
    };
    let report = nab::run(&options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_nab(&report);
    }
    Ok(())
}

fn print_nab(report: &nab::Report) {
    println!(
        "NAB: {} files, {} rows, sensitivity {}",
        report.files,
        report.rows,
        sensitivity_name(report.sensitivity)
    );
    for mode in &report.modes {
        println!();
        println!(
            "mode {} (results in {})",
            mode.mode.name(),
            mode.results.display()
        );
        println!(
            "{:<20} {:<11} {:>5} {:>7} {:>9} {:>7} {:>9} {:>4} {:>6} {:>4}",
            "profile", "subset", "files", "windows", "threshold", "score", "raw", "TP", "FP", "FN"
        );
        for profile in &mode.profiles {
            for subset in &profile.subsets {
                println!(
                    "{:<20} {:<11} {:>5} {:>7} {}",
                    profile.profile,
                    subset.subset.name(),
                    subset.files,
                    subset.windows,
                    outcome_columns(&subset.outcome)
                );
            }
        }
    }
}

fn outcome_columns(outcome: &Outcome) -> String {
    let threshold = outcome
        .threshold
        .map_or_else(|| "never".to_owned(), |t| format!("{t:.4}"));
    let score = outcome
        .score
        .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.1}"));
    format!(
        "{threshold:>9} {score:>7} {:>9.2} {:>4} {:>6} {:>4}",
        outcome.raw, outcome.true_positives, outcome.false_positives, outcome.false_negatives
    )
}

fn sensitivity_name(sensitivity: Sensitivity) -> &'static str {
    match sensitivity {
        Sensitivity::Low => "low",
        Sensitivity::Medium => "medium",
        Sensitivity::High => "high",
    }
}

fn run_csv(args: CsvArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let recorded = Recorded::parse(&text).with_context(|| args.file.display().to_string())?;
    let scores = recorded.replay(args.sensitivity.into());
    if let Some(out) = &args.out {
        write_file(out, &recorded.write(&scores))?;
    }
    let summary = recorded.summarize(&scores, args.threshold);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{} points from {} to {}",
        summary.points,
        summary.first.as_deref().unwrap_or("-"),
        summary.last.as_deref().unwrap_or("-")
    );
    println!(
        "counts: total {}, max {}",
        summary.total_count, summary.max_count
    );
    println!(
        "scores: max {:.3}; {} points ≥ {} in {} alert episodes; first alert {}",
        summary.max_score,
        summary.points_alerting,
        summary.threshold,
        summary.episodes,
        summary.first_alert.as_deref().unwrap_or("none")
    );
    if let Some(out) = &args.out {
        println!("scores written to {}", out.display());
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn run_synthetic(args: SyntheticArgs) -> anyhow::Result<()> {
    let rule = AlertRule {
        sensitivity: args.sensitivity.into(),
        threshold: args.threshold,
        grace: args.grace,
    };
    rule.validate()?;
    if let CasesArg::Live = args.cases {
        let cases = live_cases::generate(args.seed, args.series);
        let metrics = live_cases::evaluate(&cases, &rule);
        match args.json {
            true => println!("{}", serde_json::to_string_pretty(&metrics)?),
            false => print_live(args.seed, &metrics),
        }
        return Ok(());
    }
    let settings = Settings {
        seed: args.seed,
        series: args.series,
        days: args.days,
    };
    let series = synthetic::generate(&settings)?;
    let metrics = synthetic::evaluate(&series, &rule);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        print_synthetic(&settings, &metrics);
    }
    Ok(())
}

fn print_synthetic(settings: &Settings, metrics: &Metrics) {
    println!(
        "synthetic: seed {}, {} series × {} days ({} one-minute buckets); alert at score ≥ {}, grace {} min",
        settings.seed, metrics.series, settings.days, metrics.buckets, metrics.threshold, metrics.grace
    );
    println!(
        "precision {} ({} of {} alert episodes match an anomaly); {:.3} false episodes per series-day",
        percent(metrics.precision),
        metrics.true_episodes,
        metrics.episodes,
        metrics.false_episodes_per_series_day
    );
    println!(
        "recall    {} ({} of {} anomalies); median delay {}",
        percent(metrics.recall),
        metrics.detected,
        metrics.anomalies,
        minutes(metrics.median_delay)
    );
    println!(
        "{:<12} {:>9} {:>8} {:>7} {:>12}",
        "kind", "anomalies", "detected", "recall", "median delay"
    );
    for kind in &metrics.kinds {
        println!(
            "{:<12} {:>9} {:>8} {:>7} {:>12}",
            kind.kind.name(),
            kind.anomalies,
            kind.detected,
            percent(kind.recall),
            minutes(kind.median_delay)
        );
    }
}

fn print_live(seed: u64, metrics: &LiveMetrics) {
    println!(
        "synthetic live cases: seed {seed}; alert at score ≥ {}, grace {} min",
        metrics.threshold, metrics.grace
    );
    println!(
        "all: precision {}, recall {}, median delay {}",
        percent(metrics.precision),
        percent(metrics.recall),
        minutes(metrics.median_delay)
    );
    println!(
        "{:<10} {:>6} {:>9} {:>8} {:>7} {:>12} {:>9} {:>10}",
        "family",
        "series",
        "anomalies",
        "detected",
        "recall",
        "median delay",
        "precision",
        "false/week"
    );
    for family in &metrics.families {
        println!(
            "{:<10} {:>6} {:>9} {:>8} {:>7} {:>12} {:>9} {:>10.3}",
            family.family.name(),
            family.series,
            family.anomalies,
            family.detected,
            percent(family.recall),
            minutes(family.median_delay),
            percent(family.precision),
            family.false_pages_per_series_week
        );
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{:.1} %", 100.0 * v))
}

fn minutes(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v} min"))
}
