//! Leader election with a `coordination.k8s.io/v1` Lease.
//!
//! Only the leader reconciles; every replica serves the APIs from its own
//! caches. The elector holds the Lease by renewing it every
//! `lease_duration / 3`; another replica takes over once `renewTime +
//! leaseDurationSeconds` has passed. Every write carries the Lease's
//! `resourceVersion`, so when two replicas race for it the apiserver lets
//! exactly one win (409 Conflict for the other). A leader that cannot renew
//! before its own deadline steps down on its own, before anyone else can
//! take over, so two replicas never both believe they lead. A replica that
//! stops (every receiver dropped) while leading releases the Lease at once,
//! as client-go's `ReleaseOnCancel` does, so a planned handover takes one
//! renewal period of the next replica instead of a whole Lease duration.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::clock::Clock;

/// How to hold the Lease.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name plus a random suffix).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
}

/// Runs the election until every receiver is dropped, publishing whether
/// this replica leads. The task ends after releasing the Lease (if held);
/// await its handle at shutdown so the release is not cut short.
pub fn spawn(
    client: Client,
    config: LeaseConfig,
    clock: Arc<dyn Clock>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let renew_every = config.lease_duration / 3;
        let mut leading_until_ms: i64 = 0;
        loop {
            match try_acquire_or_renew(&api, &config, clock.as_ref()).await {
                Ok(true) => {
                    leading_until_ms = clock.now_ms() + millis(config.lease_duration);
                    tx.send_if_modified(|l| !std::mem::replace(l, true));
                }
                Ok(false) => {
                    leading_until_ms = 0;
                    tx.send_if_modified(|l| std::mem::replace(l, false));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: failed to read or write the Lease");
                    // Step down a renewal period before the Lease could pass
                    // to another replica.
                    if clock.now_ms() + millis(renew_every) >= leading_until_ms {
                        tx.send_if_modified(|l| std::mem::replace(l, false));
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(renew_every) => {}
                () = tx.closed() => {
                    if leading_until_ms > clock.now_ms() {
                        release(&api, &config).await;
                    }
                    return;
                }
            }
        }
    });
    (rx, task)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Gives the Lease up: no holder, so the next replica takes it on its next
/// round. A conflict means someone else already holds it; nothing to do.
async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => tracing::info!(identity = %config.identity, "released the leader Lease"),
        Err(e) => tracing::warn!(error = %e, "failed to release the leader Lease; it will expire"),
    }
}

/// One round: returns whether this replica holds the Lease afterwards.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
    clock: &dyn Clock,
) -> Result<bool, kube::Error> {
    let now =
        jiff::Timestamp::from_millisecond(clock.now_ms()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let duration_secs = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == config.identity;
    if !ours {
        let renewed = spec
            .renew_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(duration_secs));
        let expired = now.as_second() > renewed.as_second().saturating_add(held_for);
        if !holder.is_empty() && !expired {
            return Ok(false);
        }
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        tracing::info!(previous = %holder, identity = %config.identity, "taking over the leader Lease");
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration_secs);
    // `replace` sends metadata.resourceVersion: a concurrent writer makes this 409.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
