//! Fixtures: real keys (a root that certifies an issuing key, as the
//! operator does), real tokens and DPoP proofs, grant states, and verifier
//! servers on free loopback ports with an injected state and clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentauth_core::dpop;
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::{EcPublicJwk, ec_thumbprint};
use agentauth_core::jws::{self, Header};
use agentauth_core::keycert::{Jwks, JwksEntry};
use agentauth_core::token::AccessTokenClaims;
use agentauth_signer::{HierarchyConfig, KeyHierarchy, LocalSigner, Signer};
use agentauth_state::{EnvelopeState, GrantPhase, GrantState, SharedState};
use agentauth_verifier::config::VerifierConfig;
use agentauth_verifier::server::{Dependencies, ServerError, serve};
use agentauth_verifier::{Clock, SystemClock};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ISSUER: &str = "https://operator.test";
pub const AUDIENCE: &str = "shop.test";
pub const URL: &str = "https://shop.test/orders/42";
pub const AGENT: &str = "team-a/buyer";
pub const GRANT: &str = "team-a/groceries";

/// Keys, an agent and a clock.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub root: SigningKey,
    pub root_kid: String,
    pub hierarchy: KeyHierarchy,
    pub foreign: KeyHierarchy,
    pub agent: SigningKey,
    pub agent_jkt: String,
    pub jwks_path: PathBuf,
    pub root_jwk: String,
    pub clock: Arc<dyn Clock>,
}

fn copy(key: &SigningKey) -> SigningKey {
    SigningKey::from_scalar(&key.to_scalar()).unwrap()
}

pub fn jkt(key: &SigningKey) -> String {
    let jwk = EcPublicJwk::from_key(&key.verifying_key().unwrap());
    ec_thumbprint(&jwk.x, &jwk.y)
}

impl Fixture {
    pub async fn new() -> Fixture {
        Fixture::with_clock(Arc::new(SystemClock)).await
    }

    /// Keys certified at the clock's time; the JWKS file holds the issuing
    /// key, the root itself (so tests can craft odd root-signed tokens) and
    /// a key certified for another issuer (refused).
    pub async fn with_clock(clock: Arc<dyn Clock>) -> Fixture {
        let now = clock.now_ms() / 1000;
        let root = SigningKey::generate();
        let root_signer = Arc::new(LocalSigner::new(copy(&root)).unwrap());
        let root_kid = root_signer.key_id().to_owned();
        let root_jwk = serde_json::to_string(root_signer.public_jwk()).unwrap();
        let hierarchy =
            KeyHierarchy::certified(root_signer.clone(), HierarchyConfig::new(ISSUER), now)
                .await
                .unwrap();
        let foreign =
            KeyHierarchy::certified(root_signer, HierarchyConfig::new("https://other.test"), now)
                .await
                .unwrap();
        let mut jwks: Jwks = hierarchy.jwks(now);
        jwks.keys.push(JwksEntry::new(
            &root_kid,
            &root.verifying_key().unwrap(),
            None,
        ));
        jwks.keys.extend(foreign.jwks(now).keys);
        let dir = tempfile::tempdir().unwrap();
        let jwks_path = dir.path().join("jwks.json");
        std::fs::write(&jwks_path, serde_json::to_string(&jwks).unwrap()).unwrap();
        let agent = SigningKey::generate();
        Fixture {
            agent_jkt: jkt(&agent),
            dir,
            root,
            root_kid,
            hierarchy,
            foreign,
            agent,
            jwks_path,
            root_jwk,
            clock,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms().div_euclid(1000)
    }

    pub fn config(&self) -> VerifierConfig {
        VerifierConfig::for_tests(
            ISSUER,
            AUDIENCE,
            self.jwks_path.clone(),
            self.root_jwk.clone(),
        )
    }

    /// Claims for `uid` with capabilities `caps` (grant spec form).
    pub fn claims(&self, uid: &str, caps: Value) -> AccessTokenClaims {
        let now = self.now();
        let details: Vec<Value> = caps
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                let kind = c["type"].as_str().unwrap().to_owned();
                c["type"] = json!(format!("agentauth:{kind}"));
                c
            })
            .collect();
        AccessTokenClaims {
            iss: ISSUER.into(),
            sub: AGENT.into(),
            aud: AUDIENCE.into(),
            client_id: AGENT.into(),
            iat: now,
            nbf: now,
            exp: now + 300,
            jti: dpop::new_jti(),
            cnf: agentauth_core::token::Confirmation {
                jkt: self.agent_jkt.clone(),
            },
            authorization_details: serde_json::from_value(json!(details)).unwrap(),
            grant: agentauth_core::token::GrantRef {
                uid: uid.into(),
                generation: 1,
            },
            env: None,
        }
    }

    /// A token from the issuing key (as the operator issues them).
    pub async fn sign(&self, claims: &AccessTokenClaims) -> String {
        self.hierarchy.sign_token(claims).await.unwrap()
    }

    pub async fn token(&self, uid: &str, caps: Value) -> String {
        self.sign(&self.claims(uid, caps)).await
    }

    /// A compact JWS of any header and claims, signed by the root.
    pub fn sign_raw(&self, header: Value, claims: Value) -> String {
        let header: Header = serde_json::from_value(header).unwrap();
        jws::sign(&header, &claims, &self.root).unwrap()
    }

    pub fn proof(&self, token: &str, method: &str, url: &str) -> String {
        self.proof_with(&self.agent, token, method, url, self.now())
    }

    pub fn proof_with(
        &self,
        key: &SigningKey,
        token: &str,
        method: &str,
        url: &str,
        iat: i64,
    ) -> String {
        let request = dpop::Request {
            method,
            url,
            access_token: Some(token),
            nonce: None,
        };
        dpop::create(key, &request, iat, &dpop::new_jti()).unwrap()
    }

    /// An approved grant for this agent and audience, expiring in an hour.
    pub fn grant(&self, uid: &str, envelope: Option<Value>) -> GrantState {
        let envelope = envelope.map(|mut e| {
            e["digest"] = json!("sha256:test");
            serde_json::from_value::<EnvelopeState>(e).unwrap()
        });
        GrantState {
            uid: uid.into(),
            grant: GRANT.into(),
            agent: AGENT.into(),
            generation: 1,
            phase: GrantPhase::Approved,
            expires_at: Some(self.now() + 3600),
            service_provider: AUDIENCE.into(),
            agent_jkt: self.agent_jkt.clone(),
            envelope,
            updated_at_ms: self.clock.now_ms(),
            approved_at_ms: None,
        }
    }

    /// A fresh request body: token, a fresh proof for POST `URL`, `action`.
    pub fn body(&self, token: &str, action: Value) -> Value {
        json!({
            "token": format!("DPoP {token}"),
            "dpop": self.proof(token, "POST", URL),
            "method": "POST",
            "url": URL,
            "action": action,
        })
    }
}

