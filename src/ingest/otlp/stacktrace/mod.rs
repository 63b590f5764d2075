//! Frames from the text of a stack trace (OpenTelemetry's `exception.stacktrace`).
//!
//! OpenTelemetry SDKs do not send structured frames: `exception.stacktrace` is the
//! language's own rendering of the trace. Seismo groups errors by frames, so [`parse`]
//! turns that text back into [`Frame`]s.
//!
//! # Formats
//!
//! Each format is recognized by the lines its frames are printed on; everything else
//! (messages, `... 12 more`, source lines, blank lines) is skipped. Each format's parser
//! and in-app rule live in the file the table names, with their tests; this file chooses
//! between them and holds what they share (the pattern type, captures, frame building).
//!
//! | format | file | frame lines | printed |
//! |--------|------|-------------|---------|
//! | Python | `python.rs` | `  File "/app/cart.py", line 42, in total` | caller first |
//! | Java, Kotlin, Scala | `jvm.rs` | `\tat com.shop.Cart.total(Cart.java:42)`, also `(Native Method)`, `(Unknown Source)`, `app//` and `java.base@17/` prefixes | crash first |
//! | .NET | `dotnet.rs` | `   at Shop.Cart.Total(Int32 id) in /src/Cart.cs:line 42`, also without ` in …` | crash first |
//! | Node / V8 | `javascript.rs` | `    at Cart.total (/app/cart.js:42:13)`, `    at /app/cart.js:42:13` | crash first |
//! | Firefox / Safari | `javascript.rs` | `total@https://shop.example/app.js:42:13` | crash first |
//! | Go | `go.rs` | `main.(*Cart).Total(0xc0)` followed by `\t/app/cart.go:42 +0x1d` | crash first |
//! | Rust | `rust.rs` | `   4: shop::cart::total` optionally followed by `at ./src/cart.rs:42:13` | crash first |
//!
//! The output is always caller first, crashing frame last (Sentry's order, which grouping
//! expects), capped at the 250 frames nearest the crash.
//!
//! # Which format
//!
//! Chosen in this file (`choose`) from the first line that any format counts as a frame
//! line (its *shape*), so that one parser reads the whole text, not all six:
//! 1. The formats whose parser counts that line are the candidates. A Python `File "…"`
//!    line fits only Python; a JVM `at a.B.c(B.java:1)` line also fits the .NET pattern, and
//!    a Node location-only line `at ./src/x.rs:1:2` follows a Rust symbol line too.
//! 2. The `telemetry.sdk.language` hint is taken when it is one of the candidates; so is
//!    the only candidate. Either way one parser reads the text.
//! 3. Otherwise (several candidates and no hint among them) each candidate parses the text
//!    and the one that explains the most lines wins, ties going to Python, Java, .NET, Node,
//!    Go, Rust in that order. Counting lines rather than trusting the first match matters
//!    there because the patterns overlap: a Rust trace has more symbol-plus-location lines
//!    than Node lines.
//! 4. When no line fits any format, the text has no frames: nothing is parsed in full.
//!
//! A hint contradicted by the text (e.g. a service forwarding another service's trace)
//! is not a candidate, so the shape decides.
//!
//! # Chained exceptions
//!
//! Only the frames of the exception that was raised (the outermost) are kept, because that
//! is what the event is about and what its title names. Each format's parser does this in
//! its own file:
//! - Python (`python.rs`) prints causes first, so the *last* `Traceback` block wins.
//!   Exception groups (3.11+) print sub-exception tracebacks inside a `|` margin after the
//!   group's own frames; those are skipped.
//! - Java (`jvm.rs`) prints the raised exception first: frames stop at the first
//!   `Caused by:` or `Suppressed:`.
//! - .NET (`dotnet.rs`) nests inner exceptions inside the outer one (` ---> ` opens one,
//!   `--- End of inner exception stack trace ---` or a trailing `<---` closes it); only
//!   frames at nesting depth zero are kept. A truncated trace whose outer frames are
//!   missing keeps all frames rather than none.
//! - Node (`javascript.rs`) prints `[cause]:` / `[errors]:` properties after the stack:
//!   frames stop there.
//! - Go (`go.rs`) prints every goroutine with `GOTRACEBACK=all`; only the first (the
//!   panicking one) is kept, without its `created by` line (that is where it was started,
//!   not a caller).
//!
//! # In-app
//!
//! Grouping uses only in-app frames when there are any, so `in_app` is always set, `false`
//! for code the application did not write. Each rule is the `…_in_app` function of its
//! format's file:
//! - Python (`python.rs`): paths with `site-packages`, `dist-packages`, `/lib/python3`,
//!   `<frozen …>`, and the standard library of Windows installs (`C:\Python312\Lib\…`).
//! - JVM (`jvm.rs`): classes of `java.`, `javax.`, `jakarta.`, `jdk.`, `sun.`, `com.sun.`,
//!   `kotlin.`, `kotlinx.`, `scala.`, `org.springframework.`, `org.apache.`, `io.netty.`,
//!   `reactor.`.
//! - .NET (`dotnet.rs`): `System.` and `Microsoft.`, and methods without a type (dynamic
//!   methods such as `lambda_method5`).
//! - Node (`javascript.rs`): `node_modules`, `node:` core modules, `internal/`,
//!   `<anonymous>`, frames without a file (`native`, `index 0`), and bare file names like
//!   `events.js` (old Node core).
//! - Go (`go.rs`): the `runtime` packages and unqualified runtime functions (`panic`),
//!   files under GOROOT (`/usr/local/go/src/`, `/usr/lib/go`, `…/src/runtime/`) or the
//!   module cache (`/pkg/mod/`).
//! - Rust (`rust.rs`): the `std`, `core`, `alloc`, `backtrace`, `tokio`, `futures` crates
//!   (and `tokio_*`, `futures_*`, `_`-prefixed ones), trait impls for their types
//!   (`<alloc::boxed::Box<F> as …>`), symbols without a path (libc's `start_thread`,
//!   `<unknown>`), files under `/rustc/` or cargo's registry and git checkouts.

