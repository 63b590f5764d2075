//! A Sentry event's `exception` member read straight into [`Exception`]s, from its JSON text
//! or from a parsed `Value` alike, without building a tree of the stack traces.
//!
//! A stack trace is most of an event, and normalizing reads little of it: per frame its
//! function, module, file and line. Reading those fields as they stream past, and skipping
//! the rest (local variables, source context), costs a fraction of building the tree.
//!
//! From the text, the member is read during scrubbing's scan of the event
//! ([`ExceptionReader`], a `scrub::ReadMember`): every key and string read here, and every
//! value skipped, goes through the scan's checks, so the member is read once for both.
//!
//! Every shape SDKs send is accepted, and a field in an unknown shape is absent:
//! - the member is `{"values": [...]}`, a bare list, or a single exception object;
//! - text fields may be strings, numbers or booleans; `lineno` a number or a string;
//! - when an object repeats a key, the last value counts, as in a parsed tree.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::event::{field_text, truncate};
use crate::model::json::BorrowedKey;
use crate::model::{Exception, Frame};
use crate::scrub::{Checks, ObjectKeys, ReadMember};

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

/// Reads the `exception` member of an event's text while the scan checks it.
#[derive(Default)]
pub struct ExceptionReader {
    /// What was read (nothing, if the event has no such member).
    pub exceptions: Exceptions,
}

impl<'de> ReadMember<'de> for ExceptionReader {
    fn key(&self) -> Option<&str> {
        Some("exception")
    }

    fn read<D: Deserializer<'de>>(
        &mut self,
        deserializer: D,
        checks: &mut Checks<'_, 'de>,
    ) -> Result<(), D::Error> {
        let exceptions = Expect::new(MemberShape, Watch(Some(checks))).deserialize(deserializer)?;
        self.exceptions = exceptions.unwrap_or_default();
        Ok(())
    }
}

/// Reads the member from a parsed tree (`None`: the event has none).
pub fn from_value(member: Option<&Value>) -> Exceptions {
    // Reading a `Value` fails only where reading its text would have failed to parse.
    member
        .and_then(|member| {
            Expect::new(MemberShape, Watch(None))
                .deserialize(member)
                .ok()
        })
        .flatten()
        .unwrap_or_default()
}

/// The scan's checks on what is read, when the member is read from its text; nothing is
/// checked in a parsed tree.
struct Watch<'w, 's, 'de>(Option<&'w mut Checks<'s, 'de>>);

impl<'s, 'de> Watch<'_, 's, 'de> {
    /// The same checks, for a nested value.
    fn again(&mut self) -> Watch<'_, 's, 'de> {
        Watch(self.0.as_deref_mut())
    }

    fn object(&self) -> Option<ObjectKeys<'de>> {
        self.0.as_ref().map(|checks| checks.object())
    }

    fn key(&mut self, object: &mut Option<ObjectKeys<'de>>, key: Cow<'de, str>) {
        if let (Some(checks), Some(object)) = (self.0.as_deref_mut(), object) {
            checks.key(object, key);
        }
    }

    fn end_object(&mut self, object: Option<ObjectKeys<'de>>) {
        if let (Some(checks), Some(object)) = (self.0.as_deref_mut(), object) {
            checks.end_object(object);
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(checks) = self.0.as_deref_mut() {
            checks.text(text);
        }
    }

    fn number(&mut self, n: u64) {
        if let Some(checks) = self.0.as_deref_mut() {
            checks.number(n);
        }
    }

    /// Skips the next member's value, checking all of it.
    fn skip<A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<(), A::Error> {
        match self.0.as_deref_mut() {
            Some(checks) => map.next_value_seed(checks.value()).map(drop),
            None => map.next_value::<IgnoredAny>().map(drop),
        }
    }

    /// Skips the rest of a list, checking all of it.
    fn skip_seq<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        match self.0.as_deref_mut() {
            Some(checks) => checks.seq(seq),
            None => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
    }

    /// Skips the rest of an object, checking all of it.
    fn skip_map<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        match self.0.as_deref_mut() {
            Some(checks) => checks.map(map),
            None => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
    }
}

