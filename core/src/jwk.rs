//! JSON Web Keys for EC P-256 public keys (RFC 7517, RFC 7518 §6.2) and
//! their thumbprints (RFC 7638).
//!
//! An agent's key appears in `Agent.spec.publicKey` and in every DPoP
//! proof's `jwk` header; the RFC 7638 thumbprint of it is what access tokens
//! bind to (`cnf.jkt`). Only public EC P-256 keys are accepted: a JWK that
//! carries the private scalar `d` is refused outright, because a client that
//! sends it has already leaked its key.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::{Error, ErrorCode, Result};
use crate::es256::VerifyingKey;

/// Upper bound on a JWK's serialized size; a P-256 JWK is ~130 bytes.
pub const MAX_JWK_LEN: usize = 1024;

/// A public EC P-256 JWK as it appears on the wire and in CRDs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EcPublicJwk {
    /// Key type; must be `EC`.
    pub kty: String,
    /// Curve; must be `P-256`.
    pub crv: String,
    /// The x coordinate, base64url (32 bytes).
    pub x: String,
    /// The y coordinate, base64url (32 bytes).
    pub y: String,
    /// Optional key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Optional algorithm; when present must be `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Optional intended use; when present must be `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Optional key operations (WebCrypto exports these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// Optional extractable flag (WebCrypto exports this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<bool>,
    /// Private scalar: accepted by the parser only so that it can be refused
    /// with a precise error instead of "unknown field".
    #[serde(default, skip_serializing)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub d: Option<serde_json::Value>,
}

impl EcPublicJwk {
    /// The JWK of a verifying key.
    pub fn from_key(key: &VerifyingKey) -> Self {
        EcPublicJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64::encode(key.x()),
            y: b64::encode(key.y()),
            kid: None,
            alg: None,
            use_: None,
            key_ops: None,
            ext: None,
            d: None,
        }
    }

    /// Validates the JWK and returns the key with its thumbprint.
    pub fn to_public_key(&self) -> Result<PublicKey> {
        let (x, y) = self.coordinates()?;
        PublicKey::from_coordinates(&self.x, &self.y, &x, &y)
    }

    /// [`to_public_key`](Self::to_public_key) through `cache`: the same
    /// checks of the members on every call, the point's validation and the
    /// thumbprint once per key.
    pub fn to_public_key_cached(&self, cache: &KeyCache) -> Result<Arc<PublicKey>> {
        let (x, y) = self.coordinates()?;
        cache.get_or_insert(&x, &y, || {
            PublicKey::from_coordinates(&self.x, &self.y, &x, &y)
        })
    }

    /// Checks every member but the point itself and decodes the coordinates.
    fn coordinates(&self) -> Result<([u8; 32], [u8; 32])> {
        if self.d.is_some() {
            return Err(ErrorCode::JwkPrivateKeyRefused.into());
        }
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(Error::new(
                ErrorCode::JwkInvalid,
                format!(
                    "expected kty EC and crv P-256, got {:?} {:?}",
                    self.kty, self.crv
                ),
            ));
        }
        if self.alg.as_deref().is_some_and(|a| a != "ES256") {
            return Err(Error::new(ErrorCode::JwkInvalid, "alg must be ES256"));
        }
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(Error::new(ErrorCode::JwkInvalid, "use must be sig"));
        }
        Ok((coordinate(&self.x, "x")?, coordinate(&self.y, "y")?))
    }
}

/// A validated public key with its RFC 7638 thumbprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The key.
    pub key: VerifyingKey,
    /// base64url(SHA-256) RFC 7638 thumbprint.
    pub thumbprint: String,
}

impl PublicKey {
    /// Validates the point (`x_b64`, `y_b64` being its coordinates as sent,
    /// `x`, `y` the same decoded) and computes the thumbprint.
    fn from_coordinates(x_b64: &str, y_b64: &str, x: &[u8; 32], y: &[u8; 32]) -> Result<Self> {
        Ok(PublicKey {
            key: VerifyingKey::from_coordinates(x, y)?,
            thumbprint: ec_thumbprint(x_b64, y_b64),
        })
    }
}

