//! Setting the approval API up: the WebAuthn relying party from the
//! operator's `--rp-id` and `--approval-origin`s, and the state every
//! handler shares ([`Approvals`]).

use std::sync::Arc;

use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

use super::ceremony::Sessions;
use super::config::ApprovalsConfig;
use super::session::CEREMONY_TIMEOUT;
use crate::context::Context;

/// Why the approval API could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An approval origin is not a URL, or the RP id is not its domain.
    #[error("invalid relying party (--rp-id {rp_id:?}, --approval-origin {origin:?}): {reason}")]
    RelyingParty {
        /// The RP id.
        rp_id: String,
        /// The origin that failed.
        origin: String,
        /// Why.
        reason: String,
    },
}

/// What every approval API handler shares.
pub struct Approvals {
    /// Caches, clients, audit, metrics, clock, relying party.
    pub ctx: Arc<Context>,
    /// Settings.
    pub config: ApprovalsConfig,
    /// Sessions of this replica.
    pub sessions: Sessions,
    /// WebAuthn relying party (enrollment and login ceremonies).
    pub webauthn: Webauthn,
}

impl Approvals {
    /// Sets the API up for the context's relying party.
    pub fn new(ctx: Arc<Context>, config: ApprovalsConfig) -> Result<Arc<Self>, SetupError> {
        let rp = &ctx.relying_party;
        let fail = |origin: &str, reason: String| SetupError::RelyingParty {
            rp_id: rp.id.clone(),
            origin: origin.to_owned(),
            reason,
        };
        let mut origins = Vec::with_capacity(rp.origins.len());
        for origin in &rp.origins {
            origins.push(Url::parse(origin).map_err(|e| fail(origin, e.to_string()))?);
        }
        let first = origins
            .first()
            .ok_or_else(|| fail("", "no approval origin is configured".into()))?;
        let mut builder = WebauthnBuilder::new(&rp.id, first)
            .map_err(|e| fail(first.as_str(), e.to_string()))?
            .rp_name("AgentAuth approvals")
            .timeout(CEREMONY_TIMEOUT);
        for origin in origins.iter().skip(1) {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .build()
            .map_err(|e| fail(first.as_str(), e.to_string()))?;
        let sessions = Sessions::new(ctx.clock.clone(), &config);
        Ok(Arc::new(Approvals {
            ctx,
            config,
            sessions,
            webauthn,
        }))
    }
}
