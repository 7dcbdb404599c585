//! The one enum of stable error codes (DESIGN §5).
//!
//! Every parse or verify step in AgentAuth fails with an [`Error`]: a stable
//! snake_case [`ErrorCode`] that clients, metrics and audit records key on,
//! and a message for a person. Codes are never renamed once shipped; new
//! failure modes get new codes.

use std::fmt;

/// Declares [`ErrorCode`] with its wire string and a default message in one
/// table, so the three can never drift apart.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal, $msg:literal; )+) => {
        /// A stable, machine-readable reason for a refusal or a failure.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            /// The snake_case wire form, e.g. `"token_expired"`.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )+ }
            }

            /// A default explanation for a person.
            pub const fn default_message(self) -> &'static str {
                match self { $( ErrorCode::$variant => $msg, )+ }
            }

            /// Parses the wire form back into a code.
            pub fn from_wire(s: &str) -> Option<ErrorCode> {
                match s { $( $code => Some(ErrorCode::$variant), )+ _ => None }
            }
        }
    };
}

error_codes! {
    /// An input was larger than its limit and was refused before parsing.
    InputTooLarge => "input_too_large", "the input is larger than allowed";
    /// JSON could not be parsed or had the wrong shape.
    JsonInvalid => "json_invalid", "the JSON is malformed or has the wrong shape";
    /// A request to an AgentAuth API was malformed.
    RequestInvalid => "request_invalid", "the request is malformed";
    /// A request (its header section or its body) did not arrive within the
    /// server's read deadline: a stalled or deliberately slow client.
    RequestTimeout => "request_timeout", "the request was not received in time; send it again without pausing between its parts";

    /// A JWK is not a public EC P-256 key.
    JwkInvalid => "jwk_invalid", "the key is not a valid public EC P-256 JWK";
    /// A JWK carried private key material where only a public key belongs.
    JwkPrivateKeyRefused => "jwk_private_key_refused", "a private key was sent where only a public key is allowed";

    /// The access token is not a well-formed compact JWS.
    TokenMalformed => "token_malformed", "the access token is malformed";
    /// The access token's `typ` header is not `at+jwt`.
    TokenTypeInvalid => "token_type_invalid", "the access token type must be at+jwt";
    /// The token's `alg` is not ES256.
    TokenAlgorithmUnsupported => "token_algorithm_unsupported", "only ES256 is accepted";
    /// The token carries a `crit` header that is not understood.
    TokenCriticalUnsupported => "token_critical_unsupported", "the token has critical header parameters that are not supported";
    /// The token's `kid` names no known issuing key.
    TokenKeyUnknown => "token_key_unknown", "the token was signed by an unknown key";
    /// The token's signature does not verify.
    TokenSignatureInvalid => "token_signature_invalid", "the access token signature is invalid";
    /// The token's issuer is not the expected one.
    TokenIssuerInvalid => "token_issuer_invalid", "the access token issuer is not trusted";
    /// The token's audience is not this service provider.
    TokenAudienceInvalid => "token_audience_invalid", "the access token is not for this service provider";
    /// The token has expired.
    TokenExpired => "token_expired", "the access token has expired";
    /// The token's `nbf` lies in the future.
    TokenNotYetValid => "token_not_yet_valid", "the access token is not valid yet";
    /// The token's claims are missing or inconsistent.
    TokenClaimsInvalid => "token_claims_invalid", "the access token claims are missing or invalid";

    /// No DPoP proof was presented.
    DpopMissing => "dpop_missing", "a DPoP proof is required";
    /// The DPoP proof is malformed or its signature does not verify.
    DpopInvalid => "dpop_invalid", "the DPoP proof is invalid";
    /// The DPoP proof's `jti` has been seen before.
    DpopReplayed => "dpop_replayed", "the DPoP proof was already used";
    /// The DPoP proof's key is not the key the token is bound to.
    DpopKeyMismatch => "dpop_key_mismatch", "the DPoP proof key does not match the token's key";
    /// The DPoP proof's `htm` is not the request method.
    DpopMethodMismatch => "dpop_method_mismatch", "the DPoP proof is for another HTTP method";
    /// The DPoP proof's `htu` is not the request URL.
    DpopUrlMismatch => "dpop_url_mismatch", "the DPoP proof is for another URL";
    /// The DPoP proof's `iat` is outside the accepted window.
    DpopStale => "dpop_stale", "the DPoP proof is too old or from the future";
    /// The DPoP proof's `ath` is not the hash of the presented token.
    DpopAthMismatch => "dpop_ath_mismatch", "the DPoP proof is not bound to this access token";
    /// The DPoP proof lacks the server-provided nonce or has a wrong one.
    DpopNonceInvalid => "dpop_nonce_invalid", "the DPoP proof nonce is missing or wrong";
    /// The server requires a DPoP nonce (RFC 9449 §8, §9) and the proof has
    /// none, or a stale or foreign one: retry once with the nonce the answer
    /// carries (`DPoP-Nonce` header, or `dpopNonce` in a verifier decision).
    UseDpopNonce => "use_dpop_nonce", "make a new DPoP proof with the server's nonce (DPoP-Nonce) and retry";

    /// A capability is malformed.
    CapabilityInvalid => "capability_invalid", "the capability is malformed";
    /// A resource pattern is malformed.
    ResourcePatternInvalid => "resource_pattern_invalid", "the resource pattern is malformed";
    /// The requested action is not covered by any granted capability.
    CapabilityNotGranted => "capability_not_granted", "the action is not covered by the grant";

    /// A money amount is malformed (floats, exponents, signs, too many decimals).
    AmountInvalid => "amount_invalid", "the amount is not a valid decimal for its currency";
    /// The currency code is not an ISO 4217 code.
    CurrencyUnknown => "currency_unknown", "the currency is not a known ISO 4217 code";
    /// The currency of a request differs from the currency of the limit.
    CurrencyMismatch => "currency_mismatch", "the currency does not match the granted currency";
    /// The amount exceeds the per-transaction limit.
    AmountOverLimit => "amount_over_limit", "the amount exceeds the per-transaction limit";
    /// The amount would exceed the daily limit.
    DailyAmountOverLimit => "daily_amount_over_limit", "the amount would exceed the daily limit";

    /// A rate limit of the behavioral envelope refused the request.
    RateLimited => "rate_limited", "the rate limit was exceeded";
    /// The request falls outside every permitted time window.
    OutsideTimeWindow => "outside_time_window", "the request is outside the permitted time windows";
    /// A time zone name is not a known IANA zone.
    TimeZoneUnknown => "time_zone_unknown", "the time zone is not a known IANA time zone";
    /// A behavioral envelope is malformed or insane.
    EnvelopeInvalid => "envelope_invalid", "the behavioral envelope is invalid";

    /// The grant has not been approved.
    GrantNotApproved => "grant_not_approved", "the grant has not been approved";
    /// The grant was revoked.
    GrantRevoked => "grant_revoked", "the grant was revoked";
    /// The grant has expired.
    GrantExpired => "grant_expired", "the grant has expired";
    /// The grant is unknown.
    GrantUnknown => "grant_unknown", "the grant is unknown";
    /// The grant's envelope spec or its agent's key changed after the
    /// approval was signed: the approval no longer covers what is enforced.
    GrantSuspended => "grant_suspended", "the envelope / agent key changed after approval; the grant is suspended until an approver approves it again";

    /// The WebAuthn assertion is malformed.
    ApprovalInvalid => "approval_invalid", "the approval assertion is malformed";
    /// `clientDataJSON.type` is not `webauthn.get`.
    ApprovalTypeInvalid => "approval_type_invalid", "the approval is not a WebAuthn assertion";
    /// The signed challenge is not the challenge of this grant and decision.
    ApprovalChallengeMismatch => "approval_challenge_mismatch", "the approval was signed for another grant, spec or decision";
    /// The origin in `clientDataJSON` is not the approval UI's origin.
    ApprovalOriginMismatch => "approval_origin_mismatch", "the approval came from an untrusted origin";
    /// The `rpIdHash` is not the hash of the relying party id.
    ApprovalRpIdMismatch => "approval_rp_id_mismatch", "the approval was made for another relying party";
    /// The authenticator did not report user presence.
    ApprovalUserNotPresent => "approval_user_not_present", "the authenticator did not confirm user presence";
    /// The authenticator did not report user verification.
    ApprovalUserNotVerified => "approval_user_not_verified", "the authenticator did not verify the user";
    /// The authenticator's sign counter did not increase (a cloned key).
    ApprovalCounterNotIncreasing => "approval_counter_not_increasing", "the passkey sign counter did not increase";
    /// The assertion signature does not verify against the registered passkey.
    ApprovalSignatureInvalid => "approval_signature_invalid", "the approval signature does not verify";
    /// An approval repeats an approver (by name or email) or a passkey
    /// already recorded on the grant: each approver counts once (N-of-M).
    ApprovalDuplicate => "approval_duplicate", "this approver or passkey has already decided this grant";
    /// A deciding record claims a quorum that the distinct, verified
    /// approvals do not reach (N-of-M).
    ApprovalQuorumNotMet => "approval_quorum_not_met", "the grant needs approvals from more distinct approvers";

    /// A grant names an Agent that does not exist in its namespace.
    AgentNotFound => "agent_not_found", "the referenced Agent does not exist";
    /// A grant names a BehavioralEnvelope that does not exist in its namespace.
    EnvelopeNotFound => "envelope_not_found", "the referenced BehavioralEnvelope does not exist";
    /// An approval names an Approver that does not exist.
    ApproverNotFound => "approver_not_found", "the approving Approver does not exist";
    /// A status field that carries authority was written by someone other than the operator.
    StatusWriterForbidden => "status_writer_forbidden", "only the operator may write this status field";
    /// The spec of a decided grant changed (other than setting `revoked`).
    SpecImmutable => "spec_immutable", "the spec of a decided grant cannot change";
    /// A recorded decision was changed or removed.
    DecisionImmutable => "decision_immutable", "a recorded decision never changes";
    /// A registered passkey's key or enrollment time changed, or its counter went back.
    PasskeyImmutable => "passkey_immutable", "a registered passkey cannot be altered";
    /// `status.keyThumbprint` is not the thumbprint of `spec.publicKey`.
    ThumbprintMismatch => "key_thumbprint_mismatch", "the key thumbprint does not match the public key";
    /// An Agent's `agentauth.dev/created-by` annotation does not name the user
    /// who created it, or an update changed or removed it.
    CreatedByInvalid => "created_by_invalid", "the agentauth.dev/created-by annotation must name the Agent's creator and never changes";
    /// An update changed an Agent's `spec.owner`.
    OwnerImmutable => "owner_immutable", "an Agent's owner cannot change";

    /// The grant is outside the approver's scope (namespaces, grant selector).
    ApproverOutOfScope => "approver_out_of_scope", "the grant is outside the approver's scope";
    /// The approver owns the grant's agent and may not decide its grants.
    ApproverOwnsAgent => "approver_owns_agent", "an approver may not decide grants of an agent it owns";
    /// The approver lacks the Kubernetes RBAC verb `approve` on the grant.
    ApproverNotAuthorized => "approver_not_authorized", "the approver lacks the RBAC verb approve on this grant";
    /// No valid approval session: missing, unknown, expired or not logged in.
    SessionInvalid => "session_invalid", "the approval session is missing, expired or not logged in";
    /// The `X-CSRF-Token` header is missing or is not the session's token.
    CsrfInvalid => "csrf_invalid", "the CSRF token is missing or wrong";
    /// The request came from another site than the approval UI.
    CrossSiteRequest => "cross_site_request", "cross-site requests to the approval API are refused";
    /// The enrollment token is unknown, used, expired or for another approver.
    EnrollmentTokenInvalid => "enrollment_token_invalid", "the enrollment token is invalid, used or expired";
    /// A passkey is not an ES256 (EC P-256) credential.
    PasskeyUnsupported => "passkey_unsupported", "only ES256 (EC P-256) passkeys are supported";
    /// A WebAuthn registration or login ceremony failed verification.
    PasskeyCeremonyFailed => "passkey_ceremony_failed", "the passkey ceremony failed verification";

    /// An audit record is malformed.
    AuditRecordInvalid => "audit_record_invalid", "the audit record is malformed";
    /// An audit chain is broken (missing, reordered, altered or forked record).
    AuditChainBroken => "audit_chain_broken", "the audit chain is broken";
    /// A sealed segment's checkpoint is missing, malformed, not signed by
    /// the pinned key, or does not match the records or the previous
    /// checkpoint.
    AuditCheckpointInvalid => "audit_checkpoint_invalid", "the audit checkpoint is invalid";
    /// An inclusion proof does not lead to its signed root.
    AuditProofInvalid => "audit_proof_invalid", "the audit inclusion proof is invalid";

    /// Shared state could not answer; the request is refused (fail closed).
    StateUnavailable => "state_unavailable", "the shared state is unavailable";
    /// The audit trail could not take the record of an allow in time (its
    /// queue stayed full), so the request is refused rather than allowed
    /// unrecorded (fail closed); retry later.
    AuditUnavailable => "audit_unavailable", "the audit trail is unavailable; retry later";
    /// Signing failed.
    SigningFailed => "signing_failed", "signing failed";
    /// An issuing key's certificate is malformed, expired, not signed by the
    /// pinned root key, or names another key.
    KeyCertificateInvalid => "key_certificate_invalid", "the issuing key's certificate is invalid";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ErrorCode::from_wire(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {s:?}")))
    }
}

/// A failure with a stable [`ErrorCode`] and a message for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, in words a person can act on.
    pub message: String,
}

impl Error {
    /// An error with a specific message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error {
            code,
            message: code.default_message().to_owned(),
        }
    }
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its `source()` chain on one line, `outer: inner: …`, for
/// messages that outlive the error. A cause its parent already prints (kube's
/// and reqwest's errors do) is said once.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(ErrorCode::from_wire(s), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(ErrorCode::from_wire("no_such_code"), None);
    }

    #[test]
    fn a_chain_names_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error, bool);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.1 {
                    write!(f, "connect failed: {}", self.0)
                } else {
                    f.write_str("connect failed")
                }
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = || std::io::Error::other("connection refused");
        assert_eq!(
            chain(&Outer(refused(), false)),
            "connect failed: connection refused"
        );
        assert_eq!(
            chain(&Outer(refused(), true)),
            "connect failed: connection refused"
        );
    }

    #[test]
    fn display_names_message_and_code() {
        let e = Error::new(ErrorCode::TokenExpired, "expired 3 s ago");
        assert_eq!(e.to_string(), "expired 3 s ago (token_expired)");
    }
}