/// The `exception` member: a list of exceptions, `{"values": [...]}`, or one exception.
struct MemberShape;

impl Shape for MemberShape {
    type Output = Exceptions;

    fn expect_seq<'de, A: SeqAccess<'de>>(
        self,
        seq: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Option<Exceptions>, A::Error> {
        read_list(seq, Item, MAX_EXCEPTIONS, watch).map(|list| Some(exceptions(list)))
    }

    fn expect_map<'de, A: MapAccess<'de>>(
        self,
        map: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Option<Exceptions>, A::Error> {
        let fields = read_fields(map, true, watch)?;
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
fn read_fields<'de, A: MapAccess<'de>>(
    map: A,
    member: bool,
    watch: Watch<'_, '_, 'de>,
) -> Result<Fields, A::Error> {
    let mut fields = Fields::default();
    each_member(map, watch, |key, value| {
        match key {
            "type" => fields.ty = value.read(TextShape)?.flatten(),
            "value" => fields.value = value.read(TextShape)?.flatten(),
            "module" => fields.module = value.read(TextShape)?.flatten(),
            "mechanism" => fields.handled = value.read(ObjectShape(Mechanism))?.flatten(),
            "stacktrace" => fields.frames = value.read(ObjectShape(Stacktrace))?.flatten(),
            "values" if member => {
                fields.values = Some(value.read(ListShape(Item, MAX_EXCEPTIONS))?)
            }
            _ => value.skip()?,
        }
        Ok(())
    })?;
    Ok(fields)
}

/// Reads an object member by member: each key is checked, then handed with its value to
/// `read`, which reads the value or skips it.
fn each_member<'s, 'de, A: MapAccess<'de>>(
    mut map: A,
    mut watch: Watch<'_, 's, 'de>,
    mut read: impl FnMut(&str, MemberValue<'_, '_, 's, 'de, A>) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let mut object = watch.object();
    while let Some(key) = map.next_key_seed(BorrowedKey)? {
        watch.key(&mut object, key.clone());
        let value = MemberValue {
            map: &mut map,
            watch: watch.again(),
        };
        read(&key, value)?;
    }
    watch.end_object(object);
    Ok(())
}

/// The value of an object's member, next in the text.
struct MemberValue<'m, 'w, 's, 'de, A> {
    map: &'m mut A,
    watch: Watch<'w, 's, 'de>,
}

impl<'de, A: MapAccess<'de>> MemberValue<'_, '_, '_, 'de, A> {
    /// Reads it as the shape `S`.
    fn read<S: Shape>(self, shape: S) -> Result<Option<S::Output>, A::Error> {
        self.map.next_value_seed(Expect::new(shape, self.watch))
    }

    /// Skips it, checking all of it.
    fn skip(mut self) -> Result<(), A::Error> {
        self.watch.skip(self.map)
    }
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
    mut watch: Watch<'_, '_, 'de>,
) -> Result<List<R::Output>, A::Error> {
    let mut list = List {
        last: VecDeque::new(),
        unhandled: false,
    };
    while let Some(item) = seq.next_element_seed(Expect::new(ObjectShape(read), watch.again()))? {
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
    fn read<'de, A: MapAccess<'de>>(
        self,
        map: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Self::Output, A::Error>;

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
    fn read<'de, A: MapAccess<'de>>(
        self,
        map: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Fields, A::Error> {
        read_fields(map, false, watch)
    }

    fn unhandled(fields: &Fields) -> bool {
        fields.handled == Some(false)
    }
}

#[derive(Clone, Copy)]
struct Mechanism;

impl ReadObject for Mechanism {
    type Output = Option<bool>;
    fn read<'de, A: MapAccess<'de>>(
        self,
        map: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Option<bool>, A::Error> {
        let mut handled = None;
        each_member(map, watch, |key, value| {
            match key {
                "handled" => handled = value.read(BoolShape)?,
                _ => value.skip()?,
            }
            Ok(())
        })?;
        Ok(handled)
    }
}

#[derive(Clone, Copy)]
struct Stacktrace;

impl ReadObject for Stacktrace {
    type Output = Option<List<Frame>>;
    fn read<'de, A: MapAccess<'de>>(
        self,
        map: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Self::Output, A::Error> {
        let mut frames = None;
        each_member(map, watch, |key, value| {
            match key {
                "frames" => frames = value.read(ListShape(FrameFields, MAX_FRAMES))?,
                _ => value.skip()?,
            }
            Ok(())
        })?;
        Ok(frames)
    }
}

#[derive(Clone, Copy)]
struct FrameFields;

impl ReadObject for FrameFields {
    type Output = Frame;
    fn read<'de, A: MapAccess<'de>>(
        self,
        map: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Frame, A::Error> {
        let mut frame = Frame::default();
        let mut abs_path = None;
        each_member(map, watch, |key, value| {
            match key {
                "function" => frame.function = value.read(TextShape)?.flatten(),
                "module" => frame.module = value.read(TextShape)?.flatten(),
                "filename" => frame.filename = value.read(TextShape)?.flatten(),
                // Only a fallback for `filename`: not copied out when that came first.
                "abs_path" if frame.filename.is_none() => {
                    abs_path = value.read(TextShape)?.flatten()
                }
                "lineno" => frame.lineno = value.read(LineShape)?,
                "in_app" => frame.in_app = value.read(BoolShape)?,
                _ => value.skip()?,
            }
            Ok(())
        })?;
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
    /// Another shape: checked and skipped.
    fn expect_seq<'de, A: SeqAccess<'de>>(
        self,
        seq: A,
        mut watch: Watch<'_, '_, 'de>,
    ) -> Result<Option<Self::Output>, A::Error> {
        watch.skip_seq(seq)?;
        Ok(None)
    }
    /// Another shape: checked and skipped.
    fn expect_map<'de, A: MapAccess<'de>>(
        self,
        map: A,
        mut watch: Watch<'_, '_, 'de>,
    ) -> Result<Option<Self::Output>, A::Error> {
        watch.skip_map(map)?;
        Ok(None)
    }
}

/// Reads a value of the shape `S`, making the scan's checks on it.
struct Expect<'w, 's, 'de, S> {
    shape: S,
    watch: Watch<'w, 's, 'de>,
}

impl<'w, 's, 'de, S> Expect<'w, 's, 'de, S> {
    fn new(shape: S, watch: Watch<'w, 's, 'de>) -> Self {
        Expect { shape, watch }
    }
}

impl<'de, S: Shape> DeserializeSeed<'de> for Expect<'_, '_, 'de, S> {
    type Value = Option<S::Output>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Shape> Visitor<'de> for Expect<'_, '_, 'de, S> {
    type Value = Option<S::Output>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(self.shape.expect_bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(self.shape.expect_number(value.into()))
    }

    fn visit_u64<E: de::Error>(mut self, value: u64) -> Result<Self::Value, E> {
        self.watch.number(value);
        Ok(self.shape.expect_number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        // A parsed tree holds no non-finite number (it reads as null).
        Ok(serde_json::Number::from_f64(value).and_then(|n| self.shape.expect_number(n)))
    }

    fn visit_str<E: de::Error>(mut self, value: &str) -> Result<Self::Value, E> {
        self.watch.text(value);
        Ok(self.shape.expect_str(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.shape.expect_seq(seq, self.watch)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.shape.expect_map(map, self.watch)
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

    fn expect_map<'de, A: MapAccess<'de>>(
        self,
        map: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Option<R::Output>, A::Error> {
        self.0.read(map, watch).map(Some)
    }
}

/// A list of objects, each read with `R`, the last so many kept.
struct ListShape<R>(R, usize);

impl<R: ReadObject + Copy> Shape for ListShape<R> {
    type Output = List<R::Output>;

    fn expect_seq<'de, A: SeqAccess<'de>>(
        self,
        seq: A,
        watch: Watch<'_, '_, 'de>,
    ) -> Result<Option<Self::Output>, A::Error> {
        read_list(seq, self.0, self.1, watch).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{MemberScan, NoReader, Settings};

    /// Reads the text both ways, checks they agree, and returns the reading.
    fn read(text: &str) -> Exceptions {
        let event = format!(r#"{{"exception": {text}}}"#);
        let mut reader = ExceptionReader::default();
        MemberScan::new(&Settings::default())
            .members(&event, &mut reader)
            .expect("valid JSON");
        let from_text = reader.exceptions;
        let value: Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(from_value(Some(&value)), from_text, "{text}");
        from_text
    }

    /// Whether the scan, reading the member with the reader, reports it; checks that the
    /// scan reading it alone says the same.
    fn reported(member: &str) -> bool {
        let event = format!(r#"{{"exception": {member}}}"#);
        let scan = |reader: &mut dyn FnMut(&str) -> Option<bool>| reader(&event);
        let with_reader = scan(&mut |text| {
            let members = MemberScan::new(&Settings::default())
                .members(text, &mut ExceptionReader::default())?;
            Some(members[0].must_rebuild)
        });
        let alone = scan(&mut |text| {
            let members = MemberScan::new(&Settings::default()).members(text, &mut NoReader)?;
            Some(members[0].must_rebuild)
        });
        assert_eq!(with_reader, alone, "{member}");
        with_reader.expect("valid JSON")
    }

    #[test]
    fn everything_read_or_skipped_goes_through_the_scan() {
        let clean = r#"{"values": [{"type": "E", "value": "order 12", "module": "m",
            "mechanism": {"type": "generic", "handled": false},
            "stacktrace": {"frames": [{"function": "f", "lineno": 3, "in_app": true,
                "vars": {"limit": 20}, "pre_context": ["a"]}]}}]}"#;
        assert!(!reported(clean));
        for member in [
            // A secret in a value the reader skips, at every depth.
            r#"{"values": [{"type": "E", "stacktrace": {"frames": [{"vars": {"password": "x"}}]}}]}"#,
            r#"{"type": "E", "mechanism": {"handled": false, "data": {"token": "x"}}}"#,
            r#"{"type": "E", "stacktrace": {"frames": [], "registers": {"secret": 1}}}"#,
            r#"{"type": "E", "extra": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}"#,
            // In a value the reader reads.
            r#"{"type": "E", "value": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}"#,
            r#"[{"type": "E", "stacktrace": {"frames": [{"lineno": 4111111111111111}]}}]"#,
            r#"[{"type": "E", "stacktrace": {"frames": [{"function": "https://me:pw@h.example/"}]}}]"#,
            // A secret key or a repeated key in an object the reader reads.
            r#"{"type": "E", "password": "x"}"#,
            r#"[{"stacktrace": {"frames": [{"function": "f", "Authorization": "x"}]}}]"#,
            r#"{"type": "A", "type": "B"}"#,
            r#"[{"stacktrace": {"frames": [{"lineno": 1, "lineno": 2}]}}]"#,
            // A value of another shape than the reader expects.
            r#"{"type": "E", "mechanism": [["password", "x"]]}"#,
            r#"{"type": "E", "stacktrace": {"frames": {"password": "x"}}}"#,
            r#"[{"stacktrace": {"frames": [["Authorization", "Basic abc"]]}}]"#,
            r#"{"type": {"secret": "x"}}"#,
            r#"{"values": {"token": "x"}}"#,
        ] {
            assert!(reported(member), "{member}");
        }
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
