//! Reading what the cluster made of a render: one pass over its
//! PersistentVolumeClaims, Deployments, DaemonSet, PodDisruptionBudgets and
//! Services, saying either what is still awaited or, once all is settled, a
//! one-line summary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::apply::{kind, name};

/// The label naming a workload's part of the chart (`operator`, `webhook`,
/// `verifier`, `archiver`).
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// One release of the chart installed in its own namespace.
pub struct Install {
    /// The values file it was rendered with (for messages).
    pub values: &'static str,
    namespace: String,
    objects: Vec<Value>,
    host_port: Option<i32>,
}

impl Install {
    /// A render of `values` applied into `namespace`; `host_port` is the
    /// verifier hostPort its values ask for.
    pub fn new(
        values: &'static str,
        namespace: String,
        objects: Vec<Value>,
        host_port: Option<i32>,
    ) -> Self {
        Self {
            values,
            namespace,
            objects,
            host_port,
        }
    }

    fn rendered(&self, wanted: &str) -> impl Iterator<Item = &Value> {
        self.objects.iter().filter(move |o| kind(o) == wanted)
    }
}

/// `Ok(summary)` once every workload of `install` is settled on a cluster of
/// `nodes` Nodes, else `Err(what is still awaited)`.
pub async fn observe(client: &Client, install: &Install, nodes: usize) -> Result<String, String> {
    let ns = install.namespace.as_str();
    let mut summary = Vec::new();
    let mut waiting = Vec::new();

    // A pod whose claim is not bound is never scheduled: report the claim.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    for rendered in install.rendered("PersistentVolumeClaim") {
        let name = name(rendered);
        let live = claims.get(name).await.map_err(|e| e.to_string())?;
        let phase = live.status.and_then(|s| s.phase).unwrap_or_default();
        let volume = live.spec.and_then(|s| s.volume_name).unwrap_or_default();
        if phase == "Bound" {
            summary.push(format!("claim {name} bound to {volume}"));
        } else {
            waiting.push(format!("PersistentVolumeClaim {name}: {phase:?}"));
        }
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for rendered in install.rendered("Deployment") {
        let name = name(rendered);
        let want = rendered["spec"]["replicas"].as_i64().unwrap_or(1);
        let spread = !rendered["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"].is_null();
        let live = deployments.get(name).await.map_err(|e| e.to_string())?;
        let status = live.status.unwrap_or_default();
        let available = i64::from(status.available_replicas.unwrap_or(0));
        let total = i64::from(status.replicas.unwrap_or(0));
        let pods = ready_pods(client, ns, &rendered["spec"]["selector"]["matchLabels"]).await?;
        let on_nodes = distinct_nodes(&pods);
        let component = component(rendered);
        if available != want || total != want || pods.len() as i64 != want {
            waiting.push(format!(
                "Deployment {name}: {available}/{want} available, {total} replicas, {} Ready pods",
                pods.len()
            ));
        } else if spread && on_nodes as i64 != want {
            waiting.push(format!(
                "Deployment {name}: {want} Ready pods on only {on_nodes} nodes despite podAntiAffinity"
            ));
        } else if spread {
            summary.push(format!(
                "{component} {available}/{want} on {on_nodes} nodes"
            ));
        } else {
            summary.push(format!("{component} {available}/{want}"));
        }
    }

    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    for rendered in install.rendered("DaemonSet") {
        let name = name(rendered);
        let live = daemon_sets.get(name).await.map_err(|e| e.to_string())?;
        let status = live.status.unwrap_or_default();
        let (desired, ready) = (status.desired_number_scheduled, status.number_ready);
        let pods = ready_pods(client, ns, &rendered["spec"]["selector"]["matchLabels"]).await?;
        let on_nodes = distinct_nodes(&pods);
        let want = i32::try_from(nodes).unwrap_or(i32::MAX);
        if desired != want || ready != want || on_nodes != nodes {
            waiting.push(format!(
                "DaemonSet {name}: {ready}/{desired} ready (want {want}), Ready pods on {on_nodes} nodes"
            ));
            continue;
        }
        let mut line = format!("{} {ready}/{desired}", component(rendered));
        if let Some(port) = install.host_port {
            let without: Vec<&str> = pods
                .iter()
                .filter(|p| !has_host_port(p, port))
                .map(|p| p.metadata.name.as_deref().unwrap_or_default())
                .collect();
            if without.is_empty() {
                let _ = write!(line, " with hostPort {port}");
            } else {
                waiting.push(format!(
                    "DaemonSet {name}: pods without hostPort {port}: {without:?}"
                ));
            }
        }
        summary.push(line);
    }

    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let mut healthy_budgets = 0;
    for rendered in install.rendered("PodDisruptionBudget") {
        let name = name(rendered);
        let live = budgets.get(name).await.map_err(|e| e.to_string())?;
        let generation = live.metadata.generation;
        let status = live.status.unwrap_or_default();
        if status.observed_generation != generation
            || status.expected_pods < 1
            || status.current_healthy < status.desired_healthy
        {
            waiting.push(format!(
                "PodDisruptionBudget {name}: {} healthy of {} expected, {} needed",
                status.current_healthy, status.expected_pods, status.desired_healthy
            ));
        } else {
            healthy_budgets += 1;
        }
    }
    summary.push(format!("{healthy_budgets} PDBs healthy"));

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let mut served = 0;
    for rendered in install.rendered("Service") {
        let name = name(rendered);
        let selector = &rendered["spec"]["selector"];
        if selector.is_null() {
            continue;
        }
        let pods = ready_pods(client, ns, selector).await?.len();
        let params = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
        let endpoints = slices
            .list(&params)
            .await
            .map_err(|e| e.to_string())?
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
            .count();
        if pods == 0 || endpoints != pods {
            waiting.push(format!(
                "Service {name}: {endpoints} ready endpoints for {pods} Ready pods"
            ));
        } else {
            served += 1;
        }
    }
    summary.push(format!("{served} Services with endpoints"));

    if waiting.is_empty() {
        Ok(format!("{} [{}]", summary.join(", "), install.values))
    } else {
        Err(waiting.join("; "))
    }
}

