//! Experiment 4: the kube-apiserver stopped (SIGKILL; etcd keeps running)
//! for 10 s under load, then started again on the same port.
//!
//! Expected: verifications go on from Redis (allows continue); the agent
//! API still issues tokens from the operator's caches; a new grant request
//! fails with a clear error while the apiserver is gone, and succeeds and
//! is approved once it is back; existing grants stay Approved and the audit
//! chains verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use agentauth_chaos::audit;
use agentauth_chaos::report::{
    allowed, allowed_or_starved, count, denied, maybe_secs, starved_share_ok,
};
use agentauth_chaos::system::AUDIENCE;
use agentauth_chaos::{Options, Report};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_stopped() {
    let mut system = support::start(Options {
        agents: 2,
        ..Options::default()
    })
    .await;
    let load = support::load(&system);
    support::wait(3.0).await;

    let stopped = load.mark("kube-apiserver stopped");
    tokio::task::block_in_place(|| system.control_plane.stop_apiserver());
    support::wait(1.0).await;
    let request_started = Instant::now();
    let during = tokio::time::timeout(
        Duration::from_secs(8),
        system.request_grant(&system.agents[0].client),
    )
    .await;
    let request_took = request_started.elapsed();
    let request_error = match &during {
        Ok(Ok(name)) => format!("accepted?! {name}"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 8 s".to_owned(),
    };
    system.agents[1].client.invalidate_token(AUDIENCE).await;
    let token_during = system.agents[1].client.get_token(AUDIENCE).await;
    let remaining = Duration::from_secs(10).saturating_sub(load.now() - stopped);
    tokio::time::sleep(remaining).await;

    let restart_started = Instant::now();
    system.control_plane.start_apiserver().await.unwrap();
    let apiserver_ready = restart_started.elapsed();
    let back = load.mark("kube-apiserver back");
    // A new grant after the outage: requested (retried until the operator's
    // client reconnects), approved, Approved.
    let after_started = Instant::now();
    let mut after = None;
    let mut last_error = String::new();
    while after_started.elapsed() < Duration::from_secs(20) {
        match system.request_grant(&system.agents[0].client).await {
            Ok(name) => {
                after = Some(name);
                break;
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let request_ok_after = after.as_ref().map(|_| after_started.elapsed());
    let mut approved_after = None;
    if let Some(name) = &after {
        system.approve(name).await.unwrap();
        while after_started.elapsed() < Duration::from_secs(30) {
            if system.phase(name).await.as_deref() == Some("Approved") {
                approved_after = Some(after_started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut old_phases = Vec::new();
    for agent in &system.agents {
        old_phases.push(system.phase(&agent.grant).await.unwrap_or_default());
    }
    let leader = system.leader().await;
    support::wait(1.0).await;
    let record = load.stop().await;
    let end = record.samples.iter().map(|s| s.sent).max().unwrap();
    let outage_total = count(&record, stopped, back, |_| true);
    let outage_allows = count(&record, stopped, back, allowed);
    let outage_served = count(&record, stopped, back, allowed_or_starved);
    let not_allowed = count(&record, Duration::ZERO, end, |s| !allowed_or_starved(s));
    let total = count(&record, Duration::ZERO, end, |_| true);
    let starved = count(&record, Duration::ZERO, end, denied("state_unavailable"));
    let chains = audit::read_verified(&system.redis.url()).await;

    let mut report = Report::new("apiserver_stop", "kube-apiserver stopped");
    report
        .injected("SIGKILL of kube-apiserver (etcd keeps running) for 10 s, then the same apiserver started again on the same port (agentauth_testenv ControlPlane::stop_apiserver / start_apiserver)")
        .expected("verifications continue from Redis; tokens are still issued from the operator's caches; a new grant request fails with a clear error while the apiserver is gone and completes after it is back; nothing corrupts")
        .load(&record, system.agents.len())
        .figure("outage: verifications / allows", format!("{outage_total} / {outage_allows}"))
        .figure("verifications denied over the whole run: for another reason / `state_unavailable` (CPU)", format!("{not_allowed} / {starved}"))
        .figure("grant request during the outage", format!("refused after {} ms: {request_error}", request_took.as_millis()))
        .figure("token issued during the outage", match &token_during { Ok(_) => "yes".to_owned(), Err(e) => format!("no: {}", e.message()) })
        .figure("apiserver restart to ready", maybe_secs(Some(apiserver_ready)))
        .figure("apiserver back to a new grant request accepted", maybe_secs(request_ok_after))
        .figure("apiserver back to that grant Approved (after the passkey approval)", maybe_secs(approved_after))
        .figure("existing grants after the outage", old_phases.join(" / "))
        .figure("Lease holder after the outage", leader.clone().unwrap_or_else(|| "none".to_owned()))
        .figure("last error while waiting for the request to be accepted", if last_error.is_empty() { "-".to_owned() } else { last_error })
        .check("every verification allowed during the outage (bar a CPU-starved `state_unavailable`)", outage_served == outage_total && outage_total > 0)
        .check("no verification denied for another reason than `state_unavailable` over the whole run", not_allowed == 0)
        .check("`state_unavailable` (the 50 ms deadline on 2 shared cores) ≤ 1 % of the run", starved_share_ok(starved, total))
        .check("the grant request during the outage fails (no grant is half-made)", matches!(during, Ok(Err(_))))
        .check("a token is issued from the caches during the outage", token_during.is_ok())
        .check("a new grant is accepted and Approved within 20 s of the apiserver's return", approved_after.is_some_and(|d| d <= Duration::from_secs(20)))
        .check("existing grants stay Approved", old_phases.iter().all(|p| p == "Approved"))
        .check("a leader holds the Lease again", leader.is_some())
        .check("every audit chain verifies", chains.is_ok());
    support::finish(&report, &system, &record);
}
