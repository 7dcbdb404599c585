//! Verification of a grant's recorded approval: the one implementation the
//! operator and the admission webhook share.
//!
//! ```text
//!  grant.spec ──JCS, SHA-256──▶ specDigest ══ status.approval.specDigest
//!  metadata.generation ════════════════════ status.approval.generation
//!  (uid, generation, specDigest, decision, nonce,
//!   recorded envelopeDigest, agentKeyThumbprint) ──▶ challenge
//!  approver.status.passkeys[credentialId] ──▶ webauthn::verify(assertion, challenge, rp, UV required)
//!  approver.spec.scope ∋ grant namespace, grantSelector matches grant labels
//!  Agent.spec.owner ≠ approver (separation of duties)
//!  envelope.spec ──JCS, SHA-256──▶ ══ status.approval.envelopeDigest   ┐ else grant_suspended
//!  Agent.spec.publicKey ──RFC 7638──▶ ══ status.approval.agentKeyThumbprint ┘
//! ```
//!
//! **What the approval covers.** The grant spec names its envelope and agent
//! only by reference, so an approval also binds a [`Binding`]: the digest of
//! the envelope's spec and the agent key's thumbprint, as the approver saw
//! them. The signature is checked over the recorded values first (is this a
//! genuine approval?), then the recorded values are compared with the
//! current envelope and key (does it still cover what would be enforced?).
//! A genuine approval that no longer matches is refused with
//! `grant_suspended`: the grant waits, usable again when the envelope or key
//! is put back or an approver approves the new values.
//!
//! **Who owns an agent.** `Agent.spec.owner` holds the accountable human's
//! email address, the identity an Approver carries in `spec.email`; the two
//! are compared ignoring ASCII case (mail systems treat them so). An owner
//! written as a bare name is also compared with the Approver's
//! `metadata.name`, so an approver can never decide their own agent's grants
//! by either identity.
//!
//! **Sign counters.** A passkey's stored `signCount` moves forward with every
//! approval its holder makes, so it says something about an assertion only at
//! the moment that assertion is first recorded ([`CounterCheck::Fresh`]: the
//! approval API and the webhook, before the count is advanced). Re-checking an
//! approval already recorded ([`CounterCheck::Recorded`]: the operator) against
//! today's count would refuse every legitimate approval its holder has made
//! since; there, the counter is only required to be non-zero when the passkey
//! is known to count. A forger holding the private key could choose any
//! counter anyway: the counter catches careless clones, the signature catches
//! forgers.

use std::collections::BTreeMap;

use agentauth_core::approval::{self, ChallengeInput, Decision};
use agentauth_core::webauthn::{self, Assertion, Credential, Expected};
use agentauth_core::{ErrorCode, b64};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::invalid::{At, Invalid};
use crate::{Agent, Approval, Approver, BehavioralEnvelope, CapabilityGrant, Passkey};

mod binding;
pub mod quorum;
// A test helper (signing with a software passkey): only with the `testing`
// feature, so the product binary holds no way to sign an approval.
#[cfg(any(test, feature = "testing"))]
mod soft;
#[cfg(test)]
mod tests;

use binding::suspended;
pub use binding::{Binding, Changed};
pub use quorum::{Tally, tally};
#[cfg(any(test, feature = "testing"))]
pub use soft::{SoftDecision, sign_with_soft_authenticator};

/// How an assertion's sign counter is compared with the passkey's stored one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterCheck {
    /// The approval is being recorded now and the stored counter predates it:
    /// the assertion's counter must be larger (unless both are zero).
    Fresh,
    /// The approval was recorded earlier and the stored counter may have moved
    /// past it since: a passkey that counts must not present zero.
    Recorded,
}

/// What a verified approval established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedApproval {
    /// The human decision.
    pub decision: Decision,
    /// The Approver's name.
    pub approver: String,
    /// The passkey's credential id.
    pub credential_id: String,
    /// The assertion's sign counter (the value to store after a fresh approval).
    pub sign_count: u32,
}

/// Verifies `grant.status.approval` as the operator does before it acts on
/// it: the approval was recorded earlier ([`CounterCheck::Recorded`]). See
/// [`verify`] for the checks.
pub fn verify_approval(
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
    agent: &Agent,
    approver: &Approver,
    rp_id: &str,
    origins: &[String],
) -> Result<VerifiedApproval, Invalid> {
    verify(
        grant,
        envelope,
        agent,
        approver,
        rp_id,
        origins,
        CounterCheck::Recorded,
    )
}

/// Verifies `grant.status.approval` as it is being recorded (the approval API
/// and the webhook): the sign counter must have increased.
pub fn verify_new_approval(
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
    agent: &Agent,
    approver: &Approver,
    rp_id: &str,
    origins: &[String],
) -> Result<VerifiedApproval, Invalid> {
    verify(
        grant,
        envelope,
        agent,
        approver,
        rp_id,
        origins,
        CounterCheck::Fresh,
    )
}

