//! Python tracebacks (`  File "/app/cart.py", line 42, in total`), printed caller first.
//!
//! Of chained tracebacks the last block is the raised exception's; the sub-exceptions of an
//! exception group, printed inside a `|` margin, are skipped. Installed packages and the
//! standard library are not in-app. The exact rules, and how this format is chosen over the
//! others, are in the module doc of `mod.rs`.

use regex::Captures;

use super::{captures, frame, group, number, pattern, Parsed, Pattern};
use crate::model::Frame;

/// `Traceback (most recent call last):`, also `  + Exception Group Traceback …` and, inside
/// a group, `    | Traceback …`. The margin tells top-level blocks from nested ones.
static PY_HEADER: Pattern = pattern!(
    r"^(?P<margin>[ \t|+\-]*)(?:Exception Group )?Traceback \(most recent call last\):\s*$"
);
/// `  File "/app/shop/cart.py", line 42, in get_total` (`in …` is missing for syntax errors).
static PY_FRAME: Pattern =
    pattern!(r#"^[ \t|]*File "(?P<file>.+?)", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$"#);

pub(super) fn parse_python(lines: &[&str]) -> Parsed {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        assert_frames_crash_first, f, PYTHON, PYTHON_CHAINED, PYTHON_GROUP,
    };
    use super::*;

    #[test]
    fn patterns_compile() {
        for pattern in [&PY_HEADER, &PY_FRAME] {
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
}
