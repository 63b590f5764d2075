//! `ErrorEvent`: the one internal shape every source (Sentry, OTLP, native JSON) normalizes to.
//!
//! Everything downstream — grouping, scrubbing, the writer, the API — reads only this type,
//! so a new source is a new parser and nothing else.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ProjectId;

/// Where an event came in; also the `source` label of the ingestion metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Sentry,
    OtlpHttp,
    OtlpGrpc,
    Native,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sentry => "sentry",
            Source::OtlpHttp => "otlp_http",
            Source::OtlpGrpc => "otlp_grpc",
            Source::Native => "native",
        }
    }
}

/// Severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Parses the names SDKs use (`warn`, `critical`, …) case-insensitively.
    pub fn from_name(name: &str) -> Option<Level> {
        match name.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Level::Debug),
            "info" | "log" | "notice" | "default" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" | "err" => Some(Level::Error),
            "fatal" | "critical" | "crit" | "emergency" | "alert" | "panic" => Some(Level::Fatal),
            _ => None,
        }
    }

    /// Numeric levels as Python's `logging` defines them (10 debug … 50 critical).
    pub fn from_number(n: f64) -> Level {
        match n {
            n if n >= 50.0 => Level::Fatal,
            n if n >= 40.0 => Level::Error,
            n if n >= 30.0 => Level::Warning,
            n if n >= 20.0 => Level::Info,
            _ => Level::Debug,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stack frame, as much as the source told us.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub function: Option<String>,
    pub module: Option<String>,
    pub filename: Option<String>,
    pub lineno: Option<u32>,
    pub in_app: Option<bool>,
}

/// One exception of a chain. Frames are ordered caller first, crashing frame last
/// (Sentry's order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    #[serde(rename = "type")]
    pub ty: String,
    pub value: Option<String>,
    pub module: Option<String>,
    pub frames: Vec<Frame>,
}

/// The normalized error event.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorEvent {
    pub event_id: Uuid,
    pub project_id: ProjectId,
    pub source: Source,
    pub received_at: DateTime<Utc>,
    /// When the error happened, as the client said (falls back to `received_at`).
    pub timestamp: DateTime<Utc>,
    pub level: Level,
    pub platform: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub message: Option<String>,
    /// The exception chain, innermost cause first, the raised exception last (Sentry's order).
    pub exceptions: Vec<Exception>,
    pub tags: BTreeMap<String, String>,
    /// A fingerprint the client chose; may contain `{{ default }}`.
    pub fingerprint: Option<Vec<String>>,
    /// The transaction or route the error happened in, when known.
    pub transaction: Option<String>,
    pub trace_id: Option<String>,
    /// False when the application did not catch the error (crash, `mechanism.handled=false`).
    pub handled: bool,
    /// The original payload, as received (minus NUL characters).
    pub payload: serde_json::Value,
}

impl ErrorEvent {
    /// Removes NUL characters from every text of the event, its payload's keys and strings
    /// included. PostgreSQL's `text` and `jsonb` cannot hold U+0000: one such event would
    /// make the whole batch's transaction fail, and with it other clients' events. Every
    /// source's events pass here before they are queued.
    pub fn remove_nul(&mut self) {
        let texts = [
            &mut self.platform,
            &mut self.release,
            &mut self.environment,
            &mut self.service,
            &mut self.message,
            &mut self.transaction,
            &mut self.trace_id,
        ];
        texts.into_iter().flatten().for_each(remove_nul_in);
        for exception in &mut self.exceptions {
            remove_nul_in(&mut exception.ty);
            exception.value.iter_mut().for_each(remove_nul_in);
            exception.module.iter_mut().for_each(remove_nul_in);
            for frame in &mut exception.frames {
                let texts = [&mut frame.function, &mut frame.module, &mut frame.filename];
                texts.into_iter().flatten().for_each(remove_nul_in);
            }
        }
        if self
            .tags
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            self.tags = std::mem::take(&mut self.tags)
                .into_iter()
                .map(|(mut k, mut v)| {
                    remove_nul_in(&mut k);
                    remove_nul_in(&mut v);
                    (k, v)
                })
                .collect();
        }
        self.fingerprint
            .iter_mut()
            .flatten()
            .for_each(remove_nul_in);
        remove_nul_in_json(&mut self.payload);
    }

    /// The exception that was raised last: the one the issue is named after.
    pub fn main_exception(&self) -> Option<&Exception> {
        self.exceptions.last()
    }
}

fn remove_nul_in(text: &mut String) {
    if text.contains('\0') {
        text.retain(|c| c != '\0');
    }
}

/// Removes NUL characters from every string and key of a JSON value. Walks it with an
/// explicit stack: a payload built by a source (not parsed with serde_json's depth limit)
/// may be nested deeper than the call stack allows.
pub fn remove_nul_in_json(root: &mut serde_json::Value) {
    use serde_json::Value;
    let mut stack = vec![root];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) => remove_nul_in(text),
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| (k.replace('\0', ""), v))
                        .collect();
                }
                stack.extend(map.values_mut());
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
impl ErrorEvent {
    /// An error event with nothing in it, for unit tests to fill in.
    pub fn blank() -> ErrorEvent {
        let now = Utc::now();
        ErrorEvent {
            event_id: Uuid::nil(),
            project_id: ProjectId(1),
            source: Source::Sentry,
            received_at: now,
            timestamp: now,
            level: Level::Error,
            platform: None,
            release: None,
            environment: None,
            service: None,
            message: None,
            exceptions: Vec::new(),
            tags: BTreeMap::new(),
            fingerprint: None,
            transaction: None,
            trace_id: None,
            handled: true,
            payload: serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod nul_tests {
    use super::*;

    #[test]
    fn nul_characters_are_removed_everywhere() {
        let mut event = ErrorEvent::blank();
        event.message = Some("a\0b".into());
        event.exceptions.push(Exception {
            ty: "Nul\0Error".into(),
            value: Some("\0".into()),
            module: None,
            frames: vec![Frame {
                function: Some("f\0".into()),
                ..Frame::default()
            }],
        });
        event.tags.insert("k\0".into(), "v\0".into());
        event.fingerprint = Some(vec!["x\0".into()]);
        let mut deep = serde_json::json!("leaf\0");
        for _ in 0..1_000 {
            deep = serde_json::json!({"n\0": [deep]});
        }
        event.payload = deep;
        event.remove_nul();
        // The deep payload is taken apart level by level: printing or dropping it whole
        // would recurse.
        let mut value = std::mem::take(&mut event.payload);
        let shown = format!("{event:?}");
        assert!(!shown.contains("\\0"), "{shown}");
        assert_eq!(event.message.as_deref(), Some("ab"));
        assert_eq!(event.tags.get("k").map(String::as_str), Some("v"));
        while let Some(inner) = value
            .get_mut("n")
            .and_then(|n| n.get_mut(0))
            .map(std::mem::take)
        {
            value = inner;
        }
        assert_eq!(value, "leaf");
    }
}
