//! The local signer: key files and their permissions, generation on first
//! start, PEM formats, and tokens that `agentauth_core` accepts.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Instant;

use agentauth_core::ErrorCode;
use agentauth_core::es256::SigningKey;
use agentauth_core::token;
use agentauth_signer::{LocalSigner, Signer, SignerError, sign_token};
use common::{T0, TestResult, claims, expect, pinned};
use p256::pkcs8::LineEnding;

fn write_key(path: &Path, mode: u32) -> LocalSigner {
    let signer = LocalSigner::generate().unwrap();
    fs::write(path, signer.to_pem().unwrap().as_bytes()).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    signer
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_files_readable_by_group_or_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.pem");
    for insecure in [0o644, 0o640, 0o604, 0o660, 0o666] {
        write_key(&path, insecure);
        match LocalSigner::from_file(&path) {
            Err(SignerError::InsecureKeyFile { mode, .. }) => assert_eq!(mode, insecure),
            other => panic!("mode {insecure:o}: expected a refusal, got {other:?}"),
        }
        let message = LocalSigner::from_file(&path).unwrap_err().to_string();
        assert!(message.contains("chmod 600"), "{message}");
        fs::remove_file(&path).unwrap();
    }
    // Refused for generation too: an existing insecure file is never replaced.
    write_key(&path, 0o644);
    assert!(matches!(
        LocalSigner::load_or_generate(&path),
        Err(SignerError::InsecureKeyFile { .. })
    ));
}

#[test]
fn key_files_private_to_the_owner_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.pem");
    for secure in [0o600, 0o400] {
        let written = write_key(&path, secure);
        let loaded = LocalSigner::from_file(&path).unwrap();
        assert_eq!(loaded.key_id(), written.key_id());
        fs::remove_file(&path).unwrap();
    }
}

#[test]
fn a_key_is_generated_on_first_start_and_reused_on_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing-key.pem");
    let first = LocalSigner::load_or_generate(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let pem = fs::read_to_string(&path).unwrap();
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "PKCS#8 PEM"
    );
    let second = LocalSigner::load_or_generate(&path).unwrap();
    assert_eq!(first.key_id(), second.key_id());
    assert_eq!(first.public_jwk(), second.public_jwk());
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn racing_first_starts_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing-key.pem");
    let kids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| LocalSigner::load_or_generate(&path).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().key_id().to_owned())
            .collect()
    });
    assert!(kids.iter().all(|kid| kid == &kids[0]), "{kids:?}");
    let on_disk = LocalSigner::from_file(&path).unwrap();
    assert_eq!(on_disk.key_id(), kids[0]);
}

#[test]
fn missing_files_and_folders_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let err = LocalSigner::from_file(&missing).unwrap_err();
    assert!(matches!(err, SignerError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.pem"), "{err}");
    let in_missing_folder = dir.path().join("no-such-dir/key.pem");
    let err = LocalSigner::load_or_generate(&in_missing_folder).unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let err = LocalSigner::from_file(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn secret_data_in_pkcs8_or_sec1_pem_is_accepted_and_anything_else_refused() {
    let pkcs8 = LocalSigner::generate().unwrap().to_pem().unwrap();
    let secret = {
        use p256::pkcs8::DecodePrivateKey as _;
        p256::SecretKey::from_pkcs8_pem(&pkcs8).unwrap()
    };
    let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
    let a = LocalSigner::from_pem(pkcs8.as_bytes()).unwrap();
    let b = LocalSigner::from_pem(sec1.as_bytes()).unwrap();
    assert_eq!(a.key_id(), b.key_id());
    assert_eq!(*a.to_pem().unwrap(), *pkcs8);

    for garbage in [
        &b"not a key"[..],
        b"\xff\xfe",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        assert!(matches!(
            LocalSigner::from_pem(garbage),
            Err(SignerError::Load(_))
        ));
    }
}

#[test]
fn debug_output_never_shows_the_private_key() {
    let signer = LocalSigner::generate().unwrap();
    let pem = signer.to_pem().unwrap();
    let debug = format!("{signer:?}");
    assert!(debug.contains(signer.key_id()), "{debug}");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!debug.contains(&body[..16]), "{debug}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
}

#[tokio::test]
async fn a_locally_signed_token_verifies() -> TestResult {
    let signer = LocalSigner::new(SigningKey::generate())?;
    let token = sign_token(&signer, &claims(T0, 300)).await?;
    let signed = token::verify(&token, &pinned(&signer), &expect(), T0)?;
    assert_eq!(signed.kid, signer.key_id());
    // Another key under the same kid: the signature check refuses it.
    let other = LocalSigner::generate()?;
    let forged = (signer.key_id().to_owned(), other.verifying_key().clone());
    let err = token::verify(&token, &forged, &expect(), T0).unwrap_err();
    assert_eq!(err.code, ErrorCode::TokenSignatureInvalid);
    // Invalid claims are refused before signing.
    let err = sign_token(&signer, &claims(T0, 7200)).await.unwrap_err();
    assert!(matches!(err, SignerError::Protocol(e) if e.code == ErrorCode::TokenClaimsInvalid));

    let started = Instant::now();
    let rounds = 200;
    for i in 0..rounds {
        sign_token(&signer, &claims(T0 + i, 300)).await?;
    }
    eprintln!(
        "local sign_token: {:?} per token (mean of {rounds})",
        started.elapsed() / u32::try_from(rounds)?
    );
    Ok(())
}
