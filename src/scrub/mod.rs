//! Scrubbing: secrets are removed from every event *before* it is stored or sent anywhere.
//!
//! Error events carry whatever the application had in hand when it failed: passwords in
//! request bodies, tokens in headers, card numbers in local variables. None of that belongs
//! in an error tracker, so scrubbing is on by default, for every source, and a project has
//! to turn it off explicitly.
//!
//! What is scrubbed:
//!
//! - **Secret keys** (`keys`): the value under a key named like a secret (`password`,
//!   `Authorization`, `db_password`, `GITHUB_TOKEN`, … compared case- and
//!   separator-insensitively, plus a project's extra names, minus its safe names) is
//!   replaced whatever its type. Keys are found in JSON objects, in `[name, value]` pair
//!   lists (Sentry sends headers, query strings and tags that way), and as `key=value`,
//!   `key: value` or `"key": "value"` inside strings: query strings, form bodies, cookie
//!   strings, log lines.
//! - **Secret values** (`values`), recognized by shape in any string whatever its key:
//!   card numbers (Luhn-checked), `Bearer` / `Basic` credentials, PEM private keys, AWS,
//!   GitHub, Slack, Google and Stripe keys, JWTs, and passwords in URLs. Only the secret
//!   part of the string is replaced; the scheme word and URL user name stay.
//! - **Client IP addresses**: `user.ip_address` (also `{{auto}}`, which asks the server to
//!   fill in the sender's address) and `request.env.REMOTE_ADDR`, unless the project keeps
//!   them. IP addresses elsewhere are left alone.
//!
//! How: each secret becomes the string `"[Filtered]"` in place, so the event keeps its
//! structure (the header is still there, the frame still has its variable) and shows where
//! something was removed. The payload is walked once, without recursion, and each string
//! goes through cheap byte checks before any regex runs. Scrubbing is idempotent: nothing
//! matches `[Filtered]`, so a second pass replaces nothing.
//!
//! Ingestion first reads each top-level member's text with [`MemberScan`] (`scan.rs`), which
//! makes the same checks without building a tree, and scrubs as a tree only the members it
//! reports: the rest hold nothing to replace.

mod keys;
mod scan;
mod values;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ErrorEvent;
use keys::KeyRules;
pub use scan::{Checks, MemberScan, NoReader, ObjectKeys, ReadMember};
use values::Hints;

/// What a secret is replaced with.
pub const FILTERED: &str = "[Filtered]";

/// A project's scrubbing settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Off only when a project says so explicitly.
    pub enabled: bool,
    /// More key names to treat as secret (matched like the built-in ones).
    pub extra_keys: Vec<String>,
    /// Key names never scrubbed, even if they look secret (exact, case-insensitive match
    /// after normalization). Values under them still go through the value patterns: a
    /// card number is a card number whatever its key.
    pub safe_keys: Vec<String>,
    /// Keep client IP addresses (`user.ip_address`, `request.env.REMOTE_ADDR`, `{{auto}}`);
    /// off by default.
    pub keep_ip_addresses: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            extra_keys: Vec::new(),
            safe_keys: Vec::new(),
            keep_ip_addresses: false,
        }
    }
}

/// Scrubs the event in place: its payload and its normalized fields (message, exception
/// values, tags, transaction). Returns how many values were replaced. Does nothing when
/// disabled.
pub fn scrub_event(event: &mut ErrorEvent, settings: &Settings) -> usize {
    let scrubbed = scrub_event_parts(event, settings);
    scrubbed.payload + scrubbed.fields
}

/// How many values [`scrub_event_parts`] replaced, and where. Every change to the payload
/// is counted and its top-level member named, so a payload member not named in
/// `changed_members` is exactly what arrived (ingestion then stores its received bytes
/// instead of serializing it again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// In the payload (the event as received).
    pub payload: usize,
    /// In the normalized fields: message, exception values, transaction, tags.
    pub fields: usize,
    /// The payload's top-level keys under which something was replaced (`user` for a
    /// dropped IP address, say), in no particular order.
    pub changed_members: Vec<String>,
}

/// [`scrub_event`], counting the payload's replacements apart from the fields'.
pub fn scrub_event_parts(event: &mut ErrorEvent, settings: &Settings) -> Scrubbed {
    if !settings.enabled {
        return Scrubbed::default();
    }
    let mut scrubber = Scrubber::new(settings);
    let mut changed_members = Vec::new();
    let payload = scrubber.payload(&mut event.payload, &mut changed_members);
    let mut count = 0;
    let exception_values = event.exceptions.iter_mut().filter_map(|e| e.value.as_mut());
    for text in event
        .message
        .iter_mut()
        .chain(event.transaction.iter_mut())
        .chain(exception_values)
    {
        count += scrubber.string(text);
    }
    for (key, value) in event.tags.iter_mut() {
        count += if scrubber.keys.is_secret(key) {
            filter_string(value)
        } else {
            scrubber.string(value)
        };
    }
    Scrubbed {
        payload,
        fields: count,
        changed_members,
    }
}

/// Scrubs any JSON value in place (used for payloads; exposed for tests and other
/// sources). Returns how many values were replaced.
pub fn scrub_value(value: &mut Value, settings: &Settings) -> usize {
    if !settings.enabled {
        return 0;
    }
    Scrubber::new(settings).payload(value, &mut Vec::new())
}

/// Scrubs secrets that appear inside free text (messages, URLs, log lines).
pub fn scrub_text<'a>(text: &'a str, settings: &Settings) -> Cow<'a, str> {
    if !settings.enabled {
        return Cow::Borrowed(text);
    }
    Scrubber::new(settings).text(text).0
}

