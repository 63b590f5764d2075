//! Typed configuration: defaults ← TOML file (`--config`) ← `SEISMO_*` environment ← CLI flags.
//!
//! Every key is read as text first, then validated once into [`Config`]; a bad value stops
//! the start with one line naming the key and the problem. Secrets (passwords in database
//! and SMTP URLs) never appear in `Debug` output or logs.

pub mod links;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key {key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

/// A URL that may carry a password: `Debug` and `Display` show it with the password masked.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Cannot fail: the URL already has a password, so it has a host.
            let _ = shown.set_password(Some("***"));
        }
        f.write_str(shown.as_str())
    }
}

/// Where a listener binds, or `off`.
pub type Listen = Option<SocketAddr>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `None` runs the embedded PostgreSQL cluster under `data_dir`.
    pub database_url: Option<SecretUrl>,
    pub listen: SocketAddr,
    pub otlp_http_listen: Listen,
    pub otlp_grpc_listen: Listen,
    /// A listener of its own for `/metrics` (then not served on `listen`); unset by default.
    pub metrics_listen: Listen,
    pub public_url: Url,
    pub smtp_url: Option<SecretUrl>,
    pub mail_from: Option<String>,
    pub webhook_allow_cidrs: Vec<String>,
    pub data_dir: PathBuf,
    /// Where acknowledged events wait while PostgreSQL is unreachable; `None`: no spool
    /// (`off`), and ingestion answers 503 then.
    pub spool_dir: Option<PathBuf>,
    /// The most the spool may hold on disk; beyond it ingestion answers 503.
    pub spool_max_bytes: u64,
    /// How long a request waits for its COMMIT before its events go to the spool.
    pub spool_after: std::time::Duration,
    pub log: String,
    pub log_format: LogFormat,
    pub grafana_url: Option<Url>,
    /// Events waiting for the writer before ingestion answers 503 (bounded on purpose).
    pub writer_queue_capacity: usize,
    /// Most events one writer transaction takes.
    pub writer_batch_size: usize,
    /// Writer transactions in flight at once. One by default: its batches grow with the
    /// load, and it stores more events per second for less CPU than two, with a slow commit
    /// too (bench/README.md, "One writer; compressed bodies inflated in place").
    pub writer_concurrency: usize,
    /// A recovery action not delivered within this many minutes is dropped.
    pub recovery_expire_minutes: u64,
    /// Minutes a series has after a recovery action to get back to its baseline.
    pub recovery_verify_minutes: u64,
    /// Seconds the first mail of a group waits for related incidents (0: none).
    pub mail_group_wait_seconds: u64,
    /// At most one mail per email endpoint per this many minutes (0: no limit).
    pub mail_repeat_minutes: u64,
    /// How long a client may take to send a request's headers before its connection is
    /// closed (also the idle time allowed between requests on a kept-alive connection).
    pub http_header_timeout: std::time::Duration,
    /// How long a client may take to send a request's body before it is answered 408.
    pub http_body_timeout: std::time::Duration,
    /// How often event compression dictionaries are checked, trained and reloaded
    /// (`None`: 0, no dictionaries; new events are compressed without one).
    pub dictionary_check_interval: Option<std::time::Duration>,
    /// How many projects' dictionaries each process holds in memory (about 430 KiB each):
    /// the busiest of the last hour. The other projects' events are compressed without one.
    pub dictionary_max_projects: usize,
}

/// The keys, as named in the TOML file; the environment uses `SEISMO_` + upper case.
const KEYS: &[&str] = &[
    "database_url",
    "listen",
    "otlp_http_listen",
    "otlp_grpc_listen",
    "metrics_listen",
    "public_url",
    "smtp_url",
    "mail_from",
    "webhook_allow_cidrs",
    "data_dir",
    "spool_dir",
    "spool_max_bytes",
    "spool_after_ms",
    "log",
    "log_format",
    "grafana_url",
    "writer_queue_capacity",
    "writer_batch_size",
    "writer_concurrency",
    "recovery_expire_minutes",
    "recovery_verify_minutes",
    "mail_group_wait_seconds",
    "mail_repeat_minutes",
    "http_header_timeout_seconds",
    "http_body_timeout_seconds",
    "dictionary_check_seconds",
    "dictionary_max_projects",
];

