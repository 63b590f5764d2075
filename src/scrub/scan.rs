//! The top-level members of a JSON object's text, and which of them scrubbing could
//! change, found by reading the text once, without building its tree.
//!
//! Most members of an event hold no secret, and building a tree only to find that out cost
//! more than the rest of ingestion. [`MemberScan::members`] visits the text with the same
//! checks scrubbing makes (secret key names, secret values in strings, card numbers, client
//! addresses), member by member, and notes each member where one could fire. A member it
//! reports is then parsed and scrubbed as a tree, which decides; a member it passes is
//! stored as it came. The same pass splits the text into its members: each member's value
//! text lies between its key, borrowed from the text, and the next key
//! (`model::json::member_values`).
//!
//! One member may be read by its owner as the scan passes ([`ReadMember`]): ingestion reads
//! the stack traces there, making the scan's [`Checks`] on everything it reads or skips, so
//! the largest member of an event is read once.
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

use super::{values, Scrubber, Settings, IP_POINTERS};
use crate::model::json::{self, BorrowedKey};

/// How many keys of one object are compared one by one before they go into a set.
const LINEAR_KEYS: usize = 16;

/// The scan of one event's members: the key rules are built once per event.
pub struct MemberScan {
    /// `None` when scrubbing is off: only repeated keys are looked for.
    scrubber: Option<Scrubber>,
}

/// A top-level member of an object's text, as the scan found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedMember<'a> {
    /// The key, as it is in the text (it holds no escape).
    pub key: &'a str,
    /// The value's text.
    pub value: &'a str,
    /// Scrubbing could change the value, or it repeats a key: it must be parsed and
    /// scrubbed as a tree.
    pub must_rebuild: bool,
}

impl MemberScan {
    pub fn new(settings: &Settings) -> MemberScan {
        MemberScan {
            scrubber: settings.enabled.then(|| Scrubber::new(settings)),
        }
    }

    /// The members of the object `text`, in their order, each scanned. `None` for invalid
    /// JSON, anything but an object, and an object with a key that holds an escape (it
    /// cannot be borrowed).
    ///
    /// The member named by `reader` is handed to it, with the checks it must make as it
    /// reads (see [`ReadMember`]): that member is read once, for its owner and the scan.
    pub fn members<'a, R: ReadMember<'a>>(
        &mut self,
        text: &'a str,
        reader: &mut R,
    ) -> Option<Vec<ScannedMember<'a>>> {
        let mut checks = Checks {
            keep_ip_addresses: self.scrubber.as_ref().is_none_or(|s| s.keep_ip_addresses),
            scrubber: self.scrubber.as_mut(),
            client_address_key: None,
            keys_seen: Vec::new(),
            found: false,
        };
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let scanned = deserializer
            .deserialize_map(TopLevel {
                checks: &mut checks,
                reader,
            })
            .ok()?;
        deserializer.end().ok()?;
        let keys: Vec<&str> = scanned.iter().map(|(key, _)| *key).collect();
        let values = json::member_values(text, &keys)?;
        Some(
            scanned
                .into_iter()
                .zip(values)
                .map(|((key, must_rebuild), value)| ScannedMember {
                    key,
                    value,
                    must_rebuild,
                })
                .collect(),
        )
    }
}

/// Reads one top-level member for its owner during the scan, making the scan's checks on
/// what it reads: every key of every object goes to [`Checks::key`], every string to
/// [`Checks::text`], every unsigned number to [`Checks::number`], and every value it does
/// not read itself to [`Checks::value`] (or, once opened, [`Checks::seq`] /
/// [`Checks::map`]).
pub trait ReadMember<'de> {
    /// The key of the member it reads (`None`: it reads none).
    fn key(&self) -> Option<&str>;

    fn read<D: Deserializer<'de>>(
        &mut self,
        deserializer: D,
        checks: &mut Checks<'_, 'de>,
    ) -> Result<(), D::Error>;
}

/// No member is read for anyone: the scan reads them all itself.
pub struct NoReader;

impl<'de> ReadMember<'de> for NoReader {
    fn key(&self) -> Option<&str> {
        None
    }

