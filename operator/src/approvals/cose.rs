//! Passkeys between webauthn-rs and the Approver CRD: a registered
//! credential's COSE EC2 P-256 key becomes the `EcPublicJwk` stored in
//! `status.passkeys[].publicKey`, and a stored passkey becomes the
//! webauthn-rs credential a login is checked against.
//!
//! Only ES256 (COSE alg -7, EC2, P-256) is accepted: the webhook and the
//! operator verify approvals with core's ES256 verifier, so any other
//! algorithm is refused at enrollment with `passkey_unsupported`.

use agentauth_core::es256::VerifyingKey;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::{Error, ErrorCode, b64};
use serde_json::json;
use webauthn_rs::prelude::{COSEAlgorithm, COSEKeyType, Credential, ECDSACurve, Passkey};

/// The JWK of a registered passkey, and its credential id (base64url).
pub fn jwk_of(passkey: &Passkey) -> Result<(String, EcPublicJwk), Error> {
    let unsupported = |what: &str| {
        Error::new(
            ErrorCode::PasskeyUnsupported,
            format!("the passkey uses {what}; only ES256 (EC P-256) passkeys can approve grants"),
        )
    };
    let key = passkey.get_public_key();
    if key.type_ != COSEAlgorithm::ES256 {
        return Err(unsupported(&format!("algorithm {:?}", key.type_)));
    }
    let COSEKeyType::EC_EC2(ec) = &key.key else {
        return Err(unsupported("a key that is not an EC2 key"));
    };
    if ec.curve != ECDSACurve::SECP256R1 {
        return Err(unsupported(&format!("curve {:?}", ec.curve)));
    }
    let coordinate = |c: &[u8]| -> Result<[u8; 32], Error> {
        c.try_into()
            .map_err(|_| unsupported("a P-256 coordinate that is not 32 bytes"))
    };
    let x = coordinate(ec.x.as_ref())?;
    let y = coordinate(ec.y.as_ref())?;
    let key = VerifyingKey::from_coordinates(&x, &y)?;
    Ok((b64::encode(passkey.cred_id()), EcPublicJwk::from_key(&key)))
}

/// The webauthn-rs passkey of a stored one, for a login ceremony.
pub fn passkey_from(stored: &agentauth_crds::Passkey) -> Result<Passkey, Error> {
    let key = stored.public_key.to_public_key()?;
    let cred_id = b64::decode(&stored.credential_id, ErrorCode::PasskeyUnsupported)?;
    // Built through serde: webauthn-rs exposes the credential's field types
    // only through its proto crate; the JSON form is its documented storage
    // format.
    let credential = json!({
        "cred_id": b64::encode(cred_id),
        "cred": {"type_": "ES256", "key": {"EC_EC2": {
            "curve": "SECP256R1",
            "x": b64::encode(key.key.x()),
            "y": b64::encode(key.key.y()),
        }}},
        "counter": stored.sign_count,
        "transports": null,
        "user_verified": true,
        "backup_eligible": false,
        "backup_state": false,
        "registration_policy": "required",
        "extensions": {},
        "attestation": {"data": "None", "metadata": "None"},
        "attestation_format": "none",
    });
    let credential: Credential = serde_json::from_value(credential).map_err(|e| {
        Error::new(
            ErrorCode::PasskeyUnsupported,
            format!("the stored passkey cannot be used for login: {e}"),
        )
    })?;
    Ok(Passkey::from(credential))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use agentauth_core::es256::SigningKey;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn stored(jwk: EcPublicJwk) -> agentauth_crds::Passkey {
        agentauth_crds::Passkey {
            credential_id: b64::encode(b"credential-one"),
            public_key: jwk,
            sign_count: 7,
            created_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn jwk_to_cose_and_back_is_the_same_key_and_credential() {
        let key = SigningKey::generate().verifying_key().unwrap();
        let jwk = EcPublicJwk::from_key(&key);
        let passkey = passkey_from(&stored(jwk.clone())).unwrap();
        assert_eq!(passkey.cred_id().as_ref(), b"credential-one");
        let (id, back) = jwk_of(&passkey).unwrap();
        assert_eq!(back, jwk);
        assert_eq!(id, b64::encode(b"credential-one"));
        let COSEKeyType::EC_EC2(ec) = &passkey.get_public_key().key else {
            panic!("not EC2");
        };
        assert_eq!(ec.x.as_ref(), key.x());
        assert_eq!(ec.y.as_ref(), key.y());
    }

    #[test]
    fn non_es256_keys_are_refused() {
        let key = SigningKey::generate().verifying_key().unwrap();
        let passkey = passkey_from(&stored(EcPublicJwk::from_key(&key))).unwrap();
        let mut credential = Credential::from(passkey);
        credential.cred.type_ = COSEAlgorithm::ES384;
        let error = jwk_of(&Passkey::from(credential.clone())).unwrap_err();
        assert_eq!(error.code, ErrorCode::PasskeyUnsupported);
        credential.cred.type_ = COSEAlgorithm::ES256;
        if let COSEKeyType::EC_EC2(ec) = &mut credential.cred.key {
            ec.curve = ECDSACurve::SECP384R1;
        }
        let error = jwk_of(&Passkey::from(credential)).unwrap_err();
        assert_eq!(error.code, ErrorCode::PasskeyUnsupported);
    }
}
