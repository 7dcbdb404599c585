//! `BehavioralEnvelope`: limits that every grant referring to it obeys — how
//! often (rate limits), when (time windows), how much money (transaction
//! limits) and how long one token lives.
//!
//! The limits are core types ([`RateLimit`], [`TimeWindow`],
//! [`TransactionLimits`], [`Period`]), so the verifier applies exactly what
//! the schema accepted. A request must pass every limit: each rate limit, at
//! least one time window (when any are listed), and the money limits.

use agentauth_core::ErrorCode;
use agentauth_core::envelope::TransactionLimits;
use agentauth_core::gcra::{Period, RateLimit};
use agentauth_core::window::{MAX_WINDOWS, TimeWindow};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::approval_policy::ApprovalPolicy;
use crate::invalid::{At, Invalid};

/// The most rate limits one envelope may list (e.g. per second, per minute,
/// per hour, per day — a handful is all that makes sense).
pub const MAX_RATE_LIMITS: usize = 16;
/// The longest `maxTokenTtl`, in ms: no access token lives longer than an
/// hour (DESIGN §5), so a larger value would promise what never happens.
pub const MAX_TOKEN_TTL_MS: u64 = 3_600_000;

/// The limits of a BehavioralEnvelope. A request must pass every limit that
/// is set; at least one must be.
#[allow(
    clippy::duplicated_attributes,
    reason = "kube's printcolumn(...) repeats keys such as type_ = \"string\" by design"
)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "agentauth.dev",
    version = "v1alpha1",
    kind = "BehavioralEnvelope",
    namespaced,
    status = "BehavioralEnvelopeStatus",
    derive = "PartialEq",
    shortname = "benv",
    shortname = "envelope",
    category = "agentauth",
    doc = "Limits that every CapabilityGrant naming this envelope (spec.envelopeRef) obeys: \
           rate limits, time windows, money limits and the longest token lifetime. A request \
           must pass all of them.",
    printcolumn(
        name = "Requests",
        type_ = "integer",
        json_path = ".spec.rateLimits[0].requests",
        description = "Requests per period of the first rate limit"
    ),
    printcolumn(
        name = "Per",
        type_ = "string",
        json_path = ".spec.rateLimits[0].period"
    ),
    printcolumn(
        name = "Currency",
        type_ = "string",
        json_path = ".spec.transactions.currency"
    ),
    printcolumn(
        name = "Per Day",
        type_ = "string",
        json_path = ".spec.transactions.maxPerDay"
    ),
    printcolumn(name = "Token TTL", type_ = "string", json_path = ".spec.maxTokenTtl"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.rateLimits) || has(self.timeWindows) || has(self.transactions) || has(self.maxTokenTtl) || has(self.approvals)",
    "message": "an envelope sets at least one of rateLimits, timeWindows, transactions, maxTokenTtl or approvals (check the spelling: unknown fields are dropped)",
}]))]
pub struct BehavioralEnvelopeSpec {
    /// Rate limits, all applied: each allows `requests` per `period`
    /// sustained, with up to `burst` at once after a quiet spell. Counted per
    /// grant. Empty: no rate limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RATE_LIMITS), transform = crate::schema::core_rules)]
    pub rate_limits: Vec<RateLimit>,
    /// When the agent may act, by the wall clock of each window's time zone.
    /// A request outside every window is refused (outside_time_window).
    /// Empty: at any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_WINDOWS), transform = time_windows)]
    pub time_windows: Vec<TimeWindow>,
    /// Money limits of transact capabilities: the currency, the largest single
    /// transaction and the most per UTC day. Omitted: no money limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::core_rules)]
    pub transactions: Option<TransactionLimits>,
    /// The longest an access token issued under this envelope lives, e.g.
    /// "5m"; at most "1h". Omitted: the issuer's default (5 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        transform = crate::schema::core_rules,
        extend("x-kubernetes-validations" = [{
            "rule": "!self.endsWith('d') && duration(self) <= duration('1h')",
            "message": "maxTokenTtl is at most 1h: no access token lives longer than an hour",
        }])
    )]
    pub max_token_ttl: Option<Period>,
    /// How many distinct approvers every grant under this envelope needs,
    /// e.g. {required: 2} for high-value transact capabilities. A grant's
    /// own spec.approvals applies too; the stricter wins (the larger
    /// required, both selectors, Veto over Quorum). Omitted: the grant's
    /// own policy, or one approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalPolicy>,
}

/// Time windows: core's rules, and each window's days a set.
fn time_windows(schema: &mut schemars::Schema) {
    crate::schema::core_rules(schema);
    let days = schema
        .as_object_mut()
        .and_then(|s| s.get_mut("items"))
        .and_then(|i| i.get_mut("properties"))
        .and_then(|p| p.get_mut("days"))
        .and_then(serde_json::Value::as_object_mut);
    if let Some(days) = days {
        days.insert("x-kubernetes-list-type".into(), "set".into());
    }
}

/// What the operator observed about a BehavioralEnvelope: whether its limits
/// are valid and in effect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BehavioralEnvelopeStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations of the envelope, one per type: Ready says whether its
    /// limits are valid and in effect, and if not, which field to fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::schema")]
    pub conditions: Vec<Condition>,
}

impl BehavioralEnvelopeSpec {
    /// Checks every limit with core's rules (GCRA bounds, known time zones,
    /// amounts fitting the currency, per-transaction ≤ per-day) and the
    /// bounds of this resource.
    pub fn validate(&self) -> Result<(), Invalid> {
        let empty = self.rate_limits.is_empty()
            && self.time_windows.is_empty()
            && self.transactions.is_none()
            && self.max_token_ttl.is_none()
            && self.approvals.is_none();
        if empty {
            return Err(Invalid::new(
                "spec",
                ErrorCode::EnvelopeInvalid,
                "an envelope sets at least one of rateLimits, timeWindows, transactions, \
                 maxTokenTtl or approvals",
            ));
        }
        if let Some(policy) = &self.approvals {
            policy.validate("spec.approvals")?;
        }
        if self.rate_limits.len() > MAX_RATE_LIMITS {
            return Err(too_many("spec.rateLimits", MAX_RATE_LIMITS));
        }
        for (i, limit) in self.rate_limits.iter().enumerate() {
            limit.validate().at(format!("spec.rateLimits[{i}]"))?;
        }
        if self.time_windows.len() > MAX_WINDOWS {
            return Err(too_many("spec.timeWindows", MAX_WINDOWS));
        }
        for (i, window) in self.time_windows.iter().enumerate() {
            window.validate().at(format!("spec.timeWindows[{i}]"))?;
        }
        if let Some(transactions) = &self.transactions {
            transactions.validate().at("spec.transactions")?;
        }
        if let Some(ttl) = self.max_token_ttl
            && ttl.as_millis() > MAX_TOKEN_TTL_MS
        {
            return Err(Invalid::new(
                "spec.maxTokenTtl",
                ErrorCode::EnvelopeInvalid,
                format!("{ttl} is longer than 1h, and no access token lives longer than an hour"),
            ));
        }
        Ok(())
    }
}

fn too_many(field: &str, max: usize) -> Invalid {
    Invalid::new(
        field,
        ErrorCode::EnvelopeInvalid,
        format!("lists at most {max} entries"),
    )
}
