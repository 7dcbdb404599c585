//! What a person sees with the real `kubectl`: the printer columns of
//! `kubectl get agentauth -A` and the field docs of `kubectl explain`.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::{Env, example};

/// Runs kubectl against the test control plane with a private discovery
/// cache (a shared one could predate the CRDs); returns stdout, or stderr on
/// failure.
fn kubectl(env: &Env, cache: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let output = Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(env.cp.kubeconfig_path())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {kubectl}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Retries `kubectl` for a while: the apiserver publishes a new CRD's
/// discovery and OpenAPI documents a few seconds after it is Established.
async fn kubectl_eventually(
    env: &Env,
    cache: &std::path::Path,
    args: &[&str],
    ready: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    for _ in 0..60 {
        match kubectl(env, cache, args) {
            Ok(out) if ready(&out) => return out,
            Ok(out) => last = out,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "kubectl {} never showed what was expected; last output:\n{last}",
        args.join(" ")
    );
}

#[tokio::test]
async fn kubectl_get_agentauth_shows_the_printer_columns() {
    let env = Env::new("kubectl-get").await;
    for path in [
        "calendar-assistant/agent.yaml",
        "calendar-assistant/envelope.yaml",
        "calendar-assistant/grant.yaml",
        "approvers.yaml",
    ] {
        env.apply(&example(path)).await.unwrap();
    }
    let agent = example("calendar-assistant/agent.yaml");
    let spec: agentauth_crds::AgentSpec = serde_json::from_value(agent["spec"].clone()).unwrap();
    let thumbprint = spec.key_thumbprint().unwrap();
    env.patch_status(
        &agent,
        json!({"status": {"keyThumbprint": thumbprint, "conditions": [{
        "type": "Ready", "status": "True", "reason": "Valid", "message": "the key is usable",
        "lastTransitionTime": "2026-11-28T12:00:00Z"}]}}),
    )
    .await
    .unwrap();
    let grant = example("calendar-assistant/grant.yaml");
    env.patch_status(
        &grant,
        json!({"status": {"phase": "Pending", "approvalProgress": "1/2 approved"}}),
    )
    .await
    .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let ours =
        |line: &&str| line.contains(&env.ns) && line.contains("calendar-assistant-team-calendar");
    let out = kubectl_eventually(&env, cache.path(), &["get", "agentauth", "-A"], |out| {
        out.lines().any(|l| ours(&l)) && out.contains("dana-fischer")
    })
    .await;
    let headers = [
        // Agent
        "OWNER",
        "THUMBPRINT",
        "READY",
        // BehavioralEnvelope
        "REQUESTS",
        "PER",
        "TOKEN TTL",
        // CapabilityGrant
        "AGENT",
        "PROVIDER",
        "PHASE",
        "APPROVALS",
        "EXPIRES",
        // Approver
        "EMAIL",
        "NAMESPACES",
        "AGE",
    ];
    for header in headers {
        assert!(out.contains(header), "no column {header}:\n{out}");
    }
    for value in [
        "maria.schmidt@example.com",
        thumbprint.as_str(),
        "https://calendar.example.com",
        "Pending",
        "dana.fischer@example.com",
        "5m",
    ] {
        assert!(out.contains(value), "{value} is not shown:\n{out}");
    }
    let grant_line = out.lines().find(ours).unwrap();
    for value in [
        "calendar-assistant",
        "https://calendar.example.com",
        "Pending",
        "1/2 approved",
    ] {
        assert!(
            grant_line.contains(value),
            "{value} is not in the grant's row: {grant_line}"
        );
    }
    println!("{out}");
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_docs() {
    let env = Env::new("kubectl-explain").await;
    let cache = tempfile::tempdir().unwrap();
    let out = kubectl_eventually(
        &env,
        cache.path(),
        &["explain", "capabilitygrant.spec.capabilities"],
        |out| out.contains("What the agent may do"),
    )
    .await;
    println!("{out}");
    let out = words(&out);
    for text in [
        "KIND: CapabilityGrant",
        "What the agent may do",
        "maxAmount",
        "For type transact: the largest amount of one transaction",
        "resource",
        "'**' (any number of segments",
        "type",
    ] {
        assert!(out.contains(text), "kubectl explain lacks {text:?}:\n{out}");
    }
    let out = words(&kubectl(&env, cache.path(), &["explain", "capabilitygrant"]).unwrap());
    assert!(
        out.contains("A human approver decides it with a passkey"),
        "{out}"
    );
    let path = "behavioralenvelope.spec.timeWindows.start";
    let out = words(&kubectl(&env, cache.path(), &["explain", path]).unwrap());
    assert!(out.contains("Local opening time, `HH:MM`"), "{out}");
}

/// The text with every run of whitespace one space: kubectl wraps lines to
/// the terminal.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
