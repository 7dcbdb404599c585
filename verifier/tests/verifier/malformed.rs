//! Hostile and broken input: every unreadable request is a 400
//! problem+json with a stable code, nothing panics, and the verifier keeps
//! answering correctly afterwards.

use std::sync::Arc;

use agentauth_state::{InProcessState, SharedState};
use serde_json::{Value, json};

use crate::support::*;

fn problem_code(status: u16, ct: &str, text: &str) -> String {
    assert_eq!(status, 400, "{text}");
    assert_eq!(ct, "application/problem+json", "{text}");
    let problem: Value = serde_json::from_str(text).unwrap();
    assert_eq!(problem["status"], json!(400));
    let code = problem["code"].as_str().unwrap().to_owned();
    assert_eq!(
        problem["type"],
        json!(format!("https://agentauth.dev/errors/{code}"))
    );
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_requests_are_problems_and_nothing_panics() {
    let fx = Fixture::new().await;
    let state: Arc<dyn SharedState> = Arc::new(InProcessState::new());
    let v = start(&fx, state.clone()).await;
    let uid = uid();
    state.put_grant(&fx.grant(&uid, None)).await.unwrap();
    let token = fx.token(&uid, json!([read("orders/**")])).await;
    let good = fx.body(&token, read("orders/1"));

    // Truncated tokens, at many cut points.
    for cut in [
        0,
        1,
        5,
        20,
        token.len() / 3,
        token.len() / 2,
        token.len() - 40,
        token.len() - 1,
    ] {
        let mut body = good.clone();
        body["token"] = json!(&token[..cut]);
        let (status, ct, text) = v.post(serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(
            problem_code(status, &ct, &text),
            "token_malformed",
            "cut at {cut}"
        );
    }
    // A truncated proof is the agent's broken proof: a decision.
    let mut body = good.clone();
    let proof = body["dpop"].as_str().unwrap().to_owned();
    body["dpop"] = json!(&proof[..proof.len() / 2]);
    assert_eq!(v.reason(&body).await, "dpop_invalid");

    let raw = |s: &str| s.as_bytes().to_vec();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        serde_json::to_vec(&b).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("json_invalid", raw("")),
        ("json_invalid", raw("not json")),
        ("json_invalid", vec![0xff, 0xfe, b'{', b'}']),
        ("json_invalid", raw("[]")),
        ("json_invalid", with(&|b| b["token"] = json!(5))),
        ("json_invalid", with(&|b| b["method"] = Value::Null)),
        ("json_invalid", with(&|b| b["action"] = json!("read"))),
        (
            "json_invalid",
            with(&|b| b["action"]["type"] = json!("fly")),
        ),
        (
            "json_invalid",
            with(&|b| b["action"]["amount"] = json!(12.5)),
        ),
        ("json_invalid", with(&|b| b["extra"] = json!(true))),
        (
            "json_invalid",
            with(&|b| b.as_object_mut().unwrap().retain(|k, _| k != "action")),
        ),
        (
            "json_invalid",
            duplicate(&good, "\"method\":", "\"method\":\"GET\",\"method\":"),
        ),
        (
            "json_invalid",
            duplicate(&good, "\"resource\":", "\"resource\":\"x\",\"resource\":"),
        ),
        (
            "request_invalid",
            with(&|b| b["url"] = json!("https://shöp.test/orders")),
        ),
        (
            "request_invalid",
            with(&|b| b["url"] = json!("https://shop.test/ördersü")),
        ),
        ("request_invalid", with(&|b| b["url"] = json!("/orders/1"))),
        (
            "request_invalid",
            with(&|b| b["url"] = json!("ftp://shop.test/")),
        ),
        ("request_invalid", with(&|b| b["method"] = json!("PO ST"))),
        (
            "request_invalid",
            with(&|b| b["audience"] = json!("someone-else")),
        ),
        (
            "token_malformed",
            with(&|b| b["token"] = json!(format!("Bearer {token}"))),
        ),
        (
            "input_too_large",
            with(&|b| b["token"] = json!("a".repeat(9_000))),
        ),
        (
            "input_too_large",
            raw(&format!("{{\"token\": \"{}\"}}", "a".repeat(1 << 20))),
        ),
    ];
    for (want, bytes) in cases {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        let (status, ct, text) = v.post(bytes).await;
        assert_eq!(problem_code(status, &ct, &text), want, "{shown}");
    }

    // A 1 MiB header on the JSON API and on the ext_authz service.
    let huge = "h".repeat(1 << 20);
    for (method, path) in [("POST", "/v1/verify"), ("GET", "/ext_authz/orders/1")] {
        let response = v
            .client
            .request(method.parse().unwrap(), format!("{}{path}", v.base))
            .header("x-filler", &huge)
            .header("authorization", format!("DPoP {huge}"))
            .body(serde_json::to_vec(&good).unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        assert_eq!(
            problem_code(status, &ct, &text),
            "input_too_large",
            "{path}"
        );
    }

    // Still alive, still right.
    assert_eq!(v.get("/healthz").await.0, 200);
    assert_eq!(v.reason(&good).await, "allowed");
    assert!(
        v.metric("agentauth_verifications_total{decision=\"invalid\",reason=\"json_invalid\"}")
            .await
            >= 13.0
    );
    v.stop().await;
}

/// The body's JSON with `from` replaced by `to` once (a duplicate key).
fn duplicate(body: &Value, from: &str, to: &str) -> Vec<u8> {
    let text = serde_json::to_string(body).unwrap();
    assert!(text.contains(from), "{text}");
    text.replacen(from, to, 1).into_bytes()
}
