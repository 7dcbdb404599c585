//! Experiment 2: Redis slowed down. Every Redis answer to the verifiers is
//! held 200 ms by a TCP proxy (`agentauth_testenv::LatencyProxy`), four
//! times the hot path's 50 ms state timeout, for 5 s; then the delay is
//! removed.
//!
//! Expected: fail closed, fast: every verification while Redis is slow is
//! denied `state_unavailable` within the state timeout (not after 200 ms);
//! allows return by themselves once answers are prompt again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use agentauth_chaos::load::{Outcome, verify};
use agentauth_chaos::report::{allowed, count, denied, first, maybe_secs, settled};
use agentauth_chaos::{Options, Report, Sample};

const DELAY: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slowed_beyond_the_state_timeout() {
    let system = support::start(Options {
        redis_proxy: true,
        ..Options::default()
    })
    .await;
    let proxy = system.redis_proxy.as_ref().unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let load = support::load(&system);
    support::wait(4.0).await;

    proxy.set_reply_delay(DELAY);
    let slowed = load.mark("redis answers held 200 ms");
    // A proof whose one use is answered too late: denied, and not usable later.
    let late = system.verify_body(0, "catalog/answered-too-late", 0);
    let late_answer = verify(&http, &system.verifiers[0].url(), &late).await;
    support::wait(5.0).await;
    let restored_at = load.now();
    proxy.set_reply_delay(Duration::ZERO);
    let restored = load.mark("delay removed");
    support::wait(6.0).await;
    let late_retry = verify(&http, &system.verifiers[1].url(), &late).await;
    let record = load.stop().await;
    let end = record.samples.iter().map(|s| s.sent).max().unwrap();

    let during = |keep: &dyn Fn(&Sample) -> bool| count(&record, slowed, restored_at, keep);
    let total = during(&|_| true);
    let allows = during(&allowed);
    let unavailable = during(&denied("state_unavailable"));
    let mut latencies: Vec<Duration> = record
        .samples
        .iter()
        .filter(|s| s.sent >= slowed && s.sent < restored_at)
        .map(|s| s.latency)
        .collect();
    latencies.sort();
    let p50 = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    let detect: Vec<_> = (0..2)
        .map(|v| {
            first(&record, slowed, |s| {
                s.target == v && denied("state_unavailable")(s)
            })
        })
        .collect();
    let recovered: Vec<_> = (0..2)
        .map(|v| settled(&record, restored, end, |s| s.target != v || allowed(s)))
        .collect();
    let baseline_allows = count(&record, Duration::ZERO, slowed, allowed);
    let baseline_total = count(&record, Duration::ZERO, slowed, |_| true);

    let mut report = Report::new("redis_slow", "Redis slowed beyond the state timeout");
    report
        .injected("every Redis answer to both verifiers held 200 ms by agentauth_testenv::LatencyProxy (requests pass at once) for 5 s; the verifiers' --state-timeout is 50 ms (the default)")
        .expected("every verification while Redis is slow denied `state_unavailable` within ~50 ms (fail closed, fast); allows return without a restart when the delay goes")
        .load(&record, system.agents.len())
        .figure("baseline: allows / requests", format!("{baseline_allows} / {baseline_total}"))
        .figure("slow phase: requests / allows / `state_unavailable`", format!("{total} / {allows} / {unavailable}"))
        .figure("slow phase latency p50 / p99", format!("{} ms / {} ms", p50.as_millis(), p99.as_millis()))
        .figure("time to detect (first `state_unavailable`), verifier-a / verifier-b",
            format!("{} / {}", maybe_secs(detect[0]), maybe_secs(detect[1])))
        .figure("time to recover (from the delay's removal until every answer is an allow), verifier-a / verifier-b",
            format!("{} / {}", maybe_secs(recovered[0]), maybe_secs(recovered[1])))
        .figure("a proof first sent while Redis was slow: answer / the same proof again after recovery",
            format!("{} / {}", late_answer.label(), late_retry.label()))
        .check("the baseline allows ≥ 99 % (a 50 ms deadline on 2 shared cores trips now and then)", baseline_total > 0 && baseline_allows * 100 >= baseline_total * 99)
        .check("no allow while Redis is slow", allows == 0)
        .check("every answer while Redis is slow is `state_unavailable`", unavailable == total && total > 0)
        .check("denials come within the state timeout (p99 ≤ 50 ms + 100 ms slack), not after the 200 ms delay", p99 <= Duration::from_millis(150))
        .check("both verifiers allow again within 3 s of the delay's removal", recovered.iter().all(|r| r.is_some_and(|d| d <= Duration::from_secs(3))))
        .check("the proof whose first use timed out is not accepted later", late_answer != Outcome::Allow && late_retry != Outcome::Allow);
    support::finish(&report, &system, &record);
}
