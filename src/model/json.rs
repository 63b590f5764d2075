//! Reading JSON text without copying it: an object key borrowed from the text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// Reads an object key, borrowed from the text unless it holds an escape (serde's own
/// `Cow<str>` always copies). Use with `MapAccess::next_key_seed`.
pub struct BorrowedKey;

impl<'de> DeserializeSeed<'de> for BorrowedKey {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BorrowedKey {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::MapAccess;

    /// The keys of a JSON object, each saying whether it was borrowed.
    struct Keys;

    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<(String, bool)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key_seed(BorrowedKey)? {
                map.next_value::<de::IgnoredAny>()?;
                keys.push((key.to_string(), matches!(key, Cow::Borrowed(_))));
            }
            Ok(keys)
        }
    }

    #[test]
    fn plain_keys_are_borrowed_and_escaped_ones_unescaped() {
        let mut deserializer = serde_json::Deserializer::from_str(r#"{"plain": 1, "t\u00e9": 2}"#);
        let keys = deserializer.deserialize_map(Keys).expect("an object");
        assert_eq!(
            keys,
            vec![("plain".to_owned(), true), ("t\u{e9}".to_owned(), false)]
        );
    }
}
