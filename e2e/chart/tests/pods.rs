//! The chart installed for real into a simulated cluster: the rendered
//! manifests are applied (not dry-run) to a fresh control plane with the real
//! kube-controller-manager and kube-scheduler, and kwok playing the kubelets
//! of three Nodes, so the workloads reconcile as in a cluster while no
//! container runs (no images are pulled here).
//!
//! ```text
//!  ci/minimal-values.yaml  ─helm template─▶ ns A ─┐  server-side apply   Deployments ─▶ ReplicaSets ─▶ Pods
//!  ci/hostport-values.yaml ─helm template─▶ ns B ─┼────────────────────▶ DaemonSet   ─▶ one Pod per Node
//!  ci/gcp-kms-values.yaml  ─helm template─▶ ns C ─┘                      archive claim ◀─ PV controller ─ PV (per install)
//!                                                                       scheduler: anti-affinity, hostPort, bound volume
//!                                                                       kwok: Running/Ready; PDBs, EndpointSlices
//! ```
//!
//! What it proves about the chart: selectors match their pod templates
//! (ReplicaSets, DaemonSet, PodDisruptionBudgets, Services all find their
//! pods), the operator replicas (and the archiver's, with an S3 archive)
//! spread over Nodes, the verifier lands on every Node (with its hostPort
//! when asked), the archiver's claim binds and its pod is scheduled with it,
//! and the PDBs are satisfied once everything is up. What it cannot prove:
//! anything a container does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pods {
    pub mod apply;
    pub mod observe;
}

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentauth_testenv::helm::{chart_dir, render_chart};
use agentauth_testenv::{ControlPlane, Simulator};

use pods::apply::{apply_all, create_claimed_volumes, create_referenced_inputs};
use pods::observe::{Install, dump_state, observe};

/// Simulated Nodes: enough for the operator's two replicas to spread with one
/// Node to spare, and for the DaemonSet's one-per-Node to mean something.
const NODES: usize = 3;

/// How long the workloads may take to become available once applied: kwok
/// makes pods Ready at once, so this is controller and scheduler latency.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The documented values files installed, each as its own release in its own
/// namespace, and the verifier hostPort each asks for
/// (`verifier.hostPort` in ci/hostport-values.yaml). The first two keep the
/// archive on a claim (one archiver); gcp-kms-values.yaml keeps it in S3
/// (two archivers, spread, with a PodDisruptionBudget).
const INSTALLS: [(&str, &str, Option<i32>); 3] = [
    ("minimal-values.yaml", "agentauth", None),
    ("hostport-values.yaml", "agentauth-hp", Some(18081)),
    ("gcp-kms-values.yaml", "agentauth-gcp", None),
];

fn values_file(name: &str) -> PathBuf {
    chart_dir().join("ci").join(name)
}

#[tokio::test]
async fn chart_workloads_reconcile_on_simulated_nodes() {
    let started = Instant::now();
    // A cluster of its own: controllers act on everything they see, so it
    // must not share the control plane with other tests.
    let cp = ControlPlane::start().await.unwrap();
    cp.install_crds(&agentauth_testenv::generated_crds_dir())
        .await
        .unwrap();
    let simulator = Simulator::start(&cp, NODES).await.unwrap();
    let client = cp.client().unwrap();

    let mut installs = Vec::new();
    for (values, release, host_port) in INSTALLS {
        let namespace = cp.test_namespace("pods").await.unwrap();
        let home = tempfile::tempdir().unwrap();
        let objects = render_chart(
            home.path(),
            release,
            &namespace,
            &[values_file(values)],
            &[],
        )
        .unwrap_or_else(|e| panic!("{values}: {e}"));
        create_referenced_inputs(&client, &namespace).await;
        create_claimed_volumes(&client, &namespace, &objects).await;
        apply_all(&client, &objects).await;
        installs.push(Install::new(values, namespace, objects, host_port));
    }

    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let reports = loop {
        let mut reports = Vec::new();
        let mut pending = Vec::new();
        for install in &installs {
            match observe(&client, install, NODES).await {
                Ok(summary) => reports.push(summary),
                Err(waiting) => pending.push(format!("{}: {waiting}", install.values)),
            }
        }
        if pending.is_empty() {
            break reports;
        }
        if Instant::now() >= deadline {
            let mut state = String::new();
            for install in &installs {
                state.push_str(&dump_state(&client, install).await);
            }
            panic!(
                "the chart's workloads did not settle within {SETTLE_TIMEOUT:?}:\n{}\n\n{state}\n{}",
                pending.join("\n"),
                simulator.log_tails(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for report in reports {
        println!("simulated cluster: {NODES} nodes, {report}");
    }
    println!(
        "control plane up in {:?}, simulator with Ready nodes in {:?}, whole test {:?}",
        cp.started_in().unwrap_or_default(),
        simulator.started_in(),
        started.elapsed()
    );
}
