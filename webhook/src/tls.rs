//! The serving certificate: from PEM files (re-read when they change, so a
//! certificate rotated by cert-manager is picked up without a restart), or a
//! CA and serving certificate generated in memory for development and tests.
//!
//! ```text
//!  --tls-cert/--tls-key ──▶ FileCert (checks the files' mtimes every 10 s) ─┐
//!  --self-signed ──▶ SelfSigned {CA, serving cert} ──▶ fixed CertifiedKey ──┴▶ rustls ServerConfig
//!                     └─ ca_pem: the caBundle the apiserver must trust          (aws-lc-rs, TLS 1.2+,
//!                                                                                ALPN http/1.1)
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(10);

/// Why a serving certificate could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating the self-signed CA or serving certificate failed.
    #[error("failed to generate the self-signed certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate or key file could not be read or parsed.
    #[error("failed to read the {what} from {path}: {message}")]
    Pem {
        /// Which file: "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// rustls refused the key, the certificate or the configuration.
    #[error("the TLS configuration is invalid: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A CA and a serving certificate it signed, made fresh in memory.
#[derive(Clone)]
pub struct SelfSigned {
    /// The CA certificate (PEM): the `caBundle` clients must trust.
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    /// The serving certificate's private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// Generates a CA and a serving certificate for `127.0.0.1`, `localhost`
    /// and `dns_names` (ECDSA P-256 keys). The CA key is dropped: nothing
    /// else is ever signed with it.
    pub fn generate(dns_names: &[String]) -> Result<Self, TlsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "agentauth-webhook-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, ca_key);

        let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        for name in dns_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "agentauth-webhook");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(SelfSigned {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The serving certificate and key, ready for rustls.
    pub(crate) fn certified_key(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let source = Path::new("(self-signed)");
        certified_key(
            parse_certs(self.cert_pem.as_bytes(), source)?,
            parse_key(self.key_pem.as_bytes(), source)?,
        )
    }
}

/// The process's crypto provider: aws-lc-rs, as everywhere in the workspace.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls server configuration serving what `resolver` resolves, HTTP/1.1 only.
pub(crate) fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A fixed certificate (the self-signed one).
#[derive(Debug)]
pub(crate) struct FixedCert(pub(crate) Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A certificate from files, re-read when their modification times change.
/// A rotation caught half-written (a key that does not match the
/// certificate) keeps serving the previous pair and retries at the next check.
#[derive(Debug)]
pub(crate) struct FileCert {
    cert: PathBuf,
    key: PathBuf,
    state: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    mtimes: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl FileCert {
    /// Loads the pair once; a failure here stops the start.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let mtimes = (mtime(cert), mtime(key));
        let loaded = load_files(cert, key)?;
        Ok(FileCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: RwLock::new(Loaded {
                key: loaded,
                mtimes,
                checked: Instant::now(),
            }),
        })
    }

    fn refresh_if_due(&self) {
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if state.checked.elapsed() < RELOAD_CHECK {
                return;
            }
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() < RELOAD_CHECK {
            return;
        }
        state.checked = Instant::now();
        let mtimes = (mtime(&self.cert), mtime(&self.key));
        if mtimes == state.mtimes {
            return;
        }
        match load_files(&self.cert, &self.key) {
            Ok(key) => {
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                state.key = key;
                state.mtimes = mtimes;
            }
            Err(error) => {
                tracing::warn!(%error, "the changed certificate files do not load; serving the previous ones");
            }
        }
    }
}

impl ResolvesServerCert for FileCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh_if_due();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Some(state.key.clone())
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |path: &Path, what: &'static str| {
        std::fs::read(path).map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    };
    certified_key(
        parse_certs(&read(cert, "certificate")?, cert)?,
        parse_key(&read(key, "private key")?, key)?,
    )
}

fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::Pem {
        what: "certificate",
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what: "private key",
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    Ok(Arc::new(CertifiedKey::from_der(certs, key, &provider())?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn self_signed_pairs_load_and_files_reload_only_when_valid() {
        let a = SelfSigned::generate(&["webhook.example".into()]).unwrap();
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        a.certified_key().unwrap();
        let dir =
            std::env::temp_dir().join(format!("agentauth-webhook-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert, &a.cert_pem).unwrap();
        std::fs::write(&key, &a.key_pem).unwrap();
        let files = FileCert::load(&cert, &key).unwrap();
        // A mismatched pair is refused at load.
        let b = SelfSigned::generate(&[]).unwrap();
        std::fs::write(&key, &b.key_pem).unwrap();
        assert!(matches!(
            FileCert::load(&cert, &key),
            Err(TlsError::Rustls(_))
        ));
        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(
            FileCert::load(&cert, &key),
            Err(TlsError::Pem { .. })
        ));
        drop(files);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
