//! The Grafana dashboards, the compose stack and `/metrics`, held against real parts:
//! Grafana's own types (`@grafana/schema` through `tsc`), the migrated schema in PostgreSQL
//! for every SQL query, a real Prometheus (Debian's `prometheus`) scraping a Seismo that had
//! traffic for every PromQL expression, `promtool check metrics`, and `docker compose
//! config`. Grafana's variables and macros are substituted the way Grafana does.
//!
//! A test whose tool is missing says so and passes: `.ci/run` installs every one of them
//! (`npm ci` in dashboards/check, Debian's `prometheus` and `docker-compose`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use regex::{Captures, Regex};
use seismo::detect::worker::{Settings, Worker};
use serde_json::{json, Value};

use crate::harness::{python_exception, TestApp};

const PROMETHEUS_UID: &str = "seismo-prometheus";
const POSTGRES_UID: &str = "seismo-postgres";
const DASHBOARD_UIDS: [&str; 4] = [
    "seismo-incidents",
    "seismo-internals",
    "seismo-issues",
    "seismo-overview",
];
const PANEL_TYPES: [&str; 5] = ["row", "stat", "table", "text", "timeseries"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Each dashboard of `dashboards/json`: file name and JSON.
fn dashboards() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(repo("dashboards/json"))
        .expect("dashboards/json exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a dashboard");
            let json = serde_json::from_str(&text).expect("a dashboard is JSON");
            (
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into(),
                json,
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// One query a dashboard runs: where it is, its datasource uid and its text.
#[derive(Debug, Clone)]
struct Query {
    place: String,
    datasource: String,
    text: String,
}

/// Every query of a dashboard: panel targets, annotations and query variables.
fn queries(file: &str, dashboard: &Value) -> Vec<Query> {
    let mut found = Vec::new();
    let mut add = |place: String, datasource: &Value, target: &Value| {
        let text = target["expr"]
            .as_str()
            .or(target["rawSql"].as_str())
            .or(target["query"].as_str())
            .or(target["query"]["query"].as_str());
        if let Some(text) = text {
            found.push(Query {
                place: format!("{file}: {place}"),
                datasource: datasource["uid"].as_str().unwrap_or_default().to_owned(),
                text: text.to_owned(),
            });
        }
    };
    let name = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let place = format!(
                "panel {:?} {}",
                name(&panel["title"]),
                name(&target["refId"])
            );
            add(place, &target["datasource"], target);
        }
    }
    let annotations = dashboard["annotations"]["list"].as_array();
    for annotation in annotations.into_iter().flatten() {
        let place = format!("annotation {:?}", name(&annotation["name"]));
        add(place, &annotation["datasource"], &annotation["target"]);
    }
    for variable in variables(dashboard) {
        let place = format!("variable {:?}", name(&variable["name"]));
        add(place, &variable["datasource"], variable);
    }
    found
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// Every `"datasource"` value anywhere in a JSON document.
fn datasource_refs<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "datasource" {
                    found.push(inner);
                }
                datasource_refs(inner, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| datasource_refs(i, found)),
        _ => {}
    }
}

/// `(uid, type)` of each datasource in the provisioning file.
fn provisioned_datasources() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo("dashboards/provisioning/datasources/seismo.yaml"))
        .expect("the datasource provisioning file");
    let field = |line: &str, key: &str| {
        line.trim()
            .trim_start_matches("- ")
            .strip_prefix(key)
            .map(|v| v.trim().to_owned())
    };
    let (mut uids, mut types) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(uid) = field(line, "uid:") {
            uids.push(uid);
        }
        if let Some(kind) = field(line, "type:") {
            types.push(kind);
        }
    }
    assert_eq!(
        uids.len(),
        types.len(),
        "each datasource has a uid and a type"
    );
    uids.into_iter().zip(types).collect()
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.is_file())
}

fn skip(test: &str, reason: &str) {
    println!("SKIPPED {test}: {reason} (.ci/run installs it)");
}

