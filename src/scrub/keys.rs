//! Secret *key names*, and `key=value` pairs found inside text.
//!
//! A key is compared after normalization (lowercase; `-`, `_`, `.` and spaces removed), so
//! `X-Api-Key`, `x_api_key` and `xApiKey` are one name. Inside text the scanner finds each
//! `=` / `:` / `=>` separator, reads the key just before it and, when that key is secret,
//! replaces the value just after it. Each separator looks back at most a key's length, and
//! a replaced value is jumped over, so the scan is linear in the text.

use std::borrow::Cow;
use std::ops::Range;

use super::{Settings, FILTERED};

/// Secret names, already normalized; matched exactly. A `match` rather than a list: it
/// compiles to a switch on length and a compare or two, and runs for every key of every
/// event.
fn is_secret_name(key: &[u8]) -> bool {
    matches!(
        key,
        b"password"
            | b"passwd"
            | b"pwd"
            | b"secret"
            | b"clientsecret"
            | b"apikey"
            | b"token"
            | b"accesstoken"
            | b"refreshtoken"
            | b"idtoken"
            | b"auth"
            | b"authorization"
            | b"proxyauthorization"
            | b"credentials"
            | b"credential"
            | b"cookie"
            | b"setcookie"
            | b"session"
            | b"sessionid"
            | b"sessiontoken"
            | b"sid"
            | b"privatekey"
            | b"passphrase"
            | b"xapikey"
            | b"xauthtoken"
            | b"csrftoken"
            | b"xcsrftoken"
            | b"creditcard"
            | b"cardnumber"
            | b"cvv"
            | b"cvc"
            | b"ssn"
    )
}

/// Whether a normalized key *contains* a secret part, the way Sentry's Relay matches its
/// default key list (lowercase, then substring): `db_password`, `GITHUB_TOKEN`,
/// `Authorization header`, `x_auth_user`, `aiohttp_session`, `csrf_cookie`. One pass,
/// comparing only where the first letter fits, instead of a search per part.
///
/// Two refinements over a plain substring list keep ordinary names out:
/// - `auth` followed by `or` is a word about who wrote something (`author`, `authority`,
///   `authored_by`, `coauthors`), unless it goes on as `authoriz`/`authoris`.
/// - `session` and `cookie` count when singular: `cookies` and `sessions` name collections
///   (Sentry's `request.cookies`, a `sessions_count`) whose own keys are scrubbed one by
///   one, so the harmless entries beside a session cookie stay readable.
fn contains_secret_part(bytes: &[u8]) -> bool {
    (0..bytes.len()).any(|i| {
        let rest = &bytes[i..];
        match bytes[i] {
            b'p' => {
                rest.starts_with(b"password")
                    || rest.starts_with(b"passwd")
                    || rest.starts_with(b"privatekey")
            }
            b's' => rest.starts_with(b"secret") || singular(rest, b"session"),
            b't' => rest.starts_with(b"token"),
            b'a' => rest.starts_with(b"apikey") || is_auth_part(rest),
            b'c' => {
                rest.starts_with(b"credential")
                    || rest.starts_with(b"csrf")
                    || singular(rest, b"cookie")
            }
            b'm' => rest.starts_with(b"mysqlpwd"),
            b'x' => rest.starts_with(b"xsrf"),
            _ => false,
        }
    })
}

/// `auth` at the start of `rest`, but not the `author…` words (see `contains_secret_part`).
fn is_auth_part(rest: &[u8]) -> bool {
    let Some(after) = rest.strip_prefix(b"auth") else {
        return false;
    };
    !after.starts_with(b"or") || after.starts_with(b"oriz") || after.starts_with(b"oris")
}

/// `word` at the start of `rest`, not followed by a plural `s`.
fn singular(rest: &[u8], word: &[u8]) -> bool {
    rest.strip_prefix(word)
        .is_some_and(|after| after.first() != Some(&b's'))
}

/// Declares the keys of the Sentry event schema that every event is full of (frames,
/// exceptions, contexts, requests), none of them secret: `is_common_plain_key` answers for
/// them with one `match` on the key as it is, before normalizing it and looking for secret
/// parts, which was the largest part of scrubbing's CPU. A test checks every one against
/// the full rule.
macro_rules! common_plain_keys {
    ($($key:literal)|+) => {
        fn is_common_plain_key(key: &str) -> bool {
            matches!(key, $($key)|+)
        }

        #[cfg(test)]
        const COMMON_PLAIN_KEYS: &[&str] = &[$($key),+];
    };
}

