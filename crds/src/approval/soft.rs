//! Signing an approval with a software passkey, the way the approval UI
//! and a real passkey would: for tests and the `agentauth dev` walk-through.

use agentauth_core::approval::{self, ChallengeInput, Decision};
use agentauth_core::b64;
use agentauth_core::webauthn::SoftAuthenticator;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Binding;
use crate::invalid::{At, Invalid};
use crate::{Approval, CapabilityGrant};

/// A decision to sign with a [`SoftAuthenticator`].
#[derive(Clone, Debug)]
pub struct SoftDecision<'a> {
    /// The Approver's name.
    pub approver: &'a str,
    /// The passkey's credential id, as registered in the Approver's status.
    pub credential_id: &'a str,
    /// The decision.
    pub decision: Decision,
    /// The ceremony nonce (16 to 128 printable characters).
    pub nonce: &'a str,
    /// The relying party id.
    pub rp_id: &'a str,
    /// The origin the assertion claims to come from.
    pub origin: &'a str,
    /// When it was signed.
    pub signed_at: Time,
}

/// Signs a decision on `grant`'s current spec, bound to `binding` (see
/// [`Binding::of`]), with a software passkey and returns the
/// `status.approval` to record: for tests and the `agentauth dev`
/// walkthrough, never for production approvals.
pub fn sign_with_soft_authenticator(
    grant: &CapabilityGrant,
    binding: &Binding,
    authenticator: &mut SoftAuthenticator,
    decision: &SoftDecision<'_>,
) -> Result<Approval, Invalid> {
    let generation = grant.metadata.generation.unwrap_or(1);
    let spec_digest = approval::spec_digest(&grant.spec).at("spec")?;
    let challenge = approval::challenge(&ChallengeInput {
        grant_uid: grant.metadata.uid.clone().unwrap_or_default(),
        generation,
        spec_digest: spec_digest.clone(),
        decision: decision.decision,
        nonce: decision.nonce.to_owned(),
        envelope_digest: binding.envelope_digest.clone(),
        agent_key_thumbprint: binding.agent_key_thumbprint.clone(),
    })
    .at("status.approval")?;
    let (data, client, signature) =
        authenticator.assert(&challenge, decision.rp_id, decision.origin);
    Ok(Approval {
        approver: decision.approver.to_owned(),
        credential_id: decision.credential_id.to_owned(),
        decision: decision.decision,
        nonce: decision.nonce.to_owned(),
        signed_at: decision.signed_at.clone(),
        generation,
        spec_digest,
        envelope_digest: binding.envelope_digest.clone(),
        agent_key_thumbprint: binding.agent_key_thumbprint.clone(),
        authenticator_data: b64::encode(data),
        client_data_json: b64::encode(client),
        signature: b64::encode(signature),
    })
}
