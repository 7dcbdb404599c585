//! The agent's side of the walk-through: a key for the Agent, and calls
//! to the example provider with a DPoP-bound token.

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use agentauth::AgentKey;
use agentauth_crds::Agent;
use kube::api::{Api, Patch, PatchParams};

use super::{
    DevError, Endpoints, REACTION, agent_client, grants_file, key_file, kube_client, load_map,
    save_map, sdk, split_ref, tokens_file, unix_now,
};

pub(super) async fn agent_key(
    endpoints: &Endpoints,
    state_dir: &Path,
    agent: &str,
) -> Result<(), DevError> {
    let (namespace, name) = split_ref(agent)?;
    let key = AgentKey::generate().map_err(sdk)?;
    let path = key_file(state_dir, agent);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DevError::io("create", dir, e))?;
    }
    let _ = std::fs::remove_file(&path);
    key.save(&path).map_err(sdk)?;
    let jwk = key.public_jwk();
    let patch = serde_json::json!({"spec": {"publicKey": {
        "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y,
    }}});
    let agents: Api<Agent> = Api::namespaced(kube_client(endpoints).await?, namespace);
    agents
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| DevError::Walkthrough(format!("cannot update the Agent {agent}: {e}")))?;
    // The operator must record the new thumbprint before it accepts the key.
    let started = Instant::now();
    loop {
        let current = agents
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.status)
            .and_then(|s| s.key_thumbprint);
        if current.as_deref() == Some(key.thumbprint()) {
            break;
        }
        if started.elapsed() > REACTION {
            return Err(DevError::Walkthrough(format!(
                "the operator did not record the new key of {agent} within {}s; see its log",
                REACTION.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "agent {agent}: new key {} saved to {}",
        key.thumbprint(),
        path.display()
    );
    Ok(())
}

pub(super) async fn call(
    endpoints: &Endpoints,
    state_dir: &Path,
    agent: &str,
    provider: &str,
    method: &str,
    url: &str,
) -> Result<(), DevError> {
    let grants = load_map(&grants_file(state_dir, agent));
    let Some(grant) = grants.get(provider).and_then(|g| g.as_str()) else {
        return Err(DevError::Walkthrough(format!(
            "{agent} has no grant for {provider} yet: run `agentauth dev request {agent} …` first"
        )));
    };
    let client = agent_client(endpoints, state_dir, agent)?;
    // The token is kept between calls, as a running agent keeps it: after a
    // revocation the verifier, not the operator, is the one that refuses.
    let tokens_path = tokens_file(state_dir, agent);
    let mut tokens = load_map(&tokens_path);
    let now = unix_now();
    let cached = tokens
        .get(provider)
        .filter(|t| t["grant"] == grant && t["expiresAt"].as_u64().is_some_and(|e| e > now + 10))
        .and_then(|t| t["token"].as_str().map(str::to_owned));
    let token = match cached {
        Some(token) => token,
        None => {
            client.use_grant(provider, grant);
            let token = client.get_token(provider).await.map_err(|e| {
                DevError::Walkthrough(format!(
                    "the operator issued no token: {} ({})",
                    e.message(),
                    e.code_str()
                ))
            })?;
            let expires = token
                .expires_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            tokens.insert(
                provider.to_owned(),
                serde_json::json!({"token": token.access_token, "grant": grant, "expiresAt": expires}),
            );
            save_map(&tokens_path, &tokens)?;
            token.access_token
        }
    };
    let headers = agentauth::auth::headers_for(client.key(), &token, method, url).map_err(sdk)?;
    let method_value = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| DevError::Walkthrough(format!("not an HTTP method: {method}")))?;
    let response = reqwest::Client::new()
        .request(method_value, url)
        .header("authorization", headers.authorization)
        .header("dpop", headers.dpop)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| DevError::Walkthrough(format!("{method} {url}: {e}")))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    println!("{method} {url} -> HTTP {}\n{pretty}", status.as_u16());
    if status.is_success() {
        Ok(())
    } else {
        Err(DevError::Walkthrough(format!(
            "the provider refused: HTTP {}",
            status.as_u16()
        )))
    }
}
