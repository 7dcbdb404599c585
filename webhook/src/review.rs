//! One `admission.k8s.io/v1` `AdmissionReview` in, one out: [`handle`] for
//! `/validate`, [`handle_mutation`] for `/mutate`.
//!
//! ```text
//!  body ──JSON──▶ AdmissionReview<DynamicObject> ──▶ Validator::admit ──▶ allowed | denied(status)
//!                                                 └▶ mutate::mutation ──▶ allowed (+ JSONPatch) | denied
//!    │ unreadable, but request.uid found ──▶ denied: request_invalid (the apiserver shows why)
//!    └ no uid, wrong apiVersion/kind, no request ──▶ HTTP 400 (the apiserver fails the call,
//!                                                     and failurePolicy: Fail refuses the write)
//! ```
//!
//! Nothing here panics on what the apiserver (or anyone reaching the port)
//! sends: every malformed input ends as a denial or a 400.

use std::time::Instant;

use agentauth_core::ErrorCode;
use kube::core::DynamicObject;
use kube::core::TypeMeta;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};

use crate::denial::Denial;
use crate::lookup::Lookup;
use crate::metrics::Metrics;
use crate::mutate::{self, Mutation};
use crate::validate::Validator;

/// A body that is not an `admission.k8s.io/v1` AdmissionReview request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an admission.k8s.io/v1 AdmissionReview request: {0}")]
pub struct BadReview(pub String);

/// Decides the review in `body` and returns the review to answer with.
pub async fn handle<L: Lookup>(
    validator: &Validator<L>,
    metrics: &Metrics,
    body: &[u8],
) -> Result<AdmissionReview<DynamicObject>, BadReview> {
    let started = Instant::now();
    let request = match read(metrics, body)? {
        Read::Request(request) => *request,
        Read::Answered(review) => return Ok(*review),
    };
    let outcome = validator.admit(&request).await;
    let mut response = AdmissionResponse::from(&request);
    let seconds = started.elapsed().as_secs_f64();
    match &outcome.result {
        Ok(()) => {
            metrics.record(outcome.resource, None, seconds);
            tracing::debug!(
                uid = %request.uid, resource = outcome.resource, name = %request.name,
                user = request.user_info.username.as_deref().unwrap_or_default(),
                "admitted"
            );
        }
        Err(denial) => {
            metrics.record(outcome.resource, Some(denial.code.as_str()), seconds);
            tracing::info!(
                uid = %request.uid, resource = outcome.resource,
                namespace = request.namespace.as_deref().unwrap_or_default(), name = %request.name,
                user = request.user_info.username.as_deref().unwrap_or_default(),
                code = denial.code.as_str(), %denial, "denied"
            );
            response = response.deny(denial);
            response.result = denial.to_status();
        }
    }
    Ok(response.into_review())
}

/// Answers the mutating endpoint: the created-by patch of an Agent
/// ([`mutate::mutation`]), or a refusal.
pub fn handle_mutation(
    metrics: &Metrics,
    body: &[u8],
) -> Result<AdmissionReview<DynamicObject>, BadReview> {
    let request = match read(metrics, body)? {
        Read::Request(request) => *request,
        Read::Answered(review) => return Ok(*review),
    };
    let response = AdmissionResponse::from(&request);
    let user = request.user_info.username.as_deref().unwrap_or_default();
    let response = match mutate::mutation(&request) {
        Ok(Mutation::Unchanged) => {
            metrics.record_mutation(None, false);
            response
        }
        Ok(Mutation::Patch(patch)) => match response.clone().with_patch(patch) {
            Ok(patched) => {
                metrics.record_mutation(None, true);
                tracing::debug!(uid = %request.uid, name = %request.name, user, "recorded the Agent's creator");
                patched
            }
            Err(error) => refuse(
                metrics,
                &request,
                response,
                &Denial::core(
                    ErrorCode::RequestInvalid,
                    mutate::field(),
                    format!("the webhook could not encode its patch: {error}"),
                ),
            ),
        },
        Err(denial) => refuse(metrics, &request, response, &denial),
    };
    Ok(response.into_review())
}

fn refuse(
    metrics: &Metrics,
    request: &AdmissionRequest<DynamicObject>,
    response: AdmissionResponse,
    denial: &Denial,
) -> AdmissionResponse {
    metrics.record_mutation(Some(denial.code.as_str()), false);
    tracing::info!(
        uid = %request.uid, namespace = request.namespace.as_deref().unwrap_or_default(),
        name = %request.name, user = request.user_info.username.as_deref().unwrap_or_default(),
        code = denial.code.as_str(), %denial, "mutation denied"
    );
    let mut response = response.deny(denial);
    response.result = denial.to_status();
    response
}

/// A parsed review: its request, or (when only its uid could be read) the
/// answer already made.
enum Read {
    Request(Box<AdmissionRequest<DynamicObject>>),
    Answered(Box<AdmissionReview<DynamicObject>>),
}

fn read(metrics: &Metrics, body: &[u8]) -> Result<Read, BadReview> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => {
            return unreadable(metrics, body, &error)
                .map(|review| Read::Answered(Box::new(review)));
        }
    };
    if review.types.api_version != META_API_VERSION_V1 || review.types.kind != META_KIND {
        return Err(BadReview(format!(
            "apiVersion {:?} and kind {:?}; register the webhook with admissionReviewVersions: [v1]",
            review.types.api_version, review.types.kind
        )));
    }
    review
        .try_into()
        .map(|request| Read::Request(Box::new(request)))
        .map_err(|_| BadReview("the review has no request".into()))
}

/// A body that does not parse as a review: deny it when its request uid can
/// be found (the apiserver then shows the writer why), otherwise a 400.
fn unreadable(
    metrics: &Metrics,
    body: &[u8],
    error: &serde_json::Error,
) -> Result<AdmissionReview<DynamicObject>, BadReview> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| BadReview(format!("invalid JSON: {error}")))?;
    let uid = value
        .pointer("/request/uid")
        .and_then(serde_json::Value::as_str)
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| BadReview(format!("{error}, and no request.uid to answer")))?;
    let denial = Denial::core(
        ErrorCode::RequestInvalid,
        "request",
        format!("the webhook could not read this AdmissionReview: {error}"),
    );
    metrics.record("other", Some(denial.code.as_str()), 0.0);
    let mut response = AdmissionResponse::invalid(&denial);
    response.uid = uid.to_owned();
    response.result = denial.to_status();
    response.types = TypeMeta {
        api_version: META_API_VERSION_V1.to_owned(),
        kind: META_KIND.to_owned(),
    };
    Ok(response.into_review())
}
