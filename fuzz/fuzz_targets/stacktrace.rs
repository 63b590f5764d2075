//! `exception.stacktrace` text: the first byte picks the language (or none, which lets the
//! parser guess from the text), the rest is the stack trace.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seismo::ingest::otlp::stacktrace;

const LANGUAGES: [Option<&str>; 9] = [
    None,
    Some("java"),
    Some("python"),
    Some("go"),
    Some("nodejs"),
    Some("dotnet"),
    Some("rust"),
    Some("kotlin"),
    Some("webjs"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let language = LANGUAGES[usize::from(first) % LANGUAGES.len()];
    let text = String::from_utf8_lossy(rest);
    let _ = stacktrace::parse(&text, language);
});
