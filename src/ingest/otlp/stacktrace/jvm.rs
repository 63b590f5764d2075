//! Java, Kotlin and Scala stack traces (`\tat com.shop.Cart.total(Cart.java:42)`), printed
//! crash first.
//!
//! Only the raised exception's frames are kept: they end at the first `Caused by:` or
//! `Suppressed:`. The JDK, the languages' own libraries and the big frameworks are not
//! in-app. The exact rules, and how this format is chosen over the others, are in the module
//! doc of `mod.rs`.

use regex::Captures;

use super::{captures, frame, group, matches, number, pattern, split_last_dot, Parsed, Pattern};
use crate::model::Frame;

/// `\tat [loader/][module[@version]/]pkg.Class.method(Source)`, where Source is
/// `File.java:42`, `File.java`, `Native Method` or `Unknown Source[:42]`. The method is
/// glued to `(`, unlike V8's `at fn (file)`, and the parentheses hold no spaces (other than
/// the two fixed phrases), unlike .NET's parameter lists. Logback may append ` ~[app.jar:?]`.
static JAVA_FRAME: Pattern = pattern!(
    r"^\s*at\s+(?P<qual>[^\s(]+)\((?:Native Method|Unknown Source(?::(?P<uline>\d+))?|(?P<file>[^\s:()]+)(?::(?P<line>\d+))?)\)(?:\s+[~\[].*)?\s*$"
);
/// The raised exception's frames end where its causes or suppressed exceptions begin.
static JAVA_SECTION_END: Pattern = pattern!(r"^\s*(?:Caused by|Suppressed):");

pub(super) fn parse_java(lines: &[&str]) -> Parsed {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_frames_crash_first, f, JAVA, KOTLIN};
    use super::super::parse;
    use super::*;

    #[test]
    fn patterns_compile() {
        for pattern in [&JAVA_FRAME, &JAVA_SECTION_END] {
            assert!(pattern.is_some());
        }
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
}
