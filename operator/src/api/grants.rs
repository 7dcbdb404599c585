//! `POST /v1/grants` and `GET /v1/grants/{namespace}/{name}`: an agent asks
//! for a CapabilityGrant and reads where it stands (DESIGN §4.1).
//!
//! Request (`DPoP` header: a proof of the agent's key; `Content-Type:
//! application/json`; optional `Idempotency-Key`):
//!
//! ```text
//!  {"agent": "calendar-bot", "namespace": "team-a",
//!   "serviceProvider": "https://calendar.example.com",
//!   "capabilities": [{"type": "read", "resource": "calendars/primary/**"}],
//!   "envelopeRef": {"name": "office-hours"},              optional
//!   "duration": "8h"  |  "expiresAt": "2026-07-01T00:00:00Z",   exactly one
//!   "reason": "Schedule the weekly planning meeting"}
//! ```
//!
//! The fields are the CapabilityGrant spec's (validated by the same
//! `validate()` as the webhook's), with `agent` and `namespace` naming the
//! Agent whose key signed the proof. Answer: `201 Created` with a
//! `Location` and the [`GrantView`]; with an `Idempotency-Key` the grant is
//! named `<agent>-<hash(agent, key)>`, so a retry finds the grant the first
//! attempt made and answers `200` with it, or `409` if that grant asks for
//! something else. Nothing is audited here: the grant controller records
//! `grant_created` when it first sees the grant.

use agentauth_core::capability::Capability;
use agentauth_core::gcra::Period;
use agentauth_crds::{CapabilityGrant, CapabilityGrantSpec, LocalRef};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::body::{self, Format};
use super::dpop_auth::{agent_key_matches, authenticate, held_grant};
use super::problem::ApiError;
use super::view::GrantView;
use super::{ApiState, is_dns_label};

/// The field manager of grants the agent API creates.
pub const FIELD_MANAGER: &str = "agentauth-agent-api";

/// The label naming the agent of a grant the agent API created.
pub const AGENT_LABEL: &str = "agentauth.dev/agent";

/// A grant request: the CapabilityGrant spec with the agent named.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GrantRequest {
    agent: String,
    namespace: String,
    service_provider: String,
    capabilities: Vec<Capability>,
    #[serde(default)]
    envelope_ref: Option<LocalRef>,
    #[serde(default)]
    duration: Option<Period>,
    #[serde(default)]
    expires_at: Option<Time>,
    reason: String,
}

/// Handles `POST /v1/grants`.
pub async fn create(State(state): State<ApiState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    body::format(&parts.headers, &[Format::Json])?;
    let bytes = body::read(&parts.headers, body).await?;
    let request: GrantRequest = body::json(&bytes)?;
    let idempotency_key = idempotency_key(&parts.headers)?;
    let namespace = request.namespace.clone();
    let spec = spec_of(request, state.ctx.clock.now_secs())?;

    let proof = authenticate(
        &state,
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        None,
    )
    .await?;
    let agent_name = spec.agent_ref.name.clone();
    let agent = state.ctx.caches.agent(&namespace, &agent_name);
    agent_key_matches(agent.as_deref(), &namespace, &agent_name, &proof.jkt)?;

    let mut grant = CapabilityGrant::new("", spec);
    grant.metadata = metadata(&namespace, &agent_name, idempotency_key.as_deref());
    let api: Api<CapabilityGrant> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, &grant).await {
        Ok(created) => Ok(created_response(&created)),
        Err(kube::Error::Api(e)) if e.code == 409 && idempotency_key.is_some() => {
            // A retry: the first attempt made the grant this key names.
            let name = grant.metadata.name.clone().unwrap_or_default();
            let existing = api.get(&name).await.map_err(kube_error)?;
            if !same_request(&existing.spec, &grant.spec) {
                let detail = "this Idempotency-Key was already used for another grant request";
                return Err(ApiError::invalid(detail).with_status(StatusCode::CONFLICT));
            }
            Ok((StatusCode::OK, axum::Json(GrantView::of(&existing))).into_response())
        }
        Err(e) => Err(kube_error(e)),
    }
}

/// The spec a request asks for, checked as the webhook checks it, plus what
/// only makes sense at request time (an expiry in the future).
fn spec_of(request: GrantRequest, now: i64) -> Result<CapabilityGrantSpec, ApiError> {
    if !is_dns_label(&request.namespace) {
        return Err(ApiError::invalid(
            "namespace is not a Kubernetes namespace name",
        ));
    }
    // Kubernetes keeps whole seconds; so must the spec compared on retries.
    let expires_at = request
        .expires_at
        .map(|t| Time(jiff::Timestamp::from_second(t.0.as_second()).unwrap_or(t.0)));
    let spec = CapabilityGrantSpec {
        agent_ref: LocalRef::new(request.agent),
        service_provider: request.service_provider,
        capabilities: request.capabilities,
        envelope_ref: request.envelope_ref,
        expires_at,
        duration: request.duration,
        reason: request.reason,
        // An agent does not choose its approvers; an admin sets the policy
        // on the envelope (or on a grant applied by a person).
        approvals: None,
        revoked: false,
    };
    spec.validate()
        .map_err(|e| ApiError::new(e.code, e.to_string()))?;
    if spec
        .expires_at
        .as_ref()
        .is_some_and(|t| t.0.as_second() <= now)
    {
        return Err(ApiError::invalid("expiresAt lies in the past"));
    }
    Ok(spec)
}

