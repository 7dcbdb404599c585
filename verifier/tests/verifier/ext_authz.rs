//! The Envoy ext_authz HTTP service: Envoy forwards method, path (under the
//! prefix), Host and headers; allow is 200, deny 403 with the reason.

use std::sync::Arc;

use agentauth_state::{InProcessState, SharedState};
use serde_json::{Value, json};

use crate::support::*;

const ROUTES: &str = r#"
- method: GET
  path: /orders/*
  type: read
  resource: orders/{1}
  action: get
"#;

struct Check<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<&'a str>,
    proof: Option<String>,
    headers: Vec<(&'a str, &'a str)>,
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
    for (name, value) in c.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_checks_are_answered_200_or_403() {
    let fx = Fixture::new().await;
    let routes = fx.dir.path().join("routes.yaml");
    std::fs::write(&routes, ROUTES).unwrap();
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = start_with(&fx, state.clone(), |c| c.route_map = Some(routes), true).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let caps = json!([
        {"type": "read", "resource": "orders/*", "actions": ["get"]},
        {"type": "transact", "resource": "pay/**", "maxAmount": "10.00", "currency": "EUR"},
    ]);
    let token = fx.token(&uid, caps).await;

    // Allowed through the route map; the proof names the original URL.
    let proof = fx.proof(&token, "GET", "https://shop.test/orders/42");
    let check = |proof: String| Check {
        method: "GET",
        path: "/orders/42",
        token: Some(&token),
        proof: Some(proof),
        headers: vec![],
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

    // The action from headers (set by the mesh): a transact over the limit.
    let url = "https://shop.test/checkout";
    let pay = |amount: &'static str| Check {
        method: "POST",
        path: "/checkout",
        token: Some(&token),
        proof: Some(fx.proof(&token, "POST", url)),
        headers: vec![
            ("x-agentauth-action-type", "transact"),
            ("x-agentauth-resource", "pay/eu"),
            ("x-agentauth-amount", amount),
            ("x-agentauth-currency", "EUR"),
        ],
    };
    assert_eq!(send(&v, pay("9.99")).await.0, 200);
    let (status, headers, _) = send(&v, pay("10.01")).await;
    assert_eq!(
        (status, &headers["x-agentauth-reason"]),
        (403, &"amount_over_limit".parse().unwrap())
    );

    // Nothing to decide on: no route and no action headers; no token.
    let unrouted = Check {
        method: "DELETE",
        path: "/orders/42",
        token: Some(&token),
        proof: Some(fx.proof(&token, "DELETE", "https://shop.test/orders/42")),
        headers: vec![],
    };
    let (status, headers, _) = send(&v, unrouted).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (400, &"application/problem+json".parse().unwrap())
    );
    let anonymous = Check {
        method: "GET",
        path: "/orders/42",
        token: None,
        proof: None,
        headers: vec![],
    };
    assert_eq!(send(&v, anonymous).await.0, 401);
    v.stop().await;
}
