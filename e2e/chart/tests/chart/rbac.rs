//! The chart's RBAC, applied to the real apiserver and checked as each
//! ServiceAccount: every call the code makes is allowed, the rendered rules
//! hold nothing more, and a list of tempting extras is refused. Then the
//! operator's own controllers and leader election run under the chart's
//! operator account and reconcile real objects.
//!
//! The testenv apiserver has no controller-manager, so the accounts get no
//! tokens: requests are made as them by impersonation, which the apiserver
//! authorizes exactly as it would the pods' own requests.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentauth_operator::audit::AuditSink;
use agentauth_operator::cache::Caches;
use agentauth_operator::clock::{Clock, SystemClock};
use agentauth_operator::context::{Context, RelyingParty};
use agentauth_operator::controllers::Controllers;
use agentauth_operator::leader::{self, LeaseConfig};
use agentauth_operator::metrics::Metrics;
use agentauth_state::{InProcessState, SharedState};
use agentauth_testenv::ControlPlane;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::support::{kind, name, render_release, values_file, values_files};

/// One permission: `verb` on `group`/`resource`, in `namespace` (`None`:
/// every namespace, or a cluster-scoped resource), optionally one `name`.
#[derive(Clone, Copy, Debug)]
struct Can {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    namespaced: bool,
    name: Option<&'static str>,
}

const fn all(verb: &'static str, group: &'static str, resource: &'static str) -> Can {
    Can {
        verb,
        group,
        resource,
        namespaced: false,
        name: None,
    }
}

const fn here(verb: &'static str, group: &'static str, resource: &'static str) -> Can {
    Can {
        verb,
        group,
        resource,
        namespaced: true,
        name: None,
    }
}

const AA: &str = "agentauth.dev";

/// What the operator's code does (the module that does it in brackets).
const OPERATOR_NEEDS: &[Can] = &[
    // Informer caches (cache.rs) and controllers (controllers/*).
    all("get", AA, "agents"),
    all("list", AA, "agents"),
    all("watch", AA, "agents"),
    all("get", AA, "behavioralenvelopes"),
    all("list", AA, "behavioralenvelopes"),
    all("watch", AA, "behavioralenvelopes"),
    all("get", AA, "approvers"),
    all("list", AA, "approvers"),
    all("watch", AA, "approvers"),
    all("get", AA, "capabilitygrants"),
    all("list", AA, "capabilitygrants"),
    all("watch", AA, "capabilitygrants"),
    // The agent API creates grants (api/grants.rs); the finalizer
    // (controllers/grant.rs) and revoke (approvals/revoke.rs) patch them.
    all("create", AA, "capabilitygrants"),
    all("patch", AA, "capabilitygrants"),
    // Status: controllers/status.rs (SSA), approvals/decide.rs, approvals/enroll.rs.
    all("patch", AA, "agents/status"),
    all("patch", AA, "behavioralenvelopes/status"),
    all("patch", AA, "capabilitygrants/status"),
    all("patch", AA, "approvers/status"),
    // approvals/rbac.rs.
    all("create", "authorization.k8s.io", "subjectaccessreviews"),
    // controllers/mod.rs: kube's event Recorder.
    all("create", "events.k8s.io", "events"),
    all("patch", "events.k8s.io", "events"),
    // leader.rs: create the Lease, then get and replace it.
    here("create", "coordination.k8s.io", "leases"),
    // approvals/tokens.rs: read and use up enrollment tokens.
    here("get", "", "secrets"),
    here("delete", "", "secrets"),
];

