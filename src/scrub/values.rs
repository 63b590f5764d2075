//! Secret *values*, recognized by their shape wherever they are: card numbers, auth
//! credentials, private keys, cloud and SaaS tokens, JWTs and passwords in URLs.
//!
//! Only the secret part of a string is replaced. Every pattern is guarded by a cheap check
//! (a byte count, a `contains`) so that ordinary strings never reach the regexes. No
//! pattern can match `[Filtered]` or across it, none creates a word boundary next to it,
//! and they run in an order where no later rule can enable an earlier one: so a second
//! pass is a no-op.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::packed;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use regex::Regex;

use super::FILTERED;

/// A regex compiled on first use. These constants always compile (the `patterns_compile`
/// test checks each); were one not to, it would be `None` and match nothing, which keeps
/// this module free of panics.
type Pattern = LazyLock<Option<Regex>>;

macro_rules! pattern {
    ($re:expr) => {
        LazyLock::new(|| Regex::new($re).ok())
    };
}

/// A PEM private key, whole. A block cut off by truncation (no END line) is filtered to
/// the end of the string rather than leaked.
static PEM: Pattern = pattern!(
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?:(?s:.)*?-----END[A-Z ]*PRIVATE KEY-----|(?s:.)*)"
);

/// `scheme://user:password@host`; group 1 is the password (the user name stays, it helps
/// debugging and is not a credential by itself). `redis://:pw@host` has no user. Neither
/// part may contain `[` or `]`: a `[Filtered]` left by another rule then always ends a
/// match, so that rule cannot make this one match on a second pass.
static URL_CREDENTIALS: Pattern =
    pattern!(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@?#\[\]]*:([^/\s@?#\[\]]+)@");

/// Tokens whose prefix says what they are. Every alternative starts with a literal, which
/// lets the regex engine skip ahead with a literal search instead of trying each byte.
/// Every alternative ends at a word boundary or after a greedy run of all word
/// characters: replacing a token then never creates a boundary right after it, where
/// another pattern could start on a second pass.
static TOKENS: Pattern = pattern!(concat!(
    r"(?-u:\b)(?:",
    // AWS access key ids.
    r"(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
    // GitHub personal, OAuth, user-to-server, server-to-server and refresh tokens.
    r"|gh[pousr]_[A-Za-z0-9]{30,}(?-u:\b)",
    r"|github_pat_[A-Za-z0-9_]{22,}",
    // Slack bot, user, app and refresh tokens.
    r"|xox[abposr]-[A-Za-z0-9_-]{10,}",
    // Google API keys.
    r"|AIza[A-Za-z0-9_-]{35,}",
    // Stripe secret and restricted keys (publishable `pk_` keys are public).
    r"|[sr]k_(?:live|test)_[A-Za-z0-9_]{10,}",
    // JWTs: base64url header (`{"` = `eyJ`), payload and signature (empty for alg=none).
    r"|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    r")"
));

/// Literals one of which every `TOKENS` match begins with. Searching for them first spares
/// the regex, its cache pool and its search set-up for nearly every string (most strings
/// hold none), which was a measurable share of scrubbing's CPU. `tokens_start_with_a_literal`
/// checks that no token can begin otherwise.
const TOKEN_LITERALS: &[&str] = &[
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxo-",
    "xoxs-",
    "xoxr-",
    "AIza",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "eyJ",
];

/// The searcher for [`TOKEN_LITERALS`]: the packed (SIMD) one, which on strings the size of
/// a frame's fields took about 40 ns where the automaton took 60 and the regex 55–70.
/// `None` (it always builds) would search every string.
static TOKEN_START: LazyLock<Option<packed::Searcher>> =
    LazyLock::new(|| packed::Searcher::new(TOKEN_LITERALS));

/// Whether `text` may hold a token `TOKENS` matches.
fn may_hold_token(text: &str) -> bool {
    TOKEN_START
        .as_ref()
        .is_none_or(|start| start.find(text).is_some())
}

/// `Bearer <token>` / `Basic <base64>`; group 1 is the scheme (kept), group 2 the secret
/// in RFC 6750's token characters. Those include every word character, so the token ends
/// where the word does, for the same reason as in `TOKENS`.
static AUTH: Pattern = pattern!(r"(?i)(?-u:\b)(bearer|basic)[ \t]+([A-Za-z0-9\-._~+/]+=*)");

/// 13 to 19 digits, either one run or in groups like cards are printed (4-4-4-4,
/// Amex 4-6-5). The issuer digit is 2 to 6 (Mastercard, Amex/Diners/JCB, Visa, Maestro,
/// Discover/UnionPay): this keeps millisecond and nanosecond timestamps, which start
/// with 1, from being taken for cards one time in ten.
static CARD: Pattern =
    pattern!(r"(?-u:\b)(?:[2-6][0-9]{12,18}|[2-6][0-9]{3}(?:[ -][0-9]{3,6}){2,4})(?-u:\b)");