#[test]
fn dashboards_name_only_provisioned_datasources_by_uid_and_known_panel_types() {
    let provisioned = provisioned_datasources();
    let uids: Vec<&str> = provisioned.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(uids, [PROMETHEUS_UID, POSTGRES_UID]);
    let all = dashboards();
    let found: BTreeSet<&str> = all.iter().filter_map(|(_, d)| d["uid"].as_str()).collect();
    assert_eq!(
        found,
        DASHBOARD_UIDS.into_iter().collect(),
        "stable dashboard uids"
    );
    for (file, dashboard) in &all {
        let mut refs = Vec::new();
        datasource_refs(dashboard, &mut refs);
        for reference in refs {
            // A name (a plain string) breaks when someone renames the datasource.
            let uid = reference["uid"].as_str().unwrap_or_else(|| {
                panic!("{file}: a datasource named by hand, not by uid: {reference}")
            });
            let kind = reference["type"].as_str().unwrap_or_default();
            let known = provisioned.iter().any(|(u, t)| u == uid && t == kind)
                || (uid == "-- Grafana --" && kind == "grafana");
            assert!(known, "{file}: datasource {reference} is not provisioned");
        }
        let mut ids = BTreeSet::new();
        for panel in panels(dashboard) {
            let kind = panel["type"].as_str().unwrap_or_default();
            assert!(
                PANEL_TYPES.contains(&kind),
                "{file}: unknown panel type {kind:?}"
            );
            assert!(ids.insert(panel["id"].as_i64()), "{file}: panel ids repeat");
            if kind != "row" && kind != "text" {
                assert!(
                    panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
                    "{file}: panel {} has no query",
                    panel["title"]
                );
            }
        }
    }
}

#[test]
fn dashboards_type_check_against_grafanas_own_types() {
    if which("node").is_none() || which("npm").is_none() {
        return skip(
            "the Grafana type check",
            "Node.js and npm are not installed",
        );
    }
    let check = repo("dashboards/check");
    if !check.join("node_modules/@grafana/schema").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&check)
            .status()
            .expect("run npm ci");
        assert!(installed.success(), "npm ci in dashboards/check failed");
    }
    let output = Command::new("node")
        .arg("check.mjs")
        .current_dir(&check)
        .output()
        .expect("run the type check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("4 dashboards type-check"), "{text}");
}

#[test]
fn links_in_emails_and_webhooks_open_provisioned_dashboards_with_their_variables() {
    let mut sources = seismo::config::Sources::default();
    sources.set("grafana_url", "http://grafana.test:3000");
    let config = seismo::config::Config::from_sources(&sources).expect("valid config");
    let all = dashboards();
    let project = seismo::model::ProjectId(1);
    for link in [
        config.issue_link(project, seismo::model::IssueId(2)),
        config.incident_link(project, seismo::model::IncidentId(3)),
    ] {
        let uid = link.path().split('/').nth(2).expect("a /d/<uid>/ link");
        let (_, dashboard) = all
            .iter()
            .find(|(_, d)| d["uid"] == uid)
            .unwrap_or_else(|| panic!("{link}: no dashboard with uid {uid}"));
        let names: Vec<&str> = variables(dashboard)
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for (key, _) in link.query_pairs() {
            let name = key.strip_prefix("var-").expect("only variables");
            assert!(names.contains(&name), "{link}: no variable {name} in {uid}");
        }
    }
}

#[test]
fn the_compose_file_is_valid() {
    let compose = if which("docker").is_some() && docker_has_compose() {
        vec!["docker", "compose"]
    } else if which("docker-compose").is_some() {
        vec!["docker-compose"]
    } else {
        return skip(
            "docker compose config",
            "neither docker compose nor docker-compose is installed",
        );
    };
    let output = Command::new(compose[0])
        .args(&compose[1..])
        .args(["--env-file", ".env.example", "config", "-q"])
        .current_dir(repo(""))
        .output()
        .expect("run compose config");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Without the passwords of .env the stack refuses to start, naming what is missing.
    let empty = tempfile::NamedTempFile::new().expect("an empty env file");
    let missing = Command::new(compose[0])
        .args(&compose[1..])
        .arg("--env-file")
        .arg(empty.path())
        .args(["config", "-q"])
        .current_dir(repo(""))
        .env_remove("POSTGRES_PASSWORD")
        .env_remove("GRAFANA_ADMIN_PASSWORD")
        .env_remove("GRAFANA_DB_PASSWORD")
        .output()
        .expect("run compose config");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("PASSWORD"));
}

