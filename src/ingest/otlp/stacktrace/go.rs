//! Go panics and `debug.Stack()` text, printed crash first: a function line
//! (`main.(*Cart).Total(0xc0)`) followed by its location line (`\t/app/cart.go:42 +0x1d`).
//!
//! Only the first goroutine, the panicking one, is kept. The runtime, GOROOT and the module
//! cache are not in-app. The exact rules, and how this format is chosen over the others, are
//! in the module doc of `mod.rs`.

use super::{captures, frame, group, matches, number, pattern, Parsed, Pattern};
use crate::model::Frame;

/// `github.com/shop/cart.(*Cart).Total(0xc000010000, {0x1, 0x2})`: function and arguments.
static GO_FUNCTION: Pattern = pattern!(r"^\s*(?P<sym>[^\s()]\S*)\((?P<args>[^()]*)\)\s*$");
/// `\t/app/cart.go:42 +0x1d`, the line right after its function.
static GO_LOCATION: Pattern =
    pattern!(r"^\s+(?P<file>\S.*?):(?P<line>\d+)(?: \+0x[0-9a-fA-F]+)?\s*$");
/// `goroutine 1 [running]:`
static GO_GOROUTINE: Pattern = pattern!(r"^\s*goroutine \d+ \[.*\]:\s*$");

pub(super) fn parse_go(lines: &[&str]) -> Parsed {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_frames_crash_first, f, GO, GO_DEBUG_STACK};
    use super::super::parse;
    use super::*;

    #[test]
    fn patterns_compile() {
        for pattern in [&GO_FUNCTION, &GO_LOCATION, &GO_GOROUTINE] {
            assert!(pattern.is_some());
        }
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
}
