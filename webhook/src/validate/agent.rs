//! Agent: `validate()` on create and on every spec change (the key is a
//! point on P-256, not just well-formed strings); and `status.keyThumbprint`,
//! which the agent API trusts to recognise the agent's DPoP key, written
//! only by the operator and only as the thumbprint of `spec.publicKey`.

use agentauth_crds::Agent;

use super::{Validator, Write, operator_only};
use crate::denial::{Code, Denial};
use crate::lookup::Lookup;

/// Checks one write of an Agent.
pub(super) fn check<L: Lookup>(
    validator: &Validator<L>,
    write: &Write<'_, Agent>,
) -> Result<(), Denial> {
    let spec_changed = write
        .old
        .as_ref()
        .is_none_or(|old| old.spec != write.new.spec);
    if !write.status && spec_changed {
        write.new.spec.validate()?;
    }
    // The status check runs on every write: a no-op on the main resource
    // while the CRD has its status subresource, a guard if it does not.
    let thumbprint = |agent: &Agent| agent.status.as_ref().and_then(|s| s.key_thumbprint.clone());
    let new = thumbprint(&write.new);
    if write.old.as_ref().and_then(thumbprint) == new {
        return Ok(());
    }
    const FIELD: &str = "status.keyThumbprint";
    operator_only(validator, write.username, FIELD)?;
    let Some(new) = new else { return Ok(()) };
    let expected = write.new.spec.key_thumbprint()?;
    if new != expected {
        return Err(Denial::new(
            Code::ThumbprintMismatch,
            FIELD,
            format!(
                "{new:?} is not the RFC 7638 thumbprint of spec.publicKey ({expected:?}); \
                 tokens would be bound to a key the agent does not hold"
            ),
        ));
    }
    Ok(())
}