fn docker_has_compose() -> bool {
    Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A template variable's values as a test chooses them, and whether it is multi-value.
struct Chosen {
    values: Vec<String>,
    /// Multi-value or "include All": Grafana formats such values as a list.
    list: bool,
    /// The `allValue` to send when "All" is chosen.
    all: Option<String>,
}

/// The dashboard's variables with values: `picks` for some, "All" for the rest that allow it.
fn chosen(dashboard: &Value, picks: &HashMap<&str, String>) -> HashMap<String, Chosen> {
    let mut out = HashMap::new();
    for variable in variables(dashboard) {
        let name = variable["name"].as_str().unwrap_or_default().to_owned();
        let list = variable["multi"] == true || variable["includeAll"] == true;
        let value = picks.get(name.as_str()).cloned();
        let all = match value {
            Some(_) => None,
            None => variable["allValue"].as_str().map(str::to_owned),
        };
        let values = value.into_iter().collect();
        out.insert(name, Chosen { values, list, all });
    }
    out
}

/// Grafana's time range and intervals for one substitution.
struct Range {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// `$__interval`, in seconds.
    interval: i64,
    /// The datasource's scrape interval (Prometheus only), in seconds.
    scrape: i64,
}

fn variable_pattern() -> Regex {
    Regex::new(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)").expect("valid regex")
}

/// A PromQL expression as Grafana sends it: `$__rate_interval` is
/// max(`$__interval` + scrape interval, 4 × scrape interval); multi values become a regex
/// alternation, "All" its `allValue`.
fn promql(expr: &str, vars: &HashMap<String, Chosen>, range: &Range) -> String {
    variable_pattern()
        .replace_all(expr, |c: &Captures| {
            let name = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
            match name {
                "__rate_interval" => {
                    format!("{}s", (range.interval + range.scrape).max(4 * range.scrape))
                }
                "__interval" => format!("{}s", range.interval),
                "__range" => format!("{}s", (range.to - range.from).num_seconds()),
                _ => match vars.get(name) {
                    Some(Chosen { all: Some(all), .. }) => all.clone(),
                    Some(chosen) => {
                        let escaped: Vec<String> =
                            chosen.values.iter().map(|v| regex::escape(v)).collect();
                        match escaped.len() {
                            1 => escaped[0].clone(),
                            _ => format!("({})", escaped.join("|")),
                        }
                    }
                    None => panic!("{expr}: unknown variable ${name}"),
                },
            }
        })
        .into_owned()
}

/// An SQL query as Grafana's PostgreSQL datasource runs it: variables first (a list
/// variable's values quoted and comma-joined, a single one raw), then the macros.
fn sql(query: &str, vars: &HashMap<String, Chosen>, range: &Range) -> String {
    let interpolated = variable_pattern().replace_all(query, |c: &Captures| {
        let name = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
        if name == "__interval" {
            return format!("{}s", range.interval);
        }
        if name.starts_with("__") {
            return c[0].to_owned(); // a macro, below
        }
        let chosen = vars
            .get(name)
            .unwrap_or_else(|| panic!("{query}: unknown variable ${name}"));
        assert!(!chosen.values.is_empty(), "{query}: ${name} has no value");
        match chosen.list {
            true => chosen
                .values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(","),
            false => chosen.values[0].clone(),
        }
    });
    let time = |t: DateTime<Utc>| format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Secs, true));
    let macros = Regex::new(r"\$__(\w+)\(([^)]*)\)").expect("valid regex");
    macros
        .replace_all(&interpolated, |c: &Captures| {
            let args: Vec<&str> = c[2].split(',').map(str::trim).collect();
            let group = |args: &[&str]| {
                let seconds = duration_seconds(args.get(1).copied().unwrap_or("1m"));
                format!("floor(extract(epoch from {})/{seconds})*{seconds}", args[0])
            };
            match &c[1] {
                "timeFilter" => format!(
                    "{} BETWEEN {} AND {}",
                    args[0],
                    time(range.from),
                    time(range.to)
                ),
                "timeFrom" => time(range.from),
                "timeTo" => time(range.to),
                "timeGroup" => group(&args),
                "timeGroupAlias" => format!("{} AS \"time\"", group(&args)),
                other => panic!("{query}: a macro this test does not know: {other}"),
            }
        })
        .into_owned()
}