/// Raw key → text, before validation.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    values: BTreeMap<&'static str, String>,
}

impl Sources {
    /// Reads the optional TOML file, then the process environment over it.
    pub fn load(file: Option<&Path>) -> Result<Sources, ConfigError> {
        let mut sources = Sources::default();
        if let Some(path) = file {
            sources.read_toml(path)?;
        }
        sources.read_env(|name| std::env::var(name).ok());
        Ok(sources)
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.values.insert(key, value.into());
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn read_toml(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_error(e.message().to_owned()))?;
        for (name, value) in table {
            let key = KEYS
                .iter()
                .find(|k| **k == name)
                .ok_or_else(|| parse_error(format!("unknown key {name}")))?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            self.values.insert(key, text);
        }
        Ok(())
    }

    fn read_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(url) = var("DATABASE_URL") {
            self.values.insert("database_url", url);
        }
        for key in KEYS {
            if let Some(value) = var(&format!("SEISMO_{}", key.to_ascii_uppercase())) {
                self.values.insert(key, value);
            }
        }
    }
}

impl Config {
    pub fn from_sources(sources: &Sources) -> Result<Config, ConfigError> {
        let listen = socket_addr(sources, "listen", "127.0.0.1:8000")?;
        let public_url = match sources.get("public_url") {
            Some(text) => http_url("public_url", text)?,
            None => http_url("public_url", &format!("http://{listen}"))?,
        };
        let data_dir = PathBuf::from(sources.get("data_dir").unwrap_or("./seismo-data"));
        let spool_dir = match sources.get("spool_dir") {
            Some(text) if text.eq_ignore_ascii_case("off") => None,
            Some(text) => Some(PathBuf::from(text)),
            None => Some(data_dir.join("spool")),
        };
        Ok(Config {
            database_url: optional_secret_url(
                sources,
                "database_url",
                &["postgres", "postgresql"],
            )?,
            listen,
            otlp_http_listen: optional_listen(sources, "otlp_http_listen", "127.0.0.1:4318")?,
            otlp_grpc_listen: optional_listen(sources, "otlp_grpc_listen", "127.0.0.1:4317")?,
            metrics_listen: match sources.get("metrics_listen") {
                Some(_) => optional_listen(sources, "metrics_listen", "")?,
                None => None,
            },
            public_url,
            smtp_url: optional_secret_url(sources, "smtp_url", &["smtp", "smtps"])?,
            mail_from: mail_from(sources)?,
            webhook_allow_cidrs: cidrs(sources)?,
            data_dir,
            spool_dir,
            spool_max_bytes: positive(sources, "spool_max_bytes", 1 << 30)? as u64,
            spool_after: std::time::Duration::from_millis(
                positive(sources, "spool_after_ms", 2000)? as u64,
            ),
            log: sources.get("log").unwrap_or("info").to_owned(),
            log_format: log_format(sources)?,
            grafana_url: sources
                .get("grafana_url")
                .map(|t| http_url("grafana_url", t))
                .transpose()?,
            writer_queue_capacity: positive(sources, "writer_queue_capacity", 8192)?,
            writer_batch_size: positive(sources, "writer_batch_size", 1000)?,
            writer_concurrency: positive(sources, "writer_concurrency", 1)?,
            recovery_expire_minutes: positive(sources, "recovery_expire_minutes", 10)? as u64,
            recovery_verify_minutes: verify_minutes(sources)?,
            mail_group_wait_seconds: non_negative(sources, "mail_group_wait_seconds", 30)?,
            mail_repeat_minutes: non_negative(sources, "mail_repeat_minutes", 5)?,
            http_header_timeout: seconds(sources, "http_header_timeout_seconds", 10)?,
            http_body_timeout: seconds(sources, "http_body_timeout_seconds", 30)?,
            dictionary_check_interval: match non_negative(sources, "dictionary_check_seconds", 60)?
            {
                0 => None,
                n => Some(std::time::Duration::from_secs(n)),
            },
            dictionary_max_projects: positive(sources, "dictionary_max_projects", 64)?,
        })
    }

