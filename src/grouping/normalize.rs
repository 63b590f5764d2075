//! Text normalization for grouping: messages and frame function names.
//!
//! [`normalize_message`] replaces the variable parts of a message (ids, numbers, paths, …)
//! with placeholders so that "user 17 not found" and "user 42 not found" group together.
//!
//! It works as one left-to-right scan with a single combined regex: at each position the
//! earliest-starting token wins, and among tokens starting at the same place the first
//! alternative in [`TOKEN_PATTERN`] wins (quoted strings before URLs before e-mails, …).
//! One scan (rather than one `replace_all` per token kind) keeps a placeholder from being
//! re-matched by a later rule, which is what makes the function idempotent: a hash computed
//! from an already-normalized message must not change.
//!
//! Idempotence also relies on these invariants of the pattern, keep them when editing it:
//! - placeholders (`<num>`, …) start and end with non-word characters and contain no digit,
//!   quote, `/`, `@` or `:`, so no alternative matches inside or across them;
//! - every alternative that can start or end with a word character has `\b` there (or,
//!   for open-ended bodies, stops greedily before a non-word character), so replacing a
//!   neighbour with a placeholder never creates a new word boundary;
//! - the one context rule that is not a `\b` (an opening quote glued to a word is an
//!   apostrophe) looks at the output so far, which is what a second pass sees;
//! - alternatives with open-ended bodies (URLs, paths) exclude `<` and `>`, so on a second
//!   pass they cannot grow into a placeholder;
//! - whitespace is collapsed *before* the scan, so the scan never sees a newline or tab.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// The alternatives, highest priority first. Named groups tell [`placeholder`] which one
/// matched.
const TOKEN_PATTERN: &str = concat!(
    // Quoted strings. Whether an opening quote counts is decided in code (see `placeholder`)
    // so that the apostrophe in "can't" does not open a string.
    r#"(?P<str>'[^']*'|"[^"]*"|`[^`]*`)"#,
    // URLs: scheme://… up to whitespace, a quote or an angle bracket.
    r#"|(?P<url>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'"`<>]+)"#,
    r"|(?P<email>\b\w[\w.+\-]*@\w[\w\-]*(?:\.[\w\-]+)+)",
    r"|(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)",
    // Windows paths: C:\…
    r#"|(?P<winpath>\b[a-zA-Z]:\\[^\s'"`<>]*)"#,
    // Unix paths: at least two segments, so "/" or "a/b" in prose stay as they are.
    r"|(?P<path>(?:/[\w.\-~%+]+){2,}/?)",
    r"|(?P<ip>\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b)",
    r"|(?P<hex0x>\b0[xX][0-9a-fA-F]+\b)",
    // Numbers: integers, decimals, exponents, with an optional sign. An exponent needs a
    // decimal point or a signed power ("1.5e3", "2e-7"): a bare "12e45…" is far more often
    // a hex id that happens to have a single letter.
    r"|(?P<num>[-+]?\b[0-9]+(?:\.[0-9]+(?:[eE][-+]?[0-9]{1,3})?|[eE][-+][0-9]{1,3})?\b)",
    // Long hex runs (hashes, trace and request ids). Placed after numbers so that an
    // all-digit run is a number whatever its length; the "contains a digit" rule is
    // checked in code.
    r"|(?P<hex>\b[0-9a-fA-F]{8,}\b)",
    // A number glued to a short unit ("30s", "512MB", "2nd"). The unit goes into the
    // placeholder too: kept outside, its letters would start a new word on a second pass.
    r"|(?P<unitnum>[-+]?\b[0-9]+(?:\.[0-9]+)?[a-zA-Z]{1,3}\b)",
);

static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(TOKEN_PATTERN).expect("TOKEN_PATTERN is a valid regex"));

/// Replaces the variable parts of a message with placeholders: `<uuid>`, `<hex>`, `<num>`,
/// `<str>`, `<path>`, `<url>`, `<email>`, `<ip>`; collapses whitespace and trims.
///
/// Never panics, and `normalize_message(&normalize_message(s)) == normalize_message(s)`.
pub fn normalize_message(s: &str) -> String {
    replace_tokens(&collapse_whitespace(s))
}

/// Joins the whitespace-separated words of `s` with single spaces (this also trims).
pub(super) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The scan described in the module doc.
fn replace_tokens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(caps) = TOKEN.captures_at(s, pos) {
        let Some(m) = caps.get(0) else { break };
        out.push_str(&s[pos..m.start()]);
        match placeholder(&caps, s, &out).filter(|_| !m.is_empty()) {
            Some(replacement) => {
                out.push_str(&replacement);
                pos = m.end();
            }
            None => {
                // Rejected: keep its first character and look again right after it.
                let Some(first) = s[m.start()..].chars().next() else {
                    break;
                };
                out.push(first);
                pos = m.start() + first.len_utf8();
            }
        }
    }
    out.push_str(&s[pos..]);
    out
}

