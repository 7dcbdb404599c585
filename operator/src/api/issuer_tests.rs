#![allow(clippy::unwrap_used)]

use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

/// A grant in `phase` (None: no status), approved for generation 1 when
/// the phase needs an approval, expiring at `NOW + 3600`.
fn mk_grant(phase: Option<&str>) -> CapabilityGrant {
    let mut grant: CapabilityGrant = serde_json::from_value(json!({
        "apiVersion": "agentauth.dev/v1alpha1",
        "kind": "CapabilityGrant",
        "metadata": {
            "name": "g", "namespace": "ns", "uid": "uid-1", "generation": 1,
            "creationTimestamp": "2027-01-15T08:30:00Z",
        },
        "spec": {
            "agentRef": {"name": "bot"},
            "serviceProvider": "https://sp.example",
            "capabilities": [
                {"type": "read", "resource": "docs/**"},
                {"type": "transact", "resource": "shop/*", "maxAmount": "5.00", "currency": "EUR"}
            ],
            "duration": "1h",
            "reason": "testing"
        }
    }))
    .unwrap();
    if let Some(phase) = phase {
        let decision = if phase == "Denied" {
            "Denied"
        } else {
            "Approved"
        };
        grant.status = serde_json::from_value(json!({
            "phase": phase,
            "expiresAt": "2027-01-15T09:00:00Z",
            "approval": {
                "approver": "alice", "credentialId": "cred", "decision": decision,
                "nonce": "n".repeat(22), "signedAt": "2027-01-15T08:00:00Z", "generation": 1,
                "specDigest": "d".repeat(43), "authenticatorData": "AA",
                "clientDataJSON": "AA", "signature": "AA"
            }
        }))
        .unwrap();
    }
    grant
}

fn code(r: Result<Usable, Error>) -> ErrorCode {
    r.unwrap_err().code
}

#[test]
fn only_approved_current_unexpired_grants_are_usable() {
    let expiry = 1_800_003_600; // 2027-01-15T09:00:00Z
    let grant = mk_grant(Some("Approved"));
    assert_eq!(grant_expiry(&grant), Some(expiry));
    let u = usable(&grant, expiry - 10).unwrap();
    assert_eq!(
        (u.uid.as_str(), u.generation, u.expires_at),
        ("uid-1", 1, expiry)
    );
    assert_eq!(code(usable(&grant, expiry)), ErrorCode::GrantExpired);

    assert_eq!(
        code(usable(&mk_grant(None), 0)),
        ErrorCode::GrantNotApproved
    );
    assert_eq!(
        code(usable(&mk_grant(Some("Pending")), 0)),
        ErrorCode::GrantNotApproved
    );
    assert_eq!(
        code(usable(&mk_grant(Some("Denied")), 0)),
        ErrorCode::GrantNotApproved
    );
    assert_eq!(
        code(usable(&mk_grant(Some("Revoked")), 0)),
        ErrorCode::GrantRevoked
    );
    assert_eq!(
        code(usable(&mk_grant(Some("Expired")), 0)),
        ErrorCode::GrantExpired
    );

    let mut revoked = mk_grant(Some("Approved"));
    revoked.spec.revoked = true;
    assert_eq!(code(usable(&revoked, 0)), ErrorCode::GrantRevoked);

    let mut changed = mk_grant(Some("Approved"));
    changed.metadata.generation = Some(2);
    assert_eq!(code(usable(&changed, 0)), ErrorCode::GrantNotApproved);

    let mut unapproved = mk_grant(Some("Approved"));
    if let Some(status) = unapproved.status.as_mut() {
        status.approval = None;
    }
    assert_eq!(code(usable(&unapproved, 0)), ErrorCode::GrantNotApproved);
}