mod dotnet;
#[cfg(test)]
mod fixtures;
mod go;
mod javascript;
mod jvm;
mod python;
mod rust;

use std::sync::LazyLock;

use regex::{Captures, Regex};

use crate::model::Frame;
use dotnet::parse_dotnet;
use go::parse_go;
use javascript::parse_node;
use jvm::parse_java;
use python::parse_python;
use rust::parse_rust;

/// At most this many frames are returned, those nearest the crash (a deep recursion should
/// not make an event huge; the frames that locate the error are the innermost ones).
const MAX_FRAMES: usize = 250;

/// Frames of the stack trace text, ordered caller first and the crashing frame LAST (Sentry's
/// order), whatever order the language prints them in. `language` is OTel's
/// `telemetry.sdk.language` resource attribute when known ("python", "java", "nodejs", "js",
/// "go", "rust", "dotnet", …); without it (or when it does not match), the format is detected
/// from the text. Unrecognized text gives an empty Vec. Never panics, any input.
pub fn parse(stacktrace: &str, language: Option<&str>) -> Vec<Frame> {
    let lines: Vec<&str> = stacktrace.lines().collect();
    let hint = language.and_then(Format::from_language);
    let Some(chosen) = choose(&lines, hint) else {
        return Vec::new();
    };
    let mut frames = chosen.frames;
    if chosen.format.crash_first() {
        frames.reverse();
    }
    if frames.len() > MAX_FRAMES {
        frames.drain(..frames.len() - MAX_FRAMES);
    }
    frames
}

/// The text formats, in the order that breaks ties in detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Python,
    Java,
    DotNet,
    Node,
    Go,
    Rust,
}

/// What one format's parser made of the text.
struct Parsed {
    /// The outermost exception's frames, in printed order.
    frames: Vec<Frame>,
    /// Lines of the whole text recognized as frame or location lines: the detection score.
    matched: usize,
}