/// What one pass over the bytes of a string says about it: enough to skip every
/// pattern that cannot match.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Hints {
    digits: usize,
    /// Has `=` or `:`, so may hold `key=value` pairs (or a URL).
    pub(super) separators: bool,
    at_sign: bool,
    dash: bool,
    /// Has a `b` or `B`, so may hold `Bearer` or `Basic`.
    letter_b: bool,
}

impl Hints {
    /// Branch-free on purpose: this runs over every byte of every string of every event,
    /// and the compiler turns the inner loop into SSE2 byte compares, 16 bytes at a time.
    /// Not inlined: inlined into its caller under link-time optimization, the loop stayed
    /// byte by byte and scrubbing's byte scan cost three times as much (bench/README.md,
    /// "One codegen unit, link-time optimization"). (Rewrites for the vectorizer, `memchr`
    /// per hint, and eight bytes at a time in integer arithmetic measured no faster.)
    #[inline(never)]
    pub(super) fn of(text: &str) -> Hints {
        const SEPARATORS: u8 = 1;
        const AT_SIGN: u8 = 2;
        const DASH: u8 = 4;
        const LETTER_B: u8 = 8;
        let mut digits = 0;
        let mut flags = 0u8;
        // Counting per chunk in a `u8` keeps the SIMD lanes a byte wide.
        for chunk in text.as_bytes().chunks(64) {
            let mut chunk_digits = 0u8;
            for &b in chunk {
                chunk_digits += u8::from(b.wrapping_sub(b'0') < 10);
                let separator = u8::from(b == b'=') | u8::from(b == b':');
                flags |= (separator * SEPARATORS)
                    | (u8::from(b == b'@') * AT_SIGN)
                    | (u8::from(b == b'-') * DASH)
                    | (u8::from(b | 0x20 == b'b') * LETTER_B);
            }
            digits += usize::from(chunk_digits);
        }
        Hints {
            digits,
            separators: flags & SEPARATORS != 0,
            at_sign: flags & AT_SIGN != 0,
            dash: flags & DASH != 0,
            letter_b: flags & LETTER_B != 0,
        }
    }
}

/// Replaces the secret values in `text`; returns the text and how many were replaced.
pub(super) fn scrub_values<'a>(text: &'a str, hints: &Hints) -> (Cow<'a, str>, usize) {
    let mut text = Cow::Borrowed(text);
    let mut count = 0;
    // Order matters for idempotence: each rule runs after every rule whose replacements
    // could let it match. A private key goes first and whole, not piece by piece.
    if hints.dash && text.contains("PRIVATE KEY-----") {
        apply(&mut text, &mut count, |t| whole_matches(&PEM, t, |_| true));
    }
    // The shortest token (a JWT of 4-byte parts) is 13 bytes.
    if text.len() >= 13 && may_hold_token(&text) {
        apply(&mut text, &mut count, |t| {
            whole_matches(&TOKENS, t, |_| true)
        });
    }
    if hints.letter_b && contains_auth_scheme(&text) {
        apply(&mut text, &mut count, auth_spans);
    }
    if hints.digits >= 13 {
        apply(&mut text, &mut count, |t| whole_matches(&CARD, t, is_card));
    }
    // Last: the rules above may remove the spaces that kept a URL's user part from
    // matching (`https://4111 1111 1111 1111.u:pw@h`); run before them, the password
    // would only be found on a second pass.
    if hints.at_sign && hints.separators && text.contains("://") {
        apply(&mut text, &mut count, |t| {
            group_matches(&URL_CREDENTIALS, t, 1, |_| true)
        });
    }
    (text, count)
}

/// Runs one pattern's spans over the text, replacing the text only when something matched.
fn apply(
    text: &mut Cow<'_, str>,
    count: &mut usize,
    spans: impl FnOnce(&str) -> Vec<Range<usize>>,
) {
    if let Some((replaced, n)) = replace_spans(text, &spans(text)) {
        *text = Cow::Owned(replaced);
        *count += n;
    }
}

/// `text` with each span (sorted, disjoint) replaced by `[Filtered]`; `None` when nothing
/// changes, a span already reading `[Filtered]` included.
fn replace_spans(text: &str, spans: &[Range<usize>]) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut copied = 0;
    let mut count = 0;
    for span in spans {
        if &text[span.clone()] == FILTERED {
            continue;
        }
        out.push_str(&text[copied..span.start]);
        out.push_str(FILTERED);
        copied = span.end;
        count += 1;
    }
    if count == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some((out, count))
}

