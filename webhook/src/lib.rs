//! # agentauth-webhook
//!
//! The validating admission webhook of AgentAuth (DESIGN §3, §4.2): the
//! apiserver asks it about every create and update of an Agent,
//! BehavioralEnvelope, CapabilityGrant or Approver, and it refuses what the
//! CRD schema and its CEL rules cannot: invalid time zones and currencies,
//! references to objects that do not exist, status written by anyone but
//! the operator, and — above all — any approval whose passkey signature does
//! not verify, whoever sends it. One small mutating endpoint beside it
//! records the Kubernetes user who creates each Agent (annotation
//! `agentauth.dev/created-by`), which separation of duties counts as an owner.
//!
//! ```text
//!  kubectl / GitOps / approval API ──write──▶ kube-apiserver
//!                                              │ schema + CEL (crds::schema)
//!                                              ▼
//!                     POST /validate (HTTPS, AdmissionReview v1)
//!                                              ▼
//!   review ──▶ validate::Validator ──▶ crds: spec.validate(), approval::verify_new_approval
//!                     │                 (the same functions the operator runs)
//!                     └──▶ lookup: GET Agent / BehavioralEnvelope / Approver
//!                                              ▼
//!                           allowed, or denied "<code>: <field>: <message>"
//! ```
//!
//! Modules: [`config`] (flags), [`server`] (start, [`server::run`]),
//! [`validate`] (the decisions), [`mutate`] (the one mutation: recording
//! an Agent's creator), [`denial`] (codes and messages),
//! [`lookup`] (reading referenced objects), [`review`] (the wire format),
//! [`tls`] (certificates), [`metrics`], and [`registration`] (the
//! `ValidatingWebhookConfiguration` and `MutatingWebhookConfiguration` for
//! tests and development).

#![forbid(unsafe_code)]

pub mod config;
pub mod denial;
mod http;
pub mod lookup;
pub mod metrics;
pub mod mutate;
pub mod registration;
pub mod review;
pub mod server;
pub mod tls;
pub mod validate;

pub use config::WebhookConfig;
pub use denial::{Code, Denial};
pub use server::{Server, ServerError, run};
