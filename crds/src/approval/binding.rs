//! What an approval binds beyond the grant spec (DESIGN §13): the digest of
//! the envelope's spec and the thumbprint of the agent's key, and the
//! refusal of an approval that no longer matches them.

use agentauth_core::ErrorCode;
use agentauth_core::approval;
use kube::ResourceExt;

use crate::invalid::{At, Invalid};
use crate::{Agent, Approval, BehavioralEnvelope, CapabilityGrant};

/// What an approval binds beyond the grant spec (DESIGN §13): the envelope's
/// spec and the agent's key, as digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// base64url(SHA-256(JCS(envelope.spec))), or `""` when the grant names
    /// no envelope.
    pub envelope_digest: String,
    /// The RFC 7638 thumbprint of the agent's `spec.publicKey`.
    pub agent_key_thumbprint: String,
}

/// What changed since an approval was signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// The envelope's spec.
    Envelope,
    /// The agent's key.
    AgentKey,
    /// Both.
    Both,
}

impl Binding {
    /// The binding of `grant` now: the digest of `envelope`'s spec (which
    /// must be the one `spec.envelopeRef` names, in the grant's namespace)
    /// and the thumbprint of `agent`'s key. A grant naming an envelope that
    /// is not given fails with `envelope_not_found`.
    pub fn of(
        grant: &CapabilityGrant,
        envelope: Option<&BehavioralEnvelope>,
        agent: &Agent,
    ) -> Result<Binding, Invalid> {
        let envelope_digest = match &grant.spec.envelope_ref {
            None => String::new(),
            Some(reference) => {
                let envelope = envelope
                    .filter(|e| {
                        e.name_any() == reference.name && e.namespace() == grant.namespace()
                    })
                    .ok_or_else(|| {
                        Invalid::new(
                            "spec.envelopeRef",
                            ErrorCode::EnvelopeNotFound,
                            format!(
                                "envelope {} does not exist in namespace {}; create it or fix \
                                 spec.envelopeRef",
                                reference.name,
                                grant.namespace().unwrap_or_default()
                            ),
                        )
                    })?;
                approval::envelope_digest(&envelope.spec).at("spec")?
            }
        };
        Ok(Binding {
            envelope_digest,
            agent_key_thumbprint: agent.spec.key_thumbprint()?,
        })
    }

    /// The binding an approval recorded.
    pub fn recorded(approval: &Approval) -> Binding {
        Binding {
            envelope_digest: approval.envelope_digest.clone(),
            agent_key_thumbprint: approval.agent_key_thumbprint.clone(),
        }
    }

    /// What differs between the binding `self` recorded and `now`.
    pub fn changed(&self, now: &Binding) -> Option<Changed> {
        match (
            self.envelope_digest != now.envelope_digest,
            self.agent_key_thumbprint != now.agent_key_thumbprint,
        ) {
            (false, false) => None,
            (true, false) => Some(Changed::Envelope),
            (false, true) => Some(Changed::AgentKey),
            (true, true) => Some(Changed::Both),
        }
    }
}

/// The refusal of a genuine approval whose envelope or agent key moved on.
pub(super) fn suspended(at: &str, changed: Changed) -> Invalid {
    let (field, what) = match changed {
        Changed::Envelope => ("envelopeDigest", "the envelope's spec changed"),
        Changed::AgentKey => ("agentKeyThumbprint", "the agent's key changed"),
        Changed::Both => (
            "envelopeDigest",
            "the envelope's spec and the agent's key changed",
        ),
    };
    Invalid::new(
        format!("{at}.{field}"),
        ErrorCode::GrantSuspended,
        format!(
            "{what} after the approval was signed; the grant is suspended until an approver \
             approves it again (or the previous value is restored)"
        ),
    )
}
