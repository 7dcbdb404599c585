//! Fixtures of the approval API tests: the real apiserver with the real
//! admission webhook registered, the operator's API (agent API with the
//! approval API mounted) on a loopback port, the grant controllers of the
//! test's namespace, and software passkeys driving it as browsers would.
//!
//! ```text
//!  SoftApprover ──HTTP──▶ router_with_approvals ──▶ apiserver ──admission──▶ webhook thread
//!     (cookie, CSRF)        (operator identity)        ▲
//!                                controllers ──────────┘ (phase Approved / Denied)
//! ```
//!
//! The operator's API runs on a [`ManualClock`] (starting at the real time)
//! so a test can age sessions and enrollment tokens; the controllers keep
//! the system clock.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::{Approver, CapabilityGrant};
use agentauth_operator::api::{ApiState, router_with_approvals};
use agentauth_operator::approvals::{Approvals, ApprovalsConfig, tokens};
use agentauth_operator::audit::AuditSink;
use agentauth_operator::cache::Caches;
use agentauth_operator::clock::{Clock, ManualClock, SystemClock};
use agentauth_operator::context::{Context, RelyingParty};
use agentauth_operator::controllers::Controllers;
use agentauth_operator::metrics::Metrics;
use agentauth_signer::{HierarchyConfig, KeyHierarchy, LocalSigner, Signer};
use agentauth_soft_passkey::SoftApprover;
use agentauth_state::{InProcessState, SharedState};
use agentauth_testenv::ControlPlane;
use agentauth_webhook::config::DEFAULT_OPERATOR_USERNAME;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

/// The operator's Kubernetes username (the webhook lets only it write status).
pub const OPERATOR: &str = DEFAULT_OPERATOR_USERNAME;
/// Namespaces labelled `<this>=enforced` are reviewed by the webhook.
pub const ADMISSION_LABEL: &str = "agentauth.dev/admission";
/// The relying party id.
pub const RP_ID: &str = "localhost";
/// The approval UI's origin.
pub const ORIGIN: &str = "http://localhost:8080";

/// One test's world: namespace, clients, the API and its clock.
pub struct Env {
    pub cp: &'static ControlPlane,
    pub ns: String,
    pub admin: Client,
    pub base: String,
    pub clock: ManualClock,
    pub ctx: Arc<Context>,
    pub state: Arc<InProcessState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Env {
    /// Control plane, webhook, namespace, operator API and controllers.
    pub async fn new(prefix: &str) -> Env {
        let cp = agentauth_testenv::shared().await;
        cp.install_crds(&agentauth_testenv::generated_crds_dir())
            .await
            .unwrap();
        super::webhook::start(cp).await;
        let ns = super::webhook::namespace(cp, prefix).await;
        let operator = cp.client_as(OPERATOR, &["system:masters"]).unwrap();
        let state = Arc::new(InProcessState::new());
        let now = SystemClock.now_ms();
        let clock = ManualClock::at_ms(now);
        let ctx = context(&operator, state.clone(), Arc::new(clock.clone()), "api").await;
        let controllers_ctx =
            context(&operator, state.clone(), Arc::new(SystemClock), "leader").await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            Controllers::new(controllers_ctx)
                .namespace(&ns)
                .run(async move {
                    let _ = stopped.await;
                }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let approvals = Approvals::new(
            ctx.clone(),
            ApprovalsConfig {
                session_ttl: Duration::from_secs(3600),
                session_idle: Duration::from_secs(900),
                secure_cookies: false,
                token_namespace: ns.clone(),
            },
        )
        .unwrap();
        let root: Arc<dyn Signer> = Arc::new(LocalSigner::generate().unwrap());
        let keys = KeyHierarchy::certified(root, HierarchyConfig::new(base.clone()), now / 1000)
            .await
            .unwrap();
        let app = router_with_approvals(
            ApiState {
                ctx: ctx.clone(),
                keys: Arc::new(keys),
                public_url: base.clone(),
                dpop_window: agentauth_core::dpop::Window::default(),
                default_token_ttl_secs: 300,
                dpop_nonce: None,
            },
            Some(approvals),
        );
        tokio::spawn(agentauth_operator::http::serve(
            listener,
            app,
            agentauth_operator::http::HttpLimits::default(),
            std::future::pending(),
        ));
        Env {
            cp,
            ns,
            admin: cp.client().unwrap(),
            base,
            clock,
            ctx,
            state,
            stop: Some(stop),
        }
    }

    /// A fresh software passkey for this API.
    pub fn passkey(&self) -> SoftApprover {
        SoftApprover::new(&self.base, ORIGIN).unwrap()
    }

    /// Creates `doc` as the admin.
    pub async fn create(&self, doc: Value) {
        let resource = match doc["kind"].as_str().unwrap() {
            "Agent" => kube::api::ApiResource::erase::<agentauth_crds::Agent>(&()),
            "CapabilityGrant" => kube::api::ApiResource::erase::<CapabilityGrant>(&()),
            "BehavioralEnvelope" => {
                kube::api::ApiResource::erase::<agentauth_crds::BehavioralEnvelope>(&())
            }
            "Approver" => kube::api::ApiResource::erase::<Approver>(&()),
            other => panic!("no kind {other}"),
        };
        let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.admin.clone(), ns, &resource),
            None => Api::all_with(self.admin.clone(), &resource),
        };
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
    }

