//! The leader's controllers: they turn specs into status, and approved grants
//! into the shared state the verifiers read (DESIGN §3, §4, §7).
//!
//! ```text
//!  Agent ──────────▶ agent.rs    validate, thumbprint ──▶ status.keyThumbprint, Ready
//!  BehavioralEnvelope ▶ envelope.rs validate ───────────▶ Ready
//!  Approver ───────▶ approver.rs passkeys ──────────────▶ Ready
//!  CapabilityGrant ▶ grant.rs    phase machine ─────────▶ status.phase, expiresAt, Ready, Approved
//!     ▲ Agent, Envelope,          │ verify_approval        │
//!     │ Approver changes          ▼                        ▼
//!     └── related.rs       shared state (put / revoke)   audit events, Kubernetes Events
//! ```
//!
//! Every status write is a server-side apply by [`FIELD_MANAGER`] of only the
//! operator's fields, with the `resourceVersion` read as a precondition
//! ([`status`]). Reconciles are idempotent; failures requeue with a
//! per-object exponential backoff and count in
//! `agentauth_reconcile_errors_total{controller, error}`.
//!
//! [`run_while_leader`] runs them only while this replica holds the leader
//! Lease ([`crate::leader`]) and aborts them the moment it stops.
//!
//! **Shared state lost.** Grants are written to the shared state only when
//! they change or at their hourly resync, so a Redis that restarts empty
//! would deny every grant (`grant_unknown`) for up to an hour. While they
//! run, the controllers set the sentinel [`keys::EPOCH`] every
//! [`EPOCH_CHECK`] (`SET NX`); finding it absent, they restart, which
//! reconciles every object again, as a new leader does, and re-publishes
//! every grant (a grant's re-publication also records the time before which
//! its proofs are refused: see `keys::since`). Reconciles that find the state
//! right write nothing, so a restart costs four LISTs and reads. On a Redis
//! Cluster the sentinel lives on one shard: see `docs/runbook.md`.

mod agent;
mod approver;
mod backoff;
mod envelope;
mod grant;
mod grant_facts;
mod grant_phase;
mod grant_state;
mod related;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentauth_state::{SharedState, StateError, keys};
use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{self, Action};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer;
use kube::{Api, Resource};
use tokio::sync::watch;

pub use grant_facts::grant_expiry_ms;
pub use grant_phase::GRANT_FINALIZER;
pub use grant_state::envelope_state;
pub use status::FIELD_MANAGER;

use crate::context::Context;
use backoff::Backoff;
use related::Related;

/// Why a reconcile failed; `label()` names it in the failure metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver refused or failed a status write.
    #[error("failed to write the status of {object}: {source}")]
    WriteStatus {
        /// The object, `Kind namespace/name`.
        object: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
    /// The object changed since it was read; the reconcile runs again on the new version.
    #[error("{0} changed while it was reconciled; retrying on the new version")]
    Conflict(String),
    /// The shared state could not be read or written.
    #[error("failed to update the shared state: {0}")]
    State(#[from] StateError),
    /// Adding or removing the grant finalizer failed.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    /// The stores of related objects have no complete list yet (their watches fail).
    #[error("the caches of agents, envelopes and approvers are not synced yet")]
    NotSynced,
    /// The object lacks what every stored object has (a uid, a namespace).
    #[error("{object} has no {field}")]
    Incomplete {
        /// The object.
        object: String,
        /// The missing field.
        field: &'static str,
    },
}

impl Error {
    /// The `error` label of `agentauth_reconcile_errors_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Error::WriteStatus { .. } => "status_write_failed",
            Error::Conflict(_) => "conflict",
            Error::State(_) => "state_unavailable",
            Error::Finalizer(_) => "finalizer_failed",
            Error::NotSynced => "caches_not_synced",
            Error::Incomplete { .. } => "incomplete_object",
        }
    }
}

/// What every reconcile shares: the operator context, the Event recorder,
/// the failure backoff and the stores of related objects.
pub(crate) struct Shared {
    ctx: Arc<Context>,
    recorder: Recorder,
    backoff: Backoff,
    related: Related,
}

