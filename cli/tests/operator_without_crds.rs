//! The real `agentauth operator` process against an apiserver without the
//! AgentAuth CRDs: it exits at once with an error that names the missing
//! resources and how to install them, instead of retrying its watches
//! forever. The control plane is this binary's own (the other tests' has
//! the CRDs installed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_without_crds_exits_and_says_how_to_install_them() {
    let cp = agentauth_testenv::ControlPlane::start().await.unwrap();
    if !cp.is_local() {
        println!("skipped: an existing cluster (AGENTAUTH_TEST_KUBECONFIG) has the CRDs installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .arg("operator")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "http://127.0.0.1:1",
        ])
        .args(["--generate-root-key", "--root-key-file"])
        .arg(dir.path().join("root-key.pem"))
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentauth operator starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("the operator did not exit within 30 s without its CRDs");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(
        !status.success(),
        "exit status {status:?}; stderr: {stderr}"
    );
    for says in [
        "the AgentAuth CRDs are not installed",
        "capabilitygrants.agentauth.dev/v1alpha1",
        "agentauth crds print | kubectl apply -f -",
        "charts/agentauth",
    ] {
        assert!(
            stderr.contains(says),
            "stderr does not say {says:?}: {stderr}"
        );
    }
}
