//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, "Signature scheme").
//!
//! A secret is `whsec_` + base64 of 24 to 64 random bytes. The signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`; the header `webhook-signature` holds
//! `v1,<base64 HMAC-SHA256>` for each secret in force, separated by spaces, so a receiver
//! rotating its secret accepts either while both are configured.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (the spec asks for 24 to 64).
const GENERATED_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("a secret must be \"whsec_\" followed by base64 of 24 to 64 bytes")]
    BadSecret,
}

/// The key bytes of a `whsec_…` secret. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn parse(text: &str) -> Result<Secret, SigningError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SigningError::BadSecret)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SigningError::BadSecret)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SigningError::BadSecret);
        }
        Ok(Secret(bytes))
    }

    /// A fresh random secret, as text (`whsec_…`).
    pub fn generate() -> String {
        let mut bytes = [0u8; GENERATED_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// True when one of the space-separated `v1,…` signatures in `header` is this secret's
    /// (compared in constant time). What a receiver does; Seismo's tests use it.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let expected = self.mac(id, timestamp, body);
        header
            .split(' ')
            .filter_map(|part| part.strip_prefix("v1,"))
            .filter_map(|sig| STANDARD.decode(sig).ok())
            .any(|sig| constant_time_eq(&sig, &expected))
    }
}

/// The `webhook-signature` header: one signature per secret in force (rotation).
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";

    #[test]
    fn the_specs_test_vector_signs_as_published() {
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid");
        assert_eq!(
            secret.sign(ID, 1649367553, BODY),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        assert!(secret.verify(
            ID,
            1649367553,
            BODY,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        ));
        assert!(!secret.verify(ID, 1649367554, BODY, &secret.sign(ID, 1649367553, BODY)));
    }

    #[test]
    fn rotation_sends_one_signature_per_secret_and_either_verifies() {
        let old = Secret::parse(&Secret::generate()).expect("generated secrets parse");
        let new = Secret::parse(&Secret::generate()).expect("generated secrets parse");
        let header = signature_header(&[new.clone(), old.clone()], ID, 7, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(old.verify(ID, 7, BODY, &header) && new.verify(ID, 7, BODY, &header));
    }

    #[test]
    fn bad_secrets_are_refused_and_never_shown() {
        for text in [
            "",
            "whsec_",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_!!",
            "whsec_AAAA",
        ] {
            assert_eq!(Secret::parse(text), Err(SigningError::BadSecret), "{text}");
        }
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }
}
