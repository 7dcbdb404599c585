//! The human in the loop, end to end: an agent asks for a grant (SDK,
//! `POST /v1/grants`), the approver approves it with a software passkey
//! through the approval API (challenge, ES256 assertion, the webhook checks
//! it), the agent sees the decision (SSE), gets a token and makes its first
//! verified call. One flow is one sample; its latency is the whole flow.
//!
//! The approver is one person: approvals are serialized behind one
//! passkey session, as they would be.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::prelude::GooseUser;

use super::{Step, Target, resource_in_grant, transaction};
use crate::LoadError;
use crate::attack::{self, Plan};
use crate::fixtures::{self, GrantKind, SHOP};
use crate::pace::next_turn;
use crate::recorder::{Recorder, Summary};
use crate::wire::{self, Action, Outcome};

struct Approval {
    target: Target,
    rate: f64,
    users: usize,
    recorder: Recorder,
}

async fn flow(a: &Approval, user: &mut GooseUser, agent_index: usize, n: u64) -> Outcome {
    let agent = &a.target.population.agents[agent_index];
    let Ok(reference) = fixtures::request(agent, SHOP, GrantKind::Plain).await else {
        return Outcome::Error("grant_request".into());
    };
    let Ok((namespace, name)) = fixtures::split(&reference) else {
        return Outcome::Error("grant_reference".into());
    };
    if a.target
        .population
        .approver
        .lock()
        .await
        .approve(namespace, name)
        .await
        .is_err()
    {
        return Outcome::Error("approve".into());
    }
    if agent
        .client
        .wait_for_approval(&reference, Duration::from_secs(30))
        .await
        .is_err()
    {
        return Outcome::Error("wait_for_approval".into());
    }
    let Ok(token) = agent.client.get_token(SHOP).await else {
        return Outcome::Error("token".into());
    };
    let action = Action::Read(resource_in_grant(SHOP, n));
    let Ok(body) = wire::verify_body(agent.client.key(), &token.access_token, SHOP, &action) else {
        return Outcome::Error("proof".into());
    };
    let url = a.target.verifier_url(user.weighted_users_index);
    match attack::post(user, "first-call", &url, &[], body).await.0 {
        Ok((status, bytes)) => wire::outcome(status, &bytes),
        Err(e) => Outcome::Error(e),
    }
}

fn step(a: Arc<Approval>, user: &mut GooseUser) -> Step<'_> {
    Box::pin(async move {
        let turn = next_turn(user, a.rate, a.users).await;
        let agents = a.target.population.agents.len().max(1);
        let started = Instant::now();
        let outcome = flow(&a, user, turn.user % agents, turn.seq).await;
        a.recorder.record(started, started.elapsed(), &outcome);
        Ok(())
    })
}

/// Runs approval flows at `rate` per second under `plan`.
pub async fn run(target: &Target, rate: f64, plan: &Plan) -> Result<Summary, LoadError> {
    let scenario = Arc::new(Approval {
        target: target.clone(),
        rate,
        users: plan.users,
        recorder: Recorder::new(&[])?,
    });
    attack::run(
        "approval",
        &target.endpoints.operator,
        plan,
        transaction(scenario.clone(), step),
    )
    .await?;
    Ok(scenario.recorder.summary())
}
