//! Revoking an approved grant through the approval API: `spec.revoked`
//! becomes true, the controller moves the phase to Revoked; and every
//! refusal on the way, performed and checked with its code.

use serde_json::json;

use super::support::{Env, ORIGIN, problem, refused};

/// Sets up an approved grant `name` of `assistant` in a fresh namespace,
/// approved by an approver other than the caller's.
async fn approved(env: &Env, name: &str) {
    let (mut carol, _, carol_email) = env.logged_in("carol", &[&env.ns]).await;
    env.allow_approve(&carol_email).await;
    env.grant(name, "assistant", json!({})).await;
    carol.approve(&env.ns, name).await.unwrap();
    env.wait_phase(name, "Approved").await;
}

async fn still_not_revoked(env: &Env, name: &str) {
    assert!(
        !env.stored_grant(name).await.spec.revoked,
        "a refused revocation wrote nothing"
    );
}

#[tokio::test]
async fn an_approved_grant_is_revoked_and_its_phase_follows() {
    let env = Env::new("revoke").await;
    env.agent("assistant", "owner@example.com").await;
    env.grant("calendar-read", "assistant", json!({})).await;
    let (mut dana, name, email) = env.logged_in("dana", &[&env.ns]).await;
    env.allow_approve(&email).await;
    dana.approve(&env.ns, "calendar-read").await.unwrap();
    env.wait_phase("calendar-read", "Approved").await;
    env.wait(|c| {
        c.grant(&env.ns, "calendar-read")
            .and_then(|g| g.status.clone())
            .is_some_and(|s| s.approval.is_some())
    })
    .await;
    assert_eq!(
        dana.detail(&env.ns, "calendar-read").await.unwrap()["revocable"],
        true
    );

    let answer = dana.revoke(&env.ns, "calendar-read").await.unwrap();
    assert_eq!(answer["revoked"], true);
    assert_eq!(answer["alreadyRevoked"], false);
    assert_eq!(answer["approver"], name.as_str());
    assert!(env.stored_grant("calendar-read").await.spec.revoked);
    let grant = env.wait_phase("calendar-read", "Revoked").await;
    let approval = grant.status.unwrap().approval.unwrap();
    assert_eq!(approval.approver, name, "the approval record stays");

    // Again: the same answer, nothing written, no second event.
    let again = dana.revoke(&env.ns, "calendar-read").await.unwrap();
    assert_eq!(again["alreadyRevoked"], true, "{again}");
    env.wait(|c| {
        c.grant(&env.ns, "calendar-read")
            .and_then(|g| g.status.clone())
            .and_then(|s| s.phase)
            .is_some_and(|p| p.as_str() == "Revoked")
    })
    .await;
    let detail = dana.detail(&env.ns, "calendar-read").await.unwrap();
    assert_eq!(
        (&detail["phase"], &detail["revocable"], &detail["revoked"]),
        (&json!("Revoked"), &json!(false), &json!(true))
    );
    let history = dana.history().await.unwrap();
    assert_eq!(history["decisions"][0]["phase"], "Revoked", "{history}");

    env.ctx.audit.flush().await;
    let revocations: Vec<_> = env
        .state
        .audit_events(0, 1000)
        .into_iter()
        .filter(|(_, e)| e.producer == "operator/api" && e.kind == "grant_revoke_requested")
        .collect();
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    let event = &revocations[0].1;
    assert_eq!(
        event.grant.as_deref(),
        Some(format!("{}/calendar-read", env.ns).as_str())
    );
    assert_eq!(event.details["approver"], name.as_str());
}

/// Separation of duties stops an owner from granting its own agent
/// authority; taking authority away is allowed.
#[tokio::test]
async fn the_agents_owner_may_revoke_its_grant() {
    let env = Env::new("revoke-owner").await;
    let (mut oscar, _, oscar_email) = env.logged_in("oscar", &[&env.ns]).await;
    env.allow_approve(&oscar_email).await;
    env.agent("assistant", &oscar_email).await;
    approved(&env, "own-read").await;
    oscar.revoke(&env.ns, "own-read").await.unwrap();
    env.wait_phase("own-read", "Revoked").await;
}