/// The replacement for one match, or `None` if the match must be kept as is.
/// `out` is the output so far: the quote rule looks at it rather than at the input so that
/// a second pass, which sees the output, takes the same decision.
fn placeholder(caps: &Captures<'_>, hay: &str, out: &str) -> Option<String> {
    let has = |name: &str| caps.name(name).is_some();
    if has("str") {
        // A quote glued to a word ("can't", "users'") is an apostrophe, not a string.
        let glued = out.chars().next_back().is_some_and(is_word_char);
        return (!glued).then(|| "<str>".to_string());
    }
    if has("hex") {
        let text = caps.name("hex").map_or("", |m| m.as_str());
        // Long words made only of a-f letters ("deadbeef", "acceded") are not ids.
        return text
            .bytes()
            .any(|b| b.is_ascii_digit())
            .then(|| "<hex>".to_string());
    }
    if let Some(m) = caps.name("unitnum") {
        // A hex id that begins with digits and ends with a few a-f letters: were it signed
        // ("req-0000000000000abc"), the sign would start this match before the `hex`
        // alternative could start one after the sign. The sign stays outside, as there.
        let (sign, unsigned) = split_sign(m.as_str());
        if unsigned.len() >= 8 && unsigned.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(format!("{sign}<hex>"));
        }
    }
    if let Some(m) = caps.name("num").or_else(|| caps.name("unitnum")) {
        return Some(format!("{}<num>", kept_sign(m.as_str(), hay, m.start())));
    }
    let fixed = [
        ("url", "<url>"),
        ("email", "<email>"),
        ("uuid", "<uuid>"),
        ("winpath", "<path>"),
        ("path", "<path>"),
        ("ip", "<ip>"),
        ("hex0x", "<hex>"),
    ];
    fixed
        .iter()
        .find(|(name, _)| has(name))
        .map(|(_, p)| p.to_string())
}

/// A number's leading sign, if any, and the rest.
fn split_sign(number: &str) -> (&str, &str) {
    match number.strip_prefix(['-', '+']) {
        Some(unsigned) => (&number[..1], unsigned),
        None => ("", number),
    }
}

/// The sign of a number is part of the value ("-5") unless it joins two words
/// ("2024-01-02", "retry-3"): then it is a separator and stays outside the placeholder.
fn kept_sign<'a>(number: &'a str, hay: &str, start: usize) -> &'a str {
    let joins_word = hay[..start].chars().next_back().is_some_and(is_word_char);
    match number.chars().next() {
        Some(c @ ('-' | '+')) if joins_word => &number[..c.len_utf8()],
        _ => "",
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Trailing addresses and offsets of native frames: "foo + 0x1a", "foo 0x7ffd1234",
/// "foo@0x10". Only when separated from the name, so "a0x1" stays a name.
static FN_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s+|\s*[+@]\s*)0[xX][0-9a-fA-F]+$").expect("FN_ADDRESS is a valid regex")
});
/// The hash suffix of legacy-mangled Rust symbols: `foo::bar::h0123456789abcdef`.
static FN_RUST_HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"::h[0-9a-f]{16}$").expect("FN_RUST_HASH is a valid regex"));
/// Closure numbering of Rust's v0 demangling: `{closure#0}`.
static FN_CLOSURE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{closure#[0-9]+\}").expect("FN_CLOSURE is a valid regex"));
/// Java's generated lambda classes: `$$Lambda$123/0x0000…`.
static FN_JAVA_LAMBDA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\$Lambda\$[0-9]+(?:/0x[0-9a-fA-F]+)?").expect("FN_JAVA_LAMBDA is a valid regex")
});

/// Lightly normalizes a frame's function name: the parts that change between builds or
/// runs of the same code (addresses, symbol hashes, closure counters) are removed.
pub(super) fn normalize_function(name: &str) -> Cow<'_, str> {
    let name = Cow::Borrowed(name.trim());
    // The first two patterns are anchored at the end: they match once at most.
    let name = replace_if_held(name, &["0x", "0X"], &FN_ADDRESS, "");
    let name = replace_if_held(name, &["::h"], &FN_RUST_HASH, "");
    let name = replace_if_held(name, &["{closure#"], &FN_CLOSURE, "{closure}");
    let name = replace_if_held(name, &["$$Lambda$"], &FN_JAVA_LAMBDA, "$$$$Lambda");
    match name {
        Cow::Borrowed(name) => Cow::Borrowed(name.trim()),
        Cow::Owned(name) => Cow::Owned(name.trim().to_owned()),
    }
}

/// The matches of `pattern` in `name` replaced, when `name` holds one of `literals` (every
/// match holds one): most names hold none, and four regex searches per frame were a
/// measurable share of grouping.
fn replace_if_held<'a>(
    name: Cow<'a, str>,
    literals: &[&str],
    pattern: &Regex,
    replacement: &str,
) -> Cow<'a, str> {
    match literals.iter().any(|literal| holds(&name, literal)) {
        true => Cow::Owned(pattern.replace_all(&name, replacement).into_owned()),
        false => name,
    }
}

