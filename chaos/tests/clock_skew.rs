//! Experiment 6: clock skew on one verifier.
//!
//! The verifier has no clock knob (and the product binary holds no test
//! code, DESIGN §13), and no libfaketime is installed here, so the skew is
//! applied the other way round, which a verifier cannot tell apart: the
//! proofs sent to verifier-b carry an `iat` shifted by the opposite of its
//! skew (verifier-b 90 s ahead ⇔ every proof it sees is 90 s older).
//! Limits: the access token's `iat`/`nbf`/`exp` are not shifted (tokens live
//! 5 min, so a 90 s skew leaves them valid either way), and Redis-side
//! arithmetic is untouched (it uses Redis's clock: the jti's `SET NX PX`
//! expiry and GCRA's `TIME`). On a cluster, `chaos-mesh/verifier-clock-skew.yaml`
//! skews the real clock of one verifier pod.
//!
//! Expected: within the accepted window (60 s proof age, 60 s skew) the
//! skewed verifier allows like the other; beyond it, it refuses every proof
//! with a DPoP reason (and never errs the other way); verifier-a is
//! unaffected; a proof used on verifier-a is `dpop_replayed` on the skewed
//! verifier-b, since the jti lives in Redis with a relative expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use agentauth_chaos::load::{Outcome, verify};
use agentauth_chaos::report::{
    allowed, allowed_or_starved, count, denied, maybe_secs, settled, starved_share_ok,
};
use agentauth_chaos::{Options, Report, Sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_on_one_verifier() {
    let system = support::start(Options::default()).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let load = support::load(&system);
    support::wait(3.0).await;

    load.set_skew(1, -30);
    let ahead_30 = load.mark("verifier-b clock +30 s");
    let replayed = system.verify_body(0, "catalog/used-on-a", -30);
    let first_use = verify(&http, &system.verifiers[0].url(), &replayed).await;
    let replay = verify(&http, &system.verifiers[1].url(), &replayed).await;
    support::wait(4.0).await;
    load.set_skew(1, -90);
    let ahead_90 = load.mark("verifier-b clock +90 s");
    support::wait(4.0).await;
    load.set_skew(1, 90);
    let behind_90 = load.mark("verifier-b clock -90 s");
    support::wait(4.0).await;
    load.set_skew(1, 0);
    let fixed = load.mark("verifier-b clock right again");
    support::wait(3.0).await;
    let record = load.stop().await;
    let end = record.samples.iter().map(|s| s.sent).max().unwrap();

    let b_in = |from, to, keep: &dyn Fn(&Sample) -> bool| {
        count(&record, from, to, |s| s.target == 1 && keep(s))
    };
    let reasons = |from: Duration, to: Duration| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for s in record
            .samples
            .iter()
            .filter(|s| s.target == 1 && s.sent >= from && s.sent < to)
        {
            *m.entry(s.outcome.label()).or_default() += 1;
        }
        m
    };
    let a_not_allowed = count(&record, Duration::ZERO, end, |s| {
        s.target == 0 && !allowed_or_starved(s)
    });
    let a_total = count(&record, Duration::ZERO, end, |s| s.target == 0);
    let a_starved = count(&record, Duration::ZERO, end, |s| {
        s.target == 0 && denied("state_unavailable")(s)
    });
    let b30_total = b_in(ahead_30, ahead_90, &|_| true);
    let b30_allowed = b_in(ahead_30, ahead_90, &allowed_or_starved);
    // A request sent just before a change may carry the old skew: skip 100 ms.
    let slack = Duration::from_millis(100);
    let b_ahead = reasons(ahead_90 + slack, behind_90);
    let b_behind = reasons(behind_90 + slack, fixed);
    let b_ahead_allowed = b_in(ahead_90 + slack, behind_90, &allowed);
    let b_behind_allowed = b_in(behind_90 + slack, fixed, &allowed);
    let dpop_reason =
        |m: &BTreeMap<String, usize>| !m.is_empty() && m.keys().all(|k| k.starts_with("dpop_"));
    let recovered = settled(&record, fixed, end, |s| s.target != 1 || allowed(s));

    let mut report = Report::new("clock_skew", "Clock skew on one verifier");
    report
        .injected("verifier-b's clock skewed +30 s, +90 s, −90 s, then right again, 4 s each (mirrored into the `iat` of the proofs sent to it; see the notes)")
        .expected("within the 60 s window the skewed verifier allows; beyond it, it refuses with a DPoP reason (`dpop_*`), never allows; verifier-a unaffected; replay refused across nodes whatever the skew (the jti expiry is relative, on Redis's clock)")
        .load(&record, system.agents.len())
        .figure("verifier-b at +30 s: allows / requests", format!("{b30_allowed} / {b30_total}"))
        .figure("verifier-b at +90 s: answers", format!("{b_ahead:?}"))
        .figure("verifier-b at −90 s: answers", format!("{b_behind:?}"))
        .figure("verifier-a: denials for another reason / `state_unavailable` (CPU) over the whole run", format!("{a_not_allowed} / {a_starved}"))
        .figure("a proof used on verifier-a, replayed on verifier-b (+30 s)", format!("{} then {}", first_use.label(), replay.label()))
        .figure("time for verifier-b to allow everything once its clock is right", maybe_secs(recovered))
        .check("verifier-a allows everything throughout (bar a CPU-starved `state_unavailable`)", a_not_allowed == 0)
        .check("verifier-a: `state_unavailable` (the 50 ms deadline on 2 shared cores) ≤ 1 %", starved_share_ok(a_starved, a_total))
        .check("verifier-b at +30 s (inside the window) allows everything", b30_allowed == b30_total && b30_total > 0)
        .check("verifier-b at +90 s refuses every proof with a `dpop_*` reason", b_ahead_allowed == 0 && dpop_reason(&b_ahead))
        .check("verifier-b at −90 s refuses every proof with a `dpop_*` reason", b_behind_allowed == 0 && dpop_reason(&b_behind))
        .check("the replayed proof is `dpop_replayed` on the skewed verifier", first_use == Outcome::Allow && replay == Outcome::Deny("dpop_replayed".into()))
        .check("verifier-b allows again at once when its clock is right", recovered.is_some_and(|d| d <= Duration::from_secs(1)))
        .note("The skew is mirrored into the proofs' `iat`: the verifier compares `iat` with its own clock, so a verifier s ahead and a proof s old are the same case to it. The tokens' times are not shifted (5 min tokens stay valid at ±90 s).")
        .note("Redis-side times do not depend on the verifier's clock: the jti record's expiry is `SET NX PX <window>` (relative), GCRA reads Redis `TIME`. The daily transaction sum's key is proposed from the verifier's UTC day but the script checks it against Redis's day and the call is retried with Redis's (state/src/redis/script.rs, `WrongDay`), so a verifier skewed across midnight still adds to the right day.");
    support::finish(&report, &system, &record);
}
