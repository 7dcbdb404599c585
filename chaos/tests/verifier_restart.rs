//! Experiment 5: one verifier ("node" b) killed with SIGKILL under load and
//! started again.
//!
//! Expected: verifier-a is untouched; verifier-b refuses connections while
//! down, then answers as before: a proof used on verifier-a is refused on
//! the restarted verifier-b (`dpop_replayed`: the jti is in Redis, not in
//! the process), and a grant revoked before the restart stays denied
//! (`grant_revoked`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use agentauth_chaos::load::{Outcome, verify};
use agentauth_chaos::report::{
    allowed, allowed_or_starved, count, denied, first, maybe_secs, secs, starved_share_ok,
};
use agentauth_chaos::{Options, Report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_restarted_under_load() {
    let mut system = support::start(Options::default()).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let load = support::load(&system);
    support::wait(3.0).await;
    let revoked_agent = system.agents.len() - 1;
    let revoked = load.mark("grant revoked");
    system
        .revoke(&system.agents[revoked_agent].grant.clone())
        .await
        .unwrap();
    support::wait(2.0).await;

    // Proofs used on verifier-a before and during verifier-b's absence.
    let before = system.verify_body(0, "catalog/used-on-a-before", 0);
    let before_use = verify(&http, &system.verifiers[0].url(), &before).await;
    let killed = load.mark("verifier-b killed (SIGKILL)");
    system.verifiers[1].kill();
    let during = system.verify_body(1, "catalog/used-on-a-while-b-was-down", 0);
    let during_use = verify(&http, &system.verifiers[0].url(), &during).await;
    support::wait(2.0).await;
    system.verifiers[1].restart().unwrap();
    let started = load.mark("verifier-b started again");
    let ready = system.verifiers[1]
        .wait_ready(Duration::from_secs(20))
        .await
        .unwrap();
    let ready_at = load.mark("verifier-b ready");
    let replay_before = verify(&http, &system.verifiers[1].url(), &before).await;
    let replay_during = verify(&http, &system.verifiers[1].url(), &during).await;
    let revoked_on_b = verify(
        &http,
        &system.verifiers[1].url(),
        &system.verify_body(revoked_agent, "catalog/after-restart", 0),
    )
    .await;
    support::wait(5.0).await;
    let record = load.stop().await;
    let end = record.samples.iter().map(|s| s.sent).max().unwrap();

    let a_not_allowed = count(&record, Duration::ZERO, end, |s| {
        s.target == 0 && s.agent != revoked_agent && s.sent > revoked && !allowed_or_starved(s)
    });
    let total = count(&record, Duration::ZERO, end, |_| true);
    let starved = count(&record, Duration::ZERO, end, denied("state_unavailable"));
    let a_total = count(&record, killed, ready_at, |s| s.target == 0);
    let b_errors = count(&record, killed, ready_at, |s| {
        s.target == 1 && matches!(s.outcome, Outcome::Error(_))
    });
    let first_allow_b = first(&record, started, |s| s.target == 1 && allowed(s));
    let b_after_bad = count(&record, ready_at, end, |s| {
        s.target == 1 && s.agent != revoked_agent && !allowed_or_starved(s)
    });
    let revoked_allows = count(&record, revoked + Duration::from_secs(1), end, |s| {
        s.agent == revoked_agent && allowed(s)
    });
    let revoked_b_after = count(&record, ready_at, end, |s| {
        s.target == 1 && s.agent == revoked_agent
    });

    let mut report = Report::new("verifier_restart", "A verifier restarted under load");
    report
        .injected("SIGKILL of verifier-b, 2 s down, then the same command again (as a DaemonSet restarts its pod)")
        .expected("verifier-a unaffected; verifier-b refuses connections while down, then allows again; a proof used on verifier-a is `dpop_replayed` on the restarted verifier-b; a revoked grant stays `grant_revoked`")
        .load(&record, system.agents.len())
        .figure("verifier-b: start to ready", secs(ready))
        .figure("verifier-b: restart command to first allow under load", maybe_secs(first_allow_b))
        .figure("verifier-a: requests while b was down / non-allows for valid grants over the whole run", format!("{a_total} / {a_not_allowed}"))
        .figure("verifier-b: failed connections while down", b_errors.to_string())
        .figure("proof used on a before the kill, replayed on the restarted b", format!("{} then {}", before_use.label(), replay_before.label()))
        .figure("proof used on a while b was down, replayed on the restarted b", format!("{} then {}", during_use.label(), replay_during.label()))
        .figure("revoked grant on the restarted b (direct request / requests under load)", format!("{} / {revoked_b_after} requests, 0 allowed expected", revoked_on_b.label()))
        .figure("`state_unavailable` answers over the whole run (the 50 ms deadline, CPU)", starved.to_string())
        .check("verifier-a allowed every valid request throughout (bar a CPU-starved `state_unavailable`)", a_not_allowed == 0 && a_total > 0)
        .check("verifier-b allows again after its restart", first_allow_b.is_some())
        .check("verifier-b answers every valid request with an allow once ready (bar a CPU-starved `state_unavailable`)", b_after_bad == 0)
        .check("`state_unavailable` (the 50 ms deadline on 2 shared cores) ≤ 1 % of the run", starved_share_ok(starved, total))
        .check("proofs used on verifier-a are `dpop_replayed` on the restarted verifier-b",
            before_use == Outcome::Allow && during_use == Outcome::Allow
                && replay_before == Outcome::Deny("dpop_replayed".into())
                && replay_during == Outcome::Deny("dpop_replayed".into()))
        .check("the revoked grant is `grant_revoked` on the restarted verifier-b", revoked_on_b == Outcome::Deny("grant_revoked".into()))
        .check("the revoked grant is never allowed", revoked_allows == 0);
    support::finish(&report, &system, &record);
}
