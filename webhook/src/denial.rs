//! Why the webhook refuses a write: a stable code, the field, and a message a
//! person can act on. The apiserver shows the message as
//! `admission webhook "validate.agentauth.dev" denied the request: <code>: <field>: <message>`.
//!
//! Spec validation and approval verification fail with core's codes
//! ([`ErrorCode`], DESIGN §5), through [`crds::Invalid`](agentauth_crds::Invalid).
//! What only admission can refuse — a missing reference, a status field
//! written by the wrong identity, a decision or passkey that may not change —
//! has its own codes here ([`Code`]); they are stable too.

use agentauth_core::ErrorCode;
use agentauth_crds::Invalid;
use kube::core::response::{StatusCause, StatusDetails};
use kube::core::{Status, response::reason};

/// A stable reason code for a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// One of core's codes (spec validation, approval verification, state).
    Core(ErrorCode),
    /// `spec.agentRef` (or an approval's grant) names an Agent that does not exist.
    AgentNotFound,
    /// `spec.envelopeRef` names a BehavioralEnvelope that does not exist.
    EnvelopeNotFound,
    /// `status.approval.approver` names an Approver that does not exist.
    ApproverNotFound,
    /// A status field that carries authority was written by someone other
    /// than the operator.
    StatusWriterForbidden,
    /// The spec of a decided grant changed (other than setting `revoked`).
    SpecImmutable,
    /// A recorded decision was changed or removed.
    DecisionImmutable,
    /// A registered passkey's key or enrollment time changed, or its sign
    /// counter went back.
    PasskeyImmutable,
    /// `status.keyThumbprint` is not the thumbprint of `spec.publicKey`.
    ThumbprintMismatch,
}

impl Code {
    /// The snake_case wire form, e.g. `approval_signature_invalid`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Core(code) => code.as_str(),
            Code::AgentNotFound => "agent_not_found",
            Code::EnvelopeNotFound => "envelope_not_found",
            Code::ApproverNotFound => "approver_not_found",
            Code::StatusWriterForbidden => "status_writer_forbidden",
            Code::SpecImmutable => "spec_immutable",
            Code::DecisionImmutable => "decision_immutable",
            Code::PasskeyImmutable => "passkey_immutable",
            Code::ThumbprintMismatch => "key_thumbprint_mismatch",
        }
    }

    /// The HTTP status the apiserver answers the writer with: 422 for an
    /// invalid object, 503 when the webhook could not read what it needed,
    /// 403 for everything that is a matter of authority.
    const fn http(self) -> (u16, &'static str) {
        match self {
            Code::Core(ErrorCode::StateUnavailable) => (503, reason::SERVICE_UNAVAILABLE),
            Code::Core(code) if is_spec_code(code) => (422, reason::INVALID),
            Code::AgentNotFound | Code::EnvelopeNotFound | Code::ThumbprintMismatch => {
                (422, reason::INVALID)
            }
            _ => (403, reason::FORBIDDEN),
        }
    }
}

/// Codes a spec's own `validate()` fails with (everything but the approval
/// and state codes).
const fn is_spec_code(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::ApprovalInvalid
            | ErrorCode::ApprovalTypeInvalid
            | ErrorCode::ApprovalChallengeMismatch
            | ErrorCode::ApprovalOriginMismatch
            | ErrorCode::ApprovalRpIdMismatch
            | ErrorCode::ApprovalUserNotPresent
            | ErrorCode::ApprovalUserNotVerified
            | ErrorCode::ApprovalCounterNotIncreasing
            | ErrorCode::ApprovalSignatureInvalid
            | ErrorCode::GrantNotApproved
            | ErrorCode::GrantRevoked
            | ErrorCode::GrantExpired
    )
}

/// A refused write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {field}: {message}", code.as_str())]
pub struct Denial {
    /// The stable code (the `reason` label of the admission metric).
    pub code: Code,
    /// The field path from the resource root, e.g. `status.approval`.
    pub field: String,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

impl Denial {
    /// A refusal at `field`.
    pub fn new(code: Code, field: impl Into<String>, message: impl Into<String>) -> Self {
        Denial {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A refusal with one of core's codes.
    pub fn core(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Denial::new(Code::Core(code), field, message)
    }

    /// The `status` of the AdmissionResponse: code, reason, message, and the
    /// field as a cause (kubectl and clients read `details.causes`).
    pub fn to_status(&self) -> Status {
        let (http, reason) = self.code.http();
        let message = self.to_string();
        Status::failure(&message, reason)
            .with_code(http)
            .with_details(StatusDetails {
                causes: vec![StatusCause {
                    reason: self.code.as_str().to_owned(),
                    message: self.message.clone(),
                    field: self.field.clone(),
                }],
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                retry_after_seconds: 0,
            })
    }
}

impl From<Invalid> for Denial {
    fn from(invalid: Invalid) -> Self {
        Denial::core(invalid.code, invalid.field, invalid.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lead_with_the_code_and_statuses_fit_the_cause() {
        let d = Denial::core(
            ErrorCode::ApprovalSignatureInvalid,
            "status.approval",
            "the approval signature does not verify",
        );
        assert_eq!(
            d.to_string(),
            "approval_signature_invalid: status.approval: the approval signature does not verify"
        );
        assert_eq!(d.to_status().code, 403);
        let spec = Denial::core(ErrorCode::TimeZoneUnknown, "spec.timeWindows[0]", "x");
        assert_eq!(spec.to_status().code, 422);
        let missing = Denial::new(Code::AgentNotFound, "spec.agentRef.name", "x");
        assert_eq!(missing.to_status().reason, "Invalid");
        let down = Denial::core(ErrorCode::StateUnavailable, "spec", "x");
        assert_eq!(down.to_status().code, 503);
        assert_eq!(
            Code::StatusWriterForbidden.as_str(),
            "status_writer_forbidden"
        );
    }
}
