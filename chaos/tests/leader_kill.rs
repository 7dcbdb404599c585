//! Experiment 3: the operator leader killed with SIGKILL (no Lease release)
//! while grants are being requested and approved.
//!
//! Expected: verifications go on untouched (the verifiers need no
//! operator); the standby serves the agent and approval APIs at once and
//! takes the Lease once it expires (within the Lease duration plus one retry
//! period); every grant requested or approved across the kill ends
//! `Approved` exactly once: one `grant.approved` audit event each, and every
//! producer's audit chain verifies with no gap or duplicate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use agentauth_chaos::audit;
use agentauth_chaos::report::{
    allowed_or_starved, count, denied, maybe_secs, secs, starved_share_ok,
};
use agentauth_chaos::system::AGENTS_NAMESPACE;
use agentauth_chaos::{Options, Report};
use agentauth_core::audit::kinds;

const LEASE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_leader_killed() {
    let mut system = support::start(Options {
        // The third agent's grant, approved at start, is the one whose token
        // the standby must issue while leaderless: the grant approved just
        // before the kill may still be Pending then (its transition is the
        // dead leader's), which is what that grant is there to test.
        agents: 3,
        lease_duration: LEASE,
        ..Options::default()
    })
    .await;
    assert_eq!(system.leader().await.as_deref(), Some("operator-a"));
    let load = support::load(&system);
    support::wait(3.0).await;

    // Before the kill: one grant approved and settled, one approved just before.
    let settled = system
        .request_grant(&system.agents[0].client)
        .await
        .unwrap();
    system.approve(&settled).await.unwrap();
    let just_before = system
        .request_grant(&system.agents[1].client)
        .await
        .unwrap();
    system.approve(&just_before).await.unwrap();
    let killed = load.mark("operator-a (leader) killed");
    let kill_time = Instant::now();
    system.operators[0].kill();

    // Leaderless: the standby serves the APIs; a grant is requested and approved.
    let requested_at = Instant::now();
    let during = system.request_grant(&system.agents[0].client).await;
    let request_latency = requested_at.elapsed();
    let during = during.unwrap();
    system.approve(&during).await.unwrap();
    system.agents[2]
        .client
        .invalidate_token(agentauth_chaos::system::AUDIENCE)
        .await;
    let token_during = system.agents[2]
        .client
        .get_token(agentauth_chaos::system::AUDIENCE)
        .await;

    // Takeover: operator-b holds the Lease.
    let takeover = loop {
        if system.leader().await.as_deref() == Some("operator-b") {
            break Some(kill_time.elapsed());
        }
        if kill_time.elapsed() > LEASE * 3 {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let led = load.mark("operator-b holds the Lease");
    let grants = [settled.clone(), just_before.clone(), during.clone()];
    let mut phases = Vec::new();
    let mut converged = None;
    let waiting = Instant::now();
    loop {
        phases.clear();
        for grant in &grants {
            phases.push(system.phase(grant).await.unwrap_or_default());
        }
        if phases.iter().all(|p| p == "Approved") {
            converged = Some(kill_time.elapsed());
            break;
        }
        if waiting.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    support::wait(2.0).await;
    let record = load.stop().await;
    let end = record.samples.iter().map(|s| s.sent).max().unwrap();

    let events = audit::read_verified(&system.redis.url()).await;
    let chains_ok = events.is_ok();
    let events = events.unwrap_or_default();
    let approved = audit::per_grant(&events, kinds::GRANT_APPROVED);
    let recorded = audit::per_grant(&events, kinds::APPROVAL_RECORDED);
    let created = audit::per_grant(&events, kinds::GRANT_CREATED);
    let name = |g: &str| format!("{AGENTS_NAMESPACE}/{g}");
    let once = |m: &std::collections::BTreeMap<String, usize>| {
        grants.iter().all(|g| m.get(&name(g)).copied() == Some(1))
    };
    let per = |m: &std::collections::BTreeMap<String, usize>| {
        grants
            .iter()
            .map(|g| m.get(&name(g)).copied().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let producers: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.producer.as_str()).collect();
    let not_allowed = count(&record, Duration::ZERO, end, |s| !allowed_or_starved(s));
    let total = count(&record, Duration::ZERO, end, |_| true);
    let starved = count(&record, Duration::ZERO, end, denied("state_unavailable"));

    let mut report = Report::new("leader_kill", "Operator leader killed with SIGKILL");
    report
        .injected("SIGKILL of operator-a, the Lease holder (no release), with --lease-duration=15s (the default); operator-b is the standby; the front (a TCP failover, like a Service) sends the agent and approval APIs to operator-b once operator-a refuses connections")
        .expected("verifications unaffected; the standby takes the Lease within the Lease duration plus a retry period; grants requested/approved across the kill end Approved exactly once; the audit chains verify")
        .load(&record, system.agents.len())
        .figure("takeover time (kill to operator-b holding the Lease)", maybe_secs(takeover))
        .figure("kill to all three grants Approved", maybe_secs(converged))
        .figure("grant request to the standby right after the kill: latency", secs(request_latency))
        .figure("token issued by the standby while leaderless", match &token_during { Ok(_) => "yes".to_owned(), Err(e) => format!("no: {}", e.message()) })
        .figure("grants (settled before / approved just before / requested+approved during): final phases", phases.join(" / "))
        .figure("audit `grant.created` per grant", per(&created))
        .figure("audit `approval.recorded` per grant", per(&recorded))
        .figure("audit `grant.approved` per grant", per(&approved))
        .figure("audit events / producers", format!("{} / {}", events.len(), producers.iter().copied().collect::<Vec<_>>().join(", ")))
        .figure("verifications denied over the whole run: for another reason / `state_unavailable` (CPU)", format!("{not_allowed} / {starved}"))
        // The standby tries every Lease duration / 3 (operator/src/leader.rs),
        // and the Lease lasts its duration from the last renewal before the
        // kill: the takeover may come up to Lease + Lease / 3 after the kill.
        .check("operator-b takes the Lease within the Lease duration + one retry period (Lease / 3) + 2 s", takeover.is_some_and(|t| t <= LEASE + LEASE / 3 + Duration::from_secs(2)))
        .check("every grant ends Approved", phases.iter().all(|p| p == "Approved"))
        .check("exactly one `approval.recorded` audit event per grant", once(&recorded))
        .check("no grant has two `grant.approved` audit events (none doubled)", grants.iter().all(|g| approved.get(&name(g)).copied().unwrap_or(0) <= 1))
        .check("every grant has its `grant.approved` audit event (none lost)", once(&approved))
        .check("exactly one `grant.created` audit event per grant", once(&created))
        .check("every producer's audit chain verifies (no gap, duplicate or fork)", chains_ok)
        .check("the standby issued a token while leaderless", token_during.is_ok())
        .check("no verification denied for another reason than `state_unavailable` throughout", not_allowed == 0)
        .check("`state_unavailable` (the 50 ms deadline on 2 shared cores) ≤ 1 % of the run", starved_share_ok(starved, total));
    let _ = (killed, led);
    support::finish(&report, &system, &record);
}
