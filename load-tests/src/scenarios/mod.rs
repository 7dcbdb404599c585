//! The scenarios, each one goose transaction over the real system:
//!
//! | scenario | one transaction | expected denials |
//! |---|---|---|
//! | [`warm`] | verify: a token already seen, a fresh proof | none |
//! | [`cold`] | verify: a token never seen before, a fresh proof | none |
//! | [`issuance`] | `POST /v1/token` with a fresh proof | (no decisions; any non-200 is an error) |
//! | [`approval`] | grant request → passkey approval → token → first verified call | none |
//! | [`mixed`] | many agents, both audiences, rate and spending envelopes, some calls outside the grant | `capability_not_granted`, `rate_limited`, `amount_over_limit`, `daily_amount_over_limit` |
//!
//! Requests go to both verifiers (user index modulo two), as two nodes'
//! providers would call their node-local verifier.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use goose::prelude::{GooseUser, TransactionFunction, TransactionResult};

use crate::dev::Endpoints;
use crate::fixtures::Population;

pub mod approval;
pub mod cold;
pub mod issuance;
pub mod mixed;
pub mod warm;

/// The boxed future of one transaction.
pub type Step<'a> = Pin<Box<dyn Future<Output = TransactionResult> + Send + 'a>>;

/// What every scenario works with.
#[derive(Clone)]
pub struct Target {
    /// Where the services listen.
    pub endpoints: Endpoints,
    /// The agents, grants and approver.
    pub population: Population,
    /// A plain HTTP client for fixtures (not measured).
    pub http: reqwest::Client,
}

impl Target {
    /// The verifier a user sends to.
    pub fn verifier_url(&self, user: usize) -> String {
        let verifiers = &self.endpoints.verifiers;
        let base = verifiers
            .get(user % verifiers.len().max(1))
            .map_or(self.endpoints.operator.as_str(), |v| v.1.as_str());
        format!("{base}{}", crate::wire::VERIFY_PATH)
    }
}

/// A goose transaction running `step` with `context`.
pub fn transaction<C: Send + Sync + 'static>(
    context: Arc<C>,
    step: for<'a> fn(Arc<C>, &'a mut GooseUser) -> Step<'a>,
) -> TransactionFunction {
    Arc::new(move |user| step(context.clone(), user))
}

/// A resource inside a plain grant at `audience`, varied by `n`.
pub fn resource_in_grant(audience: &str, n: u64) -> String {
    if audience == crate::fixtures::CALENDAR {
        format!("calendars/team-load/events/{}", n % 97)
    } else {
        format!("catalog/item-{}", n % 97)
    }
}