/// One scrub's state: the key rules, built once per event rather than once per key.
struct Scrubber {
    keys: KeyRules,
    keep_ip_addresses: bool,
}

impl Scrubber {
    fn new(settings: &Settings) -> Self {
        Scrubber {
            keys: KeyRules::new(settings),
            keep_ip_addresses: settings.keep_ip_addresses,
        }
    }

    /// An event payload, member by member: the IP fields at their known places, then
    /// everything. Names in `changed` each top-level member in which something was replaced.
    fn payload(&mut self, root: &mut Value, changed: &mut Vec<String>) -> usize {
        let Value::Object(members) = root else {
            return self.walk(root);
        };
        let mut count = 0;
        for (key, member) in members.iter_mut() {
            let replaced = if self.keys.is_secret(key) {
                filter(member)
            } else {
                let ips = if self.keep_ip_addresses {
                    0
                } else {
                    filter_ip_address(key, member)
                };
                ips + self.walk(member)
            };
            if replaced > 0 {
                changed.push(key.clone());
                count += replaced;
            }
        }
        count
    }

    /// Visits every value once, with an explicit stack: a deeply nested payload cannot
    /// overflow the call stack.
    fn walk(&mut self, root: &mut Value) -> usize {
        let mut count = 0;
        // Room for a typical event's depth times its breadth, so the stack rarely grows.
        let mut stack = Vec::with_capacity(64);
        stack.push(root);
        while let Some(value) = stack.pop() {
            if let Value::Number(n) = &*value {
                if n.as_u64().is_some_and(values::is_card_number) {
                    count += filter(value);
                }
                continue;
            }
            match value {
                Value::Object(map) => {
                    for (key, child) in map.iter_mut() {
                        if self.keys.is_secret(key) {
                            count += filter(child);
                        } else {
                            stack.push(child);
                        }
                    }
                }
                // One arm: a guard would hold the borrow of `items` across two arms.
                Value::Array(items) => {
                    if is_pair_list(items) {
                        count += self.pairs(items, &mut stack);
                    } else {
                        stack.extend(items.iter_mut());
                    }
                }
                Value::String(text) => count += self.string(text),
                Value::Number(_) | Value::Bool(_) | Value::Null => {}
            }
        }
        count
    }

    /// A `[name, value]` pair list: the name is the key. Returns how many values were
    /// filtered; the rest, names included (they are strings too), go on the stack.
    fn pairs<'v>(&mut self, items: &'v mut [Value], stack: &mut Vec<&'v mut Value>) -> usize {
        let mut count = 0;
        for pair in items.iter_mut().filter_map(Value::as_array_mut) {
            if let [name, child] = pair.as_mut_slice() {
                if name.as_str().is_some_and(|name| self.keys.is_secret(name)) {
                    count += filter(child);
                } else {
                    stack.push(child);
                }
                stack.push(name);
            }
        }
        count
    }

    /// Scrubs a string in place; returns how many secrets it held.
    fn string(&mut self, text: &mut String) -> usize {
        let (scrubbed, count) = match self.text(text) {
            (Cow::Owned(scrubbed), count) if count > 0 => (scrubbed, count),
            _ => return 0,
        };
        *text = scrubbed;
        count
    }

    /// Value patterns first, then `key=value` pairs: a URL's password or a JWT is then
    /// replaced precisely (`token=eyJ…` keeps its `token=`), and the pair scan finds the
    /// `[Filtered]` already there and moves on.
    fn text<'a>(&mut self, text: &'a str) -> (Cow<'a, str>, usize) {
        let hints = Hints::of(text);
        let (mut text, mut count) = values::scrub_values(text, &hints);
        if hints.separators {
            let (scrubbed, n) = keys::scrub_pairs(&text, &mut self.keys);
            if n > 0 {
                let scrubbed = scrubbed.into_owned();
                text = Cow::Owned(scrubbed);
                count += n;
            }
        }
        (text, count)
    }
}

/// Sentry sends headers, query strings, cookies and tags either as an object or as a list
/// of `[name, value]` pairs; a list made only of such pairs is read as the latter.
fn is_pair_list(items: &[Value]) -> bool {
    !items.is_empty()
        && items.iter().all(|item| {
            item.as_array()
                .is_some_and(|pair| pair.len() == 2 && pair[0].is_string())
        })
}

/// The places where Sentry SDKs put the client's address: `user.ip_address` and
/// `request.env.REMOTE_ADDR`, as (top-level member, pointer inside it).
const IP_POINTERS: [(&str, &str); 2] = [("user", "/ip_address"), ("request", "/env/REMOTE_ADDR")];

/// Filters the client's address if the payload member `key` holds one.
fn filter_ip_address(key: &str, member: &mut Value) -> usize {
    let Some((_, pointer)) = IP_POINTERS.iter().find(|(top, _)| *top == key) else {
        return 0;
    };
    match member.pointer_mut(pointer).filter(|ip| !ip.is_null()) {
        Some(ip) => filter(ip),
        None => 0,
    }
}

/// Replaces a value with `"[Filtered]"`; counts 0 when it already is.
fn filter(value: &mut Value) -> usize {
    if value.as_str() == Some(FILTERED) {
        return 0;
    }
    *value = Value::String(FILTERED.to_owned());
    1
}

fn filter_string(value: &mut String) -> usize {
    if value == FILTERED {
        return 0;
    }
    FILTERED.clone_into(value);
    1
}

#[cfg(test)]
mod tests;
