//! `agentauth root-key …`: the root signing key, for installing on a cluster.
//!
//! Every verifier pins the root key's public JWK (the chart's
//! `rootKey.publicJwk`), so an operator of AgentAuth needs it in hand before
//! the first install: `generate` makes a local root key and prints its JWK;
//! `jwk` prints the JWK of an existing key, local or in AWS KMS.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agentauth_signer::{AwsKmsConfig, AwsKmsSigner, LocalSigner, Signer};

/// `agentauth root-key` subcommands.
#[derive(clap::Subcommand)]
pub enum RootKeyCommand {
    /// Generate a new P-256 root key into FILE (PEM, mode 0600; never
    /// replaces an existing file) and print its public JWK.
    Generate {
        /// Where to write the key, e.g. root-key.pem.
        file: PathBuf,
    },
    /// Print the public JWK of the root key, to pin in every verifier.
    Jwk(JwkArgs),
}

/// Where the root key is: one of --file or --kms-key-id.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["file", "kms_key_id"])))]
pub struct JwkArgs {
    /// A local key file (PEM), as the operator's --root-key-file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// An ECC_NIST_P256 key in AWS KMS (id, ARN or alias), as the
    /// operator's --kms-key-id; credentials come from the AWS default chain.
    #[arg(long, env = "AGENTAUTH_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// The AWS region of the KMS key.
    #[arg(long, env = "AGENTAUTH_KMS_REGION")]
    pub kms_region: Option<String>,
    /// Another endpoint than AWS's own.
    #[arg(long, env = "AGENTAUTH_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,
}

/// Runs one `root-key` subcommand.
pub fn main(command: RootKeyCommand) -> ExitCode {
    let result = match command {
        RootKeyCommand::Generate { file } => generate(&file),
        RootKeyCommand::Jwk(args) => jwk(&args),
    };
    match result {
        Ok(jwk) => {
            println!("{jwk}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("agentauth root-key: {message}");
            ExitCode::FAILURE
        }
    }
}

fn generate(file: &Path) -> Result<String, String> {
    if file.exists() {
        return Err(format!(
            "{} exists; a root key is never replaced (tokens and verifiers depend on it). \
             Choose another file, or print its JWK with `agentauth root-key jwk --file {}`",
            file.display(),
            file.display()
        ));
    }
    let signer = LocalSigner::load_or_generate(file).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} (mode 0600). Store it as a Secret, e.g.\n  kubectl -n agentauth-system create secret generic \
         agentauth-root-key --from-file=root-key.pem={}\nand set the chart's rootKey.publicJwk to:",
        file.display(),
        file.display()
    );
    public_jwk(&signer)
}

fn jwk(args: &JwkArgs) -> Result<String, String> {
    if let Some(file) = &args.file {
        let signer = LocalSigner::from_file(file).map_err(|e| e.to_string())?;
        return public_jwk(&signer);
    }
    let key_id = args.kms_key_id.as_deref().unwrap_or_default();
    let config = AwsKmsConfig {
        region: args.kms_region.clone(),
        endpoint_url: args.kms_endpoint.clone(),
        ..AwsKmsConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let signer = runtime
        .block_on(AwsKmsSigner::connect(&config, key_id))
        .map_err(|e| e.to_string())?;
    public_jwk(&signer)
}

fn public_jwk(signer: &dyn Signer) -> Result<String, String> {
    serde_json::to_string(signer.public_jwk()).map_err(|e| e.to_string())
}
