//! Which top-level members of a JSON text scrubbing could change, found by reading the
//! text once, without building its tree.
//!
//! Most members of an event hold no secret, and building a tree only to find that out cost
//! more than the rest of ingestion. [`MemberScan`] visits a member's text with the same
//! checks scrubbing makes (secret key names, secret values in strings, card numbers, client
//! addresses) and stops at the first that could fire. A member it reports is then parsed
//! and scrubbed as a tree, which decides; a member it passes is stored as it came.
//!
//! The scan may report more than scrubbing would change, never less:
//! - a `[name, value]` pair with a secret name counts wherever it is, although scrubbing
//!   reads pairs only in lists made of nothing else;
//! - any `ip_address` or `REMOTE_ADDR` key in `user` or `request` counts, although
//!   scrubbing drops the client's address at one place in each.
//!
//! An object that repeats a key is reported too, with scrubbing on or off: its tree keeps
//! the last value only, so the text holds a value the stored tree would not.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{values, Scrubber, Settings, IP_POINTERS};
use crate::model::json::BorrowedKey;

/// How many keys of one object are compared one by one before they go into a set.
const LINEAR_KEYS: usize = 16;

/// The scan of one event's members: the key rules are built once per event.
pub struct MemberScan {
    /// `None` when scrubbing is off: only repeated keys are looked for.
    scrubber: Option<Scrubber>,
}

/// Why a scan stopped early: something was found (or the text did not parse, which the
/// tree's parse then reports).
#[derive(Debug)]
struct Found;

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("found")
    }
}

impl MemberScan {
    pub fn new(settings: &Settings) -> MemberScan {
        MemberScan {
            scrubber: settings.enabled.then(|| Scrubber::new(settings)),
        }
    }

    /// Whether the payload member `key` (its value's text `member`) must be parsed and
    /// scrubbed as a tree: scrubbing could change it, or it repeats a key.
    pub fn must_rebuild(&mut self, key: &str, member: &RawValue) -> bool {
        let client_address_key = match &mut self.scrubber {
            Some(scrubber) => {
                if scrubber.keys.is_secret(key) {
                    return true;
                }
                match scrubber.keep_ip_addresses {
                    true => None,
                    false => client_address_key(key),
                }
            }
            None => None,
        };
        let mut state = State {
            scrubber: self.scrubber.as_mut(),
            client_address_key,
            keys_seen: Vec::new(),
        };
        let mut deserializer = serde_json::Deserializer::from_str(member.get());
        Scan {
            state: &mut state,
            first_of_array: false,
        }
        .deserialize(&mut deserializer)
        .is_err()
    }
}

/// The key that holds the client's address inside the payload member `key`, if it has one:
/// the last part of its place in `IP_POINTERS` (`ip_address` in `user`).
fn client_address_key(key: &str) -> Option<&'static str> {
    IP_POINTERS
        .iter()
        .find(|(top, _)| *top == key)
        .and_then(|(_, pointer)| pointer.rsplit('/').next())
}

/// What one member's scan carries through the nesting.
struct State<'s, 'de> {
    scrubber: Option<&'s mut Scrubber>,
    client_address_key: Option<&'static str>,
    /// The keys of the objects being read, innermost last (each object truncates back to
    /// where it began when it ends).
    keys_seen: Vec<Cow<'de, str>>,
}

impl State<'_, '_> {
    fn check_key(&mut self, key: &str) -> Result<(), Found> {
        let client_address = self.client_address_key == Some(key);
        let secret = self
            .scrubber
            .as_mut()
            .is_some_and(|s| s.keys.is_secret(key));
        match client_address || secret {
            true => Err(Found),
            false => Ok(()),
        }
    }

    fn check_text(&mut self, text: &str) -> Result<(), Found> {
        let secrets = self.scrubber.as_mut().map_or(0, |s| s.text(text).1);
        match secrets {
            0 => Ok(()),
            _ => Err(Found),
        }
    }

    fn check_number(&self, n: u64) -> Result<(), Found> {
        match self.scrubber.is_some() && values::is_card_number(n) {
            true => Err(Found),
            false => Ok(()),
        }
    }
}

/// Visits one value. Returns, for a string that is the first item of an array, whether it
/// is a secret key name (the array may be a `[name, value]` pair).
struct Scan<'a, 's, 'de> {
    state: &'a mut State<'s, 'de>,
    first_of_array: bool,
}