/// What the operator must not be able to do, however convenient.
const OPERATOR_MUST_NOT: &[Can] = &[
    all("update", AA, "capabilitygrants"),
    all("delete", AA, "capabilitygrants"),
    all("patch", AA, "agents"),
    all("create", AA, "agents"),
    all("patch", AA, "behavioralenvelopes"),
    all("patch", AA, "approvers"),
    all("delete", AA, "approvers"),
    all("update", AA, "capabilitygrants/status"),
    all("get", "", "secrets"),
    here("list", "", "secrets"),
    here("watch", "", "secrets"),
    here("create", "", "secrets"),
    here("update", "", "secrets"),
    here("list", "coordination.k8s.io", "leases"),
    here("delete", "coordination.k8s.io", "leases"),
    all("create", "", "events"),
    all("create", "", "pods"),
    all("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    all("escalate", "rbac.authorization.k8s.io", "clusterroles"),
    all("patch", "apiextensions.k8s.io", "customresourcedefinitions"),
    all(
        "patch",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    ),
];

/// What the webhook's code does (lookup.rs): read one object by name.
const WEBHOOK_NEEDS: &[Can] = &[
    all("get", AA, "agents"),
    all("get", AA, "behavioralenvelopes"),
    all("get", AA, "approvers"),
];

const WEBHOOK_MUST_NOT: &[Can] = &[
    all("list", AA, "agents"),
    all("watch", AA, "approvers"),
    all("get", AA, "capabilitygrants"),
    all("patch", AA, "capabilitygrants/status"),
    all("patch", AA, "approvers/status"),
    all("update", AA, "agents"),
    all("get", "", "secrets"),
    all(
        "patch",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
    ),
];

/// The verifier never calls the apiserver.
const VERIFIER_MUST_NOT: &[Can] = &[
    all("get", AA, "agents"),
    all("list", AA, "capabilitygrants"),
    all("get", "", "secrets"),
    here("get", "", "configmaps"),
    all("create", "authorization.k8s.io", "subjectaccessreviews"),
];

/// The archiver never calls the apiserver either: it reads Redis and writes
/// its volume or bucket, and its lease is in Redis, not a Kubernetes Lease.
const ARCHIVER_MUST_NOT: &[Can] = &[
    here("get", "", "secrets"),
    here("get", "", "configmaps"),
    here("get", "", "persistentvolumeclaims"),
    here("create", "coordination.k8s.io", "leases"),
    here("get", "coordination.k8s.io", "leases"),
    all("get", AA, "agents"),
    all("list", AA, "capabilitygrants"),
    all("create", "authorization.k8s.io", "subjectaccessreviews"),
    all("create", "authentication.k8s.io", "tokenreviews"),
];

/// A release of the chart's RBAC in a fresh namespace.
struct Release {
    namespace: String,
    /// `<release>-agentauth`-style base name of its objects.
    base: String,
    objects: Vec<Value>,
}

impl Release {
    /// Renders the minimal combination in a fresh namespace and applies its
    /// ServiceAccounts, roles and bindings for real.
    async fn install(cp: &ControlPlane, prefix: &str) -> Release {
        let namespace = cp.test_namespace(prefix).await.unwrap();
        // Cluster-scoped roles are per release: one release per test.
        let base = format!(
            "agentauth-{}",
            &namespace[namespace.len().saturating_sub(5)..]
        );
        let objects = render_release(&values_file("minimal-values.yaml"), &base, &namespace);
        let client = cp.client().unwrap();
        for object in objects.iter().filter(|o| is_rbac(o)) {
            apply(&client, object).await;
        }
        Release {
            namespace,
            base,
            objects,
        }
    }

    fn user(&self, component: &str) -> String {
        format!(
            "system:serviceaccount:{}:{}-{component}",
            self.namespace, self.base
        )
    }

    fn client_as(&self, cp: &ControlPlane, component: &str) -> Client {
        let groups = [
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{}", self.namespace),
        ];
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        cp.client_as(&self.user(component), &groups).unwrap()
    }

    /// The rendered rules bound to `component`'s account, one
    /// `(verb, group, resource, namespaced, name)` per combination.
    fn rules_of(
        &self,
        component: &str,
    ) -> BTreeSet<(String, String, String, bool, Option<String>)> {
        let role = format!("{}-{component}", self.base);
        let mut rules = BTreeSet::new();
        for object in &self.objects {
            let namespaced = match kind(object) {
                "ClusterRole" => false,
                "Role" => true,
                _ => continue,
            };
            if name(object) != role {
                continue;
            }
            for rule in object["rules"].as_array().into_iter().flatten() {
                let strings = |field: &str| -> Vec<String> {
                    rule[field]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| v.as_str().unwrap().to_owned())
                        .collect()
                };
                let names = strings("resourceNames");
                for verb in strings("verbs") {
                    for group in strings("apiGroups") {
                        for resource in strings("resources") {
                            if names.is_empty() {
                                rules.insert((
                                    verb.clone(),
                                    group.clone(),
                                    resource.clone(),
                                    namespaced,
                                    None,
                                ));
                            }
                            for n in &names {
                                rules.insert((
                                    verb.clone(),
                                    group.clone(),
                                    resource.clone(),
                                    namespaced,
                                    Some(n.clone()),
                                ));
                            }
                        }
                    }
                }
            }
        }
        rules
    }
}