    /// Loads the file and environment and validates them.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::from_sources(&Sources::load(file)?)
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

fn socket_addr(
    sources: &Sources,
    key: &'static str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = sources.get(key).unwrap_or(default);
    text.parse().map_err(|_| {
        invalid(
            key,
            format!("{text:?} is not an address like 127.0.0.1:8000"),
        )
    })
}

fn optional_listen(
    sources: &Sources,
    key: &'static str,
    default: &str,
) -> Result<Listen, ConfigError> {
    match sources.get(key) {
        Some(text) if text.eq_ignore_ascii_case("off") => Ok(None),
        _ => socket_addr(sources, key, default).map(Some),
    }
}

fn http_url(key: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| invalid(key, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            key,
            format!("{text:?} must be an http(s) URL with a host"),
        ));
    }
    Ok(url)
}

fn optional_secret_url(
    sources: &Sources,
    key: &'static str,
    schemes: &[&str],
) -> Result<Option<SecretUrl>, ConfigError> {
    let Some(text) = sources.get(key) else {
        return Ok(None);
    };
    // Never echo the value: it may hold a password.
    let url = Url::parse(text).map_err(|e| invalid(key, format!("not a URL: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(invalid(
            key,
            format!("scheme must be one of {}", schemes.join(", ")),
        ));
    }
    Ok(Some(SecretUrl(url)))
}

fn mail_from(sources: &Sources) -> Result<Option<String>, ConfigError> {
    let Some(text) = sources.get("mail_from") else {
        return Ok(None);
    };
    // Accepts `ops@example.com` and `Seismo <ops@example.com>`.
    let address = text
        .rsplit('<')
        .next()
        .unwrap_or(text)
        .trim_end_matches('>');
    match address.split_once('@') {
        Some((user, host)) if !user.is_empty() && !host.is_empty() => Ok(Some(text.to_owned())),
        _ => Err(invalid(
            "mail_from",
            format!("{text:?} is not an email address"),
        )),
    }
}

fn cidrs(sources: &Sources) -> Result<Vec<String>, ConfigError> {
    let Some(text) = sources.get("webhook_allow_cidrs") else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|cidr| validate_cidr(cidr).map(|()| cidr.to_owned()))
        .collect()
}

fn validate_cidr(cidr: &str) -> Result<(), ConfigError> {
    let problem = || {
        invalid(
            "webhook_allow_cidrs",
            format!("{cidr:?} is not a CIDR like 10.0.0.0/8"),
        )
    };
    let (addr, bits) = cidr.split_once('/').ok_or_else(problem)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| problem())?;
    let bits: u8 = bits.parse().map_err(|_| problem())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(problem());
    }
    Ok(())
}

fn log_format(sources: &Sources) -> Result<LogFormat, ConfigError> {
    match sources.get("log_format").unwrap_or("text") {
        "text" | "pretty" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(invalid(
            "log_format",
            format!("{other:?} must be text or json"),
        )),
    }
}

fn seconds(
    sources: &Sources,
    key: &'static str,
    default: usize,
) -> Result<std::time::Duration, ConfigError> {
    // A day at most: a deadline must stay a representable instant.
    match positive(sources, key, default)? {
        n if n <= 86_400 => Ok(std::time::Duration::from_secs(n as u64)),
        n => Err(invalid(key, format!("{n} must be at most 86400 seconds"))),
    }
}

fn positive(sources: &Sources, key: &'static str, default: usize) -> Result<usize, ConfigError> {
    let Some(text) = sources.get(key) else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(key, format!("{text:?} must be a positive integer"))),
    }
}

/// The shortest verification window: a recovery is verified by five calm minutes after
/// the action (`detect::incidents::RESOLVE_AFTER_CALM_BUCKETS`), plus the minute in which
/// the action landed.
pub const MIN_RECOVERY_VERIFY_MINUTES: u64 = 6;

