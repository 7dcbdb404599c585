//! The Approver as the approval API reads and writes it: found fresh on the
//! apiserver when a passkey is about to be checked or changed, found in the
//! informer cache when only shown; its passkeys changed under optimistic
//! concurrency; a passkey's sign counter advanced after each assertion.
//!
//! ```text
//!  get             ──▶ apiserver (fresh counters)                 404 approver_not_found
//!  logged_in       ──▶ informer cache                            401 session_invalid when gone
//!  update_passkeys ──▶ get ─▶ change ─▶ merge patch status.passkeys with the resourceVersion read
//!                      ─▶ 409: read and change again (5 times) ─▶ 503 state_unavailable
//!  advance_counter ──▶ update_passkeys: signCount = the assertion's counter, when higher
//! ```
//!
//! **One failure policy for the counter.** A counter that cannot be advanced
//! refuses the request that presented the assertion, for a login and a
//! decision alike: an answer of success would say the passkey's use is on
//! record when it is not, and a counter left behind lets a cloned
//! authenticator replay a lower counter unnoticed (WebAuthn §6.1.1).
//!
//! Passkeys are written with a merge patch of the status subresource that
//! carries the `resourceVersion` read, so concurrent writers (another
//! enrollment, a counter update, the Approver controller) never lose each
//! other's passkeys.

use std::sync::Arc;

use agentauth_core::ErrorCode;
use agentauth_crds::{Approver, Passkey};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::config::FIELD_MANAGER;
use super::reply::Refusal;
use crate::cache::Caches;

/// How often a passkey write is tried against an Approver that keeps
/// changing under it before the request is refused.
const WRITE_ATTEMPTS: usize = 5;

/// The Approver `name`, read from the apiserver (fresh passkey counters).
pub async fn get(client: Client, name: &str) -> Result<Approver, Refusal> {
    Api::<Approver>::all(client)
        .get_opt(name)
        .await
        .map_err(|e| Refusal::kube("read the Approver", &e))?
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::ApproverNotFound,
                format!("there is no Approver named {name:?}"),
            )
        })
}

/// The Approver a session is logged in as, from the informer cache: pages
/// that only show grants need no apiserver round trip.
pub fn logged_in(caches: &Caches, name: &str) -> Result<Arc<Approver>, Refusal> {
    caches.approver(name).ok_or_else(|| {
        Refusal::new(
            ErrorCode::SessionInvalid,
            format!("the Approver {name} no longer exists"),
        )
    })
}

/// The Approver's registered passkeys (none before its first enrollment).
pub fn passkeys(approver: &Approver) -> &[Passkey] {
    approver
        .status
        .as_ref()
        .map_or(&[][..], |s| s.passkeys.as_slice())
}

/// Changes the Approver's passkeys with `change` (which says whether it
/// changed anything), writing them back with the `resourceVersion` read
/// and retrying on conflict.
pub async fn update_passkeys(
    client: Client,
    name: &str,
    mut change: impl FnMut(&mut Vec<Passkey>) -> Result<bool, Refusal>,
) -> Result<(), Refusal> {
    let api: Api<Approver> = Api::all(client.clone());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    for _ in 0..WRITE_ATTEMPTS {
        let current = get(client.clone(), name).await?;
        let mut list = passkeys(&current).to_vec();
        if !change(&mut list)? {
            return Ok(());
        }
        let patch = json!({
            "metadata": {"resourceVersion": current.resource_version()},
            "status": {"passkeys": list},
        });
        match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(Refusal::kube("write the Approver's passkeys", &e)),
        }
    }
    Err(Refusal::new(
        ErrorCode::StateUnavailable,
        "the Approver kept changing while its passkeys were written; try again",
    ))
}

/// Advances the sign counter of the Approver's passkey `credential_id` to
/// `counter`, the value its latest verified assertion carried. A counter
/// already at or past it is left alone (another request got there first),
/// and the webhook refuses any counter that moves back. Fails closed: see
/// the module's failure policy.
pub async fn advance_counter(
    client: Client,
    name: &str,
    credential_id: &str,
    counter: u32,
) -> Result<(), Refusal> {
    update_passkeys(client, name, |list| {
        Ok(list
            .iter_mut()
            .find(|p| p.credential_id == credential_id && p.sign_count < counter)
            .map(|p| p.sign_count = counter)
            .is_some())
    })
    .await
}
