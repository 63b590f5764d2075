//! A Sentry event's `exception` member read straight into [`Exception`]s, from its JSON text
//! or from a parsed `Value` alike, without building a tree of the stack traces.
//!
//! A stack trace is most of an event, and normalizing reads little of it: per frame its
//! function, module, file and line. Reading those fields as they stream past, and skipping
//! the rest (local variables, source context), costs a fraction of building the tree.
//!
//! Every shape SDKs send is accepted, and a field in an unknown shape is absent:
//! - the member is `{"values": [...]}`, a bare list, or a single exception object;
//! - text fields may be strings, numbers or booleans; `lineno` a number or a string;
//! - when an object repeats a key, the last value counts, as in a parsed tree.

use std::collections::VecDeque;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::event::{field_text, truncate};
use crate::model::json::BorrowedKey;
use crate::model::{Exception, Frame};

/// Bounds that keep one event's cost predictable; the full data stays in the payload.
const MAX_EXCEPTIONS: usize = 32;
const MAX_FRAMES: usize = 250;
const MAX_VALUE: usize = 4096;

/// What normalizing takes from the `exception` member.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Exceptions {
    /// The last [`MAX_EXCEPTIONS`], oldest cause first.
    pub list: Vec<Exception>,
    /// Some exception's mechanism says `handled: false` (a crash).
    pub unhandled: bool,
}

/// Reads the member from its JSON text.
pub fn from_text(text: &str) -> Result<Exceptions, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let exceptions = Expect(MemberShape).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(exceptions.unwrap_or_default())
}

/// Reads the member from a parsed tree (`None`: the event has none).
pub fn from_value(member: Option<&Value>) -> Exceptions {
    // Reading a `Value` fails only where reading its text would have failed to parse.
    member
        .and_then(|member| Expect(MemberShape).deserialize(member).ok())
        .flatten()
        .unwrap_or_default()
}

/// The `exception` member: a list of exceptions, `{"values": [...]}`, or one exception.
struct MemberShape;

impl Shape for MemberShape {
    type Output = Exceptions;

    fn expect_seq<'de, A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Exceptions>, A::Error> {
        read_list(seq, Item, MAX_EXCEPTIONS).map(|list| Some(exceptions(list)))
    }

    fn expect_map<'de, A: MapAccess<'de>>(self, map: A) -> Result<Option<Exceptions>, A::Error> {
        let fields = read_fields(map, true)?;
        Ok(Some(match fields.values {
            // `{"values": [...]}`; `values` in another shape holds nothing.
            Some(list) => list.map(exceptions).unwrap_or_default(),
            // A single exception.
            None => {
                let unhandled = fields.handled == Some(false);
                exceptions(List {
                    last: VecDeque::from([Some(fields)]),
                    unhandled,
                })
            }
        }))
    }
}

/// The exceptions of a list.
fn exceptions(list: List<Fields>) -> Exceptions {
    Exceptions {
        list: list
            .last
            .into_iter()
            .flatten()
            .filter_map(Fields::into_exception)
            .collect(),
        unhandled: list.unhandled,
    }
}

/// What an exception object holds that normalizing reads.
#[derive(Default)]
struct Fields {
    ty: Option<String>,
    value: Option<String>,
    module: Option<String>,
    /// `mechanism.handled`, when a boolean.
    handled: Option<bool>,
    /// `stacktrace.frames`, when a list.
    frames: Option<List<Frame>>,
    /// Only in the member itself: `values`, a list or (`None`) anything else.
    values: Option<Option<List<Fields>>>,
}

impl Fields {
    fn into_exception(self) -> Option<Exception> {
        if self.ty.is_none() && self.value.is_none() {
            return None;
        }
        let frames = self.frames.map(|list| list.last).unwrap_or_default();
        Some(Exception {
            ty: self.ty.unwrap_or_else(|| "Error".to_owned()),
            value: self.value.map(|v| truncate(v, MAX_VALUE)),
            module: self.module,
            frames: frames.into_iter().flatten().collect(),
        })
    }
}

/// Reads an exception object's fields; `values` too when `member` (the member itself).
fn read_fields<'de, A: MapAccess<'de>>(mut map: A, member: bool) -> Result<Fields, A::Error> {
    let mut fields = Fields::default();
    while let Some(key) = map.next_key_seed(BorrowedKey)? {
        match key.as_ref() {
            "type" => fields.ty = next(&mut map, TextShape)?.flatten(),
            "value" => fields.value = next(&mut map, TextShape)?.flatten(),
            "module" => fields.module = next(&mut map, TextShape)?.flatten(),
            "mechanism" => fields.handled = next(&mut map, ObjectShape(Mechanism))?.flatten(),
            "stacktrace" => fields.frames = next(&mut map, ObjectShape(Stacktrace))?.flatten(),
            "values" if member => {
                fields.values = Some(next(&mut map, ListShape(Item, MAX_EXCEPTIONS))?)
            }
            _ => skip(&mut map)?,
        }
    }
    Ok(fields)
}

/// Reads the next member's value as the shape `S`.
fn next<'de, A: MapAccess<'de>, S: Shape>(
    map: &mut A,
    shape: S,
) -> Result<Option<S::Output>, A::Error> {
    map.next_value_seed(Expect(shape))
}