common_plain_keys!(
    "filename"
        | "abs_path"
        | "function"
        | "raw_function"
        | "module"
        | "package"
        | "lineno"
        | "colno"
        | "pre_context"
        | "context_line"
        | "post_context"
        | "in_app"
        | "vars"
        | "platform"
        | "instruction_addr"
        | "symbol"
        | "frames"
        | "stacktrace"
        | "type"
        | "value"
        | "values"
        | "mechanism"
        | "handled"
        | "synthetic"
        | "exception"
        | "event_id"
        | "timestamp"
        | "level"
        | "logger"
        | "transaction"
        | "server_name"
        | "release"
        | "dist"
        | "environment"
        | "modules"
        | "extra"
        | "tags"
        | "contexts"
        | "user"
        | "request"
        | "sdk"
        | "breadcrumbs"
        | "message"
        | "fingerprint"
        | "url"
        | "method"
        | "query_string"
        | "data"
        | "headers"
        | "env"
        | "runtime"
        | "os"
        | "device"
        | "app"
        | "browser"
        | "trace"
        | "trace_id"
        | "span_id"
        | "parent_span_id"
        | "op"
        | "status"
        | "name"
        | "version"
        | "build"
        | "kernel_version"
        | "category"
        | "id"
        | "email"
        | "username"
        | "integrations"
        | "packages"
        | "Accept"
        | "Host"
        | "User-Agent"
        | "Content-Type"
        | "Content-Length"
        | "Referer"
        | "Accept-Encoding"
        | "Accept-Language"
        | "Connection"
);

/// A longer run of key characters before a separator is data, not a key name.
const MAX_KEY_LEN: usize = 128;
/// Spaces allowed between a key and its separator (`password = x`).
const MAX_GAP: usize = 8;

/// Auth schemes that come before the secret in an `Authorization`-like value; the scheme
/// word is kept (`Authorization: Bearer [Filtered]`), as the value patterns do.
const SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "negotiate"];

/// The key rules of one scrub: built-ins plus the project's extra and safe names, with a
/// reused buffer so that classifying a key allocates nothing.
pub(super) struct KeyRules {
    extra: Vec<Vec<u8>>,
    safe: Vec<Vec<u8>>,
    buf: Vec<u8>,
}

impl KeyRules {
    pub(super) fn new(settings: &Settings) -> Self {
        let normalized = |names: &[String]| -> Vec<Vec<u8>> {
            names
                .iter()
                .map(|name| normalize(name).into_bytes())
                .filter(|name| !name.is_empty())
                .collect()
        };
        KeyRules {
            extra: normalized(&settings.extra_keys),
            safe: normalized(&settings.safe_keys),
            buf: Vec::new(),
        }
    }

    /// Whether the value under this key name must be filtered.
    pub(super) fn is_secret(&mut self, key: &str) -> bool {
        // A project's extra names could make any key secret.
        if self.extra.is_empty() && is_common_plain_key(key) {
            return false;
        }
        self.is_secret_by_name(key)
    }

    /// [`KeyRules::is_secret`] without the shortcut for common keys.
    fn is_secret_by_name(&mut self, key: &str) -> bool {
        normalize_into(key, &mut self.buf);
        let key = self.buf.as_slice();
        let secret = is_secret_name(key)
            || contains_secret_part(key)
            || self.extra.iter().any(|extra| extra == key);
        // A key holding `[Filtered]` comes from an earlier scrub (a scrubbed pair name, or
        // a replaced value just before a separator); letting it be secret would filter
        // its neighbour on a second pass only.
        secret
            && !(key.contains(&b'[') && key.windows(10).any(|w| w == b"[filtered]"))
            && !self.safe.iter().any(|safe| safe == key)
    }

    /// A key found in text may be a form field like `user[password]`: its last bracketed
    /// part counts too, so `user[auth]` is as secret as `auth`.
    fn is_secret_text_key(&mut self, key: &str) -> bool {
        if key.contains(FILTERED) {
            return false;
        }
        if self.is_secret(key) {
            return true;
        }
        if !key.contains('[') {
            return false;
        }
        let last = key.split(['[', ']']).rfind(|part| !part.is_empty());
        last.is_some_and(|last| last != key && self.is_secret(last))
    }
}

