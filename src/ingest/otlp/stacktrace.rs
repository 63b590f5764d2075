//! Placeholder until the stack-trace parser lands.
use crate::ingest::Frame;
pub fn parse(_stacktrace: &str, _language: Option<&str>) -> Vec<Frame> {
    Vec::new()
}