    /// An Agent owned by `owner`.
    pub async fn agent(&self, name: &str, owner: &str) {
        let key = SoftAuthenticator::new().public_key().unwrap();
        self.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"displayName": "Calendar assistant", "owner": owner,
                     "publicKey": EcPublicJwk::from_key(&key)},
        }))
        .await;
    }

    /// A pending read grant of `agent`'s; `labels` on the grant.
    pub async fn grant(&self, name: &str, agent: &str, labels: Value) {
        self.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
            "metadata": {"name": name, "namespace": self.ns, "labels": labels},
            "spec": {"agentRef": {"name": agent}, "serviceProvider": "https://calendar.example.com",
                     "capabilities": [{"type": "read", "resource": "calendars/primary/**",
                                       "actions": ["get", "list"]}],
                     "duration": "8h", "reason": "Schedule the team's weekly planning"},
        }))
        .await;
        self.wait(|c| c.grant(&self.ns, name).is_some()).await;
    }

    /// An Approver (a unique name per test) deciding grants in `namespaces`;
    /// returns its name and email.
    pub async fn approver(&self, prefix: &str, namespaces: &[&str]) -> (String, String) {
        self.approver_scoped(prefix, json!({"namespaces": namespaces}))
            .await
    }

    /// An Approver with `scope` (namespaces, grantSelector).
    pub async fn approver_scoped(&self, prefix: &str, scope: Value) -> (String, String) {
        let name = format!("{prefix}-{}", self.ns);
        let email = format!("{name}@example.com");
        self.create(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
            "metadata": {"name": name},
            "spec": {"displayName": "Dana Fischer", "email": email,
                     "scope": scope},
        }))
        .await;
        self.wait(|c| c.approver(&name).is_some()).await;
        (name, email)
    }

    /// An enrollment token for `approver` (as `agentauth approver enroll-token`).
    pub async fn token(&self, approver: &str, ttl: Duration) -> String {
        tokens::create(
            self.admin.clone(),
            &self.ns,
            approver,
            ttl,
            self.clock.now_ms(),
        )
        .await
        .unwrap()
    }

    /// An Approver with an enrolled, logged-in passkey.
    pub async fn logged_in(
        &self,
        prefix: &str,
        namespaces: &[&str],
    ) -> (SoftApprover, String, String) {
        self.logged_in_scoped(prefix, json!({"namespaces": namespaces}))
            .await
    }

    /// [`Env::logged_in`] with a whole scope.
    pub async fn logged_in_scoped(
        &self,
        prefix: &str,
        scope: Value,
    ) -> (SoftApprover, String, String) {
        let (name, email) = self.approver_scoped(prefix, scope).await;
        let token = self.token(&name, Duration::from_secs(3600)).await;
        let mut passkey = self.passkey();
        passkey.enroll(&name, &token).await.unwrap();
        passkey.login(&name).await.unwrap();
        (passkey, name, email)
    }

    /// Grants the RBAC verb `approve` on grants of this namespace to user
    /// `email`, and waits until the authorizer agrees.
    pub async fn allow_approve(&self, email: &str) {
        let role = format!("approve-{}", email.split('@').next().unwrap());
        let permission = agentauth_testenv::Permission {
            group: "agentauth.dev",
            resource: "capabilitygrants",
            verb: "approve",
        };
        self.cp
            .allow(&self.ns, &role, email, permission)
            .await
            .unwrap();
    }

    /// The stored grant.
    pub async fn stored_grant(&self, name: &str) -> CapabilityGrant {
        Api::namespaced(self.admin.clone(), &self.ns)
            .get(name)
            .await
            .unwrap()
    }

    /// The stored Approver.
    pub async fn stored_approver(&self, name: &str) -> Approver {
        Api::all(self.admin.clone()).get(name).await.unwrap()
    }

    /// Waits (at most 20 s) until `ready` holds for the API's caches.
    pub async fn wait(&self, ready: impl Fn(&Caches) -> bool) {
        for _ in 0..1000 {
            if ready(&self.ctx.caches) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the caches did not reach the expected state within 20 s");
    }

    /// Waits (at most 20 s) until the stored grant's phase is `phase`.
    pub async fn wait_phase(&self, name: &str, phase: &str) -> CapabilityGrant {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let grant = self.stored_grant(name).await;
            let now = grant
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| p.as_str());
            if now == Some(phase) {
                return grant;
            }
            assert!(
                Instant::now() < deadline,
                "grant {name} stayed {now:?}, not {phase}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The raw HTTP client, for requests a browser would not make.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// A JSON POST to `url` as a page would send it: the session `cookie`,
    /// the CSRF token, and the browser's `Origin` and `Sec-Fetch-Site`
    /// (each left out when `None` or empty), for the session-theft attacks.
    pub fn browser_post(
        &self,
        url: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        origin: &str,
        site: &str,
    ) -> reqwest::RequestBuilder {
        let mut request = self.http().post(url).json(&json!({}));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if !origin.is_empty() {
            request = request.header("origin", origin);
        }
        if !site.is_empty() {
            request = request.header("sec-fetch-site", site);
        }
        request
    }

    /// The URL of an approval API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}/approvals/api{path}", self.base)
    }
}

