//! The system under test, started from nothing for one experiment.
//!
//! ```text
//!  ControlPlane::start (own etcd + apiserver) ─▶ CRDs ─▶ namespaces, Approver + RBAC
//!  RedisServer ─▶ [LatencyProxy for the verifiers]
//!  agentauth root-key generate ─▶ root-key.pem, root.jwk
//!  front ─▶ operator-a (leader), operator-b (standby): same root key, same public URL
//!  verifier-a, verifier-b: issuer/JWKS through the front, the same Redis
//!  approver: enrollment token ─▶ software passkey enrolled, logged in
//!  agents 0..n: key ─▶ Agent ─▶ grant requested (SDK) ─▶ approved (passkey) ─▶ token
//! ```
//!
//! No admission webhook runs: the approval API writes the approval and the
//! operator verifies it again before it approves (DESIGN §4.2), which is the
//! part these faults can break. The webhook's checks have their own tests.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentauth::{AgentAuthClient, AgentAuthConfig, AgentKey, Capability, GrantOptions};
use agentauth_crds::{Agent, CapabilityGrant};
use agentauth_soft_passkey::SoftApprover;
use agentauth_testenv::{ControlPlane, LatencyProxy, RedisServer};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::Error;
use crate::front::Front;
use crate::service::{Service, free_port};
use crate::setup::{
    enroll_approver, generate_root_key, operator_args, prepare_cluster, verifier_args,
};

pub use crate::agent::{AgentHandle, Credentials, verify_body};

/// The audience (service provider) of every grant and token.
pub const AUDIENCE: &str = "https://shop.example.com";
/// The namespace of the agents and their grants.
pub const AGENTS_NAMESPACE: &str = "agents";
/// The namespace of the operators' Lease and the enrollment tokens.
pub const SYSTEM_NAMESPACE: &str = "agentauth-system";
/// The operators' Lease.
pub const LEASE: &str = "agentauth-operator";
/// The approver who approves every grant.
pub const APPROVER: &str = "dana-fischer";
/// The field manager of everything the harness applies.
pub(crate) const FIELD_MANAGER: &str = "agentauth-chaos";
/// How long a service may take to become ready.
const READY: Duration = Duration::from_secs(40);
/// How long the operator may take to react to a write.
const REACTION: Duration = Duration::from_secs(20);

/// How to start the system.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many agents (each with one approved grant and a token).
    pub agents: usize,
    /// The operators' `--lease-duration`.
    pub lease_duration: Duration,
    /// Whether the verifiers reach Redis through a [`LatencyProxy`].
    pub redis_proxy: bool,
    /// The verifiers' `--state-timeout` (the hot path's Redis deadline).
    pub state_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            agents: 3,
            lease_duration: Duration::from_secs(15),
            redis_proxy: false,
            state_timeout: Duration::from_millis(50),
        }
    }
}