/// Skips the next member's value.
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
}

/// The last items of a list of objects (`None`: an item that is not an object).
struct List<T> {
    last: VecDeque<Option<T>>,
    /// Some item, kept or not, was an exception whose mechanism says `handled: false`.
    unhandled: bool,
}

/// Reads a list's items as objects with `R`, keeping the last `keep`: the newest frames
/// and exceptions are last, and a list of a million items costs no more memory than
/// `keep` of them.
fn read_list<'de, A: SeqAccess<'de>, R: ReadObject + Copy>(
    mut seq: A,
    read: R,
    keep: usize,
) -> Result<List<R::Output>, A::Error> {
    let mut list = List {
        last: VecDeque::new(),
        unhandled: false,
    };
    while let Some(item) = seq.next_element_seed(Expect(ObjectShape(read)))? {
        list.unhandled |= item.as_ref().is_some_and(R::unhandled);
        if list.last.len() == keep {
            list.last.pop_front();
        }
        list.last.push_back(item);
    }
    Ok(list)
}

/// How one kind of object is read.
trait ReadObject {
    type Output;
    fn read<'de, A: MapAccess<'de>>(self, map: A) -> Result<Self::Output, A::Error>;

    /// Whether what was read is an unhandled exception.
    fn unhandled(_: &Self::Output) -> bool {
        false
    }
}

/// An exception in a list.
#[derive(Clone, Copy)]
struct Item;

impl ReadObject for Item {
    type Output = Fields;
    fn read<'de, A: MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
        read_fields(map, false)
    }

    fn unhandled(fields: &Fields) -> bool {
        fields.handled == Some(false)
    }
}

#[derive(Clone, Copy)]
struct Mechanism;

impl ReadObject for Mechanism {
    type Output = Option<bool>;
    fn read<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<Option<bool>, A::Error> {
        let mut handled = None;
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            match key.as_ref() {
                "handled" => handled = next(&mut map, BoolShape)?,
                _ => skip(&mut map)?,
            }
        }
        Ok(handled)
    }
}

#[derive(Clone, Copy)]
struct Stacktrace;

impl ReadObject for Stacktrace {
    type Output = Option<List<Frame>>;
    fn read<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Output, A::Error> {
        let mut frames = None;
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            match key.as_ref() {
                "frames" => frames = next(&mut map, ListShape(FrameFields, MAX_FRAMES))?,
                _ => skip(&mut map)?,
            }
        }
        Ok(frames)
    }
}

#[derive(Clone, Copy)]
struct FrameFields;

impl ReadObject for FrameFields {
    type Output = Frame;
    fn read<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<Frame, A::Error> {
        let mut frame = Frame::default();
        let mut abs_path = None;
        while let Some(key) = map.next_key_seed(BorrowedKey)? {
            match key.as_ref() {
                "function" => frame.function = next(&mut map, TextShape)?.flatten(),
                "module" => frame.module = next(&mut map, TextShape)?.flatten(),
                "filename" => frame.filename = next(&mut map, TextShape)?.flatten(),
                "abs_path" => abs_path = next(&mut map, TextShape)?.flatten(),
                "lineno" => frame.lineno = next(&mut map, LineShape)?,
                "in_app" => frame.in_app = next(&mut map, BoolShape)?,
                _ => skip(&mut map)?,
            }
        }
        frame.filename = frame.filename.or(abs_path);
        Ok(frame)
    }
}

/// A JSON value of one expected shape, read by the `expect_*` methods it overrides; every
/// other shape is consumed and read as `None`.
trait Shape: Sized {
    type Output;

