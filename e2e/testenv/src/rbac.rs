//! Granting a user one RBAC verb in a test namespace, and waiting until the
//! apiserver's authorizer agrees.
//!
//! The RBAC authorizer reads Roles and RoleBindings from its own watch
//! cache, so a binding that was just created may not be in force for a
//! moment; tests that then act as that user (or ask a SubjectAccessReview
//! for them, as the approval API does) would flake without the wait.

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::{ControlPlane, Error};

/// How long a new binding may take to be in force.
const IN_FORCE_WITHIN: Duration = Duration::from_secs(10);

/// One RBAC permission: `verb` on `resource` of API group `group`.
#[derive(Clone, Copy, Debug)]
pub struct Permission<'a> {
    /// The API group, e.g. `agentauth.dev`.
    pub group: &'a str,
    /// The resource (plural), e.g. `capabilitygrants`.
    pub resource: &'a str,
    /// The verb, e.g. `approve`.
    pub verb: &'a str,
}

impl ControlPlane {
    /// Lets `user` do `permission` in `namespace` (a Role and a RoleBinding
    /// named `name`), and returns once a SubjectAccessReview for `user`
    /// says it is allowed.
    pub async fn allow(
        &self,
        namespace: &str,
        name: &str,
        user: &str,
        permission: Permission<'_>,
    ) -> Result<(), Error> {
        let client = self.client()?;
        let meta = ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        };
        let role = Role {
            metadata: meta.clone(),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![permission.group.to_owned()]),
                resources: Some(vec![permission.resource.to_owned()]),
                verbs: vec![permission.verb.to_owned()],
                ..PolicyRule::default()
            }]),
        };
        let binding = RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: name.to_owned(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "User".into(),
                name: user.to_owned(),
                namespace: None,
            }]),
        };
        let api_error = |action: String| move |source| Error::Api { action, source };
        Api::<Role>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &role)
            .await
            .map_err(api_error(format!("create Role {namespace}/{name}")))?;
        Api::<RoleBinding>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await
            .map_err(api_error(format!("create RoleBinding {namespace}/{name}")))?;

        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.to_owned()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(permission.group.to_owned()),
                    resource: Some(permission.resource.to_owned()),
                    verb: Some(permission.verb.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let reviews: Api<SubjectAccessReview> = Api::all(client);
        let deadline = Instant::now() + IN_FORCE_WITHIN;
        loop {
            let answer = reviews
                .create(&PostParams::default(), &review)
                .await
                .map_err(api_error(format!("review {user}'s access")))?;
            if answer.status.is_some_and(|s| s.allowed) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::UnexpectedResponse {
                    action: format!("bind {user} to {name} in {namespace}"),
                    message: format!("not in force after {IN_FORCE_WITHIN:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
