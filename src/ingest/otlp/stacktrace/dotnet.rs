//! .NET stack traces (`   at Shop.Cart.Total(Int32 id) in /src/Cart.cs:line 42`), printed
//! crash first.
//!
//! Inner exceptions are printed nested inside the outer one; only the outer exception's frames
//! are kept. `System.` and `Microsoft.` code is not in-app. The exact rules, and how this
//! format is chosen over the others, are in the module doc of `mod.rs`.

use regex::Captures;

use super::{captures, frame, group, number, pattern, split_last_dot, Parsed, Pattern};
use crate::model::Frame;

/// `   at Ns.Class.Method(Type name, …)[ in /path/File.cs:line 42]`, the last frame of an
/// `(Inner Exception #n)` section ending in `<---`.
static DOTNET_FRAME: Pattern = pattern!(
    r"^\s*at (?P<qual>[^\s(]+)\((?P<params>[^()]*)\)(?: in (?P<file>.+?):line (?P<line>\d+))?\s*(?:<---)?\s*$"
);

pub(super) fn parse_dotnet(lines: &[&str]) -> Parsed {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        assert_frames_crash_first, f, DOTNET, DOTNET_AGGREGATE, DOTNET_NOPDB,
    };
    use super::super::parse;
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(DOTNET_FRAME.is_some());
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
}
