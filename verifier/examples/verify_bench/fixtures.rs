//! Keys, grants, tokens and request bodies for the benchmark, and the
//! verifier server mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_core::dpop;
use agentauth_core::es256::SigningKey;
use agentauth_core::jwk::{EcPublicJwk, ec_thumbprint};
use agentauth_core::token::{AccessTokenClaims, Confirmation, GrantRef};
use agentauth_signer::{HierarchyConfig, KeyHierarchy, LocalSigner, Signer};
use agentauth_state::{
    EnvelopeState, GrantPhase, GrantState, RedisConfig, RedisState, SharedState,
};
use agentauth_verifier::config::VerifierConfig;
use hyper::body::Bytes;
use serde_json::json;

pub const ISSUER: &str = "https://operator.bench";
pub const AUDIENCE: &str = "shop.bench";
pub const URL: &str = "https://shop.bench/orders/42";
const GRANTS: usize = 8;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    redis: redis::Client,
    hierarchy: KeyHierarchy,
    agent: Arc<SigningKey>,
    agent_jkt: String,
    uids: Vec<String>,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Fixture {
    /// Keys, the JWKS and root files in a temporary folder, and 8 grants in
    /// Redis, each with a rate limit (never reached here) and an always-open
    /// time window, so every check of the warm path runs.
    pub async fn new(redis_url: &str) -> Fixture {
        let root = Arc::new(LocalSigner::generate().unwrap());
        let hierarchy = KeyHierarchy::certified(root.clone(), HierarchyConfig::new(ISSUER), now())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("jwks.json"),
            serde_json::to_string(&hierarchy.jwks(now())).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("root.jwk"),
            serde_json::to_string(root.public_jwk()).unwrap(),
        )
        .unwrap();
        let agent = SigningKey::generate();
        let jwk = EcPublicJwk::from_key(&agent.verifying_key().unwrap());
        let agent_jkt = ec_thumbprint(&jwk.x, &jwk.y);
        let state = RedisState::connect(RedisConfig::new(redis_url))
            .await
            .unwrap();
        let envelope: EnvelopeState = serde_json::from_value(json!({
            "rateLimits": [{"requests": 36_000_000, "period": "1h", "burst": 10_000}],
            "timeWindows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                             "start": "00:00", "end": "00:00", "timeZone": "Europe/Berlin"}],
            "digest": "sha256:bench",
        }))
        .unwrap();
        let uids: Vec<String> = (0..GRANTS).map(|i| format!("bench-grant-{i}")).collect();
        for uid in &uids {
            state
                .put_grant(&GrantState {
                    uid: uid.clone(),
                    grant: format!("bench/grant-{uid}"),
                    agent: "bench/agent".into(),
                    generation: 1,
                    phase: GrantPhase::Approved,
                    expires_at: Some(now() + 3600),
                    service_provider: AUDIENCE.into(),
                    agent_jkt: agent_jkt.clone(),
                    envelope: Some(envelope.clone()),
                    updated_at_ms: now() * 1000,
                    approved_at_ms: None,
                })
                .await
                .unwrap();
        }
        Fixture {
            dir,
            redis: redis::Client::open(redis_url).unwrap(),
            hierarchy,
            agent: Arc::new(agent),
            agent_jkt,
            uids,
        }
    }

    /// Redis's CPU time so far (user + system), in seconds.
    pub async fn redis_cpu(&self) -> f64 {
        let mut conn = self.redis.get_multiplexed_async_connection().await.unwrap();
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut conn)
            .await
            .unwrap();
        info.lines()
            .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
            .filter_map(|l| {
                l.split_once(':')
                    .and_then(|(_, v)| v.trim().parse::<f64>().ok())
            })
            .sum()
    }

    /// `n` distinct tokens, spread over the grants.
    pub async fn tokens(&self, n: usize) -> Vec<Arc<str>> {
        let mut out = Vec::with_capacity(n);
        let now = now();
        let details: Vec<agentauth_core::capability::AuthorizationDetail> = serde_json::from_value(json!([
            {"type": "agentauth:read", "resource": "orders/**"},
            {"type": "agentauth:write", "resource": "orders/**", "actions": ["create", "update"]},
            {"type": "agentauth:transact", "resource": "pay/**", "maxAmount": "50.00", "currency": "EUR"},
        ]))
        .unwrap();
        for i in 0..n {
            let claims = AccessTokenClaims {
                iss: ISSUER.into(),
                sub: "bench/agent".into(),
                aud: AUDIENCE.into(),
                client_id: "bench/agent".into(),
                iat: now,
                nbf: now,
                exp: now + 300,
                jti: dpop::new_jti(),
                cnf: Confirmation {
                    jkt: self.agent_jkt.clone(),
                },
                authorization_details: details.clone(),
                grant: GrantRef {
                    uid: self.uids[i % self.uids.len()].clone(),
                    generation: 1,
                },
                env: Some("sha256:bench".into()),
            };
            out.push(Arc::from(self.hierarchy.sign_token(&claims).await.unwrap()));
        }
        out
    }

    /// `n` request bodies cycling over `tokens`, each with a fresh proof
    /// (made on every core, just before the phase: proofs live 60 s).
    pub fn requests(&self, tokens: &[Arc<str>], n: usize) -> Vec<Bytes> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let iat = now();
        let chunks: Vec<Vec<Bytes>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let agent = self.agent.clone();
                    s.spawn(move || {
                        (t..n)
                            .step_by(threads)
                            .map(|i| body(&agent, &tokens[i % tokens.len()], iat))
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        chunks.into_iter().flatten().collect()
    }
}