impl Shared {
    /// Counts a reconcile and forgets the object's failures once it succeeds.
    fn finished<K: Resource<DynamicType = ()>>(
        &self,
        controller: &'static str,
        object: &K,
        result: Result<Action, Error>,
    ) -> Result<Action, Error> {
        self.ctx
            .metrics
            .reconciles
            .with_label_values(&[controller])
            .inc();
        if result.is_ok() {
            self.backoff.succeeded(&status::describe(object));
        }
        result
    }

    /// Publishes a Kubernetes Event about `object`; a failure is logged, never fatal.
    async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            // events.k8s.io/v1 limits a note to 1 kB.
            note: Some(note.chars().take(1000).collect()),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(object = %status::describe(object), reason, error = %e, "failed to publish an Event");
        }
    }

    /// The error policy: count, log, and requeue after the object's next backoff.
    fn failed<K: Resource<DynamicType = ()>>(
        &self,
        controller: &'static str,
        object: &K,
        error: &Error,
    ) -> Action {
        let label = error.label();
        self.ctx
            .metrics
            .reconcile_errors
            .with_label_values(&[controller, label])
            .inc();
        let what = status::describe(object);
        let delay = self.backoff.failed(&what);
        if matches!(error, Error::Conflict(_)) {
            tracing::debug!(controller, object = %what, "{error}");
        } else {
            tracing::warn!(controller, object = %what, error = %error, retry_in = ?delay, "reconcile failed");
        }
        Action::requeue(delay)
    }
}

/// The four controllers, watching every namespace or one.
#[derive(Clone)]
pub struct Controllers {
    ctx: Arc<Context>,
    namespace: Option<String>,
}

impl Controllers {
    /// Controllers over every namespace.
    pub fn new(ctx: Arc<Context>) -> Self {
        Controllers {
            ctx,
            namespace: None,
        }
    }

    /// Reconcile only the Agents, Envelopes and Grants of `namespace`
    /// (Approvers are cluster-scoped and always reconciled): a namespaced
    /// install, and tests that share an apiserver.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.ctx.client.clone(), ns),
            None => Api::all(self.ctx.client.clone()),
        }
    }

    /// Runs the four controllers until `shutdown` resolves, then lets the
    /// reconciles in flight finish. Restarts them (every object reconciled
    /// again) when the shared state lost its data (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let shutdown: Shutdown = shutdown.boxed().shared();
        // Whether new or not, the state is about to get every grant: the
        // controllers start by reconciling every object.
        if let Err(e) = self.ctx.state.mark_epoch().await {
            tracing::warn!(error = %e, "failed to set the shared state's sentinel; checking again in {EPOCH_CHECK:?}");
        }
        loop {
            tokio::select! {
                () = self.clone().run_once(shutdown.clone()) => return,
                () = epoch_lost(self.ctx.state.as_ref()) => {
                    tracing::warn!(
                        sentinel = keys::EPOCH,
                        "the shared state lost its data: restarting the controllers to re-publish every grant"
                    );
                }
            }
        }
    }

    /// One run of the four controllers, until `shutdown` resolves.
    async fn run_once(self, shutdown: Shutdown) {
        let (related, streams) =
            Related::start(self.api(), self.api(), Api::all(self.ctx.client.clone()));
        let shared = Arc::new(Shared {
            recorder: Recorder::new(self.ctx.client.clone(), Reporter::from(FIELD_MANAGER)),
            backoff: Backoff::default(),
            related,
            ctx: self.ctx.clone(),
        });
        tracing::info!(namespace = ?self.namespace, "controllers starting");
        futures::join!(
            drain(
                "agent",
                agent::run(self.api(), shared.clone(), shutdown.clone())
            ),
            drain(
                "envelope",
                envelope::run(self.api(), shared.clone(), shutdown.clone())
            ),
            drain(
                "approver",
                approver::run(
                    Api::all(self.ctx.client.clone()),
                    shared.clone(),
                    shutdown.clone()
                )
            ),
            drain("grant", grant::run(self.api(), streams, shared, shutdown)),
        );
        tracing::info!("controllers stopped");
    }

    /// Runs the controllers while `leader` says this replica leads: starts
    /// them when it becomes leader, aborts them (reconciles in flight
    /// included) as soon as it stops, and returns when the elector is gone.
    /// Dropping (or aborting) this future aborts them too.
    pub async fn run_while_leader(self, mut leader: watch::Receiver<bool>) {
        let metrics = self.ctx.metrics.clone();
        // Declared before the task, so the task is aborted before the gauge drops to 0.
        let _gauge = LeaderGauge(metrics.is_leader.clone());
        let mut running: Option<AbortOnDrop> = None;
        loop {
            let leading = *leader.borrow_and_update();
            if leading && running.is_none() {
                tracing::info!("became leader: starting the controllers");
                metrics.is_leader.set(1);
                running = Some(AbortOnDrop(tokio::spawn(
                    self.clone().run(futures::future::pending()),
                )));
            } else if !leading && let Some(task) = running.take() {
                tracing::info!("no longer leader: stopping the controllers");
                metrics.is_leader.set(0);
                task.stop().await;
            }
            if leader.changed().await.is_err() {
                break;
            }
        }
        if let Some(task) = running.take() {
            task.stop().await;
        }
    }
}