impl<'de> DeserializeSeed<'de> for Scan<'_, '_, 'de> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_, '_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<bool, E> {
        self.state.check_number(n).map_err(E::custom)?;
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
        self.state.check_text(text).map_err(E::custom)?;
        let secret_name = self.first_of_array
            && self
                .state
                .scrubber
                .as_mut()
                .is_some_and(|s| s.keys.is_secret(text));
        Ok(secret_name)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut items = 0;
        let mut secret_name = false;
        loop {
            let item = Scan {
                state: &mut *self.state,
                first_of_array: items == 0,
            };
            match seq.next_element_seed(item)? {
                Some(secret) => secret_name |= secret && items == 0,
                None => break,
            }
            items += 1;
        }
        if secret_name && items == 2 {
            return Err(de::Error::custom(Found));
        }
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        // A small object's keys are compared one by one on the shared stack; past
        // `LINEAR_KEYS` they move to a set of the object's own, so that an object of many
        // keys (a text of a megabyte can hold a hundred thousand) costs no more than its
        // size.
        let start = self.state.keys_seen.len();
        let mut many: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            self.state.check_key(&key).map_err(de::Error::custom)?;
            let repeated = match &mut many {
                Some(keys) => !keys.insert(key),
                None if self.state.keys_seen[start..].contains(&key) => true,
                None => {
                    self.state.keys_seen.push(key);
                    if self.state.keys_seen.len() - start > LINEAR_KEYS {
                        many = Some(self.state.keys_seen.drain(start..).collect());
                    }
                    false
                }
            };
            if repeated {
                return Err(de::Error::custom(Found));
            }
            map.next_value_seed(Scan {
                state: &mut *self.state,
                first_of_array: false,
            })?;
        }
        self.state.keys_seen.truncate(start);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebuilds(settings: &Settings, key: &str, member: &str) -> bool {
        let member: Box<RawValue> = serde_json::from_str(member).expect("valid JSON");
        MemberScan::new(settings).must_rebuild(key, &member)
    }

    fn on(key: &str, member: &str) -> bool {
        rebuilds(&Settings::default(), key, member)
    }

    /// An object of `n` distinct keys, then `extra` as its last member.
    fn wide_object(n: usize, extra: &str) -> String {
        let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\": {i}")).collect();
        format!("{{{}, {extra}}}", keys.join(", "))
    }

    #[test]
    fn a_member_with_nothing_to_scrub_stays_text() {
        let frames = r#"{"values": [{"type": "E", "value": "order 12 failed",
            "stacktrace": {"frames": [{"function": "f", "lineno": 3, "vars": {"limit": 20}}]}}]}"#;
        assert!(!on("exception", frames));
        assert!(!on(
            "request",
            r#"{"url": "https://shop.example.com/a", "headers": [["Accept", "*/*"]]}"#
        ));
        assert!(!on("user", r#"{"id": "7"}"#));
        assert!(!on("extra", &wide_object(100, "\"other\": 1")));
    }

    #[test]
    fn what_scrubbing_would_change_is_reported() {
        assert!(on("password", "1"));
        assert!(on("extra", r#"{"nested": [{"db_password": "x"}]}"#));
        assert!(on(
            "request",
            r#"{"headers": [["Authorization", "Basic abc"], ["Accept", "*"]]}"#
        ));
        assert!(on(
            "message",
            r#""token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl""#
        ));
        assert!(on("extra", r#"{"card": 4111111111111111}"#));
        assert!(on("extra", r#"["https://me:hunter2@example.com/"]"#));
        assert!(on("user", r#"{"id": "7", "ip_address": "10.0.0.1"}"#));
        assert!(on("request", r#"{"env": {"REMOTE_ADDR": "10.0.0.1"}}"#));
    }

    #[test]
    fn a_kept_client_address_is_not_reported() {
        let keep = Settings {
            keep_ip_addresses: true,
            ..Settings::default()
        };
        assert!(!rebuilds(&keep, "user", r#"{"ip_address": "10.0.0.1"}"#));
    }

    #[test]
    fn a_repeated_key_is_reported_in_objects_of_any_size_even_with_scrubbing_off() {
        let off = Settings {
            enabled: false,
            ..Settings::default()
        };
        for settings in [Settings::default(), off.clone()] {
            assert!(rebuilds(&settings, "extra", r#"{"a": {"b": 1, "b": 2}}"#));
            assert!(rebuilds(&settings, "extra", &wide_object(3, "\"k1\": 0")));
            assert!(rebuilds(&settings, "extra", &wide_object(100, "\"k1\": 0")));
            assert!(rebuilds(
                &settings,
                "extra",
                &wide_object(100, "\"k99\": 0")
            ));
            // The same key in sibling objects is no repetition.
            assert!(!rebuilds(
                &settings,
                "extra",
                r#"[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]"#
            ));
            assert!(!rebuilds(
                &settings,
                "extra",
                &wide_object(100, r#""in": {"k1": 1}"#)
            ));
        }
        assert!(!rebuilds(&off, "password", r#""hunter2""#));
    }
}
