//! Fixtures of the controller tests: a real apiserver (the testenv control
//! plane), the in-process shared state, and the controllers of one test
//! namespace, started and stopped like an operator process.
//!
//! ```text
//!  test ──kube Api──▶ apiserver ◀──watch / SSA── controllers (namespace of the test)
//!  test ◀──get_grant / audit_events── InProcessState ◀── controllers
//! ```
//!
//! Approvals are made the way the approval API makes them: a software
//! passkey signs the challenge and the approval lands in `status.approval`
//! through a server-side apply of the status subresource.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub use crate::builders::*;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::approval::Decision;
use agentauth_core::audit::AuditEvent;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::approval::Binding;
use agentauth_crds::{Agent, Approval, Approver, BehavioralEnvelope, CapabilityGrant, GrantPhase};
use agentauth_operator::audit::AuditSink;
use agentauth_operator::cache::Caches;
use agentauth_operator::clock::{Clock, SystemClock};
use agentauth_operator::context::{Context, RelyingParty};
use agentauth_operator::controllers::Controllers;
use agentauth_operator::metrics::Metrics;
use agentauth_state::{InProcessState, SharedState};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The audit producer of the operator under test.
pub const PRODUCER: &str = "operator/controllers-test";
/// The relying party approvals are made for.
pub const RP_ID: &str = "localhost";
/// The approval UI's origin.
pub const ORIGIN: &str = "http://localhost:5173";
/// The field manager the approval API would write with.
pub const APPROVAL_API: &str = "agentauth-approval-api";
/// How long a test waits for the controllers to converge.
pub const CONVERGE: Duration = Duration::from_secs(20);

/// One test's namespace, clients and shared state.
pub struct Env {
    pub ns: String,
    pub client: Client,
    pub state: Arc<InProcessState>,
}

impl Env {
    /// A fresh namespace on the shared control plane, CRDs installed.
    pub async fn new(prefix: &str) -> Env {
        let cp = agentauth_testenv::shared().await;
        cp.install_crds(&agentauth_testenv::generated_crds_dir())
            .await
            .unwrap();
        let ns = cp.test_namespace(prefix).await.unwrap();
        Env {
            ns,
            client: cp.client().unwrap(),
            state: Arc::new(InProcessState::new()),
        }
    }

    /// An operator context on this env's shared state, as a fresh process
    /// would build it (its audit chain resumes from the state).
    pub async fn context(&self) -> Arc<Context> {
        self.context_on(self.state.clone(), PRODUCER).await
    }

