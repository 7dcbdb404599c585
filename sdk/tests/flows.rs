//! The SDK against the real stack (apiserver, Redis, operator, verifier,
//! example provider): request → approve (software passkey) → token →
//! authenticated call; a call outside the grant refused with its code as a
//! typed error; tokens refreshed across expiry; one issuance for many
//! concurrent callers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use agentauth::{Capability, Code, Error, ErrorCode, check_response};
use support::{Stack, approved_grant, within};

fn calendar_read() -> Vec<Capability> {
    vec![Capability::Read {
        resource: "calendars/primary/**".to_string(),
        filter: None,
    }]
}

/// `GET` on the provider's `path`, authenticated by `client`.
async fn call(
    stack: &Stack,
    client: &agentauth::AgentAuthClient,
    method: reqwest::Method,
    path: &str,
) -> agentauth::Result<serde_json::Value> {
    let http = reqwest::Client::new();
    let mut request = http
        .request(method, format!("{}{path}", stack.provider))
        .build()
        .unwrap();
    client
        .authenticate_request(&stack.provider, &mut request)
        .await?;
    let response = check_response(http.execute(request).await.unwrap()).await?;
    Ok(response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_grant_allows_the_call_and_others_are_refused_with_their_code() {
    within(async {
        let stack = Stack::start("sdk-flow").await;
        stack.agent("bot").await;
        let client = stack.sdk("bot", |c| c);

        // Before any grant: a typed local error, nothing sent.
        let error = client.get_token(&stack.provider).await.unwrap_err();
        assert!(matches!(error, Error::NoGrant { .. }), "{error}");

        let grant = approved_grant(&stack, &client, calendar_read()).await;
        assert!(grant.is_approved());
        assert_eq!(grant.agent, format!("{}/bot", stack.ns));

        let body = call(
            &stack,
            &client,
            reqwest::Method::GET,
            "/calendars/primary/events",
        )
        .await
        .unwrap();
        assert_eq!(body["ok"], true);
        assert_eq!(body["grant"], grant.reference().as_str());

        // Outside the granted capability: another calendar, another type.
        for (method, path) in [
            (reqwest::Method::GET, "/calendars/work/events"),
            (reqwest::Method::DELETE, "/calendars/primary/events/1"),
        ] {
            let error = call(&stack, &client, method, path).await.unwrap_err();
            assert_eq!(
                error.code(),
                Some(ErrorCode::CapabilityNotGranted),
                "{error}"
            );
            assert!(
                matches!(
                    error,
                    Error::Server {
                        status: 403,
                        code: Code::Known(_),
                        ..
                    }
                ),
                "{error}"
            );
        }

        // A proof replayed by someone who copied the headers is refused.
        let headers = client
            .authenticate_headers(&stack.provider, "GET", "/calendars/primary/events")
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let send = || {
            http.get(format!("{}/calendars/primary/events", stack.provider))
                .header("Authorization", &headers.authorization)
                .header("DPoP", &headers.dpop)
                .send()
        };
        check_response(send().await.unwrap()).await.unwrap();
        let replay = check_response(send().await.unwrap()).await.unwrap_err();
        assert_eq!(replay.code(), Some(ErrorCode::DpopReplayed), "{replay}");

        // Another agent cannot use this agent's grant.
        stack.agent("mallory").await;
        let mallory = stack.sdk("mallory", |c| c);
        mallory.use_grant(&stack.provider, &grant.reference());
        let error = mallory.get_token(&stack.provider).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::GrantUnknown), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_across_expiry() {
    within(async {
        let stack = Stack::start("sdk-refresh").await;
        stack.agent("bot").await;
        let client = stack.sdk("bot", |c| {
            c.token_lifetime(Duration::from_secs(2))
                .refresh_before(Duration::from_secs(30))
        });
        approved_grant(&stack, &client, calendar_read()).await;

        let first = client.get_token(&stack.provider).await.unwrap();
        let again = client.get_token(&stack.provider).await.unwrap();
        assert_eq!(first, again, "a fresh token is served from the cache");
        call(
            &stack,
            &client,
            reqwest::Method::GET,
            "/calendars/primary/events",
        )
        .await
        .unwrap();
        let issued = stack.issued();

        // Past its expiry (and its refresh point, a tenth of 2 s before).
        tokio::time::sleep_until(
            tokio::time::Instant::now()
                + first
                    .expires_at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
                + Duration::from_millis(200),
        )
        .await;
        assert!(!first.is_fresh());
        let second = client.get_token(&stack.provider).await.unwrap();
        assert_ne!(second.access_token, first.access_token);
        assert!(second.expires_at > first.expires_at);
        assert_eq!(stack.issued(), issued + 1);
        call(
            &stack,
            &client,
            reqwest::Method::GET,
            "/calendars/primary/events",
        )
        .await
        .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_get_token_makes_one_issuance() {
    within(async {
        let stack = Stack::start("sdk-single-flight").await;
        stack.agent("bot").await;
        let client = stack.sdk("bot", |c| c);
        approved_grant(&stack, &client, calendar_read()).await;
        let before = stack.issued();

        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (client, provider) = (client.clone(), stack.provider.clone());
                tokio::spawn(async move { client.get_token(&provider).await.unwrap() })
            })
            .collect();
        let mut tokens = Vec::new();
        for task in tasks {
            tokens.push(task.await.unwrap().access_token);
        }
        tokens.dedup();
        assert_eq!(tokens.len(), 1, "every caller got the same token");
        assert_eq!(stack.issued(), before + 1, "exactly one issuance");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_times_out_while_pending_and_ends_on_a_denial() {
    within(async {
        let stack = Stack::start("sdk-wait").await;
        stack.agent("bot").await;
        let client = stack.sdk("bot", |c| c);
        let grant = client
            .request_grant(&stack.provider, calendar_read())
            .await
            .unwrap();
        let error = client
            .wait_for_approval(&grant.reference(), Duration::from_millis(700))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
        let error = client.get_token(&stack.provider).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::GrantNotApproved), "{error}");

        // A revocation ends the wait with a typed error.
        let waiting = {
            let client = client.clone();
            let reference = grant.reference();
            tokio::spawn(async move {
                client
                    .wait_for_approval(&reference, Duration::from_secs(30))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let grants: kube::Api<agentauth_crds::CapabilityGrant> =
            kube::Api::namespaced(stack.client.clone(), &stack.ns);
        grants
            .patch(
                &grant.name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"revoked": true}})),
            )
            .await
            .unwrap();
        let error = waiting.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Denied { .. }), "{error}");
        assert_eq!(error.code(), Some(ErrorCode::GrantRevoked), "{error}");
    })
    .await;
}

/// Threat: pre-generated DPoP proofs (a stolen key's proofs made in advance)
/// — RFC 9449 §8/§9/§11.1; issue 12 "Also". With nonces required by the
/// operator and the verifier, the SDK still works: it retries a token
/// request once with the operator's nonce and keeps it for the next
/// issuance; a provider's `use_dpop_nonce` answer is followed by passing
/// its headers to `update_dpop_nonce` and sending the request again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_nonces_are_followed_at_the_operator_and_the_provider() {
    within(async {
        let stack = Stack::start_with("sdk-nonce", true).await;
        stack.agent("bot").await;
        let client = stack.sdk("bot", |c| c);
        approved_grant(&stack, &client, calendar_read()).await;

        // First issuance: refused once for the nonce, then issued.
        client.get_token(&stack.provider).await.unwrap();
        assert_eq!(stack.issued(), 1);
        assert_eq!(stack.token_requests("use_dpop_nonce"), 1);
        // The next one carries the remembered nonce: no refusal.
        client.invalidate_token(&stack.provider).await;
        client.get_token(&stack.provider).await.unwrap();
        assert_eq!(stack.issued(), 2);
        assert_eq!(stack.token_requests("use_dpop_nonce"), 1);

        // The provider (through the verifier) asks for its own nonce.
        let http = reqwest::Client::new();
        let url = format!("{}/calendars/primary/events", stack.provider);
        let send = async || {
            let mut request = http.get(&url).build().unwrap();
            client
                .authenticate_request(&stack.provider, &mut request)
                .await
                .unwrap();
            let response = http.execute(request).await.unwrap();
            let had_nonce = client.update_dpop_nonce(&stack.provider, response.headers());
            (had_nonce, check_response(response).await)
        };
        let (had_nonce, refused) = send().await;
        let error = refused.unwrap_err();
        assert!(had_nonce, "the refusal carries DPoP-Nonce");
        assert_eq!(error.code(), Some(ErrorCode::UseDpopNonce), "{error}");
        assert!(
            matches!(error, Error::Server { status: 401, .. }),
            "{error}"
        );
        let (_, allowed) = send().await;
        let body: serde_json::Value = allowed.unwrap().json().await.unwrap();
        assert_eq!(body["ok"], true);
    })
    .await;
}
