//! Token issuance: `POST /v1/token` with a proof made for that request,
//! rotating over every plain grant (so over many agents). Each answer must
//! be `200` with an access token; anything else is an error.

use std::sync::Arc;

use agentauth::AgentKey;
use goose::prelude::GooseUser;

use super::{Step, Target, transaction};
use crate::LoadError;
use crate::attack::{self, Plan};
use crate::fixtures::GrantKind;
use crate::issue;
use crate::pace::next_turn;
use crate::recorder::{Recorder, Summary};
use crate::wire::Outcome;

struct Issuance {
    url: String,
    grants: Vec<(AgentKey, String)>,
    rate: f64,
    users: usize,
    recorder: Recorder,
}

fn step(s: Arc<Issuance>, user: &mut GooseUser) -> Step<'_> {
    Box::pin(async move {
        let turn = next_turn(user, s.rate, s.users).await;
        let (key, grant) = &s.grants[(turn.random % s.grants.len() as u64) as usize];
        let (proof, body) = match issue::token_request(key, &s.url, grant) {
            Ok(request) => request,
            Err(e) => {
                let now = std::time::Instant::now();
                s.recorder.record(
                    now,
                    std::time::Duration::ZERO,
                    &Outcome::Error(format!("proof: {e}")),
                );
                return Ok(());
            }
        };
        let (answer, sent, latency) =
            attack::post(user, "token", &s.url, &[("dpop", &proof)], body).await;
        let outcome = match answer {
            Ok((200, bytes)) if issue::access_token(&bytes).is_some() => Outcome::Allow,
            Ok((status, bytes)) => {
                let code = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                Outcome::Error(format!(
                    "http_{status}{}{code}",
                    if code.is_empty() { "" } else { ":" }
                ))
            }
            Err(e) => Outcome::Error(e),
        };
        s.recorder.record(sent, latency, &outcome);
        Ok(())
    })
}

/// Runs issuance at `rate` per second under `plan`.
pub async fn run(target: &Target, rate: f64, plan: &Plan) -> Result<Summary, LoadError> {
    let grants = target
        .population
        .of_kind(GrantKind::Plain)
        .into_iter()
        .map(|g| {
            (
                target.population.agents[g.agent].client.key().clone(),
                g.reference,
            )
        })
        .collect();
    let scenario = Arc::new(Issuance {
        url: issue::token_url(&target.endpoints.operator),
        grants,
        rate,
        users: plan.users,
        recorder: Recorder::new(&[])?,
    });
    attack::run(
        "issuance",
        &target.endpoints.operator,
        plan,
        transaction(scenario.clone(), step),
    )
    .await?;
    Ok(scenario.recorder.summary())
}
