//! Fixtures of the agent API tests: a real apiserver (the testenv control
//! plane) feeding real informer caches, a shared state, a key hierarchy on
//! a local root, and the router served on a loopback port.
//!
//! ```text
//!  test ──kube Api──▶ apiserver ──watch──▶ Caches ─┐
//!  test ──reqwest──▶ 127.0.0.1:port ─▶ http::serve ─▶ router(ApiState) ─▶ InProcessState | RedisState
//! ```
//!
//! Grants get their status by a patch of the status subresource (the
//! controllers are tested on their own), with a genuine approval signed by a
//! software passkey of a per-grant Approver: the token endpoint verifies it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agentauth_core::approval::Decision;
use agentauth_core::b64;
use agentauth_core::dpop::nonce::NonceIssuer;
use agentauth_core::dpop::{self, Window};
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::EcPublicJwk;
use agentauth_core::keycert::{Jwks, RootKey, TrustedKeys};
use agentauth_core::token::{self, Expectations, SignedToken};
use agentauth_core::webauthn::SoftAuthenticator;
use agentauth_crds::approval::{Binding, SoftDecision, sign_with_soft_authenticator};
use agentauth_crds::{Agent, AgentSpec, Approver, BehavioralEnvelope, CapabilityGrant};
use agentauth_operator::api::{ApiState, router};
use agentauth_operator::audit::AuditSink;
use agentauth_operator::cache::Caches;
use agentauth_operator::clock::{Clock, SystemClock};
use agentauth_operator::context::{Context, RelyingParty};
use agentauth_operator::http::HttpLimits;
use agentauth_operator::metrics::Metrics;
use agentauth_signer::{HierarchyConfig, KeyHierarchy, LocalSigner, Signer};
use agentauth_state::{InProcessState, SharedState};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The audit producer of the API under test.
pub const PRODUCER: &str = "operator/api-test";
/// The relying party approvals are signed for.
pub const RP_ID: &str = "localhost";
/// The approval UI's origin.
pub const ORIGIN: &str = "http://localhost:5173";
/// The default token lifetime the API under test is configured with.
pub const DEFAULT_TTL: i64 = 300;

/// How the API under test is set up.
#[derive(Default)]
pub struct Options {
    /// The shared state (in-process when `None`).
    pub state: Option<Arc<dyn SharedState>>,
    /// The root signs every token (`direct` mode) instead of certifying an
    /// issuing key.
    pub direct: bool,
    /// A root signer other than a fresh local key (e.g. one that fails).
    pub root: Option<Arc<dyn Signer>>,
    /// The HTTP server's deadlines and connection cap (the operator's
    /// defaults when `None`).
    pub http: Option<HttpLimits>,
    /// Server nonces the token endpoint requires (off when `None`).
    pub dpop_nonce: Option<Arc<NonceIssuer>>,
}

/// One test's API, namespace and clients.
pub struct Harness {
    pub base: String,
    pub ns: String,
    pub client: kube::Client,
    pub root: Arc<dyn Signer>,
    pub keys: Arc<KeyHierarchy>,
    pub ctx: Arc<Context>,
    pub http: reqwest::Client,
}

