//! The title and culprit: what a human reads in the issue list.
//!
//! Both are display only — they are not hashed — so they use the original text, not the
//! normalized one: `KeyError: 'user_42'` is more useful to read than `KeyError: <str>`.

use super::normalize::collapse_whitespace;
use crate::model::{ErrorEvent, Exception, Frame};

/// Longest title or culprit, in characters (the `…` included).
pub(super) const MAX_CHARS: usize = 200;

const UNLABELED: &str = "<unlabeled event>";

/// `"{type}: {first line of value}"` of the main exception, else the first non-empty line
/// of the message, else `"<unlabeled event>"`.
pub(super) fn title(event: &ErrorEvent) -> String {
    let raw = event
        .main_exception()
        .and_then(exception_title)
        .or_else(|| {
            event
                .message
                .as_deref()
                .and_then(first_line)
                .map(str::to_string)
        })
        .unwrap_or_else(|| UNLABELED.to_string());
    clip(&raw)
}

fn exception_title(exception: &Exception) -> Option<String> {
    let ty = exception.ty.trim();
    let value = exception.value.as_deref().and_then(first_line);
    match (ty.is_empty(), value) {
        (false, Some(value)) => Some(format!("{ty}: {value}")),
        (false, None) => Some(ty.to_string()),
        (true, Some(value)) => Some(value.to_string()),
        // Nothing to show: let the caller fall back to the message.
        (true, None) => None,
    }
}

fn first_line(s: &str) -> Option<&str> {
    s.lines().map(str::trim).find(|line| !line.is_empty())
}

/// Where the error happened: `"{module or filename} in {function}"` of the crashing frame
/// of the main exception, else the transaction, else empty.
pub(super) fn culprit(event: &ErrorEvent) -> String {
    let raw = event
        .main_exception()
        .and_then(|exception| crashing_frame(&exception.frames))
        .and_then(render_frame)
        .or_else(|| event.transaction.clone())
        .unwrap_or_default();
    clip(&raw)
}

/// The last in-app frame (frames are ordered caller first), else the last frame: library
/// frames on top of the stack say where it broke, not which of our code paths broke it.
fn crashing_frame(frames: &[Frame]) -> Option<&Frame> {
    let renderable = |f: &&Frame| render_frame(f).is_some();
    let mut from_top = frames.iter().rev();
    from_top
        .clone()
        .filter(|f| f.in_app == Some(true))
        .find(renderable)
        .or_else(|| from_top.find(renderable))
}

fn render_frame(frame: &Frame) -> Option<String> {
    let present = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let location = present(&frame.module).or_else(|| present(&frame.filename));
    match (location, present(&frame.function)) {
        (Some(location), Some(function)) => Some(format!("{location} in {function}")),
        (Some(only), None) | (None, Some(only)) => Some(only),
        (None, None) => None,
    }
}

/// Collapses whitespace and truncates to [`MAX_CHARS`] characters on a char boundary.
pub(super) fn clip(s: &str) -> String {
    let collapsed = collapse_whitespace(s);
    if collapsed.chars().count() <= MAX_CHARS {
        return collapsed;
    }
    let mut clipped: String = collapsed.chars().take(MAX_CHARS - 1).collect();
    clipped.push('…');
    clipped
}