/// How often running controllers check that the shared state still holds
/// its sentinel: the bound, beyond Redis's own restart, on how long verifiers
/// deny every grant after Redis lost its data.
pub const EPOCH_CHECK: Duration = Duration::from_secs(2);

/// Resolves when the sentinel of `state` was found absent (and set again).
async fn epoch_lost(state: &dyn SharedState) {
    let start = tokio::time::Instant::now() + EPOCH_CHECK;
    let mut every = tokio::time::interval_at(start, EPOCH_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match state.mark_epoch().await {
            Ok(true) => return,
            Ok(false) => {}
            // Down: nothing to re-publish to yet; looked at again next tick.
            Err(e) => tracing::debug!(error = %e, "failed to check the shared state's sentinel"),
        }
    }
}

/// `agentauth_operator_is_leader`, back to 0 whenever the leader loop ends.
struct LeaderGauge(prometheus::IntGauge);

impl Drop for LeaderGauge {
    fn drop(&mut self) {
        self.0.set(0);
    }
}

/// The controllers' task, aborted when dropped: a replica that stops
/// leading, or whose leader loop is itself aborted, stops writing at once.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    async fn stop(mut self) {
        self.0.abort();
        // Err is the cancellation just asked for.
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the four controllers over every namespace until `shutdown` resolves.
pub async fn run_all(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    Controllers::new(ctx).run(shutdown).await;
}

/// Runs the controllers over every namespace while this replica leads (see
/// [`Controllers::run_while_leader`]).
pub async fn run_while_leader(ctx: Arc<Context>, leader: watch::Receiver<bool>) {
    Controllers::new(ctx).run_while_leader(leader).await;
}

/// Consumes a controller's result stream; failures were counted by the error policy.
async fn drain<K, S>(controller: &'static str, results: S)
where
    K: Resource,
    S: futures::Stream<
            Item = Result<(kube::runtime::reflector::ObjectRef<K>, Action), ControllerError>,
        >,
{
    results
        .for_each(|result| async move {
            match result {
                Ok(_)
                | Err(
                    controller::Error::ReconcilerFailed(..) | controller::Error::ObjectNotFound(_),
                ) => {}
                Err(e) => tracing::warn!(controller, error = %e, "controller error"),
            }
        })
        .await;
}

/// What a controller's result stream yields on failure.
type ControllerError = controller::Error<Error, kube::runtime::watcher::Error>;

/// The shutdown signal every controller of one [`Controllers::run`] shares.
type Shutdown = futures::future::Shared<futures::future::BoxFuture<'static, ()>>;