    /// Never handed a member; were it, it would only check it, as the scan does.
    fn read<D: Deserializer<'de>>(
        &mut self,
        deserializer: D,
        checks: &mut Checks<'_, 'de>,
    ) -> Result<(), D::Error> {
        checks.value().deserialize(deserializer).map(drop)
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

/// The scan's checks, and what they carry through the nesting of one member.
pub struct Checks<'s, 'de> {
    scrubber: Option<&'s mut Scrubber>,
    /// The client's address is kept (or scrubbing is off): no key of it is looked for.
    keep_ip_addresses: bool,
    client_address_key: Option<&'static str>,
    /// The keys of the objects being read, innermost last (each object truncates back to
    /// where it began when it ends).
    keys_seen: Vec<Cow<'de, str>>,
    /// Something in the member could be scrubbed: the rest of it is only read through.
    found: bool,
}

impl<'s, 'de> Checks<'s, 'de> {
    /// Starts the member `key`: a secret name makes all of it secret.
    fn begin_member(&mut self, key: &str) {
        self.client_address_key = match self.keep_ip_addresses {
            true => None,
            false => client_address_key(key),
        };
        self.found = self.is_secret_key(key);
    }

    /// Whether scrubbing filters the value under a key of this name.
    fn is_secret_key(&mut self, key: &str) -> bool {
        self.scrubber
            .as_mut()
            .is_some_and(|s| s.keys.is_secret(key))
    }

    /// Opens an object: its keys are checked with [`Checks::key`] until
    /// [`Checks::end_object`].
    pub fn object(&self) -> ObjectKeys<'de> {
        ObjectKeys {
            start: self.keys_seen.len(),
            many: None,
        }
    }

    /// Checks a key of `object`: a secret or client-address name, or one the object
    /// already had.
    pub fn key(&mut self, object: &mut ObjectKeys<'de>, key: Cow<'de, str>) {
        if self.found {
            return;
        }
        self.found = self.client_address_key == Some(&*key)
            || self.is_secret_key(&key)
            || self.repeats(key, object);
    }

    /// Closes the innermost object.
    pub fn end_object(&mut self, object: ObjectKeys<'de>) {
        self.keys_seen.truncate(object.start);
    }

    /// Whether `key` repeats a key of `object`; remembers it otherwise. A small object's
    /// keys are compared one by one on the shared stack; past `LINEAR_KEYS` they move to a
    /// set of the object's own, so that an object of many keys (a text of a megabyte can
    /// hold a hundred thousand) costs no more than its size.
    fn repeats(&mut self, key: Cow<'de, str>, object: &mut ObjectKeys<'de>) -> bool {
        if let Some(keys) = &mut object.many {
            return !keys.insert(key);
        }
        let start = object.start;
        if self.keys_seen[start..].contains(&key) {
            return true;
        }
        self.keys_seen.push(key);
        if self.keys_seen.len() - start > LINEAR_KEYS {
            object.many = Some(self.keys_seen.drain(start..).collect());
        }
        false
    }

    /// Checks a string value.
    pub fn text(&mut self, text: &str) {
        if self.found {
            return;
        }
        self.found = self.scrubber.as_mut().is_some_and(|s| s.text(text).1 > 0);
    }

    /// Checks an unsigned number (it may be a card number).
    pub fn number(&mut self, n: u64) {
        if self.found {
            return;
        }
        self.found = self.scrubber.is_some() && values::is_card_number(n);
    }

    /// A seed that checks a whole value.
    pub fn value(&mut self) -> Scan<'_, 's, 'de> {
        Scan {
            checks: self,
            first_of_array: false,
        }
    }

    /// Checks the rest of an opened list.
    pub fn seq<A: SeqAccess<'de>>(&mut self, seq: A) -> Result<(), A::Error> {
        self.value().visit_seq(seq).map(drop)
    }

    /// Checks the rest of an opened object.
    pub fn map<A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error> {
        self.value().visit_map(map).map(drop)
    }

    /// Whether `text`, the first item of an array, is a secret key name (the array may be a
    /// `[name, value]` pair).
    fn is_secret_name(&mut self, text: &str) -> bool {
        !self.found && self.is_secret_key(text)
    }
}

/// The keys an object has shown so far (see [`Checks::key`]).
pub struct ObjectKeys<'de> {
    /// Where the object's keys begin in `Checks::keys_seen`.
    start: usize,
    /// Its keys, once they are more than `LINEAR_KEYS`.
    many: Option<HashSet<Cow<'de, str>>>,
}