/// Verifies the approval recorded in `grant.status.approval`, made by
/// `approver` for a grant of `agent` under `envelope` (the one
/// `spec.envelopeRef` names, when it does): the signed spec digest and
/// generation are the grant's current ones, the approver may decide this
/// grant (scope, separation of duties), the WebAuthn assertion verifies
/// against the approver's registered passkey over the recomputed challenge,
/// with user verification, and the recorded envelope digest and agent key
/// thumbprint are those of the envelope and key now (else
/// `grant_suspended`: a genuine approval of something else). Every refusal
/// carries the stable code of the failed check, e.g.
/// `approval_signature_invalid`.
pub fn verify(
    grant: &CapabilityGrant,
    envelope: Option<&BehavioralEnvelope>,
    agent: &Agent,
    approver: &Approver,
    rp_id: &str,
    origins: &[String],
    counter: CounterCheck,
) -> Result<VerifiedApproval, Invalid> {
    let approval = recorded_approval(grant)?;
    let record = Record {
        approval,
        at: "status.approval",
    };
    verify_record(
        grant, record, envelope, agent, approver, rp_id, origins, counter,
    )
}

/// One recorded decision and where it sits in the status, for messages:
/// `status.approval` or `status.approvals[i]`.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The recorded decision.
    pub approval: &'a Approval,
    /// Its field path, e.g. `status.approvals[0]`.
    pub at: &'a str,
}

/// Verifies one recorded decision on `grant` (`status.approval` or an entry
/// of `status.approvals`) with every check [`verify`] describes: the one
/// code path for a single approval and for each approval of a quorum.
#[allow(
    clippy::too_many_arguments,
    reason = "the parties, the relying party and the counter rule are each needed; a struct would only rename them"
)]
pub fn verify_record(
    grant: &CapabilityGrant,
    record: Record<'_>,
    envelope: Option<&BehavioralEnvelope>,
    agent: &Agent,
    approver: &Approver,
    rp_id: &str,
    origins: &[String],
    counter: CounterCheck,
) -> Result<VerifiedApproval, Invalid> {
    let Record { approval, at } = record;
    check_parties(grant, agent, approver, record)?;
    let challenge = signed_challenge(grant, record)?;
    let sign_count = check_assertion(record, approver, &challenge, rp_id, origins, counter)?;
    // Checked after the signature: only a genuine approval of other values is
    // `grant_suspended`; a forged one is refused for its signature.
    let now = Binding::of(grant, envelope, agent)?;
    if let Some(changed) = Binding::recorded(approval).changed(&now) {
        return Err(suspended(at, changed));
    }
    Ok(VerifiedApproval {
        decision: approval.decision,
        approver: approval.approver.clone(),
        credential_id: approval.credential_id.clone(),
        sign_count,
    })
}

/// `grant.status.approval`, or `grant_not_approved` when none is recorded.
fn recorded_approval(grant: &CapabilityGrant) -> Result<&Approval, Invalid> {
    grant
        .status
        .as_ref()
        .and_then(|s| s.approval.as_ref())
        .ok_or_else(|| {
            Invalid::new(
                "status.approval",
                ErrorCode::GrantNotApproved,
                "no decision is recorded",
            )
        })
}

/// The challenge the approver signed, recomputed from the grant as it is now:
/// refused when the recorded generation or spec digest is not the current one.
fn signed_challenge(grant: &CapabilityGrant, record: Record<'_>) -> Result<[u8; 32], Invalid> {
    let Record { approval, at } = record;
    let uid = grant.metadata.uid.as_deref().unwrap_or_default();
    let generation = grant.metadata.generation.unwrap_or_default();
    if approval.generation != generation {
        return Err(Invalid::new(
            format!("{at}.generation"),
            ErrorCode::ApprovalChallengeMismatch,
            format!(
                "the decision was signed for generation {} but the grant is at generation {generation}",
                approval.generation
            ),
        ));
    }
    let spec_digest = approval::spec_digest(&grant.spec).at("spec")?;
    if spec_digest != approval.spec_digest {
        return Err(Invalid::new(
            format!("{at}.specDigest"),
            ErrorCode::ApprovalChallengeMismatch,
            "the decision was signed for another spec than the grant's current one",
        ));
    }
    approval::challenge(&ChallengeInput {
        grant_uid: uid.to_owned(),
        generation,
        spec_digest,
        decision: approval.decision,
        nonce: approval.nonce.clone(),
        envelope_digest: approval.envelope_digest.clone(),
        agent_key_thumbprint: approval.agent_key_thumbprint.clone(),
    })
    .at(at)
}

/// Verifies the recorded WebAuthn assertion over `challenge` against the
/// approver's registered passkey, with user verification; returns the
/// assertion's sign counter.
fn check_assertion(
    record: Record<'_>,
    approver: &Approver,
    challenge: &[u8],
    rp_id: &str,
    origins: &[String],
    counter: CounterCheck,
) -> Result<u32, Invalid> {
    let Record { approval, at } = record;
    let passkey = find_passkey(approver, record)?;
    let key = passkey.public_key.to_public_key().at(format!(
        "Approver {}: status.passkeys[{}].publicKey",
        approver.name_any(),
        approval.credential_id
    ))?;
    let authenticator_data = decode(&approval.authenticator_data, at, "authenticatorData")?;
    let client_data_json = decode(&approval.client_data_json, at, "clientDataJSON")?;
    let signature = decode(&approval.signature, at, "signature")?;
    let verified = webauthn::verify(
        &Assertion {
            authenticator_data: &authenticator_data,
            client_data_json: &client_data_json,
            signature: &signature,
        },
        &Expected {
            challenge,
            rp_id,
            origins,
            require_user_verification: true,
        },
        &Credential {
            key: &key.key,
            sign_count: stored_counter(counter, passkey, &authenticator_data),
        },
    )
    .at(at)?;
    Ok(verified.sign_count)
}

