//! The approver's side of the walk-through: a software passkey (enrolled
//! with a one-time token on first use) approving a grant, and revocation.

use std::path::Path;
use std::time::{Duration, Instant};

use agentauth_crds::CapabilityGrant;
use agentauth_operator::clock::{Clock as _, SystemClock};
use agentauth_soft_passkey::SoftApprover;
use kube::api::Api;

use super::{DevError, Endpoints, REACTION, kube_client, split_ref};

pub(super) async fn approve(
    endpoints: &Endpoints,
    state_dir: &Path,
    grant: &str,
    approver: &str,
) -> Result<(), DevError> {
    let (namespace, name) = split_ref(grant)?;
    let dir = state_dir.join("passkeys");
    std::fs::create_dir_all(&dir).map_err(|e| DevError::io("create", &dir, e))?;
    let path = dir.join(format!("{approver}.passkey"));
    let (operator, origin) = (&endpoints.operator, &endpoints.approval_origin);
    let passkey_error =
        |e: agentauth_soft_passkey::SoftPasskeyError| DevError::Walkthrough(e.to_string());
    let mut passkey = if path.exists() {
        SoftApprover::load(&path, operator, origin).map_err(passkey_error)?
    } else {
        SoftApprover::new(operator, origin).map_err(passkey_error)?
    };
    let client = kube_client(endpoints).await?;
    // A fresh cluster knows no passkey yet: enroll this one with a one-time
    // token, as an admin would hand it to the approver.
    if !path.exists() || passkey.login(approver).await.is_err() {
        let token = agentauth_operator::approvals::tokens::create(
            client.clone(),
            &endpoints.system_namespace,
            approver,
            Duration::from_secs(600),
            SystemClock.now_ms(),
        )
        .await
        .map_err(|e| DevError::Walkthrough(format!("cannot create an enrollment token: {e}")))?;
        passkey
            .enroll(approver, &token)
            .await
            .map_err(passkey_error)?;
        passkey.save(&path).map_err(passkey_error)?;
        passkey.login(approver).await.map_err(passkey_error)?;
        println!(
            "enrolled a software passkey for {approver} ({})",
            path.display()
        );
    }
    passkey
        .approve(namespace, name)
        .await
        .map_err(passkey_error)?;
    passkey.save(&path).map_err(passkey_error)?;
    let grants: Api<CapabilityGrant> = Api::namespaced(client, namespace);
    let phase = wait_for_phase(&grants, name, "Approved").await;
    println!("grant {grant} approved by {approver} with a passkey (phase {phase})");
    Ok(())
}

/// Waits until the grant's phase is `want` (or [`REACTION`] passes) and
/// returns the last phase seen.
pub(super) async fn wait_for_phase(
    grants: &Api<CapabilityGrant>,
    name: &str,
    want: &str,
) -> String {
    let started = Instant::now();
    loop {
        let phase = grants
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|g| g.status)
            .and_then(|s| serde_json::to_value(s.phase).ok())
            .and_then(|p| p.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        if phase == want || started.elapsed() > REACTION {
            return phase;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