/// The running system; everything stops when it is dropped.
pub struct System {
    /// The options it was started with.
    pub options: Options,
    /// The control plane (own, so an experiment may stop its apiserver).
    pub control_plane: ControlPlane,
    /// Redis.
    pub redis: RedisServer,
    /// The proxy between the verifiers and Redis, if asked for.
    pub redis_proxy: Option<LatencyProxy>,
    /// The operators' common address.
    pub front: Front,
    /// operator-a (started first: the first leader) and operator-b.
    pub operators: Vec<Service>,
    /// verifier-a and verifier-b, the two "nodes".
    pub verifiers: Vec<Service>,
    /// The agents.
    pub agents: Vec<AgentHandle>,
    /// The approver's passkey and session (through the front).
    pub approver: SoftApprover,
    /// The admin kubeconfig (a copy outside the control plane's folder).
    pub kubeconfig: PathBuf,
    /// How long the start took.
    pub started_in: Duration,
    // Dropped last: logs and keys.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("front", &self.front.url())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl System {
    /// Starts everything (see the module docs) and waits until each agent
    /// holds a token of an approved grant.
    pub async fn start(options: Options) -> Result<Self, Error> {
        let started = Instant::now();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let binary = crate::binary::agentauth()?;
        let dir = tempfile::Builder::new()
            .prefix("agentauth-chaos-")
            .tempdir()
            .map_err(|e| Error::io("create a temporary folder", e))?;
        let control_plane = ControlPlane::start().await?;
        control_plane
            .install_crds(&agentauth_testenv::generated_crds_dir())
            .await?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::copy(control_plane.kubeconfig_path(), &kubeconfig)
            .map_err(|e| Error::io("copy the kubeconfig", e))?;
        let client = control_plane.client()?;
        prepare_cluster(&client).await?;

        let redis = RedisServer::start().await?;
        let redis_proxy = if options.redis_proxy {
            let upstream = SocketAddr::from(([127, 0, 0, 1], redis.port()));
            Some(LatencyProxy::start(upstream).await?)
        } else {
            None
        };
        let verifier_redis = redis_proxy
            .as_ref()
            .map_or_else(|| redis.url(), LatencyProxy::redis_url);

        let root_key = dir.path().join("root-key.pem");
        let root_jwk = dir.path().join("root.jwk");
        generate_root_key(&binary, &root_key, &root_jwk)?;

        let front = Front::start().await?;
        let env = vec![
            ("KUBECONFIG".to_owned(), kubeconfig.clone().into_os_string()),
            ("RUST_LOG".to_owned(), OsString::from("info")),
        ];
        let launch = Launch {
            binary: &binary,
            env: &env,
            dir: dir.path(),
            front: &front,
            options: &options,
        };
        let operators = launch.operators(&client, &root_key, &redis.url()).await?;
        let verifiers = launch.verifiers(&root_jwk, &verifier_redis).await?;

        let approver = enroll_approver(&client, &front).await?;
        let mut system = System {
            options: options.clone(),
            control_plane,
            redis,
            redis_proxy,
            front,
            operators,
            verifiers,
            agents: Vec::new(),
            approver,
            kubeconfig,
            started_in: Duration::ZERO,
            dir,
        };
        for i in 0..options.agents {
            let agent = system.add_agent(&format!("agent-{i}")).await?;
            system.agents.push(agent);
        }
        system.started_in = started.elapsed();
        Ok(system)
    }

    /// A fresh admin client.
    pub fn client(&self) -> Result<Client, Error> {
        Ok(self.control_plane.client()?)
    }

