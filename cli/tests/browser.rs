//! The approval UI in a real browser against the whole system (issue 13):
//! `agentauth dev` (local apiserver, webhook registered, operator serving
//! the built UI, Redis, verifiers, example provider) is started here, a
//! second Approver whose scope is another namespace is created, and
//! `e2e/browser/run.mjs` drives Debian's headless chromium through
//! puppeteer-core with CDP virtual passkeys:
//!
//! ```text
//!  enroll (printed link) ─▶ sign in ─▶ SDK grant listed ─▶ approve ─▶ Approved ─▶ SDK token
//!  deny with a reason · revoke the approved grant (confirm) ─▶ Revoked · History from the server
//!  out-of-scope approver · grant changed mid-ceremony
//!  approval POSTed from another origin · session idle timeout
//!  a grant whose envelope needs two approvers: 1/2, then a second approver ─▶ Approved
//!  + no console errors, no CSP violation, axe-core on every page; screenshots
//! ```
//!
//! Needs `chromium` and `approval-ui/node_modules` + `approval-ui/dist`
//! (`./test.sh` installs and builds them: `ensure_chromium`,
//! `ensure_node_modules`, `npm run build`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentauth_crds::{Approver, BehavioralEnvelope};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Short enough to wait out in the test, long enough that the other
/// scenarios (whose pages poll every few seconds) keep their sessions.
const SESSION_IDLE_SECS: u64 = 12;
/// An Approver whose scope does not cover the examples' namespace.
const OTHER_APPROVER: &str = "omar-other-team";
/// A second Approver in the examples' namespace, for a grant needing two.
const SECOND_APPROVER: &str = "erin-second";
/// An envelope requiring two distinct approvers (N-of-M).
const TWO_APPROVER_ENVELOPE: &str = "two-approvers";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("AGENTAUTH_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no chromium at {} — run ./test.sh, or `source scripts/deps.sh && ensure_chromium`",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_ui_in_a_real_browser() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ui = repo().join("approval-ui");
    let dist = ui.join("dist").canonicalize().unwrap_or_default();
    assert!(
        dist.join("index.html").is_file() && ui.join("node_modules/puppeteer-core").is_dir(),
        "the approval UI is not built: run ./test.sh, or `source scripts/deps.sh && \
         ensure_node_modules && (cd approval-ui && npm run build)`"
    );
    let chromium = chromium();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let idle = format!("{SESSION_IDLE_SECS}s");
    let dev = support::start_with_env(
        &state,
        &[
            ("AGENTAUTH_UI_DIR", dist.as_os_str()),
            ("AGENTAUTH_APPROVAL_SESSION_IDLE", OsStr::new(&idle)),
        ],
    );
    let ui_url = dev.url("approvals");
    assert!(ui_url.ends_with("/approvals/"), "{ui_url}");
    let origin = ui_url.trim_end_matches("/approvals/").to_owned();
    assert!(
        dev.banner.iter().any(|l| l.contains(&format!(
            "{origin}/approvals/enroll?approver=dana-fischer#token="
        ))),
        "the banner prints no enrollment link"
    );
    let endpoints: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("run/endpoints.json")).unwrap()).unwrap();
    let kubeconfig = state.join("kubeconfig");
    create_other_approver(&kubeconfig).await;
    create_second_approver(&kubeconfig).await;

    let mut node = Command::new("node")
        .arg(repo().join("e2e/browser/run.mjs"))
        .env("AGENTAUTH_BIN", env!("CARGO_BIN_EXE_agentauth"))
        .env("AGENTAUTH_DEV_STATE_DIR", &state)
        .env("KUBECONFIG", &kubeconfig)
        .env("AGENTAUTH_UI_ORIGIN", &origin)
        .env(
            "AGENTAUTH_PROVIDER_URL",
            endpoints["provider"].as_str().unwrap(),
        )
        .env("AGENTAUTH_OTHER_APPROVER", OTHER_APPROVER)
        .env("AGENTAUTH_SECOND_APPROVER", SECOND_APPROVER)
        .env("AGENTAUTH_TWO_APPROVER_ENVELOPE", TWO_APPROVER_ENVELOPE)
        .env(
            "AGENTAUTH_SESSION_IDLE_MS",
            (SESSION_IDLE_SECS * 1000).to_string(),
        )
        .env("AGENTAUTH_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .spawn()
        .expect("node runs e2e/browser/run.mjs");
    // The script bounds itself (130 s); this bounds it again.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            panic!("the browser e2e did not finish within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let stopped = dev.interrupt();
    println!("browser e2e with agentauth dev: {:?}", started.elapsed());
    assert!(status.success(), "the browser e2e failed: {status:?}");
    assert!(stopped.success(), "agentauth dev exit status {stopped:?}");
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A second approver for the examples' namespace (with the RBAC verb
/// `approve`), and an envelope whose grants need two distinct approvers.
async fn create_second_approver(kubeconfig: &Path) {
    let client = client(kubeconfig).await;
    let email = "erin.second@example.com";
    let approver: Approver = serde_json::from_value(serde_json::json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Approver",
        "metadata": {"name": SECOND_APPROVER},
        "spec": {"displayName": "Erin (second approver)", "email": email,
                 "scope": {"namespaces": ["agents"]}},
    }))
    .unwrap();
    Api::<Approver>::all(client.clone())
        .create(&PostParams::default(), &approver)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "erin-second-approves", "namespace": "agents"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "agentauth-dev-approver"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": email}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), "agents")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let envelope: BehavioralEnvelope = serde_json::from_value(serde_json::json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
        "metadata": {"name": TWO_APPROVER_ENVELOPE, "namespace": "agents"},
        "spec": {"maxTokenTtl": "5m", "approvals": {"required": 2}},
    }))
    .unwrap();
    Api::<BehavioralEnvelope>::namespaced(client, "agents")
        .create(&PostParams::default(), &envelope)
        .await
        .unwrap();
}

async fn create_other_approver(kubeconfig: &Path) {
    let client = client(kubeconfig).await;
    let approver: Approver = serde_json::from_value(serde_json::json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "Approver",
        "metadata": {"name": OTHER_APPROVER},
        "spec": {
            "displayName": "Omar (another team)",
            "email": "omar@example.com",
            "scope": {"namespaces": ["team-other"]},
        },
    }))
    .unwrap();
    Api::<Approver>::all(client)
        .create(&PostParams::default(), &approver)
        .await
        .unwrap();
}
