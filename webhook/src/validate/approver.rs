//! Approver: `validate()` on create and spec change (email, scope); and the
//! passkeys in status, which every approval is verified against — written
//! only by the operator (its approval API enrolls them and advances their
//! counters). A registered passkey keeps its public key and enrollment
//! time, and its sign counter never goes back (a counter moved back would
//! let an old assertion verify as fresh). Removing a passkey is allowed.

use agentauth_crds::{Approver, Passkey};

use super::{Validator, Write, operator_only};
use crate::denial::{Code, Denial};
use crate::lookup::Lookup;

/// Checks one write of an Approver.
pub(super) fn check<L: Lookup>(
    validator: &Validator<L>,
    write: &Write<'_, Approver>,
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
    let passkeys = |a: &Approver| {
        a.status
            .as_ref()
            .map(|s| s.passkeys.clone())
            .unwrap_or_default()
    };
    let new = passkeys(&write.new);
    let old = write.old.as_ref().map(passkeys).unwrap_or_default();
    if new == old {
        return Ok(());
    }
    operator_only(validator, write.username, "status.passkeys")?;
    for (i, passkey) in new.iter().enumerate() {
        let field = format!("status.passkeys[{i}]");
        match old
            .iter()
            .find(|o| o.credential_id == passkey.credential_id)
        {
            None => passkey
                .validate()
                .map_err(|e| Denial::core(e.code, format!("{field}.{}", e.field), e.message))?,
            Some(registered) => unchanged(registered, passkey, &field)?,
        }
    }
    Ok(())
}

fn unchanged(registered: &Passkey, new: &Passkey, field: &str) -> Result<(), Denial> {
    if registered.public_key != new.public_key || registered.created_at != new.created_at {
        return Err(Denial::new(
            Code::PasskeyImmutable,
            format!("{field}.publicKey"),
            format!(
                "passkey {:?} is registered with another key; enroll a new passkey instead of \
                 replacing one",
                new.credential_id
            ),
        ));
    }
    if new.sign_count < registered.sign_count {
        return Err(Denial::new(
            Code::PasskeyImmutable,
            format!("{field}.signCount"),
            format!(
                "the sign counter of passkey {:?} may only increase (from {} to {})",
                new.credential_id, registered.sign_count, new.sign_count
            ),
        ));
    }
    Ok(())
}