/// `30s`, `1m`, `2h` → seconds.
fn duration_seconds(text: &str) -> i64 {
    let (number, unit) = text.split_at(text.len() - 1);
    let n: i64 = number
        .parse()
        .unwrap_or_else(|_| panic!("a duration: {text}"));
    match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => panic!("a duration unit: {text}"),
    }
}

/// Traffic a user would cause: errors over the Sentry protocol (two issues, one service)
/// and Seismo's JSON API, a refused request, API reads, and detection passes that open an
/// incident for each new issue. Returns the first issue's id.
async fn traffic(app: &TestApp) -> i64 {
    for (ty, function) in [("KeyError", "checkout"), ("ValueError", "pay")] {
        for line in 0..3 {
            let mut event = python_exception(ty, "boom", &["handler", function], 10 + line);
            event["tags"] = json!({"service": "shop"});
            let response = app.send_event(&event).await;
            assert_eq!(response.status(), 200);
        }
    }
    let native = app
        .http
        .post(app.url("/api/v1/events"))
        .header("x-seismo-key", app.key())
        .json(&json!({"message": "disk full", "service": "api"}))
        .send()
        .await
        .expect("native event");
    assert_eq!(native.status(), 200);
    let refused = app
        .ingest_request(&app.envelope_url())
        .body("not an envelope")
        .send()
        .await
        .expect("bad envelope");
    assert_eq!(refused.status(), 400);
    app.api_ok(&format!("/api/v1/projects/{}/issues", app.project.id))
        .await;
    let mut worker = Worker::new(
        app.pool.clone(),
        app.app.metrics.clone(),
        Settings::default(),
    );
    let now = Utc::now();
    worker.pass(now).await.expect("warm-up pass");
    let pass = worker
        .pass(now + TimeDelta::minutes(2))
        .await
        .expect("detection pass");
    assert!(
        !pass.opened.is_empty(),
        "new issues open incidents: {pass:?}"
    );
    seismo::store::gauges::refresh(&app.pool, &app.app.metrics)
        .await
        .expect("refresh the gauges");
    let issues = app.issues().await;
    issues
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .min()
        .expect("an issue")
}

/// Every query of every dashboard on the datasource `uid`, with its dashboard's variables
/// chosen (`picks`, else "All").
fn queries_on(uid: &str, picks: &HashMap<&str, String>) -> Vec<(Query, HashMap<String, Chosen>)> {
    let mut found = Vec::new();
    for (file, dashboard) in dashboards() {
        for query in queries(&file, &dashboard) {
            if query.datasource == uid {
                found.push((query, chosen(&dashboard, picks)));
            }
        }
    }
    found
}

/// Each panel titled in `titles` had a query with data (`with_data` holds query places).
fn assert_show_data(titles: &[&str], with_data: &BTreeSet<String>) {
    for title in titles {
        let needle = format!("panel \"{title}\"");
        assert!(
            with_data.iter().any(|place| place.contains(&needle)),
            "{title} showed no data; queries with data: {with_data:#?}"
        );
    }
}

/// SQL panels that must show rows after [`traffic`].
const SQL_WITH_DATA: [&str; 11] = [
    "Error events per minute, by project",
    "Error events per minute, by service",
    "Top issues by events in the time range",
    "New issues",
    "Event rate of the chosen issue",
    "Latest event of the chosen issue",
    "Latest stack trace of the chosen issue",
    "Incidents opened by kind",
    "Incidents",
    "Timeline of the chosen incident",
    "Actions announced for the chosen incident",
];

