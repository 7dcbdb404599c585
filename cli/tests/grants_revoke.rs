//! `agentauth grants revoke` (the runbook's emergency revocation) against
//! the real apiserver: it revokes exactly the grants its flags name — by
//! agent, by provider in one namespace or in all — and no others, records
//! the reason, writes nothing in a dry run, refuses bad input with exit
//! status 2, and on a partial failure (RBAC lets it patch one namespace, not
//! the other) exits 1 naming the grant it could not revoke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use agentauth_crds::CapabilityGrant;
use kube::api::{Api, PostParams};
use serde_json::json;

fn agentauth(kubeconfig: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_agentauth"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("agentauth runs");
    println!(
        "$ agentauth {}\n{}{}-> {:?}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    out
}

fn grant(name: &str, agent: &str, provider: &str, revoked: bool) -> CapabilityGrant {
    serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "CapabilityGrant",
        "metadata": {"name": name},
        "spec": {
            "agentRef": {"name": agent},
            "serviceProvider": provider,
            "capabilities": [{"type": "read", "resource": "catalog/**"}],
            "duration": "8h",
            "reason": "Emergency revocation test.",
            "revoked": revoked,
        },
    }))
    .unwrap()
}

/// `namespace/name` → (spec.revoked, the reason annotation).
async fn revoked(
    client: &kube::Client,
    grants: &[(&str, &str)],
) -> BTreeMap<String, (bool, Option<String>)> {
    let mut out = BTreeMap::new();
    for (ns, name) in grants {
        let api: Api<CapabilityGrant> = Api::namespaced(client.clone(), ns);
        let g = api.get(name).await.unwrap();
        let reason = g
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("agentauth.dev/revocation-reason").cloned());
        out.insert(format!("{ns}/{name}"), (g.spec.revoked, reason));
    }
    out
}

/// Creates `manifest` (any kind `kind` of the RBAC group) as the admin.
async fn create_rbac(client: &kube::Client, manifest: serde_json::Value) {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let pp = PostParams::default();
    let ns = manifest["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    match manifest["kind"].as_str() {
        Some("ClusterRole") => {
            let o: ClusterRole = serde_json::from_value(manifest).unwrap();
            Api::<ClusterRole>::all(client.clone())
                .create(&pp, &o)
                .await
                .unwrap();
        }
        Some("ClusterRoleBinding") => {
            let o: ClusterRoleBinding = serde_json::from_value(manifest).unwrap();
            Api::<ClusterRoleBinding>::all(client.clone())
                .create(&pp, &o)
                .await
                .unwrap();
        }
        Some("Role") => {
            let o: Role = serde_json::from_value(manifest).unwrap();
            Api::<Role>::namespaced(client.clone(), &ns)
                .create(&pp, &o)
                .await
                .unwrap();
        }
        Some("RoleBinding") => {
            let o: RoleBinding = serde_json::from_value(manifest).unwrap();
            Api::<RoleBinding>::namespaced(client.clone(), &ns)
                .create(&pp, &o)
                .await
                .unwrap();
        }
        other => panic!("not an RBAC kind: {other:?}"),
    }
}

