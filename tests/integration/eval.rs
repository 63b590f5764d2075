//! `seismo eval` as a user runs it: the real binary over a tiny NAB-layout corpus and a
//! small recorded CSV, no database. Checks the layout and columns a user (or NAB's own
//! tools) rely on, not the detector's scores.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn seismo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seismo"))
        .args(args)
        // No database anywhere: eval must not need one.
        .env_remove("SEISMO_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run seismo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `rows` rows 5 minutes apart from 2015-01-01 00:00:00, value `value(i)`.
fn nab_file(rows: usize, line_end: &str, value: impl Fn(usize) -> String) -> String {
    let mut out = format!("timestamp,value{line_end}");
    for i in 0..rows {
        out.push_str(&format!("{},{}{line_end}", nab_time(i), value(i)));
    }
    out
}

fn nab_time(row: usize) -> String {
    let minutes = row * 5;
    format!(
        "2015-01-0{} {:02}:{:02}:00",
        1 + minutes / 1440,
        minutes % 1440 / 60,
        minutes % 60
    )
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

/// Two categories (one of them the count category), five files, one with CRLF endings.
fn tiny_corpus(root: &Path) -> Vec<(&'static str, String)> {
    let files = vec![
        (
            "cpu/a.csv",
            nab_file(120, "\n", |i| format!("{:.2}", 40.0 + (i % 7) as f64)),
        ),
        (
            "cpu/b.csv",
            nab_file(90, "\r\n", |i| format!("{}", 10 + i % 3)),
        ),
        ("cpu/c.csv", nab_file(60, "\n", |_| "1.5".to_owned())),
        (
            "realTweets/x.csv",
            nab_file(100, "\n", |i| format!("{}", i % 5)),
        ),
        (
            "realTweets/y.csv",
            nab_file(80, "\n", |i| format!("{}", if i == 60 { 90 } else { 3 })),
        ),
    ];
    for (name, content) in &files {
        write(&root.join("data").join(name), content);
    }
    write(&root.join("data/README.md"), "not a category\n");
    let window =
        |a: usize, b: usize| format!("[\"{}.000000\", \"{}.000000\"]", nab_time(a), nab_time(b));
    let labels = format!(
        "{{\"cpu/a.csv\": [{}], \"cpu/b.csv\": [], \"cpu/c.csv\": [{}],\n\
         \"realTweets/x.csv\": [{}, {}], \"realTweets/y.csv\": [{}]}}",
        window(40, 50),
        window(30, 40),
        window(30, 35),
        window(70, 80),
        window(55, 65)
    );
    write(&root.join("labels/combined_windows.json"), &labels);
    write(
        &root.join("config/profiles.json"),
        r#"{"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
            "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0}},
            "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}}}"#,
    );
    files
}

#[test]
fn eval_nab_writes_nab_results_for_both_modes_and_reports_every_subset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (nab, out) = (dir.path().join("nab"), dir.path().join("out"));
    let files = tiny_corpus(&nab);
    let output = seismo(&[
        "eval",
        "nab",
        "--nab",
        nab.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    for mode in ["like-for-like", "causal"] {
        for (name, input) in &files {
            let (category, file) = name.split_once('/').expect("category/file");
            let path = out
                .join(mode)
                .join(format!("seismo/{category}/seismo_{file}"));
            let written = std::fs::read_to_string(&path).expect("a result file per input");
            let mut lines = written.lines();
            assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
            let rows: Vec<&str> = lines.collect();
            let inputs: Vec<&str> = input.lines().skip(1).collect();
            assert_eq!(rows.len(), inputs.len(), "{path:?}");
            for (row, input) in rows.iter().zip(&inputs) {
                let (columns, score) = row.rsplit_once(',').expect("three columns");
                assert_eq!(columns, *input, "timestamp and value as read");
                let score: f64 = score.parse().expect("a numeric score");
                assert!((0.0..=1.0).contains(&score));
            }
        }
    }

    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["files"], 5);
    let modes = report["modes"].as_array().expect("modes");
    assert_eq!(modes.len(), 2);
    for mode in modes {
        let profiles = mode["profiles"].as_array().expect("profiles");
        assert_eq!(profiles[0]["profile"], "standard");
        assert_eq!(profiles.len(), 3);
        let subsets: Vec<(&str, u64, u64)> = profiles[0]["subsets"]
            .as_array()
            .expect("subsets")
            .iter()
            .map(|s| {
                let name = s["subset"].as_str().expect("name");
                (
                    name,
                    s["files"].as_u64().expect("files"),
                    s["windows"].as_u64().expect("windows"),
                )
            })
            .collect();
        // Halves alternate within each category: cpu a, c | b and realTweets x | y.
        assert_eq!(
            subsets,
            vec![
                ("all", 5, 5),
                ("tuning", 3, 4),
                ("held-out", 2, 1),
                ("realTweets", 2, 3)
            ]
        );
    }
}

#[test]
fn eval_nab_with_one_mode_prints_a_table_and_writes_only_that_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (nab, out) = (dir.path().join("nab"), dir.path().join("out"));
    tiny_corpus(&nab);
    let output = seismo(&[
        "eval",
        "nab",
        "--nab",
        nab.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--mode",
        "causal",
        "--sensitivity",
        "high",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(table.contains("sensitivity high"), "{table}");
    assert!(table.contains("mode causal"), "{table}");
    assert!(table.contains("reward_low_FN_rate"), "{table}");
    assert!(out.join("causal/seismo/realTweets/seismo_x.csv").is_file());
    assert!(!out.join("like-for-like").exists());
}

#[test]
fn eval_nab_names_a_bad_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nab = dir.path().join("nab");
    tiny_corpus(&nab);
    write(
        &nab.join("data/cpu/a.csv"),
        "timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,high\n",
    );
    let out = dir.path().join("out");
    let output = seismo(&[
        "eval",
        "nab",
        "--nab",
        nab.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    let error = text(&output.stderr);
    assert!(
        error.contains("a.csv:3: value `high` is not a number"),
        "{error}"
    );
    assert_eq!(error.trim_end().lines().count(), 1, "{error}");
}

#[test]
fn eval_csv_adds_a_score_column_and_refuses_bad_input_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("errors.csv");
    let mut content = String::from("timestamp,count,requests\n");
    for minute in 0..30 {
        let count = if minute == 20 { 50 } else { minute % 2 };
        content.push_str(&format!("2026-01-05T00:{minute:02}:00Z,{count},100\n"));
    }
    write(&input, &content);
    let scored = dir.path().join("scored.csv");
    let output = seismo(&[
        "eval",
        "csv",
        input.to_str().expect("utf-8"),
        "--out",
        scored.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("30 points"));
    let written = std::fs::read_to_string(&scored).expect("scores written");
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("timestamp,count,requests,anomaly_score"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 30);
    assert!(rows[20].starts_with("2026-01-05T00:20:00Z,50,100,"));

    write(&input, "1767571200,1\n1767571260,lots\n");
    let output = seismo(&["eval", "csv", input.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    let error = text(&output.stderr);
    assert!(
        error.contains("errors.csv: line 2: count `lots` is not a non-negative number"),
        "{error}"
    );
    assert_eq!(error.trim_end().lines().count(), 1, "{error}");
}
