//! Shared by the webhook's integration tests: the webhook started on a
//! thread of its own (its runtime outlives every `#[tokio::test]`),
//! registered with the test binary's apiserver over TLS on loopback, and
//! the `accepts(...)` / `rejects(..., "message")` rows of the tables.
//!
//! ```text
//!  test ──▶ apiserver ──HTTPS 127.0.0.1:<port>/validate──▶ webhook thread
//!                         (caBundle = the webhook's self-signed CA)   │ GET Agent/Approver
//!                                                                     └──▶ apiserver (admin)
//! ```
//!
//! The registration is cluster-wide within the binary's control plane, so
//! its `namespaceSelector` limits it to namespaces labelled
//! [`ADMISSION_LABEL`] (made by [`namespace`]); Approvers are cluster-scoped
//! and always reviewed. The mutating endpoint (an Agent's creator) is
//! registered beside it with the same selector.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agentauth_testenv::{ControlPlane, TEST_NAMESPACE_LABEL};
use agentauth_webhook::Server;
use agentauth_webhook::config::{DEFAULT_OPERATOR_USERNAME, WebhookConfig};
use agentauth_webhook::registration::{self, Registration};
use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The operator's username, as the webhook is configured.
pub const OPERATOR: &str = DEFAULT_OPERATOR_USERNAME;
/// Namespaces labelled `<this>=enforced` are reviewed by the webhook.
pub const ADMISSION_LABEL: &str = "agentauth.dev/admission";
/// The relying party and origin of the test approvals.
pub const RP_ID: &str = "localhost";
/// See [`RP_ID`].
pub const ORIGIN: &str = "http://localhost:8080";

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    config: WebhookConfig,
}

