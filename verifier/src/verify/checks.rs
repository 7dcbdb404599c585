//! The pure checks of [`super::Verifier::decide`] that need no cache or
//! state, each returning the stable code of its refusal.

use agentauth_core::audit::{Draft, kinds};
use agentauth_core::capability::RequestedAction;
use agentauth_core::envelope::MinorLimits;
use agentauth_core::jws;
use agentauth_core::keycert::TrustedKeys;
use agentauth_core::money::{Currency, parse_amount};
use agentauth_core::token::{AccessTokenClaims, Expectations, MAX_TOKEN_LEN};
use agentauth_core::{Error, ErrorCode, htu};
use agentauth_state::{GrantPhase, GrantState, Transaction};

use super::{Decision, Input};
use crate::wire::Action;

/// Step 0: the audience asked for, a method that is an HTTP token, and an
/// absolute ASCII http(s) URL, returned normalized for the DPoP check.
/// Failures are unreadable requests.
pub(super) fn request<'e>(
    input: &Input<'_>,
    expectations: &'e [Expectations],
) -> Result<(&'e Expectations, String), Error> {
    let invalid = |m: &str| Error::new(ErrorCode::RequestInvalid, m);
    let expect = match input.audience {
        None => expectations.first(),
        Some(aud) => expectations.iter().find(|e| e.audience == aud),
    }
    .ok_or_else(|| invalid("the audience is not one this verifier answers for"))?;
    let method_ok = !input.method.is_empty()
        && input.method.len() <= 32
        && input
            .method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !method_ok {
        return Err(invalid("method must be an HTTP method token, e.g. GET"));
    }
    let url = htu::normalize(input.url, ErrorCode::RequestInvalid)?;
    Ok((expect, url))
}

/// The token without an `Authorization` scheme: bare, or after `DPoP `.
/// Another scheme (`Bearer`: a DPoP-bound token presented without its
/// proof's binding) is unreadable as an AgentAuth token.
pub(super) fn strip_scheme(token: &str) -> Result<&str, Error> {
    let token = token.trim();
    let Some((scheme, rest)) = token.split_once(' ') else {
        return Ok(token);
    };
    if scheme.eq_ignore_ascii_case("dpop") {
        Ok(rest.trim_start())
    } else {
        Err(Error::new(
            ErrorCode::TokenMalformed,
            "the token must be bare or use the DPoP authorization scheme",
        ))
    }
}

/// Names why a `kid` is not trusted: its certificate was refused or has
/// expired (`key_certificate_invalid`), or it is not in the JWKS at all.
pub(super) fn unknown_key(token: &str, error: Error, keys: &TrustedKeys, now: i64) -> Error {
    let kid = jws::decode::<serde::de::IgnoredAny>(token, MAX_TOKEN_LEN, ErrorCode::TokenMalformed)
        .ok()
        .and_then(|parts| parts.header.kid);
    let Some(kid) = kid else {
        return error;
    };
    if let Some((_, refused)) = keys.rejected().iter().find(|(k, _)| *k == kid) {
        return Error::new(
            ErrorCode::KeyCertificateInvalid,
            format!("the issuing key is not trusted: {}", refused.message),
        );
    }
    if keys.not_after(&kid).is_some_and(|at| now >= at) {
        return Error::new(
            ErrorCode::KeyCertificateInvalid,
            "the issuing key's certificate has expired",
        );
    }
    error
}

/// Step 5: what the operator says about the grant, against the token.
pub(super) fn grant(state: &GrantState, claims: &AccessTokenClaims, now: i64) -> Result<(), Error> {
    match state.phase {
        GrantPhase::Approved => {}
        GrantPhase::Revoked => return Err(ErrorCode::GrantRevoked.into()),
        GrantPhase::Expired => return Err(ErrorCode::GrantExpired.into()),
        GrantPhase::Suspended => return Err(ErrorCode::GrantSuspended.into()),
        GrantPhase::Pending | GrantPhase::Denied => {
            return Err(ErrorCode::GrantNotApproved.into());
        }
    }
    if state.expires_at.is_some_and(|at| now >= at) {
        return Err(ErrorCode::GrantExpired.into());
    }
    if state.generation != claims.grant.generation {
        return Err(Error::new(
            ErrorCode::GrantNotApproved,
            format!(
                "the token was issued for generation {} of the grant; generation {} is approved",
                claims.grant.generation, state.generation
            ),
        ));
    }
    if state.service_provider != claims.aud {
        return Err(Error::new(
            ErrorCode::TokenAudienceInvalid,
            "the grant is for another service provider",
        ));
    }
    if state.agent_jkt != claims.cnf.jkt {
        return Err(Error::new(
            ErrorCode::DpopKeyMismatch,
            "the token is bound to a key the agent no longer has",
        ));
    }
    if state.agent != claims.sub {
        return Err(Error::new(
            ErrorCode::TokenClaimsInvalid,
            "the token's subject is not the grant's agent",
        ));
    }
    Ok(())
}

/// Step 6's input: the action with its currency looked up (an unknown one
/// is a decision, `currency_unknown`).
pub(super) fn requested_action(action: &Action) -> Result<RequestedAction, Error> {
    let currency = action
        .currency
        .as_deref()
        .map(Currency::from_code)
        .transpose()?;
    Ok(RequestedAction {
        kind: action.kind,
        resource: action.resource.clone(),
        action: action.action.clone(),
        amount: action.amount.clone(),
        currency,
        name: action.name.clone(),
    })
}

/// Step 8's money: the amount in minor units when the envelope limits amounts.
pub(super) fn transaction(
    requested: &RequestedAction,
    limits: Option<MinorLimits>,
) -> Result<Option<Transaction>, Error> {
    let (Some(limits), Some(amount), Some(currency)) =
        (limits, requested.amount.as_deref(), requested.currency)
    else {
        return Ok(None);
    };
    Ok(Some(Transaction {
        amount_minor: parse_amount(amount, &currency)?,
        currency,
        limits,
    }))
}

/// The audit event of a decision (DESIGN §8).
pub(super) fn audit_draft(
    decision: &Decision,
    input: &Input<'_>,
    reason: Option<ErrorCode>,
    message: Option<String>,
) -> Draft {
    let mut details = serde_json::Map::new();
    details.insert("method".into(), input.method.into());
    details.insert("action".into(), input.action.kind.as_str().into());
    details.insert("resource".into(), brief(&input.action.resource).into());
    if let (Some(amount), Some(currency)) = (&input.action.amount, &input.action.currency) {
        details.insert("amount".into(), brief(amount).into());
        details.insert("currency".into(), brief(currency).into());
    }
    if let Some(message) = message {
        details.insert("message".into(), brief(&message).into());
    }
    Draft {
        kind: kinds::VERIFICATION.into(),
        agent: decision.agent.clone(),
        grant: decision.grant.clone(),
        decision: Some(if decision.allow { "allow" } else { "deny" }.into()),
        reason: reason.map(|c| c.as_str().to_owned()),
        details,
    }
}

/// Outside input in an audit record: cut to 256 bytes on a character boundary.
fn brief(s: &str) -> &str {
    match s.char_indices().nth(256) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}
