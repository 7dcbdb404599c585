//! The Agent controller: checks the agent's key and publishes its RFC 7638
//! thumbprint in `status.keyThumbprint`, which the agent API compares DPoP
//! proofs with and tokens are bound to (`cnf.jkt`).

use std::sync::Arc;

use agentauth_crds::conditions::{reasons, types};
use agentauth_crds::{Agent, AgentStatus};
use futures::Stream;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::status::{self, Want};
use super::{ControllerError, Error, Shared, Shutdown};

const NAME: &str = "agent";

/// The Agent controller's result stream.
pub(super) fn run(
    api: Api<Agent>,
    shared: Arc<Shared>,
    shutdown: Shutdown,
) -> impl Stream<Item = Result<(ObjectRef<Agent>, Action), ControllerError>> {
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |a, e, s| s.failed(NAME, a.as_ref(), e), shared)
}

async fn reconcile(agent: Arc<Agent>, shared: Arc<Shared>) -> Result<Action, Error> {
    let result = sync(&agent, &shared).await;
    shared.finished(NAME, agent.as_ref(), result)
}

async fn sync(agent: &Agent, shared: &Shared) -> Result<Action, Error> {
    let generation = agent.metadata.generation;
    let (thumbprint, ready) = match agent
        .spec
        .validate()
        .and_then(|()| agent.spec.key_thumbprint())
    {
        Ok(thumbprint) => {
            let message = format!(
                "the public key is usable; tokens are bound to its thumbprint {thumbprint}"
            );
            (
                Some(thumbprint),
                Want::yes(types::READY, reasons::VALID, message),
            )
        }
        Err(e) => {
            let reason = if e.field.starts_with("spec.publicKey") {
                reasons::KEY_INVALID
            } else {
                reasons::INVALID
            };
            let message =
                format!("{e}; no grant of this agent can be used until the spec is fixed");
            (None, Want::no(types::READY, reason, message))
        }
    };
    let current = agent.status.clone().unwrap_or_default();
    let (conditions, up_to_date) = status::single_condition(
        &current.conditions,
        current.observed_generation,
        &ready,
        generation,
        shared.ctx.clock.as_ref(),
    );
    if up_to_date && current.key_thumbprint == thumbprint {
        return Ok(Action::await_change());
    }
    let desired = AgentStatus {
        observed_generation: generation,
        key_thumbprint: thumbprint,
        conditions: conditions.clone(),
    };
    let namespace = agent.namespace().ok_or_else(|| Error::Incomplete {
        object: status::describe(agent),
        field: "namespace",
    })?;
    status::apply(
        &Api::<Agent>::namespaced(shared.ctx.client.clone(), &namespace),
        agent,
        &desired,
    )
    .await?;
    if status::changed(&current.conditions, &conditions, types::READY) {
        shared
            .event(
                agent,
                !ready.status,
                ready.reason,
                "ValidateKey",
                &ready.message,
            )
            .await;
    }
    Ok(Action::await_change())
}
