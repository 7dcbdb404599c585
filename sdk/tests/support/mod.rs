//! The stack the SDK tests run against, all real and all in this process
//! except the apiserver and Redis:
//!
//! ```text
//!  SDK ──▶ operator agent API ─┐ (router on 127.0.0.1:p1, public URL = its address)
//!          operator controllers ┼─▶ kube-apiserver (testenv) ; grant state ─▶ Redis
//!  SDK ──▶ example provider ───▶ verifier (127.0.0.1:p3; JWKS from the operator, root pinned) ─▶ Redis
//!  approve(grant) ─▶ software passkey ─▶ approval API (enrolled with a one-time token, logged in)
//!                   ─▶ status.approval ─▶ the controllers verify it ─▶ Approved
//! ```
//!
//! Every test gets its own namespace, Redis, operator and verifier.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../examples/provider.rs"]
pub mod provider;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentauth::{AgentAuthClient, AgentAuthConfig, AgentKey, Grant};
use agentauth_core::dpop::Window;
use agentauth_core::dpop::nonce::NonceIssuer;
use agentauth_crds::{Agent, AgentSpec, Approver};
use agentauth_operator::api::{ApiState, router_with_approvals};
use agentauth_operator::approvals::{Approvals, ApprovalsConfig, tokens};
use agentauth_operator::audit::AuditSink;
use agentauth_operator::cache::Caches;
use agentauth_operator::clock::{Clock, SystemClock};
use agentauth_operator::context::{Context, RelyingParty};
use agentauth_operator::controllers::Controllers;
use agentauth_operator::metrics::Metrics;
use agentauth_signer::{HierarchyConfig, KeyHierarchy, LocalSigner, Signer};
use agentauth_soft_passkey::SoftApprover;
use agentauth_state::{RedisConfig, RedisState, SharedState};
use agentauth_testenv::RedisServer;
use agentauth_verifier::config::VerifierConfig;
use agentauth_verifier::server::{Dependencies, serve};
use kube::api::{Api, PostParams};
use serde_json::json;

/// The relying party and origin approvals are made for.
pub const RP_ID: &str = "localhost";
/// The approval UI's origin.
pub const ORIGIN: &str = "http://localhost:5173";

