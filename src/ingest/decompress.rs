//! Request bodies arrive gzip-, deflate- (zlib or raw), brotli- or zstd-compressed. They are
//! inflated through a reader that stops at the decompressed-size limit, so a small "bomb"
//! is cut off after `limit` bytes instead of filling memory.
//!
//! [`Inflating`] keeps its decoder and what it has inflated between two limits: a body can
//! be inflated on the request's own task up to a small bound and, when it goes past it,
//! carried on elsewhere up to the real limit without starting over.

use std::io::{self, Read};

use bytes::{Buf, Bytes};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("unsupported content-encoding {0:?}")]
    Unsupported(String),
    #[error("body is not valid {0} data")]
    Corrupt(&'static str),
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
}

/// How far [`Inflating::inflate_up_to`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The whole body is inflated, within the limit.
    Done,
    /// The body inflates past the limit; a larger one may go on from here.
    PastLimit,
}

/// A body being inflated: its decoder, and the bytes inflated so far.
pub struct Inflating {
    reader: Box<dyn Read + Send>,
    /// The encoding's name, for the error when the data is not valid.
    name: &'static str,
    inflated: Vec<u8>,
}

impl Inflating {
    /// A decoder for `body` in `encoding`; nothing is inflated yet.
    pub fn new(encoding: Option<&str>, body: Bytes) -> Result<Inflating, DecompressError> {
        let encoding = encoding
            .map(|e| e.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let (reader, name): (Box<dyn Read + Send>, &'static str) = match encoding.as_str() {
            "" | "identity" => (Box::new(body.reader()), "identity"),
            "gzip" | "x-gzip" => (
                Box::new(flate2::read::MultiGzDecoder::new(body.reader())),
                "gzip",
            ),
            "deflate" if looks_like_zlib(&body) => (
                Box::new(flate2::read::ZlibDecoder::new(body.reader())),
                "deflate",
            ),
            "deflate" => (
                Box::new(flate2::read::DeflateDecoder::new(body.reader())),
                "deflate",
            ),
            "br" => (
                Box::new(brotli_decompressor::Decompressor::new(body.reader(), 4096)),
                "br",
            ),
            "zstd" => {
                let decoder = zstd::stream::read::Decoder::new(body.reader())
                    .map_err(|_| DecompressError::Corrupt("zstd"))?;
                (Box::new(decoder), "zstd")
            }
            other => return Err(DecompressError::Unsupported(other.to_owned())),
        };
        Ok(Inflating {
            reader,
            name,
            inflated: Vec::new(),
        })
    }

    /// Inflates on until the body ends or `limit` bytes in all are passed.
    pub fn inflate_up_to(&mut self, limit: usize) -> Result<Progress, DecompressError> {
        // One byte past the limit tells "exactly at the limit" from "over it".
        let room = (limit + 1).saturating_sub(self.inflated.len());
        let mut limited = (&mut self.reader).take(room as u64);
        match limited.read_to_end(&mut self.inflated) {
            Ok(_) if self.inflated.len() > limit => Ok(Progress::PastLimit),
            Ok(_) => Ok(Progress::Done),
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => Ok(Progress::PastLimit),
            Err(_) => Err(DecompressError::Corrupt(self.name)),
        }
    }

    /// Inflates the rest, up to `limit` bytes in all: the whole body, or `TooLarge`.
    pub fn finish(mut self, limit: usize) -> Result<Vec<u8>, DecompressError> {
        match self.inflate_up_to(limit)? {
            Progress::Done => Ok(self.inflated),
            Progress::PastLimit => Err(DecompressError::TooLarge(limit)),
        }
    }

    /// What was inflated: the whole body after [`Progress::Done`].
    pub fn into_inflated(self) -> Vec<u8> {
        self.inflated
    }
}

/// HTTP's "deflate" is meant to be zlib-wrapped, but many clients send raw deflate. A zlib
/// stream starts with a CMF byte whose low nibble is 8 and a header checksum divisible by 31.
fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"{\"message\":\"hello\"}";

    /// The whole body at once, up to `limit`.
    fn decompress(
        encoding: Option<&str>,
        body: Bytes,
        limit: usize,
    ) -> Result<Vec<u8>, DecompressError> {
        Inflating::new(encoding, body)?.finish(limit)
    }

    /// `data`, gzip-compressed (the ingest tests use it too).
    pub(in crate::ingest) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn every_encoding_round_trips() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(TEXT).expect("write");
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(TEXT).expect("write");
        let zstd = zstd::encode_all(TEXT, 1).expect("zstd");
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(TEXT).expect("write");
        }
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", gzip(TEXT)),
            ("deflate", zlib.finish().expect("zlib")),
            ("deflate", raw.finish().expect("raw")),
            ("zstd", zstd),
            ("br", br),
            ("identity", TEXT.to_vec()),
        ];
        for (encoding, body) in cases {
            assert_eq!(
                decompress(Some(encoding), body.into(), 1024).as_deref(),
                Ok(TEXT),
                "{encoding}"
            );
        }
    }

    #[test]
    fn a_bomb_is_cut_at_the_limit() {
        let bomb = gzip(&vec![b'a'; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(
            decompress(Some("gzip"), bomb.into(), 1024 * 1024),
            Err(DecompressError::TooLarge(1024 * 1024))
        );
    }

    #[test]
    fn a_body_past_one_limit_goes_on_to_the_next_where_it_stopped() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let bodies = [
            ("gzip", gzip(&text)),
            ("zstd", zstd::encode_all(&text[..], 1).expect("zstd")),
        ];
        for (encoding, body) in bodies {
            let mut inflating = Inflating::new(Some(encoding), body.into()).expect("known");
            assert_eq!(inflating.inflate_up_to(1000), Ok(Progress::PastLimit));
            assert_eq!(
                inflating.inflate_up_to(text.len() - 1),
                Ok(Progress::PastLimit)
            );
            assert_eq!(inflating.inflate_up_to(text.len()), Ok(Progress::Done));
            assert!(inflating.into_inflated() == text, "{encoding}");
        }
    }

    #[test]
    fn garbage_and_unknown_encodings_are_refused() {
        assert_eq!(
            decompress(Some("gzip"), Bytes::from_static(b"not gzip"), 1024),
            Err(DecompressError::Corrupt("gzip"))
        );
        assert_eq!(
            decompress(Some("compress"), Bytes::from_static(TEXT), 1024),
            Err(DecompressError::Unsupported("compress".into()))
        );
        assert_eq!(
            decompress(None, Bytes::from_static(TEXT), 4),
            Err(DecompressError::TooLarge(4))
        );
    }
}