/// Threat: a stolen session cookie or a cross-site page revoking grants (a
/// denial of service against agents): without the session's CSRF token,
/// from a foreign Origin or marked cross-site, or without a session, the
/// revocation is refused and the grant stays approved.
#[tokio::test]
async fn a_revocation_without_csrf_token_or_from_another_site_is_refused() {
    let env = Env::new("revoke-csrf").await;
    env.agent("assistant", "owner@example.com").await;
    approved(&env, "calendar-read").await;
    let (dana, _, email) = env.logged_in("dana", &[&env.ns]).await;
    env.allow_approve(&email).await;
    let cookie = dana.cookie().unwrap().to_owned();
    let csrf = dana.csrf_token().unwrap().to_owned();
    let url = env.url(&format!("/grants/{}/calendar-read/revoke", env.ns));
    let post = |cookie: Option<&str>, csrf: Option<&str>, origin: &str, site: &str| {
        env.browser_post(&url, cookie, csrf, origin, site).send()
    };
    let (c, t) = (Some(cookie.as_str()), Some(csrf.as_str()));
    let attempts = [
        (c, None, ORIGIN, "same-origin", 403, "csrf_invalid"),
        (c, Some("forged"), ORIGIN, "", 403, "csrf_invalid"),
        (c, t, "https://evil.example", "", 403, "cross_site_request"),
        (c, t, "", "cross-site", 403, "cross_site_request"),
        (None, t, ORIGIN, "", 401, "session_invalid"),
    ];
    for (cookie, token, origin, site, status, code) in attempts {
        problem(
            post(cookie, token, origin, site).await.unwrap(),
            status,
            code,
        )
        .await;
    }
    still_not_revoked(&env, "calendar-read").await;
    assert_eq!(
        env.stored_grant("calendar-read")
            .await
            .status
            .unwrap()
            .phase
            .map(|p| p.as_str()),
        Some("Approved")
    );
}

/// Threat: an approver revoking grants they could never have approved —
/// outside their scope (another namespace, or a grant selector that does not
/// match) or without the RBAC verb `approve` — refused with
/// `approver_out_of_scope` / `approver_not_authorized` before anything about
/// the grant is told or written.
#[tokio::test]
async fn a_revocation_out_of_scope_or_without_rbac_is_refused() {
    let env = Env::new("revoke-scope").await;
    env.agent("assistant", "owner@example.com").await;
    approved(&env, "calendar-read").await;

    let (mut outsider, _, outsider_email) = env.logged_in("olga", &["elsewhere"]).await;
    env.allow_approve(&outsider_email).await;
    refused(
        outsider.revoke(&env.ns, "calendar-read").await,
        403,
        "approver_out_of_scope",
    );
    let scope =
        json!({"namespaces": [env.ns], "grantSelector": {"matchLabels": {"team": "payments"}}});
    let (mut narrow, _, narrow_email) = env.logged_in_scoped("nina", scope).await;
    env.allow_approve(&narrow_email).await;
    refused(
        narrow.revoke(&env.ns, "calendar-read").await,
        403,
        "approver_out_of_scope",
    );
    let (mut unbound, _, _) = env.logged_in("uma", &[&env.ns]).await;
    refused(
        unbound.revoke(&env.ns, "calendar-read").await,
        403,
        "approver_not_authorized",
    );
    refused(
        unbound.revoke(&env.ns, "no-such-grant").await,
        404,
        "grant_unknown",
    );
    still_not_revoked(&env, "calendar-read").await;
}

/// Threat: revoke used to settle a grant no human approved — a session
/// alone (no passkey signature) would kill a pending grant, bypassing the
/// signed denial — or to rewrite a denial: refused `grant_not_approved`.
#[tokio::test]
async fn revoking_a_pending_or_denied_grant_is_refused() {
    let env = Env::new("revoke-pending").await;
    env.agent("assistant", "owner@example.com").await;
    env.grant("waiting", "assistant", json!({})).await;
    env.grant("refused", "assistant", json!({})).await;
    let (mut dana, _, email) = env.logged_in("dana", &[&env.ns]).await;
    env.allow_approve(&email).await;
    refused(
        dana.revoke(&env.ns, "waiting").await,
        409,
        "grant_not_approved",
    );
    assert_eq!(
        dana.detail(&env.ns, "waiting").await.unwrap()["revocable"],
        false
    );
    dana.deny(&env.ns, "refused").await.unwrap();
    env.wait_phase("refused", "Denied").await;
    refused(
        dana.revoke(&env.ns, "refused").await,
        409,
        "grant_not_approved",
    );
    still_not_revoked(&env, "waiting").await;
    still_not_revoked(&env, "refused").await;
    assert_eq!(
        dana.pending().await.unwrap()["grants"][0]["name"],
        "waiting"
    );
}
