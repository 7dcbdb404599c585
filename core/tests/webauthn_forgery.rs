//! Forged and replayed passkey approvals, checked by the pure verifier that
//! the webhook and the operator share. The assertions are real ES256
//! WebAuthn assertions from a software authenticator.
#![allow(clippy::unwrap_used)]

use agentauth_core::approval::{ChallengeInput, Decision, challenge, spec_digest};
use agentauth_core::webauthn::{
    self, Assertion, Credential, Expected, SoftAuthenticator, USER_PRESENT,
};
use agentauth_core::{ErrorCode, Result};

const RP: &str = "approvals.agentauth.example";
const ORIGIN: &str = "https://approvals.agentauth.example";

fn input(spec: serde_json::Value, decision: Decision) -> ChallengeInput {
    ChallengeInput {
        grant_uid: "4b0c7c2a-0000-4000-8000-00000000c0de".into(),
        generation: 1,
        spec_digest: spec_digest(&spec).unwrap(),
        decision,
        nonce: "approval-nonce-0123456789".into(),
        envelope_digest: String::new(),
        agent_key_thumbprint: spec_digest(&serde_json::json!({"agent": "key"})).unwrap(),
    }
}

fn spec() -> serde_json::Value {
    serde_json::json!({"agentRef": "shopper", "serviceProvider": "payments",
        "capabilities": [{"type": "transact", "resource": "orders/*", "maxAmount": "50.00", "currency": "EUR"}]})
}

struct Setup {
    authenticator: SoftAuthenticator,
    origins: Vec<String>,
}

fn setup() -> Setup {
    Setup {
        authenticator: SoftAuthenticator::new(),
        origins: vec![ORIGIN.into()],
    }
}

fn check(
    s: &Setup,
    raw: &(Vec<u8>, Vec<u8>, Vec<u8>),
    signed_for: &ChallengeInput,
    stored_count: u32,
) -> Result<webauthn::Verified> {
    let key = s.authenticator.public_key().unwrap();
    let expected_challenge = challenge(signed_for).unwrap();
    webauthn::verify(
        &Assertion {
            authenticator_data: &raw.0,
            client_data_json: &raw.1,
            signature: &raw.2,
        },
        &Expected {
            challenge: &expected_challenge,
            rp_id: RP,
            origins: &s.origins,
            require_user_verification: true,
        },
        &Credential {
            key: &key,
            sign_count: stored_count,
        },
    )
}

#[test]
fn a_genuine_approval_verifies_and_advances_the_counter() {
    let mut s = setup();
    let grant = input(spec(), Decision::Approved);
    let raw = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    let v = check(&s, &raw, &grant, 0).unwrap();
    assert_eq!(v.sign_count, 1);
    assert!(v.user_verified);
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let s = setup();
    let mut attacker = SoftAuthenticator::new();
    let grant = input(spec(), Decision::Approved);
    let raw = attacker.assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    assert_eq!(
        check(&s, &raw, &grant, 0).unwrap_err().code,
        ErrorCode::ApprovalSignatureInvalid
    );
}

#[test]
fn a_signature_over_another_grant_or_a_changed_spec_or_decision_is_refused() {
    let mut s = setup();
    let signed = input(spec(), Decision::Approved);
    let raw = s
        .authenticator
        .assert(&challenge(&signed).unwrap(), RP, ORIGIN);
    let mut other_grant = signed.clone();
    other_grant.grant_uid = "another-uid".into();
    let mut bigger = spec();
    bigger["capabilities"][0]["maxAmount"] = "5000.00".into();
    let changed_spec = input(bigger, Decision::Approved);
    let flipped = input(spec(), Decision::Denied);
    for expected in [other_grant, changed_spec, flipped] {
        assert_eq!(
            check(&s, &raw, &expected, 0).unwrap_err().code,
            ErrorCode::ApprovalChallengeMismatch
        );
    }
}

#[test]
fn a_replayed_assertion_fails_the_counter() {
    let mut s = setup();
    let grant = input(spec(), Decision::Approved);
    let raw = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    let stored = check(&s, &raw, &grant, 0).unwrap().sign_count;
    assert_eq!(
        check(&s, &raw, &grant, stored).unwrap_err().code,
        ErrorCode::ApprovalCounterNotIncreasing
    );
}

#[test]
fn a_counter_that_goes_backwards_is_refused_but_zero_counters_are_allowed() {
    let mut s = setup();
    let grant = input(spec(), Decision::Approved);
    s.authenticator.counter = 5;
    let raw = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    assert_eq!(
        check(&s, &raw, &grant, 9).unwrap_err().code,
        ErrorCode::ApprovalCounterNotIncreasing
    );
    s.authenticator.counter = 0;
    let raw = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    assert_eq!(check(&s, &raw, &grant, 0).unwrap().sign_count, 0);
}

#[test]
fn missing_user_verification_or_presence_is_refused() {
    let mut s = setup();
    let grant = input(spec(), Decision::Approved);
    s.authenticator.flags = USER_PRESENT;
    let raw = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    assert_eq!(
        check(&s, &raw, &grant, 0).unwrap_err().code,
        ErrorCode::ApprovalUserNotVerified
    );
    s.authenticator.flags = 0;
    let raw = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    assert_eq!(
        check(&s, &raw, &grant, 0).unwrap_err().code,
        ErrorCode::ApprovalUserNotPresent
    );
}

#[test]
fn a_phishing_origin_or_another_relying_party_is_refused() {
    let mut s = setup();
    let grant = input(spec(), Decision::Approved);
    let raw = s.authenticator.assert(
        &challenge(&grant).unwrap(),
        RP,
        "https://approvals.agentauth.example.evil",
    );
    assert_eq!(
        check(&s, &raw, &grant, 0).unwrap_err().code,
        ErrorCode::ApprovalOriginMismatch
    );
    let raw = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), "evil.example", ORIGIN);
    assert_eq!(
        check(&s, &raw, &grant, 0).unwrap_err().code,
        ErrorCode::ApprovalRpIdMismatch
    );
}

#[test]
fn a_registration_ceremony_or_malformed_client_data_is_refused() {
    let mut s = setup();
    let grant = input(spec(), Decision::Approved);
    let (data, client, _) = s
        .authenticator
        .assert(&challenge(&grant).unwrap(), RP, ORIGIN);
    let create = String::from_utf8(client)
        .unwrap()
        .replace("webauthn.get", "webauthn.create");
    let raw = (data.clone(), create.into_bytes(), vec![]);
    assert_eq!(
        check(&s, &raw, &grant, 0).unwrap_err().code,
        ErrorCode::ApprovalTypeInvalid
    );
    let raw = (data.clone(), b"{not json".to_vec(), vec![]);
    assert_eq!(
        check(&s, &raw, &grant, 0).unwrap_err().code,
        ErrorCode::ApprovalInvalid
    );
    let raw = (
        vec![0; 10],
        br#"{"type":"webauthn.get","challenge":"","origin":""}"#.to_vec(),
        vec![],
    );
    assert!(check(&s, &raw, &grant, 0).is_err());
}