fn body(agent: &SigningKey, token: &str, iat: i64) -> Bytes {
    let request = dpop::Request {
        method: "POST",
        url: URL,
        access_token: Some(token),
        nonce: None,
    };
    let proof = dpop::create(agent, &request, iat, &dpop::new_jti()).unwrap();
    Bytes::from(
        serde_json::to_vec(&json!({
            "token": format!("DPoP {token}"),
            "dpop": proof,
            "method": "POST",
            "url": URL,
            "action": {"type": "read", "resource": "orders/eu/42"},
        }))
        .unwrap(),
    )
}

/// Raw ES256 verifications per second on `threads` threads (one proof's
/// signature, verified over and over).
pub fn es256_ceiling(threads: usize, duration: Duration) -> f64 {
    let key = SigningKey::generate();
    let message = b"eyJhbGciOiJFUzI1NiJ9.eyJiZW5jaCI6dHJ1ZX0";
    let signature = key.sign(message);
    let public = key.verifying_key().unwrap();
    let started = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut count = 0u64;
                    while started.elapsed() < duration {
                        for _ in 0..64 {
                            assert!(public.verify(message, &signature));
                        }
                        count += 64;
                    }
                    count
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// CPU µs of one ES256 verification on this thread (one proof's signature,
/// verified over and over for `duration`): the unit the verifier's CPU per
/// request is compared with.
pub fn es256_cpu_us(duration: Duration) -> f64 {
    let key = SigningKey::generate();
    let message = b"eyJhbGciOiJFUzI1NiJ9.eyJiZW5jaCI6dHJ1ZX0";
    let signature = key.sign(message);
    let public = key.verifying_key().unwrap();
    let started = Instant::now();
    let cpu_before = thread_cpu_ns();
    let mut count = 0u64;
    while started.elapsed() < duration {
        for _ in 0..64 {
            assert!(public.verify(message, &signature));
        }
        count += 64;
    }
    (thread_cpu_ns() - cpu_before) as f64 / 1000.0 / count as f64
}

/// Nanoseconds this thread has run on a CPU (the scheduler's own count:
/// time waiting for a core, on a shared machine, is not in it).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `serve-verifier <dir> <redis-url> <port>`: the real verifier, as
/// `agentauth verifier` runs it.
pub fn serve_verifier(args: &[String]) {
    let dir = std::path::Path::new(&args[0]);
    let root = std::fs::read_to_string(dir.join("root.jwk")).unwrap();
    let mut config = VerifierConfig::for_tests(ISSUER, AUDIENCE, dir.join("jwks.json"), root);
    config.redis.redis_url = Some(args[1].clone());
    config.listen = format!("127.0.0.1:{}", args[2]).parse().unwrap();
    config.identity = Some("bench".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(agentauth_verifier::server::run(
            config,
            std::future::pending(),
        ))
        .unwrap();
}
