//! The BehavioralEnvelope controller: validates the limits (time zones,
//! currencies, rate limits, token lifetime) and says so in `Ready`. The
//! grants that refer to an envelope are re-published to the shared state by
//! the grant controller, which watches envelopes too.

use std::sync::Arc;

use agentauth_crds::conditions::{reasons, types};
use agentauth_crds::{BehavioralEnvelope, BehavioralEnvelopeStatus};
use futures::Stream;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::status::{self, Want};
use super::{ControllerError, Error, Shared, Shutdown};

const NAME: &str = "envelope";

/// The BehavioralEnvelope controller's result stream.
pub(super) fn run(
    api: Api<BehavioralEnvelope>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) -> impl Stream<Item = Result<(ObjectRef<BehavioralEnvelope>, Action), ControllerError>> {
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            |e, err, s| s.failed(NAME, e.as_ref(), err),
            shared,
        )
}

async fn reconcile(
    envelope: Arc<BehavioralEnvelope>,
    shared: Arc<Shared>,
) -> Result<Action, Error> {
    let result = sync(&envelope, &shared).await;
    shared.finished(NAME, envelope.as_ref(), result)
}

async fn sync(envelope: &BehavioralEnvelope, shared: &Shared) -> Result<Action, Error> {
    let generation = envelope.metadata.generation;
    let ready = match envelope.spec.validate() {
        Ok(()) => Want::yes(
            types::READY,
            reasons::VALID,
            "the limits are valid and apply to every grant that names this envelope",
        ),
        Err(e) => Want::no(
            types::READY,
            reasons::INVALID,
            format!("{e}; grants naming this envelope cannot be used until it is fixed"),
        ),
    };
    let current = envelope.status.clone().unwrap_or_default();
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
    let desired = BehavioralEnvelopeStatus {
        observed_generation: generation,
        conditions: conditions.clone(),
    };
    let namespace = envelope.namespace().ok_or_else(|| Error::Incomplete {
        object: status::describe(envelope),
        field: "namespace",
    })?;
    let api = Api::<BehavioralEnvelope>::namespaced(shared.ctx.client.clone(), &namespace);
    status::apply(&api, envelope, &desired).await?;
    if status::changed(&current.conditions, &conditions, types::READY) {
        shared
            .event(
                envelope,
                !ready.status,
                ready.reason,
                "Validate",
                &ready.message,
            )
            .await;
    }
    Ok(Action::await_change())
}
