//! A Sentry event read from its text member by member, without building its whole tree.
//!
//! ```text
//! text ─► scan: members (key, value text), each checked ─┬─► exception: frames read as the
//!                                                        │   scan streams past them ─────┐
//!                                                        ├─► other members normalizing   ├► ErrorEvent
//!                                                        │   reads, pruned ──────────────┘
//!                                                        └─► the members scrubbing could
//!                                                            change, whole ─► payload
//! ```
//!
//! Building a `serde_json::Value` of a whole event, then walking it to scrub, was most of
//! ingestion's CPU, yet most of an event is stored as it came. Here each member stays text
//! unless it is needed. One pass (`scrub::MemberScan::members`) splits the text into its
//! members and notes those scrubbing could change. In the same pass normalizing reads the
//! stack traces (`super::exception`: only the frames' names and lines), so the largest
//! member is read once. Then it reads a pruned tree of the other members it names
//! (`event::NORMALIZED_MEMBERS`). Only the members the scan reported become whole trees,
//! which scrubbing then changes in place. The event's `payload` holds just those; the
//! stored payload is the received text with them written again
//! (`store::events::ReceivedPayload`).
//!
//! The result is the event [`super::event::parse_received`] gives for the same text, and
//! its stored payload reads back as the same scrubbed JSON. Texts this reader does not take
//! (not UTF-8, a NUL escape, not an object, a top-level key repeated or holding an escape,
//! invalid JSON) go that way instead.

use serde_json::{Map, Value};

use super::event::{self, NORMALIZED_MEMBERS};
use super::exception::ExceptionReader;
use super::tree;
use crate::ingest::received::Received;
use crate::model::ErrorEvent;
use crate::scrub::{self, MemberScan};
use crate::store::events::Member;

/// An event read from its text.
pub struct EventText<'a> {
    /// `payload` holds only the members in `rebuilt`, as trees.
    pub event: ErrorEvent,
    /// The text's top-level members, in order.
    pub members: Vec<Member<'a>>,
    /// The members parsed whole because scrubbing could change them: the stored payload
    /// writes them from the (scrubbed) tree, and the rest as received.
    pub rebuilt: Vec<String>,
}

/// Reads the event; `None` when the text is one this reader leaves to the whole tree.
pub fn read<'a>(
    text: &'a [u8],
    received: Received,
    settings: &scrub::Settings,
) -> Option<EventText<'a>> {
    // Parsing strips NULs, so a text that may hold one is not stored as it came.
    if event::may_hold_nul(text) {
        return None;
    }
    let mut scan = MemberScan::new(settings);
    let mut stack_traces = ExceptionReader::default();
    let scanned = scan.members(std::str::from_utf8(text).ok()?, &mut stack_traces)?;
    let members: Vec<Member<'a>> = scanned.iter().map(|m| (m.key, m.value)).collect();
    if repeats_a_key(&members) {
        return None;
    }
    let mut normalized = Map::new();
    let mut payload = Map::new();
    let mut rebuilt = Vec::new();
    for member in &scanned {
        let (key, value) = (member.key, member.value);
        if let Some((_, keep)) = NORMALIZED_MEMBERS.iter().find(|(name, _)| *name == key) {
            let tree = match keep {
                Some(keep) => tree::parse_pruned(value, keep).ok()?,
                None => tree::parse(value.as_bytes()).ok()?.value,
            };
            normalized.insert(key.to_owned(), tree);
        }
        if member.must_rebuild {
            let tree = tree::parse(value.as_bytes()).ok()?.value;
            payload.insert(key.to_owned(), tree);
            rebuilt.push(key.to_owned());
        }
    }
    let mut event = event::event_of(&normalized, stack_traces.exceptions, received);
    event.payload = Value::Object(payload);
    Some(EventText {
        event,
        members,
        rebuilt,
    })
}

/// Whether two top-level members share a key (the tree would keep the last one only).
/// Sorted, not compared pair by pair: a megabyte of text can hold a hundred thousand keys.
fn repeats_a_key(members: &[Member<'_>]) -> bool {
    let mut keys: Vec<&str> = members.iter().map(|(key, _)| *key).collect();
    keys.sort_unstable();
    keys.windows(2).any(|pair| pair[0] == pair[1])
}
