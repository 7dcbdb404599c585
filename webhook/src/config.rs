//! The webhook's configuration: flags with environment fallbacks (DESIGN
//! §9). `agentauth webhook --help` lists everything.
//!
//! The relying party (`--rp-id`, `--approval-origin`) must be the operator's:
//! both verify the same passkey assertions, and they share the flags'
//! environment variables so one setting serves both
//! ([`agentauth_service::rp::RelyingParty`], flattened into each).

use std::net::SocketAddr;
use std::path::PathBuf;

use agentauth_service::rp::RelyingParty;

/// The service account the operator runs as in the Helm chart.
pub const DEFAULT_OPERATOR_USERNAME: &str =
    "system:serviceaccount:agentauth-system:agentauth-operator";

/// `agentauth webhook` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookConfig {
    /// Address the HTTPS server (admission, /metrics, health) listens on.
    #[arg(
        long,
        env = "AGENTAUTH_WEBHOOK_LISTEN",
        default_value = "127.0.0.1:8443"
    )]
    pub listen: SocketAddr,

    /// PEM file of the serving certificate (chain), e.g. from cert-manager.
    /// Re-read when it changes.
    #[arg(long, env = "AGENTAUTH_WEBHOOK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the serving certificate's private key (PKCS#8, SEC1 or PKCS#1).
    #[arg(long, env = "AGENTAUTH_WEBHOOK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Generate a CA and a serving certificate in memory instead (development
    /// and tests); the CA bundle is printed, and written to --ca-bundle-out.
    #[arg(long, env = "AGENTAUTH_WEBHOOK_SELF_SIGNED", default_value_t = false,
          conflicts_with_all = ["tls_cert", "tls_key"])]
    pub self_signed: bool,

    /// DNS names of the self-signed serving certificate besides 127.0.0.1 and
    /// localhost (repeat the flag, or comma-separate).
    #[arg(
        long = "self-signed-dns-name",
        env = "AGENTAUTH_WEBHOOK_DNS_NAMES",
        value_delimiter = ',',
        default_value = "agentauth-webhook,agentauth-webhook.agentauth-system,agentauth-webhook.agentauth-system.svc"
    )]
    pub self_signed_dns_names: Vec<String>,

    /// Where to write the self-signed CA certificate (PEM), for the
    /// `caBundle` of the ValidatingWebhookConfiguration.
    #[arg(long, env = "AGENTAUTH_WEBHOOK_CA_BUNDLE_OUT")]
    pub ca_bundle_out: Option<PathBuf>,

    /// The Kubernetes username of the operator (request.userInfo.username):
    /// the only identity that may record approvals, grant phases and
    /// expiries, passkeys and key thumbprints in status.
    #[arg(long, env = "AGENTAUTH_OPERATOR_USERNAME", default_value = DEFAULT_OPERATOR_USERNAME)]
    pub operator_username: String,

    /// The WebAuthn relying party of approvals (`--rp-id`,
    /// `--approval-origin`): the operator's.
    #[command(flatten)]
    pub rp: RelyingParty,
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// Certificate and key files.
    Files {
        /// The certificate chain (PEM).
        cert: PathBuf,
        /// The private key (PEM).
        key: PathBuf,
    },
    /// A CA and serving certificate generated at start.
    SelfSigned {
        /// DNS names besides `127.0.0.1` and `localhost`.
        dns_names: Vec<String>,
    },
}

impl WebhookConfig {
    /// Checks what clap cannot: a certificate source is chosen, and the
    /// identities and origins are not blank.
    pub fn validate(&self) -> Result<(), String> {
        self.tls_source()?;
        if self.operator_username.trim().is_empty() {
            return Err("--operator-username must name the operator's Kubernetes user".into());
        }
        if self.rp.rp_id.trim().is_empty() {
            return Err("--rp-id must not be empty".into());
        }
        if self.rp.approval_origins.iter().all(|o| o.trim().is_empty()) {
            return Err("at least one --approval-origin is needed".into());
        }
        Ok(())
    }

    /// The certificate source the flags choose.
    pub fn tls_source(&self) -> Result<TlsSource, String> {
        match (&self.tls_cert, &self.tls_key, self.self_signed) {
            (Some(cert), Some(key), false) => Ok(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None, true) => Ok(TlsSource::SelfSigned {
                dns_names: self
                    .self_signed_dns_names
                    .iter()
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect(),
            }),
            (None, None, false) => Err(
                "the apiserver only calls webhooks over HTTPS: give --tls-cert and --tls-key, \
                 or --self-signed for development"
                    .into(),
            ),
            _ => Err("give either --tls-cert with --tls-key, or --self-signed, not both".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: WebhookConfig,
    }

    fn parse(args: &[&str]) -> Result<WebhookConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("webhook").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.config.validate()?;
        Ok(cli.config)
    }

    #[test]
    fn a_certificate_source_is_required_and_unique() {
        let e = parse(&[]).unwrap_err();
        assert!(e.contains("--self-signed"), "{e}");
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem", "--self-signed"]).is_err());
        let files = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert!(matches!(files.tls_source(), Ok(TlsSource::Files { .. })));
        let dev = parse(&["--self-signed", "--self-signed-dns-name", "a,b"]).unwrap();
        assert_eq!(
            dev.tls_source(),
            Ok(TlsSource::SelfSigned {
                dns_names: vec!["a".into(), "b".into()]
            })
        );
    }

    #[test]
    fn identities_must_not_be_blank() {
        let e = parse(&["--self-signed", "--operator-username", " "]).unwrap_err();
        assert!(e.contains("--operator-username"), "{e}");
        let ok = parse(&["--self-signed"]).unwrap();
        assert_eq!(ok.operator_username, DEFAULT_OPERATOR_USERNAME);
    }
}
