//! The stored payload of an event from its received JSON text.
//!
//! Serializing a parsed payload again costs as much as parsing it. When the text is exact
//! (parsing stripped no NUL and dropped no repeated key), the stored payload is made from
//! the text instead: as it is when scrubbing changed nothing, and otherwise member by
//! member, each top-level member as received unless scrubbing changed something inside it,
//! which is then serialized from the scrubbed tree. An event whose only scrubbed value is
//! the client's IP address re-serializes its `user` object, not its stack traces. A reader
//! that has split the text into members already (ingestion's scan does) hands them over, so
//! the text is not read again.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

/// The exact JSON text a payload was parsed from, and its top-level members that
/// scrubbing changed since.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedPayload<'a> {
    pub text: &'a [u8],
    /// The text's members, when the reader has split them already.
    pub members: Option<&'a [Member<'a>]>,
    pub changed_members: &'a [String],
}

/// A top-level member of a JSON object's text: its key (holding no escape) and its value's
/// text.
pub type Member<'a> = (&'a str, &'a str);

/// Appends the stored payload to `out`: the text, patched with the changed members of
/// `payload` (the scrubbed tree). Returns false, having written nothing, when the text
/// cannot be patched member by member (a key holds an escape): the caller then serializes
/// `payload` whole.
pub fn write_received(
    out: &mut Vec<u8>,
    received: ReceivedPayload<'_>,
    payload: &Value,
) -> Result<bool, serde_json::Error> {
    if received.changed_members.is_empty() {
        out.extend_from_slice(received.text);
        return Ok(true);
    }
    let split;
    let members = match received.members {
        Some(members) => members,
        None => match serde_json::from_slice::<Members<'_>>(received.text) {
            Ok(Members(members)) => {
                split = members;
                &split
            }
            Err(_) => return Ok(false),
        },
    };
    out.push(b'{');
    for (i, (key, raw)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // The key borrowed from the text holds no escape: it is written as it came.
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        let changed = received.changed_members.iter().any(|m| m == key);
        match payload.get(*key) {
            Some(scrubbed) if changed => serde_json::to_writer(&mut *out, scrubbed)?,
            _ => out.extend_from_slice(raw.as_bytes()),
        }
    }
    out.push(b'}');
    Ok(true)
}

/// A JSON object's members in their order, each value as its text. Fails on a key that
/// holds an escape (it cannot be borrowed) and on anything but an object.
struct Members<'a>(Vec<Member<'a>>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<&'de str, &'de RawValue>()? {
            members.push((key, value.get()));
        }
        Ok(Members(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str, changed: &[&str], payload: &Value) -> Option<Value> {
        let changed: Vec<String> = changed.iter().map(|m| (*m).to_owned()).collect();
        let received = ReceivedPayload {
            text: text.as_bytes(),
            members: None,
            changed_members: &changed,
        };
        let mut out = Vec::new();
        let patched = write_received(&mut out, received, payload).expect("writes");
        patched.then(|| serde_json::from_slice(&out).expect("valid JSON"))
    }

    #[test]
    fn unchanged_members_keep_their_text_and_changed_ones_come_from_the_tree() {
        let text = r#"{ "user" : {"id": "7", "ip_address": "10.0.0.1"},
            "exception": {"values": [{"type": "E", "value": "kept  as  sent"}]}, "n": 1e2 }"#;
        let mut scrubbed: Value = serde_json::from_str(text).expect("json");
        scrubbed["user"]["ip_address"] = "[Filtered]".into();
        let changed = vec!["user".to_owned()];
        let received = ReceivedPayload {
            text: text.as_bytes(),
            members: None,
            changed_members: &changed,
        };
        let mut out = Vec::new();
        assert!(write_received(&mut out, received, &scrubbed).expect("writes"));
        let out = String::from_utf8(out).expect("UTF-8");
        assert!(
            out.contains(r#""exception":{"values": [{"type": "E", "value": "kept  as  sent"}]}"#),
            "{out}"
        );
        assert!(out.contains(r#""n":1e2"#), "{out}");
        assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), scrubbed);
    }

    #[test]
    fn nothing_changed_is_the_text_itself() {
        let text = r#"{"a": [1, 2], "b": "x"}"#;
        let payload: Value = serde_json::from_str(text).expect("json");
        assert_eq!(stored(text, &[], &payload), Some(payload));
    }

    #[test]
    fn a_key_with_an_escape_is_left_to_the_caller() {
        let text = r#"{"pass\u0077ord": "hunter2", "b": 1}"#;
        let mut payload: Value = serde_json::from_str(text).expect("json");
        payload["password"] = "[Filtered]".into();
        assert_eq!(stored(text, &["password"], &payload), None);
    }
}
