//! Who is calling: the DPoP proof (RFC 9449) of every agent API request, and
//! whether its key is the registered key of the agent it acts for.
//!
//! ```text
//!  DPoP header ──▶ exactly one ──▶ dpop::verify(method, public_url + path, window, now)
//!              ──▶ nonce, when the route requires one (use_dpop_nonce; see [`super::dpop_nonce`])
//!              ──▶ claim_jti("operator", jti, Window::replay_ttl_ms)  (replay: dpop_replayed;
//!                                                                    state down: state_unavailable)
//!              ──▶ jkt ──▶ agent_key_matches(Agent.status.keyThumbprint)   (dpop_key_mismatch)
//!                      ──▶ held_grant: the grant exists and its agent holds jkt   (grant_unknown)
//! ```
//!
//! The URL a proof must name is the externally visible one: the configured
//! public URL (which may carry a path prefix that a proxy strips) followed
//! by the path of the request as received, so a proof made for one route
//! cannot be spent on another. A proof is usable for `max_age + max_skew + 1`
//! seconds of real time at most (whole-second `iat` and `now`; an `iat` at
//! the future edge of the window stays acceptable that long), so its `jti`
//! is remembered that long plus a margin for replicas whose clocks differ
//! ([`dpop::Window::replay_ttl_ms`]).

use std::sync::Arc;

use agentauth_core::ErrorCode;
use agentauth_core::dpop::nonce::NonceIssuer;
use agentauth_core::dpop::{self, VerifiedProof};
use agentauth_crds::{Agent, CapabilityGrant};
use axum::http::{HeaderMap, Method};
use kube::ResourceExt;

use super::ApiState;
use super::problem::ApiError;

/// The replay scope of proofs sent to the operator.
pub const REPLAY_SCOPE: &str = "operator";

/// Verifies the request's DPoP proof, its server nonce when `nonce` is
/// given, and claims its `jti`; returns the proof (its key's thumbprint and
/// `jti`).
pub async fn authenticate(
    state: &ApiState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    nonce: Option<&NonceIssuer>,
) -> Result<VerifiedProof, ApiError> {
    let mut values = headers.get_all("dpop").iter();
    let proof = match (values.next(), values.next()) {
        (None, _) => {
            return Err(ApiError::new(
                ErrorCode::DpopMissing,
                "send a DPoP proof of the agent's key in the DPoP header",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::DpopInvalid,
                "more than one DPoP header (RFC 9449 §4.3)",
            ));
        }
        (Some(value), None) => value
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::DpopInvalid, "the DPoP header is not ASCII"))?,
    };
    let url = format!("{}{}", state.public_url, path);
    let request = dpop::Request {
        method: method.as_str(),
        url: &url,
        access_token: None,
        nonce: None,
    };
    let now = state.ctx.clock.now_secs();
    let verified = dpop::verify(proof, &request, state.dpop_window, now).map_err(|e| {
        // A request URL that does not normalize means a bad public URL or
        // path: a malformed request, not a bad proof.
        let error = ApiError::from(e);
        if error.code == ErrorCode::RequestInvalid {
            ApiError::invalid(format!("the request URL is not valid: {}", error.detail))
        } else {
            error
        }
    })?;
    // After the signature, before the jti is claimed: a proof refused for
    // its nonce burns nothing that would block the client's retry.
    if let Some(issuer) = nonce {
        issuer.check(verified.nonce.as_deref(), now)?;
    }
    // Every instant the proof is accepted, plus a clock margin (see
    // `Window::replay_ttl_ms`).
    let ttl_ms = state.dpop_window.replay_ttl_ms();
    match state
        .ctx
        .state
        .claim_jti(REPLAY_SCOPE, &verified.jti, ttl_ms)
        .await
    {
        Ok(true) => Ok(verified),
        Ok(false) => Err(ApiError::new(
            ErrorCode::DpopReplayed,
            "this DPoP proof was already used; make a fresh proof (new jti) for every request",
        )),
        Err(e) => Err(ApiError::unavailable(format!(
            "cannot check the DPoP proof for replay: {e}"
        ))),
    }
}

/// Refuses unless `jkt` is the validated key of `agent` (`None`: not found).
///
/// An unknown agent, one whose key the operator has not validated yet, one
/// whose key changed since it was validated (`observedGeneration` behind)
/// and one with another key all get the same answer, so a caller learns
/// nothing about agents whose key it does not hold.
pub fn agent_key_matches(
    agent: Option<&Agent>,
    namespace: &str,
    name: &str,
    jkt: &str,
) -> Result<(), ApiError> {
    let status = agent.and_then(|a| a.status.as_ref().map(|s| (a, s)));
    let current = status.is_some_and(|(agent, status)| {
        let fresh = status
            .observed_generation
            .is_none_or(|observed| Some(observed) == agent.metadata.generation);
        fresh && status.key_thumbprint.as_deref() == Some(jkt)
    });
    if current {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::DpopKeyMismatch,
            format!(
                "the DPoP proof's key is not the registered key of agent {namespace}/{name} \
                 (or the agent does not exist, or its key is not validated yet)"
            ),
        ))
    }
}

/// The grant `namespace/name`, when it exists and its agent's validated key
/// is `jkt`.
///
/// A grant that does not exist and one held by another agent get the same
/// answer (`grant_unknown`, 404): a caller with some agent's key must not
/// learn which grant names exist in a namespace by trying them.
pub fn held_grant(
    state: &ApiState,
    namespace: &str,
    name: &str,
    jkt: &str,
) -> Result<Arc<CapabilityGrant>, ApiError> {
    let caches = &state.ctx.caches;
    let held = caches.grant(namespace, name).filter(|grant| {
        let agent_name = &grant.spec.agent_ref.name;
        let agent = caches.agent(namespace, agent_name);
        agent_key_matches(agent.as_deref(), namespace, agent_name, jkt).is_ok()
    });
    held.ok_or_else(|| {
        ApiError::new(
            ErrorCode::GrantUnknown,
            format!(
                "no grant {namespace}/{name} is held by the agent whose key signed the DPoP \
                 proof: check the grant's name, and that the proof is made with the key of \
                 the agent the grant names (its key must be validated: Agent Ready)"
            ),
        )
    })
}

/// `namespace/name` of an object.
pub fn qualified(object: &impl ResourceExt) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}
