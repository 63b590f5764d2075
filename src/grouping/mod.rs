//! Grouping: deciding which events are "the same error" and so belong to the same issue.
//!
//! [`group`] turns an [`ErrorEvent`] into a [`Grouping`]: a fingerprint (the issue key), the
//! strategy that produced it, and a title and culprit for display. It follows Sentry's
//! rules so that projects moving from Sentry see the same issues.
//!
//! # Strategies
//!
//! The fingerprint is a hash of *components* chosen by the first strategy that applies:
//!
//! 1. **Custom** — the client sent a `fingerprint`: its entries are the components, and each
//!    `{{ default }}` entry expands to the components the default strategies (2–4) would
//!    have used. A fingerprint made only of `{{ default }}` entries asks for default
//!    grouping, and gets it (same hash as no fingerprint at all), as in Sentry: some SDKs
//!    send `["{{ default }}"]` on every event and must not split issues in two.
//! 2. **Stacktrace** — for each exception: its type and, per frame, the module (or file
//!    name) and function. The code path identifies a bug better than its message does.
//!    Line numbers are left out because they move with every unrelated edit of the file;
//!    directories are left out because they differ between machines and deploys. When the
//!    event has in-app frames, only those count: framework and library frames change with
//!    dependency versions and middleware order without the bug changing.
//! 3. **Exception** — no usable frames: each exception's type and normalized value.
//! 4. **Message** — no exception: the normalized message.
//!
//! Messages and exception values go through [`normalize_message`], which replaces ids,
//! numbers, uuids, paths, … with placeholders: "user 17 not found" and "user 42 not found"
//! are one issue, not two.
//!
//! # Hashing
//!
//! The hash input is the strategy name followed by the component list, every string
//! length-prefixed and every list count-prefixed. So `["ab", "c"]` and `["a", "bc"]` hash
//! differently, and a custom fingerprint can never collide with a default one. The
//! fingerprint is the first 16 bytes of SHA-256 over that input, in lowercase hex.
//!
//! The title and culprit are not hashed: they are for people, use the original text, and
//! may change wording without splitting issues.

mod normalize;
mod title;

pub use normalize::normalize_message;

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::model::{ErrorEvent, Exception, Fingerprint, Frame};

/// Which rule produced a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Strategy {
    Custom,
    Stacktrace,
    Exception,
    Message,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Custom => "custom",
            Strategy::Stacktrace => "stacktrace",
            Strategy::Exception => "exception",
            Strategy::Message => "message",
        }
    }
}

/// The result of grouping one event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grouping {
    /// 32 lowercase hex characters: the first 16 bytes of SHA-256 over the components.
    pub fingerprint: Fingerprint,
    pub strategy: Strategy,
    /// At most 200 characters.
    pub title: String,
    /// At most 200 characters; may be empty.
    pub culprit: String,
}

/// Groups one event. Pure and total: any event gets a fingerprint.
pub fn group(event: &ErrorEvent) -> Grouping {
    let default = default_components(event);
    let (strategy, components) = match custom_fingerprint(event) {
        Some(entries) => (Strategy::Custom, expand_custom(entries, &default.1)),
        None => default,
    };
    Grouping {
        fingerprint: Fingerprint(hash(strategy, &components)),
        strategy,
        title: title::title(event),
        culprit: title::culprit(event),
    }
}

/// One hashed component: a kind tag ("literal", "stacktrace", …) followed by its fields.
/// The tag keeps components of different kinds apart even when their text is equal. Fields
/// borrow from the event where they can: an event has two per frame.
type Component<'a> = Vec<Cow<'a, str>>;

const NO_MESSAGE: &str = "<no message>";

/// The client's fingerprint, unless it is missing or only asks for the default.
fn custom_fingerprint(event: &ErrorEvent) -> Option<&[String]> {
    let entries = event.fingerprint.as_deref()?;
    let only_default = entries.iter().all(|entry| is_default_marker(entry));
    (!only_default).then_some(entries)
}

