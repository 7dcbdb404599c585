//! `agentauth root-key …`: the root signing key, for installing on a cluster.
//!
//! Every verifier pins the root key's public JWK (the chart's
//! `rootKey.publicJwk`), so an operator of AgentAuth needs it in hand before
//! the first install: `generate` makes a local root key and prints its JWK;
//! `jwk` prints the JWK of an existing key: a local file, or a KMS key by the
//! operator's own signer flags (AWS KMS, Google Cloud KMS, Vault Transit).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agentauth_signer::{LocalSigner, Signer, SignerArgs, SignerKind};

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
    Jwk(Box<JwkArgs>),
}

/// Where the root key is: a local file, or a KMS key by the operator's flags.
#[derive(clap::Args)]
pub struct JwkArgs {
    /// A local key file (PEM), as the operator's --root-key-file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Or a KMS key, by the same flags as the operator: `--kms-key-id`
    /// alone means AWS KMS; `--signer gcp-kms` or `--signer vault-transit`
    /// with theirs.
    #[command(flatten)]
    pub root: SignerArgs,
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
    let mut root = args.root.clone();
    if root.signer == SignerKind::Local {
        if root.kms_key_id.is_none() {
            return Err(
                "which key? Pass --file root-key.pem (a local key), --kms-key-id \
                        (AWS KMS), or --signer gcp-kms / vault-transit with their flags"
                    .into(),
            );
        }
        root.signer = SignerKind::AwsKms;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let signer = runtime.block_on(root.open()).map_err(|e| e.to_string())?;
    public_jwk(signer.as_ref())
}

fn public_jwk(signer: &dyn Signer) -> Result<String, String> {
    serde_json::to_string(signer.public_jwk()).map_err(|e| e.to_string())
}
