//! Choosing the root key from flags: one set of flags (with environment
//! fallbacks) for every process that signs with it, the operator (tokens,
//! issuing-key certificates) and the audit archiver (checkpoints).

use std::path::PathBuf;
use std::sync::Arc;

use crate::{
    AwsKmsConfig, AwsKmsSigner, LocalSigner, Signer, SignerError, VaultAuth, VaultTransitConfig,
    VaultTransitSigner,
};

/// Which key signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SignerKind {
    /// A P-256 key in a PEM file (or a mounted Secret).
    Local,
    /// An `ECC_NIST_P256` key in AWS KMS.
    AwsKms,
    /// An `EC_SIGN_P256_SHA256` key version in Google Cloud KMS (a build
    /// with the `gcp-kms` feature).
    GcpKms,
    /// An `ecdsa-p256` key in Vault's (or OpenBao's) Transit engine.
    VaultTransit,
}

/// The root key's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct SignerArgs {
    /// Which key signs.
    #[arg(long, env = "AGENTAUTH_SIGNER", value_enum, default_value = "local")]
    pub signer: SignerKind,

    /// PEM file of the local root key (mode 0600 or stricter).
    #[arg(
        long,
        env = "AGENTAUTH_ROOT_KEY_FILE",
        default_value = "/var/run/agentauth/root-key.pem"
    )]
    pub root_key_file: PathBuf,

    /// Create the local root key file when it does not exist (development).
    #[arg(long, env = "AGENTAUTH_GENERATE_ROOT_KEY", default_value_t = false)]
    pub generate_root_key: bool,

    /// AWS KMS key id, ARN or alias (with `--signer aws-kms`).
    #[arg(long, env = "AGENTAUTH_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,

    /// AWS KMS endpoint override (LocalStack, moto).
    #[arg(long, env = "AGENTAUTH_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,

    /// AWS region of the KMS key.
    #[arg(long, env = "AGENTAUTH_KMS_REGION")]
    pub kms_region: Option<String>,

    /// Google Cloud KMS key version,
    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`
    /// (with `--signer gcp-kms`; credentials: Application Default Credentials).
    #[arg(long, env = "AGENTAUTH_GCP_KMS_KEY_VERSION")]
    pub gcp_kms_key_version: Option<String>,

    /// Another Cloud KMS endpoint than Google's (regional, Private Service Connect).
    #[arg(long, env = "AGENTAUTH_GCP_KMS_ENDPOINT")]
    pub gcp_kms_endpoint: Option<String>,

    /// Vault address, e.g. `https://vault.vault.svc:8200` (with `--signer vault-transit`).
    #[arg(long, env = "VAULT_ADDR")]
    pub vault_addr: Option<String>,

    /// The Transit key's name.
    #[arg(long, env = "AGENTAUTH_VAULT_KEY")]
    pub vault_key: Option<String>,

    /// The Transit engine's mount path.
    #[arg(long, env = "AGENTAUTH_VAULT_TRANSIT_MOUNT", default_value = "transit")]
    pub vault_transit_mount: String,

    /// Log in with Vault's Kubernetes auth method as this role (the pod's
    /// service-account token); otherwise `VAULT_TOKEN` is used.
    #[arg(long, env = "AGENTAUTH_VAULT_ROLE")]
    pub vault_role: Option<String>,

    /// A Vault token (development, or one an agent injects and renews).
    #[arg(long, env = "VAULT_TOKEN", hide_env_values = true)]
    pub vault_token: Option<String>,

    /// A Vault Enterprise / OpenBao namespace.
    #[arg(long, env = "VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,

    /// PEM CA certificates to trust for Vault's TLS certificate.
    #[arg(long, env = "VAULT_CACERT")]
    pub vault_ca_cert: Option<PathBuf>,
}

