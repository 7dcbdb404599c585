//! A realistic mix: every agent, both audiences, each request a fresh
//! proof with the agent's current token from the SDK's cache (so tokens
//! are refreshed, i.e. issued, as they near expiry, as a real agent's are).
//!
//! | grant | request | expected denial |
//! |---|---|---|
//! | plain (shop or calendar) | 97 %: a read inside the grant; 3 %: a read outside it | `capability_not_granted` |
//! | rate-limited (`load-rate`, 600/min, burst 20) | a read | `rate_limited` |
//! | spending (`load-spend`, 50 EUR each, 20,000 EUR a day) | half reads, half payments of 1–60 EUR | `amount_over_limit`, `daily_amount_over_limit` |
//!
//! Any other denial is unexpected and fails the run.

use std::sync::Arc;
use std::time::Instant;

use goose::prelude::GooseUser;

use super::{Step, Target, resource_in_grant, transaction};
use crate::LoadError;
use crate::attack::{self, Plan};
use crate::fixtures::{GrantKind, LoadGrant};
use crate::pace::{Turn, next_turn};
use crate::recorder::{Recorder, Summary};
use crate::wire::{self, Action, Outcome};

/// The denials this profile produces by design.
pub const EXPECTED_DENIALS: &[&str] = &[
    "capability_not_granted",
    "rate_limited",
    "amount_over_limit",
    "daily_amount_over_limit",
];

/// The mixed profile, shared by its users (and read by the soak).
pub struct Mixed {
    target: Target,
    rate: f64,
    users: usize,
    /// Its record.
    pub recorder: Recorder,
}

fn action(grant: &LoadGrant, turn: Turn) -> Action {
    let roll = turn.random % 100;
    match grant.kind {
        GrantKind::Plain if roll < 3 => Action::Read(format!("admin/settings-{}", turn.seq % 7)),
        GrantKind::Spending if roll < 50 => {
            // 1.00 to 60.00 EUR: a sixth of them above the 50 EUR limit.
            let cents = u32::try_from(100 + (turn.random >> 8) % 5_901).unwrap_or(100);
            Action::Pay(format!("orders/{}/payment", turn.seq), cents)
        }
        _ => Action::Read(resource_in_grant(&grant.audience, turn.seq)),
    }
}

async fn one(
    m: &Mixed,
    user: &mut GooseUser,
    turn: Turn,
) -> (Instant, std::time::Duration, Outcome) {
    let grants = &m.target.population.grants;
    let grant = &grants[(turn.random >> 32) as usize % grants.len()];
    let agent = &m.target.population.agents[grant.agent];
    agent.client.use_grant(&grant.audience, &grant.reference);
    let now = Instant::now();
    let token = match agent.client.get_token(&grant.audience).await {
        Ok(token) => token,
        Err(e) => {
            return (
                now,
                now.elapsed(),
                Outcome::Error(format!("token_{}", e.code_str())),
            );
        }
    };
    let body = match wire::verify_body(
        agent.client.key(),
        &token.access_token,
        &grant.audience,
        &action(grant, turn),
    ) {
        Ok(body) => body,
        Err(_) => return (now, now.elapsed(), Outcome::Error("proof".into())),
    };
    let url = m.target.verifier_url(turn.user);
    let (answer, sent, latency) = attack::post(user, "verify", &url, &[], body).await;
    let outcome = match answer {
        Ok((status, bytes)) => wire::outcome(status, &bytes),
        Err(e) => Outcome::Error(e),
    };
    (sent, latency, outcome)
}

fn step(m: Arc<Mixed>, user: &mut GooseUser) -> Step<'_> {
    Box::pin(async move {
        let turn = next_turn(user, m.rate, m.users).await;
        let (sent, latency, outcome) = one(&m, user, turn).await;
        m.recorder.record(sent, latency, &outcome);
        Ok(())
    })
}

impl Mixed {
    /// The mixed profile at `rate` per second for `users` users.
    pub fn new(target: &Target, rate: f64, users: usize) -> Result<Arc<Self>, LoadError> {
        Ok(Arc::new(Mixed {
            target: target.clone(),
            rate,
            users,
            recorder: Recorder::new(EXPECTED_DENIALS)?,
        }))
    }

    /// Runs it under `plan`.
    pub async fn run(self: &Arc<Self>, plan: &Plan) -> Result<Summary, LoadError> {
        attack::run(
            "mixed",
            &self.target.endpoints.operator,
            plan,
            transaction(self.clone(), step),
        )
        .await?;
        Ok(self.recorder.summary())
    }
}

/// Runs the mixed profile at `rate` per second under `plan`.
pub async fn run(target: &Target, rate: f64, plan: &Plan) -> Result<Summary, LoadError> {
    Mixed::new(target, rate, plan.users)?.run(plan).await
}
