//! The naive baseline: what a handler written with a general-purpose JWT
//! library looks like. Same inputs, same answers for valid requests, but
//! `jsonwebtoken` for both JWTs (on aws-lc-rs, the same crypto as ours, so
//! the comparison is about the design, not the curve code), no cache of
//! any kind, and one Redis round trip per check, in sequence:
//!
//! ```text
//!  GET grant state ─▶ SET jti NX PX ─▶ EXISTS revoked ─▶ INCR rate window (+ PEXPIRE on first)
//! ```
//!
//! The JWKS is read once at start and its keys used as they are (no
//! certificate checks per request), which only flatters the baseline.

use std::collections::HashMap;
use std::sync::Arc;

use agentauth_core::b64;
use agentauth_core::capability::{Capability, RequestedAction, permits};
use agentauth_core::keycert::Jwks;
use agentauth_state::GrantState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use redis::aio::ConnectionManager;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::fixtures::{AUDIENCE, ISSUER};

struct Naive {
    keys: HashMap<String, DecodingKey>,
    redis: ConnectionManager,
}

#[derive(Deserialize)]
struct Body {
    token: String,
    dpop: String,
    method: String,
    url: String,
    action: RequestedAction,
}

#[derive(Deserialize)]
struct TokenClaims {
    sub: String,
    cnf: Cnf,
    authorization_details: Vec<agentauth_core::capability::AuthorizationDetail>,
    grant: GrantRef,
}

#[derive(Deserialize)]
struct Cnf {
    jkt: String,
}

#[derive(Deserialize)]
struct GrantRef {
    uid: String,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
}

/// `serve-naive <dir> <redis-url> <port>`.
pub fn serve(args: &[String]) {
    let dir = std::path::Path::new(&args[0]);
    let jwks = Jwks::parse(&std::fs::read_to_string(dir.join("jwks.json")).unwrap()).unwrap();
    let keys = jwks
        .keys
        .iter()
        .map(|k| {
            (
                k.kid.clone(),
                DecodingKey::from_ec_components(&k.x, &k.y).unwrap(),
            )
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = redis::Client::open(args[1].as_str()).unwrap();
        let redis = ConnectionManager::new(client).await.unwrap();
        let app = axum::Router::new()
            .route("/v1/verify", post(verify))
            .route("/readyz", get(|| async { "ok" }))
            .with_state(Arc::new(Naive { keys, redis }));
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", args[2].parse::<u16>().unwrap()))
                .await
                .unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

fn deny(reason: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"allow": false, "reason": reason})),
    )
        .into_response()
}

async fn verify(State(naive): State<Arc<Naive>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Body>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let token = body.token.trim_start_matches("DPoP ");
    // The access token.
    let Ok(header) = decode_header(token) else {
        return deny("token_malformed");
    };
    let Some(key) = header.kid.as_ref().and_then(|kid| naive.keys.get(kid)) else {
        return deny("token_key_unknown");
    };
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    let Ok(claims) = decode::<TokenClaims>(token, key, &validation) else {
        return deny("token_invalid");
    };
    let claims = claims.claims;
    // The proof: its key from its header.
    let Ok(proof_header) = decode_header(&body.dpop) else {
        return deny("dpop_invalid");
    };
    let Some(jwk) = proof_header.jwk.as_ref() else {
        return deny("dpop_invalid");
    };
    let Ok(proof_key) = DecodingKey::from_jwk(jwk) else {
        return deny("dpop_invalid");
    };
    let mut proof_validation = Validation::new(Algorithm::ES256);
    proof_validation.required_spec_claims.clear();
    proof_validation.validate_exp = false;
    proof_validation.validate_aud = false;
    let Ok(proof) = decode::<ProofClaims>(&body.dpop, &proof_key, &proof_validation) else {
        return deny("dpop_invalid");
    };
    let proof = proof.claims;
    let now = jsonwebtoken::get_current_timestamp() as i64;
    if proof.htm != body.method || proof.htu != body.url || (now - proof.iat).abs() > 60 {
        return deny("dpop_mismatch");
    }
    if proof.ath.as_deref() != Some(b64::encode(Sha256::digest(token.as_bytes())).as_str()) {
        return deny("dpop_ath_mismatch");
    }
    let jwk_json = serde_json::to_value(jwk).unwrap();
    let (x, y) = (
        jwk_json["x"].as_str().unwrap_or(""),
        jwk_json["y"].as_str().unwrap_or(""),
    );
    if agentauth_core::jwk::ec_thumbprint(x, y) != claims.cnf.jkt {
        return deny("dpop_key_mismatch");
    }
    // One Redis call per check.
    let mut redis = naive.redis.clone();
    let uid = &claims.grant.uid;
    let state: Option<String> = redis::cmd("GET")
        .arg(agentauth_state::keys::grant_state(uid))
        .query_async(&mut redis)
        .await
        .unwrap_or(None);
    let Some(state) = state.and_then(|s| serde_json::from_str::<GrantState>(&s).ok()) else {
        return deny("grant_unknown");
    };
    if state.agent != claims.sub {
        return deny("token_claims_invalid");
    }
    let fresh: Option<String> = redis::cmd("SET")
        .arg(format!("naive:jti:{}", proof.jti))
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(120_000)
        .query_async(&mut redis)
        .await
        .unwrap_or(None);
    if fresh.is_none() {
        return deny("dpop_replayed");
    }
    let revoked: bool = redis::cmd("EXISTS")
        .arg(agentauth_state::keys::revoked(uid))
        .query_async(&mut redis)
        .await
        .unwrap_or(true);
    if revoked {
        return deny("grant_revoked");
    }
    let window = format!("naive:rl:{uid}:{}", now);
    let count: u64 = redis::cmd("INCR")
        .arg(&window)
        .query_async(&mut redis)
        .await
        .unwrap_or(u64::MAX);
    if count == 1 {
        let _: Result<(), _> = redis::cmd("PEXPIRE")
            .arg(&window)
            .arg(2000)
            .query_async(&mut redis)
            .await;
    }
    if count > 10_000 {
        return deny("rate_limited");
    }
    // Capabilities and time windows, from scratch every time.
    let capabilities: Result<Vec<Capability>, _> = claims
        .authorization_details
        .into_iter()
        .map(<Capability>::try_from)
        .collect();
    let Ok(capabilities) = capabilities else {
        return deny("token_claims_invalid");
    };
    if permits(&capabilities, &body.action).is_err() {
        return deny("capability_not_granted");
    }
    let windows = state
        .envelope
        .as_ref()
        .map(|e| e.time_windows.clone())
        .unwrap_or_default();
    if agentauth_core::window::within_any(&windows, now * 1000).is_err() {
        return deny("outside_time_window");
    }
    axum::Json(json!({"allow": true, "reason": null, "agent": state.agent, "grant": state.grant}))
        .into_response()
}
