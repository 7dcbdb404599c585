//! Agent: `validate()` on create and on every spec change (the key is a
//! point on P-256, not just well-formed strings); who answers for it — the
//! created-by annotation names the creating user and never changes, and
//! `spec.owner` never changes (separation of duties is decided against
//! both); and `status.keyThumbprint`, which the agent API trusts to
//! recognise the agent's DPoP key, written only by the operator and only as
//! the thumbprint of `spec.publicKey`.

use agentauth_crds::Agent;
use agentauth_crds::agent::CREATED_BY_ANNOTATION;

use super::{Validator, Write, operator_only};
use crate::denial::{Code, Denial};
use crate::lookup::Lookup;

/// Checks one write of an Agent.
pub(super) fn check<L: Lookup>(
    validator: &Validator<L>,
    write: &Write<'_, Agent>,
) -> Result<(), Denial> {
    creator(write)?;
    owner(write)?;
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

/// The created-by annotation: on create it must be the creating user (the
/// mutating endpoint sets it; if that endpoint is not registered, the Agent
/// is refused rather than stored with a creator the client chose); after
/// that it never changes. See [`crate::mutate`].
fn creator(write: &Write<'_, Agent>) -> Result<(), Denial> {
    let recorded = |agent: &Agent| {
        agent
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREATED_BY_ANNOTATION).cloned())
    };
    let new = recorded(&write.new);
    match &write.old {
        None if write.username.trim().is_empty() => Err(Denial::new(
            Code::CreatedByInvalid,
            crate::mutate::field(),
            "the apiserver named no user for this request, so its creator cannot be recorded; \
             create the Agent as an authenticated user",
        )),
        None if new.as_deref() != Some(write.username) => Err(Denial::new(
            Code::CreatedByInvalid,
            crate::mutate::field(),
            format!(
                "{} but {} is creating this Agent; the webhook's mutating endpoint \
                 (MutatingWebhookConfiguration, /mutate) records the creator: register it, \
                 and do not set this annotation yourself",
                new.as_deref().map_or_else(
                    || "it is missing".to_owned(),
                    |n| format!("it names {n:?},")
                ),
                write.username
            ),
        )),
        None => Ok(()),
        Some(old) => {
            let old = recorded(old);
            if old == new {
                return Ok(());
            }
            Err(Denial::new(
                Code::CreatedByInvalid,
                crate::mutate::field(),
                format!(
                    "the Agent's creator is recorded once and never changes (stored {}, this \
                     write {}); leave the annotation as it is",
                    old.as_deref()
                        .map_or("none".to_owned(), |o| format!("{o:?}")),
                    new.as_deref()
                        .map_or("removes it".to_owned(), |n| format!("sets {n:?}"))
                ),
            ))
        }
    }
}

/// `spec.owner` never changes (CEL says so too; this holds if the CRD were
/// installed without its rules): an approval decided against one owner must
/// not be undone by renaming it, nor a grant become approvable by its real
/// owner after a rename.
fn owner(write: &Write<'_, Agent>) -> Result<(), Denial> {
    match &write.old {
        Some(old) if old.spec.owner != write.new.spec.owner => Err(Denial::new(
            Code::OwnerImmutable,
            "spec.owner",
            format!(
                "owner cannot change (from {:?} to {:?}): separation of duties is decided \
                 against it; create a new Agent for another owner",
                old.spec.owner, write.new.spec.owner
            ),
        )),
        _ => Ok(()),
    }
}