    /// An operator context on `state` (e.g. a wrapper of this env's state)
    /// whose audit producer is `producer`.
    pub async fn context_on(&self, state: Arc<dyn SharedState>, producer: &str) -> Arc<Context> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metrics = Metrics::new().unwrap();
        let audit = AuditSink::start(producer, state.clone(), clock.clone(), metrics.clone())
            .await
            .unwrap();
        let caches = Caches::start(&self.client).await.unwrap();
        Arc::new(Context {
            client: self.client.clone(),
            caches,
            state,
            audit,
            metrics,
            clock,
            relying_party: RelyingParty {
                id: RP_ID.into(),
                origins: vec![ORIGIN.into()],
            },
        })
    }

    /// Starts the controllers of this namespace on a fresh context.
    pub async fn operator(&self) -> Operator {
        self.operator_on(self.state.clone(), PRODUCER).await
    }

    /// Starts the controllers of this namespace on `state`, as `producer`.
    pub async fn operator_on(&self, state: Arc<dyn SharedState>, producer: &str) -> Operator {
        let ctx = self.context_on(state, producer).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = Controllers::new(ctx.clone())
            .namespace(&self.ns)
            .run(async move {
                let _ = stopped.await;
            });
        Operator {
            ctx,
            task: Some(tokio::spawn(run)),
            stop: Some(stop),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn approvers(&self) -> Api<Approver> {
        Api::all(self.client.clone())
    }

    /// A unique approver name for this test (Approvers are cluster-scoped).
    pub fn approver_name(&self, who: &str) -> String {
        format!("{who}-{}", self.ns)
    }

    pub async fn grant(&self, name: &str) -> CapabilityGrant {
        self.api::<CapabilityGrant>().get(name).await.unwrap()
    }

    pub async fn phase(&self, name: &str) -> Option<GrantPhase> {
        self.grant(name).await.status.and_then(|s| s.phase)
    }

    /// Waits until grant `name` is in `phase`.
    pub async fn wait_phase(&self, name: &str, phase: GrantPhase) -> CapabilityGrant {
        let api = self.api::<CapabilityGrant>();
        wait_for(
            &format!("grant {name} to be {phase:?}"),
            CONVERGE,
            || async {
                let grant = api.get(name).await.ok()?;
                (grant.status.as_ref()?.phase? == phase).then_some(grant)
            },
        )
        .await
    }

    /// The audit events about grant `name`, after flushing `ctx`'s writer.
    pub async fn audit(&self, ctx: &Context, name: &str) -> Vec<AuditEvent> {
        ctx.audit.flush().await;
        let grant = format!("{}/{name}", self.ns);
        self.state
            .audit_events(0, usize::MAX)
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| e.grant.as_deref() == Some(grant.as_str()))
            .collect()
    }

    /// The kinds of [`Env::audit`].
    pub async fn audit_kinds(&self, ctx: &Context, name: &str) -> Vec<String> {
        self.audit(ctx, name)
            .await
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    pub async fn create<K>(&self, object: &K) -> K
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .create(&PostParams::default(), object)
            .await
            .unwrap()
    }

    /// An Agent owned by `owner`, a Ready approver `who` scoped to this
    /// namespace with a software passkey, and an envelope `limits`.
    pub async fn world(&self, owner: &str, who: &str) -> World {
        self.create(&mk_agent("assistant", owner)).await;
        self.create(&mk_envelope("limits")).await;
        let passkey = SoftAuthenticator::new();
        let approver = self.approver_name(who);
        self.register(&approver, &[self.ns.as_str()], &passkey)
            .await;
        World { approver, passkey }
    }

    /// Creates approver `name` (email `<name>@example.com`) with `passkey`.
    pub async fn register(&self, name: &str, namespaces: &[&str], passkey: &SoftAuthenticator) {
        let approver: Approver = serde_json::from_value(json!({
            "apiVersion": "agentauth.dev/v1alpha1",
            "kind": "Approver",
            "metadata": {"name": name},
            "spec": {
                "displayName": "Dana Fischer",
                "email": format!("{name}@example.com"),
                "scope": {"namespaces": namespaces},
            },
        }))
        .unwrap();
        self.approvers()
            .create(&PostParams::default(), &approver)
            .await
            .unwrap();
        let key = EcPublicJwk::from_key(&passkey.public_key().unwrap());
        let status = json!({
            "apiVersion": "agentauth.dev/v1alpha1",
            "kind": "Approver",
            "status": {"passkeys": [{
                "credentialId": "cred-1",
                "publicKey": key,
                "signCount": 0,
                "createdAt": "2026-01-01T00:00:00Z",
            }]},
        });
        let params = PatchParams::apply(APPROVAL_API).force();
        self.approvers()
            .patch_status(name, &params, &Patch::Apply(&status))
            .await
            .unwrap();
    }

    /// Signs `decision` on grant `name`'s current spec with `passkey` as
    /// `approver`, and records it as the approval API does.
    pub async fn decide(
        &self,
        name: &str,
        approver: &str,
        passkey: &mut SoftAuthenticator,
        decision: Decision,
    ) {
        let grant = self.grant(name).await;
        let binding = self.binding(&grant).await;
        let approval = sign(&grant, &binding, approver, passkey, decision);
        self.record(name, &approval).await.unwrap();
    }

    /// What an approval of `grant` binds now: its envelope's spec digest and
    /// its agent key's thumbprint, read from the apiserver.
    pub async fn binding(&self, grant: &CapabilityGrant) -> Binding {
        let agent = self
            .api::<Agent>()
            .get(&grant.spec.agent_ref.name)
            .await
            .unwrap();
        let envelope = match &grant.spec.envelope_ref {
            Some(r) => self
                .api::<BehavioralEnvelope>()
                .get_opt(&r.name)
                .await
                .unwrap(),
            None => None,
        };
        Binding::of(grant, envelope.as_ref(), &agent).unwrap()
    }

    /// Writes `status.approval` of grant `name` (the approval API's write).
    pub async fn record(&self, name: &str, approval: &Approval) -> Result<(), kube::Error> {
        let patch = json!({
            "apiVersion": "agentauth.dev/v1alpha1",
            "kind": "CapabilityGrant",
            "status": {"approval": approval},
        });
        let params = PatchParams::apply(APPROVAL_API).force();
        self.api::<CapabilityGrant>()
            .patch_status(name, &params, &Patch::Apply(&patch))
            .await
            .map(|_| ())
    }

    /// Sets `spec.revoked: true` on grant `name`.
    pub async fn revoke(&self, name: &str) {
        let patch = json!({"spec": {"revoked": true}});
        self.api::<CapabilityGrant>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
}

/// The approver of a test and their passkey.
pub struct World {
    pub approver: String,
    pub passkey: SoftAuthenticator,
}

/// The controllers of one namespace, like one operator process.
pub struct Operator {
    pub ctx: Arc<Context>,
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Operator {
    /// Kills it: reconciles in flight are abandoned, like a crashed pod.
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops it gracefully: reconciles in flight finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Reconciles counted by `controller`.
    pub fn reconciles(&self, controller: &str) -> u64 {
        self.ctx
            .metrics
            .reconciles
            .with_label_values(&[controller])
            .get()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Polls `probe` every 20 ms until it yields a value, or fails the test
/// after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The grant's uid.
pub fn uid(grant: &CapabilityGrant) -> String {
    grant.uid().unwrap()
}