fn whole_matches(pattern: &Pattern, text: &str, keep: fn(&str) -> bool) -> Vec<Range<usize>> {
    let Some(re) = pattern.as_ref() else {
        return Vec::new();
    };
    re.find_iter(text)
        .filter(|m| keep(m.as_str()))
        .map(|m| m.range())
        .collect()
}

fn group_matches(
    pattern: &Pattern,
    text: &str,
    group: usize,
    keep: fn(&str) -> bool,
) -> Vec<Range<usize>> {
    let Some(re) = pattern.as_ref() else {
        return Vec::new();
    };
    re.captures_iter(text)
        .filter_map(|caps| caps.get(group))
        .filter(|m| keep(m.as_str()))
        .map(|m| m.range())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Auth schemes
// ---------------------------------------------------------------------------------------

/// A case-insensitive search for `bearer` / `basic` without allocating: look at each `b`.
fn contains_auth_scheme(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        (b == b'b' || b == b'B')
            && ["bearer", "basic"].iter().any(|scheme| {
                bytes
                    .get(i..i + scheme.len())
                    .is_some_and(|word| word.eq_ignore_ascii_case(scheme.as_bytes()))
            })
    })
}

fn auth_spans(text: &str) -> Vec<Range<usize>> {
    let Some(re) = AUTH.as_ref() else {
        return Vec::new();
    };
    re.captures_iter(text)
        .filter_map(|caps| {
            let scheme = caps.get(1)?.as_str();
            let secret = caps.get(2)?;
            let real = if scheme.eq_ignore_ascii_case("basic") {
                is_basic_credential(secret.as_str())
            } else {
                is_bearer_token(secret.as_str())
            };
            real.then(|| secret.range())
        })
        .collect()
}

/// A bearer token is long and not a plain word: this keeps prose such as "the bearer of
/// bad news" intact. (Under an `Authorization` key the whole value goes anyway.)
fn is_bearer_token(token: &str) -> bool {
    token.len() >= 8 && token.bytes().any(|b| !b.is_ascii_alphabetic())
}

/// Base64 that decodes to `user:password`, as Basic auth is defined; "basic usage" in
/// prose does not decode to that.
fn is_basic_credential(token: &str) -> bool {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    token.len() >= 4
        && LENIENT
            .decode(token)
            .is_ok_and(|decoded| decoded.contains(&b':'))
}

// ---------------------------------------------------------------------------------------
// Card numbers
// ---------------------------------------------------------------------------------------

/// A matched digit string is a card when it has 13 to 19 digits passing the Luhn check
/// (a random 16-digit id passes only one time in ten).
fn is_card(candidate: &str) -> bool {
    let digits: Vec<u8> = candidate
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    (13..=19).contains(&digits.len()) && luhn(&digits)
}

/// A JSON number that is a card number (the same rules as in text).
pub(super) fn is_card_number(n: u64) -> bool {
    if n < 1_000_000_000_000 {
        return false;
    }
    let text = n.to_string();
    text.starts_with(['2', '3', '4', '5', '6']) && is_card(&text)
}