impl SignerArgs {
    /// Checks flag combinations clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self.signer {
            SignerKind::Local => {}
            SignerKind::AwsKms if self.kms_key_id.is_none() => {
                return Err("--signer aws-kms needs --kms-key-id (AGENTAUTH_KMS_KEY_ID)".into());
            }
            SignerKind::AwsKms => {}
            SignerKind::GcpKms if !cfg!(feature = "gcp-kms") => {
                return Err(
                    "--signer gcp-kms: this build has no Google Cloud KMS support; \
                            build agentauth with `--features gcp-kms` (the image has it)"
                        .into(),
                );
            }
            SignerKind::GcpKms if self.gcp_kms_key_version.is_none() => {
                return Err(
                    "--signer gcp-kms needs --gcp-kms-key-version (AGENTAUTH_GCP_KMS_KEY_VERSION)"
                        .into(),
                );
            }
            SignerKind::GcpKms => {}
            SignerKind::VaultTransit => {
                if self.vault_addr.is_none() || self.vault_key.is_none() {
                    return Err(
                        "--signer vault-transit needs --vault-addr (VAULT_ADDR) and \
                                --vault-key (AGENTAUTH_VAULT_KEY)"
                            .into(),
                    );
                }
                if self.vault_role.is_none() && self.vault_token.is_none() {
                    return Err(
                        "--signer vault-transit needs --vault-role (Kubernetes auth) \
                                or VAULT_TOKEN"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Opens the chosen key (for a KMS: fetches and checks its public key).
    pub async fn open(&self) -> Result<Arc<dyn Signer>, SignerError> {
        self.validate().map_err(SignerError::Load)?;
        Ok(match self.signer {
            SignerKind::Local if self.generate_root_key => {
                Arc::new(LocalSigner::load_or_generate(&self.root_key_file)?)
            }
            SignerKind::Local => Arc::new(LocalSigner::from_file(&self.root_key_file)?),
            SignerKind::AwsKms => {
                let kms = AwsKmsConfig {
                    region: self.kms_region.clone(),
                    endpoint_url: self.kms_endpoint.clone(),
                    ..AwsKmsConfig::default()
                };
                let key_id = self.kms_key_id.as_deref().unwrap_or_default();
                Arc::new(AwsKmsSigner::connect(&kms, key_id).await?)
            }
            SignerKind::GcpKms => self.open_gcp_kms().await?,
            SignerKind::VaultTransit => {
                let auth = match (&self.vault_role, &self.vault_token) {
                    (Some(role), _) => VaultAuth::kubernetes(role.clone()),
                    (None, token) => VaultAuth::Token(token.clone().unwrap_or_default()),
                };
                let config = VaultTransitConfig {
                    mount: self.vault_transit_mount.clone(),
                    namespace: self.vault_namespace.clone(),
                    ca_bundle: self.vault_ca_cert.clone(),
                    ..VaultTransitConfig::new(
                        self.vault_addr.clone().unwrap_or_default(),
                        self.vault_key.clone().unwrap_or_default(),
                        auth,
                    )
                };
                Arc::new(VaultTransitSigner::connect(&config).await?)
            }
        })
    }

    #[cfg(feature = "gcp-kms")]
    async fn open_gcp_kms(&self) -> Result<Arc<dyn Signer>, SignerError> {
        let config = crate::GcpKmsConfig {
            endpoint: self.gcp_kms_endpoint.clone(),
            ..crate::GcpKmsConfig::new(self.gcp_kms_key_version.clone().unwrap_or_default())
        };
        Ok(Arc::new(crate::GcpKmsSigner::connect(&config).await?))
    }

    #[cfg(not(feature = "gcp-kms"))]
    async fn open_gcp_kms(&self) -> Result<Arc<dyn Signer>, SignerError> {
        // validate() refuses it first; this is the same answer.
        Err(SignerError::Load(
            "--signer gcp-kms: this build has no Google Cloud KMS support".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        root: SignerArgs,
    }

    fn parse(args: &[&str]) -> SignerArgs {
        let argv = std::iter::once("agentauth").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.root)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn each_kms_names_the_flag_it_is_missing() {
        for (args, missing) in [
            (&["--signer", "aws-kms"][..], "--kms-key-id"),
            (&["--signer", "vault-transit"][..], "--vault-addr"),
            (
                &[
                    "--signer",
                    "vault-transit",
                    "--vault-addr",
                    "http://v",
                    "--vault-key",
                    "k",
                ][..],
                "VAULT_TOKEN",
            ),
        ] {
            let error = parse(args).validate().unwrap_err();
            assert!(error.contains(missing), "{args:?}: {error}");
        }
        let gcp = parse(&["--signer", "gcp-kms"]).validate().unwrap_err();
        let expected = if cfg!(feature = "gcp-kms") {
            "--gcp-kms-key-version"
        } else {
            "--features gcp-kms"
        };
        assert!(gcp.contains(expected), "{gcp}");
    }

    #[test]
    fn complete_flags_are_accepted() {
        for args in [
            &[][..],
            &["--signer", "aws-kms", "--kms-key-id", "alias/root"],
            &[
                "--signer",
                "vault-transit",
                "--vault-addr",
                "http://127.0.0.1:8200",
                "--vault-key",
                "root",
                "--vault-role",
                "agentauth",
            ],
        ] {
            assert_eq!(parse(args).validate(), Ok(()), "{args:?}");
        }
    }
}
