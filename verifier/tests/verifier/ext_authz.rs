//! The Envoy ext_authz HTTP service: Envoy forwards method, path (under the
//! prefix), Host and headers; allow is 200, deny 403 with the reason. Two
//! modes: a route map (the action from configuration), or action headers
//! set by the mesh. The attacks of issue 12 items 2, 3 and 8 are performed
//! here against a real server: a caller choosing its own amount or
//! audience, a dot-segment path reaching a route the grant does not cover,
//! and duplicated `DPoP` / `Authorization` headers.

use std::sync::Arc;

use agentauth_state::{InProcessState, SharedState};
use agentauth_verifier::config::VerifierConfig;
use serde_json::{Value, json};

use crate::support::*;

const ROUTES: &str = r#"
- method: GET
  path: /orders/*
  type: read
  resource: orders/{1}
  action: get
- method: GET
  path: /public/**
  type: read
  resource: public/{1}
- path: /admin/**
  type: delete
  resource: admin/{1}
- method: POST
  path: /payments/**
  type: transact
  resource: pay/{1}
  amount: {body: /amount}
  currency: {value: EUR}
"#;

struct Check<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<&'a str>,
    proof: Option<String>,
    headers: Vec<(&'a str, String)>,
    body: Option<Value>,
}

impl<'a> Check<'a> {
    /// A request with `token` and a fresh proof for the URL the path names.
    fn new(fx: &Fixture, method: &'a str, path: &'a str, token: &'a str) -> Check<'a> {
        Check {
            method,
            path,
            token: Some(token),
            proof: Some(fx.proof(token, method, &format!("https://shop.test{path}"))),
            headers: vec![],
            body: None,
        }
    }

    fn header(mut self, name: &'a str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

async fn send(v: &Running, c: Check<'_>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = v
        .client
        .request(
            c.method.parse().unwrap(),
            format!("{}/ext_authz{}", v.base, c.path),
        )
        .header("host", "shop.test")
        .header("x-forwarded-proto", "https");
    if let Some(token) = c.token {
        request = request.header("authorization", format!("DPoP {token}"));
    }
    if let Some(proof) = c.proof {
        request = request.header("dpop", proof);
    }
    // `header` appends: a name given twice is sent twice.
    for (name, value) in c.headers {
        request = request.header(name, value);
    }
    if let Some(body) = c.body {
        request = request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The reason of a 403, or the code of a problem+json answer.
async fn reason(v: &Running, c: Check<'_>) -> (u16, String) {
    let (status, headers, body) = send(v, c).await;
    let code = match headers.get("x-agentauth-reason") {
        Some(reason) => reason.to_str().unwrap().to_owned(),
        None => {
            let body: Value = serde_json::from_str(&body).unwrap_or_default();
            body["code"].as_str().unwrap_or_default().to_owned()
        }
    };
    (status, code)
}

/// Sends `method path` byte for byte over a raw connection, as Envoy
/// forwards it: an HTTP client library would resolve `%2e%2e` segments
/// itself (the WHATWG URL rules) and hide the attack. Answers the status
/// and the `x-agentauth-reason` or problem code.
async fn send_raw(
    v: &Running,
    method: &str,
    path: &str,
    token: &str,
    proof: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = v.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} /ext_authz{path} HTTP/1.1\r\nhost: shop.test\r\nx-forwarded-proto: https\r\n\
         authorization: DPoP {token}\r\ndpop: {proof}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let reason = answer
        .lines()
        .find_map(|l| l.strip_prefix("x-agentauth-reason: "))
        .map(str::to_owned)
        .or_else(|| {
            let body = answer.split("\r\n\r\n").nth(1)?;
            let body: Value = serde_json::from_str(body).ok()?;
            body["code"].as_str().map(str::to_owned)
        })
        .unwrap_or_default();
    (status, reason)
}

async fn with_routes(
    fx: &Fixture,
    state: Arc<dyn SharedState>,
    tweak: impl FnOnce(&mut VerifierConfig),
) -> Running {
    let routes = fx.dir.path().join("routes.yaml");
    std::fs::write(&routes, ROUTES).unwrap();
    start_with(
        fx,
        state,
        |c| {
            c.route_map = Some(routes);
            tweak(c);
        },
        true,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_checks_through_the_route_map_are_answered_200_or_403() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = with_routes(&fx, state.clone(), |_| {}).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let caps = json!([{"type": "read", "resource": "orders/*", "actions": ["get"]}]);
    let token = fx.token(&uid, caps).await;

    // Allowed through the route map; the proof names the original URL.
    let proof = fx.proof(&token, "GET", "https://shop.test/orders/42");
    let check = |proof: String| Check {
        proof: Some(proof),
        ..Check::new(&fx, "GET", "/orders/42", &token)
    };
    let (status, headers, _) = send(&v, check(proof.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-agentauth-agent"], AGENT);
    assert_eq!(headers["x-agentauth-grant"], GRANT);
    assert!(headers.contains_key("x-agentauth-revocation-watermark"));

    // The same proof again: 403 with the reason in a header and the body.
    let (status, headers, body) = send(&v, check(proof)).await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-agentauth-reason"], "dpop_replayed");
    assert!(headers.contains_key("www-authenticate"));
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer["allow"].clone(), answer["reason"].clone()),
        (json!(false), json!("dpop_replayed"))
    );

    // No route: nothing to decide on, a problem naming the request.
    let (status, headers, body) = send(&v, Check::new(&fx, "PUT", "/orders/42", &token)).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (400, &"application/problem+json".parse().unwrap())
    );
    assert!(
        body.contains("no route of --route-map matches PUT /orders/42"),
        "{body}"
    );
    let anonymous = Check {
        token: None,
        proof: None,
        ..Check::new(&fx, "GET", "/orders/42", &token)
    };
    assert_eq!(send(&v, anonymous).await.0, 401);
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_route_map_the_action_comes_from_the_mesh_headers() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = start(&fx, state.clone()).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let caps = json!([
        {"type": "transact", "resource": "pay/**", "maxAmount": "10.00", "currency": "EUR"},
    ]);
    let token = fx.token(&uid, caps).await;
    let pay = |amount: &str| {
        Check::new(&fx, "POST", "/checkout", &token)
            .header("x-agentauth-action-type", "transact")
            .header("x-agentauth-resource", "pay/eu")
            .header("x-agentauth-amount", amount)
            .header("x-agentauth-currency", "EUR")
    };
    assert_eq!(send(&v, pay("9.99")).await.0, 200);
    assert_eq!(
        reason(&v, pay("10.01")).await,
        (403, "amount_over_limit".into())
    );
    let (status, code) = reason(&v, Check::new(&fx, "POST", "/checkout", &token)).await;
    assert_eq!((status, code.as_str()), (400, "request_invalid"));
    v.stop().await;
}

/// Threat: a caller choosing its own amount (issue 12 item 2). On a mapped
/// payment route the amount comes from the route's source (here the JSON
/// body); an `x-agentauth-amount: 0` sent by the agent is not read, so the
/// daily sum still counts the real amount and refuses the third payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sent_amount_header_cannot_bypass_the_daily_sum() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = with_routes(&fx, state.clone(), |_| {}).await;
    let uid = uid();
    let envelope = json!({"transactions": {"currency": "EUR", "maxPerDay": "100.00"}});
    state
        .put_grant(&fx.grant(&uid, Some(envelope)))
        .await
        .unwrap();
    let caps = json!([{"type": "transact", "resource": "pay/**", "maxAmount": "50.00", "currency": "EUR"}]);
    let token = fx.token(&uid, caps).await;
    let pay = |amount: &str| Check {
        body: Some(json!({"amount": amount, "iban": "DE00"})),
        ..Check::new(&fx, "POST", "/payments/eu", &token)
            .header("x-agentauth-amount", "0")
            .header("x-agentauth-currency", "EUR")
            .header("x-agentauth-action-type", "read")
    };
    assert_eq!(send(&v, pay("45.00")).await.0, 200);
    assert_eq!(send(&v, pay("45.00")).await.0, 200);
    assert_eq!(
        reason(&v, pay("45.00")).await,
        (403, "daily_amount_over_limit".into()),
        "90.00 spent: another 45.00 is over 100.00 whatever the headers say"
    );
    // A body without the amount the route reads is refused, not waved through.
    let no_amount = Check {
        body: Some(json!({"iban": "DE00"})),
        ..Check::new(&fx, "POST", "/payments/eu", &token).header("x-agentauth-amount", "0")
    };
    assert_eq!(reason(&v, no_amount).await, (400, "request_invalid".into()));
    v.stop().await;
}

/// Threat: a token for one provider replayed at another by naming the
/// first one's audience in a header (issue 12 item 2). The audience comes
/// from `--ext-authz-audience` (or the route), never from the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audience_comes_from_configuration_never_from_a_header() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = with_routes(&fx, state.clone(), |c| {
        c.audiences = vec!["bank.test".into(), AUDIENCE.into()];
        c.ext_authz_audience = Some(AUDIENCE.into());
    })
    .await;
    let uid = uid();
    let mut grant = fx.grant(&uid, None);
    grant.service_provider = "bank.test".into();
    state.put_grant(&grant).await.unwrap();
    let mut claims = fx.claims(&uid, json!([read("orders/*")]));
    claims.aud = "bank.test".into();
    let bank_token = fx.sign(&claims).await;
    let at_shop = Check::new(&fx, "GET", "/orders/42", &bank_token)
        .header("x-agentauth-audience", "bank.test");
    assert_eq!(
        reason(&v, at_shop).await,
        (403, "token_audience_invalid".into())
    );
    v.stop().await;

    // Several audiences and none configured for ext_authz: refused with a
    // message that says what to set, not a misleading audience code.
    let v = with_routes(&fx, state.clone(), |c| {
        c.audiences = vec!["bank.test".into(), AUDIENCE.into()];
    })
    .await;
    let (status, _, body) = send(
        &v,
        Check::new(&fx, "GET", "/orders/42", &bank_token)
            .header("x-agentauth-audience", "bank.test"),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("--ext-authz-audience"), "{body}");
    v.stop().await;
}

/// Threat: path confusion between the route map and the DPoP check (issue
/// 12 item 3). The route map matches the normalized path, the one the
/// proof's `htu` is compared in: `/public/%2e%2e/admin/users` is
/// `/admin/users`, a delete the grant (`read public/**`) does not cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_segment_path_is_routed_as_the_proof_sees_it() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = with_routes(&fx, state.clone(), |_| {}).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("public/**")])).await;
    assert_eq!(
        send(&v, Check::new(&fx, "GET", "/public/docs/a", &token))
            .await
            .0,
        200
    );
    let climbing = "/public/%2e%2e/admin/users";
    let proof = fx.proof(&token, "GET", &format!("https://shop.test{climbing}"));
    assert_eq!(
        send_raw(&v, "GET", climbing, &token, &proof).await,
        (403, "capability_not_granted".into())
    );
    // Paths a backend could resolve otherwise are refused outright.
    for ambiguous in [
        "/public/..%2fadmin/users",
        "/public//admin",
        "/public/..;x/admin",
    ] {
        let proof = fx.proof(&token, "GET", &format!("https://shop.test{ambiguous}"));
        let answer = send_raw(&v, "GET", ambiguous, &token, &proof).await;
        assert_eq!(answer, (400, "request_invalid".into()), "{ambiguous}");
    }
    v.stop().await;
}

/// Threat: header smuggling with duplicates (issue 12 item 8): which of two
/// `DPoP` or `Authorization` headers a backend reads is not ours to guess;
/// RFC 9449 §4.3 requires refusing more than one DPoP header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_dpop_or_authorization_headers_are_refused() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = with_routes(&fx, state.clone(), |_| {}).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/*")])).await;
    let url = "https://shop.test/orders/42";
    let second = fx.proof(&token, "GET", url);
    let two_proofs = Check::new(&fx, "GET", "/orders/42", &token).header("dpop", &second);
    assert_eq!(reason(&v, two_proofs).await, (401, "dpop_invalid".into()));
    let two_tokens = Check::new(&fx, "GET", "/orders/42", &token)
        .header("authorization", &format!("DPoP {token}"));
    assert_eq!(
        reason(&v, two_tokens).await,
        (401, "token_malformed".into())
    );
    // Neither refusal used the proof up: sent alone it is allowed.
    let alone = Check {
        proof: Some(second),
        ..Check::new(&fx, "GET", "/orders/42", &token)
    };
    assert_eq!(send(&v, alone).await.0, 200);
    v.stop().await;
}
