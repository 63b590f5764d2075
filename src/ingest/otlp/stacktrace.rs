//! Frames from the text of a stack trace (OpenTelemetry's `exception.stacktrace`).
//!
//! OpenTelemetry SDKs do not send structured frames: `exception.stacktrace` is the
//! language's own rendering of the trace. Seismo groups errors by frames, so [`parse`] turns
//! that text back into [`Frame`]s.
//!
//! # Formats
//!
//! Each format is recognized by the lines its frames are printed on; everything else
//! (messages, `... 12 more`, source lines, blank lines) is skipped.
//!
//! | format | frame lines | printed |
//! |--------|-------------|---------|
//! | Python | `  File "/app/cart.py", line 42, in total` | caller first |
//! | Java, Kotlin, Scala | `\tat com.shop.Cart.total(Cart.java:42)`, also `(Native Method)`, `(Unknown Source)`, `app//` and `java.base@17/` prefixes | crash first |
//! | .NET | `   at Shop.Cart.Total(Int32 id) in /src/Cart.cs:line 42`, also without ` in …` | crash first |
//! | Node / V8 | `    at Cart.total (/app/cart.js:42:13)`, `    at /app/cart.js:42:13` | crash first |
//! | Firefox / Safari | `total@https://shop.example/app.js:42:13` | crash first |
//! | Go | `main.(*Cart).Total(0xc0)` followed by `\t/app/cart.go:42 +0x1d` | crash first |
//! | Rust | `   4: shop::cart::total` optionally followed by `at ./src/cart.rs:42:13` | crash first |
//!
//! The output is always caller first, crashing frame last (Sentry's order, which grouping
//! expects), capped at the 250 frames nearest the crash.
//!
//! # Which format
//!
//! The `telemetry.sdk.language` hint is taken when it names a format and that format
//! explains at least as many lines as any other; otherwise (no hint, unknown language, or a
//! hint contradicted by the text, e.g. a service forwarding another service's trace) the
//! format that explains the most lines wins, ties going to Python, Java, .NET, Node, Go,
//! Rust in that order. Counting lines rather than trusting the first match matters because
//! the patterns overlap: a Rust `at ./src/x.rs:1:2` line is also a valid Node location-only
//! line, but a Rust trace has more symbol-plus-location lines than Node lines.
//!
//! # Chained exceptions
//!
//! Only the frames of the exception that was raised (the outermost) are kept, because that
//! is what the event is about and what its title names:
//! - Python prints causes first, so the *last* `Traceback` block wins. Exception groups
//!   (3.11+) print sub-exception tracebacks inside a `|` margin after the group's own
//!   frames; those are skipped.
//! - Java prints the raised exception first: frames stop at the first `Caused by:` or
//!   `Suppressed:`.
//! - .NET nests inner exceptions inside the outer one (` ---> ` opens one,
//!   `--- End of inner exception stack trace ---` or a trailing `<---` closes it); only
//!   frames at nesting depth zero are kept. A truncated trace whose outer frames are missing
//!   keeps all frames rather than none.
//! - Node prints `[cause]:` / `[errors]:` properties after the stack: frames stop there.
//! - Go prints every goroutine with `GOTRACEBACK=all`; only the first (the panicking one) is
//!   kept, without its `created by` line (that is where it was started, not a caller).
//!
//! # In-app
//!
//! Grouping uses only in-app frames when there are any, so `in_app` is always set, `false`
//! for code the application did not write:
//! - Python: paths with `site-packages`, `dist-packages`, `/lib/python3`, `<frozen …>`, and
//!   the standard library of Windows installs (`C:\Python312\Lib\…`).
//! - JVM: classes of `java.`, `javax.`, `jakarta.`, `jdk.`, `sun.`, `com.sun.`, `kotlin.`,
//!   `kotlinx.`, `scala.`, `org.springframework.`, `org.apache.`, `io.netty.`, `reactor.`.
//! - .NET: `System.` and `Microsoft.`, and methods without a type (dynamic methods such as
//!   `lambda_method5`).
//! - Node: `node_modules`, `node:` core modules, `internal/`, `<anonymous>`, frames without a
//!   file (`native`, `index 0`), and bare file names like `events.js` (old Node core).
//! - Go: the `runtime` packages and unqualified runtime functions (`panic`), files under
//!   GOROOT (`/usr/local/go/src/`, `/usr/lib/go`, `…/src/runtime/`) or the module cache
//!   (`/pkg/mod/`).
//! - Rust: the `std`, `core`, `alloc`, `backtrace`, `tokio`, `futures` crates (and
//!   `tokio_*`, `futures_*`, `_`-prefixed ones), trait impls for their types
//!   (`<alloc::boxed::Box<F> as …>`), symbols without a path (libc's `start_thread`,
//!   `<unknown>`), files under `/rustc/` or cargo's registry and git checkouts.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use crate::model::Frame;

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
    let Some((format, mut frames)) = choose(&lines, hint) else {
        return Vec::new();
    };
    if format.crash_first() {
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

    /// Whether the language prints the crashing frame first (everything but Python).
    fn crash_first(self) -> bool {
        self != Format::Python
    }
}

/// Runs every parser and keeps the one that explains the most lines; the hinted format
/// wins ties, then [`Format::DETECTION_ORDER`]. `None` when no format matches a line.
fn choose(lines: &[&str], hint: Option<Format>) -> Option<(Format, Vec<Frame>)> {
    let mut best: Option<(Format, Parsed)> = None;
    for format in Format::DETECTION_ORDER {
        let parsed = format.parse(lines);
        if parsed.matched == 0 {
            continue;
        }
        let better = match &best {
            None => true,
            Some((_, current)) => {
                parsed.matched > current.matched
                    || (parsed.matched == current.matched && hint == Some(format))
            }
        };
        if better {
            best = Some((format, parsed));
        }
    }
    best.map(|(format, parsed)| (format, parsed.frames))
}

// ---------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------

/// A regex compiled on first use. `Regex::new` of these constants cannot fail (the
/// `patterns_compile` test checks each one); were one to fail it would be `None` and match
/// nothing, which keeps this module free of panics.
type Pattern = LazyLock<Option<Regex>>;

macro_rules! pattern {
    ($re:expr) => {
        LazyLock::new(|| Regex::new($re).ok())
    };
}

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

// ---------------------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------------------

