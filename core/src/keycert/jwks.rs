//! The JWKS document at `/.well-known/jwks.json` and the verifier's view of
//! it.
//!
//! ```text
//! {
//!   "keys": [                                  one entry per issuing key
//!     {"kty": "EC", "crv": "P-256", "x": "…", "y": "…",
//!      "kid": "<thumbprint>", "alg": "ES256", "use": "sig",
//!      "agentauth_cert": "<certificate JWS>"}  absent only for the root itself
//!   ],                                         (direct mode)
//!   "agentauth_root": {"kty": "EC", …, "kid": "<root thumbprint>"}
//! }
//! ```
//!
//! Entries are ordinary JWKs with one extra member, which RFC 7517 §4 lets
//! other JWKS consumers ignore. `agentauth_root` only names the root for
//! people setting up a verifier; it is never trusted: verifiers pin the root
//! out of band ([`RootKey`]) and trust an entry only through a certificate
//! that root signed, or when the entry is the pinned root itself.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::verify_certificate;
use crate::error::{Error, ErrorCode, Result};
use crate::es256::VerifyingKey;
use crate::jwk::EcPublicJwk;
use crate::token::KeyResolver;

/// The JWKS member carrying an issuing key's certificate.
pub const CERTIFICATE_MEMBER: &str = "agentauth_cert";

/// JWKS documents longer than this are refused before parsing; one entry is
/// about 800 bytes and a JWKS holds a handful.
pub const MAX_JWKS_LEN: usize = 64 * 1024;

/// A JWKS document (RFC 7517 §5) with AgentAuth's certificates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys that may sign access tokens.
    pub keys: Vec<JwksEntry>,
    /// The root key, for discovery only; never trusted from here.
    #[serde(
        default,
        rename = "agentauth_root",
        skip_serializing_if = "Option::is_none"
    )]
    pub root: Option<EcPublicJwk>,
}

impl Jwks {
    /// Parses a JWKS document, with a size limit.
    pub fn parse(json: &str) -> Result<Self> {
        if json.len() > MAX_JWKS_LEN {
            return Err(Error::new(
                ErrorCode::InputTooLarge,
                format!(
                    "JWKS of {} bytes exceeds the limit of {MAX_JWKS_LEN}",
                    json.len()
                ),
            ));
        }
        serde_json::from_str(json)
            .map_err(|e| Error::new(ErrorCode::JsonInvalid, format!("malformed JWKS: {e}")))
    }
}

/// One key of a [`Jwks`]: a public EC JWK plus its certificate. Unknown
/// members are ignored, as RFC 7517 §4 asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JwksEntry {
    /// Key type; `EC`.
    pub kty: String,
    /// Curve; `P-256`.
    pub crv: String,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// The key id: the key's RFC 7638 thumbprint.
    pub kid: String,
    /// Algorithm; `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The certificate by which the root key vouches for this key; absent
    /// for the root itself.
    #[serde(
        default,
        rename = "agentauth_cert",
        skip_serializing_if = "Option::is_none"
    )]
    pub cert: Option<String>,
    /// A private scalar, parsed only to be refused.
    #[serde(default, skip_serializing)]
    pub d: Option<serde_json::Value>,
}

impl JwksEntry {
    /// The entry for `key` (whose id is its thumbprint), with its certificate
    /// if it is an issuing key.
    pub fn new(kid: impl Into<String>, key: &VerifyingKey, cert: Option<String>) -> Self {
        let jwk = EcPublicJwk::from_key(key);
        JwksEntry {
            kty: jwk.kty,
            crv: jwk.crv,
            x: jwk.x,
            y: jwk.y,
            kid: kid.into(),
            alg: Some("ES256".into()),
            use_: Some("sig".into()),
            cert,
            d: None,
        }
    }

    /// The entry as a plain JWK (without the certificate).
    pub fn jwk(&self) -> EcPublicJwk {
        EcPublicJwk {
            kty: self.kty.clone(),
            crv: self.crv.clone(),
            x: self.x.clone(),
            y: self.y.clone(),
            kid: Some(self.kid.clone()),
            alg: self.alg.clone(),
            use_: self.use_.clone(),
            key_ops: None,
            ext: None,
            d: self.d.clone(),
        }
    }
}

