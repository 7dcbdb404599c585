//! The decision: may this request proceed?
//!
//! Checks run in this order; the first that fails decides, with its code:
//!
//! | # | check | codes |
//! |---|---|---|
//! | 0 | the request: JSON shape, audience, method, absolute ASCII URL | `json_invalid`, `request_invalid` (400) |
//! | 1 | token size and framing | `input_too_large`, `token_malformed` (400); `token_algorithm_unsupported`, `token_critical_unsupported`, `token_type_invalid` |
//! | 2 | signature through the JWKS and the root's certification of the key (unknown `kid`: one rate-limited JWKS refresh); claims decode to valid capabilities | `token_key_unknown`, `key_certificate_invalid`, `token_signature_invalid`, `token_claims_invalid` |
//! | 3 | claims: `iss`, `aud` = this provider, `exp`/`nbf` with skew | `token_issuer_invalid`, `token_audience_invalid`, `token_expired`, `token_not_yet_valid` |
//! | 4 | DPoP proof: signature, `htm`, `htu`, `iat`, `ath`, key = `cnf.jkt`; the server nonce when on ([`crate::dpop_nonce`]) | `dpop_missing`, `dpop_invalid`, `jwk_private_key_refused`, `dpop_method_mismatch`, `dpop_url_mismatch`, `dpop_stale`, `dpop_ath_mismatch`, `dpop_key_mismatch`, `use_dpop_nonce` |
//! | 5 | grant state (cache, else the shared state): approved, not revoked, not expired, the token's generation, audience and key | `state_unavailable`, `grant_unknown`, `grant_revoked`, `grant_not_approved`, `grant_expired`, `token_audience_invalid`, `dpop_key_mismatch`, `token_claims_invalid` |
//! | 6 | capability match (core `permits`) | `capability_not_granted`, `amount_over_limit`, `currency_mismatch`, `amount_invalid`, `currency_unknown`, `resource_pattern_invalid` |
//! | 7 | time windows of the envelope | `outside_time_window`, `envelope_invalid`, `time_zone_unknown` |
//! | 8 | ONE shared-state round trip: `jti` replay, revocation, every rate limit, amount limits | `dpop_replayed`, `grant_revoked`, `rate_limited`, `currency_mismatch`, `amount_over_limit`, `daily_amount_over_limit`, `state_unavailable` |
//!
//! Only steps 0 and 1 can make a request unreadable (HTTP 400), and
//! `input_too_large` wherever an input is over its limit (a proof, an
//! amount); everything else is a decision (HTTP 200). Step 2's result is
//! cached by the token's SHA-256 ([`crate::token_cache`]); every other step
//! runs per request.

mod checks;
mod decision;

pub use decision::{Decision, Input, Outcome};

use std::sync::Arc;

use agentauth_core::capability::{self, Capability};
use agentauth_core::dpop;
use agentauth_core::dpop::nonce::NonceIssuer;
use agentauth_core::jwk::KeyCache;
use agentauth_core::token::{self, Expectations};
use agentauth_core::{Error, ErrorCode};
use agentauth_state::consume::{ConsumeRequest, RateLimitStatus};
use agentauth_state::{ConsumeOutcome, SharedState};

use crate::Clock;
use crate::audit::AuditSink;
use crate::grant_cache::{CachedGrant, GrantCache, Lookup, unavailable};
use crate::keys::KeySource;
use crate::metrics::{CacheKind, Metrics};
use crate::problem::Problem;
use crate::token_cache::{TokenCache, VerifiedToken};

/// Most agents' DPoP keys held validated at once (each well under 1 KiB).
const MAX_PROOF_KEYS: usize = 4096;

/// The verifier's fixed settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// One expectation per configured audience; the first is the default.
    pub expectations: Vec<Expectations>,
    /// Accepted proof age and skew.
    pub dpop_window: dpop::Window,
    /// Server nonces required in proofs (RFC 9449 §9); `None`: off.
    pub dpop_nonce: Option<Arc<NonceIssuer>>,
}

/// Why a request is refused.
enum Refusal {
    Deny(Error, Option<u64>),
    Invalid(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Deny(e, None)
    }
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Self {
        Refusal::Deny(code.into(), None)
    }
}

/// Who a request turned out to concern, as far as the checks got.
#[derive(Default)]
struct Known {
    agent: Option<String>,
    grant: Option<String>,
    dpop_nonce: Option<String>,
}

