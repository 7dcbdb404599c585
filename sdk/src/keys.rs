//! The agent's P-256 key: generated here, stored in a file only its owner
//! can read, and never printed.
//!
//! ```text
//!  AgentKey::generate() ─▶ save(path)   create-new, mode 0600, private JWK (JSON)
//!  AgentKey::load(path) ─▶ refuse if group- or world-accessible, refuse a public-only JWK
//!  key.public_jwk()     ─▶ Agent.spec.publicKey     key.thumbprint() ─▶ Agent.status.keyThumbprint
//! ```
//!
//! The file holds an RFC 7517 private JWK (`kty`, `crv`, `x`, `y`, `d`), so
//! other tools can read it. A key file that others can read is refused, as
//! OpenSSH refuses such a private key: whoever reads it can act as the agent.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use agentauth_core::b64;
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::{EcPublicJwk, ec_thumbprint};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Key files larger than this are refused before parsing.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// The agent's signing key (its DPoP key).
#[derive(Clone)]
pub struct AgentKey {
    key: SigningKey,
    public: EcPublicJwk,
    thumbprint: String,
}

/// The private JWK of a key file.
#[derive(Serialize, Deserialize)]
struct PrivateJwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
    d: String,
}

impl AgentKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<AgentKey> {
        AgentKey::from_signing_key(SigningKey::generate())
    }

    /// Wraps a core signing key.
    pub fn from_signing_key(key: SigningKey) -> Result<AgentKey> {
        let public = key
            .verifying_key()
            .map_err(|e| Error::Key(format!("cannot derive the public key: {}", e.message)))?;
        let public = EcPublicJwk::from_key(&public);
        let thumbprint = ec_thumbprint(&public.x, &public.y);
        Ok(AgentKey {
            key,
            public,
            thumbprint,
        })
    }

    /// The key to sign proofs with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The public JWK (`Agent.spec.publicKey`).
    pub fn public_jwk(&self) -> &EcPublicJwk {
        &self.public
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Writes the key to a new file at `path` with mode 0600. Refuses to
    /// overwrite an existing file (a key is replaced on purpose, by hand).
    pub fn save(&self, path: &Path) -> Result<()> {
        let jwk = PrivateJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: self.public.x.clone(),
            y: self.public.y.clone(),
            d: b64::encode(self.key.to_scalar()),
        };
        let json = serde_json::to_vec_pretty(&jwk)
            .map_err(|e| Error::Key(format!("cannot encode the key: {e}")))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(|e| Error::Key(format!("cannot create key file {}: {e}", path.display())))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::Key(format!("cannot write key file {}: {e}", path.display())))
    }

    /// Reads a key file written by [`AgentKey::save`] (or any private P-256
    /// JWK). Refuses a file that its group or others may access.
    pub fn load(path: &Path) -> Result<AgentKey> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Key(format!("cannot read key file {}: {e}", path.display())))?;
        check_permissions(path, &meta)?;
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(Error::Key(format!(
                "key file {} is larger than {MAX_KEY_FILE_LEN} bytes",
                path.display()
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Key(format!("cannot read key file {}: {e}", path.display())))?;
        AgentKey::from_jwk_json(&bytes)
            .map_err(|e| Error::Key(format!("key file {}: {}", path.display(), e.message())))
    }

    /// Loads the key at `path`, or generates one and saves it there when
    /// there is no file yet.
    pub fn load_or_generate(path: &Path) -> Result<AgentKey> {
        if path.exists() {
            return AgentKey::load(path);
        }
        let key = AgentKey::generate()?;
        key.save(path)?;
        Ok(key)
    }

    /// Parses a private P-256 JWK; checks that `x`/`y` match `d`.
    pub fn from_jwk_json(bytes: &[u8]) -> Result<AgentKey> {
        let jwk: PrivateJwk = serde_json::from_slice(bytes)
            .map_err(|e| Error::Key(format!("not a private EC JWK: {e}")))?;
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return Err(Error::Key("only EC P-256 keys are supported".into()));
        }
        let d = b64::decode(&jwk.d, agentauth_core::ErrorCode::JwkInvalid)
            .map_err(|_| Error::Key("d is not base64url".into()))?;
        let key = SigningKey::from_scalar(&d)
            .map_err(|e| Error::Key(format!("bad private key: {}", e.message)))?;
        let key = AgentKey::from_signing_key(key)?;
        if key.public.x != jwk.x || key.public.y != jwk.y {
            return Err(Error::Key(
                "the public coordinates do not match the private key".into(),
            ));
        }
        Ok(key)
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Key(format!(
            "key file {} has mode {mode:03o}: others can read the agent's private key; \
             run `chmod 600 {}` (and consider the key compromised if it was shared)",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path, _: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentKey({})", self.thumbprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_keys_are_0600_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.jwk");
        let key = AgentKey::generate().unwrap();
        key.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = AgentKey::load(&path).unwrap();
        assert_eq!(loaded.thumbprint(), key.thumbprint());
        assert!(
            key.save(&path).is_err(),
            "an existing key is never overwritten"
        );
        assert!(!format!("{key:?}").contains(&b64::encode(key.key.to_scalar())));
    }

    #[cfg(unix)]
    #[test]
    fn group_or_world_readable_keys_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.jwk");
        AgentKey::generate().unwrap().save(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = AgentKey::load(&path).unwrap_err();
            assert!(matches!(error, Error::Key(_)), "{error}");
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        AgentKey::load(&path).unwrap();
    }

    #[test]
    fn mismatched_or_public_only_jwks_are_refused() {
        let a = AgentKey::generate().unwrap();
        let b = AgentKey::generate().unwrap();
        let forged = serde_json::json!({"kty": "EC", "crv": "P-256", "x": a.public.x,
            "y": a.public.y, "d": b64::encode(b.key.to_scalar())});
        assert!(AgentKey::from_jwk_json(forged.to_string().as_bytes()).is_err());
        let public = serde_json::to_vec(a.public_jwk()).unwrap();
        assert!(AgentKey::from_jwk_json(&public).is_err());
    }
}
