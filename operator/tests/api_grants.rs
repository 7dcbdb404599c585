//! `POST /v1/grants`, `GET /v1/grants/{namespace}/{name}` and its event
//! stream against a real apiserver: an agent asks for a grant with a proof
//! of its registered key, retries are idempotent, and only the grant's own
//! agent reads it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::time::Duration;

use agentauth_core::es256::SigningKey;
use api_support::{Harness, Options, problem, within};
use serde_json::{Value, json};

fn request(h: &Harness, agent: &str) -> Value {
    json!({
        "agent": agent,
        "namespace": h.ns,
        "serviceProvider": "https://mail.example.com",
        "capabilities": [{"type": "custom", "name": "send-email", "resource": "outbox"}],
        "duration": "1h",
        "reason": "send the weekly report",
    })
}

async fn post(
    h: &Harness,
    key: &SigningKey,
    body: &Value,
    idempotency: Option<&str>,
) -> reqwest::Response {
    let mut request = h
        .http
        .post(h.url("/v1/grants"))
        .header("DPoP", h.proof(key, "POST", "/v1/grants"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(k) = idempotency {
        request = request.header("Idempotency-Key", k);
    }
    request.send().await.unwrap()
}

async fn get(h: &Harness, key: &SigningKey, path: &str) -> reqwest::Response {
    let proof = h.proof(key, "GET", path);
    h.http
        .get(h.url(path))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn agent_creates_a_grant_and_reads_it() {
    within(async {
        let h = Harness::start("grants-create", Options::default()).await;
        let key = h.agent("mailer").await;
        let response = post(&h, &key, &request(&h, "mailer"), None).await;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let view: Value = response.json().await.unwrap();
        assert_eq!(view["phase"], "Pending");
        assert_eq!(view["agent"], format!("{}/mailer", h.ns));
        let name = view["name"].as_str().unwrap().to_owned();
        assert!(name.starts_with("mailer-"), "{name}");
        assert_eq!(location, format!("/v1/grants/{}/{name}", h.ns));

        let grant = h.grants().get(&name).await.unwrap();
        assert_eq!(grant.spec.agent_ref.name, "mailer");
        assert_eq!(grant.spec.reason, "send the weekly report");
        let managers: Vec<_> = grant.metadata.managed_fields.unwrap_or_default();
        assert!(
            managers
                .iter()
                .any(|m| m.manager.as_deref() == Some("agentauth-agent-api"))
        );

        h.wait(|c| c.grant(&h.ns, &name).is_some()).await;
        let response = get(&h, &key, &location).await;
        assert_eq!(response.status(), 200);
        let view: Value = response.json().await.unwrap();
        assert_eq!(view["uid"], json!(grant.metadata.uid));
        assert_eq!(view["serviceProvider"], "https://mail.example.com");

        // Only its agent reads it; to another agent it is as unknown as an
        // absent grant (issue 12 item 9: no enumeration of grant names).
        let other = h.agent("other").await;
        problem(get(&h, &other, &location).await, 404, "grant_unknown").await;
        let absent = format!("/v1/grants/{}/absent", h.ns);
        problem(get(&h, &key, &absent).await, 404, "grant_unknown").await;
    })
    .await;
}

#[tokio::test]
async fn idempotency_key_makes_retries_return_the_same_grant() {
    within(async {
        let h = Harness::start("grants-idempotent", Options::default()).await;
        let key = h.agent("mailer").await;
        let body = request(&h, "mailer");
        let first = post(&h, &key, &body, Some("\"retry-42\"")).await;
        assert_eq!(first.status(), 201);
        let first: Value = first.json().await.unwrap();
        let again = post(&h, &key, &body, Some("\"retry-42\"")).await;
        assert_eq!(again.status(), 200);
        let again: Value = again.json().await.unwrap();
        assert_eq!(
            (&first["name"], &first["uid"]),
            (&again["name"], &again["uid"])
        );
        assert_eq!(
            h.grants()
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .len(),
            1
        );

        // The same key for another request is a conflict, not a second grant.
        let mut changed = body.clone();
        changed["reason"] = json!("something else");
        let r = post(&h, &key, &changed, Some("\"retry-42\"")).await;
        problem(r, 409, "request_invalid").await;
        // Another key makes another grant.
        assert_eq!(post(&h, &key, &body, Some("retry-43")).await.status(), 201);
        assert_eq!(
            h.grants()
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .len(),
            2
        );
    })
    .await;
}

#[tokio::test]
async fn grant_requests_need_the_agents_key_and_a_valid_spec() {
    within(async {
        let h = Harness::start("grants-refused", Options::default()).await;
        let key = h.agent("mailer").await;
        let other = h.agent("other").await;
        let body = request(&h, "mailer");
        problem(
            post(&h, &other, &body, None).await,
            401,
            "dpop_key_mismatch",
        )
        .await;
        let r = post(&h, &SigningKey::generate(), &request(&h, "nobody"), None).await;
        problem(r, 401, "dpop_key_mismatch").await;

        let mut bad = body.clone();
        bad["capabilities"] = json!([{"type": "custom", "resource": "outbox"}]);
        problem(post(&h, &key, &bad, None).await, 400, "capability_invalid").await;
        let mut bad = body.clone();
        bad["expiresAt"] = json!("2030-01-01T00:00:00Z");
        problem(post(&h, &key, &bad, None).await, 400, "request_invalid").await;
        let mut bad = body.clone();
        bad.as_object_mut().unwrap().remove("duration");
        bad["expiresAt"] = json!("2001-01-01T00:00:00Z");
        problem(post(&h, &key, &bad, None).await, 400, "request_invalid").await;
        let mut bad = body.clone();
        bad["namespace"] = json!("Not_A_Namespace");
        problem(post(&h, &key, &bad, None).await, 400, "request_invalid").await;
        let r = post(&h, &key, &body, Some("bad key with spaces")).await;
        problem(r, 400, "request_invalid").await;
        assert!(
            h.grants()
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
    })
    .await;
}

/// Reads server-sent events until `count` events have arrived or the
/// stream ends; returns `(event, data)` pairs.
async fn events(response: &mut reqwest::Response, count: usize) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut out = Vec::new();
    while out.len() < count {
        let Some(chunk) = response.chunk().await.unwrap() else {
            break;
        };
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                    data.push_str(v);
                }
            }
            if !event.is_empty() {
                out.push((event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn event_stream_follows_the_grant_until_it_is_decided() {
    within(async {
        let h = Harness::start("grants-events", Options::default()).await;
        let key = h.agent("bot").await;
        h.grant("g", "bot", json!({})).await;
        let path = format!("/v1/grants/{}/g/events", h.ns);
        let mut stream = get(&h, &key, &path).await;
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let first = events(&mut stream, 1).await;
        assert_eq!(first[0].0, "status");
        assert_eq!(first[0].1["phase"], "Pending");

        tokio::time::sleep(Duration::from_millis(300)).await;
        h.approve("g", h.now() + 3600).await;
        let rest = events(&mut stream, 2).await;
        assert_eq!(
            rest.len(),
            1,
            "the stream ends after the decision: {rest:?}"
        );
        assert_eq!(rest[0].1["phase"], "Approved");
        assert!(rest[0].1["expiresAt"].is_string());

        // The stream is authenticated like the status.
        let other = h.agent("other").await;
        problem(get(&h, &other, &path).await, 404, "grant_unknown").await;
    })
    .await;
}
