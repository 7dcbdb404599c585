//! The real `agentauth operator` process against the local control plane:
//! it starts on embedded defaults (generated root key, in-process state),
//! becomes ready, publishes a certified issuing key, takes the leader Lease,
//! and stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

async fn get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let response = client.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_process_serves_publishes_keys_leads_and_stops_on_sigterm() {
    let cp = agentauth_testenv::shared().await;
    cp.install_crds(&agentauth_testenv::generated_crds_dir())
        .await
        .unwrap();
    let namespace = cp.test_namespace("operator-process").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .arg("operator")
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &base,
        ])
        .args(["--generate-root-key", "--root-key-file"])
        .arg(dir.path().join("root-key.pem"))
        .args([
            "--lease-namespace",
            &namespace,
            "--identity",
            "process-test",
        ])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("agentauth operator starts");

    let started = Instant::now();
    let ready = loop {
        if let Some((200, _)) = get(&format!("{base}/readyz")).await {
            break true;
        }
        if started.elapsed() > Duration::from_secs(30) || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        ready,
        "the operator did not become ready: {:?}",
        child.try_wait()
    );
    println!("operator ready in {:?}", started.elapsed());

    let (status, jwks) = get(&format!("{base}/.well-known/jwks.json")).await.unwrap();
    assert_eq!(status, 200);
    let jwks = agentauth_core::keycert::Jwks::parse(&jwks).unwrap();
    assert_eq!(jwks.keys.len(), 1, "one certified issuing key");
    assert!(
        jwks.keys[0].cert.is_some(),
        "the issuing key carries its certificate"
    );
    let key_file = std::fs::metadata(dir.path().join("root-key.pem")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_file.permissions()) & 0o777,
        0o600
    );

    let leases: Api<Lease> = Api::namespaced(cp.client().unwrap(), &namespace);
    let leader = loop {
        let holder = leases
            .get_opt("agentauth-operator")
            .await
            .unwrap()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if holder.is_some() || started.elapsed() > Duration::from_secs(30) {
            break holder;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(leader.as_deref(), Some("process-test"));

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    let holder = leases
        .get("agentauth-operator")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder, None, "a stopping leader releases its Lease");
}
