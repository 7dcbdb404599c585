//! The dashboards (`deploy/grafana/`) and the alert rules
//! (`charts/agentauth/files/prometheus-rules.yaml`) query only metrics the
//! real processes export. `agentauth dev` runs the operator, the webhook, the
//! audit archiver and
//! two verifiers; after the walk-through's traffic (an agent key, a grant
//! request, a passkey approval, a token, an allowed and a denied call, a
//! revocation, the denial after it) each `/metrics` is scraped. Every
//! `agentauth_*` name a dashboard's panels or variables query must be a
//! family the dashboard's component exports, and every name a rule queries
//! a family one of the processes exports (a histogram's
//! `_bucket`/`_sum`/`_count` count as the histogram). Other names fail too,
//! except [`NOT_OURS`].
//!
//! A labelled family (the `prometheus` crate's `*Vec`) is absent from
//! `/metrics` until one of its label sets is used, so a name reported
//! missing may be one whose known label values are not created at start.
//!
//! Beside it, without processes: each alert links its own runbook section,
//! the dashboards take their data source from a variable, and
//! `deploy/grafana/README.md` names every metric the dashboards query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/metrics.rs"]
mod metrics;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Dev, start, walk};

/// Metrics that are not AgentAuth's and that queries may use.
const NOT_OURS: [&str; 1] = ["up"];

/// The banner labels of the processes `agentauth dev` runs.
const PROCESSES: [&str; 5] = [
    "archiver",
    "operator",
    "verifier-a",
    "verifier-b",
    "webhook",
];