/// The Luhn checksum over decimal digits (0..=9 each).
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            match (i % 2 == 1, d * 2) {
                (false, _) => d,
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(text: &str) -> String {
        scrub_values(text, &Hints::of(text)).0.into_owned()
    }

    fn stays(text: &str) {
        assert_eq!(scrub(text), text, "should stay: {text}");
    }

    #[test]
    fn patterns_compile() {
        for pattern in [&PEM, &URL_CREDENTIALS, &TOKENS, &AUTH, &CARD] {
            assert!(pattern.is_some());
        }
    }

    /// Every literal a `TOKENS` match can begin with, as the regex parser extracts them,
    /// starts with one of `TOKEN_LITERALS`: the prefilter never skips a token.
    #[test]
    fn tokens_start_with_a_literal() {
        let pattern = TOKENS.as_ref().expect("compiles").as_str();
        let hir = regex_syntax::parse(pattern).expect("parses");
        let prefixes = regex_syntax::hir::literal::Extractor::new().extract(&hir);
        let prefixes = prefixes.literals().expect("a finite set of prefixes");
        assert!(prefixes.len() >= TOKEN_LITERALS.len());
        for prefix in prefixes {
            let prefix = std::str::from_utf8(prefix.as_bytes()).expect("ASCII");
            assert!(
                TOKEN_LITERALS.iter().any(|l| prefix.starts_with(l)),
                "no literal for {prefix:?}"
            );
        }
        assert!(!may_hold_token("a plain line of code, 2026-12-06 12:00:00"));
        assert!(may_hold_token("key AKIAIOSFODNN7EXAMPLE"));
    }

    #[test]
    fn card_numbers() {
        assert_eq!(scrub("4111 1111 1111 1111"), "[Filtered]");
        assert_eq!(scrub("card=4111-1111-1111-1111;"), "card=[Filtered];");
        assert_eq!(
            scrub("paid with 5555555555554444."),
            "paid with [Filtered]."
        );
        assert_eq!(scrub("amex 3782 822463 10005 ok"), "amex [Filtered] ok");
        assert_eq!(scrub("'4111111111111111'"), "'[Filtered]'");
        assert_eq!(scrub("4111111111111111 2 items"), "[Filtered] 2 items");
    }

    #[test]
    fn numbers_that_are_not_cards_stay() {
        stays("4111 1111 1111 1112"); // fails Luhn
        stays("4111111111111112");
        stays("1700000000000 1700000000003 1712345678901234567"); // timestamps
        stays("order 12345 qty 678");
        stays("550e8400-e29b-41d4-a716-446655440000");
        stays("id 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        stays("41111111111111111111111"); // too long
        stays("x4111111111111111"); // glued to a word
        stays("+44 20 7946 0958");
    }

    #[test]
    fn card_numbers_as_json_numbers() {
        assert!(is_card_number(4_111_111_111_111_111));
        assert!(!is_card_number(4_111_111_111_111_112));
        assert!(!is_card_number(1_700_000_000_003));
        assert!(!is_card_number(42));
        assert!(!is_card_number(u64::MAX));
    }

    #[test]
    fn auth_credentials_keep_the_scheme() {
        assert_eq!(scrub("Bearer abc.def-123_456"), "Bearer [Filtered]");
        assert_eq!(
            scrub("sent bearer 0123456789abcdef to api"),
            "sent bearer [Filtered] to api"
        );
        assert_eq!(scrub("Basic dXNlcjpwYXNz"), "Basic [Filtered]");
        assert_eq!(scrub("Basic dXNlcjpwYXNzd29yZA=="), "Basic [Filtered]");
    }

    #[test]
    fn prose_about_schemes_stays() {
        stays("the bearer of bad news");
        stays("basic usage of the bearer instruments");
        stays("Basic configuration");
        stays("Bearer [Filtered]");
    }

    #[test]
    fn pem_private_keys() {
        let pem = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nend";
        assert_eq!(scrub(pem), "key: [Filtered]\nend");
        let escaped = r"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----";
        assert_eq!(scrub(escaped), "[Filtered]");
        let truncated = "x -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE...";
        assert_eq!(scrub(truncated), "x [Filtered]");
        stays("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----");
    }

    #[test]
    fn prefixed_tokens() {
        for token in [
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAY34FZKBOKMUTVV7A",
            "ghp_1234567890abcdefghijABCDEFGHIJ123456",
            "gho_1234567890abcdefghijABCDEFGHIJ123456",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "xoxb-1234567890-0987654321-AbCdEfGhIjKl",
            "xoxp-1234567890-abcdef",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        ] {
            assert_eq!(
                scrub(&format!("t={token} ok")),
                "t=[Filtered] ok",
                "{token}"
            );
        }
    }

    #[test]
    fn look_alikes_stay() {
        stays("AKIA is a prefix; AKIAshort");
        stays("ghp_short");
        stays("pk_live_4eC39HqLyjWDarjtT1zdp7dc");
        stays("eyJ alone, eyJhbGci only");
        stays("a normal sentence with words and 42 numbers");
        stays("deadbeefcafebabe0123456789abcdef");
    }

    #[test]
    fn url_credentials_keep_the_user() {
        assert_eq!(
            scrub("postgres://app:s3cr3t@db.internal:5432/prod"),
            "postgres://app:[Filtered]@db.internal:5432/prod"
        );
        assert_eq!(
            scrub("connect redis://:hunter2@cache:6379 failed"),
            "connect redis://:[Filtered]@cache:6379 failed"
        );
        stays("https://user@example.com/path");
        stays("https://example.com:8443/a@b");
        stays("mailto:someone@example.com");
        stays("https://app:[Filtered]@host/");
    }

    #[test]
    fn filtered_is_never_matched_again() {
        for text in [
            FILTERED,
            "Bearer [Filtered]",
            "Basic [Filtered]",
            "https://u:[Filtered]@h",
            "[Filtered] [Filtered]",
        ] {
            assert_eq!(scrub_values(text, &Hints::of(text)).1, 0, "{text}");
        }
    }

    #[test]
    fn luhn_checksum() {
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    }
}
