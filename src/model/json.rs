//! Reading JSON text without copying it: an object key borrowed from the text, and the
//! value texts of an object's members found from its borrowed keys.

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

/// JSON's insignificant whitespace.
fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// The value texts of the top-level members of the object `text`, in order, given its keys
/// as they were borrowed while parsing it (so each is a slice of `text`, holding no
/// escape). `text` must be the valid JSON object they were read from: a value's text then
/// lies between the `:` after its key and the `,` before the next key (or the object's
/// closing `}`), whitespace aside. `None` if a key is not a slice of `text` or the text
/// around it is not so.
pub fn member_values<'a>(text: &'a str, keys: &[&'a str]) -> Option<Vec<&'a str>> {
    // Where a key starts in `text`: just past its opening quote.
    let start_of = |key: &str| {
        (key.as_ptr() as usize)
            .checked_sub(text.as_ptr() as usize)
            .filter(|start| start + key.len() < text.len())
    };
    let end_of_object = text
        .trim_end_matches(is_json_whitespace)
        .strip_suffix('}')?
        .len();
    let mut values = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let after_key = start_of(key)? + key.len() + 1;
        let value_and_rest = text
            .get(after_key..)?
            .trim_start_matches(is_json_whitespace)
            .strip_prefix(':')?
            .trim_start_matches(is_json_whitespace);
        let start = text.len() - value_and_rest.len();
        let end = match keys.get(i + 1) {
            Some(next) => text
                .get(..start_of(next)?.checked_sub(1)?)?
                .trim_end_matches(is_json_whitespace)
                .strip_suffix(',')?
                .trim_end_matches(is_json_whitespace)
                .len(),
            None => text[..end_of_object]
                .trim_end_matches(is_json_whitespace)
                .len(),
        };
        values.push(text.get(start..end)?);
    }
    Some(values)
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

    #[test]
    fn member_values_lie_between_the_borrowed_keys() {
        let text =
            String::from(" {\"a\" :1 ,\"b\":\t{\"c\": [\"d\", \",\"]}\n, \"e\": \"}\" \r\n} ");
        let text = text.as_str();
        let start = |key: &str| text.find(&format!("\"{key}\"")).expect("key") + 1;
        let keys = ["a", "b", "e"].map(|key| &text[start(key)..start(key) + 1]);
        assert_eq!(
            member_values(text, &keys),
            Some(vec!["1", "{\"c\": [\"d\", \",\"]}", "\"}\""])
        );
        // A key that is not part of the text finds nothing.
        let elsewhere = String::from("a");
        assert_eq!(member_values(text, &[elsewhere.as_str()]), None);
        assert_eq!(member_values("{}", &[]), Some(Vec::new()));
    }
}