/// Each dashboard, and the processes of the component it shows: what its
/// panels query, one of these must export.
const DASHBOARDS: [(&str, &[&str]); 4] = [
    ("deploy/grafana/agentauth-archiver.json", &["archiver"]),
    ("deploy/grafana/agentauth-operator.json", &["operator"]),
    (
        "deploy/grafana/agentauth-verifier.json",
        &["verifier-a", "verifier-b"],
    ),
    ("deploy/grafana/agentauth-webhook.json", &["webhook"]),
];
const RULES: &str = "charts/agentauth/files/prometheus-rules.yaml";
const RUNBOOK: &str = "docs/runbook.md";
const RUNBOOK_URL: &str = "https://github.com/agentauth/agentauth/blob/main/docs/runbook.md";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard(path: &str) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every queried metric name, with the places that query it and, for each,
/// the processes one of which must export it (a rule: any process).
fn queried() -> BTreeMap<String, BTreeMap<String, &'static [&'static str]>> {
    let mut out: BTreeMap<String, BTreeMap<String, &'static [&'static str]>> = BTreeMap::new();
    for (path, component) in DASHBOARDS {
        let metrics::DashboardQueries { panels, variables } =
            metrics::dashboard_queries(path, &dashboard(path));
        let panels = panels
            .into_iter()
            .map(|(place, expr)| (place, metrics::metric_names(&expr)));
        let variables = variables
            .into_iter()
            .map(|(place, query)| (place, metrics::variable_metric_names(&query)));
        for (place, names) in panels.chain(variables) {
            for name in names {
                out.entry(name)
                    .or_default()
                    .insert(place.clone(), component);
            }
        }
    }
    for rule in metrics::rules(&read(RULES)) {
        for name in metrics::metric_names(&rule.expr) {
            out.entry(name)
                .or_default()
                .insert(format!("{RULES}: {}", rule.name), &PROCESSES);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_query_only_metrics_the_processes_export() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let queried = queried();
    assert!(queried.len() > 20, "too few metrics found: {queried:?}");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let dev = start(&state);
    drive_traffic(&dev, &state);
    let exported = scrape(&dev, &state).await;
    let status = dev.interrupt();
    assert!(status.success(), "agentauth dev exit status {status:?}");

    for (process, families) in &exported {
        let ours: Vec<&str> = families
            .keys()
            .map(String::as_str)
            .filter(|n| n.starts_with("agentauth_"))
            .collect();
        println!("{process} exports {}: {}", ours.len(), ours.join(" "));
    }
    let exports = |process: &str, name: &str| {
        exported
            .get(process)
            .is_some_and(|families| metrics::is_exported(name, families))
    };
    let mut missing = Vec::new();
    for (name, uses) in &queried {
        if NOT_OURS.contains(&name.as_str()) {
            continue;
        }
        if !name.starts_with("agentauth_") {
            let places: Vec<&str> = uses.keys().map(String::as_str).collect();
            missing.push(format!(
                "  {name} (not an agentauth_ metric)\n    queried by: {}",
                places.join("; ")
            ));
            continue;
        }
        let unserved: Vec<String> = uses
            .iter()
            .filter(|(_, component)| !component.iter().any(|p| exports(p, name)))
            .map(|(place, component)| format!("{place} (needs {})", component.join(" or ")))
            .collect();
        if unserved.is_empty() {
            let by: Vec<&str> = PROCESSES.into_iter().filter(|p| exports(p, name)).collect();
            println!("{name}: {}", by.join(", "));
        } else {
            missing.push(format!(
                "  {name}\n    not exported where queried: {}",
                unserved.join("; ")
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "{} queried metric(s) not exported by the process(es) they are queried for, after \
         the walk-through's traffic (a labelled family is exported only once one of its \
         label sets is used):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

/// The walk-through the banner prints, run as a shell would: a token, an
/// allowed call, a call outside the grant (denied), a revocation, and the
/// call after it (denied as revoked).
fn drive_traffic(dev: &Dev, state: &Path) {
    support::walk_through(dev, state, |step, args, ok, out| {
        // The last call comes after the revocation and is refused.
        assert_eq!(ok, step != 5, "walk-through step {step}: {out}");
        if step == 3 {
            let outside = args[args.len() - 1].replace("/catalog/paper", "/orders/1");
            let (ok, out) = walk(state, &["call", args[1], "GET", &outside]);
            assert!(!ok && out.contains("capability_not_granted"), "{out}");
        }
    });
}

/// Each process's metric families: the archiver, the operator, both
/// verifiers, the webhook.
async fn scrape(dev: &Dev, state: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap();
    let ca = std::fs::read(state.join("run/webhook-ca.pem")).unwrap();
    let https = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let mut out = BTreeMap::new();
    for (label, client) in [
        ("archiver", &http),
        ("operator", &http),
        ("verifier-a", &http),
        ("verifier-b", &http),
        ("webhook", &https),
    ] {
        let url = format!("{}/metrics", dev.url(label));
        let response = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        let text = response.text().await.unwrap();
        out.insert(label.to_owned(), metrics::families(&text));
    }
    out
}

#[test]
fn every_alert_has_a_severity_a_summary_and_its_own_runbook_section() {
    let runbook = read(RUNBOOK);
    let headings: BTreeSet<&str> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(str::trim)
        .collect();
    let rules = metrics::rules(&read(RULES));
    let alerts: Vec<_> = rules.iter().filter(|r| r.alert).collect();
    assert!(!alerts.is_empty());
    let mut names = BTreeSet::new();
    for alert in alerts {
        let name = alert.name.as_str();
        assert!(names.insert(name), "{name} is defined twice");
        let severity = alert.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                alert.annotations.get(key).is_some_and(|v| !v.is_empty()),
                "{name}: no {key}"
            );
        }
        let anchor = name.to_ascii_lowercase();
        assert_eq!(
            alert.annotations.get("runbook_url").map(String::as_str),
            Some(format!("{RUNBOOK_URL}#{anchor}").as_str()),
            "{name}: runbook_url"
        );
        assert!(
            headings.contains(name),
            "{RUNBOOK} has no section \"### {name}\" (the anchor #{anchor})"
        );
    }
}

#[test]
fn dashboards_take_their_data_source_from_a_variable() {
    fn datasources<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    if key == "datasource" {
                        out.push(v);
                    }
                    datasources(v, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| datasources(v, out)),
            _ => {}
        }
    }
    for (path, _) in DASHBOARDS {
        let dashboard = dashboard(path);
        assert_eq!(dashboard["schemaVersion"], 39, "{path}");
        assert!(dashboard["uid"].as_str().is_some(), "{path}: uid");
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let variable = |name: &str| {
            variables
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{path}: no ${name} variable"))
        };
        let datasource = variable("datasource");
        assert_eq!(datasource["type"], "datasource", "{path}");
        assert_eq!(datasource["query"], "prometheus", "{path}");
        for name in ["job", "namespace"] {
            assert_eq!(variable(name)["type"], "query", "{path}: ${name}");
        }
        let mut found = Vec::new();
        datasources(&dashboard, &mut found);
        for ds in found {
            let builtin = ds["type"] == "grafana";
            assert!(
                builtin || ds == "${datasource}" || ds["uid"] == "${datasource}",
                "{path}: a hard-coded data source {ds}"
            );
        }
    }
}

#[test]
fn the_grafana_readme_names_every_metric_the_dashboards_query() {
    let readme = read("deploy/grafana/README.md");
    for (path, _) in DASHBOARDS {
        let panels = metrics::dashboard_queries(path, &dashboard(path)).panels;
        assert!(!panels.is_empty(), "{path}: no panels");
        for (place, expr) in panels {
            for name in metrics::metric_names(&expr) {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name);
                assert!(
                    readme.contains(&format!("`{family}`")),
                    "deploy/grafana/README.md does not name `{family}` ({place})"
                );
            }
        }
    }
}