/// Everything a verification needs. Shared behind an `Arc` by every request.
pub struct Verifier {
    settings: Settings,
    jti_ttl_ms: u64,
    keys: Arc<KeySource>,
    /// Agents' DPoP keys already validated (one key signs all of a grant's
    /// proofs).
    proof_keys: KeyCache,
    tokens: TokenCache,
    grants: Arc<GrantCache>,
    state: Arc<dyn SharedState>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    audit: AuditSink,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The parts a [`Verifier`] is made of.
pub struct Parts {
    /// Fixed settings.
    pub settings: Settings,
    /// The keys.
    pub keys: Arc<KeySource>,
    /// Verified tokens.
    pub tokens: TokenCache,
    /// Grant states.
    pub grants: Arc<GrantCache>,
    /// The shared state.
    pub state: Arc<dyn SharedState>,
    /// The clock of every time check.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub metrics: Metrics,
    /// The audit producer.
    pub audit: AuditSink,
}

impl Verifier {
    /// Assembles a verifier.
    pub fn new(parts: Parts) -> Self {
        Verifier {
            // Covers every instant the proof is accepted, plus a margin for
            // nodes whose clocks differ (see `Window::replay_ttl_ms`).
            jti_ttl_ms: parts.settings.dpop_window.replay_ttl_ms(),
            settings: parts.settings,
            keys: parts.keys,
            proof_keys: KeyCache::new(MAX_PROOF_KEYS),
            tokens: parts.tokens,
            grants: parts.grants,
            state: parts.state,
            clock: parts.clock,
            metrics: parts.metrics,
            audit: parts.audit,
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The keys.
    pub fn keys(&self) -> &Arc<KeySource> {
        &self.keys
    }

    /// The grant cache.
    pub fn grants(&self) -> &Arc<GrantCache> {
        &self.grants
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<dyn SharedState> {
        &self.state
    }

    /// The audit producer.
    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// Decides on one request, records the decision (metrics, audit) and
    /// returns it.
    pub async fn verify(&self, input: &Input<'_>) -> Outcome {
        let mut known = Known::default();
        let result = match self.decide(input, &mut known).await {
            // Oversized input is unreadable wherever it is found.
            Err(Refusal::Deny(e, _)) if e.code == ErrorCode::InputTooLarge => {
                Err(Refusal::Invalid(e))
            }
            result => result,
        };
        let watermark_ms = self.grants.watermark_ms();
        let (decision, reason, message) = match result {
            Ok(rate_limit) => {
                let decision = Decision {
                    allow: true,
                    reason: None,
                    message: None,
                    agent: known.agent,
                    grant: known.grant,
                    rate_limit,
                    retry_after_ms: None,
                    watermark_ms,
                    dpop_nonce: known.dpop_nonce,
                };
                (decision, None, None)
            }
            Err(Refusal::Invalid(error)) => {
                self.metrics.invalid(error.code);
                tracing::debug!(code = %error.code, "unreadable verification request");
                return Outcome::Invalid(Problem::from(error));
            }
            Err(Refusal::Deny(error, retry_after_ms)) => {
                self.metrics.denied(error.code);
                let decision = Decision {
                    allow: false,
                    reason: Some(error.code),
                    message: Some(error.message.clone()),
                    agent: known.agent,
                    grant: known.grant,
                    rate_limit: None,
                    retry_after_ms,
                    watermark_ms,
                    dpop_nonce: known.dpop_nonce,
                };
                (decision, Some(error.code), Some(error.message))
            }
        };
        tracing::debug!(allow = decision.allow, reason = ?reason, "verification decided");
        let draft = checks::audit_draft(&decision, input, reason, message);
        if !decision.allow {
            self.audit.record(draft);
            return Outcome::Decision(decision);
        }
        // An allow is recorded or refused, never lost (see `audit`).
        match self.audit.record_allow(draft).await {
            Ok(()) => {
                self.metrics.allowed();
                Outcome::Decision(decision)
            }
            Err(error) => {
                self.metrics.denied(error.code);
                let denied = Decision {
                    allow: false,
                    reason: Some(error.code),
                    message: Some(error.message.clone()),
                    rate_limit: None,
                    ..decision
                };
                let draft = checks::audit_draft(&denied, input, denied.reason, Some(error.message));
                self.audit.record(draft);
                Outcome::Decision(denied)
            }
        }
    }

    async fn decide(
        &self,
        input: &Input<'_>,
        known: &mut Known,
    ) -> Result<Option<RateLimitStatus>, Refusal> {
        // 0. The request itself.
        let (expect, url) = self.request(input)?;
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);

        // 1–2. Token framing, signature (cached), capabilities.
        let token = checks::strip_scheme(input.token).map_err(Refusal::Invalid)?;
        let verified = self.verified_token(token, now).await?;
        let claims = &verified.claims;
        known.agent = Some(claims.sub.clone());

        // 3. Claims.
        token::check_claims(claims, expect, now)?;

        // 4. DPoP.
        let proof = self.proof(input, token, &url, claims, now, known)?;

        // 5. Grant state.
        let grant = self.grant(claims, now, known).await?;

        // 6. Capability.
        let requested = checks::requested_action(input.action)?;
        capability::permits(&verified.capabilities, &requested)?;

        // 7. Time windows.
        let windows = grant
            .windows
            .as_ref()
            .map_err(|e| Refusal::from(e.clone()))?;
        windows.within_any(now_ms)?;

        // 8. One round trip: replay, revocation, rate limits, amounts.
        self.consume(&claims.grant.uid, &proof, &grant, &requested)
            .await
    }

    /// Step 0: the request's shape, its audience's expectations and its
    /// normalized URL. With several audiences, one must be named: defaulting
    /// to the first would answer `token_audience_invalid` for a
    /// configuration fault.
    fn request(&self, input: &Input<'_>) -> Result<(&Expectations, String), Refusal> {
        let expectations = &self.settings.expectations;
        if input.audience.is_none() && expectations.len() > 1 {
            let names: Vec<&str> = expectations.iter().map(|e| e.audience.as_str()).collect();
            let message = format!(
                "this verifier answers for several audiences ({}): name the provider's \
                 in `audience`",
                names.join(", ")
            );
            return Err(Refusal::Invalid(Error::new(
                ErrorCode::RequestInvalid,
                message,
            )));
        }
        checks::request(input, expectations).map_err(Refusal::Invalid)
    }

    /// Step 4: the DPoP proof, bound to the token's key; then the server
    /// nonce, before step 8 records the `jti`, so that a proof refused for
    /// its nonce burns nothing (see `crate::dpop_nonce`).
    fn proof(
        &self,
        input: &Input<'_>,
        token: &str,
        url: &str,
        claims: &token::AccessTokenClaims,
        now: i64,
        known: &mut Known,
    ) -> Result<dpop::VerifiedProof, Refusal> {
        let proof = input
            .dpop
            .filter(|p| !p.is_empty())
            .ok_or(ErrorCode::DpopMissing)?;
        let request = dpop::Request {
            method: input.method,
            url,
            access_token: Some(token),
            nonce: None,
        };
        let proof = dpop::verify_normalized_cached(
            proof,
            &request,
            self.settings.dpop_window,
            now,
            &self.proof_keys,
        )?;
        if proof.jkt != claims.cnf.jkt {
            return Err(ErrorCode::DpopKeyMismatch.into());
        }
        if let Some(issuer) = &self.settings.dpop_nonce {
            match issuer.check_and_renew(proof.nonce.as_deref(), now) {
                Ok(renewed) => known.dpop_nonce = renewed,
                Err(error) => {
                    known.dpop_nonce = Some(issuer.current(now));
                    return Err(error.into());
                }
            }
        }
        Ok(proof)
    }

    /// Step 5: the grant's state (cache, else the shared state), checked
    /// against the token.
    async fn grant(
        &self,
        claims: &token::AccessTokenClaims,
        now: i64,
        known: &mut Known,
    ) -> Result<Arc<CachedGrant>, Refusal> {
        let grant = match self
            .grants
            .get(&claims.grant.uid, self.state.as_ref())
            .await
        {
            Ok(Lookup::Grant(grant)) => grant,
            Ok(Lookup::Revoked(_)) => return Err(ErrorCode::GrantRevoked.into()),
            Ok(Lookup::Unknown) => return Err(ErrorCode::GrantUnknown.into()),
            Err(error) => {
                self.metrics
                    .state_errors
                    .with_label_values(&["get_grant"])
                    .inc();
                return Err(unavailable(&error).into());
            }
        };
        known.agent = Some(grant.state.agent.clone());
        known.grant = Some(grant.state.grant.clone());
        checks::grant(&grant.state, claims, now)?;
        Ok(grant)
    }

    /// Step 8: one shared-state round trip for the `jti`, the revocation,
    /// every rate limit and the amount limits.
    async fn consume(
        &self,
        uid: &str,
        proof: &dpop::VerifiedProof,
        grant: &CachedGrant,
        requested: &capability::RequestedAction,
    ) -> Result<Option<RateLimitStatus>, Refusal> {
        let rate_limits = grant
            .rate_limits
            .as_ref()
            .map_err(|e| Refusal::from(e.clone()))?
            .counting(requested.kind, &requested.resource);
        let limits = grant
            .transactions
            .as_ref()
            .map_err(|e| Refusal::from(e.clone()))?;
        let consume = ConsumeRequest {
            uid,
            jti: &proof.jti,
            jti_ttl_ms: self.jti_ttl_ms,
            iat: proof.iat,
            rate_limits: &rate_limits,
            transaction: checks::transaction(requested, *limits)?,
        };
        // The state bounds its own hot-path calls (`RedisConfig::hot_timeout`
        // is the verifier's `--state-timeout`): one deadline per call, not two.
        let outcome = match self.state.consume(&consume).await {
            Ok(outcome) => outcome,
            Err(error) => {
                self.metrics
                    .state_errors
                    .with_label_values(&["consume"])
                    .inc();
                return Err(unavailable(&error).into());
            }
        };
        match outcome {
            ConsumeOutcome::Allowed(allowance) => Ok(allowance.rate_limit),
            ConsumeOutcome::RateLimited {
                limit,
                retry_after_ms,
            } => {
                let message =
                    format!("rate limit {limit} of the envelope; retry in {retry_after_ms} ms");
                Err(Refusal::Deny(
                    Error::new(ErrorCode::RateLimited, message),
                    Some(retry_after_ms),
                ))
            }
            ConsumeOutcome::PredatesRecovery => Err(Error::new(
                ErrorCode::DpopStale,
                "the proof predates the shared state's recovery from a data loss \
                 (its use may have been lost); make a new proof",
            )
            .into()),
            refused => Err(refused
                .refusal()
                .unwrap_or(ErrorCode::StateUnavailable)
                .into()),
        }
    }

    /// Steps 1–2: the verified token, from the cache or verified now.
    async fn verified_token(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, Refusal> {
        let hash = token::token_hash(token);
        let epoch = self.keys.epoch();
        if let Some(hit) = self.tokens.get(&hash, now, epoch) {
            self.metrics.cache(CacheKind::Token, true);
            return Ok(hit);
        }
        self.metrics.cache(CacheKind::Token, false);
        let mut keys = self.keys.current();
        let mut signed = token::verify_signature(token, &keys.at(now));
        if signed
            .as_ref()
            .is_err_and(|e| e.code == ErrorCode::TokenKeyUnknown)
            && self.keys.refresh_for_unknown_kid().await
        {
            keys = self.keys.current();
            signed = token::verify_signature(token, &keys.at(now));
        }
        let signed = signed.map_err(|e| match e.code {
            ErrorCode::TokenMalformed | ErrorCode::InputTooLarge => Refusal::Invalid(e),
            ErrorCode::TokenKeyUnknown => checks::unknown_key(token, e, &keys, now).into(),
            _ => e.into(),
        })?;
        let claims = signed.claims;
        let invalid_claims = |m: String| Error::new(ErrorCode::TokenClaimsInvalid, m);
        claims.validate()?;
        let capabilities = claims
            .authorization_details
            .iter()
            .cloned()
            .map(<Capability>::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e: Error| invalid_claims(format!("authorization_details: {}", e.message)))?;
        let leeway = self
            .settings
            .expectations
            .first()
            .map_or(0, |e| e.leeway_secs);
        let key_not_after = keys.not_after(&signed.kid).unwrap_or(i64::MIN);
        let verified = Arc::new(VerifiedToken {
            valid_until: claims.exp.saturating_add(leeway).min(key_not_after),
            claims,
            capabilities,
            key_epoch: epoch,
        });
        self.tokens.insert(hash, Arc::clone(&verified), now);
        Ok(verified)
    }

    /// Verified tokens held (for the gauge).
    pub fn token_cache_len(&self) -> usize {
        self.tokens.len()
    }
}
