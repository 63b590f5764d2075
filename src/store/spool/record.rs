//! The spool's framing: how one batch is laid out on disk, and how a reader finds the good
//! records in a file that may end torn or hold garbage.
//!
//! ```text
//!  magic "SPR1" │ len u32 │ events u32 │ header crc u32 │ payload crc u32 │ payload (len bytes)
//! ```
//!
//! All integers little-endian; both checksums are CRC-32C (Castagnoli). The header checksum
//! covers `len` and `events`, so a record whose payload was damaged still says how many
//! events were lost with it. A reader that meets anything else (a torn write, bytes
//! overwritten) searches forward for the next magic whose header checks out: one bad
//! record costs that record, never the rest of the file.

use crc::{Crc, CRC_32_ISCSI};

const MAGIC: [u8; 4] = *b"SPR1";
pub const HEADER_BYTES: usize = 20;
/// No batch comes near this (a request is at most 100 MiB decompressed, compressed far
/// smaller); a larger length is damage, not data.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024 * 1024;

const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

fn checksum(bytes: &[u8]) -> u32 {
    CASTAGNOLI.checksum(bytes)
}

/// The bytes of one record holding `payload`, which carries `events` events.
pub fn encode(payload: &[u8], events: u32) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut sized = [0u8; 8];
    sized[..4].copy_from_slice(&len.to_le_bytes());
    sized[4..].copy_from_slice(&events.to_le_bytes());
    let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&sized);
    record.extend_from_slice(&checksum(&sized).to_le_bytes());
    record.extend_from_slice(&checksum(payload).to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// What a reader finds at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A whole record: its payload is `bytes[payload]`, and the next record starts at `next`.
    Record {
        payload: std::ops::Range<usize>,
        events: u32,
        next: usize,
    },
    /// A record whose header is sound but whose payload is damaged: `events` are lost.
    Damaged { events: u32, next: usize },
    /// Bytes that are not a record, up to `next` (the next sound header, or the end).
    Garbage { next: usize },
    /// A record that starts here but has not been written whole (a torn tail).
    Incomplete,
    /// Nothing left.
    End,
}

/// Reads the record at `at` of `bytes`.
pub fn read(bytes: &[u8], at: usize) -> Found {
    if at >= bytes.len() {
        return Found::End;
    }
    match header(bytes, at) {
        Some((len, events)) => {
            let start = at + HEADER_BYTES;
            let Some(end) = start.checked_add(len).filter(|end| *end <= bytes.len()) else {
                return Found::Incomplete;
            };
            let expected = u32_at(bytes, at + 16);
            if checksum(&bytes[start..end]) == expected {
                Found::Record {
                    payload: start..end,
                    events,
                    next: end,
                }
            } else {
                Found::Damaged { events, next: end }
            }
        }
        None if at + HEADER_BYTES > bytes.len() && MAGIC.starts_with(prefix(bytes, at)) => {
            Found::Incomplete
        }
        None => Found::Garbage {
            next: next_header(bytes, at + 1),
        },
    }
}

/// The whole size (header and payload) of the record whose sound header starts `bytes`.
pub fn declared_size(bytes: &[u8]) -> Option<usize> {
    header(bytes, 0).map(|(len, _)| HEADER_BYTES + len)
}

/// `(len, events)` when a sound header starts at `at`.
fn header(bytes: &[u8], at: usize) -> Option<(usize, u32)> {
    let head = bytes.get(at..at + HEADER_BYTES)?;
    if head[..4] != MAGIC || checksum(&head[4..12]) != u32_at(head, 12) {
        return None;
    }
    let len = u32_at(head, 4) as usize;
    (len <= MAX_PAYLOAD_BYTES).then_some((len, u32_at(head, 8)))
}

/// The first position at or after `from` where a sound header starts (or the end).
fn next_header(bytes: &[u8], from: usize) -> usize {
    (from..bytes.len())
        .find(|&at| bytes[at] == MAGIC[0] && header(bytes, at).is_some())
        .unwrap_or(bytes.len())
}

fn prefix(bytes: &[u8], at: usize) -> &[u8] {
    &bytes[at..bytes.len().min(at + MAGIC.len())]
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> (Vec<u8>, usize) {
        let mut file = encode(b"first batch", 3);
        let second = file.len();
        file.extend(encode(b"second", 1));
        (file, second)
    }

    #[test]
    fn records_read_back_in_order() {
        let (file, second) = two_records();
        assert_eq!(
            read(&file, 0),
            Found::Record {
                payload: HEADER_BYTES..HEADER_BYTES + 11,
                events: 3,
                next: second
            }
        );
        let Found::Record { payload, next, .. } = read(&file, second) else {
            panic!("the second record");
        };
        assert_eq!(&file[payload], b"second");
        assert_eq!(read(&file, next), Found::End);
    }

    #[test]
    fn a_torn_tail_is_incomplete_not_garbage() {
        let (file, second) = two_records();
        for cut in second + 1..file.len() {
            assert_eq!(
                read(&file[..cut], second),
                Found::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_damaged_payload_names_its_events_and_the_next_record_survives() {
        let (mut file, second) = two_records();
        file[HEADER_BYTES + 2] ^= 0xff;
        assert_eq!(
            read(&file, 0),
            Found::Damaged {
                events: 3,
                next: second
            }
        );
        assert!(matches!(
            read(&file, second),
            Found::Record { events: 1, .. }
        ));
    }

    #[test]
    fn garbage_is_skipped_up_to_the_next_sound_header() {
        let (file, second) = two_records();
        let mut damaged = file.clone();
        damaged[..second].fill(b'S'); // not a header, though it starts like the magic
        assert_eq!(read(&damaged, 0), Found::Garbage { next: second });
        let mut overwritten = b"noise".to_vec();
        overwritten.extend_from_slice(&file);
        assert_eq!(read(&overwritten, 0), Found::Garbage { next: 5 });
    }

    #[test]
    fn a_header_with_a_wrong_length_is_not_believed() {
        let mut file = encode(b"x", 1);
        file[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&file, 0), Found::Garbage { next: file.len() });
    }
}
