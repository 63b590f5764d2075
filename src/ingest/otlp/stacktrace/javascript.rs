//! JavaScript stack traces, printed crash first: Node / V8
//! (`    at Cart.total (/app/cart.js:42:13)`) and Firefox / Safari
//! (`total@https://shop.example/app.js:42:13`).
//!
//! Frames stop where Node prints the error's `[cause]:` or `[errors]:` after the stack.
//! Dependencies and the runtime's own code are not in-app. The exact rules, and how this
//! format is chosen over the others, are in the module doc of `mod.rs`.

use super::{captures, frame, group, matches, number, pattern, Parsed, Pattern};
use crate::model::Frame;

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

pub(super) fn parse_node(lines: &[&str]) -> Parsed {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_frames_crash_first, f, BROWSER, NODE, NODE_CAUSE};
    use super::super::parse;
    use super::*;

    #[test]
    fn patterns_compile() {
        for pattern in [
            &NODE_CALL,
            &NODE_ANONYMOUS,
            &BROWSER_FRAME,
            &JS_LOCATION,
            &NODE_SECTION_END,
        ] {
            assert!(pattern.is_some());
        }
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
}