/// `{{ default }}`, with any whitespace inside or around it.
fn is_default_marker(entry: &str) -> bool {
    entry
        .chars()
        .filter(|c| !c.is_whitespace())
        .eq("{{default}}".chars())
}

fn expand_custom<'a>(entries: &'a [String], default: &[Component<'a>]) -> Vec<Component<'a>> {
    let mut components = Vec::new();
    for entry in entries {
        if is_default_marker(entry) {
            components.extend_from_slice(default);
        } else {
            components.push(vec![
                Cow::Borrowed("literal"),
                Cow::Borrowed(entry.as_str()),
            ]);
        }
    }
    components
}

/// Rules 2–4 of the module doc: the first one with something to say wins.
fn default_components(event: &ErrorEvent) -> (Strategy, Vec<Component<'_>>) {
    if let Some(components) = stacktrace_components(event) {
        return (Strategy::Stacktrace, components);
    }
    if !event.exceptions.is_empty() {
        let components = event.exceptions.iter().map(exception_component).collect();
        return (Strategy::Exception, components);
    }
    let message = event
        .message
        .as_deref()
        .map_or_else(|| NO_MESSAGE.to_string(), normalize_message);
    (
        Strategy::Message,
        vec![vec![
            Cow::Borrowed(Strategy::Message.as_str()),
            Cow::Owned(message),
        ]],
    )
}

/// One component per exception (type, then location and function of each usable frame),
/// or `None` if no exception has a usable frame.
fn stacktrace_components(event: &ErrorEvent) -> Option<Vec<Component<'_>>> {
    let in_app_only = event
        .exceptions
        .iter()
        .flat_map(|exception| &exception.frames)
        .any(|frame| frame.in_app == Some(true));
    let components: Vec<Component> = event
        .exceptions
        .iter()
        .map(|exception| stacktrace_component(exception, in_app_only))
        .collect();
    // Two fields (kind, type) is a component without frames.
    let any_frame = components.iter().any(|component| component.len() > 2);
    any_frame.then_some(components)
}

fn stacktrace_component(exception: &Exception, in_app_only: bool) -> Component<'_> {
    let mut component = vec![
        Cow::Borrowed(Strategy::Stacktrace.as_str()),
        Cow::Borrowed(exception.ty.trim()),
    ];
    let frames = exception
        .frames
        .iter()
        .filter(|frame| !in_app_only || frame.in_app == Some(true))
        .filter_map(frame_parts);
    for (location, function) in frames {
        // Always two fields per frame, so the list stays unambiguous.
        component.push(location);
        component.push(function);
    }
    component
}

/// `(module or file basename, normalized function)`; `None` when both are missing.
/// Never the line number, never the directory.
fn frame_parts(frame: &Frame) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    let location = non_empty(&frame.module)
        .or_else(|| non_empty(&frame.filename).map(basename))
        .unwrap_or_default();
    let function = non_empty(&frame.function)
        .map(normalize::normalize_function)
        .unwrap_or_default();
    (!location.is_empty() || !function.is_empty()).then_some((Cow::Borrowed(location), function))
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The last path segment of a unix or windows path or of a URL (without its query).
fn basename(filename: &str) -> &str {
    let path = if filename.contains("://") {
        filename.split(['?', '#']).next().unwrap_or(filename)
    } else {
        filename
    };
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path).trim();
    // "dir/" has no last segment: keep the whole name rather than lose the location.
    if base.is_empty() {
        path.trim()
    } else {
        base
    }
}

fn exception_component(exception: &Exception) -> Component<'_> {
    let value = normalize_message(exception.value.as_deref().unwrap_or(""));
    vec![
        Cow::Borrowed(Strategy::Exception.as_str()),
        Cow::Borrowed(exception.ty.trim()),
        Cow::Owned(value),
    ]
}