    /// The folder holding every log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of every service's log, for a failed experiment.
    pub fn logs(&self, lines: usize) -> String {
        self.operators
            .iter()
            .chain(&self.verifiers)
            .map(|s| format!("--- {} ---\n{}", s.name(), s.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Creates an Agent with a fresh key, requests a grant as it and has the
    /// approver approve it; returns it with a token.
    pub async fn add_agent(&mut self, name: &str) -> Result<AgentHandle, Error> {
        let key = AgentKey::generate().map_err(|e| Error::sdk("generate a key", &e))?;
        let key_file = self.dir.path().join(format!("{name}.key"));
        key.save(&key_file)
            .map_err(|e| Error::sdk("save the key", &e))?;
        self.create_agent(name, &key).await?;
        let config = AgentAuthConfig::new(&self.front.url())
            .map_err(|e| Error::sdk("configure the client", &e))?
            .agent(AGENTS_NAMESPACE, name)
            .key_file(&key_file);
        let client =
            AgentAuthClient::new(config).map_err(|e| Error::sdk("build the client", &e))?;
        let grant = self.request_grant_until_served(&client, name).await?;
        let token = self.approved_token(&client, &grant).await?;
        Ok(AgentHandle {
            name: name.to_owned(),
            client,
            key,
            grant,
            token,
        })
    }

    /// Applies Agent `name` with `key`'s public half and waits for the
    /// operator to record its thumbprint: until then the verifiers refuse
    /// the key.
    async fn create_agent(&self, name: &str, key: &AgentKey) -> Result<(), Error> {
        let jwk = key.public_jwk();
        let agent = serde_json::json!({
            "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent",
            "metadata": {"name": name, "namespace": AGENTS_NAMESPACE},
            "spec": {"displayName": name, "owner": format!("owner-of-{name}@example.com"),
                     "publicKey": {"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}},
        });
        let agents: Api<Agent> = Api::namespaced(self.client()?, AGENTS_NAMESPACE);
        agents
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&agent),
            )
            .await
            .map_err(|source| Error::Kube {
                step: "create an Agent",
                source,
            })?;
        let started = Instant::now();
        loop {
            let thumbprint = agents
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|a| a.status)
                .and_then(|s| s.key_thumbprint);
            if thumbprint.as_deref() == Some(key.thumbprint()) {
                return Ok(());
            }
            if started.elapsed() > REACTION {
                return Err(Error::Timeout {
                    what: format!("the key thumbprint of {name} recorded"),
                    seconds: REACTION.as_secs(),
                    detail: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Requests a grant as agent `name`, retrying for a while: the replica
    /// that answers may not have seen the recorded key in its cache yet
    /// (`dpop_key_mismatch`).
    async fn request_grant_until_served(
        &self,
        client: &AgentAuthClient,
        name: &str,
    ) -> Result<String, Error> {
        let asked = Instant::now();
        loop {
            match self.request_grant(client).await {
                Ok(grant) => return Ok(grant),
                Err(e) if asked.elapsed() < REACTION => {
                    tracing::info!("grant request for {name} refused, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Has the approver approve `grant`, waits until `client` sees it and
    /// returns an access token under it.
    async fn approved_token(
        &mut self,
        client: &AgentAuthClient,
        grant: &str,
    ) -> Result<String, Error> {
        self.approve(grant).await?;
        client
            .wait_for_approval(&format!("{AGENTS_NAMESPACE}/{grant}"), REACTION)
            .await
            .map_err(|e| Error::sdk("wait for the approval", &e))?;
        client.use_grant(AUDIENCE, &format!("{AGENTS_NAMESPACE}/{grant}"));
        let token = client
            .get_token(AUDIENCE)
            .await
            .map_err(|e| Error::sdk("get a token", &e))?;
        Ok(token.access_token)
    }

    /// Requests a grant (read `catalog/**` for an hour) as `client`'s agent;
    /// returns its name.
    pub async fn request_grant(&self, client: &AgentAuthClient) -> Result<String, Error> {
        let options = GrantOptions {
            duration: Some("1h".to_owned()),
            ..GrantOptions::default()
        };
        let grant = client
            .request_grant_with(AUDIENCE, vec![Capability::read("catalog/**")], options)
            .await
            .map_err(|e| Error::sdk("request a grant", &e))?;
        Ok(grant.name)
    }

    /// Approves grant `name` with the approver's passkey. Approval sessions
    /// live in one operator replica's memory: when that replica is gone the
    /// session is too, so on a failure the same passkey starts a fresh
    /// session (as a browser would after a reload), logs in and tries again.
    pub async fn approve(&mut self, name: &str) -> Result<(), Error> {
        let first = self.approver.approve(AGENTS_NAMESPACE, name).await;
        if first.is_ok() {
            return Ok(());
        }
        let approver_error = |step| {
            move |e: agentauth_soft_passkey::SoftPasskeyError| Error::Approver {
                step,
                message: e.to_string(),
            }
        };
        let saved = self.dir.path().join("approver.passkey");
        let _ = std::fs::remove_file(&saved);
        self.approver
            .save(&saved)
            .map_err(approver_error("save the passkey"))?;
        self.approver = SoftApprover::load(
            &saved,
            &self.front.url(),
            &format!("http://localhost:{}", self.front.port()),
        )
        .map_err(approver_error("load the passkey"))?;
        self.approver
            .login(APPROVER)
            .await
            .map_err(|e| Error::Approver {
                step: "log in again",
                message: e.to_string(),
            })?;
        self.approver
            .approve(AGENTS_NAMESPACE, name)
            .await
            .map_err(|e| Error::Approver {
                step: "approve",
                message: e.to_string(),
            })
    }

    /// Revokes grant `name` (`spec.revoked: true`, as `kubectl patch` would).
    pub async fn revoke(&self, name: &str) -> Result<(), Error> {
        let grants: Api<CapabilityGrant> = Api::namespaced(self.client()?, AGENTS_NAMESPACE);
        grants
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"revoked": true}})),
            )
            .await
            .map_err(|source| Error::Kube {
                step: "revoke a grant",
                source,
            })?;
        Ok(())
    }

    /// The grant's phase (`Pending`, `Approved`, …), if it can be read.
    pub async fn phase(&self, name: &str) -> Option<String> {
        let grants: Api<CapabilityGrant> = Api::namespaced(self.client().ok()?, AGENTS_NAMESPACE);
        let grant = grants.get_opt(name).await.ok()??;
        let phase = serde_json::to_value(grant.status?.phase).ok()?;
        phase.as_str().map(str::to_owned)
    }

    /// The Lease's holder, if it can be read.
    pub async fn leader(&self) -> Option<String> {
        let client = self.client().ok()?;
        lease_holder(&client).await
    }

    /// A `/v1/verify` body for `agent` with a fresh proof whose `iat` is
    /// `skew_secs` off this machine's clock (0: a normal proof).
    pub fn verify_body(&self, agent: usize, resource: &str, skew_secs: i64) -> serde_json::Value {
        verify_body(&self.agents[agent].credentials(), resource, skew_secs)
    }
}

/// The Lease's current holder.
pub async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    leases.get_opt(LEASE).await.ok()??.spec?.holder_identity
}

async fn wait_for_leader(client: &Client, identity: &str, timeout: Duration) -> Result<(), Error> {
    let started = Instant::now();
    while lease_holder(client).await.as_deref() != Some(identity) {
        if started.elapsed() > timeout {
            return Err(Error::Timeout {
                what: format!("{identity} holding the Lease"),
                seconds: timeout.as_secs(),
                detail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// What every service process of the system is started with.
struct Launch<'a> {
    binary: &'a Path,
    env: &'a [(String, OsString)],
    dir: &'a Path,
    front: &'a Front,
    options: &'a Options,
}

impl Launch<'_> {
    /// operator-a, leading, then operator-b, both behind the front.
    async fn operators(
        &self,
        client: &Client,
        root_key: &Path,
        redis_url: &str,
    ) -> Result<Vec<Service>, Error> {
        let mut operators = Vec::new();
        let mut upstreams = Vec::new();
        for name in ["operator-a", "operator-b"] {
            let port = free_port()?;
            let args = operator_args(self.front, port, name, root_key, redis_url, self.options);
            let mut operator = self.start(name, args, port)?;
            operator.wait_ready(READY).await?;
            upstreams.push(SocketAddr::from(([127, 0, 0, 1], port)));
            self.front.set_upstreams(upstreams.clone());
            operators.push(operator);
            if name == "operator-a" {
                // operator-a leads before operator-b starts, so the roles are known.
                wait_for_leader(client, "operator-a", REACTION).await?;
            }
        }
        Ok(operators)
    }

    /// verifier-a and verifier-b, each ready.
    async fn verifiers(&self, root_jwk: &Path, redis_url: &str) -> Result<Vec<Service>, Error> {
        let mut verifiers = Vec::new();
        for name in ["verifier-a", "verifier-b"] {
            let port = free_port()?;
            let args = verifier_args(self.front, port, name, root_jwk, redis_url, self.options);
            let mut verifier = self.start(name, args, port)?;
            verifier.wait_ready(READY).await?;
            verifiers.push(verifier);
        }
        Ok(verifiers)
    }

    fn start(&self, name: &str, args: Vec<OsString>, port: u16) -> Result<Service, Error> {
        Service::start(name, self.binary, args, self.env.to_vec(), self.dir, port)
    }
}
