//! The secrets of one control plane, made fresh per start: a CA, the
//! apiserver's serving certificate for `127.0.0.1`/`localhost`, the
//! service-account signing key and the admin bearer token.
//!
//! All keys are ECDSA P-256 (rcgen's default); the apiserver accepts it both
//! for TLS and for signing service-account tokens (ES256).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::Error;

/// PEM texts for the files the apiserver is started with.
pub(crate) struct Pki {
    /// The CA certificate: trusted by the kubeconfig, `--client-ca-file` of the apiserver.
    pub(crate) ca_cert_pem: String,
    /// The apiserver's serving certificate, signed by the CA.
    pub(crate) serving_cert_pem: String,
    /// The key of the serving certificate (PKCS#8).
    pub(crate) serving_key_pem: String,
    /// The service-account token signing key (PKCS#8).
    pub(crate) service_account_key_pem: String,
    /// Its public key (SPKI): the apiserver reads no PKCS#8 private key as a verification key.
    pub(crate) service_account_public_key_pem: String,
}

impl Pki {
    /// Generates a CA and the certificates and keys signed by it.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "agentauth-testenv-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);

        let mut serving_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate()?;
        let serving_cert = serving_params.signed_by(&serving_key, &ca)?;

        let service_account_key = KeyPair::generate()?;

        Ok(Self {
            ca_cert_pem: ca_cert.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_key_pem: service_account_key.public_key_pem(),
        })
    }
}

/// A random bearer token: 32 bytes from the OS, base64url (safe in the token CSV file).
pub(crate) fn random_token() -> String {
    let mut bytes = [0_u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard base64 of a PEM text, for `certificate-authority-data` in a kubeconfig.
pub(crate) fn base64_standard(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}
