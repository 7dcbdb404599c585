//! One-time enrollment tokens: an admin creates one for an Approver
//! (`agentauth approver enroll-token <approver>`), hands it to the person,
//! and the approval API accepts it once to register a passkey.
//!
//! ```text
//!  create ──▶ token = base64url(256 random bits)           (shown once, never stored)
//!         ──▶ Secret agentauth-enroll-<approver> in the operator's namespace:
//!               data.sha256 = SHA-256(token), annotation expires-at (RFC 3339)
//!  enroll/begin  ──▶ check: Secret exists, hash matches (constant time), not expired
//!  enroll/finish ──▶ not expired (again: a ceremony may outlast the token)
//!                ──▶ consume: DELETE with Preconditions{uid, resourceVersion}
//!                   (exactly one of two racing replicas succeeds) ──▶ passkey written
//! ```
//!
//! Expiry is computed and checked on one clock: the caller passes the time
//! it creates a token at (the operator's injectable clock in tests, the
//! system clock in the CLI), and the approval API checks with its own.
//! An expired token is refused and its Secret deleted. A new token for the
//! same Approver replaces the previous one. The Secret has no owner: an
//! Approver is cluster-scoped and the Secret namespaced.

use std::collections::BTreeMap;
use std::time::Duration;

use agentauth_core::ErrorCode;
use agentauth_crds::Approver;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use sha2::{Digest, Sha256};

use super::reply::Refusal;
use super::session::random_token;

/// Label on every enrollment-token Secret.
pub const TOKEN_LABEL: &str = "agentauth.dev/enrollment-token";
/// Annotation naming the Approver a token enrolls for.
pub const APPROVER_ANNOTATION: &str = "agentauth.dev/approver";
/// Annotation holding a token's expiry (RFC 3339).
pub const EXPIRES_ANNOTATION: &str = "agentauth.dev/expires-at";
/// The data key of the token's SHA-256.
const HASH_KEY: &str = "sha256";

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// There is no Approver of that name.
    #[error("there is no Approver named {0:?}; create it first")]
    ApproverNotFound(String),
    /// The Approver's name makes too long a Secret name.
    #[error("the Approver name {0:?} is too long for an enrollment-token Secret name")]
    NameTooLong(String),
    /// The TTL is zero or beyond a week.
    #[error("an enrollment token lives between 1 s and 7 days")]
    Ttl,
    /// The Kubernetes API failed.
    #[error("the Kubernetes API failed: {0}")]
    Kube(#[from] kube::Error),
}

/// The Secret that holds `approver`'s token hash.
pub fn secret_name(approver: &str) -> String {
    format!("agentauth-enroll-{approver}")
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token for `approver` valid for `ttl` from `now_ms` (the time
/// on the clock the approval API checks expiry with), replacing any earlier
/// one, and returns it (it is not stored; only its hash is).
pub async fn create(
    client: Client,
    namespace: &str,
    approver: &str,
    ttl: Duration,
    now_ms: i64,
) -> Result<String, TokenError> {
    if ttl.is_zero() || ttl > Duration::from_secs(7 * 24 * 3600) {
        return Err(TokenError::Ttl);
    }
    let approvers: Api<Approver> = Api::all(client.clone());
    if approvers.get_opt(approver).await?.is_none() {
        return Err(TokenError::ApproverNotFound(approver.to_owned()));
    }
    let name = secret_name(approver);
    if name.len() > 253 {
        return Err(TokenError::NameTooLong(approver.to_owned()));
    }
    let token = random_token();
    let expires = jiff::Timestamp::from_millisecond(now_ms)
        .map_err(|_| TokenError::Ttl)?
        .checked_add(jiff::SignedDuration::try_from(ttl).map_err(|_| TokenError::Ttl)?)
        .map_err(|_| TokenError::Ttl)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(TOKEN_LABEL.into(), "true".into())])),
            annotations: Some(BTreeMap::from([
                (APPROVER_ANNOTATION.into(), approver.to_owned()),
                (EXPIRES_ANNOTATION.into(), expires.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            HASH_KEY.into(),
            ByteString(hash(&token)),
        )])),
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            secrets.delete(&name, &DeleteParams::default()).await?;
            secrets.create(&PostParams::default(), &secret).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(token)
}

/// A token that matched, identified by the Secret version it matched.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The Approver it enrolls for.
    pub approver: String,
    uid: String,
    resource_version: String,
    expires_ms: i64,
}

impl Checked {
    /// Refuses a token that has expired since it was checked: an
    /// enrollment ceremony may be finished after the token's end.
    pub fn still_valid(&self, now_ms: i64) -> Result<(), Refusal> {
        if now_ms >= self.expires_ms {
            return Err(expired());
        }
        Ok(())
    }
}

fn expired() -> Refusal {
    invalid("the enrollment token has expired; ask for a new one")
}

fn invalid(detail: &str) -> Refusal {
    Refusal::new(ErrorCode::EnrollmentTokenInvalid, detail)
}

/// Checks `token` for `approver` at `now_ms`, without using it up.
pub async fn check(
    client: Client,
    namespace: &str,
    approver: &str,
    token: &str,
    now_ms: i64,
) -> Result<Checked, Refusal> {
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let name = secret_name(approver);
    let secret = secrets
        .get_opt(&name)
        .await
        .map_err(|e| Refusal::kube("read the enrollment token", &e))?
        .ok_or_else(|| invalid("no enrollment token is outstanding for this approver"))?;
    let annotations = secret.annotations();
    let stored = secret
        .data
        .as_ref()
        .and_then(|d| d.get(HASH_KEY))
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    let presented = hash(token);
    let matches = stored.len() == presented.len()
        && stored
            .iter()
            .zip(&presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !matches || annotations.get(APPROVER_ANNOTATION).map(String::as_str) != Some(approver) {
        return Err(invalid("the enrollment token is wrong for this approver"));
    }
    let expires_ms = annotations
        .get(EXPIRES_ANNOTATION)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(i64::MIN, jiff::Timestamp::as_millisecond);
    let checked = Checked {
        approver: approver.to_owned(),
        uid: secret.uid().unwrap_or_default(),
        resource_version: secret.resource_version().unwrap_or_default(),
        expires_ms,
    };
    if let Err(refusal) = checked.still_valid(now_ms) {
        // Best effort: the token is refused whether or not the delete works.
        let _ = delete(&secrets, &name, &checked).await;
        return Err(refusal);
    }
    Ok(checked)
}

/// Uses the token up: deletes exactly the Secret version that was checked.
/// Of two concurrent uses (even on two replicas) only one succeeds.
pub async fn consume(client: Client, namespace: &str, checked: &Checked) -> Result<(), Refusal> {
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    match delete(&secrets, &secret_name(&checked.approver), checked).await {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Err(invalid(
            "the enrollment token was used or replaced meanwhile",
        )),
        Err(e) => Err(Refusal::kube("use up the enrollment token", &e)),
    }
}

async fn delete(secrets: &Api<Secret>, name: &str, checked: &Checked) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(checked.uid.clone()),
            resource_version: Some(checked.resource_version.clone()),
        }),
        ..DeleteParams::default()
    };
    secrets.delete(name, &params).await.map(|_| ())
}