    fn expect_bool(self, _: bool) -> Option<Self::Output> {
        None
    }
    fn expect_number(self, _: serde_json::Number) -> Option<Self::Output> {
        None
    }
    fn expect_str(self, _: &str) -> Option<Self::Output> {
        None
    }
    fn expect_seq<'de, A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<Option<Self::Output>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn expect_map<'de, A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<Option<Self::Output>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Reads a value of the shape `S`.
struct Expect<S>(S);

impl<'de, S: Shape> DeserializeSeed<'de> for Expect<S> {
    type Value = Option<S::Output>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Shape> Visitor<'de> for Expect<S> {
    type Value = Option<S::Output>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(self.0.expect_bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(self.0.expect_number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(self.0.expect_number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        // A parsed tree holds no non-finite number (it reads as null).
        Ok(serde_json::Number::from_f64(value).and_then(|n| self.0.expect_number(n)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(self.0.expect_str(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.expect_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.expect_map(map)
    }
}

/// Text the way every normalized field takes it: strings trimmed, numbers and booleans
/// written out; empty text is absent.
struct TextShape;

impl Shape for TextShape {
    type Output = Option<String>;

    fn expect_bool(self, value: bool) -> Option<Option<String>> {
        Some(field_text(value.to_string()))
    }
    fn expect_number(self, value: serde_json::Number) -> Option<Option<String>> {
        Some(field_text(value.to_string()))
    }
    fn expect_str(self, value: &str) -> Option<Option<String>> {
        Some(field_text(value.trim().to_owned()))
    }
}

/// A line number: a number that fits, or a string holding one.
struct LineShape;

impl Shape for LineShape {
    type Output = u32;

    fn expect_number(self, value: serde_json::Number) -> Option<u32> {
        value.as_u64().and_then(|n| u32::try_from(n).ok())
    }
    fn expect_str(self, value: &str) -> Option<u32> {
        value.trim().parse().ok()
    }
}

struct BoolShape;

impl Shape for BoolShape {
    type Output = bool;

    fn expect_bool(self, value: bool) -> Option<bool> {
        Some(value)
    }
}

/// An object read with `R`.
struct ObjectShape<R>(R);

impl<R: ReadObject> Shape for ObjectShape<R> {
    type Output = R::Output;

    fn expect_map<'de, A: MapAccess<'de>>(self, map: A) -> Result<Option<R::Output>, A::Error> {
        self.0.read(map).map(Some)
    }
}

/// A list of objects, each read with `R`, the last so many kept.
struct ListShape<R>(R, usize);

impl<R: ReadObject + Copy> Shape for ListShape<R> {
    type Output = List<R::Output>;

    fn expect_seq<'de, A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Self::Output>, A::Error> {
        read_list(seq, self.0, self.1).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the text both ways, checks they agree, and returns the reading.
    fn read(text: &str) -> Exceptions {
        let from_text = from_text(text).expect("valid JSON");
        let value: Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(from_value(Some(&value)), from_text, "{text}");
        from_text
    }

    fn types(exceptions: &Exceptions) -> Vec<&str> {
        exceptions.list.iter().map(|e| e.ty.as_str()).collect()
    }

    #[test]
    fn every_shape_of_the_member() {
        assert_eq!(
            types(&read(r#"{"values": [{"type": "A"}, {"type": "B"}]}"#)),
            ["A", "B"]
        );
        assert_eq!(
            types(&read(r#"[{"type": "A"}, 3, {"value": "v"}]"#)),
            ["A", "Error"]
        );
        assert_eq!(types(&read(r#"{"type": "A", "value": "v"}"#)), ["A"]);
        // `values` in another shape holds nothing, whatever is beside it.
        assert_eq!(
            read(r#"{"values": {"type": "A"}, "type": "B"}"#),
            Exceptions::default()
        );
        assert_eq!(read(r#""text""#), Exceptions::default());
        assert_eq!(read("null"), Exceptions::default());
    }

    #[test]
    fn fields_in_every_shape_sdks_send() {
        let exceptions = read(
            r#"[{"type": 7, "value": "  spaced  ", "module": true, "stacktrace": {"frames": [
                {"function": "f", "abs_path": "/a.py", "lineno": "12", "in_app": true},
                {"filename": " ", "abs_path": "/b.py", "lineno": 1.5, "in_app": "yes"},
                {"lineno": 4294967296}, "not a frame"]}}]"#,
        );
        let exception = &exceptions.list[0];
        assert_eq!(exception.ty, "7");
        assert_eq!(exception.value.as_deref(), Some("spaced"));
        assert_eq!(exception.module.as_deref(), Some("true"));
        let frames = &exception.frames;
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].filename.as_deref(), Some("/a.py"));
        assert_eq!((frames[0].lineno, frames[0].in_app), (Some(12), Some(true)));
        assert_eq!(frames[1].filename.as_deref(), Some("/b.py"));
        assert_eq!((frames[1].lineno, frames[1].in_app), (None, None));
        assert_eq!(frames[2].lineno, None);
    }

    #[test]
    fn the_last_of_a_repeated_key_counts() {
        let exceptions =
            read(r#"{"type": "A", "type": "B", "stacktrace": {"frames": [{}]}, "stacktrace": 3}"#);
        assert_eq!(types(&exceptions), ["B"]);
        assert!(exceptions.list[0].frames.is_empty());
    }

    #[test]
    fn a_crash_is_seen_in_any_item_and_long_chains_keep_their_end() {
        // The item without type or value is no exception, but its mechanism still counts.
        let crash = read(r#"[{"type": "A"}, {"mechanism": {"handled": false}}]"#);
        assert!(crash.unhandled);
        assert_eq!(types(&crash), ["A"]);
        assert!(!read(r#"[{"type": "A", "mechanism": {"handled": "false"}}]"#).unhandled);

        let chain: Vec<String> = (0..40).map(|i| format!(r#"{{"type": "E{i}"}}"#)).collect();
        let chain = read(&format!("[{}]", chain.join(",")));
        assert_eq!(chain.list.len(), MAX_EXCEPTIONS);
        assert_eq!(chain.list[0].ty, "E8");
        let frames: Vec<String> = (0..300).map(|i| format!(r#"{{"lineno": {i}}}"#)).collect();
        let deep = read(&format!(
            r#"{{"type": "E", "stacktrace": {{"frames": [{}]}}}}"#,
            frames.join(",")
        ));
        assert_eq!(deep.list[0].frames.len(), MAX_FRAMES);
        assert_eq!(deep.list[0].frames[0].lineno, Some(50));
    }
}
