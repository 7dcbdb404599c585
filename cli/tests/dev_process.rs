//! The real `agentauth dev` process on the local control plane: it reaches
//! "ready", every service answers /readyz, the CRDs, the examples and the
//! webhook registration are in the cluster; the walk-through the banner
//! prints works as printed (key, request, passkey approval, an allowed call,
//! revocation, the verifier's denial); SIGINT stops it with exit 0 and
//! no service process left; a second start with the same state folder works
//! and keeps the root key; a service that dies stops the run with a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;

use support::{Dev, assert_all_stopped, recorded_pids, start, walk};

async fn get(client: &reqwest::Client, url: &str) -> u16 {
    match client.get(url).send().await {
        Ok(response) => response.status().as_u16(),
        Err(e) => panic!("{url}: {e}"),
    }
}

async fn check_running_system(dev: &Dev, state: &Path) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    for label in ["operator", "verifier-a", "verifier-b"] {
        let url = format!("{}/readyz", dev.url(label));
        assert_eq!(get(&http, &url).await, 200, "{url}");
    }
    let ca = std::fs::read(state.join("run/webhook-ca.pem")).unwrap();
    let https = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let url = format!("{}/readyz", dev.url("webhook"));
    assert_eq!(get(&https, &url).await, 200, "{url}");

    let kubeconfig = kube::config::Kubeconfig::read_from(state.join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let names: Vec<String> = crds
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.ends_with(".agentauth.dev"))
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    assert!(webhooks.get_opt("agentauth-dev").await.unwrap().is_some());
    let agent = ApiResource {
        group: "agentauth.dev".into(),
        version: "v1alpha1".into(),
        api_version: "agentauth.dev/v1alpha1".into(),
        kind: "Agent".into(),
        plural: "agents".into(),
    };
    let agents: Api<DynamicObject> = Api::namespaced_with(client.clone(), "agents", &agent);
    for name in ["calendar-assistant", "shopping-agent"] {
        assert!(
            agents.get_opt(name).await.unwrap().is_some(),
            "agent {name}"
        );
    }
    let approver = ApiResource {
        kind: "Approver".into(),
        plural: "approvers".into(),
        ..agent
    };
    let approvers: Api<DynamicObject> = Api::all_with(client, &approver);
    assert!(approvers.get_opt("dana-fischer").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_starts_everything_stops_cleanly_on_sigint_and_starts_again() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let started = Instant::now();
    let dev = start(&state);
    println!("first start: ready after {:?}", started.elapsed());
    check_running_system(&dev, &state).await;
    let pids = recorded_pids(&state);
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "archiver",
            "operator",
            "provider",
            "redis",
            "verifier-a",
            "verifier-b",
            "webhook"
        ]
    );
    walk_through(&dev, &state);
    read_the_audit_archive(&dev, &state);
    let apiserver = dev.url("apiserver");
    let root_key = std::fs::read(state.join("root-key.pem")).unwrap();
    let status = dev.interrupt();
    assert!(status.success(), "exit status {status:?}");
    assert_all_stopped(&pids, &apiserver);

    let started = Instant::now();
    let dev = start(&state);
    println!("second start: ready after {:?}", started.elapsed());
    check_running_system(&dev, &state).await;
    assert_eq!(
        std::fs::read(state.join("root-key.pem")).unwrap(),
        root_key,
        "the root key is kept between runs"
    );
    let pids = recorded_pids(&state);
    let apiserver = dev.url("apiserver");

    // A service that dies stops the whole run, loudly and with a failure.
    let (_, victim) = pids.iter().find(|(n, _)| n == "verifier-b").unwrap();
    let victim = victim.to_string();
    let killed = Command::new("kill").args(["-KILL", &victim]).status();
    assert!(killed.unwrap().success());
    let status = dev.wait(Duration::from_secs(30));
    assert!(
        !status.success(),
        "a dead service must fail the run: {status:?}"
    );
    assert_all_stopped(&pids, &apiserver);
}

/// The banner's audit commands after the walk-through: the archive shows the
/// agent's story up to the revoked call, and verifies against the root key.
fn read_the_audit_archive(dev: &Dev, state: &Path) {
    let commands = support::audit_commands(dev, state);
    assert_eq!(commands.len(), 2, "show and verify: {commands:?}");
    let (show, verify) = (&commands[0], &commands[1]);
    assert_eq!((show[1].as_str(), verify[1].as_str()), ("show", "verify"));
    // Segments are sealed every 2 s in development: wait for the last call.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let (ok, out) = support::agentauth(show);
        assert!(ok, "audit show failed: {out}");
        if out.contains("grant_revoked") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for expected in [
        "token_issued",
        "verification  allow",
        "deny (grant_revoked)",
    ] {
        assert!(out.contains(expected), "{expected} in the archive: {out}");
    }
    assert!(
        out.lines()
            .all(|l| l.contains("agent=agents/shopping-agent")),
        "only the agent's records: {out}"
    );
    let (ok, out) = support::agentauth(verify);
    assert!(ok && out.starts_with("ok:"), "audit verify: {out}");
}

/// The banner's commands, in its order, run as a shell would run them.
fn walk_through(dev: &Dev, state: &Path) {
    support::walk_through(dev, state, |step, args, ok, out| match step {
        // agent-key, approve, revoke
        0 | 2 | 4 => assert!(ok, "step {step} failed: {out}"),
        // request: the grant name alone on stdout (GRANT=$(...))
        1 => {
            assert!(ok, "request failed: {out}");
            assert!(out.trim().starts_with("agents/shopping-agent-"), "{out}");
        }
        3 => {
            assert!(ok, "the approved call was refused: {out}");
            assert!(
                out.contains("HTTP 200") && out.contains("\"allow\": true"),
                "{out}"
            );
            // What the grant does not cover is refused (docs/dev.md says so).
            let outside = args[args.len() - 1].replace("/catalog/paper", "/orders/1");
            let (ok, out) = walk(state, &["call", args[1], "GET", &outside]);
            assert!(!ok && out.contains("capability_not_granted"), "{out}");
        }
        // After the revocation the verifier denies the same token.
        5 => {
            assert!(!ok, "the call after revocation was allowed: {out}");
            assert!(
                out.contains("HTTP 403") && out.contains("grant_revoked"),
                "{out}"
            );
        }
        _ => unreachable!(),
    });
}