impl Format {
    const DETECTION_ORDER: [Format; 6] = [
        Format::Python,
        Format::Java,
        Format::DotNet,
        Format::Node,
        Format::Go,
        Format::Rust,
    ];

    /// Maps `telemetry.sdk.language` (and a few common spellings) to a format.
    fn from_language(language: &str) -> Option<Format> {
        match language.trim().to_ascii_lowercase().as_str() {
            "python" | "py" => Some(Format::Python),
            "java" | "kotlin" | "scala" | "jvm" | "groovy" | "clojure" => Some(Format::Java),
            "dotnet" | ".net" | "csharp" | "c#" | "fsharp" | "f#" => Some(Format::DotNet),
            "nodejs" | "node" | "js" | "javascript" | "webjs" | "typescript" | "ts" => {
                Some(Format::Node)
            }
            "go" | "golang" => Some(Format::Go),
            "rust" => Some(Format::Rust),
            _ => None,
        }
    }

    fn parse(self, lines: &[&str]) -> Parsed {
        match self {
            Format::Python => parse_python(lines),
            Format::Java => parse_java(lines),
            Format::DotNet => parse_dotnet(lines),
            Format::Node => parse_node(lines),
            Format::Go => parse_go(lines),
            Format::Rust => parse_rust(lines),
        }
    }

    /// Whether this format's parser counts line `i` as a frame line when it reads from
    /// there: the first line a parser counts is always one it would count alone (a Go
    /// frame is a function line and its location line, hence two lines).
    fn fits(self, lines: &[&str], i: usize) -> bool {
        let width = if self == Format::Go { 2 } else { 1 };
        let end = (i + width).min(lines.len());
        self.parse(&lines[i..end]).matched > 0
    }

    /// Whether the language prints the crashing frame first (everything but Python).
    fn crash_first(self) -> bool {
        self != Format::Python
    }
}

/// The format chosen for a text and its frames.
struct Chosen {
    format: Format,
    /// The outermost exception's frames, in printed order.
    frames: Vec<Frame>,
    /// How many parsers read the whole text (1 unless the shape was ambiguous); the tests
    /// check that the choice stays cheap.
    #[cfg_attr(not(test), allow(dead_code, reason = "read by the tests only"))]
    full_parses: usize,
}

/// Picks the format from the shape of the first frame line and the hint (see the module
/// docs), reading the whole text with as few parsers as it can. `None` when no line fits
/// any format.
fn choose(lines: &[&str], hint: Option<Format>) -> Option<Chosen> {
    choose_among(lines, &shape(lines), hint)
}

/// [`choose`] once the shape's candidates are known.
fn choose_among(lines: &[&str], candidates: &[Format], hint: Option<Format>) -> Option<Chosen> {
    let single = match candidates {
        [] => return None,
        [only] => Some(*only),
        _ => hint.filter(|format| candidates.contains(format)),
    };
    if let Some(format) = single {
        let parsed = format.parse(lines);
        return Some(Chosen {
            format,
            frames: parsed.frames,
            full_parses: 1,
        });
    }
    most_lines(lines, candidates)
}

/// The formats that count the first line any format counts, in detection order; empty
/// when no line fits any format.
fn shape(lines: &[&str]) -> Vec<Format> {
    for i in 0..lines.len() {
        let fitting: Vec<Format> = Format::DETECTION_ORDER
            .into_iter()
            .filter(|format| format.fits(lines, i))
            .collect();
        if !fitting.is_empty() {
            return fitting;
        }
    }
    Vec::new()
}

/// Runs each candidate's parser and keeps the one that explains the most lines, ties going
/// to the earlier candidate ([`Format::DETECTION_ORDER`]).
fn most_lines(lines: &[&str], candidates: &[Format]) -> Option<Chosen> {
    let mut best: Option<(Format, Parsed)> = None;
    for &format in candidates {
        let parsed = format.parse(lines);
        if best
            .as_ref()
            .is_none_or(|(_, current)| parsed.matched > current.matched)
        {
            best = Some((format, parsed));
        }
    }
    best.map(|(format, parsed)| Chosen {
        format,
        frames: parsed.frames,
        full_parses: candidates.len(),
    })
}

