//! Experiment 1: Redis killed (SIGKILL, its data gone) under load, then
//! started again, empty.
//!
//! Expected: both verifiers deny `state_unavailable` at once (within the
//! 50 ms state timeout: a refused connection is faster still) and never
//! allow while Redis is down; after it is back they reconnect by themselves
//! (no restart). The operator's leader notices the loss (its sentinel key
//! is gone) and re-publishes every grant within seconds; each re-published
//! grant refuses the proofs made before it (`dpop_stale`), so a proof used
//! before the crash is never accepted again. A revoked grant is never allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use agentauth_chaos::load::{Outcome, verify};
use agentauth_chaos::report::{allowed, count, denied, first, maybe_secs, settled};
use agentauth_chaos::{Options, Report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() {
    let mut system = support::start(Options::default()).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let load = support::load(&system);
    support::wait(3.0).await;

    // A proof used once before the crash, to be replayed after it.
    let used = system.verify_body(0, "catalog/used-before-the-crash", 0);
    let first_use = verify(&http, &system.verifiers[0].url(), &used).await;
    // The last agent's grant is revoked before the fault.
    let revoked_agent = system.agents.len() - 1;
    let revoked = load.mark("grant revoked");
    system
        .revoke(&system.agents[revoked_agent].grant.clone())
        .await
        .unwrap();
    support::wait(2.0).await;

    let killed = load.mark("redis killed");
    system.redis.kill();
    support::wait(5.0).await;
    let restarted_at = load.now();
    system.redis.restart().await.unwrap();
    let restarted = load.mark("redis restarted (empty)");
    // The operator's leader notices the loss by its sentinel and re-publishes
    // every grant (each with its `since`); no handover, no restart.
    support::wait(10.0).await;
    let replay = verify(&http, &system.verifiers[1].url(), &used).await;
    let record = load.stop().await;
    let end = record.samples.iter().map(|s| s.sent).max().unwrap();

    let not_revoked = |s: &agentauth_chaos::Sample| s.agent != revoked_agent;
    let outage = |keep: &dyn Fn(&agentauth_chaos::Sample) -> bool| {
        count(&record, killed, restarted_at, keep)
    };
    let outage_total = outage(&|_| true);
    let outage_allows = outage(&allowed);
    let outage_unavailable = outage(&denied("state_unavailable"));
    // A verifier may still hold the revoked grant's revocation in its cache
    // for the instant before it notices the lost subscription: refusing that
    // grant `grant_revoked` without Redis is failing closed, not a defect.
    let outage_cached_revocations =
        outage(&|s| s.agent == revoked_agent && denied("grant_revoked")(s));
    let mut p99 = record
        .samples
        .iter()
        .filter(|s| s.sent >= killed && s.sent < restarted_at && denied("state_unavailable")(s))
        .map(|s| s.latency)
        .collect::<Vec<_>>();
    p99.sort();
    let p99 = p99.get(p99.len() * 99 / 100).copied().unwrap_or_default();
    let detect: Vec<_> = (0..2)
        .map(|v| {
            first(&record, killed, |s| {
                s.target == v && denied("state_unavailable")(s)
            })
        })
        .collect();
    let reconnect: Vec<_> = (0..2)
        .map(|v| {
            first(&record, restarted, |s| {
                s.target == v
                    && !matches!(&s.outcome, Outcome::Deny(r) if r == "state_unavailable")
                    && !matches!(s.outcome, Outcome::Error(_))
            })
        })
        .collect();
    // Recovery: the first allow of a valid grant after Redis is back, per
    // verifier, and from when every answer of a valid grant is an allow.
    let first_allow: Vec<_> = (0..2)
        .map(|v| {
            first(&record, restarted, |s| {
                s.target == v && not_revoked(s) && allowed(s)
            })
        })
        .collect();
    let recovered = settled(&record, restarted, end, |s| !not_revoked(s) || allowed(s));
    let unknown_after_restart = count(&record, restarted, end, denied("grant_unknown"));
    let stale_after_restart = count(&record, restarted, end, denied("dpop_stale"));
    let revoked_allows = count(&record, revoked + Duration::from_secs(1), end, |s| {
        s.agent == revoked_agent && allowed(s)
    });

    let mut report = Report::new("redis_kill", "Redis killed and restarted");
    report
        .injected("SIGKILL of redis-server (no persistence: its data is lost) for 5 s, then a fresh, empty redis-server on the same port")
        .expected("`state_unavailable` at once and never an allow while Redis is down; reconnection without a restart; \
                   the operator re-publishes every grant within seconds, without a handover; \
                   a revoked grant and a proof used before the crash are never allowed")
        .load(&record, system.agents.len())
        .figure("time to detect (first `state_unavailable` after the kill), verifier-a / verifier-b",
            format!("{} / {}", maybe_secs(detect[0]), maybe_secs(detect[1])))
        .figure("outage: requests / allows / `state_unavailable` / `grant_revoked` of the revoked grant (from the cache)",
            format!("{outage_total} / {outage_allows} / {outage_unavailable} / {outage_cached_revocations}"))
        .figure("p99 latency of the `state_unavailable` answers", format!("{} ms", p99.as_millis()))
        .figure("time to reconnect after Redis is back (first decision that is not `state_unavailable`), verifier-a / verifier-b",
            format!("{} / {}", maybe_secs(reconnect[0]), maybe_secs(reconnect[1])))
        .figure("time to the first allow after Redis is back (the operator re-published the grants), verifier-a / verifier-b",
            format!("{} / {}", maybe_secs(first_allow[0]), maybe_secs(first_allow[1])))
        .figure("time until every answer of a valid grant is an allow, after Redis is back", maybe_secs(recovered))
        .figure("`grant_unknown` / `dpop_stale` answers after Redis is back",
            format!("{unknown_after_restart} / {stale_after_restart}"))
        .figure("allows of the revoked grant more than 1 s after its revocation", revoked_allows.to_string())
        .figure("the proof used before the crash: first use / replay on verifier-b after recovery",
            format!("{} / {}", first_use.label(), replay.label()))
        .check("no allow while Redis was down", outage_allows == 0)
        .check("every answer while Redis was down is `state_unavailable`, or `grant_revoked` for the revoked grant",
            outage_unavailable + outage_cached_revocations == outage_total && outage_unavailable > 0)
        .check("detected within the state timeout (p99 of the denials ≤ 50 ms + 100 ms scheduling slack)", p99 <= Duration::from_millis(150))
        .check("both verifiers reconnect without a restart within 5 s", reconnect.iter().all(|r| r.is_some_and(|d| d <= Duration::from_secs(5))))
        .check("allows recover after Redis is back without any operator action, within 5 s (sentinel check every 2 s + re-publication)",
            first_allow.iter().all(|r| r.is_some_and(|d| d <= Duration::from_secs(5))))
        .check("every answer of a valid grant is an allow within 8 s of Redis being back", recovered.is_some_and(|d| d <= Duration::from_secs(8)))
        .check("the revoked grant is never allowed", revoked_allows == 0)
        .check("the proof was allowed at its first use", first_use == Outcome::Allow)
        .check("the proof used before the crash is refused `dpop_stale` when replayed after it",
            replay == Outcome::Deny("dpop_stale".into()));
    support::finish(&report, &system, &record);
}
