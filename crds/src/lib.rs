//! # agentauth-crds
//!
//! AgentAuth's Kubernetes resources (group `agentauth.dev`, version
//! `v1alpha1`, DESIGN §3) as Rust types, and the CRDs generated from them.
//!
//! ```text
//!  Agent ◀──agentRef── CapabilityGrant ──envelopeRef──▶ BehavioralEnvelope
//!  (key, owner)        (capabilities, expiry,           (rate limits, time windows,
//!                       status.approval)                 money limits, token TTL)
//!                             ▲ decided by
//!                      Approver (cluster-scoped; scope, passkeys)
//! ```
//!
//! Field types are `agentauth-core`'s, so the apiserver, the webhook, the
//! operator and the verifier read one definition. Validation happens in two
//! places that agree:
//!
//! - the **schema** the apiserver enforces: core's patterns and ranges, plus
//!   CEL `x-kubernetes-validations` with plain messages ([`schema`]) and the
//!   `oldSelf` rules that make a decided grant's spec and its recorded
//!   approval immutable;
//! - a pure `validate()` per spec ([`AgentSpec::validate`], …) for what a
//!   schema cannot say (a JWK is a point on the curve, a time zone exists, an
//!   amount fits its currency), shared by the webhook and the reconcilers.
//!
//! [`all_crds`] and [`crds_yaml`] produce the manifests; the checked-in
//! copies in `crds/generated/` are kept equal to them by a test.

pub mod agent;
pub mod approval;
pub mod approval_policy;
pub mod approver;
pub mod conditions;
pub mod envelope;
pub mod generate;
pub mod grant;
pub mod grant_status;
pub mod invalid;
pub mod schema;

pub use agent::{Agent, AgentSpec, AgentStatus};
pub use approval_policy::{ApprovalPolicy, DenialRule};
pub use approver::{Approver, ApproverScope, ApproverSpec, ApproverStatus, Passkey};
pub use envelope::{BehavioralEnvelope, BehavioralEnvelopeSpec, BehavioralEnvelopeStatus};
pub use generate::{GenerateError, all_crds, crds_yaml, generated_files, write_dir};
pub use grant::{CapabilityGrant, CapabilityGrantSpec, LocalRef};
pub use grant_status::{Approval, CapabilityGrantStatus, GrantPhase};
pub use invalid::Invalid;

/// The API group of every AgentAuth resource.
pub const GROUP: &str = "agentauth.dev";
/// The API version of every AgentAuth resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "agentauth.dev/v1alpha1";
/// The category every AgentAuth CRD is in: `kubectl get agentauth` lists them all.
pub const CATEGORY: &str = "agentauth";
