//! What the token endpoint decides, without I/O: whether a grant may be used
//! now, how long its token lives, and the token's claims (DESIGN §5).
//!
//! ```text
//!  CapabilityGrant (cache) ──usable(now)──▶ Usable {uid, generation, expires_at}
//!                                               │
//!  Limits {default | requested, envelope maxTokenTtl, 1 h, grant expiry,
//!          issuing key's certificate} ──expiry(now)──▶ exp
//!                                               │
//!  agent, jkt, jti, env digest ──claims()───────▶ AccessTokenClaims ──▶ KeyHierarchy::sign_token
//! ```
//!
//! The requested lifetime (`expires_in`) replaces the configured default;
//! the caps then apply in any order, since each only lowers `exp`. Checks
//! that need the shared state (the revocation set) are the handler's.

use agentauth_core::approval::Decision;
use agentauth_core::capability::AuthorizationDetail;
use agentauth_core::token::{AccessTokenClaims, Confirmation, GrantRef, MAX_TOKEN_LIFETIME_SECS};
use agentauth_core::{Error, ErrorCode};
use agentauth_crds::{CapabilityGrant, GrantPhase};

/// A grant that may be used now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usable {
    /// `metadata.uid`.
    pub uid: String,
    /// The generation the approval signed.
    pub generation: i64,
    /// When the grant stops working, seconds since the epoch.
    pub expires_at: i64,
}

/// When the grant stops working: `spec.expiresAt`, or its creation time
/// plus `spec.duration` (as the grant controller computes it: fixed once the
/// grant exists), and never later than `status.expiresAt` when that is set.
/// A status writer can shorten a grant, never extend it.
pub fn grant_expiry(grant: &CapabilityGrant) -> Option<i64> {
    let from_spec = match &grant.spec.expires_at {
        Some(at) => Some(at.0.as_second()),
        None => {
            let created = grant
                .metadata
                .creation_timestamp
                .as_ref()?
                .0
                .as_millisecond();
            let duration = i64::try_from(grant.spec.duration?.as_millis()).ok()?;
            Some(created.saturating_add(duration).div_euclid(1000))
        }
    };
    let from_status = grant
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_ref())
        .map(|at| at.0.as_second());
    match (from_spec, from_status) {
        (Some(spec), Some(status)) => Some(spec.min(status)),
        (spec, status) => spec.or(status),
    }
}

/// Whether `grant` may be used at `now` by what Kubernetes says: approved
/// by a recorded human decision for its current generation, not revoked,
/// not expired.
pub fn usable(grant: &CapabilityGrant, now: i64) -> Result<Usable, Error> {
    let status = grant.status.as_ref();
    let phase = status.and_then(|s| s.phase).unwrap_or(GrantPhase::Pending);
    if grant.spec.revoked || phase == GrantPhase::Revoked {
        return Err(Error::new(ErrorCode::GrantRevoked, "the grant was revoked"));
    }
    match phase {
        GrantPhase::Approved => {}
        GrantPhase::Expired => {
            return Err(Error::new(ErrorCode::GrantExpired, "the grant has expired"));
        }
        GrantPhase::Denied => {
            return Err(Error::new(
                ErrorCode::GrantNotApproved,
                "the grant was denied; request a new grant",
            ));
        }
        // The CRD's schema refuses it in a status; refused all the same.
        GrantPhase::Suspended => {
            return Err(Error::new(
                ErrorCode::GrantSuspended,
                "the grant is suspended until an approver approves it again",
            ));
        }
        GrantPhase::Pending | GrantPhase::Revoked => {
            return Err(Error::new(
                ErrorCode::GrantNotApproved,
                "the grant is waiting for a human decision",
            ));
        }
    }
    let approval = status
        .and_then(|s| s.approval.as_ref())
        .filter(|a| a.decision == Decision::Approved)
        .ok_or_else(|| Error::new(ErrorCode::GrantNotApproved, "no recorded approval"))?;
    if grant.metadata.generation != Some(approval.generation) {
        return Err(Error::new(
            ErrorCode::GrantNotApproved,
            "the grant changed after it was approved",
        ));
    }
    let uid = grant
        .metadata
        .uid
        .clone()
        .ok_or_else(|| Error::new(ErrorCode::GrantUnknown, "the grant has no uid"))?;
    let expires_at = grant_expiry(grant)
        .ok_or_else(|| Error::new(ErrorCode::GrantNotApproved, "the grant has no expiry yet"))?;
    if now >= expires_at {
        return Err(Error::new(
            ErrorCode::GrantExpired,
            format!("the grant expired at {expires_at}"),
        ));
    }
    Ok(Usable {
        uid,
        generation: approval.generation,
        expires_at,
    })
}

/// Everything that bounds a token's lifetime, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The issuer's default lifetime.
    pub default_secs: i64,
    /// The lifetime the agent asked for (`expires_in`), replacing the default.
    pub requested_secs: Option<i64>,
    /// The envelope's `maxTokenTtl`.
    pub envelope_max_secs: Option<i64>,
    /// When the grant expires (epoch seconds).
    pub grant_expires_at: i64,
    /// When the issuing key's certificate expires (epoch seconds).
    pub key_not_after: i64,
}

/// The token's `exp` at `now`: the wanted lifetime capped by the envelope and
/// one hour, and never past the grant or the issuing key's certificate.
pub fn expiry(now: i64, limits: &Limits) -> Result<i64, Error> {
    let lifetime = limits
        .requested_secs
        .unwrap_or(limits.default_secs)
        .min(limits.envelope_max_secs.unwrap_or(i64::MAX))
        .min(MAX_TOKEN_LIFETIME_SECS);
    if lifetime < 1 {
        return Err(Error::new(
            ErrorCode::EnvelopeInvalid,
            "the envelope's maxTokenTtl is shorter than one second",
        ));
    }
    if now >= limits.grant_expires_at {
        return Err(ErrorCode::GrantExpired.into());
    }
    if now >= limits.key_not_after {
        return Err(Error::new(
            ErrorCode::SigningFailed,
            "the issuing key's certificate has expired and could not be renewed",
        ));
    }
    Ok(now
        .saturating_add(lifetime)
        .min(limits.grant_expires_at)
        .min(limits.key_not_after))
}

/// Who the token is for and what binds it.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    /// The issuer URL (`iss`).
    pub issuer: &'a str,
    /// The agent, `namespace/name` (`sub`, `client_id`).
    pub agent: String,
    /// Thumbprint of the agent's DPoP key (`cnf.jkt`).
    pub jkt: String,
    /// A fresh random token id.
    pub jti: String,
    /// The envelope digest (`env`), when the grant names an envelope.
    pub env: Option<String>,
}

/// The claims of a token issued under `grant` at `now`, expiring at `exp`.
pub fn claims(
    grant: &CapabilityGrant,
    usable: &Usable,
    subject: Subject<'_>,
    now: i64,
    exp: i64,
) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: subject.issuer.to_owned(),
        sub: subject.agent.clone(),
        aud: grant.spec.service_provider.clone(),
        client_id: subject.agent,
        iat: now,
        nbf: now,
        exp,
        jti: subject.jti,
        cnf: Confirmation { jkt: subject.jkt },
        authorization_details: grant
            .spec
            .capabilities
            .iter()
            .map(AuthorizationDetail::from)
            .collect(),
        grant: GrantRef {
            uid: usable.uid.clone(),
            generation: usable.generation,
        },
        env: subject.env,
    }
}

#[cfg(test)]
#[path = "issuer_tests.rs"]
mod tests;
