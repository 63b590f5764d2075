//! The Sentry envelope format: a JSON header line, then items, each a JSON item header line
//! followed by a payload of `length` bytes (or, without `length`, up to the next newline).
//! See <https://develop.sentry.dev/sdk/envelopes/>.

use bytes::Bytes;
use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("envelope is empty")]
    Empty,
    #[error("envelope header is not a JSON object: {0}")]
    Header(String),
    #[error("item header {index} is not a JSON object: {message}")]
    ItemHeader { index: usize, message: String },
    #[error("item {index} declares {length} bytes but only {available} follow")]
    Truncated {
        index: usize,
        length: usize,
        available: usize,
    },
}

#[derive(Debug, Default, Deserialize)]
pub struct EnvelopeHeader {
    pub event_id: Option<String>,
    pub dsn: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ItemHeader {
    #[serde(rename = "type")]
    ty: String,
    length: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub ty: String,
    pub payload: Bytes,
}

#[derive(Debug)]
pub struct Envelope {
    pub header: EnvelopeHeader,
    pub items: Vec<Item>,
}

pub fn parse(body: Bytes) -> Result<Envelope, EnvelopeError> {
    let (header_line, mut rest) = split_line(&body, 0);
    if header_line.iter().all(u8::is_ascii_whitespace) {
        return Err(EnvelopeError::Empty);
    }
    let header: EnvelopeHeader =
        serde_json::from_slice(header_line).map_err(|e| EnvelopeError::Header(one_line(&e)))?;
    let mut items = Vec::new();
    while rest < body.len() {
        let (line, after_header) = split_line(&body, rest);
        if line.iter().all(u8::is_ascii_whitespace) {
            // Blank lines between items (and a trailing newline) are allowed.
            rest = after_header;
            continue;
        }
        let index = items.len();
        let item_header: ItemHeader =
            serde_json::from_slice(line).map_err(|e| EnvelopeError::ItemHeader {
                index,
                message: one_line(&e),
            })?;
        let (payload, next) = match item_header.length {
            Some(length) => fixed_payload(&body, after_header, length, index)?,
            None => {
                let (line, next) = split_line(&body, after_header);
                let start = after_header;
                (body.slice(start..start + line.len()), next)
            }
        };
        items.push(Item {
            ty: item_header.ty,
            payload,
        });
        rest = next;
    }
    Ok(Envelope { header, items })
}

/// The line starting at `start` (without its `\n`) and the offset after the newline.
fn split_line(body: &[u8], start: usize) -> (&[u8], usize) {
    let tail = &body[start.min(body.len())..];
    match tail.iter().position(|b| *b == b'\n') {
        Some(end) => (&tail[..end], start + end + 1),
        None => (tail, body.len()),
    }
}

fn fixed_payload(
    body: &Bytes,
    start: usize,
    length: usize,
    index: usize,
) -> Result<(Bytes, usize), EnvelopeError> {
    let available = body.len().saturating_sub(start);
    if length > available {
        return Err(EnvelopeError::Truncated {
            index,
            length,
            available,
        });
    }
    let end = start + length;
    // The payload may be followed by a newline, which is not part of it.
    let next = if body.get(end) == Some(&b'\n') {
        end + 1
    } else {
        end
    };
    Ok((body.slice(start..end), next))
}

pub(crate) fn one_line(error: &serde_json::Error) -> String {
    error.to_string().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Envelope, EnvelopeError> {
        parse(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn items_with_and_without_length() {
        let text = "{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"http://k@h/1\"}\n\
                    {\"type\":\"event\",\"length\":13}\n{\"message\":1}\n\
                    {\"type\":\"attachment\",\"length\":3}\na\nb\n\
                    {\"type\":\"session\"}\n{\"sid\":\"x\"}\n";
        let envelope = parse_str(text).expect("valid");
        assert_eq!(envelope.header.dsn.as_deref(), Some("http://k@h/1"));
        let items: Vec<(&str, &[u8])> = envelope
            .items
            .iter()
            .map(|i| (i.ty.as_str(), &i.payload[..]))
            .collect();
        assert_eq!(
            items,
            vec![
                ("event", &b"{\"message\":1}"[..]),
                ("attachment", &b"a\nb"[..]),
                ("session", &b"{\"sid\":\"x\"}"[..]),
            ]
        );
    }

    #[test]
    fn last_item_without_trailing_newline() {
        let envelope = parse_str("{}\n{\"type\":\"event\"}\n{\"a\":1}").expect("valid");
        assert_eq!(&envelope.items[0].payload[..], b"{\"a\":1}");
    }

    #[test]
    fn errors() {
        assert_eq!(parse_str("").err(), Some(EnvelopeError::Empty));
        assert!(matches!(
            parse_str("not json\n"),
            Err(EnvelopeError::Header(_))
        ));
        assert!(matches!(
            parse_str("{}\nnope\n"),
            Err(EnvelopeError::ItemHeader { index: 0, .. })
        ));
        assert!(matches!(
            parse_str("{}\n{\"type\":\"event\",\"length\":100}\n{}"),
            Err(EnvelopeError::Truncated { length: 100, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(Bytes::from(bytes));
        }

        #[test]
        fn items_survive_a_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..5)) {
            let mut body = b"{}\n".to_vec();
            for payload in &payloads {
                body.extend(format!("{{\"type\":\"attachment\",\"length\":{}}}\n", payload.len()).as_bytes());
                body.extend(payload);
                body.push(b'\n');
            }
            let envelope = parse(Bytes::from(body)).expect("a well-formed envelope parses");
            let parsed: Vec<Vec<u8>> = envelope.items.iter().map(|i| i.payload.to_vec()).collect();
            proptest::prop_assert_eq!(parsed, payloads);
        }
    }
}
