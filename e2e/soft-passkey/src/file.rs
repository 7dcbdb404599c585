//! The passkey file: `{"key", "credentialId", "counter"}` as JSON, the key
//! a base64url P-256 scalar. Written with mode 0600 (created so, never
//! widened), because whoever reads it can approve as its Approver.

use std::io::Write;
use std::path::Path;

use agentauth_core::{ErrorCode, b64};
use serde_json::{Value, json};

use crate::SoftPasskeyError;

fn fail(path: &Path, what: impl std::fmt::Display) -> SoftPasskeyError {
    SoftPasskeyError::File(format!("{}: {what}", path.display()))
}

/// Writes the file (replacing it).
pub fn save(
    path: &Path,
    scalar: &[u8; 32],
    credential_id: &[u8],
    counter: u32,
) -> Result<(), SoftPasskeyError> {
    let body = json!({
        "warning": "software passkey for tests and local development only",
        "key": b64::encode(scalar),
        "credentialId": b64::encode(credential_id),
        "counter": counter,
    });
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| fail(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(path, e))?;
    }
    file.write_all(body.to_string().as_bytes())
        .map_err(|e| fail(path, e))
}

/// Reads the file: `(scalar, credential id, counter)`.
pub fn load(path: &Path) -> Result<([u8; 32], Vec<u8>, u32), SoftPasskeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| fail(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| fail(path, e))?;
    let field = |name: &str| -> Result<Vec<u8>, SoftPasskeyError> {
        let s = value[name]
            .as_str()
            .ok_or_else(|| fail(path, format!("no {name}")))?;
        b64::decode(s, ErrorCode::RequestInvalid).map_err(|e| fail(path, e))
    };
    let scalar: [u8; 32] = field("key")?
        .try_into()
        .map_err(|_| fail(path, "the key is not 32 bytes"))?;
    let counter = value["counter"]
        .as_u64()
        .and_then(|c| u32::try_from(c).ok())
        .ok_or_else(|| fail(path, "no counter"))?;
    Ok((scalar, field("credentialId")?, counter))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::SoftApprover;

    #[test]
    fn a_saved_passkey_loads_with_its_key_id_and_counter_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passkey.json");
        let a = SoftApprover::new("http://127.0.0.1:1", "http://localhost:8080").unwrap();
        a.save(&path).unwrap();
        let b = SoftApprover::load(&path, "http://127.0.0.1:1", "http://localhost:8080").unwrap();
        assert_eq!(a.credential_id(), b.credential_id());
        assert_eq!(a.counter(), b.counter());
        assert_eq!(a.key.to_scalar(), b.key.to_scalar());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