// ---------------------------------------------------------------------------------------
// Patterns, captures and frames: what every format's parser shares
// ---------------------------------------------------------------------------------------

/// A regex compiled on first use. `Regex::new` of these constants cannot fail (each format's
/// `patterns_compile` test checks its own); were one to fail it would be `None` and match
/// nothing, which keeps this module free of panics.
type Pattern = LazyLock<Option<Regex>>;

macro_rules! pattern {
    ($re:expr) => {
        ::std::sync::LazyLock::new(|| ::regex::Regex::new($re).ok())
    };
}
// A `macro_rules!` is otherwise visible only below it in this file: this lets each format's
// file import it by path.
use pattern;

fn captures<'t>(pattern: &Pattern, line: &'t str) -> Option<Captures<'t>> {
    pattern.as_ref()?.captures(line)
}

fn matches(pattern: &Pattern, line: &str) -> bool {
    pattern.as_ref().is_some_and(|re| re.is_match(line))
}

fn group<'t>(caps: &Captures<'t>, name: &str) -> Option<&'t str> {
    caps.name(name)
        .map(|m| m.as_str())
        .filter(|text| !text.is_empty())
}

/// A line number; `None` when absent or out of range (never a panic on "99999999999").
fn number(caps: &Captures<'_>, name: &str) -> Option<u32> {
    group(caps, name).and_then(|text| text.parse().ok())
}

fn frame(
    function: Option<&str>,
    module: Option<&str>,
    filename: Option<&str>,
    lineno: Option<u32>,
) -> Frame {
    let owned = |text: Option<&str>| text.filter(|t| !t.is_empty()).map(str::to_owned);
    Frame {
        function: owned(function),
        module: owned(module),
        filename: owned(filename),
        lineno,
        in_app: None,
    }
}

/// Splits `pkg.Class.method` at the last dot. .NET constructors keep their leading dot
/// (`Shop.Cart..ctor` is `Shop.Cart` + `.ctor`).
fn split_last_dot(qualified: &str) -> (Option<&str>, &str) {
    let Some(dot) = qualified.rfind('.') else {
        return (None, qualified);
    };
    let dot = if qualified[..dot].ends_with('.') {
        dot - 1
    } else {
        dot
    };
    if dot == 0 {
        return (None, qualified);
    }
    (Some(&qualified[..dot]), &qualified[dot + 1..])
}

#[cfg(test)]
mod tests {
    use super::fixtures::{f, FIXTURES};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn detection_without_hint_picks_every_fixture_format() {
        for (name, text, format, _) in FIXTURES {
            let chosen = choose(&text.lines().collect::<Vec<_>>(), None).map(|c| c.format);
            assert_eq!(chosen, Some(format), "fixture {name}");
            assert_eq!(
                parse(text, None),
                parse(text, Some(format_language(format))),
                "fixture {name}"
            );
            assert!(!parse(text, None).is_empty(), "fixture {name}");
        }
    }