impl Harness {
    /// Starts the API for a test named `prefix`.
    pub async fn start(prefix: &str, options: Options) -> Harness {
        let cp = agentauth_testenv::shared().await;
        cp.install_crds(&agentauth_testenv::generated_crds_dir())
            .await
            .unwrap();
        let ns = cp.test_namespace(prefix).await.unwrap();
        let client = cp.client().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metrics = Metrics::new().unwrap();
        let state = options
            .state
            .unwrap_or_else(|| Arc::new(InProcessState::new()));
        let audit = AuditSink::start(PRODUCER, state.clone(), clock.clone(), metrics.clone())
            .await
            .unwrap();
        let caches = Caches::start(&client).await.unwrap();
        let ctx = Arc::new(Context {
            client: client.clone(),
            caches,
            state,
            audit,
            metrics,
            clock: clock.clone(),
            relying_party: RelyingParty {
                id: RP_ID.into(),
                origins: vec![ORIGIN.into()],
            },
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let root: Arc<dyn Signer> = options
            .root
            .unwrap_or_else(|| Arc::new(LocalSigner::generate().unwrap()));
        let keys = if options.direct {
            KeyHierarchy::direct(root.clone())
        } else {
            let config = HierarchyConfig::new(base.clone());
            KeyHierarchy::certified(root.clone(), config, clock.now_secs())
                .await
                .unwrap()
        };
        let keys = Arc::new(keys);
        let app = router(ApiState {
            ctx: ctx.clone(),
            keys: keys.clone(),
            public_url: base.clone(),
            dpop_window: Window::default(),
            default_token_ttl_secs: DEFAULT_TTL,
            dpop_nonce: options.dpop_nonce,
        });
        // Served as the operator serves it: with its deadlines and cap.
        let limits = options.http.unwrap_or_default();
        tokio::spawn(agentauth_operator::http::serve(
            listener,
            app,
            limits,
            std::future::pending(),
        ));
        Harness {
            base,
            ns,
            client,
            root,
            keys,
            ctx,
            http: reqwest::Client::new(),
        }
    }

    pub fn now(&self) -> i64 {
        self.ctx.clock.now_secs()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an Agent with a fresh key, sets its validated thumbprint as
    /// the agent controller would, and waits until the cache has it.
    pub async fn agent(&self, name: &str) -> SigningKey {
        let key = SigningKey::generate();
        self.agent_with_key(name, EcPublicJwk::from_key(&key.verifying_key().unwrap()))
            .await;
        key
    }

    /// [`Harness::agent`] for a public key made elsewhere (an independent
    /// client's).
    pub async fn agent_with_key(&self, name: &str, public_key: EcPublicJwk) {
        let spec = AgentSpec {
            display_name: format!("agent {name}"),
            owner: "owner@example.com".into(),
            public_key,
            description: None,
        };
        let jkt = spec.key_thumbprint().unwrap();
        let api: Api<Agent> = Api::namespaced(self.client.clone(), &self.ns);
        let created = api
            .create(&PostParams::default(), &Agent::new(name, spec))
            .await
            .unwrap();
        let status = json!({"status": {
            "keyThumbprint": jkt,
            "observedGeneration": created.metadata.generation,
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        self.wait(|c| {
            c.agent(&self.ns, name).is_some_and(|a| {
                a.status
                    .as_ref()
                    .is_some_and(|s| s.key_thumbprint.is_some())
            })
        })
        .await;
    }

    /// Creates an envelope from its spec.
    pub async fn envelope(&self, name: &str, spec: Value) {
        let envelope: BehavioralEnvelope = serde_json::from_value(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        let api: Api<BehavioralEnvelope> = Api::namespaced(self.client.clone(), &self.ns);
        api.create(&PostParams::default(), &envelope).await.unwrap();
        self.wait(|c| c.envelope(&self.ns, name).is_some()).await;
    }

    /// Creates a grant for `agent`; `extra` is merged into its spec.
    pub async fn grant(&self, name: &str, agent: &str, extra: Value) -> CapabilityGrant {
        let mut spec = json!({
            "agentRef": {"name": agent},
            "serviceProvider": "https://calendar.example.com",
            "capabilities": [{"type": "read", "resource": "calendars/primary/**"}],
            "duration": "8h",
            "reason": "plan the weekly meeting",
        });
        merge(&mut spec, extra);
        let grant: CapabilityGrant = serde_json::from_value(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        let api = self.grants();
        let created = api.create(&PostParams::default(), &grant).await.unwrap();
        self.wait(|c| c.grant(&self.ns, name).is_some()).await;
        created
    }

    pub fn grants(&self) -> Api<CapabilityGrant> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Writes a decided status: `phase` with an approval block (decision
    /// Denied for `Denied`, else Approved) and `expires_at` (epoch seconds).
    pub async fn decide(&self, name: &str, phase: &str, expires_at: i64) {
        let grant = self.grants().get(name).await.unwrap();
        let decision = if phase == "Denied" {
            "Denied"
        } else {
            "Approved"
        };
        let mut status = json!({"status": {
            "phase": phase,
            "expiresAt": rfc3339(expires_at),
            "observedGeneration": grant.metadata.generation,
        }});
        // A recorded approval never changes (CEL): write it only once.
        if grant.status.as_ref().is_none_or(|s| s.approval.is_none()) {
            let decision = if decision == "Denied" {
                Decision::Denied
            } else {
                Decision::Approved
            };
            status["status"]["approval"] = json!(self.sign(&grant, decision).await);
        }
        self.grants()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        self.wait(|c| {
            c.grant(&self.ns, name).is_some_and(|g| {
                g.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str()) == Some(phase)
            })
        })
        .await;
    }

    /// A genuine decision on `grant` as it is now, by a fresh Approver
    /// `<namespace>-<grant>` with a software passkey, bound to the grant's
    /// current agent key and envelope.
    pub async fn sign(
        &self,
        grant: &CapabilityGrant,
        decision: Decision,
    ) -> agentauth_crds::Approval {
        let name = format!(
            "{}-{}",
            self.ns,
            grant.metadata.name.as_deref().unwrap_or_default()
        );
        let mut passkey = SoftAuthenticator::new();
        let approvers: Api<Approver> = Api::all(self.client.clone());
        let approver: Approver = serde_json::from_value(json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
            "metadata": {"name": name},
            "spec": {"displayName": "Alice", "email": format!("{name}@example.com"),
                     "scope": {"namespaces": [self.ns]}},
        }))
        .unwrap();
        approvers
            .create(&PostParams::default(), &approver)
            .await
            .unwrap();
        let key = EcPublicJwk::from_key(&passkey.public_key().unwrap());
        let status = json!({"status": {"passkeys": [{"credentialId": "cred-1", "publicKey": key,
            "signCount": 0, "createdAt": "2026-01-01T00:00:00Z"}]}});
        approvers
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        self.wait(|c| {
            c.approver(&name)
                .is_some_and(|a| a.status.as_ref().is_some_and(|s| !s.passkeys.is_empty()))
        })
        .await;
        let binding = self.binding(grant).await;
        sign_with_soft_authenticator(
            grant,
            &binding,
            &mut passkey,
            &SoftDecision {
                approver: &name,
                credential_id: "cred-1",
                decision,
                nonce: "nonce-0123456789abcdef",
                rp_id: RP_ID,
                origin: ORIGIN,
                signed_at: Time(k8s_openapi::jiff::Timestamp::now()),
            },
        )
        .unwrap()
    }

    /// What an approval of `grant` binds now (its agent's key, its envelope).
    pub async fn binding(&self, grant: &CapabilityGrant) -> Binding {
        let agent: Agent = Api::namespaced(self.client.clone(), &self.ns)
            .get(&grant.spec.agent_ref.name)
            .await
            .unwrap();
        let envelope: Option<BehavioralEnvelope> = match &grant.spec.envelope_ref {
            Some(r) => Api::namespaced(self.client.clone(), &self.ns)
                .get_opt(&r.name)
                .await
                .unwrap(),
            None => None,
        };
        // A missing envelope: bound to one that does not exist.
        Binding::of(grant, envelope.as_ref(), &agent).unwrap_or_else(|_| Binding {
            envelope_digest: "A".repeat(43),
            agent_key_thumbprint: agent.spec.key_thumbprint().unwrap(),
        })
    }

    /// Approves until `expires_at` (epoch seconds).
    pub async fn approve(&self, name: &str, expires_at: i64) {
        self.decide(name, "Approved", expires_at).await;
    }

    /// Waits (at most 10 s) until `ready` holds for the caches.
    pub async fn wait(&self, ready: impl Fn(&Caches) -> bool) {
        for _ in 0..500 {
            if ready(&self.ctx.caches) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the caches did not reach the expected state within 10 s");
    }

    /// A fresh proof of `key` for `method` on `path` of this API.
    pub fn proof(&self, key: &SigningKey, method: &str, path: &str) -> String {
        proof_at(key, method, &self.url(path), self.now())
    }

    /// `POST /v1/token` with a JSON body, a fresh proof of `key`.
    pub async fn token_request(&self, key: &SigningKey, body: Value) -> reqwest::Response {
        let proof = self.proof(key, "POST", "/v1/token");
        self.http
            .post(self.url("/v1/token"))
            .header("DPoP", proof)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// A token for `grant` (`name` in this namespace), asserting success.
    pub async fn token(&self, key: &SigningKey, grant: &str, extra: Value) -> (String, i64) {
        let mut body = json!({"grant": format!("{}/{grant}", self.ns)});
        merge(&mut body, extra);
        let response = self.token_request(key, body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP");
        let token = body["access_token"].as_str().unwrap().to_owned();
        (token, body["expires_in"].as_i64().unwrap())
    }

    /// Verifies `token` as a verifier would: the JWKS from the API, trusted
    /// through the pinned root.
    pub async fn verify(&self, token: &str, audience: &str) -> SignedToken {
        let jwks = self
            .http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        let jwks = Jwks::parse(&jwks.text().await.unwrap()).unwrap();
        let root = RootKey::from_jwk(self.root.public_jwk()).unwrap();
        let now = self.now();
        let trusted = TrustedKeys::from_jwks(&jwks, &root, &self.base, now);
        assert!(trusted.rejected().is_empty(), "{:?}", trusted.rejected());
        let expect = Expectations {
            issuer: self.base.clone(),
            audience: audience.into(),
            leeway_secs: 0,
        };
        token::verify(token, &trusted.at(now), &expect, now).unwrap()
    }
}

/// A proof of `key` for `method` on `url`, made at `iat`.
pub fn proof_at(key: &SigningKey, method: &str, url: &str, iat: i64) -> String {
    let request = dpop::Request {
        method,
        url,
        access_token: None,
        nonce: None,
    };
    dpop::create(key, &request, iat, &dpop::new_jti()).unwrap()
}

/// A proof whose `jwk` header carries a private scalar.
pub fn proof_with_private_jwk(key: &SigningKey, url: &str, iat: i64) -> String {
    let public = EcPublicJwk::from_key(&key.verifying_key().unwrap());
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {
        "kty": "EC", "crv": "P-256", "x": public.x, "y": public.y, "d": b64::encode([7u8; 32]),
    }});
    let claims = json!({"jti": dpop::new_jti(), "htm": "POST", "htu": url, "iat": iat});
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64::encode(signature))
}

/// RFC 7638 thumbprint of `key`'s public JWK.
pub fn thumbprint(key: &SigningKey) -> String {
    EcPublicJwk::from_key(&key.verifying_key().unwrap())
        .to_public_key()
        .unwrap()
        .thumbprint
}

/// Asserts a problem+json answer with `status` and `code`; returns its body.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "expected {status} {code}"
    );
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], format!("https://agentauth.dev/errors/{code}"));
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).unwrap().to_string()
}

/// Shallow merge of `extra`'s members into `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

/// Runs `f` with a 60 s limit, so a hung request fails the test.
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("timed out")
}
