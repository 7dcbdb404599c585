//! History from the server: `GET /history` lists the grants the signed-in
//! approver decided, newest first, with where each stands now, and nobody
//! else's decisions.

use agentauth_crds::GrantPhase;
use serde_json::{Value, json};

use super::support::{Env, problem, refused};

fn names(history: &Value) -> Vec<(String, String)> {
    history["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn history_lists_what_this_approver_decided_newest_first() {
    let env = Env::new("history").await;
    env.agent("assistant", "owner@example.com").await;
    for grant in ["first", "second", "theirs", "undecided"] {
        env.grant(grant, "assistant", json!({})).await;
    }
    let (mut dana, dana_name, dana_email) = env.logged_in("dana", &[&env.ns]).await;
    let (mut erin, _, erin_email) = env.logged_in("erin", &[&env.ns]).await;
    env.allow_approve(&dana_email).await;
    env.allow_approve(&erin_email).await;
    assert_eq!(dana.history().await.unwrap()["decisions"], json!([]));

    dana.approve(&env.ns, "first").await.unwrap();
    // signedAt has whole seconds on the wire: decide the next one later.
    env.clock.advance_ms(2_000);
    dana.deny(&env.ns, "second").await.unwrap();
    erin.approve(&env.ns, "theirs").await.unwrap();
    env.wait_phase("first", "Approved").await;
    env.wait_phase("second", "Denied").await;
    env.wait(|c| {
        ["first", "second"].iter().all(|g| {
            c.grant(&env.ns, g)
                .and_then(|g| g.status.clone())
                .is_some_and(|s| s.phase.is_some_and(|p| p != GrantPhase::Pending))
        })
    })
    .await;

    let history = dana.history().await.unwrap();
    assert_eq!(
        names(&history),
        [
            ("second".to_owned(), "Denied".to_owned()),
            ("first".to_owned(), "Approved".to_owned()),
        ],
        "{history}"
    );
    let first = &history["decisions"][1];
    assert_eq!(first["namespace"], env.ns.as_str());
    assert_eq!(first["agent"], "assistant");
    assert_eq!(first["phase"], "Approved");
    assert!(
        first["signedAt"].as_str().unwrap().ends_with('Z'),
        "{first}"
    );
    assert_eq!(history["decisions"][0]["phase"], "Denied");
    assert_eq!(history["truncated"], false);
    let stored = env.stored_grant("first").await;
    assert_eq!(
        stored.status.unwrap().approval.unwrap().approver,
        dana_name,
        "the list is what status.approval records"
    );

    // Erin's own decision only.
    let theirs = erin.history().await.unwrap();
    assert_eq!(
        names(&theirs),
        [("theirs".to_owned(), "Approved".to_owned())],
        "{theirs}"
    );

    // Only a signed-in session reads it, and not from another site.
    let mut anonymous = env.passkey();
    anonymous.start_session().await.unwrap();
    refused(anonymous.history().await, 401, "session_invalid");
    let cross_site = env
        .http()
        .get(env.url("/history"))
        .header("cookie", dana.cookie().unwrap())
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    problem(cross_site, 403, "cross_site_request").await;
}