/// The stored counter to compare the assertion's with, as `counter` asks
/// (see [`CounterCheck`]).
fn stored_counter(counter: CounterCheck, passkey: &Passkey, authenticator_data: &[u8]) -> u32 {
    match counter {
        CounterCheck::Fresh => passkey.sign_count,
        // core refuses a zero counter against a non-zero stored one, and
        // accepts any counter against a stored zero.
        CounterCheck::Recorded if presented_counter(authenticator_data) == Some(0) => {
            passkey.sign_count
        }
        CounterCheck::Recorded => 0,
    }
}

/// The approval names this approver, the agent is the grant's, the grant is
/// in the approver's scope, and the approver does not own the agent.
fn check_parties(
    grant: &CapabilityGrant,
    agent: &Agent,
    approver: &Approver,
    record: Record<'_>,
) -> Result<(), Invalid> {
    let Record { approval, at } = record;
    let by = format!("{at}.approver");
    let invalid =
        |field: &str, message: String| Invalid::new(field, ErrorCode::ApprovalInvalid, message);
    let approver_name = approver.name_any();
    if approval.approver != approver_name {
        return Err(invalid(
            &by,
            format!(
                "the decision names approver {:?}, not {approver_name:?}",
                approval.approver
            ),
        ));
    }
    let namespace = grant.namespace().unwrap_or_default();
    if agent.name_any() != grant.spec.agent_ref.name || agent.namespace() != grant.namespace() {
        return Err(invalid(
            "spec.agentRef",
            format!(
                "the grant belongs to agent {namespace}/{}, not {}/{}",
                grant.spec.agent_ref.name,
                agent.namespace().unwrap_or_default(),
                agent.name_any()
            ),
        ));
    }
    if grant.metadata.uid.as_deref().unwrap_or_default().is_empty() {
        return Err(invalid("metadata.uid", "the grant has no uid".to_owned()));
    }
    if !approver.spec.covers_namespace(&namespace) {
        return Err(invalid(
            &by,
            format!("approver {approver_name} may not decide grants in namespace {namespace}"),
        ));
    }
    if let Some(selector) = &approver.spec.scope.grant_selector {
        let labels = grant.metadata.labels.clone().unwrap_or_default();
        if !selects(selector.clone(), &labels) {
            return Err(invalid(
                &by,
                format!(
                    "approver {approver_name} may only decide grants matching its \
                     scope.grantSelector, and this grant's labels do not match"
                ),
            ));
        }
    }
    if owns(agent, approver) {
        return Err(invalid(
            &by,
            format!(
                "approver {approver_name} owns agent {} (spec.owner {:?}) and may not decide \
                 its grants; another approver must",
                agent.name_any(),
                agent.spec.owner
            ),
        ));
    }
    Ok(())
}

/// Whether a label selector matches; a selector that cannot be parsed
/// matches nothing (an approver's scope fails closed).
fn selects(
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    Selector::try_from(selector).is_ok_and(|s| s.matches(labels))
}

/// Whether `approver` answers for `agent`, by its email or its name: as the
/// agent's `spec.owner` (an email address, or a bare Approver name), or as
/// the Kubernetes user who created it (annotation
/// [`agentauth.dev/created-by`](crate::agent::CREATED_BY_ANNOTATION), which
/// the webhook records) — so naming someone else as owner does not let an
/// approver decide the grants of an agent it made. See [`Agent::is_owned_by`].
pub fn owns(agent: &Agent, approver: &Approver) -> bool {
    agent.is_owned_by([approver.spec.email.as_str(), approver.name_any().as_str()])
}

fn find_passkey<'a>(approver: &'a Approver, record: Record<'_>) -> Result<&'a Passkey, Invalid> {
    let credential_id = record.approval.credential_id.as_str();
    approver
        .status
        .as_ref()
        .and_then(|s| s.passkeys.iter().find(|p| p.credential_id == credential_id))
        .ok_or_else(|| {
            Invalid::new(
                format!("{}.credentialId", record.at),
                ErrorCode::ApprovalSignatureInvalid,
                format!(
                    "approver {} has no registered passkey with credential id {credential_id:?}",
                    approver.name_any()
                ),
            )
        })
}

fn decode(value: &str, at: &str, field: &str) -> Result<Vec<u8>, Invalid> {
    b64::decode(value, ErrorCode::ApprovalInvalid).at(format!("{at}.{field}"))
}

/// The sign counter in authenticator data (bytes 33..37), when it is long enough.
fn presented_counter(authenticator_data: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = authenticator_data.get(33..37)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}
