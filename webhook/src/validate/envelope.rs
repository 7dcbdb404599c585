//! BehavioralEnvelope: `validate()` on create and on every spec change —
//! time zones that exist, currencies that exist, amounts that fit their
//! currency, per-transaction ≤ per-day, rate limits within GCRA's bounds.
//! Its status (conditions only) carries no authority.

use agentauth_crds::BehavioralEnvelope;

use super::Write;
use crate::denial::Denial;

/// Checks one write of a BehavioralEnvelope.
pub(super) fn check(write: &Write<'_, BehavioralEnvelope>) -> Result<(), Denial> {
    let changed = write
        .old
        .as_ref()
        .is_none_or(|old| old.spec != write.new.spec);
    if write.status || !changed {
        return Ok(());
    }
    write.new.spec.validate().map_err(Denial::from)
}
