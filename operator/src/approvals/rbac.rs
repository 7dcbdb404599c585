//! The Kubernetes RBAC check on a decision: may this person `approve` this
//! grant? As cert-manager does for signers, the answer comes from a
//! SubjectAccessReview, so the cluster's own RBAC (Roles, ClusterRoles,
//! bindings, aggregation) decides.
//!
//! **Identity mapping.** The reviewed user is the Approver's `spec.email`
//! (no groups): bind the verb to a `User` subject with that name, which is
//! also the name an OIDC-authenticated kubectl user usually has.
//!
//! ```yaml
//! kind: ClusterRole
//! rules: [{apiGroups: [agentauth.dev], resources: [capabilitygrants], verbs: [approve]}]
//! ---
//! kind: RoleBinding        # in the grant's namespace
//! subjects: [{kind: User, name: dana@example.com}]
//! ```
//!
//! The review is made with the operator's own identity, which needs
//! `create` on `subjectaccessreviews.authorization.k8s.io`. Asked when a
//! decision ceremony begins and again when it finishes.

use agentauth_core::ErrorCode;
use agentauth_crds::{Approver, GROUP};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use super::reply::Refusal;

/// The verb a person needs on a grant to decide it.
pub const VERB: &str = "approve";
/// The resource the verb is checked on.
pub const RESOURCE: &str = "capabilitygrants";

/// The SubjectAccessReview asking whether `approver` may approve the grant.
pub fn review(approver: &Approver, namespace: &str, grant: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(approver.spec.email.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.to_owned()),
                resource: Some(RESOURCE.to_owned()),
                verb: Some(VERB.to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(grant.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Refuses with `approver_not_authorized` unless the apiserver says the
/// approver's identity may `approve` the grant `namespace/grant`.
pub async fn require_approve(
    client: Client,
    approver: &Approver,
    namespace: &str,
    grant: &str,
) -> Result<(), Refusal> {
    let api: Api<SubjectAccessReview> = Api::all(client);
    let answer = api
        .create(&PostParams::default(), &review(approver, namespace, grant))
        .await
        .map_err(|e| Refusal::kube("ask the apiserver for an access review", &e))?;
    let allowed = answer.status.as_ref().is_some_and(|s| s.allowed);
    if allowed {
        return Ok(());
    }
    Err(Refusal::new(
        ErrorCode::ApproverNotAuthorized,
        format!(
            "Kubernetes RBAC does not let user {:?} (Approver {}) {VERB} {RESOURCE}.{GROUP} \
             {namespace}/{grant}; bind a role with that verb to the user",
            approver.spec.email,
            approver.name_any()
        ),
    ))
}