/// A running webhook and how to stop it.
pub struct Webhook {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its self-signed CA (PEM).
    pub ca_pem: String,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Webhook {
    /// Starts the webhook (configured through its flags, as `agentauth
    /// webhook` is), registers it under `name`, and waits until the
    /// apiserver calls it.
    pub async fn start(cp: &'static ControlPlane, name: &str) -> Webhook {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped_rx) = oneshot::channel();
        let flags = Flags::parse_from([
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--self-signed",
            "--operator-username",
            OPERATOR,
            "--rp-id",
            RP_ID,
            "--approval-origin",
            ORIGIN,
        ]);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Server::bind(&flags.config, cp.client().unwrap())
                    .await
                    .unwrap();
                let ca = server.ca_bundle().unwrap().to_owned();
                ready_tx.send((server.local_addr(), ca)).unwrap();
                let shutdown = async move {
                    // A dropped sender (a static Webhook never stops) is not a stop.
                    if stop_rx.await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                server.serve(shutdown).await.unwrap();
            });
            // Dropping the runtime ends every connection task: nothing answers any more.
            drop(runtime);
            let _ = stopped_tx.send(());
        });
        let (addr, ca_pem) = ready_rx.await.expect("the webhook failed to start");
        let webhook = Webhook {
            addr,
            ca_pem,
            stop: Mutex::new(Some(stop_tx)),
            stopped: Mutex::new(Some(stopped_rx)),
        };
        webhook.register(cp, name).await;
        webhook
    }

    async fn register(&self, cp: &'static ControlPlane, name: &str) {
        let registration = Registration {
            name: name.to_owned(),
            url: registration::url_for(self.addr),
            ca_bundle_pem: self.ca_pem.clone(),
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    ADMISSION_LABEL.into(),
                    "enforced".into(),
                )])),
                ..LabelSelector::default()
            }),
        };
        registration::apply(cp.client().unwrap(), &registration)
            .await
            .unwrap();
        // The apiserver picks a new configuration up asynchronously: wait
        // until a dry run is refused by the webhook itself.
        let ns = namespace(cp, "webhook-probe").await;
        let probe = envelope_doc(&ns, "probe", "Mars/Olympus");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match dry_create(cp, &probe).await {
                Err(kube::Error::Api(s)) if denied_with(&s.message, "time_zone_unknown: ") => break,
                other if Instant::now() > deadline => {
                    panic!(
                        "the webhook was not called within 30 s: {other:?}\n{}",
                        cp.log_tail(30)
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        // The mutating configuration comes into force on its own schedule.
        registration::wait_for_mutation(cp.client().unwrap(), &ns, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cp.log_tail(30)));
    }

    /// Stops the server and waits until nothing answers on its port.
    pub async fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        let stopped = self.stopped.lock().unwrap().take();
        if let Some(stopped) = stopped {
            tokio::time::timeout(Duration::from_secs(30), stopped)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// A fresh namespace that the webhook reviews (labelled at creation, so the
/// apiserver never sees it unlabelled).
pub async fn namespace(cp: &ControlPlane, prefix: &str) -> String {
    let namespace = Namespace {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            labels: Some(BTreeMap::from([
                (TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned()),
                (ADMISSION_LABEL.to_owned(), "enforced".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let api: Api<Namespace> = Api::all(cp.client().unwrap());
    let created = api
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    created.metadata.name.unwrap()
}

/// A BehavioralEnvelope document with one time window in `zone`.
pub fn envelope_doc(ns: &str, name: &str, zone: &str) -> Value {
    json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "timeWindows": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00", "timeZone": zone}],
            "transactions": {"currency": "EUR", "maxPerTransaction": "50.00", "maxPerDay": "200.00"},
        },
    })
}

/// The dynamic API of a document's kind (in its namespace when it has one).
pub fn api_for(client: kube::Client, doc: &Value) -> Api<DynamicObject> {
    use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant};
    use kube::api::ApiResource;
    let resource = match doc["kind"].as_str() {
        Some("Agent") => ApiResource::erase::<Agent>(&()),
        Some("BehavioralEnvelope") => ApiResource::erase::<BehavioralEnvelope>(&()),
        Some("CapabilityGrant") => ApiResource::erase::<CapabilityGrant>(&()),
        Some("Approver") => ApiResource::erase::<Approver>(&()),
        other => panic!("no API for kind {other:?}"),
    };
    match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    }
}

async fn dry_create(cp: &ControlPlane, doc: &Value) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    api_for(cp.client().unwrap(), doc)
        .create(&params, &obj)
        .await
}

/// What a row of a table expects.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The write is admitted.
    Accepts,
    /// The webhook refuses the write with a message that starts with this:
    /// the stable code, optionally with the field (`"jwk_invalid: spec.publicKey"`),
    /// never the prose after it.
    Rejects(&'static str),
    /// The apiserver itself refuses the write (its schema or CEL rules, or
    /// a webhook it cannot call), which carries no code: a message
    /// containing this text.
    Refused(&'static str),
}

/// The webhook's own refusal in an apiserver message: what follows
/// `denied the request: ` (`<code>: <field>: <message>`).
pub fn denial(message: &str) -> Option<&str> {
    message
        .split_once("denied the request: ")
        .map(|(_, denial)| denial)
}

/// Whether `message` is the webhook's refusal starting with `prefix`.
pub fn denied_with(message: &str, prefix: &str) -> bool {
    denial(message).is_some_and(|denial| denial.starts_with(prefix))
}

/// Compares an outcome with a row's expectation; `None` when they agree,
/// else a line for the failure report.
pub fn check<T>(row: &str, expect: &Expect, result: Result<T, kube::Error>) -> Option<String> {
    // Shown with --nocapture, or beside a failure.
    match &result {
        Ok(_) => eprintln!("{row}: admitted"),
        Err(kube::Error::Api(status)) => eprintln!("{row}: {}", status.message),
        Err(e) => eprintln!("{row}: {e}"),
    }
    match (expect, result) {
        (Expect::Accepts, Ok(_)) => None,
        (Expect::Accepts, Err(e)) => Some(format!("{row}: refused: {e}")),
        (Expect::Rejects(m) | Expect::Refused(m), Ok(_)) => {
            Some(format!("{row}: admitted; expected a refusal with {m:?}"))
        }
        (Expect::Rejects(m), Err(kube::Error::Api(s))) if denied_with(&s.message, m) => None,
        (Expect::Refused(m), Err(kube::Error::Api(s))) if s.message.contains(m) => None,
        (Expect::Rejects(m) | Expect::Refused(m), Err(e)) => {
            Some(format!("{row}: refused otherwise than {m:?}: {e}"))
        }
    }
}

/// Fails with every disagreeing row at once.
pub fn report(failures: &[String], cp: &ControlPlane) {
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n  {}\napiserver log:\n{}",
        failures.len(),
        failures.join("\n  "),
        cp.log_tail(15)
    );
}
