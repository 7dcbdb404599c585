//! The Helm chart, `charts/agentauth/`, tested against real tools: helm
//! (built from Go modules) and the local kube-apiserver + etcd.
//!
//! ```text
//!  ci/*-values.yaml ──helm template──▶ manifests ──dry-run apply──▶ kube-apiserver (+ cert-manager,
//!                                         │                             Prometheus Operator CRDs)
//!                                         └─ RBAC applied ──▶ SubjectAccessReviews, controllers run as the SA
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chart {
    pub mod apiserver;
    pub mod rbac;
    pub mod render;
    pub mod support;
}
