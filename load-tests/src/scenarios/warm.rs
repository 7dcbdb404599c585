//! Warm verification: a few tokens, each verified once by both verifiers
//! before the run (so its signature check and grant state are cached), then
//! every request a fresh DPoP proof for one of them. The proofs are made
//! before the run on every core (ES256 signing is the generator's largest
//! cost) and are used within their 60 s age window; past the prepared ones
//! a user makes its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentauth::AgentKey;
use goose::prelude::GooseUser;

use super::{Step, Target, resource_in_grant, transaction};
use crate::LoadError;
use crate::attack::{self, Plan};
use crate::fixtures::GrantKind;
use crate::issue;
use crate::pace::next_turn;
use crate::recorder::{Recorder, Summary};
use crate::wire::{self, Action, Outcome};

/// One token and what signs its proofs.
#[derive(Clone)]
pub struct Bound {
    /// The agent's key.
    pub key: AgentKey,
    /// The access token.
    pub token: String,
    /// Its audience.
    pub audience: String,
}

impl Bound {
    /// A verification body for request `n`, with a fresh proof.
    pub fn body(&self, n: u64) -> Result<String, String> {
        let action = Action::Read(resource_in_grant(&self.audience, n));
        wire::verify_body(&self.key, &self.token, &self.audience, &action)
    }
}

/// Prepared requests, handed out once each.
pub struct Prepared {
    target: Target,
    bound: Vec<Bound>,
    bodies: Vec<String>,
    next: AtomicUsize,
    rate: f64,
    users: usize,
    recorder: Recorder,
}

impl Prepared {
    /// Bodies for every bound token in turn, `count` of them, made on
    /// every core.
    pub fn new(
        target: &Target,
        bound: Vec<Bound>,
        count: usize,
        rate: f64,
        users: usize,
    ) -> Result<Self, LoadError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = count.div_ceil(threads).max(1);
        let bodies = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let bound = &bound;
                    scope.spawn(move || {
                        (t * chunk..((t + 1) * chunk).min(count))
                            .map(|i| bound[i % bound.len()].body(i as u64))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(count);
            for handle in handles {
                let part = handle
                    .join()
                    .map_err(|_| LoadError::Fixtures("a proof thread panicked".into()))?
                    .map_err(LoadError::Fixtures)?;
                all.extend(part);
            }
            Ok::<_, LoadError>(all)
        })?;
        Ok(Prepared {
            target: target.clone(),
            bound,
            bodies,
            next: AtomicUsize::new(0),
            rate,
            users,
            recorder: Recorder::new(&[])?,
        })
    }

    /// Runs the prepared requests under `plan` as scenario `name`.
    pub async fn run(self, name: &str, plan: &Plan) -> Result<Summary, LoadError> {
        let host = self.target.endpoints.operator.clone();
        let me = Arc::new(self);
        attack::run(name, &host, plan, transaction(me.clone(), step)).await?;
        Ok(me.recorder.summary())
    }
}

fn step(p: Arc<Prepared>, user: &mut GooseUser) -> Step<'_> {
    Box::pin(async move {
        let turn = next_turn(user, p.rate, p.users).await;
        let i = p.next.fetch_add(1, Ordering::Relaxed);
        let body = match p.bodies.get(i) {
            Some(body) => Ok(body.clone()),
            None => p.bound[i % p.bound.len()].body(i as u64),
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                p.recorder.record(
                    std::time::Instant::now(),
                    std::time::Duration::ZERO,
                    &Outcome::Error(format!("proof: {e}")),
                );
                return Ok(());
            }
        };
        let url = p.target.verifier_url(turn.user);
        let (answer, sent, latency) = attack::post(user, "verify", &url, &[], body).await;
        let outcome = match answer {
            Ok((status, bytes)) => wire::outcome(status, &bytes),
            Err(e) => Outcome::Error(e),
        };
        p.recorder.record(sent, latency, &outcome);
        Ok(())
    })
}

/// One token per plain grant, each verified once by every verifier.
pub async fn warm_tokens(target: &Target) -> Result<Vec<Bound>, LoadError> {
    let mut bound = Vec::new();
    for grant in target.population.of_kind(GrantKind::Plain) {
        let key = target.population.agents[grant.agent].client.key().clone();
        let token = issue::issue(
            &target.http,
            &target.endpoints.operator,
            &key,
            &grant.reference,
        )
        .await
        .map_err(LoadError::Fixtures)?;
        let b = Bound {
            key,
            token,
            audience: grant.audience.clone(),
        };
        for user in 0..target.endpoints.verifiers.len() {
            let body = b.body(0).map_err(LoadError::Fixtures)?;
            let answer = target
                .http
                .post(target.verifier_url(user))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| LoadError::Fixtures(format!("warming: {e}")))?;
            let status = answer.status().as_u16();
            let bytes = answer.bytes().await.unwrap_or_default();
            if wire::outcome(status, &bytes) != Outcome::Allow {
                return Err(LoadError::Fixtures(format!(
                    "warming {}: HTTP {status} {}",
                    grant.reference,
                    String::from_utf8_lossy(&bytes)
                )));
            }
        }
        bound.push(b);
    }
    Ok(bound)
}

/// Runs warm verification at `rate` per second under `plan`.
pub async fn run(target: &Target, rate: f64, plan: &Plan) -> Result<Summary, LoadError> {
    let bound = warm_tokens(target).await?;
    let count = planned(rate, plan);
    Prepared::new(target, bound, count, rate, plan.users)?
        .run("warm", plan)
        .await
}

/// Requests a run at `rate` under `plan` needs, with a margin.
pub fn planned(rate: f64, plan: &Plan) -> usize {
    (rate * (plan.run_time.as_secs_f64() + 2.0) * 1.05) as usize + plan.users
}
