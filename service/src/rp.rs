//! The WebAuthn relying party (the approval UI's passkeys): the operator
//! and the webhook verify the same assertions, so they take the same flags
//! with the same environment variables, and one setting serves both.

/// `--rp-id` and `--approval-origin`, flattened into each service's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct RelyingParty {
    /// WebAuthn relying party id that approvals are made for.
    #[arg(long, env = "AGENTAUTH_RP_ID", default_value = "localhost")]
    pub rp_id: String,

    /// Origins the approval UI is served from (repeat the flag, or comma-separate).
    #[arg(
        long = "approval-origin",
        env = "AGENTAUTH_APPROVAL_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:8080"
    )]
    pub approval_origins: Vec<String>,
}