/// Validated keys by their coordinates, so that a key seen again costs a
/// lookup instead of a point validation and a thumbprint (an agent signs
/// every DPoP proof of a grant with one key; see `bench/results/verify.md`).
///
/// Keyed by the decoded coordinates: base64url is decoded strictly
/// ([`b64::decode`]: one value has exactly one encoding), so equal
/// coordinates mean equal JWK members and so an equal thumbprint. Only keys
/// that validated are kept. Bounded: at [`KeyCache::capacity`] entries the
/// cache starts over, so many one-off keys cost what they cost without it.
#[derive(Debug)]
pub struct KeyCache {
    map: RwLock<HashMap<[u8; 64], Arc<PublicKey>>>,
    capacity: usize,
}

impl KeyCache {
    /// A cache of at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            map: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The most keys held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get_or_insert(
        &self,
        x: &[u8; 32],
        y: &[u8; 32],
        make: impl FnOnce() -> Result<PublicKey>,
    ) -> Result<Arc<PublicKey>> {
        let mut point = [0u8; 64];
        point[..32].copy_from_slice(x);
        point[32..].copy_from_slice(y);
        let found = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&point)
            .cloned();
        if let Some(key) = found {
            return Ok(key);
        }
        let key = Arc::new(make()?);
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(point, Arc::clone(&key));
        Ok(key)
    }
}

/// Parses and validates a JWK from JSON text, with a size limit.
pub fn parse_public_jwk(json: &str) -> Result<PublicKey> {
    if json.len() > MAX_JWK_LEN {
        return Err(Error::new(
            ErrorCode::InputTooLarge,
            "JWK is larger than 1 KiB",
        ));
    }
    let jwk: EcPublicJwk = serde_json::from_str(json)
        .map_err(|e| Error::new(ErrorCode::JwkInvalid, format!("malformed JWK: {e}")))?;
    jwk.to_public_key()
}

/// RFC 7638 thumbprint of an EC key from its (already canonical) coordinates.
pub fn ec_thumbprint(x: &str, y: &str) -> String {
    thumbprint_of_members(&[("crv", "P-256"), ("kty", "EC"), ("x", x), ("y", y)])
}

/// RFC 7638 §3: SHA-256 over the JSON object of the key type's required
/// members, ordered by name, without whitespace. Members are string-valued
/// for every key type, so JSON string escaping is all the canonicalization
/// needed.
pub fn thumbprint_of_members(members: &[(&str, &str)]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let object: serde_json::Map<String, serde_json::Value> = sorted
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    let json = serde_json::Value::Object(object).to_string();
    b64::encode(Sha256::digest(json.as_bytes()))
}

fn coordinate(value: &str, name: &str) -> Result<[u8; 32]> {
    let bytes = b64::decode(value, ErrorCode::JwkInvalid)?;
    bytes.try_into().map_err(|_| {
        Error::new(
            ErrorCode::JwkInvalid,
            format!("coordinate {name} must be 32 bytes"),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn private_keys_and_other_curves_are_refused() {
        let key = crate::es256::SigningKey::generate()
            .verifying_key()
            .unwrap();
        let jwk = EcPublicJwk::from_key(&key);
        let mut v = serde_json::to_value(&jwk).unwrap();
        v["d"] = "AAAA".into();
        assert_eq!(
            parse_public_jwk(&v.to_string()).unwrap_err().code,
            ErrorCode::JwkPrivateKeyRefused
        );
        let mut v = serde_json::to_value(&jwk).unwrap();
        v["crv"] = "P-384".into();
        assert_eq!(
            parse_public_jwk(&v.to_string()).unwrap_err().code,
            ErrorCode::JwkInvalid
        );
        let mut v = serde_json::to_value(&jwk).unwrap();
        v["x5c"] = serde_json::json!(["x"]);
        assert_eq!(
            parse_public_jwk(&v.to_string()).unwrap_err().code,
            ErrorCode::JwkInvalid
        );
        let big = format!("{{\"kty\":\"{}\"}}", "A".repeat(2000));
        assert_eq!(
            parse_public_jwk(&big).unwrap_err().code,
            ErrorCode::InputTooLarge
        );
    }

    #[test]
    fn round_trip_keeps_the_thumbprint() {
        let key = crate::es256::SigningKey::generate()
            .verifying_key()
            .unwrap();
        let jwk = EcPublicJwk::from_key(&key);
        let parsed = parse_public_jwk(&serde_json::to_string(&jwk).unwrap()).unwrap();
        assert_eq!(parsed.key, key);
        assert_eq!(parsed.thumbprint, ec_thumbprint(&jwk.x, &jwk.y));
    }
}
