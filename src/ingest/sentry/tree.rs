//! A JSON text parsed into a `serde_json::Value`, noting whether any object repeated a key.
//!
//! JSON allows `{"a": 1, "a": 2}`, and the tree keeps only the last value. Everything after
//! parsing (scrubbing above all) sees the tree, so the text as received may be stored in
//! place of the tree only when no value was dropped this way: a first value that scrubbing
//! never saw could otherwise hold a secret.
//!
//! [`parse_pruned`] builds only the keys a reader asks for, at any depth: what normalizing
//! an event reads of its stack traces is a small part of their text.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::model::json::BorrowedKey;

/// The tree of a JSON text.
pub struct Tree {
    pub value: Value,
    /// True when some object held a key twice (the tree keeps its last value).
    pub repeated_keys: bool,
}

/// Parses a whole JSON text (trailing whitespace only), as `serde_json::from_slice` does.
pub fn parse(text: &[u8]) -> Result<Tree, serde_json::Error> {
    match std::str::from_utf8(text) {
        // One pass over the whole text: the byte reader checks every string on its own,
        // which cost a few percent of ingestion's CPU.
        Ok(text) => build(&mut serde_json::Deserializer::from_str(text)),
        // The byte reader then fails at the string holding the bad bytes, and says where.
        Err(_) => build(&mut serde_json::Deserializer::from_slice(text)),
    }
}

/// Parses a whole JSON text into a tree of only the object members named in `keep`, at
/// every depth (arrays are kept whole, their items pruned alike). What is left out is
/// still checked to be valid JSON.
pub fn parse_pruned(text: &str, keep: &[&str]) -> Result<Value, serde_json::Error> {
    let repeated = Cell::new(false);
    let deserializer = &mut serde_json::Deserializer::from_str(text);
    let value = Builder {
        repeated: &repeated,
        keep: Some(keep),
    }
    .deserialize(&mut *deserializer)?;
    deserializer.end()?;
    Ok(value)
}

fn build<'de, R: serde_json::de::Read<'de>>(
    deserializer: &mut serde_json::Deserializer<R>,
) -> Result<Tree, serde_json::Error> {
    let repeated = Cell::new(false);
    let value = Builder {
        repeated: &repeated,
        keep: None,
    }
    .deserialize(&mut *deserializer)?;
    deserializer.end()?;
    Ok(Tree {
        value,
        repeated_keys: repeated.get(),
    })
}

/// Builds a `Value` exactly as serde_json's own does, and raises `repeated` on a repeated
/// key. With `keep`, objects hold only the keys it names.
#[derive(Clone, Copy)]
struct Builder<'r> {
    repeated: &'r Cell<bool>,
    keep: Option<&'r [&'r str]>,
}

impl<'de> DeserializeSeed<'de> for Builder<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Builder<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            if self.keep.is_some_and(|keep| !keep.contains(&key.as_ref())) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = map.next_value_seed(self)?;
            if object.insert(key.into_owned(), value).is_some() {
                self.repeated.set(true);
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_same_tree_as_serde_json() {
        let texts: [&[u8]; 5] = [
            br#"{"a": [1, -2, 3.5, 1e400, 18446744073709551615, null, true, "x\u00e9\"y"], "b": {}}"#,
            b"[]",
            b" 12 ",
            br#""\ud83d\ude00""#,
            br#"{"nested": {"deeper": [{"k": "v"}, [[]]]}}"#,
        ];
        for text in texts {
            let ours = parse(text).map(|t| t.value).ok();
            let theirs = serde_json::from_slice::<Value>(text).ok();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(text));
            assert!(!parse(text).is_ok_and(|t| t.repeated_keys));
        }
    }

    #[test]
    fn a_repeated_key_keeps_the_last_value_and_is_noted() {
        let tree = parse(br#"{"a": {"b": 1, "b": 2}, "c": 3}"#).expect("valid");
        assert_eq!(tree.value, serde_json::json!({"a": {"b": 2}, "c": 3}));
        assert!(tree.repeated_keys);
    }

    #[test]
    fn a_pruned_tree_holds_the_kept_keys_at_every_depth() {
        let text = r#"{"a": {"b": 1, "c": [{"a": 2, "d": 3}]}, "d": {"a": 4}, "e": [1]}"#;
        let pruned = parse_pruned(text, &["a", "c"]).expect("valid");
        assert_eq!(pruned, serde_json::json!({"a": {"c": [{"a": 2}]}}));
        assert_eq!(
            parse_pruned("[1, {}]", &[]).ok(),
            Some(serde_json::json!([1, {}]))
        );
        assert!(parse_pruned(r#"{"x": [1,]}"#, &[]).is_err());
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let invalid_utf8: [&[u8]; 2] = [b"\"\xff\"", b"{\"a\": \"\xc3\"}"];
        for text in [&b"{"[..], b"[1,]", b"{} x", b"", b"\"\x01\""]
            .into_iter()
            .chain(invalid_utf8)
        {
            assert!(parse(text).is_err(), "{}", String::from_utf8_lossy(text));
            assert!(serde_json::from_slice::<Value>(text).is_err());
        }
    }
}
