//! The stack traces under `tests/fixtures/stacktraces`, shared by the tests of every format
//! and of the choice between them.

use super::{parse, Format};
use crate::model::Frame;

pub(super) const PYTHON: &str = include_str!("../../../../tests/fixtures/stacktraces/python.txt");
pub(super) const PYTHON_CHAINED: &str =
    include_str!("../../../../tests/fixtures/stacktraces/python_chained.txt");
pub(super) const PYTHON_GROUP: &str =
    include_str!("../../../../tests/fixtures/stacktraces/python_group.txt");
pub(super) const JAVA: &str = include_str!("../../../../tests/fixtures/stacktraces/java.txt");
pub(super) const KOTLIN: &str = include_str!("../../../../tests/fixtures/stacktraces/kotlin.txt");
pub(super) const DOTNET: &str = include_str!("../../../../tests/fixtures/stacktraces/dotnet.txt");
pub(super) const DOTNET_NOPDB: &str =
    include_str!("../../../../tests/fixtures/stacktraces/dotnet_nopdb.txt");
pub(super) const DOTNET_AGGREGATE: &str =
    include_str!("../../../../tests/fixtures/stacktraces/dotnet_aggregate.txt");
pub(super) const NODE: &str = include_str!("../../../../tests/fixtures/stacktraces/node.txt");
pub(super) const NODE_CAUSE: &str =
    include_str!("../../../../tests/fixtures/stacktraces/node_cause.txt");
pub(super) const BROWSER: &str = include_str!("../../../../tests/fixtures/stacktraces/browser.txt");
pub(super) const GO: &str = include_str!("../../../../tests/fixtures/stacktraces/go.txt");
pub(super) const GO_DEBUG_STACK: &str =
    include_str!("../../../../tests/fixtures/stacktraces/go_debug_stack.txt");
pub(super) const RUST: &str = include_str!("../../../../tests/fixtures/stacktraces/rust.txt");
pub(super) const RUST_FULL: &str =
    include_str!("../../../../tests/fixtures/stacktraces/rust_full.txt");

/// Every fixture with the format it is in and its `telemetry.sdk.language`.
pub(super) const FIXTURES: [(&str, &str, Format, &str); 15] = [
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

pub(super) fn f(
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
pub(super) fn assert_frames_crash_first(text: &str, language: Option<&str>, expected: &[Frame]) {
    let mut frames = parse(text, language);
    frames.reverse();
    assert_eq!(frames, expected);
}
