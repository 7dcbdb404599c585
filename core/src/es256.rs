//! ES256 (ECDSA over P-256 with SHA-256) keys, signing and verification.
//!
//! Verification sits on every request the verifier answers (the DPoP proof),
//! so it has two backends measured side by side in `benches/core.rs`: the
//! pure-Rust `p256` crate and `aws-lc-rs`. [`VerifyingKey::verify`] uses the
//! faster one (aws-lc-rs, see `bench/results/core.md`); the key types and
//! signing stay on `p256`, whose keys zeroize on drop. Each key is parsed
//! once, at construction, never per verification.

use std::fmt;
use std::sync::OnceLock;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::{Signer as _, Verifier as _};

use crate::error::{Error, ErrorCode, Result};

/// Length of an ES256 JWS signature: `r || s`, 32 bytes each (RFC 7518 §3.4).
pub const SIGNATURE_LEN: usize = 64;

/// A P-256 public key, ready to verify ES256 signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    point: [u8; 65],
    fixed: ParsedPublicKey,
    asn1: OnceLock<Option<ParsedPublicKey>>,
    pure: OnceLock<Option<p256::ecdsa::VerifyingKey>>,
}

impl VerifyingKey {
    /// Parses an uncompressed SEC1 point (`0x04 || x || y`); refuses points
    /// not on the curve and the point at infinity.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self> {
        let invalid = || Error::new(ErrorCode::JwkInvalid, "not a valid P-256 public key");
        let point: [u8; 65] = bytes.try_into().map_err(|_| invalid())?;
        if point[0] != 0x04 {
            return Err(invalid());
        }
        // aws-lc checks that the point is on the curve and not the identity.
        let fixed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| invalid())?;
        Ok(VerifyingKey {
            point,
            fixed,
            asn1: OnceLock::new(),
            pure: OnceLock::new(),
        })
    }

    /// Builds a key from its affine coordinates (as in a JWK's `x` and `y`).
    pub fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Result<Self> {
        let mut point = [0u8; 65];
        point[0] = 0x04;
        point[1..33].copy_from_slice(x);
        point[33..].copy_from_slice(y);
        Self::from_sec1(&point)
    }

    /// The affine x coordinate.
    pub fn x(&self) -> &[u8] {
        &self.point[1..33]
    }

    /// The affine y coordinate.
    pub fn y(&self) -> &[u8] {
        &self.point[33..]
    }

    /// The uncompressed SEC1 encoding.
    pub fn sec1(&self) -> &[u8; 65] {
        &self.point
    }

    /// Verifies a JWS ES256 signature (`r || s`) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == SIGNATURE_LEN && self.fixed.verify_sig(message, signature).is_ok()
    }

    /// The same check through the pure-Rust `p256` backend; kept for the
    /// side-by-side benchmark and as a cross-check in tests.
    pub fn verify_with_p256(&self, message: &[u8], signature: &[u8]) -> bool {
        let pure = self
            .pure
            .get_or_init(|| p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.point).ok());
        match (pure, p256::ecdsa::Signature::from_slice(signature)) {
            (Some(key), Ok(sig)) => key.verify(message, &sig).is_ok(),
            _ => false,
        }
    }

    /// Verifies an ASN.1 DER signature, the form WebAuthn authenticators use.
    pub fn verify_der(&self, message: &[u8], der_signature: &[u8]) -> bool {
        let asn1 = self
            .asn1
            .get_or_init(|| ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.point).ok());
        asn1.as_ref()
            .is_some_and(|key| key.verify_sig(message, der_signature).is_ok())
    }
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.point == other.point
    }
}

impl Eq for VerifyingKey {}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", crate::b64::encode(self.point))
    }
}

/// A P-256 private key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct SigningKey(p256::ecdsa::SigningKey);

impl SigningKey {
    /// Generates a key from the operating system's random source.
    pub fn generate() -> Self {
        SigningKey(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// Loads a key from its 32-byte big-endian scalar.
    pub fn from_scalar(bytes: &[u8]) -> Result<Self> {
        p256::ecdsa::SigningKey::from_slice(bytes)
            .map(SigningKey)
            .map_err(|_| Error::new(ErrorCode::JwkInvalid, "not a valid P-256 private key"))
    }

    /// The 32-byte big-endian scalar, for storing the key (handle with care).
    pub fn to_scalar(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_sec1(self.0.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// Signs `message` (hashed with SHA-256 inside), returning `r || s`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let sig: p256::ecdsa::Signature = self.0.sign(message);
        sig.to_bytes().into()
    }

    /// Signs a SHA-256 digest computed elsewhere, as a KMS does, returning `r || s`.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; SIGNATURE_LEN]> {
        let sig: p256::ecdsa::Signature = self
            .0
            .sign_prehash(digest)
            .map_err(|e| Error::new(ErrorCode::SigningFailed, format!("cannot sign: {e}")))?;
        Ok(sig.to_bytes().into())
    }

    /// Signs `message` and returns the ASN.1 DER form (WebAuthn's encoding).
    pub fn sign_der(&self, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.0.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_backends_agree_on_valid_and_tampered_signatures() {
        let key = SigningKey::generate();
        let public = key.verifying_key().unwrap();
        let sig = key.sign(b"message");
        assert!(public.verify(b"message", &sig));
        assert!(public.verify_with_p256(b"message", &sig));
        assert!(!public.verify(b"messagf", &sig));
        assert!(!public.verify_with_p256(b"messagf", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!public.verify(b"message", &bad));
        assert!(!public.verify_with_p256(b"message", &bad));
        assert!(!public.verify(b"message", &sig[..63]));
    }

    #[test]
    fn digest_signing_matches_message_signing_and_der_verifies() {
        use sha2::Digest as _;
        let key = SigningKey::generate();
        let public = key.verifying_key().unwrap();
        let digest: [u8; 32] = sha2::Sha256::digest(b"payload").into();
        assert!(public.verify(b"payload", &key.sign_digest(&digest).unwrap()));
        assert!(public.verify_der(b"payload", &key.sign_der(b"payload")));
        assert!(!public.verify_der(b"payloae", &key.sign_der(b"payload")));
    }

    #[test]
    fn points_off_the_curve_are_refused() {
        let mut point = *SigningKey::generate().verifying_key().unwrap().sec1();
        point[64] ^= 1;
        assert!(VerifyingKey::from_sec1(&point).is_err());
        assert!(VerifyingKey::from_sec1(&[0u8; 65]).is_err());
        assert!(VerifyingKey::from_sec1(&[]).is_err());
    }

    #[test]
    fn scalar_round_trip_and_debug_hides_the_secret() {
        let key = SigningKey::generate();
        let again = SigningKey::from_scalar(&key.to_scalar()).unwrap();
        assert_eq!(key.verifying_key().unwrap(), again.verifying_key().unwrap());
        assert_eq!(format!("{key:?}"), "SigningKey(..)");
        assert!(SigningKey::from_scalar(&[0u8; 32]).is_err());
    }
}
