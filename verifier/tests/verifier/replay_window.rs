//! The `jti` replay TTL against the proof acceptance window, with the clock
//! injected so the boundary instants are exact (issue 12 item 7).

use std::sync::Arc;
use std::time::Duration;

use agentauth_state::{InProcessState, ManualClock, SharedState};
use serde_json::json;

use crate::support::*;

/// Threat: replay at the window's edge — the verifier forgot a proof's `jti`
/// one second before it stopped accepting the proof, so the same proof
/// could be spent twice.
///
/// The proof's `iat` is at the future edge (`now + skew`) and it is first
/// used at the earliest instant it is accepted; the clock then steps in
/// 500 ms to the first instant the proof is stale. At every instant in
/// between, the replay is refused with `dpop_replayed`. The old TTL
/// (`max_age + skew` = 120 s) let it through at 120.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_refused_at_every_instant_the_proof_is_accepted() {
    let start_us = 1_800_000_000_000_000u64;
    let clock = Arc::new(ManualClock::new(start_us));
    let fx = Fixture::with_clock(clock.clone()).await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::with_clock(clock.clone()));
    let v = start(&fx, state.clone()).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    // Default window: 60 s age, 60 s skew.
    let iat = fx.now() + 60;
    let proof = fx.proof_with(&fx.agent, &token, "POST", URL, iat);
    let mut body = fx.body(&token, read("orders/1"));
    body["dpop"] = json!(proof);
    assert_eq!(v.reason(&body).await, "allowed");

    let mut elapsed_ms = 0u64;
    loop {
        clock.advance(Duration::from_millis(500));
        elapsed_ms += 500;
        let got = v.reason(&body).await;
        if got == "dpop_stale" {
            break;
        }
        assert_eq!(
            got, "dpop_replayed",
            "replay {elapsed_ms} ms after first use"
        );
    }
    // The proof was accepted for max_age + skew + 1 s after its first use.
    assert_eq!(elapsed_ms, 121_000);
    v.stop().await;
}