/// Whether `name` holds `literal`. `str::contains` sets up a substring searcher on each
/// call, which for a frame's short name costs more than the search itself; most names lack
/// even the literal's first byte, which a byte search settles.
fn holds(name: &str, literal: &str) -> bool {
    literal
        .as_bytes()
        .first()
        .is_none_or(|first| name.as_bytes().contains(first))
        && name.contains(literal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replaces_each_token_kind() {
        let cases = [
            ("user 42 not found", "user <num> not found"),
            ("took -3.5e2 units", "took <num> units"),
            ("timeout after 30s", "timeout after <num>"),
            (
                "id 3fa85f64-5717-4562-b3fc-2c963f66afa6 gone",
                "id <uuid> gone",
            ),
            ("ptr 0x7ffd1234 bad", "ptr <hex> bad"),
            ("trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace <hex>"),
            // Digits then a few a-f letters: an id, signed or not, not a number with a unit.
            ("req-00000000000000aa done", "req-<hex> done"),
            ("req-0a00aa0a0aaaa0aa done", "req-<hex> done"),
            ("delta -1234567abc", "delta -<hex>"),
            ("key 'abc' missing", "key <str> missing"),
            (r#"key "abc" missing"#, "key <str> missing"),
            ("key `abc` missing", "key <str> missing"),
            ("open /var/log/app.log failed", "open <path> failed"),
            (r"open C:\Users\bob\a.txt failed", "open <path> failed"),
            ("GET https://example.com/a?b=1 failed", "GET <url> failed"),
            (
                "mail bob.smith+x@example.co.uk bounced",
                "mail <email> bounced",
            ),
            (
                "connect 10.0.0.12:5432 refused",
                "connect <ip>:<num> refused",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_message(input), expected, "input: {input:?}");
        }
    }

    #[test]
    fn leaves_words_and_apostrophes_alone() {
        assert_eq!(
            normalize_message("can't open the user's file"),
            "can't open the user's file"
        );
        assert_eq!(
            normalize_message("utf8 and x86 and deadbeef"),
            "utf8 and x86 and deadbeef"
        );
        assert_eq!(normalize_message("src/main.rs"), "src/main.rs");
    }

    #[test]
    fn sign_between_words_is_a_separator() {
        assert_eq!(normalize_message("on 2024-01-02"), "on <num>-<num>-<num>");
        assert_eq!(normalize_message("retry-3 failed"), "retry-<num> failed");
        assert_eq!(normalize_message("got -3"), "got <num>");
    }

    #[test]
    fn collapses_whitespace_and_trims() {
        assert_eq!(normalize_message("  a \n\t b  "), "a b");
        assert_eq!(normalize_message(""), "");
        assert_eq!(normalize_message(" \n "), "");
    }

    #[test]
    fn function_normalization() {
        assert_eq!(normalize_function("main + 0x1a"), "main");
        assert_eq!(normalize_function("main 0x7ffd12345678"), "main");
        assert_eq!(normalize_function("main@0x10"), "main");
        assert_eq!(normalize_function("a0x1"), "a0x1");
        assert_eq!(normalize_function("0x7ffd1234"), "");
        assert_eq!(
            normalize_function("app::run::h0123456789abcdef"),
            "app::run"
        );
        assert_eq!(
            normalize_function("app::run::{closure#3}"),
            "app::run::{closure}"
        );
        assert_eq!(
            normalize_function("Foo$$Lambda$123/0x0000000800c0b000.apply"),
            "Foo$$Lambda.apply"
        );
    }

    /// Strings built from the characters and fragments the token rules care about, so the
    /// property tests explore boundaries between tokens rather than random Unicode.
    fn tokenish() -> impl Strategy<Value = String> {
        let fragment = prop_oneof![
            Just("0x1f".to_string()),
            Just("3fa85f64-5717-4562-b3fc-2c963f66afa6".to_string()),
            Just("deadbeef12".to_string()),
            Just("1.2.3.4".to_string()),
            Just("a@b.co".to_string()),
            Just("http://x/y".to_string()),
            Just("/a/b".to_string()),
            Just(r"C:\x".to_string()),
            Just("<num>".to_string()),
            Just("can't".to_string()),
            "[-+0-9a-fxX.:/\\\\@'\"`_ <>e\n]{1,6}",
        ];
        prop::collection::vec(fragment, 0..8).prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn idempotent_on_tokenish_input(s in tokenish()) {
            let once = normalize_message(&s);
            prop_assert_eq!(normalize_message(&once), once);
        }

        #[test]
        fn idempotent_and_total_on_any_string(s in any::<String>()) {
            let once = normalize_message(&s);
            prop_assert_eq!(normalize_message(&once), once);
        }

        #[test]
        fn function_normalization_never_panics(s in any::<String>()) {
            let _ = normalize_function(&s);
        }
    }
}