fn verify_minutes(sources: &Sources) -> Result<u64, ConfigError> {
    let minutes = positive(sources, "recovery_verify_minutes", 15)? as u64;
    if minutes < MIN_RECOVERY_VERIFY_MINUTES {
        return Err(invalid(
            "recovery_verify_minutes",
            format!(
                "{minutes} is too short: a recovery is verified by five calm minutes after the action, so at least {MIN_RECOVERY_VERIFY_MINUTES}"
            ),
        ));
    }
    Ok(minutes)
}

fn non_negative(sources: &Sources, key: &'static str, default: u64) -> Result<u64, ConfigError> {
    let Some(text) = sources.get(key) else {
        return Ok(default);
    };
    text.parse::<u64>()
        .map_err(|_| invalid(key, format!("{text:?} must be a whole number, 0 or more")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        let mut sources = Sources::default();
        for (key, value) in pairs {
            sources.set(key, *value);
        }
        Config::from_sources(&sources)
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(
            c.otlp_http_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:4318")
        );
        assert_eq!(
            c.otlp_grpc_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:4317")
        );
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8000/");
        assert!(c.database_url.is_none());
        assert_eq!(c.spool_dir, Some(PathBuf::from("./seismo-data/spool")));
        assert_eq!(c.spool_max_bytes, 1 << 30);
        assert_eq!(c.metrics_listen, None);
        assert_eq!(
            c.dictionary_check_interval,
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(c.dictionary_max_projects, 64);
    }

    #[test]
    fn zero_turns_dictionaries_off() {
        let c = config(&[("dictionary_check_seconds", "0")]).expect("valid");
        assert_eq!(c.dictionary_check_interval, None);
    }

    #[test]
    fn a_metrics_listener_is_optional() {
        let c = config(&[("metrics_listen", "0.0.0.0:9464")]).expect("valid");
        assert_eq!(
            c.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:9464")
        );
        let c = config(&[("metrics_listen", "off")]).expect("valid");
        assert_eq!(c.metrics_listen, None);
        let error = config(&[("metrics_listen", "9464")]).expect_err("no host");
        assert!(error.to_string().contains("metrics_listen"), "{error}");
    }

    #[test]
    fn off_disables_a_listener() {
        let c = config(&[("otlp_grpc_listen", "off")]).expect("valid");
        assert!(c.otlp_grpc_listen.is_none());
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases: &[(&'static str, &str)] = &[
            ("listen", "nowhere"),
            ("database_url", "mysql://x@y/z"),
            ("public_url", "ftp://x"),
            ("webhook_allow_cidrs", "10.0.0.0/40"),
            ("log_format", "xml"),
            ("writer_batch_size", "0"),
            ("mail_from", "nobody"),
            ("recovery_verify_minutes", "3"),
            ("mail_repeat_minutes", "-1"),
            ("http_header_timeout_seconds", "0"),
            ("http_body_timeout_seconds", "86401"),
            ("dictionary_check_seconds", "soon"),
            ("dictionary_max_projects", "0"),
        ];
        for (key, value) in cases {
            let error = config(&[(key, value)]).expect_err(key).to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let c = config(&[
            ("database_url", "postgres://seismo:hunter2@db:5432/seismo"),
            ("smtp_url", "smtp://mailer:s3cret@mail:587"),
        ])
        .expect("valid");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("db:5432"));
    }

    #[test]
    fn environment_overrides_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seismo.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\n").expect("write");
        let mut sources = Sources::default();
        sources.read_toml(&path).expect("parse");
        sources.read_env(|name| (name == "SEISMO_LISTEN").then(|| "127.0.0.1:9001".to_owned()));
        let c = Config::from_sources(&sources).expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.log, "debug");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seismo.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").expect("write");
        let error = Sources::default()
            .read_toml(&path)
            .expect_err("typo")
            .to_string();
        assert!(error.contains("unknown key lisen"), "{error}");
    }
}