    fn format_language(format: Format) -> &'static str {
        match format {
            Format::Python => "python",
            Format::Java => "java",
            Format::DotNet => "dotnet",
            Format::Node => "nodejs",
            Format::Go => "go",
            Format::Rust => "rust",
        }
    }

    #[test]
    fn hints_map_to_formats() {
        for (name, text, format, language) in FIXTURES {
            assert_eq!(
                Format::from_language(language),
                Some(format),
                "fixture {name}"
            );
            assert_eq!(
                parse(text, Some(language)),
                parse(text, None),
                "fixture {name}"
            );
        }
        assert_eq!(Format::from_language(" Java "), Some(Format::Java));
        assert_eq!(Format::from_language("js"), Some(Format::Node));
        assert_eq!(Format::from_language("ruby"), None);
    }

    #[test]
    fn wrong_or_unknown_hint_falls_back_to_detection() {
        for (name, text, _, _) in FIXTURES {
            let detected = parse(text, None);
            for language in [
                "python", "java", "dotnet", "nodejs", "go", "rust", "ruby", "",
            ] {
                assert_eq!(
                    parse(text, Some(language)),
                    detected,
                    "{name} with {language:?}"
                );
            }
        }
    }

    /// The format chosen for `text` with `language`, and how many parsers read all of it.
    fn chosen(text: &str, language: Option<&str>) -> Option<(Format, usize)> {
        let lines: Vec<&str> = text.lines().collect();
        choose(&lines, language.and_then(Format::from_language)).map(|c| (c.format, c.full_parses))
    }

    /// Every fixture of `format`, with its SDK's language: that parser alone reads it.
    fn assert_language_picks_one_parser(format: Format) {
        let mut seen = 0;
        for (name, text, expected, language) in FIXTURES {
            if expected != format {
                continue;
            }
            seen += 1;
            assert_eq!(
                chosen(text, Some(language)),
                Some((format, 1)),
                "fixture {name}"
            );
            assert!(!parse(text, Some(language)).is_empty(), "fixture {name}");
        }
        assert!(seen > 0, "no fixture of {format:?}");
    }

    #[test]
    fn python_language_picks_the_python_parser() {
        assert_language_picks_one_parser(Format::Python);
    }

    #[test]
    fn java_language_picks_the_jvm_parser() {
        assert_language_picks_one_parser(Format::Java);
    }

    #[test]
    fn dotnet_language_picks_the_dotnet_parser() {
        assert_language_picks_one_parser(Format::DotNet);
    }

    #[test]
    fn nodejs_language_picks_the_javascript_parser() {
        assert_language_picks_one_parser(Format::Node);
    }

    #[test]
    fn go_language_picks_the_go_parser() {
        assert_language_picks_one_parser(Format::Go);
    }

    #[test]
    fn rust_language_picks_the_rust_parser() {
        assert_language_picks_one_parser(Format::Rust);
    }

    #[test]
    fn unknown_or_missing_language_still_parses_by_shape() {
        for (name, text, format, language) in FIXTURES {
            let hinted = parse(text, Some(language));
            for other in [None, Some("ruby"), Some(""), Some("erlang")] {
                assert_eq!(
                    chosen(text, other).map(|(f, _)| f),
                    Some(format),
                    "{name} with {other:?}"
                );
                assert_eq!(parse(text, other), hinted, "{name} with {other:?}");
            }
        }
    }

    #[test]
    fn every_fixture_needs_one_parser_even_without_a_hint() {
        // No fixture's first frame line fits two formats.
        for (name, text, format, _) in FIXTURES {
            assert_eq!(chosen(text, None), Some((format, 1)), "fixture {name}");
        }
    }

    #[test]
    fn hint_decides_among_formats_of_the_same_shape() {
        // No frame line of the fixtures fits two formats; the rule is checked on a made-up
        // pair of candidates.
        let lines = ["\tat com.shop.Cart.total(Cart.java:42)"];
        let among = |hint| {
            choose_among(&lines, &[Format::Python, Format::Java], hint)
                .map(|c| (c.format, c.full_parses))
        };
        assert_eq!(among(None), Some((Format::Java, 2)), "the most lines");
        assert_eq!(
            among(Some(Format::Python)),
            Some((Format::Python, 1)),
            "the hint, read alone"
        );
        assert_eq!(
            among(Some(Format::Go)),
            Some((Format::Java, 2)),
            "a hint outside the shape is ignored"
        );
    }

    #[test]
    fn the_first_frame_line_decides_the_shape() {
        assert_eq!(
            shape(&["java.lang.Error: x", "\tat a.B.c(B.java:1)"]),
            [Format::Java]
        );
        assert!(shape(&["no frames", "here"]).is_empty());
        // A V8 location-only line first: the shape is Node's, whatever the hint says.
        let text = "    at /app/x.js:1:2\n   0: shop::main\n";
        assert_eq!(chosen(text, Some("rust")), Some((Format::Node, 1)));
    }

    #[test]
    fn unrecognized_text_gives_nothing() {
        assert!(parse("", None).is_empty());
        assert!(parse("KeyError: 'x'", Some("python")).is_empty());
        assert!(parse("something went wrong\n\n  really wrong\n", None).is_empty());
        assert!(parse("Traceback (most recent call last):\n", None).is_empty());
    }

    #[test]
    fn caps_at_250_frames_nearest_the_crash() {
        let mut text = String::from("Traceback (most recent call last):\n");
        for i in 1..=1000 {
            text.push_str(&format!("  File \"/app/r.py\", line {i}, in f\n    f()\n"));
        }
        text.push_str("RecursionError: maximum recursion depth exceeded\n");
        let frames = parse(&text, None);
        assert_eq!(frames.len(), MAX_FRAMES);
        assert_eq!(frames[0].lineno, Some(751));
        assert_eq!(
            frames[MAX_FRAMES - 1].lineno,
            Some(1000),
            "the crash stays last"
        );

        let mut text = String::from("java.lang.StackOverflowError\n");
        for i in 1..=1000 {
            text.push_str(&format!("\tat com.shop.R.f(R.java:{i})\n"));
        }
        let frames = parse(&text, None);
        assert_eq!(frames.len(), MAX_FRAMES);
        assert_eq!(
            frames[MAX_FRAMES - 1].lineno,
            Some(1),
            "the crash stays last"
        );
    }

    #[test]
    fn huge_line_numbers_are_dropped_not_panics() {
        let frames = parse("\tat a.B.c(B.java:99999999999)\n", None);
        assert_eq!(
            frames,
            [f(Some("c"), Some("a.B"), Some("B.java"), None, true)]
        );
    }

    /// Lines of every fixture: material for the line-mixing property test.
    fn fixture_lines() -> Vec<&'static str> {
        FIXTURES
            .iter()
            .flat_map(|(_, text, _, _)| text.lines())
            .collect()
    }

    /// A real line cut at a random character and glued to random text.
    fn mangled_line() -> impl Strategy<Value = String> {
        (
            prop::sample::select(fixture_lines()),
            0usize..200,
            ".{0,12}",
            any::<bool>(),
        )
            .prop_map(|(line, cut, junk, junk_first)| {
                let kept: String = line.chars().take(cut).collect();
                if junk_first {
                    format!("{junk}{kept}")
                } else {
                    format!("{kept}{junk}")
                }
            })
    }

    fn language() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            prop::sample::select(vec!["python", "java", "dotnet", "nodejs", "go", "rust"])
                .prop_map(str::to_owned),
            ".{0,8}",
        ])
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>(), language in language()) {
            let frames = parse(&text, language.as_deref());
            prop_assert!(frames.len() <= MAX_FRAMES);
        }

        #[test]
        fn never_panics_on_pieces_of_real_traces(
            lines in prop::collection::vec(
                prop_oneof![
                    3 => prop::sample::select(fixture_lines()).prop_map(str::to_owned),
                    2 => mangled_line(),
                ],
                0..80,
            ),
            separator in prop::sample::select(vec!["\n", "\r\n", "\n\n"]),
            language in language(),
        ) {
            let text = lines.join(separator);
            let frames = parse(&text, language.as_deref());
            prop_assert!(frames.len() <= MAX_FRAMES);
            for frame in &frames {
                prop_assert!(frame.in_app.is_some());
            }
        }

        #[test]
        fn repeated_real_frames_are_capped(
            line in prop::sample::select(fixture_lines()),
            count in 0usize..600,
        ) {
            let text = format!("{line}\n").repeat(count);
            prop_assert!(parse(&text, None).len() <= MAX_FRAMES);
        }
    }
}