/// A fresh grant uid (Kubernetes uids are UUIDs; any brace-free id works).
pub fn uid() -> String {
    format!("uid-{}", dpop::new_jti())
}

pub fn read(resource: &str) -> Value {
    json!({"type": "read", "resource": resource})
}

/// A verifier serving in this process.
pub struct Running {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

pub async fn start(fx: &Fixture, state: Arc<dyn SharedState>) -> Running {
    start_with(fx, state, |_| {}, true).await
}

pub async fn start_with(
    fx: &Fixture,
    state: Arc<dyn SharedState>,
    tweak: impl FnOnce(&mut VerifierConfig),
    wait_ready: bool,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut config = fx.config();
    tweak(&mut config);
    let (stop, stopped) = oneshot::channel::<()>();
    let deps = Dependencies {
        state,
        clock: fx.clock.clone(),
    };
    let task = tokio::spawn(serve(config, deps, listener, async {
        let _ = stopped.await;
    }));
    let running = Running {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        stop: Some(stop),
        task,
    };
    if wait_ready {
        running.wait_ready().await;
    }
    running
}

impl Running {
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the verifier at {} never became ready", self.base);
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        match self.client.get(format!("{}{path}", self.base)).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// POSTs raw bytes to /v1/verify: (status, content type, body).
    pub async fn post(&self, body: Vec<u8>) -> (u16, String, String) {
        let response = self
            .client
            .post(format!("{}/v1/verify", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let ct = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, response.text().await.unwrap())
    }

    /// A verification: (status, JSON answer).
    pub async fn verify(&self, body: &Value) -> (u16, Value) {
        let (status, _, text) = self.post(serde_json::to_vec(body).unwrap()).await;
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, json)
    }

    /// The reason of a decision ("allowed" for an allow); panics on a 400.
    pub async fn reason(&self, body: &Value) -> String {
        let (status, answer) = self.verify(body).await;
        assert_eq!(status, 200, "{answer}");
        if answer["allow"] == json!(true) {
            "allowed".into()
        } else {
            answer["reason"].as_str().unwrap().to_owned()
        }
    }

    pub async fn metric(&self, needle: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        // Summed over every series the needle matches: a name alone means
        // all its label sets (many start at zero).
        text.lines()
            .filter(|l| l.starts_with(needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
