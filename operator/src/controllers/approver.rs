//! The Approver controller: an approver is Ready when its spec is valid and
//! it has at least one usable passkey (enrolled through the approval API,
//! which owns `status.passkeys`; this controller only reads them).

use std::sync::Arc;

use agentauth_crds::conditions::{reasons, types};
use agentauth_crds::{Approver, ApproverStatus};
use futures::Stream;
use kube::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::status::{self, Want};
use super::{ControllerError, Error, Shared, Shutdown};

const NAME: &str = "approver";

/// The Approver controller's result stream.
pub(super) fn run(
    api: Api<Approver>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) -> impl Stream<Item = Result<(ObjectRef<Approver>, Action), ControllerError>> {
    Controller::new(api.clone(), watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(
            move |approver, shared| reconcile(approver, shared, api.clone()),
            |a, e, s| s.failed(NAME, a.as_ref(), e),
            shared,
        )
}

async fn reconcile(
    approver: Arc<Approver>,
    shared: Arc<Shared>,
    api: Api<Approver>,
) -> Result<Action, Error> {
    let result = sync(&approver, &shared, &api).await;
    shared.finished(NAME, approver.as_ref(), result)
}

/// The Ready condition of an approver.
fn readiness(approver: &Approver) -> Want {
    let ready = |reason, message: String| Want::yes(types::READY, reason, message);
    let not_ready = |reason, message: String| Want::no(types::READY, reason, message);
    if let Err(e) = approver.spec.validate() {
        return not_ready(
            reasons::INVALID,
            format!("{e}; this approver cannot decide grants until it is fixed"),
        );
    }
    let passkeys = approver
        .status
        .as_ref()
        .map(|s| s.passkeys.as_slice())
        .unwrap_or_default();
    if let Some((passkey, e)) = passkeys
        .iter()
        .find_map(|p| p.validate().err().map(|e| (p, e)))
    {
        return not_ready(
            reasons::INVALID,
            format!(
                "passkey {} has an unusable key ({e}); remove it and enroll it again",
                passkey.credential_id
            ),
        );
    }
    match passkeys.len() {
        0 => not_ready(
            reasons::NO_PASSKEY,
            "no passkey is registered; enroll one with an enrollment token from an administrator"
                .to_owned(),
        ),
        1 => ready(
            reasons::PASSKEY_REGISTERED,
            "1 passkey is registered".to_owned(),
        ),
        n => ready(
            reasons::PASSKEY_REGISTERED,
            format!("{n} passkeys are registered"),
        ),
    }
}

async fn sync(approver: &Approver, shared: &Shared, api: &Api<Approver>) -> Result<Action, Error> {
    let generation = approver.metadata.generation;
    let ready = readiness(approver);
    let current = approver.status.clone().unwrap_or_default();
    let (conditions, up_to_date) = status::single_condition(
        &current.conditions,
        current.observed_generation,
        &ready,
        generation,
        shared.ctx.clock.as_ref(),
    );
    if up_to_date {
        return Ok(Action::await_change());
    }
    // passkeys stay out of the patch: they belong to the approval API.
    let desired = ApproverStatus {
        passkeys: Vec::new(),
        observed_generation: generation,
        conditions: conditions.clone(),
    };
    status::apply(api, approver, &desired).await?;
    if status::changed(&current.conditions, &conditions, types::READY) {
        shared
            .event(
                approver,
                !ready.status,
                ready.reason,
                "CheckPasskeys",
                &ready.message,
            )
            .await;
    }
    Ok(Action::await_change())
}