fn is_rbac(object: &Value) -> bool {
    matches!(
        kind(object),
        "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
    )
}

async fn apply(client: &Client, object: &Value) {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind(object) {
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("not an RBAC kind: {other}"),
    };
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind(object)),
        plural,
    );
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name(object),
        &PatchParams::apply("agentauth-chart-test").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {}: {e}", kind(object), name(object)));
}

/// Asks the apiserver whether `user` may do `can` (in `namespace` when the
/// permission is namespaced).
async fn allowed(client: &Client, release: &Release, user: &str, can: &Can) -> bool {
    let (resource, subresource) = can
        .resource
        .split_once('/')
        .map_or((can.resource, None), |(r, s)| (r, Some(s)));
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", release.namespace),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(can.verb.into()),
                group: Some(can.group.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(Into::into),
                namespace: can.namespaced.then(|| release.namespace.clone()),
                name: can.name.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.is_some_and(|s| s.allowed)
}

/// Waits until the new bindings are in force (the RBAC authorizer reads
/// them from its own watch cache).
async fn wait_in_force(client: &Client, release: &Release, user: &str, can: &Can) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !allowed(client, release, user, can).await {
        assert!(
            Instant::now() < deadline,
            "{user} was not allowed {can:?} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks `needs` are allowed, `must_not` refused, and that the rendered
/// rules are exactly `needs` (plus `also`: name-restricted rules).
async fn check_account(
    cp: &ControlPlane,
    release: &Release,
    component: &str,
    needs: &[Can],
    also: &[Can],
    must_not: &[Can],
) {
    let client = cp.client().unwrap();
    let user = release.user(component);
    if let Some(first) = needs.first() {
        wait_in_force(&client, release, &user, first).await;
    }
    let mut wrong = Vec::new();
    for can in needs.iter().chain(also) {
        if !allowed(&client, release, &user, can).await {
            wrong.push(format!("refused but the code needs it: {can:?}"));
        }
    }
    for can in must_not {
        if allowed(&client, release, &user, can).await {
            wrong.push(format!("allowed but never needed: {can:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{component}'s account:\n{}",
        wrong.join("\n")
    );

    let expected: BTreeSet<_> = needs
        .iter()
        .chain(also)
        .map(|c| {
            (
                c.verb.to_owned(),
                c.group.to_owned(),
                c.resource.to_owned(),
                c.namespaced,
                c.name.map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        release.rules_of(component),
        expected,
        "the rendered rules of {component} must be exactly what its code uses"
    );
}

#[tokio::test]
async fn the_operator_account_may_do_what_the_operator_does_and_no_more() {
    let cp = agentauth_testenv::shared().await;
    let release = Release::install(cp, "chart-rbac-op").await;
    // leader.rs gets and replaces only its own Lease.
    let lease: &'static str = Box::leak(format!("{}-operator", release.base).into_boxed_str());
    let own_lease = [
        Can {
            verb: "get",
            group: "coordination.k8s.io",
            resource: "leases",
            namespaced: true,
            name: Some(lease),
        },
        Can {
            verb: "update",
            group: "coordination.k8s.io",
            resource: "leases",
            namespaced: true,
            name: Some(lease),
        },
    ];
    let mut must_not = OPERATOR_MUST_NOT.to_vec();
    must_not.push(Can {
        verb: "update",
        group: "coordination.k8s.io",
        resource: "leases",
        namespaced: true,
        name: Some("someone-else"),
    });
    check_account(
        cp,
        &release,
        "operator",
        OPERATOR_NEEDS,
        &own_lease,
        &must_not,
    )
    .await;

    // Calls as the account itself: a missing enrollment token is "not found", not "forbidden".
    let operator = release.client_as(cp, "operator");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(operator.clone(), &release.namespace);
    match secrets.get("agentauth-enroll-nobody").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404, "{status:?}"),
        other => panic!("expected 404, got {other:?}"),
    }
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("listing Secrets must be forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn the_webhook_account_may_only_read_what_admission_checks_read() {
    let cp = agentauth_testenv::shared().await;
    let release = Release::install(cp, "chart-rbac-wh").await;
    check_account(
        cp,
        &release,
        "webhook",
        WEBHOOK_NEEDS,
        &[],
        WEBHOOK_MUST_NOT,
    )
    .await;
}

#[tokio::test]
async fn the_verifier_account_may_do_nothing() {
    let cp = agentauth_testenv::shared().await;
    let release = Release::install(cp, "chart-rbac-ver").await;
    let account = release
        .objects
        .iter()
        .find(|o| kind(o) == "ServiceAccount" && name(o).ends_with("-verifier"))
        .unwrap();
    assert_eq!(account["automountServiceAccountToken"], false);
    // No binding names it (the one that would must first be in force).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = cp.client().unwrap();
    let user = release.user("verifier");
    for can in VERIFIER_MUST_NOT {
        assert!(!allowed(&client, &release, &user, can).await, "{can:?}");
    }
    assert!(release.rules_of("verifier").is_empty());
}

#[tokio::test]
async fn the_archiver_account_may_do_nothing() {
    let cp = agentauth_testenv::shared().await;
    let release = Release::install(cp, "chart-rbac-arc").await;
    let account = release
        .objects
        .iter()
        .find(|o| kind(o) == "ServiceAccount" && name(o).ends_with("-archiver"))
        .expect("the archiver has its own ServiceAccount");
    assert_eq!(account["automountServiceAccountToken"], false);
    assert!(
        !release
            .objects
            .iter()
            .any(|o| matches!(kind(o), "RoleBinding" | "ClusterRoleBinding")
                && o["subjects"]
                    .to_string()
                    .contains(&format!("{}-archiver", release.base))),
        "no binding names the archiver"
    );
    // Nothing grants it anything (a binding would first have to be in force).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = cp.client().unwrap();
    let user = release.user("archiver");
    for can in ARCHIVER_MUST_NOT {
        assert!(!allowed(&client, &release, &user, can).await, "{can:?}");
    }
    assert!(release.rules_of("archiver").is_empty());
}

/// Only Vault's Kubernetes auth needs the archiver's token mounted: with
/// any other signer no token reaches its pod.
#[test]
fn the_archiver_token_is_mounted_for_vault_transit_only() {
    let mut with_vault = 0;
    for values in values_files() {
        let objects = render_release(&values, "agentauth", "agentauth-system");
        let pod = &objects
            .iter()
            .find(|o| kind(o) == "Deployment" && name(o) == "agentauth-archiver")
            .unwrap()["spec"]["template"]["spec"];
        let vault = pod["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "AGENTAUTH_SIGNER" && e["value"] == "vault-transit");
        let account = objects
            .iter()
            .find(|o| kind(o) == "ServiceAccount" && name(o) == "agentauth-archiver")
            .unwrap();
        for (what, automount) in [
            ("ServiceAccount", &account["automountServiceAccountToken"]),
            ("pod", &pod["automountServiceAccountToken"]),
        ] {
            assert_eq!(
                automount,
                &Value::Bool(vault),
                "{}: the archiver's {what} automountServiceAccountToken",
                values.display()
            );
        }
        with_vault += usize::from(vault);
    }
    assert_eq!(
        with_vault, 1,
        "ci/vault-transit-values.yaml is the one with Vault"
    );
}

/// The operator's own controllers and leader election, run as the chart's
/// operator account against real objects: the Lease is taken, statuses are
/// written, the finalizer is added and removed, Events are published. A
/// permission the chart forgot fails here as a reconcile that never lands.
#[tokio::test]
async fn the_controllers_reconcile_under_the_chart_operator_account() {
    let cp = agentauth_testenv::shared().await;
    cp.install_crds(&agentauth_testenv::generated_crds_dir())
        .await
        .unwrap();
    let release = Release::install(cp, "chart-rbac-run").await;
    let admin = cp.client().unwrap();
    wait_in_force(
        &admin,
        &release,
        &release.user("operator"),
        &OPERATOR_NEEDS[0],
    )
    .await;
    let ns = release.namespace.clone();
    let operator = release.client_as(cp, "operator");

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (leading, elector) = leader::spawn(
        operator.clone(),
        LeaseConfig {
            namespace: ns.clone(),
            name: format!("{}-operator", release.base),
            identity: "chart-test".into(),
            lease_duration: Duration::from_secs(15),
        },
        clock.clone(),
    );
    let mut leading_rx = leading.clone();
    tokio::time::timeout(Duration::from_secs(10), leading_rx.wait_for(|l| *l))
        .await
        .expect("the operator account could not take the Lease within 10 s")
        .unwrap();

    let metrics = Metrics::new().unwrap();
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let audit = AuditSink::start(
        "operator/chart-test",
        state.clone(),
        clock.clone(),
        metrics.clone(),
    )
    .await
    .unwrap();
    let caches = Caches::start(&operator)
        .await
        .expect("the caches list and watch as the operator account");
    let ctx = Arc::new(Context {
        client: operator.clone(),
        caches,
        state,
        audit,
        metrics,
        clock,
        relying_party: RelyingParty {
            id: "example.com".into(),
            origins: vec!["https://agentauth.example.com".into()],
        },
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(Controllers::new(ctx).namespace(ns.clone()).run(async move {
        let _ = stopped.await;
    }));

    let jwk = json!({"kty": "EC", "crv": "P-256", "x": "UvhPKGTSuZdrIjSG-LJxrW90mbu9ie0wg18tSrH64jo", "y": "TR0I2_8D_45DQcAdM0czLouusF3K8Q4lKB1oZhKohnk"});
    let create = |kind: &str, plural: &str, body: Value| {
        let admin = admin.clone();
        let ns = ns.clone();
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(AA, "v1alpha1", kind), plural);
        async move {
            let object: DynamicObject = serde_json::from_value(body).unwrap();
            Api::<DynamicObject>::namespaced_with(admin, &ns, &resource)
                .create(&PostParams::default(), &object)
                .await
                .unwrap();
        }
    };
    create("Agent", "agents", json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "assistant"},
        "spec": {"displayName": "Assistant", "owner": "owner@example.com", "publicKey": jwk},
    })).await;
    create("BehavioralEnvelope", "behavioralenvelopes", json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope", "metadata": {"name": "limits"},
        "spec": {"rateLimits": [{"requests": 10, "period": "1m", "burst": 5}], "maxTokenTtl": "5m"},
    })).await;
    create("CapabilityGrant", "capabilitygrants", json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "CapabilityGrant", "metadata": {"name": "calendar"},
        "spec": {
            "agentRef": {"name": "assistant"}, "serviceProvider": "https://calendar.example.com",
            "capabilities": [{"type": "read", "resource": "calendars/primary/**"}],
            "envelopeRef": {"name": "limits"}, "duration": "1h", "reason": "Plan the week",
        },
    })).await;

    let agents: Api<agentauth_crds::Agent> = Api::namespaced(admin.clone(), &ns);
    let grants: Api<agentauth_crds::CapabilityGrant> = Api::namespaced(admin.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let agent = agents.get("assistant").await.unwrap();
        let grant = grants.get("calendar").await.unwrap();
        let thumbprint = agent.status.as_ref().and_then(|s| s.key_thumbprint.clone());
        let pending = grant.status.as_ref().and_then(|s| s.phase)
            == Some(agentauth_crds::GrantPhase::Pending);
        let finalized = !grant.finalizers().is_empty();
        if thumbprint.is_some() && pending && finalized {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not reconciled under the chart's account within 20 s: agent thumbprint {thumbprint:?}, \
             grant pending {pending}, finalizer {finalized}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting the grant: the operator (as the account) removes its finalizer.
    grants
        .delete("calendar", &Default::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while grants.get_opt("calendar").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the finalizer was not removed within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    let published = events.list(&Default::default()).await.unwrap();
    assert!(
        published
            .items
            .iter()
            .any(|e| e.reporting_controller.as_deref()
                == Some(agentauth_operator::controllers::FIELD_MANAGER)),
        "the operator account published no Event"
    );

    let _ = stop.send(());
    let _ = controllers.await;
    drop((leading, leading_rx));
    let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
}
