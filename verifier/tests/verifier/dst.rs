//! Time windows across DST changes, with the clock injected: the verifier
//! follows the wall clock of the window's zone (core/src/window.rs), and
//! every other time check (token, proof, grant expiry) moves with it.

use std::sync::Arc;

use agentauth_state::{InProcessState, ManualClock, SharedState};
use serde_json::json;

use crate::support::*;

fn at(rfc3339: &str) -> u64 {
    let ts: jiff::Timestamp = rfc3339.parse().unwrap();
    u64::try_from(ts.as_microsecond()).unwrap()
}

/// Checks `(instant, expected reason)` pairs against one window.
async fn check(window: serde_json::Value, first: &str, cases: &[(&str, &str)]) {
    let clock = Arc::new(ManualClock::new(at(first)));
    let fx = Fixture::with_clock(clock.clone()).await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::with_clock(clock.clone()));
    let v = start(&fx, state.clone()).await;
    let uid = uid();
    let mut grant = fx.grant(&uid, Some(json!({"timeWindows": [window]})));
    grant.expires_at = Some(fx.now() + 86_400);
    state.put_grant(&grant).await.unwrap();
    for (instant, want) in cases {
        clock.set(at(instant));
        let token = fx.token(&uid, json!([read("orders/**")])).await;
        let got = v.reason(&fx.body(&token, read("orders/1"))).await;
        assert_eq!(&got, want, "at {instant}");
    }
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_starting_in_the_skipped_hour_opens_when_the_clock_jumps() {
    // Europe/Berlin, Sunday 2025-03-30: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
    let window =
        json!({"days": ["sun"], "start": "02:30", "end": "05:00", "timeZone": "Europe/Berlin"});
    check(
        window,
        "2025-03-30T00:00:00Z",
        &[
            ("2025-03-30T00:59:59Z", "outside_time_window"), // 01:59:59 CET
            ("2025-03-30T01:00:00Z", "allowed"),             // 03:00:00 CEST
            ("2025-03-30T02:59:59Z", "allowed"),             // 04:59:59 CEST
            ("2025-03-30T03:00:00Z", "outside_time_window"), // 05:00:00 CEST
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_on_the_repeated_hour_is_open_twice() {
    // Europe/Berlin, Sunday 2025-10-26: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
    let window =
        json!({"days": ["sun"], "start": "02:00", "end": "03:00", "timeZone": "Europe/Berlin"});
    check(
        window,
        "2025-10-25T23:00:00Z",
        &[
            ("2025-10-25T23:59:59Z", "outside_time_window"), // 01:59:59 CEST
            ("2025-10-26T00:00:00Z", "allowed"),             // 02:00 CEST, the first time
            ("2025-10-26T00:59:59Z", "allowed"),             // 02:59:59 CEST
            ("2025-10-26T01:00:00Z", "allowed"),             // 02:00 CET, the second time
            ("2025-10-26T01:59:59Z", "allowed"),             // 02:59:59 CET
            ("2025-10-26T02:00:00Z", "outside_time_window"), // 03:00 CET
        ],
    )
    .await;
}
