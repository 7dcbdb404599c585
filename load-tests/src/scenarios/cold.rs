//! Cold verification: every request carries a token no verifier has seen
//! (so both the token's and the proof's ES256 signatures are checked),
//! with a fresh proof. The tokens are issued before the run (issuance is
//! measured on its own), spread over every plain grant and agent.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::Target;
use super::warm::{Bound, Prepared, planned};
use crate::LoadError;
use crate::attack::Plan;
use crate::fixtures::GrantKind;
use crate::issue;
use crate::recorder::Summary;

/// Concurrent token requests while preparing.
const ISSUERS: usize = 16;

/// `count` fresh tokens over the plain grants.
pub async fn fresh_tokens(target: &Target, count: usize) -> Result<Vec<Bound>, LoadError> {
    let grants = Arc::new(target.population.of_kind(GrantKind::Plain));
    if grants.is_empty() {
        return Err(LoadError::Fixtures("no plain grant".into()));
    }
    let mut tasks = JoinSet::new();
    for worker in 0..ISSUERS {
        let (target, grants) = (target.clone(), grants.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            for i in (worker..count).step_by(ISSUERS) {
                let grant = &grants[i % grants.len()];
                let key = target.population.agents[grant.agent].client.key().clone();
                let token = issue::issue(
                    &target.http,
                    &target.endpoints.operator,
                    &key,
                    &grant.reference,
                )
                .await?;
                out.push(Bound {
                    key,
                    token,
                    audience: grant.audience.clone(),
                });
            }
            Ok::<_, String>(out)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        let part = done
            .map_err(|e| LoadError::Fixtures(format!("an issuing task: {e}")))?
            .map_err(|e| LoadError::Fixtures(format!("issuing cold tokens: {e}")))?;
        all.extend(part);
    }
    Ok(all)
}

/// Runs cold verification at `rate` per second under `plan`.
pub async fn run(target: &Target, rate: f64, plan: &Plan) -> Result<Summary, LoadError> {
    let count = planned(rate, plan);
    let bound = fresh_tokens(target, count).await?;
    Prepared::new(target, bound, count, rate, plan.users)?
        .run("cold", plan)
        .await
}
