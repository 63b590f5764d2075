//! Rust backtraces, printed crash first: numbered symbol lines (`   4: shop::cart::total`),
//! each optionally followed by its location (`at ./src/cart.rs:42:13`) and by the symbols
//! inlined into it.
//!
//! The standard library, the async runtimes, cargo's registry and symbols without a crate
//! path are not in-app. The exact rules, and how this format is chosen over the others, are
//! in the module doc of `mod.rs`.

use super::{captures, frame, group, number, pattern, Parsed, Pattern};
use crate::model::Frame;

/// `   4: shop::cart::total` or, with RUST_BACKTRACE=full, `   4:     0x55d5c39d4e21 - …`.
static RUST_FRAME: Pattern = pattern!(r"^\s*\d+:\s+(?:0x[0-9a-fA-F]+ - )?(?P<sym>\S.*?)\s*$");
/// `             at ./src/cart.rs:42:13` under its symbol.
static RUST_AT: Pattern = pattern!(r"^\s+at (?P<file>.+?):(?P<line>\d+)(?::\d+)?\s*$");
/// Further symbols of one frame (inlined functions) are indented without a number.
static RUST_INLINED: Pattern = pattern!(r"^\s{6,}(?P<sym>(?:<|[A-Za-z_])\S*?::.*?)\s*$");
/// The hash of legacy-mangled symbols, which changes with every build.
static RUST_HASH: Pattern = pattern!(r"::h[0-9a-f]{16}$");

pub(super) fn parse_rust(lines: &[&str]) -> Parsed {
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
    use super::super::fixtures::{f, RUST, RUST_FULL};
    use super::super::parse;
    use super::*;

    #[test]
    fn patterns_compile() {
        for pattern in [&RUST_FRAME, &RUST_AT, &RUST_INLINED, &RUST_HASH] {
            assert!(pattern.is_some());
        }
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
}
