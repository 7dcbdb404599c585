//! The admission webhook of this test binary: started once on a thread of
//! its own (its runtime outlives every `#[tokio::test]`), registered over
//! TLS on loopback for namespaces labelled [`ADMISSION_LABEL`], configured
//! with the operator's username and the tests' relying party — so every
//! status write the approval API makes is admitted (or refused) for real.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agentauth_testenv::{ControlPlane, TEST_NAMESPACE_LABEL};
use agentauth_webhook::config::WebhookConfig;
use agentauth_webhook::registration::{self, Registration};
use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use tokio::sync::OnceCell;

use super::support::{ADMISSION_LABEL, OPERATOR, ORIGIN, RP_ID};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    config: WebhookConfig,
}

static WEBHOOK: OnceCell<()> = OnceCell::const_new();

/// Starts the webhook on a thread of its own (its runtime outlives every
/// test) and registers it, once per test binary.
pub async fn start(cp: &'static ControlPlane) {
    WEBHOOK
        .get_or_init(|| async move {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
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
                    let server =
                        agentauth_webhook::Server::bind(&flags.config, cp.client().unwrap())
                            .await
                            .unwrap();
                    let ca = server.ca_bundle().unwrap().to_owned();
                    ready_tx.send((server.local_addr(), ca)).unwrap();
                    server.serve(std::future::pending::<()>()).await.unwrap();
                });
            });
            let (addr, ca) = ready_rx.await.expect("the webhook failed to start");
            let registration = Registration {
                name: "agentauth-webhook-approvals".into(),
                url: registration::url_for(addr),
                ca_bundle_pem: ca,
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
            wait_for_webhook(cp).await;
        })
        .await;
}

/// The apiserver picks a registration up asynchronously: wait until a dry
/// run is refused by the webhook itself.
async fn wait_for_webhook(cp: &ControlPlane) {
    let ns = namespace(cp, "webhook-probe").await;
    let probe = json!({
        "apiVersion": "agentauth.dev/v1alpha1", "kind": "BehavioralEnvelope",
        "metadata": {"name": "probe", "namespace": ns},
        "spec": {"timeWindows": [{"days": ["mon"], "start": "09:00", "end": "17:00",
                                   "timeZone": "Mars/Olympus"}]},
    });
    let api: Api<DynamicObject> = Api::namespaced_with(
        cp.client().unwrap(),
        &ns,
        &kube::api::ApiResource::erase::<agentauth_crds::BehavioralEnvelope>(&()),
    );
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let obj: DynamicObject = serde_json::from_value(probe.clone()).unwrap();
        match api.create(&params, &obj).await {
            Err(kube::Error::Api(s)) if s.message.contains("time_zone_unknown") => break,
            other if Instant::now() > deadline => panic!("the webhook was never called: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    // The mutating configuration (an Agent's creator) comes into force on its own schedule.
    registration::wait_for_mutation(cp.client().unwrap(), &ns, Duration::from_secs(30))
        .await
        .unwrap();
}

/// A namespace the webhook reviews.
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
    let created = Api::<Namespace>::all(cp.client().unwrap())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    created.metadata.name.unwrap()
}