/// The root public key a verifier pins out of band.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootKey {
    /// Its id: the RFC 7638 thumbprint.
    pub kid: String,
    /// The key.
    pub key: VerifyingKey,
}

impl RootKey {
    /// The root from its public JWK; a `kid` in the JWK must be the thumbprint.
    pub fn from_jwk(jwk: &EcPublicJwk) -> Result<Self> {
        let public = jwk.to_public_key()?;
        if jwk
            .kid
            .as_deref()
            .is_some_and(|kid| kid != public.thumbprint)
        {
            return Err(Error::new(
                ErrorCode::JwkInvalid,
                "the root JWK's kid is not its RFC 7638 thumbprint",
            ));
        }
        Ok(RootKey {
            kid: public.thumbprint,
            key: public.key,
        })
    }
}

/// A key trusted to sign tokens until `not_after` (exclusive).
#[derive(Clone, Debug)]
struct Trusted {
    key: VerifyingKey,
    not_after: i64,
}

/// The token-signing keys of a JWKS that a pinned root vouches for, as a
/// [`KeyResolver`] for [`crate::token::verify`] through [`TrustedKeys::at`].
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: HashMap<String, Trusted>,
    rejected: Vec<(String, Error)>,
}

impl TrustedKeys {
    /// Checks every entry of `jwks` at `now`. An entry is trusted when its
    /// certificate verifies against `root`, was made for `issuer` and
    /// certifies exactly this entry's key; or when the entry is the pinned
    /// root itself (direct mode). Other entries are left out and listed in
    /// [`TrustedKeys::rejected`], so one bad entry does not stop the others.
    pub fn from_jwks(jwks: &Jwks, root: &RootKey, issuer: &str, now: i64) -> Self {
        let mut trusted = TrustedKeys::default();
        for entry in &jwks.keys {
            match trust_entry(entry, root, issuer, now) {
                Ok(key) => {
                    trusted.keys.insert(entry.kid.clone(), key);
                }
                Err(e) => trusted.rejected.push((entry.kid.clone(), e)),
            }
        }
        trusted
    }

    /// The keys that were refused, with why (for logs and metrics).
    pub fn rejected(&self) -> &[(String, Error)] {
        &self.rejected
    }

    /// The ids of the trusted keys, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// When the certificate of `kid` expires (`i64::MAX` for the root).
    pub fn not_after(&self, kid: &str) -> Option<i64> {
        self.keys.get(kid).map(|t| t.not_after)
    }

    /// A resolver that, at `now`, trusts only keys whose certificates are
    /// still valid.
    pub fn at(&self, now: i64) -> TrustedKeysAt<'_> {
        TrustedKeysAt { keys: self, now }
    }
}

/// [`TrustedKeys`] seen at one instant; see [`TrustedKeys::at`].
#[derive(Clone, Copy, Debug)]
pub struct TrustedKeysAt<'a> {
    keys: &'a TrustedKeys,
    now: i64,
}

impl KeyResolver for TrustedKeysAt<'_> {
    fn resolve(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys
            .keys
            .get(kid)
            .filter(|t| self.now < t.not_after)
            .map(|t| &t.key)
    }
}

fn trust_entry(entry: &JwksEntry, root: &RootKey, issuer: &str, now: i64) -> Result<Trusted> {
    let refuse = |m: &str| Error::new(ErrorCode::KeyCertificateInvalid, m);
    let public = entry.jwk().to_public_key()?;
    if entry.kid != public.thumbprint {
        return Err(Error::new(
            ErrorCode::JwkInvalid,
            "the entry's kid is not its RFC 7638 thumbprint",
        ));
    }
    let Some(cert) = &entry.cert else {
        return if entry.kid == root.kid && public.key == root.key {
            Ok(Trusted {
                key: public.key,
                not_after: i64::MAX,
            })
        } else {
            Err(refuse(
                "a key other than the pinned root has no certificate",
            ))
        };
    };
    let certified = verify_certificate(cert, &root.kid, &root.key, now)?;
    if certified.kid != entry.kid || certified.key != public.key {
        return Err(refuse("the certificate is for another key"));
    }
    if certified.issuer != issuer {
        return Err(refuse("the certificate was made for another issuer"));
    }
    Ok(Trusted {
        key: certified.key,
        not_after: certified.not_after,
    })
}