/// One test's stack.
pub struct Stack {
    pub ns: String,
    pub client: kube::Client,
    pub operator: String,
    pub verifier: String,
    /// The example provider's URL, also its id (the tokens' audience).
    pub provider: String,
    pub ctx: Arc<Context>,
    pub dir: tempfile::TempDir,
    passkey: tokio::sync::Mutex<SoftApprover>,
    _redis: RedisServer,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Stack {
    /// Starts everything for a test named `prefix`.
    pub async fn start(prefix: &str) -> Stack {
        Stack::start_with(prefix, false).await
    }

    /// [`Stack::start`], with DPoP server nonces required by the operator's
    /// token endpoint and by the verifier when `nonces`.
    pub async fn start_with(prefix: &str, nonces: bool) -> Stack {
        let cp = agentauth_testenv::shared().await;
        cp.install_crds(&agentauth_testenv::generated_crds_dir())
            .await
            .unwrap();
        let ns = cp.test_namespace(prefix).await.unwrap();
        let client = cp.client().unwrap();
        let redis = RedisServer::start().await.unwrap();
        let state = || async {
            let state = RedisState::connect(RedisConfig::new(redis.url()))
                .await
                .unwrap();
            Arc::new(state) as Arc<dyn SharedState>
        };

        // The operator: controllers of this namespace and the agent API.
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metrics = Metrics::new().unwrap();
        let operator_state = state().await;
        let audit = AuditSink::start(
            "operator/sdk-test",
            operator_state.clone(),
            clock.clone(),
            metrics.clone(),
        )
        .await
        .unwrap();
        let ctx = Arc::new(Context {
            client: client.clone(),
            caches: Caches::start(&client).await.unwrap(),
            state: operator_state,
            audit,
            metrics,
            clock: clock.clone(),
            relying_party: RelyingParty {
                id: RP_ID.into(),
                origins: vec![ORIGIN.into()],
            },
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        tokio::spawn(Controllers::new(ctx.clone()).namespace(&ns).run(stopped));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let operator = format!("http://{}", listener.local_addr().unwrap());
        let root = Arc::new(LocalSigner::generate().unwrap());
        let keys = KeyHierarchy::certified(
            root.clone(),
            HierarchyConfig::new(operator.clone()),
            clock.now_secs(),
        )
        .await
        .unwrap();
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
        let app = router_with_approvals(
            ApiState {
                ctx: ctx.clone(),
                keys: Arc::new(keys),
                public_url: operator.clone(),
                dpop_window: Window::default(),
                default_token_ttl_secs: 300,
                dpop_nonce: nonces
                    .then(|| Arc::new(NonceIssuer::new(&[11u8; 32], "operator", 60).unwrap())),
            },
            Some(approvals),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });

        // The example provider's address is its id (the tokens' audience).
        let provider_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = format!("http://{}", provider_listener.local_addr().unwrap());

        // The verifier: the operator's JWKS through the pinned root.
        let dir = tempfile::tempdir().unwrap();
        let root_jwk = serde_json::to_string(root.public_jwk()).unwrap();
        let mut config =
            VerifierConfig::for_tests(&operator, &provider, PathBuf::from("unused"), root_jwk);
        config.jwks_file = None;
        config.jwks_url = Some(format!("{operator}/.well-known/jwks.json"));
        // The 50 ms production budget denies with state_unavailable when this
        // 2-core machine is busy compiling; these tests are not about latency.
        config.state_timeout = agentauth_core::gcra::Period::parse("2s").unwrap();
        if nonces {
            let key_file = dir.path().join("verifier-nonce.key");
            std::fs::write(&key_file, [12u8; 32]).unwrap();
            config.dpop_nonce_key_file = Some(key_file);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let verifier = format!("http://{}", listener.local_addr().unwrap());
        let deps = Dependencies {
            state: state().await,
            clock: Arc::new(agentauth_verifier::SystemClock),
        };
        tokio::spawn(async move {
            serve(config, deps, listener, std::future::pending::<()>())
                .await
                .unwrap();
        });

        // The example service provider, in front of the verifier.
        let app = provider::app(&verifier, &provider, Some(&provider)).unwrap();
        tokio::spawn(async move { axum::serve(provider_listener, app).await });

        // An approver scoped to this namespace, allowed to `approve` its
        // grants, with a software passkey enrolled and logged in through the
        // approval API.
        let approver = format!("dana-{ns}");
        let passkey = enroll(cp, &client, &operator, &approver, &ns).await;

        Stack {
            ns,
            client,
            operator,
            verifier,
            provider,
            ctx,
            dir,
            passkey: tokio::sync::Mutex::new(passkey),
            _redis: redis,
            _stop: stop,
        }
    }

    /// Creates Agent `name` with a fresh key saved (0600) under the test's
    /// folder, waits until the operator validated it, and returns the key
    /// file.
    pub async fn agent(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.jwk"));
        let key = AgentKey::load_or_generate(&path).unwrap();
        let agent = Agent::new(
            name,
            AgentSpec {
                display_name: format!("agent {name}"),
                owner: "owner@example.com".into(),
                public_key: key.public_jwk().clone(),
                description: None,
            },
        );
        let api: Api<Agent> = Api::namespaced(self.client.clone(), &self.ns);
        api.create(&PostParams::default(), &agent).await.unwrap();
        let (ns, ctx) = (self.ns.clone(), self.ctx.clone());
        wait_for("the agent's key to be validated", || {
            ctx.caches.agent(&ns, name).is_some_and(|a| {
                a.status
                    .as_ref()
                    .is_some_and(|s| s.key_thumbprint.as_deref() == Some(key.thumbprint()))
            })
        })
        .await;
        path
    }

    /// An SDK client for agent `name` (created with [`Stack::agent`]).
    pub fn sdk(
        &self,
        name: &str,
        config: impl FnOnce(AgentAuthConfig) -> AgentAuthConfig,
    ) -> AgentAuthClient {
        let key_file = self.dir.path().join(format!("{name}.jwk"));
        let base = AgentAuthConfig::new(&self.operator)
            .unwrap()
            .agent(&self.ns, name)
            .key_file(key_file);
        AgentAuthClient::new(config(base)).unwrap()
    }

    /// Approves `grant` (`namespace/name`) with the approver's passkey,
    /// through the approval API.
    pub async fn approve(&self, grant: &str) {
        let (namespace, name) = grant.split_once('/').unwrap();
        self.passkey
            .lock()
            .await
            .approve(namespace, name)
            .await
            .unwrap();
    }

    /// `agentauth_token_requests_total{outcome="issued"}` of the operator.
    pub fn issued(&self) -> u64 {
        self.token_requests("issued")
    }

    /// `agentauth_token_requests_total{outcome}` of the operator.
    pub fn token_requests(&self, outcome: &str) -> u64 {
        self.ctx
            .metrics
            .token_requests
            .with_label_values(&[outcome])
            .get()
    }
}

/// Creates Approver `name` scoped to `ns`, lets it `approve` grants there
/// (RBAC), and enrolls and logs in a software passkey through the approval
/// API at `operator` with a one-time enrollment token.
async fn enroll(
    cp: &agentauth_testenv::ControlPlane,
    client: &kube::Client,
    operator: &str,
    name: &str,
    ns: &str,
) -> SoftApprover {
    let email = format!("{name}@example.com");
    let approver: Approver = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
        "metadata": {"name": name},
        "spec": {"displayName": "Dana Fischer", "email": email,
                 "scope": {"namespaces": [ns]}},
    }))
    .unwrap();
    let api: Api<Approver> = Api::all(client.clone());
    api.create(&PostParams::default(), &approver).await.unwrap();
    let permission = agentauth_testenv::Permission {
        group: "agentauth.dev",
        resource: "capabilitygrants",
        verb: "approve",
    };
    cp.allow(ns, "approve-grants", &email, permission)
        .await
        .unwrap();
    let token = tokens::create(
        client.clone(),
        ns,
        name,
        Duration::from_secs(600),
        SystemClock.now_ms(),
    )
    .await
    .unwrap();
    let mut passkey = SoftApprover::new(operator, ORIGIN).unwrap();
    passkey.enroll(name, &token).await.unwrap();
    passkey.login(name).await.unwrap();
    passkey
}

/// Requests, approves and waits: an approved grant of `client` at the
/// example provider.
pub async fn approved_grant(
    stack: &Stack,
    client: &AgentAuthClient,
    capabilities: Vec<agentauth::Capability>,
) -> Grant {
    let grant = client
        .request_grant(&stack.provider, capabilities)
        .await
        .unwrap();
    assert_eq!(grant.phase, "Pending");
    stack.approve(&grant.reference()).await;
    client
        .wait_for_approval(&grant.reference(), Duration::from_secs(30))
        .await
        .unwrap()
}

/// Polls `ready` every 20 ms for at most 20 s.
pub async fn wait_for(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..1000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Runs `f` with a 90 s limit, so a hung request fails the test.
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(90), f)
        .await
        .expect("timed out")
}