/// Visits the top-level object: each member's key, borrowed, and whether it was found.
struct TopLevel<'a, 's, 'de, R> {
    checks: &'a mut Checks<'s, 'de>,
    reader: &'a mut R,
}

impl<'de, R: ReadMember<'de>> Visitor<'de> for TopLevel<'_, '_, 'de, R> {
    type Value = Vec<(&'de str, bool)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            let Cow::Borrowed(key) = key else {
                return Err(de::Error::custom("a top-level key holds an escape"));
            };
            self.checks.begin_member(key);
            match self.reader.key() == Some(key) {
                true => map.next_value_seed(ReadSeed {
                    checks: &mut *self.checks,
                    reader: &mut *self.reader,
                })?,
                false => drop(map.next_value_seed(self.checks.value())?),
            }
            members.push((key, self.checks.found));
        }
        Ok(members)
    }
}

/// Hands a member's value to its reader.
struct ReadSeed<'a, 's, 'de, R> {
    checks: &'a mut Checks<'s, 'de>,
    reader: &'a mut R,
}

impl<'de, R: ReadMember<'de>> DeserializeSeed<'de> for ReadSeed<'_, '_, 'de, R> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.reader.read(deserializer, self.checks)
    }
}

/// Visits one value. Returns, for a string that is the first item of an array, whether it
/// is a secret key name (the array may be a `[name, value]` pair).
pub struct Scan<'a, 's, 'de> {
    checks: &'a mut Checks<'s, 'de>,
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
        self.checks.number(n);
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
        self.checks.text(text);
        Ok(self.first_of_array && self.checks.is_secret_name(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut items = 0;
        let mut secret_name = false;
        loop {
            let item = Scan {
                checks: &mut *self.checks,
                first_of_array: items == 0,
            };
            match seq.next_element_seed(item)? {
                Some(secret) => secret_name |= secret && items == 0,
                None => break,
            }
            items += 1;
        }
        if secret_name && items == 2 {
            self.checks.found = true;
        }
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut object = self.checks.object();
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            // Once something is found, the rest of the member is only read through.
            self.checks.key(&mut object, key);
            map.next_value_seed(self.checks.value())?;
        }
        self.checks.end_object(object);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the member `key` of an object holding only it must be rebuilt.
    fn rebuilds(settings: &Settings, key: &str, member: &str) -> bool {
        let text = format!(
            "{{{}: {member}}}",
            serde_json::to_string(key).expect("a key")
        );
        let members = MemberScan::new(settings)
            .members(&text, &mut NoReader)
            .expect("an object");
        assert_eq!(members.len(), 1);
        assert_eq!((members[0].key, members[0].value), (key, member.trim()));
        members[0].must_rebuild
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

    #[test]
    fn the_members_come_split_in_their_order_each_scanned_on_its_own() {
        let text = " {\"password\" : \"x\" ,\n\t\"extra\":{\"a\": [1, \"two\"]},\"user\" :{\"ip_address\": \"10.0.0.1\"}\r\n,\"n\": 1e2 } \n";
        let members = MemberScan::new(&Settings::default())
            .members(text, &mut NoReader)
            .expect("an object");
        let split: Vec<(&str, &str, bool)> = members
            .iter()
            .map(|m| (m.key, m.value, m.must_rebuild))
            .collect();
        assert_eq!(
            split,
            [
                ("password", "\"x\"", true),
                ("extra", "{\"a\": [1, \"two\"]}", false),
                ("user", "{\"ip_address\": \"10.0.0.1\"}", true),
                ("n", "1e2", false),
            ]
        );
        let empty = MemberScan::new(&Settings::default()).members("{ }", &mut NoReader);
        assert_eq!(empty, Some(Vec::new()));
    }

    #[test]
    fn texts_that_cannot_be_split_are_declined() {
        for text in [
            r#"{"t\u00e9": 1}"#,
            r#"{"a": 1} {"b": 2}"#,
            r#"{"a": 1"#,
            r#"{"a": tru}"#,
            "[1, 2]",
            r#""text""#,
            "",
        ] {
            let members = MemberScan::new(&Settings::default()).members(text, &mut NoReader);
            assert_eq!(members, None, "{text}");
        }
    }
}