async fn context(
    client: &Client,
    state: Arc<InProcessState>,
    clock: Arc<dyn Clock>,
    producer: &str,
) -> Arc<Context> {
    let metrics = Metrics::new().unwrap();
    let shared: Arc<dyn SharedState> = state;
    let audit = AuditSink::start(
        &format!("operator/{producer}"),
        shared.clone(),
        clock.clone(),
        metrics.clone(),
    )
    .await
    .unwrap();
    let caches = Caches::start(client).await.unwrap();
    Arc::new(Context {
        client: client.clone(),
        caches,
        state: shared,
        audit,
        metrics,
        clock,
        relying_party: RelyingParty {
            id: RP_ID.into(),
            origins: vec![ORIGIN.into()],
        },
    })
}

/// Asserts a refusal with `status` and `code`.
pub fn refused<T: std::fmt::Debug>(
    result: Result<T, agentauth_soft_passkey::SoftPasskeyError>,
    status: u16,
    code: &str,
) {
    match result {
        Err(agentauth_soft_passkey::SoftPasskeyError::Refused {
            status: s,
            code: c,
            message,
        }) => {
            assert_eq!((s, c.as_str()), (status, code), "{message}");
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

/// Asserts a problem+json answer with `status` and `code`.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(
        response.status().as_u16(),
        status,
        "expected {status} {code}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
}
