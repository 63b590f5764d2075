//! Request bodies arrive gzip-, deflate- (zlib or raw), brotli- or zstd-compressed. They are
//! inflated through a reader that stops at the decompressed-size limit, so a small "bomb"
//! is cut off after `limit` bytes instead of filling memory.

use std::io::{self, Read};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("unsupported content-encoding {0:?}")]
    Unsupported(String),
    #[error("body is not valid {0} data")]
    Corrupt(&'static str),
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
}

/// Returns the decompressed body (or the body itself for `identity`/no encoding).
pub fn decompress(
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let encoding = encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => within_limit(body.to_vec(), limit),
        "gzip" | "x-gzip" => read_limited(flate2::read::MultiGzDecoder::new(body), limit, "gzip"),
        "deflate" if looks_like_zlib(body) => {
            read_limited(flate2::read::ZlibDecoder::new(body), limit, "deflate")
        }
        "deflate" => read_limited(flate2::read::DeflateDecoder::new(body), limit, "deflate"),
        "br" => read_limited(
            brotli_decompressor::Decompressor::new(body, 4096),
            limit,
            "br",
        ),
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|_| DecompressError::Corrupt("zstd"))?;
            read_limited(decoder, limit, "zstd")
        }
        other => Err(DecompressError::Unsupported(other.to_owned())),
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

fn within_limit(body: Vec<u8>, limit: usize) -> Result<Vec<u8>, DecompressError> {
    if body.len() > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    Ok(body)
}

fn read_limited(
    reader: impl Read,
    limit: usize,
    name: &'static str,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    let mut limited = reader.take(limit as u64 + 1);
    match limited.read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(DecompressError::TooLarge(limit)),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == io::ErrorKind::OutOfMemory => Err(DecompressError::TooLarge(limit)),
        Err(_) => Err(DecompressError::Corrupt(name)),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"{\"message\":\"hello\"}";

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
                decompress(Some(encoding), &body, 1024).as_deref(),
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
            decompress(Some("gzip"), &bomb, 1024 * 1024),
            Err(DecompressError::TooLarge(1024 * 1024))
        );
    }

    #[test]
    fn garbage_and_unknown_encodings_are_refused() {
        assert_eq!(
            decompress(Some("gzip"), b"not gzip", 1024),
            Err(DecompressError::Corrupt("gzip"))
        );
        assert_eq!(
            decompress(Some("compress"), TEXT, 1024),
            Err(DecompressError::Unsupported("compress".into()))
        );
        assert_eq!(decompress(None, TEXT, 4), Err(DecompressError::TooLarge(4)));
    }
}