#[tokio::test]
async fn dashboards_sql_queries_run_against_the_migrated_schema() {
    let app = TestApp::spawn().await;
    let issue = traffic(&app).await;
    let incident: i64 = sqlx::query_scalar("SELECT min(id) FROM incidents")
        .fetch_one(&app.pool)
        .await
        .expect("an incident");
    let picks = HashMap::from([
        ("project", app.project.id.to_string()),
        ("issue", issue.to_string()),
        ("incident", incident.to_string()),
    ]);
    let now = Utc::now();
    let range = Range {
        from: now - TimeDelta::hours(1),
        to: now + TimeDelta::hours(1),
        interval: 60,
        scrape: 15,
    };
    let mut with_rows = BTreeSet::new();
    let all = queries_on(POSTGRES_UID, &picks);
    for (query, vars) in &all {
        let text = sql(&query.text, vars, &range);
        let rows = sqlx::raw_sql(&text)
            .fetch_all(&app.pool)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", query.place));
        if !rows.is_empty() {
            with_rows.insert(query.place.clone());
        }
    }
    assert!(all.len() >= 20, "only {} SQL queries found", all.len());
    assert_show_data(&SQL_WITH_DATA, &with_rows);
    app.stop().await;
}

/// Prometheus panels that must show data after [`traffic`] (by title).
const PROMQL_WITH_DATA: [&str; 19] = [
    "Events accepted / s",
    "Open incidents",
    "P handle",
    "Ingest rate by source and outcome",
    "Anomaly score by project",
    "Open incidents by kind",
    "Request latency by route (p95)",
    "Requests by route and status",
    "Ingest acknowledgement latency",
    "Writer queue depth",
    "Writer batch size",
    "Writer transactions by way",
    "Detection pass duration",
    "Live series",
    "Issues by status (all projects)",
    "Version",
    "Resident memory",
    "CPU",
    "Spool size",
];