/// Handles `GET /v1/grants/{namespace}/{name}`: the [`GrantView`].
pub async fn get(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let grant = authorized_grant(&state, path, &method, &uri, &headers).await?;
    Ok(axum::Json(GrantView::of(&grant)).into_response())
}

/// The grant a `GET` names, once the proof shows the caller is its agent.
pub async fn authorized_grant(
    state: &ApiState,
    path: Result<Path<(String, String)>, PathRejection>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<CapabilityGrant>, ApiError> {
    let Path((namespace, name)) =
        path.map_err(|e| ApiError::invalid(format!("bad grant path: {e}")))?;
    let proof = authenticate(state, method, uri.path(), headers, None).await?;
    held_grant(state, &namespace, &name, &proof.jkt)
}

fn created_response(grant: &CapabilityGrant) -> Response {
    let view = GrantView::of(grant);
    let location = format!("/v1/grants/{}/{}", view.namespace, view.name);
    let mut response = (StatusCode::CREATED, axum::Json(view)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header:
/// a string, possibly quoted): 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid("Idempotency-Key must be one value of 1 to 255 visible ASCII characters")
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let value = value.to_str().map_err(|_| bad())?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(value.to_owned()))
}

/// The new grant's metadata: a name derived from the idempotency key, or a
/// `generateName`; and the agent label when the name fits a label value.
fn metadata(namespace: &str, agent: &str, idempotency_key: Option<&str>) -> ObjectMeta {
    let labels = (agent.len() <= 63).then(|| [(AGENT_LABEL.to_owned(), agent.to_owned())].into());
    let mut meta = ObjectMeta {
        namespace: Some(namespace.to_owned()),
        labels,
        ..ObjectMeta::default()
    };
    match idempotency_key {
        Some(key) => {
            let digest = Sha256::digest(format!("{namespace}/{agent}\n{key}").as_bytes());
            let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            meta.name = Some(format!("{}-{hash}", prefix(agent, 253 - 17)));
        }
        None => meta.generate_name = Some(format!("{}-", prefix(agent, 253 - 6))),
    }
    meta
}

/// `agent` cut to `max` bytes, without a trailing `-` or `.` (a name's
/// labels end alphanumeric).
fn prefix(agent: &str, max: usize) -> &str {
    let cut = agent.get(..max.min(agent.len())).unwrap_or(agent);
    cut.trim_end_matches(['-', '.'])
}

/// Whether an existing grant is the one a retried request would create
/// (`revoked` aside: a retry after a revocation still finds its grant).
fn same_request(existing: &CapabilityGrantSpec, requested: &CapabilityGrantSpec) -> bool {
    let mut existing = existing.clone();
    existing.revoked = false;
    existing == *requested
}

/// An apiserver failure, as the API reports it.
fn kube_error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
            ApiError::invalid(format!("Kubernetes refused the grant: {}", status.message))
        }
        kube::Error::Api(status) if status.code == 409 => {
            ApiError::invalid(format!("Kubernetes refused the grant: {}", status.message))
                .with_status(StatusCode::CONFLICT)
        }
        other => {
            tracing::warn!(error = %other, "the Kubernetes API did not create the grant");
            ApiError::unavailable(format!("the Kubernetes API is unavailable: {other}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_idempotency_keys_are_stable_and_valid() {
        let a = metadata("ns", "bot", Some("k1")).name.unwrap_or_default();
        assert_eq!(
            a,
            metadata("ns", "bot", Some("k1")).name.unwrap_or_default()
        );
        assert_ne!(
            a,
            metadata("ns", "bot", Some("k2")).name.unwrap_or_default()
        );
        assert_ne!(
            a,
            metadata("other", "bot", Some("k1"))
                .name
                .unwrap_or_default()
        );
        assert!(a.starts_with("bot-") && a.len() == 4 + 16, "{a}");
        let long = format!("{}.-x", "a".repeat(250));
        let name = metadata("ns", &long, Some("k")).name.unwrap_or_default();
        assert!(name.len() <= 253 && !name.contains(".-"), "{name}");
        assert!(metadata("ns", &long, None).labels.is_none());
    }
}
