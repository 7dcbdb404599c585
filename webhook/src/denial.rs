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

/// The stable reason code of a refusal: core's one enum (DESIGN §5), which
/// also holds the codes only admission can produce (`agent_not_found`,
/// `status_writer_forbidden`, `spec_immutable`, …).
pub use agentauth_core::ErrorCode as Code;

/// The HTTP status the apiserver answers the writer with: 422 for an
/// invalid object, 503 when the webhook could not read what it needed, 403
/// for everything that is a matter of authority.
const fn http_status(code: ErrorCode) -> (u16, &'static str) {
    match code {
        ErrorCode::StateUnavailable => (503, reason::SERVICE_UNAVAILABLE),
        ErrorCode::AgentNotFound | ErrorCode::EnvelopeNotFound | ErrorCode::ThumbprintMismatch => {
            (422, reason::INVALID)
        }
        ErrorCode::ApproverNotFound
        | ErrorCode::StatusWriterForbidden
        | ErrorCode::SpecImmutable
        | ErrorCode::DecisionImmutable
        | ErrorCode::PasskeyImmutable
        | ErrorCode::CreatedByInvalid
        | ErrorCode::OwnerImmutable => (403, reason::FORBIDDEN),
        code if is_spec_code(code) => (422, reason::INVALID),
        _ => (403, reason::FORBIDDEN),
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
            | ErrorCode::ApprovalDuplicate
            | ErrorCode::ApprovalQuorumNotMet
            | ErrorCode::ApproverOutOfScope
            | ErrorCode::GrantNotApproved
            | ErrorCode::GrantSuspended
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

    /// A refusal with one of core's codes (the same as [`Denial::new`]; kept
    /// for the call sites that read better with it).
    pub fn core(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Denial::new(code, field, message)
    }

    /// The `status` of the AdmissionResponse: code, reason, message, and the
    /// field as a cause (kubectl and clients read `details.causes`).
    pub fn to_status(&self) -> Status {
        let (http, reason) = http_status(self.code);
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
