//! The Helm chart's tests live in `tests/chart/`: `helm lint`, the rendered
//! manifests of every documented values file, the real kube-apiserver's
//! verdict on each (server-side dry run), and the chart's RBAC, checked by
//! SubjectAccessReviews and by running the operator's controllers under the
//! chart's ServiceAccount.