/// The Pods matching `match_labels` that are Running, Ready and not being deleted.
async fn ready_pods(client: &Client, ns: &str, match_labels: &Value) -> Result<Vec<Pod>, String> {
    let selector = label_selector(match_labels);
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| e.to_string())?;
    Ok(pods.items.into_iter().filter(is_ready).collect())
}

fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn distinct_nodes(pods: &[Pod]) -> usize {
    pods.iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
        .collect::<BTreeSet<_>>()
        .len()
}

fn has_host_port(pod: &Pod, port: i32) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .any(|p| p.host_port == Some(port))
    })
}

/// `k=v,k2=v2` from a rendered `matchLabels` (or Service `selector`) map.
fn label_selector(match_labels: &Value) -> String {
    let labels: BTreeMap<&str, &str> = match_labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
        .collect();
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn component(rendered: &Value) -> &str {
    rendered["metadata"]["labels"][COMPONENT_LABEL]
        .as_str()
        .unwrap_or_else(|| name(rendered))
}

/// The state of `install`'s namespace, for a failure message: workloads'
/// status, every Pod with its Node and phase, and the latest Events.
pub async fn dump_state(client: &Client, install: &Install) -> String {
    let ns = install.namespace.as_str();
    let mut out = format!("=== {} in namespace {ns} ===\n", install.values);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for d in deployments
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let status = serde_json::to_string(&d.status).unwrap_or_default();
        let _ = writeln!(
            out,
            "Deployment {}: {status}",
            d.metadata.name.unwrap_or_default()
        );
    }
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    for d in daemon_sets
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let status = serde_json::to_string(&d.status).unwrap_or_default();
        let _ = writeln!(
            out,
            "DaemonSet {}: {status}",
            d.metadata.name.unwrap_or_default()
        );
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    for c in claims
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let status = serde_json::to_string(&c.status).unwrap_or_default();
        let volume = c.spec.and_then(|s| s.volume_name).unwrap_or_default();
        let _ = writeln!(
            out,
            "PersistentVolumeClaim {} (volume {volume:?}): {status}",
            c.metadata.name.unwrap_or_default()
        );
    }
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    for b in budgets
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let status = serde_json::to_string(&b.status).unwrap_or_default();
        let _ = writeln!(
            out,
            "PodDisruptionBudget {}: {status}",
            b.metadata.name.unwrap_or_default()
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for p in pods
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Pod {} node={node:?} phase={phase} ready={}",
            p.metadata.name.clone().unwrap_or_default(),
            is_ready(&p)
        );
    }
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut events = events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    events.sort_by(|a, b| a.last_timestamp.cmp(&b.last_timestamp));
    for e in events.iter().rev().take(30).rev() {
        let _ = writeln!(
            out,
            "Event {} {}/{}: {} {}",
            e.type_.as_deref().unwrap_or_default(),
            e.involved_object.kind.as_deref().unwrap_or_default(),
            e.involved_object.name.as_deref().unwrap_or_default(),
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or_default()
        );
    }
    out
}