/// Debian's Prometheus, scraping `target` every second from a config in a temp dir.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(binary: &Path, target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: seismo\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let port = crate::process::free_port();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        prometheus.wait_until_ready().await;
        prometheus
    }

    async fn wait_until_ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", self.base)).await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("prometheus did not become ready");
    }

    /// A range query over the last `seconds`, step 1 s: the result, or Prometheus' error.
    async fn query_range(&self, expr: &str, seconds: i64) -> Result<Vec<Value>, String> {
        let end = Utc::now().timestamp();
        let answer: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query_range", self.base))
            .query(&[
                ("query", expr.to_owned()),
                ("start", (end - seconds).to_string()),
                ("end", end.to_string()),
                ("step", "1".to_owned()),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match answer["status"].as_str() {
            Some("success") => Ok(answer["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            _ => Err(format!("{}: {}", answer["errorType"], answer["error"])),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_promql_runs_against_a_real_prometheus_scraping_seismo() {
    let Some(binary) = which("prometheus") else {
        return skip(
            "PromQL against Prometheus",
            "Debian's prometheus is not installed",
        );
    };
    let app = TestApp::spawn().await;
    traffic(&app).await;
    let prometheus = Prometheus::start(&binary, &app.address.to_string()).await;
    // Enough scrapes for rate() over $__rate_interval (4 s here), with traffic in between.
    for _ in 0..8 {
        app.api_ok(&format!("/api/v1/projects/{}/issues", app.project.id))
            .await;
        let event = python_exception("KeyError", "again", &["handler", "checkout"], 10);
        assert_eq!(app.send_event(&event).await.status(), 200);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let up = prometheus
        .query_range("up{job=\"seismo\"} == 1", 30)
        .await
        .expect("query up");
    assert!(!up.is_empty(), "prometheus never scraped seismo");
    let picks = HashMap::from([("project", app.project.id.to_string())]);
    let range = Range {
        from: Utc::now() - TimeDelta::seconds(30),
        to: Utc::now(),
        interval: 1,
        scrape: 1,
    };
    let mut with_data = BTreeSet::new();
    // A variable's query is Grafana's label_values(), not PromQL: checked below.
    let mut all = queries_on(PROMETHEUS_UID, &picks);
    all.retain(|(query, _)| !query.place.contains(": variable "));
    for (query, vars) in &all {
        let expr = promql(&query.text, vars, &range);
        let result = prometheus
            .query_range(&expr, 30)
            .await
            .unwrap_or_else(|e| panic!("{}: {expr}: {e}", query.place));
        if !result.is_empty() {
            with_data.insert(query.place.clone());
        }
    }
    assert!(
        all.len() >= 30,
        "only {} PromQL expressions found",
        all.len()
    );
    assert_show_data(&PROMQL_WITH_DATA, &with_data);
    // The instance variable's own query (label_values) names this Seismo.
    let instances = prometheus
        .query_range("group by (instance) (seismo_build_info)", 30)
        .await
        .expect("instances");
    assert_eq!(instances.len(), 1, "{instances:?}");
    app.stop().await;
}

/// `/metrics` of an app after [`traffic`], an issue read by id and a request to no route.
async fn metrics_after_traffic(app: &TestApp) -> String {
    let issue = traffic(app).await;
    app.api_ok(&format!("/api/v1/issues/{issue}")).await;
    let unknown = app
        .http
        .get(app.url(&format!("/secret/{}/path?token=abc", app.key())))
        .send()
        .await
        .expect("GET an unknown path");
    assert_eq!(unknown.status(), 404);
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// Label names a metric may carry: none names an issue, fingerprint, user, URL or message.
const LABELS: [&str; 15] = [
    "source",
    "outcome",
    "reason",
    "item_type",
    "signal",
    "result",
    "method",
    "route",
    "status",
    "kind",
    "project",
    "version",
    "le",
    "quantile",
    "way",
];

#[tokio::test]
async fn metrics_name_routes_by_template_and_never_label_by_issue_user_or_url() {
    let app = TestApp::spawn().await;
    let text = metrics_after_traffic(&app).await;
    for name in [
        "seismo_build_info{version=",
        "seismo_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/{project_id}/envelope/\",status=\"200\"",
        "seismo_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/issues/{id}\",status=\"200\"}",
        "seismo_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"404\"}",
        "seismo_issues{status=\"unresolved\"} 3",
        "seismo_incidents_open{kind=\"new_issue\"} 3",
        "seismo_anomaly_score{project=",
        "seismo_handling_probability ",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let label = Regex::new(r#"([a-z_]+)="([^"]*)""#).expect("valid regex");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for pair in label.captures_iter(line) {
            assert!(LABELS.contains(&&pair[1]), "label {} in {line}", &pair[1]);
            assert!(!pair[2].contains(app.key()), "a key in a label: {line}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_after_real_traffic_pass_promtool_check() {
    let Some(promtool) = which("promtool") else {
        return skip(
            "promtool check metrics",
            "Debian's prometheus (promtool) is not installed",
        );
    };
    let app = TestApp::spawn().await;
    let text = metrics_after_traffic(&app).await;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics to promtool");
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
}

#[test]
fn grafana_substitution_follows_grafana() {
    let dashboard = json!({"templating": {"list": [
        {"name": "instance", "multi": true, "includeAll": true, "allValue": ".*"},
        {"name": "project", "multi": true, "includeAll": true},
        {"name": "issue"}
    ]}});
    let picks = HashMap::from([("project", "1".to_owned()), ("issue", "42".to_owned())]);
    let vars = chosen(&dashboard, &picks);
    let at = Utc::now();
    let range = Range {
        from: at - TimeDelta::hours(1),
        to: at,
        interval: 15,
        scrape: 15,
    };
    assert_eq!(
        promql(
            "rate(x{instance=~\"$instance\", project=~\"${project}\"}[$__rate_interval])",
            &vars,
            &range
        ),
        "rate(x{instance=~\".*\", project=~\"1\"}[60s])"
    );
    let query = sql(
        "SELECT $__timeGroupAlias(minute, $__interval) FROM t WHERE $__timeFilter(minute) \
         AND project_id IN ($project) AND issue_id = $issue",
        &vars,
        &range,
    );
    assert!(
        query.starts_with("SELECT floor(extract(epoch from minute)/15)*15 AS \"time\" FROM t"),
        "{query}"
    );
    assert!(query.contains("minute BETWEEN '"), "{query}");
    assert!(
        query.ends_with("project_id IN ('1') AND issue_id = 42"),
        "{query}"
    );
}
