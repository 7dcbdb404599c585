//! Writing status the Kubernetes way: conditions that keep their
//! `lastTransitionTime` unless their status really changes, only this
//! operator's condition types in its patches (server-side apply keeps every
//! other writer's, the list being a map keyed by `type`), no patch when
//! nothing changed, and every patch a server-side apply under one field
//! manager, [`FIELD_MANAGER`].
//!
//! Each apply carries the `resourceVersion` the reconciler read. The
//! apiserver refuses it (409) when the object changed since, so a decision
//! is always made from the status it replaces: a reconciler that read a
//! stale cache cannot write a transition twice (and audit it twice).

use agentauth_crds::conditions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::clock::Clock;

/// The field manager of every status the operator writes.
pub const FIELD_MANAGER: &str = "agentauth-operator";

/// A condition the operator wants, before times and generations are filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// The condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// Whether the condition holds.
    pub status: bool,
    /// CamelCase reason, one of [`conditions::reasons`].
    pub reason: &'static str,
    /// What a person can do about it.
    pub message: String,
}

impl Want {
    /// A condition that holds.
    pub fn yes(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Want {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Want {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
}

/// The current time, at the whole second the apiserver stores.
pub fn now(clock: &dyn Clock) -> Time {
    time_at_ms(clock.now_ms())
}

/// A time from milliseconds since the epoch, truncated to the second
/// (`metav1.Time` has no fractions, so a finer value would never compare equal).
pub fn time_at_ms(ms: i64) -> Time {
    Time(Timestamp::from_second(ms.div_euclid(1000)).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// The operator's conditions as they should be written (see [`condition`]).
pub fn conditions(
    current: &[Condition],
    wants: &[Want],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    wants
        .iter()
        .map(|want| condition(current, want, generation, now))
        .collect()
}

/// `want` as it should be written: with the `observedGeneration` given, and
/// the `lastTransitionTime` of the current condition of that type when its
/// status is unchanged (`now` otherwise).
pub fn condition(
    current: &[Condition],
    want: &Want,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if want.status { "True" } else { "False" };
    let since = conditions::find(current, want.type_)
        .filter(|c| c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: want.type_.to_owned(),
        status: status.to_owned(),
        reason: want.reason.to_owned(),
        message: want.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The single condition a resource with one condition (Agent, Envelope,
/// Approver) should carry, and whether the status already says exactly that
/// for this `generation` (then nothing needs writing).
pub fn single_condition(
    current: &[Condition],
    observed_generation: Option<i64>,
    want: &Want,
    generation: Option<i64>,
    clock: &dyn Clock,
) -> (Vec<Condition>, bool) {
    let conditions = vec![condition(current, want, generation, &now(clock))];
    let up_to_date =
        observed_generation == generation && project(current, &conditions) == conditions;
    (conditions, up_to_date)
}

/// The current conditions of the types in `ours`, in the same order, to
/// compare with what the operator would write.
pub fn project(current: &[Condition], ours: &[Condition]) -> Vec<Condition> {
    ours.iter()
        .filter_map(|c| conditions::find(current, &c.type_).cloned())
        .collect()
}

/// The current condition of `type_` changed from what it was: a new status or reason.
pub fn changed(current: &[Condition], new: &[Condition], type_: &str) -> bool {
    let before = conditions::find(current, type_).map(|c| (&c.status, &c.reason));
    let after = conditions::find(new, type_).map(|c| (&c.status, &c.reason));
    before != after
}

/// Server-side applies `status` (only the operator's fields) to the status
/// subresource of `object`, forcing ownership of those fields, with the
/// `resourceVersion` read as a precondition.
pub async fn apply<K, S>(api: &Api<K>, object: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let name = object.name_any();
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {
            "name": name,
            "resourceVersion": object.resource_version(),
        },
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch_status(&name, &params, &Patch::Apply(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Conflict(describe(object))),
        Err(source) => Err(Error::WriteStatus {
            object: describe(object),
            source,
        }),
    }
}

/// `Kind namespace/name`, for messages.
pub fn describe<K: Resource<DynamicType = ()>>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{} {ns}/{}", K::kind(&()), object.name_any()),
        None => format!("{} {}", K::kind(&()), object.name_any()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Time {
        time_at_ms(s * 1000)
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let first = conditions(
            &[],
            &[Want::no("Ready", "AwaitingApproval", "wait")],
            Some(1),
            &at(10),
        );
        assert_eq!(first[0].last_transition_time, at(10));
        // Same status, new reason and generation: the time stays.
        let second = conditions(
            &first,
            &[Want::no("Ready", "AgentNotFound", "create it")],
            Some(2),
            &at(20),
        );
        assert_eq!(second[0].last_transition_time, at(10));
        assert_eq!(second[0].observed_generation, Some(2));
        assert!(changed(&first, &second, "Ready"));
        let third = conditions(
            &second,
            &[Want::yes("Ready", "Approved", "ok")],
            Some(2),
            &at(30),
        );
        assert_eq!(third[0].last_transition_time, at(30));
        assert!(!changed(&third, &third, "Ready"));
    }

    #[test]
    fn projection_keeps_only_our_types_in_our_order() {
        let ours = conditions(
            &[],
            &[Want::no("Ready", "X", ""), Want::no("Approved", "Y", "")],
            None,
            &at(1),
        );
        let mut theirs = ours.clone();
        theirs.reverse();
        theirs.push(Condition {
            type_: "Audited".into(),
            ..ours[0].clone()
        });
        assert_eq!(project(&theirs, &ours), ours);
    }

    #[test]
    fn times_are_whole_seconds() {
        assert_eq!(time_at_ms(1_999), at(1));
        assert_eq!(time_at_ms(-1), at(-1));
    }
}