/// Threat: an incident (a leaked agent key, a compromised provider) needs
/// every grant of an agent or provider revoked at once; revoking one by one
/// misses some, and a partial failure must not pass unnoticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revokes_exactly_the_grants_named_and_reports_what_it_could_not() {
    let cp = agentauth_testenv::shared().await;
    cp.install_crds(&agentauth_testenv::generated_crds_dir())
        .await
        .unwrap();
    let client = cp.client().unwrap();
    let ns1 = cp.test_namespace("grants-revoke-a").await.unwrap();
    let ns2 = cp.test_namespace("grants-revoke-b").await.unwrap();
    // Providers unique to this test, so that --all-namespaces only ever
    // meets this test's grants on a shared control plane.
    let shop = format!("https://shop-{ns1}.example.com");
    let bank = format!("https://bank-{ns1}.example.com");
    let mail = format!("https://mail-{ns1}.example.com");
    let fixtures = [
        (&ns1, "a1-shop", "agent-one", &shop, false),
        (&ns1, "a1-bank", "agent-one", &bank, false),
        (&ns1, "a2-shop", "agent-two", &shop, false),
        (&ns1, "a1-shop-old", "agent-one", &shop, true),
        (&ns2, "a1-shop", "agent-one", &shop, false),
        (&ns2, "a3-bank", "agent-three", &bank, false),
        (&ns1, "a2-mail", "agent-two", &mail, false),
        (&ns2, "a3-mail", "agent-three", &mail, false),
    ];
    for (ns, name, agent, provider, revoked) in fixtures {
        let api: Api<CapabilityGrant> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &grant(name, agent, provider, revoked),
        )
        .await
        .unwrap();
    }
    let all: Vec<(&str, &str)> = fixtures
        .iter()
        .map(|(ns, name, ..)| (ns.as_str(), *name))
        .collect();
    let kubeconfig = cp.kubeconfig_path();
    let state = |want: &[&str]| -> BTreeMap<String, bool> {
        all.iter()
            .map(|(ns, name)| {
                let key = format!("{ns}/{name}");
                let on = want.contains(&key.as_str()) || *name == "a1-shop-old";
                (key, on)
            })
            .collect()
    };
    let k = |ns: &str, name: &str| format!("{ns}/{name}");

    // By agent: its grants in its namespace, whatever the provider; not the
    // same-named agent's grant in another namespace.
    let agent = format!("{ns1}/agent-one");
    let out = agentauth(
        kubeconfig,
        &[
            "grants",
            "revoke",
            "--agent",
            &agent,
            "--reason",
            "agent key leaked",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("revoked          {}", k(&ns1, "a1-shop"))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("revoked          {}", k(&ns1, "a1-bank"))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("already revoked  {}", k(&ns1, "a1-shop-old"))),
        "{stdout}"
    );
    let now = revoked(&client, &all).await;
    let revoked_now: BTreeMap<String, bool> =
        now.iter().map(|(g, (r, _))| (g.clone(), *r)).collect();
    let first = [k(&ns1, "a1-shop"), k(&ns1, "a1-bank")];
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(revoked_now, state(&first));
    assert_eq!(
        now[&k(&ns1, "a1-shop")].1.as_deref(),
        Some("agent key leaked"),
        "the reason is recorded"
    );
    assert_eq!(
        now[&k(&ns1, "a1-shop-old")].1,
        None,
        "an already revoked grant is not written"
    );

    // A dry run by provider across namespaces lists and writes nothing.
    let out = agentauth(
        kubeconfig,
        &["grants", "revoke", "--provider", &shop, "-A", "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("would revoke     {}", k(&ns1, "a2-shop"))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("would revoke     {}", k(&ns2, "a1-shop"))),
        "{stdout}"
    );
    assert!(stdout.contains("nothing written"), "{stdout}");
    let after_dry: BTreeMap<String, bool> = revoked(&client, &all)
        .await
        .into_iter()
        .map(|(g, (r, _))| (g, r))
        .collect();
    assert_eq!(after_dry, state(&first), "a dry run writes nothing");

    // By provider in one namespace: only there.
    let out = agentauth(
        kubeconfig,
        &["grants", "revoke", "--provider", &bank, "--namespace", &ns2],
    );
    assert_eq!(out.status.code(), Some(0));
    // By provider in every namespace.
    let out = agentauth(
        kubeconfig,
        &["grants", "revoke", "--provider", &shop, "--all-namespaces"],
    );
    assert_eq!(out.status.code(), Some(0));
    let second = [
        k(&ns1, "a1-shop"),
        k(&ns1, "a1-bank"),
        k(&ns2, "a3-bank"),
        k(&ns1, "a2-shop"),
        k(&ns2, "a1-shop"),
    ];
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let after: BTreeMap<String, bool> = revoked(&client, &all)
        .await
        .into_iter()
        .map(|(g, (r, _))| (g, r))
        .collect();
    assert_eq!(after, state(&second), "exactly the grants named, no others");

    // Nothing matches: said, not an error.
    let out = agentauth(
        kubeconfig,
        &[
            "grants",
            "revoke",
            "--provider",
            "https://nobody.example.com",
            "-n",
            &ns1,
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no CapabilityGrant matches"));

    // Bad input: exit status 2 and a message that says what to give.
    for (args, says) in [
        (
            vec!["grants", "revoke", "--agent", "agent-one"],
            "namespace/name",
        ),
        (
            vec!["grants", "revoke", "--provider", &shop],
            "--all-namespaces",
        ),
        (vec!["grants", "revoke"], "--agent"),
        (
            vec!["grants", "revoke", "--agent", &agent, "-n", &ns2],
            "cannot be used with",
        ),
    ] {
        let out = agentauth(kubeconfig, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    // Partial failure: a user who may list grants everywhere but patch them
    // only in ns1. The ns1 grant is revoked; the ns2 one is named as failed.
    let user = format!("revoker-{ns1}");
    create_rbac(&client, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": user},
        "rules": [{"apiGroups": ["agentauth.dev"], "resources": ["capabilitygrants"], "verbs": ["get", "list"]}],
    })).await;
    create_rbac(&client, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    })).await;
    create_rbac(&client, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "revoker", "namespace": ns1},
        "rules": [{"apiGroups": ["agentauth.dev"], "resources": ["capabilitygrants"], "verbs": ["patch"]}],
    })).await;
    create_rbac(
        &client,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "revoker", "namespace": ns1},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "revoker"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }),
    )
    .await;
    // RBAC takes effect through the apiserver's informers: wait until the
    // user may list everywhere and patch in ns1.
    let as_user = cp.client_as(&user, &[]).unwrap();
    let dry = kube::api::PatchParams {
        dry_run: true,
        ..kube::api::PatchParams::default()
    };
    let probe = json!({"metadata": {"labels": {"probe": "rbac"}}});
    let started = std::time::Instant::now();
    loop {
        let listed = Api::<CapabilityGrant>::all(as_user.clone())
            .list(&kube::api::ListParams::default().limit(1))
            .await;
        let patched = Api::<CapabilityGrant>::namespaced(as_user.clone(), &ns1)
            .patch("a2-mail", &dry, &kube::api::Patch::Merge(&probe))
            .await;
        if listed.is_ok() && patched.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "RBAC never took effect: {listed:?} {patched:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The admin kubeconfig, impersonating that user (kubeconfig `as:`).
    let admin = std::fs::read_to_string(kubeconfig).unwrap();
    let token_line = admin
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .expect("the harness's kubeconfig authenticates with a token");
    let indent = &token_line[..token_line.len() - token_line.trim_start().len()];
    let limited = admin.replace(token_line, &format!("{token_line}\n{indent}as: {user}"));
    let dir = tempfile::tempdir().unwrap();
    let limited_path = dir.path().join("kubeconfig");
    std::fs::write(&limited_path, limited).unwrap();
    let out = agentauth(
        &limited_path,
        &["grants", "revoke", "--provider", &mail, "-A"],
    );
    assert_eq!(out.status.code(), Some(1), "a partial failure exits 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(&format!("revoked          {}", k(&ns1, "a2-mail"))),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("cannot revoke {}", k(&ns2, "a3-mail")))
            && stderr.contains(&format!(
                "1 of 2 grants NOT revoked: {}",
                k(&ns2, "a3-mail")
            ))
            && stderr.contains("run the same command again"),
        "{stderr}"
    );
    let mut third = second.clone();
    let a2_mail = k(&ns1, "a2-mail");
    third.push(&a2_mail);
    let last: BTreeMap<String, bool> = revoked(&client, &all)
        .await
        .into_iter()
        .map(|(g, (r, _))| (g, r))
        .collect();
    assert_eq!(last, state(&third));
}
