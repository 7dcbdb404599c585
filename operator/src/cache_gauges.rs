//! Gauges read off the informer caches when `/metrics` is scraped: grants
//! per phase, and each controller's backlog.
//!
//! kube-runtime keeps its reconcile queue private, so the backlog counts what
//! the queue exists for: objects whose `status.observedGeneration` trails
//! `metadata.generation` (a spec change not yet reconciled). Reading the
//! caches at scrape time keeps the numbers exact without touching the
//! reconcile path, and costs one pass over each store per scrape.

use agentauth_crds::{Agent, Approver, BehavioralEnvelope, CapabilityGrant, GrantPhase};
use kube::Resource;
use kube::runtime::reflector::Store;

use crate::cache::Caches;
use crate::metrics::Metrics;

/// Every phase a status can hold (not the shared state's `Suspended`), and
/// `None` for a grant the operator has not reconciled yet.
const PHASES: [Option<GrantPhase>; 6] = [
    None,
    Some(GrantPhase::Pending),
    Some(GrantPhase::Approved),
    Some(GrantPhase::Denied),
    Some(GrantPhase::Revoked),
    Some(GrantPhase::Expired),
];

/// Sets `agentauth_grants{phase}` and `agentauth_reconcile_backlog{controller}`.
pub fn refresh(caches: &Caches, metrics: &Metrics) {
    let grants = caches.grants.state();
    for phase in PHASES {
        let count = grants
            .iter()
            .filter(|grant| grant.status.as_ref().and_then(|s| s.phase) == phase)
            .count();
        let label = phase.map_or("Unknown", GrantPhase::as_str);
        metrics.grants.with_label_values(&[label]).set(gauge(count));
    }
    let backlog = |controller: &str, count: usize| {
        metrics
            .reconcile_backlog
            .with_label_values(&[controller])
            .set(gauge(count));
    };
    backlog(
        "grant",
        lagging(&caches.grants, |g: &CapabilityGrant| {
            g.status.as_ref().and_then(|s| s.observed_generation)
        }),
    );
    backlog(
        "agent",
        lagging(&caches.agents, |a: &Agent| {
            a.status.as_ref().and_then(|s| s.observed_generation)
        }),
    );
    backlog(
        "envelope",
        lagging(&caches.envelopes, |e: &BehavioralEnvelope| {
            e.status.as_ref().and_then(|s| s.observed_generation)
        }),
    );
    backlog(
        "approver",
        lagging(&caches.approvers, |a: &Approver| {
            a.status.as_ref().and_then(|s| s.observed_generation)
        }),
    );
}

/// Objects of `store` whose observed generation trails their generation
/// (one never observed counts).
fn lagging<K>(store: &Store<K>, observed: impl Fn(&K) -> Option<i64>) -> usize
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|object| {
            let generation = object.meta().generation.unwrap_or(0);
            observed(object).is_none_or(|seen| seen < generation)
        })
        .count()
}

fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