#[test]
fn expiry_is_the_spec_s_capped_by_the_status() {
    let mut grant = mk_grant(Some("Approved"));
    // status.expiresAt (09:00) before creation (08:30) + 1h.
    assert_eq!(grant_expiry(&grant), Some(1_800_003_600));
    // A status writer cannot extend it: creation + duration still applies.
    let later: Time = serde_json::from_value(json!("2027-01-20T00:00:00Z")).unwrap();
    grant.status.as_mut().unwrap().expires_at = Some(later);
    assert_eq!(grant_expiry(&grant), Some(1_800_001_800 + 3600));
    grant.status.as_mut().unwrap().expires_at = None;
    assert_eq!(grant_expiry(&grant), Some(1_800_001_800 + 3600));
    grant.spec.duration = None;
    grant.spec.expires_at = Some(serde_json::from_value(json!("2027-01-16T00:00:00Z")).unwrap());
    assert_eq!(grant_expiry(&grant), Some(1_800_057_600));
}

fn limits() -> Limits {
    Limits {
        default_secs: 300,
        requested_secs: None,
        envelope_max_secs: None,
        grant_expires_at: NOW + 86_400,
        key_not_after: NOW + 86_400,
    }
}

#[test]
fn lifetime_is_the_smallest_bound() {
    let at = |l: Limits| expiry(NOW, &l).map(|exp| exp - NOW);
    assert_eq!(at(limits()), Ok(300));
    assert_eq!(
        at(Limits {
            requested_secs: Some(60),
            ..limits()
        }),
        Ok(60)
    );
    assert_eq!(
        at(Limits {
            requested_secs: Some(1200),
            ..limits()
        }),
        Ok(1200)
    );
    assert_eq!(
        at(Limits {
            requested_secs: Some(99_999),
            ..limits()
        }),
        Ok(3600)
    );
    assert_eq!(
        at(Limits {
            default_secs: 7200,
            ..limits()
        }),
        Ok(3600)
    );
    assert_eq!(
        at(Limits {
            envelope_max_secs: Some(120),
            ..limits()
        }),
        Ok(120)
    );
    let l = Limits {
        requested_secs: Some(1200),
        envelope_max_secs: Some(600),
        ..limits()
    };
    assert_eq!(at(l), Ok(600));
    assert_eq!(
        at(Limits {
            grant_expires_at: NOW + 42,
            ..limits()
        }),
        Ok(42)
    );
    assert_eq!(
        at(Limits {
            key_not_after: NOW + 7,
            ..limits()
        }),
        Ok(7)
    );

    let code = |l: Limits| expiry(NOW, &l).unwrap_err().code;
    assert_eq!(
        code(Limits {
            grant_expires_at: NOW,
            ..limits()
        }),
        ErrorCode::GrantExpired
    );
    assert_eq!(
        code(Limits {
            key_not_after: NOW,
            ..limits()
        }),
        ErrorCode::SigningFailed
    );
    assert_eq!(
        code(Limits {
            envelope_max_secs: Some(0),
            ..limits()
        }),
        ErrorCode::EnvelopeInvalid
    );
}

#[test]
fn claims_follow_design_section_5() {
    let grant = mk_grant(Some("Approved"));
    let usable = Usable {
        uid: "uid-1".into(),
        generation: 1,
        expires_at: NOW + 3600,
    };
    let subject = Subject {
        issuer: "https://op.example",
        agent: "ns/bot".into(),
        jkt: "thumb".into(),
        jti: "jti-0123456789abcdef".into(),
        env: Some("digest".into()),
    };
    let c = claims(&grant, &usable, subject, NOW, NOW + 300);
    c.validate().unwrap();
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["iss"], "https://op.example");
    assert_eq!(v["sub"], "ns/bot");
    assert_eq!(v["client_id"], "ns/bot");
    assert_eq!(v["aud"], "https://sp.example");
    assert_eq!(v["cnf"], json!({"jkt": "thumb"}));
    assert_eq!(v["grant"], json!({"uid": "uid-1", "generation": 1}));
    assert_eq!(v["env"], "digest");
    assert_eq!(
        (v["iat"].as_i64(), v["nbf"].as_i64(), v["exp"].as_i64()),
        (Some(NOW), Some(NOW), Some(NOW + 300))
    );
    assert_eq!(
        v["authorization_details"],
        json!([
            {"type": "agentauth:read", "resource": "docs/**"},
            {"type": "agentauth:transact", "resource": "shop/*", "maxAmount": "5.00", "currency": "EUR"}
        ])
    );
}
