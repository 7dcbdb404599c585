//! A real Kubernetes control plane for AgentAuth's integration tests: etcd and
//! kube-apiserver on free loopback ports (DESIGN.md §10), or an existing
//! cluster when `AGENTAUTH_TEST_KUBECONFIG` names one.
//!
//! ```text
//!  KUBEBUILDER_ASSETS ─┐
//!  or setup.sh ────────┴▶ etcd + kube-apiserver ◀── kube::Client (fresh per call)
//!                          (token auth, RBAC)        ├─ client()          admin, system:masters
//!                                                    └─ client_as(u, gs)  impersonated, RBAC applies
//! ```
//!
//! One control plane serves a whole test binary through [`shared`]; each test
//! takes a fresh namespace ([`ControlPlane::test_namespace`]) and installs the
//! CRDs it needs ([`ControlPlane::install_crds`], idempotent):
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentauth_testenv::Error> {
//! let cp = agentauth_testenv::shared().await;
//! cp.install_crds(&agentauth_testenv::generated_crds_dir()).await?;
//! let ns = cp.test_namespace("grant-approval").await?;
//! let client = cp.client()?;
//! # let _ = (ns, client);
//! # Ok(())
//! # }
//! ```
//!
//! The servers stop when the [`ControlPlane`] is dropped, and — because
//! statics are never dropped — also when the test process exits, panics or is
//! killed: each server runs under a watchdog tied to a pipe the test process
//! holds (see `process.rs`). There is no controller-manager: no garbage
//! collection, no service-account tokens, and deleted namespaces stay
//! `Terminating`.
//!
//! Tests that need workloads to reconcile (Deployments to make Pods, Pods to
//! be scheduled and become Ready) start a [`Simulator`] on a control plane of
//! their own: kube-controller-manager, kube-scheduler and kwok's fake Nodes.

#![forbid(unsafe_code)]

mod binaries;
mod control_plane;
mod crds;
mod error;
pub mod helm;
mod latency_proxy;
mod moto;
mod namespace;
mod openbao;
mod pki;
mod process;
mod rbac;
mod readiness;
mod redis;
mod redis_cluster;
pub mod simulator;

pub use control_plane::{ADMIN_USER, ControlPlane, EXISTING_KUBECONFIG_ENV};
pub use crds::FIELD_MANAGER;
pub use error::Error;
pub use latency_proxy::LatencyProxy;
pub use moto::{MOTO_SERVER_ENV, MotoServer, moto_server_path, shared_moto};
pub use namespace::TEST_NAMESPACE_LABEL;
pub use openbao::{OPENBAO_ENV, OpenBao, openbao_path, service_account_token, shared_openbao};
pub use rbac::Permission;
pub use redis::{REDIS_SERVER_ENV, RedisServer};
pub use redis_cluster::{RedisCluster, SlotMigration};
pub use simulator::{SIMULATOR_BIN_ENV, Simulator};

use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

/// The repository root (found from this crate's location at build time).
pub fn repo_root() -> PathBuf {
    // This crate lives at `e2e/testenv/`.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// `crds/generated/`, where the CRD crate writes the YAML that [`ControlPlane::install_crds`] applies.
pub fn generated_crds_dir() -> PathBuf {
    repo_root().join("crds").join("generated")
}

/// The control plane of this test binary, or the message of its failed start.
static SHARED: OnceCell<Result<ControlPlane, String>> = OnceCell::const_new();

/// The control plane shared by every test of this binary, started on first use.
///
/// Only the processes are shared: take clients with [`ControlPlane::client`]
/// inside each test, since a client belongs to the runtime that made it.
/// A failed start is remembered, so later tests fail at once with the same message.
pub async fn try_shared() -> Result<&'static ControlPlane, Error> {
    SHARED
        .get_or_init(|| async { ControlPlane::start().await.map_err(|e| error::chain(&e)) })
        .await
        .as_ref()
        .map_err(|message| Error::SharedStartFailed(message.clone()))
}

/// [`try_shared`] for tests: panics with the start failure (which includes the
/// failing server's log tail), failing the calling test.
#[expect(
    clippy::panic,
    reason = "a test harness entry point reports failure by failing the test"
)]
pub async fn shared() -> &'static ControlPlane {
    match try_shared().await {
        Ok(control_plane) => control_plane,
        Err(error) => panic!("{error}"),
    }
}