/// SHA-256 over the length-prefixed encoding described in the module doc, cut to 16 bytes.
fn hash(strategy: Strategy, components: &[Component]) -> String {
    let mut hasher = Sha256::new();
    write_field(&mut hasher, strategy.as_str());
    write_count(&mut hasher, components.len());
    for component in components {
        write_count(&mut hasher, component.len());
        for field in component {
            write_field(&mut hasher, field);
        }
    }
    hex::encode(&hasher.finalize()[..16])
}

fn write_count(hasher: &mut Sha256, n: usize) {
    hasher.update((n as u64).to_be_bytes());
}

fn write_field(hasher: &mut Sha256, field: &str) {
    write_count(hasher, field.len());
    hasher.update(field.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    // `Strategy` is ours; proptest's trait of the same name is renamed `PropStrategy`.
    use super::Strategy;
    use proptest::prelude::{
        any, prop, prop_assert, prop_assert_eq, prop_assert_ne, prop_assume, prop_oneof, proptest,
        Just,
    };
    use proptest::strategy::Strategy as PropStrategy;
    use uuid::Uuid;

    fn event() -> ErrorEvent {
        ErrorEvent::blank()
    }

    fn with_message(message: &str) -> ErrorEvent {
        ErrorEvent {
            message: Some(message.to_string()),
            ..event()
        }
    }

    fn with_exceptions(exceptions: Vec<Exception>) -> ErrorEvent {
        ErrorEvent {
            exceptions,
            ..event()
        }
    }

    fn exception(ty: &str, value: &str, frames: Vec<Frame>) -> Exception {
        Exception {
            ty: ty.to_string(),
            value: Some(value.to_string()),
            module: None,
            frames,
        }
    }

    fn frame(module: &str, function: &str, in_app: Option<bool>) -> Frame {
        Frame {
            module: Some(module.to_string()),
            function: Some(function.to_string()),
            in_app,
            ..Frame::default()
        }
    }

    fn file_frame(filename: &str, function: &str, lineno: u32) -> Frame {
        Frame {
            filename: Some(filename.to_string()),
            function: Some(function.to_string()),
            lineno: Some(lineno),
            ..Frame::default()
        }
    }

    fn fingerprint(event: &ErrorEvent) -> String {
        group(event).fingerprint.0
    }

    fn app_stack() -> Vec<Frame> {
        vec![
            frame("django.core", "dispatch", Some(false)),
            frame("app.views", "checkout", Some(true)),
            frame("app.models", "charge", Some(true)),
            frame("stripe.api", "request", Some(false)),
        ]
    }

    // ---- strategies ------------------------------------------------------------------

    #[test]
    fn strategy_names() {
        assert_eq!(Strategy::Custom.as_str(), "custom");
        assert_eq!(Strategy::Stacktrace.as_str(), "stacktrace");
        assert_eq!(Strategy::Exception.as_str(), "exception");
        assert_eq!(Strategy::Message.as_str(), "message");
    }

    #[test]
    fn fingerprint_is_32_lowercase_hex() {
        for e in [
            event(),
            with_message("x"),
            with_exceptions(vec![exception("E", "v", app_stack())]),
        ] {
            let fp = fingerprint(&e);
            assert_eq!(fp.len(), 32);
            assert!(
                fp.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{fp}"
            );
        }
    }

    /// Changing the hash input re-keys every issue of every project: this pins it. (The
    /// values were cross-checked with an independent implementation of the encoding.)
    #[test]
    fn fingerprints_are_stable_across_versions() {
        assert_eq!(
            fingerprint(&with_message("user 42 not found")),
            "cd3be4f06050d6fe498513b798919323"
        );
        let e = with_exceptions(vec![exception("KeyError", "'x'", app_stack())]);
        assert_eq!(fingerprint(&e), "45cd1029615cb86d2c3a48279dd9a357");
    }

    #[test]
    fn message_strategy_normalizes() {
        let a = group(&with_message("user 17 not found"));
        let b = group(&with_message("user  42\nnot found"));
        assert_eq!(a.strategy, Strategy::Message);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(
            a.fingerprint.0,
            fingerprint(&with_message("order 17 not found"))
        );
    }

    #[test]
    fn missing_message_groups_together() {
        let g = group(&event());
        assert_eq!(g.strategy, Strategy::Message);
        assert_eq!(g.fingerprint.0, fingerprint(&event()));
        assert_eq!(g.title, "<unlabeled event>");
        assert_eq!(g.culprit, "");
    }

    #[test]
    fn exception_strategy_uses_type_and_normalized_value() {
        let a = with_exceptions(vec![exception("KeyError", "'user_17'", vec![])]);
        let b = with_exceptions(vec![exception("KeyError", "'user_42'", vec![])]);
        let c = with_exceptions(vec![exception("ValueError", "'user_17'", vec![])]);
        assert_eq!(group(&a).strategy, Strategy::Exception);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn exception_chain_order_matters() {
        let a = with_exceptions(vec![exception("A", "", vec![]), exception("B", "", vec![])]);
        let b = with_exceptions(vec![exception("B", "", vec![]), exception("A", "", vec![])]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn stacktrace_strategy_ignores_message() {
        let a = with_exceptions(vec![exception("E", "first wording", app_stack())]);
        let b = with_exceptions(vec![exception("E", "other wording", app_stack())]);
        assert_eq!(group(&a).strategy, Strategy::Stacktrace);
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn stacktrace_ignores_line_numbers_and_directories() {
        let a = with_exceptions(vec![exception(
            "E",
            "",
            vec![file_frame("/srv/a/app/main.py", "run", 10)],
        )]);
        let b = with_exceptions(vec![exception(
            "E",
            "",
            vec![file_frame(r"C:\build\app\main.py", "run", 99)],
        )]);
        let c = with_exceptions(vec![exception(
            "E",
            "",
            vec![file_frame("/srv/a/app/other.py", "run", 10)],
        )]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    #[test]
    fn stacktrace_strips_function_addresses() {
        let a = with_exceptions(vec![exception(
            "E",
            "",
            vec![frame("m", "handler + 0x1a", None)],
        )]);
        let b = with_exceptions(vec![exception(
            "E",
            "",
            vec![frame("m", "handler 0x7ffd0000beef", None)],
        )]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn url_filenames_lose_query_and_directories() {
        let a = with_exceptions(vec![exception(
            "E",
            "",
            vec![file_frame("https://cdn.x/v1/app.js?v=1", "f", 1)],
        )]);
        let b = with_exceptions(vec![exception(
            "E",
            "",
            vec![file_frame("https://cdn.x/v2/app.js?v=2", "f", 2)],
        )]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn empty_frames_are_skipped() {
        let blank = Frame {
            lineno: Some(3),
            ..Frame::default()
        };
        let a = with_exceptions(vec![exception("E", "v", vec![blank.clone()])]);
        // Only blank frames: no usable frame, so the exception strategy applies.
        assert_eq!(group(&a).strategy, Strategy::Exception);
        let b = with_exceptions(vec![exception("E", "", vec![frame("m", "f", None), blank])]);
        let c = with_exceptions(vec![exception("E", "", vec![frame("m", "f", None)])]);
        assert_eq!(fingerprint(&b), fingerprint(&c));
    }

    #[test]
    fn frameless_exception_in_chain_contributes_its_type() {
        let with_cause = |cause: &str| {
            with_exceptions(vec![
                exception(cause, "x", vec![]),
                exception("E", "", app_stack()),
            ])
        };
        assert_eq!(group(&with_cause("IOError")).strategy, Strategy::Stacktrace);
        assert_ne!(
            fingerprint(&with_cause("IOError")),
            fingerprint(&with_cause("OSError"))
        );
    }

    // ---- in-app filtering --------------------------------------------------------------

    #[test]
    fn only_in_app_frames_count_when_there_are_some() {
        let mut changed = app_stack();
        changed[0].function = Some("other_dispatch".into());
        changed.push(frame("urllib3", "send", Some(false)));
        let a = with_exceptions(vec![exception("E", "", app_stack())]);
        let b = with_exceptions(vec![exception("E", "", changed)]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn in_app_from_any_exception_filters_the_whole_event() {
        let library_only = vec![frame("lib", "a", Some(false))];
        let library_changed = vec![frame("lib", "b", Some(false))];
        let a = with_exceptions(vec![
            exception("C", "", library_only),
            exception("E", "", app_stack()),
        ]);
        let b = with_exceptions(vec![
            exception("C", "", library_changed),
            exception("E", "", app_stack()),
        ]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn all_frames_count_when_none_is_in_app() {
        let a = with_exceptions(vec![exception(
            "E",
            "",
            vec![frame("lib", "a", None), frame("lib", "x", Some(false))],
        )]);
        let b = with_exceptions(vec![exception(
            "E",
            "",
            vec![frame("lib", "b", None), frame("lib", "x", Some(false))],
        )]);
        assert_eq!(group(&a).strategy, Strategy::Stacktrace);
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    // ---- custom fingerprints -------------------------------------------------------------

    fn with_fingerprint(mut e: ErrorEvent, entries: &[&str]) -> ErrorEvent {
        e.fingerprint = Some(entries.iter().map(|s| s.to_string()).collect());
        e
    }

    #[test]
    fn custom_literals_replace_default_grouping() {
        let a = with_fingerprint(with_message("one"), &["db-timeout"]);
        let b = with_fingerprint(with_message("two"), &["db-timeout"]);
        assert_eq!(group(&a).strategy, Strategy::Custom);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&with_fingerprint(with_message("one"), &["other"]))
        );
    }

    #[test]
    fn default_marker_expands_to_default_components() {
        for marker in ["{{ default }}", "{{default}}", "  {{  default\t}} "] {
            let a = with_fingerprint(with_message("one"), &[marker, "tenant-a"]);
            let b = with_fingerprint(with_message("two"), &[marker, "tenant-a"]);
            let c = with_fingerprint(with_message("one"), &[marker, "tenant-b"]);
            assert_eq!(group(&a).strategy, Strategy::Custom);
            assert_ne!(
                fingerprint(&a),
                fingerprint(&b),
                "{marker}: default part differs"
            );
            assert_ne!(
                fingerprint(&a),
                fingerprint(&c),
                "{marker}: literal part differs"
            );
            let same = with_fingerprint(with_message("one"), &["{{ default }}", "tenant-a"]);
            assert_eq!(
                fingerprint(&a),
                fingerprint(&same),
                "{marker}: spelling is irrelevant"
            );
        }
    }

    #[test]
    fn only_default_markers_mean_default_grouping() {
        let plain = with_message("one");
        for entries in [
            &["{{ default }}"][..],
            &["{{default}}", "{{ default }}"],
            &[],
        ] {
            let marked = with_fingerprint(plain.clone(), entries);
            assert_eq!(group(&marked), group(&plain), "{entries:?}");
        }
    }

    #[test]
    fn custom_never_equals_default() {
        // A literal equal to the default component's text still hashes differently.
        let plain = with_message("one");
        let literal = with_fingerprint(plain.clone(), &["message", "one"]);
        let mixed = with_fingerprint(plain.clone(), &["{{ default }}", ""]);
        assert_ne!(fingerprint(&literal), fingerprint(&plain));
        assert_ne!(fingerprint(&mixed), fingerprint(&plain));
    }

    #[test]
    fn component_encoding_is_unambiguous() {
        let a = with_fingerprint(event(), &["ab", "c"]);
        let b = with_fingerprint(event(), &["a", "bc"]);
        let c = with_fingerprint(event(), &["abc"]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }

    // ---- title and culprit ---------------------------------------------------------------

    #[test]
    fn title_from_main_exception() {
        let e = with_exceptions(vec![
            exception("IOError", "disk", vec![]),
            exception("RuntimeError", "  save failed\n  at  step 3\nmore", vec![]),
        ]);
        assert_eq!(group(&e).title, "RuntimeError: save failed");
        let no_value = with_exceptions(vec![Exception {
            ty: "Panic".into(),
            ..Exception::default()
        }]);
        assert_eq!(group(&no_value).title, "Panic");
    }

    #[test]
    fn title_from_message_keeps_original_text() {
        let e = with_message("\n\n  user   42\tnot found \nsecond line");
        assert_eq!(group(&e).title, "user 42 not found");
    }

    #[test]
    fn title_is_truncated_to_200_chars() {
        let long = "é".repeat(500);
        let title = group(&with_message(&long)).title;
        assert_eq!(title.chars().count(), 200);
        assert!(title.ends_with('…'));
        assert!(title.starts_with("éé"));
        let exact = "a".repeat(200);
        assert_eq!(group(&with_message(&exact)).title, exact);
    }

    #[test]
    fn culprit_is_the_crashing_in_app_frame() {
        let e = with_exceptions(vec![exception("E", "", app_stack())]);
        assert_eq!(group(&e).culprit, "app.models in charge");
    }

    #[test]
    fn culprit_falls_back_to_last_frame_then_transaction() {
        let library = with_exceptions(vec![exception(
            "E",
            "",
            vec![frame("lib", "a", None), file_frame("lib/b.py", "b", 3)],
        )]);
        assert_eq!(group(&library).culprit, "lib/b.py in b");

        let only_function = Frame {
            function: Some("main".into()),
            ..Frame::default()
        };
        let e = with_exceptions(vec![exception("E", "", vec![only_function])]);
        assert_eq!(group(&e).culprit, "main");

        let mut no_frames = with_exceptions(vec![exception("E", "", vec![])]);
        no_frames.transaction = Some("GET /users/{id}".into());
        assert_eq!(group(&no_frames).culprit, "GET /users/{id}");
    }

    // ---- properties ----------------------------------------------------------------------

    fn ident() -> impl PropStrategy<Value = String> {
        "[a-z_][a-z0-9_]{0,15}"
    }

    fn type_name() -> impl PropStrategy<Value = String> {
        "[A-Z][A-Za-z]{0,15}(Error|Exception)?"
    }

    /// (module, function) pairs of an in-app call path.
    fn call_path() -> impl PropStrategy<Value = Vec<(String, String)>> {
        prop::collection::vec((ident(), ident()), 1..6)
    }

    fn stack_event(ty: &str, path: &[(String, String)], lines: &[u32]) -> ErrorEvent {
        let frames = path
            .iter()
            .zip(lines.iter().chain(std::iter::repeat(&1)))
            .map(|((module, function), line)| Frame {
                lineno: Some(*line),
                ..frame(module, function, Some(true))
            })
            .collect();
        with_exceptions(vec![exception(ty, "boom", frames)])
    }

    /// Hex request ids with at least one letter: an all-digit run is a `<num>`, not a
    /// `<hex>` (a known, rare split for ids that happen to contain no letter).
    fn hex_id() -> impl PropStrategy<Value = String> {
        "[0-9a-f]{16}".prop_filter("needs a letter and a digit", |s| {
            s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().any(|b| b.is_ascii_alphabetic())
        })
    }

    fn variable_message() -> impl PropStrategy<Value = String> {
        (any::<i64>(), any::<u32>(), any::<u128>(), hex_id(), -1.0e6f64..1.0e6).prop_map(
            |(user, port, uuid, request, amount)| {
                format!(
                    "Failed to load user {user} from 10.0.{}.{}:{port} (request {}, req-{request}, amount {amount:.2})",
                    port % 256,
                    user.unsigned_abs() % 256,
                    Uuid::from_u128(uuid),
                )
            },
        )
    }

    fn arbitrary_frame() -> impl PropStrategy<Value = Frame> {
        (
            prop::option::of(any::<String>()),
            prop::option::of(any::<String>()),
            prop::option::of(any::<String>()),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(function, module, filename, lineno, in_app)| Frame {
                function,
                module,
                filename,
                lineno,
                in_app,
            })
    }

    fn arbitrary_event() -> impl PropStrategy<Value = ErrorEvent> {
        let exception = (
            any::<String>(),
            prop::option::of(any::<String>()),
            prop::collection::vec(arbitrary_frame(), 0..4),
        )
            .prop_map(|(ty, value, frames)| Exception {
                ty,
                value,
                module: None,
                frames,
            });
        (
            prop::option::of(any::<String>()),
            prop::collection::vec(exception, 0..3),
            prop::option::of(prop::collection::vec(
                prop_oneof![Just("{{ default }}".to_string()), any::<String>()],
                0..3,
            )),
            prop::option::of(any::<String>()),
        )
            .prop_map(
                |(message, exceptions, fingerprint, transaction)| ErrorEvent {
                    message,
                    exceptions,
                    fingerprint,
                    transaction,
                    ..event()
                },
            )
    }

    proptest! {
        /// (a) Moving the raising code to other lines keeps the issue.
        #[test]
        fn other_line_numbers_same_fingerprint(
            ty in type_name(),
            path in call_path(),
            lines_a in prop::collection::vec(any::<u32>(), 6),
            lines_b in prop::collection::vec(any::<u32>(), 6),
        ) {
            let a = group(&stack_event(&ty, &path, &lines_a));
            let b = group(&stack_event(&ty, &path, &lines_b));
            prop_assert_eq!(a.strategy, Strategy::Stacktrace);
            prop_assert_eq!(a.fingerprint, b.fingerprint);
        }

        /// (b) Ids, numbers, uuids, request ids, addresses in the value do not split issues.
        #[test]
        fn variable_data_in_value_same_fingerprint(
            ty in type_name(),
            value_a in variable_message(),
            value_b in variable_message(),
        ) {
            let a = group(&with_exceptions(vec![exception(&ty, &value_a, vec![])]));
            let b = group(&with_exceptions(vec![exception(&ty, &value_b, vec![])]));
            prop_assert_eq!(a.strategy, Strategy::Exception);
            prop_assert_eq!(a.fingerprint, b.fingerprint, "{} / {}", value_a, value_b);
        }

        /// (c) Another exception type is another issue, with or without frames.
        #[test]
        fn other_exception_type_other_fingerprint(
            ty_a in type_name(),
            ty_b in type_name(),
            path in call_path(),
            value in variable_message(),
        ) {
            prop_assume!(ty_a != ty_b);
            let stack = |ty: &str| fingerprint(&stack_event(ty, &path, &[]));
            prop_assert_ne!(stack(&ty_a), stack(&ty_b));
            let plain = |ty: &str| fingerprint(&with_exceptions(vec![exception(ty, &value, vec![])]));
            prop_assert_ne!(plain(&ty_a), plain(&ty_b));
        }

        /// (d) Another function in the in-app call path is another issue.
        #[test]
        fn other_call_path_other_fingerprint(
            ty in type_name(),
            path in call_path(),
            index in any::<prop::sample::Index>(),
            function in ident(),
        ) {
            let mut other = path.clone();
            let i = index.index(other.len());
            prop_assume!(other[i].1 != function);
            other[i].1 = function;
            prop_assert_ne!(
                fingerprint(&stack_event(&ty, &path, &[])),
                fingerprint(&stack_event(&ty, &other, &[]))
            );
        }

        /// (e) Any event groups without panicking, within the documented limits.
        #[test]
        fn group_is_total(e in arbitrary_event()) {
            let g = group(&e);
            prop_assert_eq!(g.fingerprint.as_str().len(), 32);
            prop_assert!(g.fingerprint.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            prop_assert!(g.title.chars().count() <= 200);
            prop_assert!(g.culprit.chars().count() <= 200);
            prop_assert_eq!(group(&e), g);
        }

        /// (e, f) normalize_message is total and idempotent.
        #[test]
        fn normalize_message_total_and_idempotent(s in any::<String>()) {
            let once = normalize_message(&s);
            prop_assert_eq!(normalize_message(&once), once);
        }
    }
}