/// The normalized form of a key name: lowercase, without `-`, `_`, `.` and spaces.
pub(super) fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `normalize` into a reused byte buffer; ASCII keys (nearly all) go byte by byte.
fn normalize_into(key: &str, out: &mut Vec<u8>) {
    out.clear();
    if key.is_ascii() {
        let kept = key
            .bytes()
            .filter(|b| !matches!(b, b'-' | b'_' | b'.' | b' '));
        out.extend(kept.map(|b| b.to_ascii_lowercase()));
    } else {
        out.extend_from_slice(normalize(key).as_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// key=value pairs inside text
// ---------------------------------------------------------------------------------------

/// What follows a secret key's separator.
enum Value {
    /// The secret's bytes.
    Secret(Range<usize>),
    /// Already `[Filtered]` (a second pass); scanning resumes at this offset.
    Filtered(usize),
    /// Nothing to filter (empty, or a nested `{...}` / `[...]` whose keys are scanned on
    /// their own).
    Nothing,
}

/// Replaces the values of secret keys in `key=value`, `key: value`, `"key": "value"` and
/// `key => value` pairs: query strings, form bodies, cookie strings, log lines, JSON or
/// Ruby/Python reprs kept as text. Returns the text and how many values were replaced.
pub(super) fn scrub_pairs<'a>(text: &'a str, keys: &mut KeyRules) -> (Cow<'a, str>, usize) {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut count = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'=' || b == b':') {
        let sep = at + offset;
        at = sep + 1;
        let Some(value_from) = separator_end(bytes, sep) else {
            continue;
        };
        at = value_from;
        let Some(key) = key_before(text, sep) else {
            continue;
        };
        if !keys.is_secret_text_key(key) {
            continue;
        }
        match value_after(text, value_from) {
            Value::Secret(span) => {
                out.push_str(&text[copied..span.start]);
                out.push_str(FILTERED);
                copied = span.end;
                at = span.end;
                count += 1;
            }
            Value::Filtered(end) => at = end,
            Value::Nothing => {}
        }
    }
    if count == 0 {
        return (Cow::Borrowed(text), 0);
    }
    out.push_str(&text[copied..]);
    (Cow::Owned(out), count)
}

/// Where the value after the separator at `sep` starts, or `None` when this `=` / `:` is
/// not a key-value separator (`==`, `!=`, `<=`, `::`), which keeps code like
/// `app::auth::login` or `token == x` intact.
fn separator_end(bytes: &[u8], sep: usize) -> Option<usize> {
    let prev = sep.checked_sub(1).map(|i| bytes[i]);
    let next = bytes.get(sep + 1).copied();
    match (bytes[sep], next) {
        (b'=', Some(b'=')) | (b':', Some(b':')) => None,
        (b'=', _) if matches!(prev, Some(b'=' | b'!' | b'<' | b'>' | b':')) => None,
        (b':', _) if prev == Some(b':') => None,
        (b'=', Some(b'>')) | (b':', Some(b'=')) => Some(sep + 2),
        _ => Some(sep + 1),
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']' | b'%')
}

fn is_gap(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The key name just before the separator at `sep`: optional spaces, an optional closing
/// quote, then key characters. `None` when there is none or it is too long to be a name.
fn key_before(text: &str, sep: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut end = sep;
    while end > 0 && is_gap(bytes[end - 1]) && sep - end < MAX_GAP {
        end -= 1;
    }
    if end > 0 && matches!(bytes[end - 1], b'"' | b'\'') {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && is_key_byte(bytes[start - 1]) {
        if end - start == MAX_KEY_LEN {
            return None;
        }
        start -= 1;
    }
    // Every byte in start..end is ASCII, so both ends are char boundaries.
    (start < end).then(|| &text[start..end])
}

/// The bytes to filter after a secret key's separator.
fn value_after(text: &str, from: usize) -> Value {
    let bytes = text.as_bytes();
    let start = skip_gap(bytes, from);
    if text[start..].starts_with(FILTERED) {
        return Value::Filtered(start + FILTERED.len());
    }
    match bytes.get(start) {
        None | Some(b'{' | b'[') => Value::Nothing,
        Some(&quote @ (b'"' | b'\'')) => quoted(text, start + 1, quote),
        Some(_) => unquoted_value(text, start),
    }
}

/// The inside of a quoted value; an unterminated one (a truncated string) runs to the end.
fn quoted(text: &str, start: usize, quote: u8) -> Value {
    if text[start..].starts_with(FILTERED) {
        return Value::Filtered(start + FILTERED.len());
    }
    let bytes = text.as_bytes();
    let mut end = start;
    while end < bytes.len() && bytes[end] != quote {
        // A backslash escapes the next byte (`"a\"b"`); the loop only ever stops on an
        // ASCII quote or at the end, so `end` is always a char boundary.
        end += if bytes[end] == b'\\' { 2 } else { 1 };
    }
    let end = end.min(bytes.len());
    if end == start {
        Value::Nothing
    } else {
        Value::Secret(start..end)
    }
}

/// An unquoted word; after an auth scheme (`Bearer abc`), the word after it.
fn unquoted_value(text: &str, start: usize) -> Value {
    let bytes = text.as_bytes();
    let end = word_end(bytes, start);
    if end == start {
        return Value::Nothing;
    }
    let word = &text[start..end];
    if SCHEMES.iter().any(|s| word.eq_ignore_ascii_case(s)) {
        let next = skip_gap(bytes, end);
        if next > end && text[next..].starts_with(FILTERED) {
            return Value::Filtered(next + FILTERED.len());
        }
        let next_end = word_end(bytes, next);
        if next > end && next_end > next {
            return Value::Secret(next..next_end);
        }
    }
    Value::Secret(start..end)
}

fn skip_gap(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && is_gap(bytes[at]) {
        at += 1;
    }
    at
}

/// The end of an unquoted value: it stops where a query string, cookie, list or sentence
/// would go on to the next thing.
fn word_end(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && !is_value_end(bytes[at]) {
        at += 1;
    }
    at
}

fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>' | b')' | b'}' | b']'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> KeyRules {
        KeyRules::new(&Settings::default())
    }

    fn pairs(text: &str) -> String {
        scrub_pairs(text, &mut rules()).0.into_owned()
    }

    #[test]
    fn builtin_names_match_in_any_spelling() {
        let mut keys = rules();
        for key in [
            "password",
            "Password",
            "PASSWD",
            "pwd",
            "client_secret",
            "api-key",
            "X-Api-Key",
            "x.api.key",
            "access_token",
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Set-Cookie",
            "sessionid",
            "csrftoken",
            "X-CSRF-Token",
            "credit_card",
            "card number",
            "CVV",
            "ssn",
            "private_key",
            "auth",
            "sid",
        ] {
            assert!(keys.is_secret(key), "{key}");
        }
    }

    #[test]
    fn names_containing_a_secret_part_match() {
        let mut keys = rules();
        for key in [
            "db_password",
            "GITHUB_TOKEN",
            "aws_secret_access_key",
            "stripeApiKey",
            "ssh-private-key",
            "google_credentials_json",
            "Authorization header",
            "X-Authorization-Token",
            "proxy_authorisation",
            "auth_user",
            "x-auth-user",
            "authHeader",
            "basic_auth",
            "oauth_state",
            "authentication",
            "aiohttp_session",
            "sentry_session",
            "user_session_key",
            "csrf_cookie",
            "remember_cookie",
            "csrfmiddlewaretoken",
            "xsrf",
            "mysql_pwd",
            "admin_passwd",
        ] {
            assert!(keys.is_secret(key), "{key}");
        }
    }

    #[test]
    fn common_keys_answered_at_once_are_not_secret_by_the_full_rule() {
        let mut rules = rules();
        for key in COMMON_PLAIN_KEYS {
            assert!(is_common_plain_key(key));
            assert!(!rules.is_secret_by_name(key), "{key}");
        }
    }

    #[test]
    fn a_common_key_named_secret_by_a_project_is_secret() {
        let settings = Settings {
            extra_keys: vec!["data".to_owned()],
            ..Settings::default()
        };
        assert!(KeyRules::new(&settings).is_secret("data"));
        assert!(!rules().is_secret("data"));
    }

    #[test]
    fn ordinary_names_do_not_match() {
        let mut keys = rules();
        for key in [
            "author",
            "username",
            "email",
            "sessions_count",
            "id",
            "user_agent",
            "Host",
            "cookies",
            "keyboard",
            "authority",
            "Authority",
            "authored_by",
            "authors",
            "co_author",
            "authorship",
            "sessions",
            "active_sessions",
            "",
        ] {
            assert!(!keys.is_secret(key), "{key}");
        }
    }

    #[test]
    fn safe_keys_win_and_extra_keys_add() {
        let settings = Settings {
            extra_keys: vec!["Order-Pin".into()],
            safe_keys: vec!["CSRF_TOKEN".into()],
            ..Settings::default()
        };
        let mut keys = KeyRules::new(&settings);
        assert!(keys.is_secret("order_pin"));
        assert!(
            !keys.is_secret("order_pin_hint"),
            "extra keys match exactly"
        );
        assert!(!keys.is_secret("csrftoken"));
        assert!(keys.is_secret("X-CSRF-Token"), "safe keys match exactly");
        assert!(keys.is_secret("password"));
    }

    #[test]
    fn query_strings_and_form_bodies() {
        assert_eq!(pairs("a=1&password=x"), "a=1&password=[Filtered]");
        assert_eq!(
            pairs("user=bob&access_token=abc==&page=2"),
            "user=bob&access_token=[Filtered]&page=2"
        );
        assert_eq!(
            pairs("user%5Bpassword%5D=x&user[auth]=y&q=z"),
            "user%5Bpassword%5D=[Filtered]&user[auth]=[Filtered]&q=z"
        );
        assert_eq!(pairs("password="), "password=");
    }

    #[test]
    fn cookie_strings() {
        assert_eq!(
            pairs("session=abc; theme=dark"),
            "session=[Filtered]; theme=dark"
        );
        assert_eq!(
            pairs("theme=dark; sessionid=abc;csrftoken=def"),
            "theme=dark; sessionid=[Filtered];csrftoken=[Filtered]"
        );
    }

    #[test]
    fn free_text() {
        assert_eq!(
            pairs("login failed: password=hunter2"),
            "login failed: password=[Filtered]"
        );
        assert_eq!(pairs("token: abc123 expired"), "token: [Filtered] expired");
        assert_eq!(
            pairs(r#"{"password": "hun\"ter2", "user": "bob"}"#),
            r#"{"password": "[Filtered]", "user": "bob"}"#
        );
        assert_eq!(
            pairs(r#"{'api_key' => 'abc', "pin"=>1}"#),
            r#"{'api_key' => '[Filtered]', "pin"=>1}"#
        );
        assert_eq!(
            pairs("Authorization: Bearer abcdef"),
            "Authorization: Bearer [Filtered]"
        );
        assert_eq!(pairs("secret := \"x\""), "secret := \"[Filtered]\"");
        assert_eq!(pairs("password: \"truncat"), "password: \"[Filtered]");
    }

    #[test]
    fn code_and_ordinary_text_stay() {
        for text in [
            "panicked at app::auth::login",
            "if token == expected",
            "token != other",
            "https://example.com:8080/path",
            "at 12:30:00 user=bob",
            "password",
            "ratio=3:4",
            "nested {\"token\": {\"a\": 1}}",
        ] {
            assert_eq!(pairs(text), text);
        }
    }

    #[test]
    fn filtered_pairs_stay_filtered() {
        for text in [
            "password=[Filtered]",
            "a=1&password=[Filtered]&b=2",
            "Authorization: Bearer [Filtered]",
            "session=[Filtered]; theme=dark",
            "{\"password\": \"[Filtered]\"}",
        ] {
            assert_eq!(scrub_pairs(text, &mut rules()).1, 0, "{text}");
        }
    }

    #[test]
    fn non_ascii_text_is_safe() {
        assert_eq!(
            pairs("mot de passe: é password=ü€"),
            "mot de passe: é password=[Filtered]"
        );
        assert_eq!(pairs("password=\"é\\€\""), "password=\"[Filtered]\"");
        assert_eq!(pairs("é=é:é"), "é=é:é");
    }
}