/// `Traceback (most recent call last):`, also `  + Exception Group Traceback …` and, inside
/// a group, `    | Traceback …`. The margin tells top-level blocks from nested ones.
static PY_HEADER: Pattern = pattern!(
    r"^(?P<margin>[ \t|+\-]*)(?:Exception Group )?Traceback \(most recent call last\):\s*$"
);
/// `  File "/app/shop/cart.py", line 42, in get_total` (`in …` is missing for syntax errors).
static PY_FRAME: Pattern =
    pattern!(r#"^[ \t|]*File "(?P<file>.+?)", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$"#);

fn parse_python(lines: &[&str]) -> Parsed {
    let mut frames = Vec::new();
    let mut matched = 0;
    // Text without a header (e.g. `traceback.format_stack()`) is one block.
    let mut collecting = true;
    for line in lines {
        if let Some(caps) = captures(&PY_HEADER, line) {
            // A chained traceback printed later is the one raised last: start over. A
            // header inside a `|` margin is a sub-exception of a group: not the raised one.
            let nested = group(&caps, "margin").is_some_and(|m| m.contains('|'));
            if !nested {
                frames.clear();
            }
            collecting = !nested;
        } else if let Some(caps) = captures(&PY_FRAME, line) {
            matched += 1;
            if collecting {
                frames.push(python_frame(&caps));
            }
        }
    }
    Parsed { frames, matched }
}

fn python_frame(caps: &Captures<'_>) -> Frame {
    let file = group(caps, "file");
    let mut frame = frame(group(caps, "func"), None, file, number(caps, "line"));
    frame.in_app = Some(file.is_none_or(python_in_app));
    frame
}

fn python_in_app(path: &str) -> bool {
    const LIBRARY_MARKERS: [&str; 4] =
        ["site-packages", "dist-packages", "/lib/python3", "<frozen"];
    // The standard library of a Windows install: `C:\Python312\Lib\json\decoder.py`.
    let windows_stdlib = path.contains(r"\Lib\") && path.contains("Python");
    !(windows_stdlib || LIBRARY_MARKERS.iter().any(|marker| path.contains(marker)))
}

// ---------------------------------------------------------------------------------------
// Java, Kotlin, Scala
// ---------------------------------------------------------------------------------------

/// `\tat [loader/][module[@version]/]pkg.Class.method(Source)`, where Source is
/// `File.java:42`, `File.java`, `Native Method` or `Unknown Source[:42]`. The method is
/// glued to `(`, unlike V8's `at fn (file)`, and the parentheses hold no spaces (other than
/// the two fixed phrases), unlike .NET's parameter lists. Logback may append ` ~[app.jar:?]`.
static JAVA_FRAME: Pattern = pattern!(
    r"^\s*at\s+(?P<qual>[^\s(]+)\((?:Native Method|Unknown Source(?::(?P<uline>\d+))?|(?P<file>[^\s:()]+)(?::(?P<line>\d+))?)\)(?:\s+[~\[].*)?\s*$"
);
/// The raised exception's frames end where its causes or suppressed exceptions begin.
static JAVA_SECTION_END: Pattern = pattern!(r"^\s*(?:Caused by|Suppressed):");

fn parse_java(lines: &[&str]) -> Parsed {
    let mut frames = Vec::new();
    let mut matched = 0;
    let mut collecting = true;
    for line in lines {
        if matches(&JAVA_SECTION_END, line) {
            collecting = false;
        } else if let Some(caps) = captures(&JAVA_FRAME, line) {
            matched += 1;
            if collecting {
                frames.push(java_frame(&caps));
            }
        }
    }
    Parsed { frames, matched }
}

fn java_frame(caps: &Captures<'_>) -> Frame {
    let qualified = group(caps, "qual").unwrap_or_default();
    // `app//com.x.Y.z` and `java.base@17/java.util.X.y`: the class loader and module
    // name the jar, not the code; class names never contain '/'.
    let qualified = qualified.rsplit('/').next().unwrap_or(qualified);
    let (class, method) = split_last_dot(qualified);
    let lineno = number(caps, "line").or_else(|| number(caps, "uline"));
    let mut frame = frame(Some(method), class, group(caps, "file"), lineno);
    frame.in_app = Some(class.is_none_or(java_in_app));
    frame
}

fn java_in_app(class: &str) -> bool {
    const LIBRARY_PREFIXES: [&str; 13] = [
        "java.",
        "javax.",
        "jakarta.",
        "jdk.",
        "sun.",
        "com.sun.",
        "kotlin.",
        "kotlinx.",
        "scala.",
        "org.springframework.",
        "org.apache.",
        "io.netty.",
        "reactor.",
    ];
    !LIBRARY_PREFIXES
        .iter()
        .any(|prefix| class.starts_with(prefix))
}

// ---------------------------------------------------------------------------------------
// .NET
// ---------------------------------------------------------------------------------------

/// `   at Ns.Class.Method(Type name, …)[ in /path/File.cs:line 42]`, the last frame of an
/// `(Inner Exception #n)` section ending in `<---`.
static DOTNET_FRAME: Pattern = pattern!(
    r"^\s*at (?P<qual>[^\s(]+)\((?P<params>[^()]*)\)(?: in (?P<file>.+?):line (?P<line>\d+))?\s*(?:<---)?\s*$"
);

fn parse_dotnet(lines: &[&str]) -> Parsed {
    let mut outer = Vec::new();
    let mut all = Vec::new();
    let mut matched = 0;
    // Nesting of inner exceptions: ` ---> Inner: msg` opens one, "--- End of inner
    // exception stack trace ---" (or a trailing `<---` of an aggregate's section) closes it.
    let mut depth = 0usize;
    for line in lines {
        let trimmed = line.trim();
        if trimmed.starts_with("--->") {
            depth += 1;
        } else if trimmed.starts_with("--- End of inner exception stack trace ---") {
            depth = depth.saturating_sub(1);
        } else if let Some(frame) = captures(&DOTNET_FRAME, line).and_then(|c| dotnet_frame(&c)) {
            matched += 1;
            if depth == 0 {
                outer.push(frame.clone());
            }
            all.push(frame);
        }
        if trimmed.ends_with("<---") {
            depth = depth.saturating_sub(1);
        }
    }
    // Truncated text may lose the outer frames (they come last); the inner ones still
    // locate the error better than nothing.
    let frames = if outer.is_empty() { all } else { outer };
    Parsed { frames, matched }
}

/// `None` when the parentheses hold a JVM source (`Foo.java:1`, `Native Method`) rather
/// than a parameter list: .NET parameters are empty or `Type name` pairs.
fn dotnet_frame(caps: &Captures<'_>) -> Option<Frame> {
    let params = caps.name("params").map_or("", |m| m.as_str());
    let is_parameter_list = params.is_empty()
        || (params.contains(char::is_whitespace)
            && params != "Native Method"
            && !params.starts_with("Unknown Source"));
    if !is_parameter_list {
        return None;
    }
    let qualified = group(caps, "qual")?;
    let (class, method) = split_last_dot(qualified);
    let mut frame = frame(
        Some(method),
        class,
        group(caps, "file"),
        number(caps, "line"),
    );
    frame.in_app = Some(class.is_some_and(dotnet_in_app));
    Some(frame)
}

/// Methods without a type (`lambda_method5`) are generated at run time: not app code.
fn dotnet_in_app(class: &str) -> bool {
    !(class.starts_with("System.")
        || class == "System"
        || class.starts_with("Microsoft.")
        || class == "Microsoft")
}

// ---------------------------------------------------------------------------------------
// Node / V8, Firefox, Safari
// ---------------------------------------------------------------------------------------

/// `    at [async ]fn [as alias] (location)`; util.inspect may append ` {` before the
/// error's own properties.
static NODE_CALL: Pattern =
    pattern!(r"^\s*at (?:async )?(?P<func>.+?) (?:\[as [^\]]*\] )?\((?P<loc>.*)\)(?: \{)?\s*$");
/// `    at [async ]/app/src/index.js:7:3`: an anonymous function, location only.
static NODE_ANONYMOUS: Pattern =
    pattern!(r"^\s*at (?:async )?(?P<loc>\S+:\d+(?::\d+)?|<anonymous>)(?: \{)?\s*$");
/// Firefox and Safari: `fn@https://host/app.js:42:13`, `@…` when anonymous. Never
/// indented, which keeps Go's `\t/go/pkg/mod/x@v1.2.3/y.go:12` out.
static BROWSER_FRAME: Pattern =
    pattern!(r"^(?P<func>[^@\s][^@]*)?@(?P<loc>\S+:\d+(?::\d+)?|\[native code\])\s*$");
/// A location `file:line[:column]`.
static JS_LOCATION: Pattern = pattern!(r"^(?P<file>.+?):(?P<line>\d+)(?::\d+)?$");
/// Properties util.inspect prints after the stack: other exceptions' frames follow.
static NODE_SECTION_END: Pattern = pattern!(r"^\s*(?:\[cause\]|\[errors\]|Caused by):");

fn parse_node(lines: &[&str]) -> Parsed {
    let mut frames = Vec::new();
    let mut matched = 0;
    let mut collecting = true;
    for line in lines {
        if matches(&NODE_SECTION_END, line) {
            collecting = false;
        } else if let Some(frame) = node_frame(line) {
            matched += 1;
            if collecting {
                frames.push(frame);
            }
        }
    }
    Parsed { frames, matched }
}

fn node_frame(line: &str) -> Option<Frame> {
    let (function, location) = if let Some(caps) = captures(&NODE_CALL, line) {
        (group(&caps, "func"), group(&caps, "loc"))
    } else if let Some(caps) = captures(&NODE_ANONYMOUS, line) {
        (None, group(&caps, "loc"))
    } else if let Some(caps) = captures(&BROWSER_FRAME, line) {
        (group(&caps, "func"), group(&caps, "loc"))
    } else {
        return None;
    };
    let function = function.filter(|f| *f != "<anonymous>");
    let (filename, lineno) = js_location(location.unwrap_or_default());
    let mut frame = frame(function, None, filename, lineno);
    frame.in_app = Some(filename.is_some_and(node_in_app));
    Some(frame)
}

/// File and line of a V8 location. `native`, `index 0` and `[native code]` have no file.
fn js_location(location: &str) -> (Option<&str>, Option<u32>) {
    // `eval at fn (/app/x.js:1:1), <anonymous>:1:1`: the code ran at the last location.
    let location = match location.rsplit_once("), ") {
        Some((_, ran_at)) if location.starts_with("eval at ") => ran_at,
        _ => location,
    };
    if let Some(caps) = captures(&JS_LOCATION, location) {
        return (group(&caps, "file"), number(&caps, "line"));
    }
    match location {
        "<anonymous>" => (Some(location), None),
        _ => (None, None),
    }
}

fn node_in_app(filename: &str) -> bool {
    let library = filename.contains("node_modules")
        || filename.starts_with("node:")
        || filename.starts_with("internal/")
        || filename == "<anonymous>"
        // Node prints app files as absolute paths or URLs; a bare `events.js` is old Node's
        // core library.
        || !filename.contains(['/', '\\']);
    !library
}

// ---------------------------------------------------------------------------------------
// Go
// ---------------------------------------------------------------------------------------

/// `github.com/shop/cart.(*Cart).Total(0xc000010000, {0x1, 0x2})`: function and arguments.
static GO_FUNCTION: Pattern = pattern!(r"^\s*(?P<sym>[^\s()]\S*)\((?P<args>[^()]*)\)\s*$");
/// `\t/app/cart.go:42 +0x1d`, the line right after its function.
static GO_LOCATION: Pattern =
    pattern!(r"^\s+(?P<file>\S.*?):(?P<line>\d+)(?: \+0x[0-9a-fA-F]+)?\s*$");
/// `goroutine 1 [running]:`
static GO_GOROUTINE: Pattern = pattern!(r"^\s*goroutine \d+ \[.*\]:\s*$");

fn parse_go(lines: &[&str]) -> Parsed {
    let mut frames = Vec::new();
    let mut matched = 0;
    let mut goroutines = 0;
    let mut i = 0;
    while i < lines.len() {
        if matches(&GO_GOROUTINE, lines[i]) {
            goroutines += 1;
        } else if let Some(frame) = go_frame(lines[i], lines.get(i + 1).copied()) {
            // A function line counts only with its location line: alone, `main()` could be
            // a line of Python source.
            matched += 2;
            // The panicking goroutine is printed first; the others only with GOTRACEBACK=all.
            if goroutines <= 1 {
                frames.push(frame);
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    Parsed { frames, matched }
}

fn go_frame(function_line: &str, location_line: Option<&str>) -> Option<Frame> {
    let function = captures(&GO_FUNCTION, function_line)?;
    let location = captures(&GO_LOCATION, location_line?)?;
    let symbol = group(&function, "sym")?;
    let (package, name) = split_go_symbol(symbol);
    let filename = group(&location, "file");
    let mut frame = frame(Some(name), None, filename, number(&location, "line"));
    frame.in_app = Some(go_in_app(package.as_deref(), filename));
    frame.module = package;
    Some(frame)
}

/// `github.com/shop/cart.(*Cart).Total` → (`github.com/shop/cart`, `(*Cart).Total`): the
/// package path ends at the first dot after its last slash. The linker escapes dots of the
/// last path element (`gopkg.in/yaml%2ev3`); they are restored.
fn split_go_symbol(symbol: &str) -> (Option<String>, &str) {
    // Receivers `(*T)` and type parameters `[...]` come after the package path.
    let head = symbol.find(['(', '[']).unwrap_or(symbol.len());
    let last_element = symbol[..head].rfind('/').map_or(0, |slash| slash + 1);
    match symbol[last_element..head].find('.') {
        Some(dot) => {
            let end = last_element + dot;
            (Some(symbol[..end].replace("%2e", ".")), &symbol[end + 1..])
        }
        // `panic(...)`, `goexit`: runtime functions are printed unqualified.
        None => (None, symbol),
    }
}

fn go_in_app(package: Option<&str>, filename: Option<&str>) -> bool {
    const LIBRARY_PATHS: [&str; 4] = [
        "/usr/local/go/src/",
        "/usr/lib/go",
        "/src/runtime/",
        "/pkg/mod/",
    ];
    let Some(package) = package else {
        return false;
    };
    let runtime = package == "runtime" || package.starts_with("runtime/");
    let library_file =
        filename.is_some_and(|file| LIBRARY_PATHS.iter().any(|path| file.contains(path)));
    !(runtime || library_file)
}

// ---------------------------------------------------------------------------------------
// Rust
// ---------------------------------------------------------------------------------------

/// `   4: shop::cart::total` or, with RUST_BACKTRACE=full, `   4:     0x55d5c39d4e21 - …`.
static RUST_FRAME: Pattern = pattern!(r"^\s*\d+:\s+(?:0x[0-9a-fA-F]+ - )?(?P<sym>\S.*?)\s*$");
/// `             at ./src/cart.rs:42:13` under its symbol.
static RUST_AT: Pattern = pattern!(r"^\s+at (?P<file>.+?):(?P<line>\d+)(?::\d+)?\s*$");
/// Further symbols of one frame (inlined functions) are indented without a number.
static RUST_INLINED: Pattern = pattern!(r"^\s{6,}(?P<sym>(?:<|[A-Za-z_])\S*?::.*?)\s*$");
/// The hash of legacy-mangled symbols, which changes with every build.
static RUST_HASH: Pattern = pattern!(r"::h[0-9a-f]{16}$");

fn parse_rust(lines: &[&str]) -> Parsed {
    let mut frames: Vec<Frame> = Vec::new();
    let mut matched = 0;
    // Whether the previous line belonged to a frame: `at` and inlined-symbol lines only
    // mean something right under one.
    let mut in_frame = false;
    for line in lines {
        if let Some(caps) = captures(&RUST_FRAME, line) {
            frames.push(rust_frame(group(&caps, "sym").unwrap_or_default()));
        } else if let (true, Some(caps)) = (in_frame, captures(&RUST_AT, line)) {
            if let Some(last) = frames.last_mut().filter(|f| f.filename.is_none()) {
                last.filename = group(&caps, "file").map(str::to_owned);
                last.lineno = number(&caps, "line");
            }
        } else if let (true, Some(caps)) = (in_frame, captures(&RUST_INLINED, line)) {
            frames.push(rust_frame(group(&caps, "sym").unwrap_or_default()));
        } else {
            in_frame = false;
            continue;
        }
        matched += 1;
        in_frame = true;
    }
    for frame in &mut frames {
        frame.in_app = Some(rust_in_app(frame));
    }
    Parsed { frames, matched }
}

fn rust_frame(symbol: &str) -> Frame {
    let symbol = match RUST_HASH.as_ref().and_then(|re| re.find(symbol)) {
        Some(hash) => &symbol[..hash.start()],
        None => symbol,
    };
    let (module, function) = split_rust_path(symbol);
    frame(Some(function), module, None, None)
}

/// Splits at the last `::` outside angle brackets: `<a::B as c::D>::f` → (`<a::B as c::D>`,
/// `f`). The `>` of `->` in `fn() -> T` does not close a bracket.
fn split_rust_path(symbol: &str) -> (Option<&str>, &str) {
    let mut depth = 0i32;
    let mut last = None;
    let mut previous = '\0';
    for (i, c) in symbol.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if previous != '-' => depth -= 1,
            ':' if previous == ':' && depth == 0 => last = Some(i - 1),
            _ => {}
        }
        // `:::` must not count twice.
        previous = if previous == ':' && c == ':' { '\0' } else { c };
    }
    match last {
        Some(i) if i > 0 => (Some(&symbol[..i]), &symbol[i + 2..]),
        _ => (None, symbol),
    }
}

fn rust_in_app(frame: &Frame) -> bool {
    const LIBRARY_PATHS: [&str; 3] = ["/rustc/", "cargo/registry/", "cargo/git/checkouts/"];
    if let Some(file) = &frame.filename {
        if LIBRARY_PATHS.iter().any(|path| file.contains(path)) {
            return false;
        }
    }
    match frame.module.as_deref() {
        // Rust code always has a crate path; bare symbols are libc (`start_thread`),
        // `<unknown>` or the panic runtime (`rust_begin_unwind`).
        None => false,
        Some(module) if module.starts_with('<') => !rust_impl_is_library(module),
        Some(module) => !rust_crate_is_library(module),
    }
}

/// `<Self as Trait>`: judged by the self type when it is a path, by the trait when the self
/// type is a primitive or a type parameter (`<i32 as core::fmt::Display>`).
fn rust_impl_is_library(module: &str) -> bool {
    let inner = module.trim_start_matches('<');
    let (self_type, trait_path) = match inner.split_once(" as ") {
        Some((self_type, trait_path)) => (self_type, Some(trait_path)),
        None => (inner, None),
    };
    let self_type = strip_rust_type_prefixes(self_type);
    if self_type.contains("::") {
        rust_crate_is_library(self_type)
    } else {
        trait_path.is_some_and(rust_crate_is_library)
    }
}

/// `&mut dyn a::B` → `a::B`.
fn strip_rust_type_prefixes(mut ty: &str) -> &str {
    loop {
        let stripped = ty
            .trim_start_matches(['&', '*', '[', '(', ' '])
            .trim_start_matches("mut ")
            .trim_start_matches("const ")
            .trim_start_matches("dyn ");
        if stripped.len() == ty.len() {
            return ty;
        }
        ty = stripped;
    }
}

fn rust_crate_is_library(path: &str) -> bool {
    const LIBRARY_CRATES: [&str; 8] = [
        "std",
        "core",
        "alloc",
        "backtrace",
        "tokio",
        "futures",
        "panic_unwind",
        "proc_macro",
    ];
    let krate = path.split("::").next().unwrap_or(path);
    LIBRARY_CRATES.contains(&krate)
        || krate.starts_with("tokio_")
        || krate.starts_with("futures_")
        || krate.starts_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PYTHON: &str = include_str!("../../../tests/fixtures/stacktraces/python.txt");
    const PYTHON_CHAINED: &str =
        include_str!("../../../tests/fixtures/stacktraces/python_chained.txt");
    const PYTHON_GROUP: &str = include_str!("../../../tests/fixtures/stacktraces/python_group.txt");
    const JAVA: &str = include_str!("../../../tests/fixtures/stacktraces/java.txt");
    const KOTLIN: &str = include_str!("../../../tests/fixtures/stacktraces/kotlin.txt");
    const DOTNET: &str = include_str!("../../../tests/fixtures/stacktraces/dotnet.txt");
    const DOTNET_NOPDB: &str = include_str!("../../../tests/fixtures/stacktraces/dotnet_nopdb.txt");
    const DOTNET_AGGREGATE: &str =
        include_str!("../../../tests/fixtures/stacktraces/dotnet_aggregate.txt");
    const NODE: &str = include_str!("../../../tests/fixtures/stacktraces/node.txt");
    const NODE_CAUSE: &str = include_str!("../../../tests/fixtures/stacktraces/node_cause.txt");
    const BROWSER: &str = include_str!("../../../tests/fixtures/stacktraces/browser.txt");
    const GO: &str = include_str!("../../../tests/fixtures/stacktraces/go.txt");
    const GO_DEBUG_STACK: &str =
        include_str!("../../../tests/fixtures/stacktraces/go_debug_stack.txt");
    const RUST: &str = include_str!("../../../tests/fixtures/stacktraces/rust.txt");
    const RUST_FULL: &str = include_str!("../../../tests/fixtures/stacktraces/rust_full.txt");

    /// Every fixture with the format it is in and its `telemetry.sdk.language`.
    const FIXTURES: [(&str, &str, Format, &str); 15] = [
        ("python", PYTHON, Format::Python, "python"),
        ("python_chained", PYTHON_CHAINED, Format::Python, "python"),
        ("python_group", PYTHON_GROUP, Format::Python, "python"),
        ("java", JAVA, Format::Java, "java"),
        ("kotlin", KOTLIN, Format::Java, "java"),
        ("dotnet", DOTNET, Format::DotNet, "dotnet"),
        ("dotnet_nopdb", DOTNET_NOPDB, Format::DotNet, "dotnet"),
        (
            "dotnet_aggregate",
            DOTNET_AGGREGATE,
            Format::DotNet,
            "dotnet",
        ),
        ("node", NODE, Format::Node, "nodejs"),
        ("node_cause", NODE_CAUSE, Format::Node, "nodejs"),
        ("browser", BROWSER, Format::Node, "webjs"),
        ("go", GO, Format::Go, "go"),
        ("go_debug_stack", GO_DEBUG_STACK, Format::Go, "go"),
        ("rust", RUST, Format::Rust, "rust"),
        ("rust_full", RUST_FULL, Format::Rust, "rust"),
    ];

    fn f(
        function: Option<&str>,
        module: Option<&str>,
        filename: Option<&str>,
        lineno: Option<u32>,
        in_app: bool,
    ) -> Frame {
        Frame {
            function: function.map(str::to_owned),
            module: module.map(str::to_owned),
            filename: filename.map(str::to_owned),
            lineno,
            in_app: Some(in_app),
        }
    }

    /// Asserts the frame list, listed crash first for readability.
    fn assert_frames_crash_first(text: &str, language: Option<&str>, expected: &[Frame]) {
        let mut frames = parse(text, language);
        frames.reverse();
        assert_eq!(frames, expected);
    }

    #[test]
    fn patterns_compile() {
        let patterns: [&Pattern; 17] = [
            &PY_HEADER,
            &PY_FRAME,
            &JAVA_FRAME,
            &JAVA_SECTION_END,
            &DOTNET_FRAME,
            &NODE_CALL,
            &NODE_ANONYMOUS,
            &BROWSER_FRAME,
            &JS_LOCATION,
            &NODE_SECTION_END,
            &GO_FUNCTION,
            &GO_LOCATION,
            &GO_GOROUTINE,
            &RUST_FRAME,
            &RUST_AT,
            &RUST_INLINED,
            &RUST_HASH,
        ];
        for pattern in patterns {
            assert!(pattern.is_some());
        }
    }

    #[test]
    fn python() {
        let site = "/usr/local/lib/python3.12/site-packages/flask/app.py";
        let expected = [
            f(
                Some("<genexpr>"),
                None,
                Some("/app/shop/cart.py"),
                Some(42),
                true,
            ),
            f(
                Some("get_total"),
                None,
                Some("/app/shop/cart.py"),
                Some(42),
                true,
            ),
            f(
                Some("checkout"),
                None,
                Some("/app/shop/views.py"),
                Some(18),
                true,
            ),
            f(Some("dispatch_request"), None, Some(site), Some(902), false),
            f(
                Some("full_dispatch_request"),
                None,
                Some(site),
                Some(917),
                false,
            ),
            f(
                Some("full_dispatch_request"),
                None,
                Some(site),
                Some(919),
                false,
            ),
            f(Some("wsgi_app"), None, Some(site), Some(1511), false),
        ];
        assert_frames_crash_first(PYTHON, Some("python"), &expected);
    }

    #[test]
    fn python_windows_paths_and_crlf() {
        let text = concat!(
            "Traceback (most recent call last):\r\n",
            "  File \"C:\\app\\shop\\cart.py\", line 42, in total\r\n",
            "    return json.loads(raw)\r\n",
            "  File \"C:\\Python312\\Lib\\json\\decoder.py\", line 353, in raw_decode\r\n",
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\r\n",
        );
        let expected = [
            f(
                Some("raw_decode"),
                None,
                Some(r"C:\Python312\Lib\json\decoder.py"),
                Some(353),
                false,
            ),
            f(
                Some("total"),
                None,
                Some(r"C:\app\shop\cart.py"),
                Some(42),
                true,
            ),
        ];
        assert_frames_crash_first(text, None, &expected);
    }

    #[test]
    fn python_chained_takes_the_last_traceback() {
        let expected = [
            f(
                Some("checkout"),
                None,
                Some("/app/shop/checkout.py"),
                Some(12),
                true,
            ),
            f(
                Some("handle"),
                None,
                Some("/app/shop/api.py"),
                Some(30),
                true,
            ),
            f(
                Some("_run_code"),
                None,
                Some("<frozen runpy>"),
                Some(88),
                false,
            ),
            f(
                Some("run"),
                None,
                Some("/usr/lib/python3.11/asyncio/runners.py"),
                Some(118),
                false,
            ),
        ];
        assert_frames_crash_first(PYTHON_CHAINED, None, &expected);
    }

    #[test]
    fn python_exception_group_takes_the_group_frames() {
        let expected = [
            f(
                Some("__aexit__"),
                None,
                Some("/usr/lib/python3.12/asyncio/taskgroups.py"),
                Some(145),
                false,
            ),
            f(
                Some("run"),
                None,
                Some("/app/shop/batch.py"),
                Some(61),
                true,
            ),
        ];
        assert_frames_crash_first(PYTHON_GROUP, Some("python"), &expected);
    }

    #[test]
    fn java_takes_the_top_section() {
        let frames = parse(JAVA, Some("java"));
        assert_eq!(
            frames.len(),
            11,
            "no Caused by / Suppressed frames: {frames:#?}"
        );
        let crash_first: Vec<_> = frames.iter().rev().cloned().collect();
        assert_eq!(
            crash_first[..4],
            [
                f(
                    Some("total"),
                    Some("com.shop.cart.CartService"),
                    Some("CartService.java"),
                    Some(42),
                    true
                ),
                f(
                    Some("checkout"),
                    Some("com.shop.cart.CartController"),
                    Some("CartController.java"),
                    Some(27),
                    true
                ),
                f(
                    Some("invoke"),
                    Some("jdk.internal.reflect.DirectMethodHandleAccessor"),
                    Some("DirectMethodHandleAccessor.java"),
                    Some(103),
                    false
                ),
                f(
                    Some("invoke"),
                    Some("java.lang.reflect.Method"),
                    Some("Method.java"),
                    Some(580),
                    false
                ),
            ]
        );
        assert_eq!(
            frames[0],
            f(
                Some("run"),
                Some("java.lang.Thread"),
                Some("Thread.java"),
                Some(1583),
                false
            )
        );
        assert!(frames
            .iter()
            .all(|frame| frame.function.as_deref() != Some("find")));
    }

    #[test]
    fn kotlin_with_module_prefixes_native_and_unknown_source() {
        let expected = [
            f(
                Some("reserve"),
                Some("com.shop.inventory.Stock"),
                Some("Stock.kt"),
                Some(88),
                true,
            ),
            f(
                Some("reserveAll"),
                Some("com.shop.inventory.Stock"),
                Some("Stock.kt"),
                Some(61),
                true,
            ),
            f(
                Some("reserveAll"),
                Some("com.shop.inventory.$Proxy42"),
                None,
                None,
                true,
            ),
            f(
                Some("invoke0"),
                Some("jdk.internal.reflect.NativeMethodAccessorImpl"),
                None,
                None,
                false,
            ),
            f(
                Some("invoke"),
                Some("jdk.internal.reflect.NativeMethodAccessorImpl"),
                Some("NativeMethodAccessorImpl.java"),
                Some(77),
                false,
            ),
            f(
                Some("run"),
                Some("kotlinx.coroutines.DispatchedTask"),
                Some("DispatchedTask.kt"),
                Some(108),
                false,
            ),
            f(
                Some("run"),
                Some("com.shop.inventory.Worker"),
                Some("Worker.kt"),
                Some(33),
                true,
            ),
            f(
                Some("run"),
                Some("java.lang.Thread"),
                Some("Thread.java"),
                Some(840),
                false,
            ),
        ];
        assert_frames_crash_first(KOTLIN, Some("kotlin"), &expected);
    }

    #[test]
    fn dotnet_takes_the_outer_exception() {
        let file = "/src/Shop/Cart/CartService.cs";
        let mvc = "Microsoft.AspNetCore.Mvc.Infrastructure";
        let expected = [
            f(
                Some("Total"),
                Some("Shop.Cart.CartService"),
                Some(file),
                Some(44),
                true,
            ),
            f(
                Some("Checkout"),
                Some("Shop.Api.CheckoutController"),
                Some("/src/Shop/Api/CheckoutController.cs"),
                Some(21),
                true,
            ),
            f(Some("lambda_method5"), None, None, None, false),
            f(
                Some("Execute"),
                Some(&format!(
                    "{mvc}.ActionMethodExecutor.SyncObjectResultExecutor"
                )),
                None,
                None,
                false,
            ),
            f(
                Some("<InvokeActionMethodAsync>g__Logged|12_1"),
                Some(&format!("{mvc}.ControllerActionInvoker")),
                None,
                None,
                false,
            ),
            f(
                Some("<InvokeNextActionFilterAsync>g__Awaited|10_0"),
                Some(&format!("{mvc}.ControllerActionInvoker")),
                None,
                None,
                false,
            ),
            f(
                Some("<Invoke>g__AwaitRequestTask|7_0"),
                Some("Microsoft.AspNetCore.Routing.EndpointMiddleware"),
                None,
                None,
                false,
            ),
            f(
                Some("ProcessRequests[TContext]"),
                Some("Microsoft.AspNetCore.Server.Kestrel.Core.Internal.Http.HttpProtocol"),
                None,
                None,
                false,
            ),
        ];
        assert_frames_crash_first(DOTNET, Some("dotnet"), &expected);
    }

    #[test]
    fn dotnet_without_line_info() {
        let frames = parse(DOTNET_NOPDB, None);
        let crash_first: Vec<_> = frames.iter().rev().cloned().collect();
        let class = "Shop.Inventory.StockService";
        assert_eq!(
            crash_first,
            [
                f(Some("Reserve"), Some(class), None, None, true),
                f(
                    Some("<ReserveAll>b__0"),
                    Some(&format!("{class}.<>c__DisplayClass3_0")),
                    None,
                    None,
                    true
                ),
                f(
                    Some("ForEach"),
                    Some("System.Collections.Generic.List`1"),
                    None,
                    None,
                    false
                ),
                f(Some("ReserveAll"), Some(class), None, None, true),
                f(
                    Some(".ctor"),
                    Some("Shop.Inventory.Stock"),
                    None,
                    None,
                    true
                ),
                f(Some("Main"), Some("Shop.Program"), None, None, true),
            ]
        );
    }

    #[test]
    fn dotnet_aggregate_skips_every_inner_exception() {
        let expected = [
            f(
                Some("WaitAllCore"),
                Some("System.Threading.Tasks.Task"),
                None,
                None,
                false,
            ),
            f(
                Some("WaitAll"),
                Some("System.Threading.Tasks.Task"),
                None,
                None,
                false,
            ),
            f(
                Some("Place"),
                Some("Shop.Checkout.CheckoutService"),
                Some(r"C:\src\Shop\Checkout\CheckoutService.cs"),
                Some(41),
                true,
            ),
            f(
                Some("Main"),
                Some("Shop.Program"),
                Some(r"C:\src\Shop\Program.cs"),
                Some(12),
                true,
            ),
        ];
        assert_frames_crash_first(DOTNET_AGGREGATE, Some("dotnet"), &expected);
    }

    #[test]
    fn dotnet_truncated_inner_keeps_what_is_there() {
        let text = "System.Exception: outer\n ---> System.IO.IOException: disk\n   at Shop.Files.Save(String path) in /src/Files.cs:line 9\n";
        assert_eq!(
            parse(text, None),
            [f(
                Some("Save"),
                Some("Shop.Files"),
                Some("/src/Files.cs"),
                Some(9),
                true
            )]
        );
    }

    #[test]
    fn node() {
        let express = "/app/node_modules/express/lib/router";
        let expected = [
            f(None, None, Some("/app/src/cart.js"), Some(42), true),
            f(Some("Array.reduce"), None, Some("<anonymous>"), None, false),
            f(
                Some("CartService.total"),
                None,
                Some("/app/src/cart.js"),
                Some(40),
                true,
            ),
            f(
                Some("CheckoutController.checkout"),
                None,
                Some("/app/src/routes/checkout.js"),
                Some(17),
                true,
            ),
            f(
                Some("Layer.handle"),
                None,
                Some(&format!("{express}/layer.js")),
                Some(95),
                false,
            ),
            f(
                Some("next"),
                None,
                Some(&format!("{express}/route.js")),
                Some(149),
                false,
            ),
            f(Some("new Promise"), None, Some("<anonymous>"), None, false),
            f(
                Some("process.processTicksAndRejections"),
                None,
                Some("node:internal/process/task_queues"),
                Some(95),
                false,
            ),
            f(Some("Promise.all"), None, None, None, false),
            f(
                Some("Server.handle"),
                None,
                Some("/app/src/server.js"),
                Some(88),
                true,
            ),
        ];
        assert_frames_crash_first(NODE, Some("nodejs"), &expected);
    }

    #[test]
    fn node_cause_is_skipped() {
        let expected = [
            f(
                Some("CheckoutService.place"),
                None,
                Some("file:///app/src/checkout.mjs"),
                Some(31),
                true,
            ),
            f(
                None,
                None,
                Some("file:///app/src/server.mjs"),
                Some(12),
                true,
            ),
        ];
        assert_frames_crash_first(NODE_CAUSE, Some("nodejs"), &expected);
    }

    #[test]
    fn browser() {
        let app = "https://shop.example/static/js/app.3f9a1c.js";
        let expected = [
            f(Some("total"), None, Some(app), Some(42), true),
            f(Some("checkout/<"), None, Some(app), Some(88), true),
            f(
                Some("callCallback"),
                None,
                Some("https://shop.example/static/js/node_modules/react-dom/cjs/react-dom.development.js"),
                Some(4164),
                false,
            ),
            f(Some("forEach"), None, None, None, false),
            f(None, None, Some(app), Some(120), true),
        ];
        assert_frames_crash_first(BROWSER, Some("webjs"), &expected);
    }

    #[test]
    fn node_windows_paths_and_old_core_modules() {
        let text = concat!(
            "Error: ENOENT\n",
            "    at Object.<anonymous> (C:\\app\\src\\index.js:3:9)\n",
            "    at Module._compile (node:internal/modules/cjs/loader:1256:14)\n",
            "    at emitOne (events.js:116:13)\n",
        );
        let expected = [
            f(
                Some("Object.<anonymous>"),
                None,
                Some(r"C:\app\src\index.js"),
                Some(3),
                true,
            ),
            f(
                Some("Module._compile"),
                None,
                Some("node:internal/modules/cjs/loader"),
                Some(1256),
                false,
            ),
            f(Some("emitOne"), None, Some("events.js"), Some(116), false),
        ];
        assert_frames_crash_first(text, None, &expected);
    }

    #[test]
    fn java_logback_suffixes() {
        let text = concat!(
            "java.lang.RuntimeException: boom\n",
            "\tat com.shop.A.b(A.java:10) ~[app.jar:1.0]\n",
            "\tat org.apache.x.Y.z(Y.java:5) [tomcat.jar:9.0]\n",
        );
        let expected = [
            f(
                Some("b"),
                Some("com.shop.A"),
                Some("A.java"),
                Some(10),
                true,
            ),
            f(
                Some("z"),
                Some("org.apache.x.Y"),
                Some("Y.java"),
                Some(5),
                false,
            ),
        ];
        assert_frames_crash_first(text, None, &expected);
    }

    #[test]
    fn node_eval_location() {
        let text = "Error: boom\n    at eval (eval at run (/app/src/script.js:3:5), <anonymous>:1:7)\n    at run (/app/src/script.js:3:5)\n";
        let frames = parse(text, None);
        assert_eq!(
            frames,
            [
                f(Some("run"), None, Some("/app/src/script.js"), Some(3), true),
                f(Some("eval"), None, Some("<anonymous>"), Some(1), false),
            ]
        );
    }

    #[test]
    fn go_panic() {
        let expected = [
            f(
                Some("(*Cart).Total"),
                Some("github.com/shop/cart"),
                Some("/app/cart/cart.go"),
                Some(42),
                true,
            ),
            f(
                Some("checkout"),
                Some("main"),
                Some("/app/main.go"),
                Some(27),
                true,
            ),
            f(
                Some("main"),
                Some("main"),
                Some("/app/main.go"),
                Some(12),
                true,
            ),
        ];
        assert_frames_crash_first(GO, Some("go"), &expected);
    }

    #[test]
    fn go_debug_stack_keeps_the_first_goroutine() {
        let frames = parse(GO_DEBUG_STACK, Some("go"));
        let crash_first: Vec<_> = frames.iter().rev().cloned().collect();
        assert_eq!(crash_first.len(), 8, "{crash_first:#?}");
        assert_eq!(
            crash_first[..4],
            [
                f(
                    Some("Stack"),
                    Some("runtime/debug"),
                    Some("/usr/local/go/src/runtime/debug/stack.go"),
                    Some(26),
                    false
                ),
                f(
                    Some("recoverer.func1.1"),
                    Some("github.com/shop/api"),
                    Some("/app/api/middleware.go"),
                    Some(19),
                    true
                ),
                f(
                    Some("panic"),
                    None,
                    Some("/usr/local/go/src/runtime/panic.go"),
                    Some(770),
                    false
                ),
                f(
                    Some("(*Cart).Total"),
                    Some("github.com/shop/cart"),
                    Some("/app/cart/cart.go"),
                    Some(42),
                    true
                ),
            ]
        );
        assert_eq!(
            crash_first[6],
            f(
                Some("(*Mux).routeHTTP"),
                Some("github.com/go-chi/chi/v5"),
                Some("/go/pkg/mod/github.com/go-chi/chi/v5@v5.0.12/mux.go"),
                Some(459),
                false
            )
        );
        assert_eq!(
            frames[0],
            f(
                Some("(*conn).serve"),
                Some("net/http"),
                Some("/usr/local/go/src/net/http/server.go"),
                Some(2039),
                false
            ),
            "the `created by` frame and other goroutines are left out"
        );
    }

    #[test]
    fn go_escaped_package_dots() {
        let text = "goroutine 1 [running]:\ngopkg.in/yaml%2ev3.(*decoder).unmarshal(0xc000130000)\n\t/home/dev/go/pkg/mod/gopkg.in/yaml.v3@v3.0.1/decode.go:493 +0x35\n";
        assert_eq!(
            parse(text, None),
            [f(
                Some("(*decoder).unmarshal"),
                Some("gopkg.in/yaml.v3"),
                Some("/home/dev/go/pkg/mod/gopkg.in/yaml.v3@v3.0.1/decode.go"),
                Some(493),
                false
            )]
        );
    }

    #[test]
    fn rust() {
        let rustc = "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library";
        let frames = parse(RUST, Some("rust"));
        let crash_first: Vec<_> = frames.iter().rev().cloned().collect();
        assert_eq!(
            crash_first,
            [
                f(
                    Some("rust_begin_unwind"),
                    None,
                    Some(&format!("{rustc}/std/src/panicking.rs")),
                    Some(665),
                    false
                ),
                f(
                    Some("panic_fmt"),
                    Some("core::panicking"),
                    Some(&format!("{rustc}/core/src/panicking.rs")),
                    Some(74),
                    false
                ),
                f(
                    Some("panic"),
                    Some("core::panicking"),
                    Some(&format!("{rustc}/core/src/panicking.rs")),
                    Some(148),
                    false
                ),
                f(
                    Some("unwrap_failed"),
                    Some("core::option"),
                    Some(&format!("{rustc}/core/src/option.rs")),
                    Some(2015),
                    false
                ),
                f(
                    Some("total"),
                    Some("shop::cart::Cart"),
                    Some("./src/cart.rs"),
                    Some(42),
                    true
                ),
                f(
                    Some("checkout"),
                    Some("shop"),
                    Some("./src/main.rs"),
                    Some(27),
                    true
                ),
                f(
                    Some("main"),
                    Some("shop"),
                    Some("./src/main.rs"),
                    Some(12),
                    true
                ),
                f(
                    Some("call_once"),
                    Some("core::ops::function::FnOnce"),
                    Some(&format!("{rustc}/core/src/ops/function.rs")),
                    Some(250),
                    false
                ),
            ]
        );
    }

    #[test]
    fn rust_full_backtrace() {
        let frames = parse(RUST_FULL, None);
        let crash_first: Vec<_> = frames.iter().rev().cloned().collect();
        assert_eq!(crash_first.len(), 16, "{crash_first:#?}");
        assert_eq!(
            crash_first[2],
            f(
                Some("{{closure}}"),
                Some("std::panicking::begin_panic_handler"),
                None,
                None,
                false
            )
        );
        assert_eq!(
            crash_first[6..10],
            [
                f(
                    Some("price_of"),
                    Some("shop::cart"),
                    Some("/app/src/cart.rs"),
                    Some(97),
                    true
                ),
                f(
                    Some("total"),
                    Some("shop::cart::Cart"),
                    Some("/app/src/cart.rs"),
                    Some(42),
                    true
                ),
                f(
                    Some("price"),
                    Some("<shop::cart::Cart as shop::pricing::Priced>"),
                    Some("/app/src/cart.rs"),
                    Some(88),
                    true
                ),
                f(
                    Some("{{closure}}"),
                    Some("shop::api::checkout"),
                    Some("/app/src/api.rs"),
                    Some(31),
                    true
                ),
            ]
        );
        let app: Vec<_> = crash_first
            .iter()
            .filter(|frame| frame.in_app == Some(true))
            .map(|frame| frame.function.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(app, ["price_of", "total", "price", "{{closure}}"]);
        assert_eq!(frames[0], f(Some("<unknown>"), None, None, None, false));
    }

    #[test]
    fn rust_in_app_for_trait_impls() {
        let in_app = |symbol: &str| rust_in_app(&rust_frame(symbol));
        assert!(!in_app(
            "<alloc::boxed::Box<F,A> as core::ops::function::Fn<Args>>::call"
        ));
        assert!(!in_app("<&T as core::fmt::Display>::fmt"));
        assert!(!in_app("<i32 as core::fmt::Display>::fmt"));
        assert!(in_app("<shop::Cart as core::fmt::Display>::fmt"));
        assert!(in_app("<&mut shop::Cart as core::fmt::Display>::fmt"));
        assert!(!in_app("tokio_util::codec::Framed::poll"));
        assert!(!in_app("futures_util::future::Map::poll"));
        assert!(!in_app("__rustc::rust_begin_unwind"));
        assert!(in_app("shop::Cart::total::h0123456789abcdef"));
    }

    #[test]
    fn rust_paths_split_outside_generics() {
        assert_eq!(
            split_rust_path("<fn() -> u8 as a::B>::call"),
            (Some("<fn() -> u8 as a::B>"), "call")
        );
        assert_eq!(split_rust_path("main"), (None, "main"));
        assert_eq!(split_rust_path("::x"), (None, "::x"));
        assert_eq!(split_rust_path("a:::b"), (Some("a"), ":b"));
    }

    #[test]
    fn detection_without_hint_picks_every_fixture_format() {
        for (name, text, format, _) in FIXTURES {
            let chosen = choose(&text.lines().collect::<Vec<_>>(), None).map(|(f, _)| f);
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

    #[test]
    fn hint_breaks_ties() {
        // One V8 location-only line and one Rust symbol line: one line each.
        let text = "    at /app/x.js:1:2\n   0: shop::main\n";
        let lines: Vec<&str> = text.lines().collect();
        let chosen = |hint| choose(&lines, hint).map(|(format, _)| format);
        assert_eq!(chosen(None), Some(Format::Node), "detection order");
        assert_eq!(chosen(Some(Format::Rust)), Some(Format::Rust));
        assert_eq!(
            chosen(Some(Format::Go)),
            Some(Format::Node),
            "Go matches nothing"
        );
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
