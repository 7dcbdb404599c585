//! Who answers for an Agent: the created-by annotation names the creating
//! user and never changes, and `spec.owner` never changes — the checks that
//! hold even where the mutating endpoint or the CEL rule are missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agentauth_crds::agent::CREATED_BY_ANNOTATION;
use serde_json::{Value, json};

use super::*;

fn created_by(owner: &str, creator: Option<&str>) -> Value {
    let mut a = to_value(&agent(owner));
    if let Some(creator) = creator {
        a["metadata"]["annotations"] = json!({ CREATED_BY_ANNOTATION: creator });
    }
    a
}

/// Threat: forged creator — without the mutating endpoint, a client names
/// someone else (or no one) as the Agent's creator; the create is refused.
#[tokio::test]
async fn a_create_must_carry_its_own_creator() {
    let v = validator(Fake::default());
    let dana = "dana@example.com";
    accepts(
        decide(
            &v,
            &body(
                "agents",
                dana,
                &created_by("bob@example.com", Some(dana)),
                None,
            ),
        )
        .await,
    );
    rejects(
        decide(
            &v,
            &body(
                "agents",
                dana,
                &created_by("bob@example.com", Some("bob@example.com")),
                None,
            ),
        )
        .await,
        "created_by_invalid: metadata.annotations[agentauth.dev/created-by]: it names \"bob@example.com\"",
    );
    rejects(
        decide(
            &v,
            &body("agents", dana, &created_by("bob@example.com", None), None),
        )
        .await,
        "created_by_invalid: metadata.annotations[agentauth.dev/created-by]: it is missing",
    );
    rejects(
        decide(
            &v,
            &body("agents", "", &created_by("bob@example.com", Some("")), None),
        )
        .await,
        "created_by_invalid",
    );
}

/// Threat: creator laundering — an update rewrites or removes the recorded
/// creator so that the creator may approve the agent's grants; refused.
#[tokio::test]
async fn the_creator_never_changes() {
    let v = validator(Fake::default());
    let stored = created_by("bob@example.com", Some("dana@example.com"));
    let rewritten = created_by("bob@example.com", Some("carol@example.com"));
    rejects(
        decide(
            &v,
            &body("agents", "dana@example.com", &rewritten, Some(&stored)),
        )
        .await,
        "created_by_invalid: metadata.annotations[agentauth.dev/created-by]: the Agent's creator is recorded once",
    );
    let removed = created_by("bob@example.com", None);
    rejects(
        decide(&v, &body("agents", "admin", &removed, Some(&stored))).await,
        "removes it",
    );
    // The operator is no exception, and neither is the status subresource.
    rejects(
        decide(
            &v,
            &body("agents/status", OPERATOR, &removed, Some(&stored)),
        )
        .await,
        "created_by_invalid",
    );
    // Other edits keep it and pass.
    let mut described = stored.clone();
    described["spec"]["description"] = json!("Plans meetings");
    accepts(decide(&v, &body("agents", "admin", &described, Some(&stored))).await);
    // An Agent stored before creators were recorded may stay without one.
    let legacy = created_by("bob@example.com", None);
    accepts(decide(&v, &body("agents", "admin", &legacy, Some(&legacy))).await);
}

/// Threat: owner swap — after create, `spec.owner` is edited to move the
/// agent away from (or onto) an approver; refused even without the CEL rule.
#[tokio::test]
async fn the_owner_never_changes() {
    let v = validator(Fake::default());
    let stored = created_by("bob@example.com", Some("admin"));
    let swapped = created_by("carol@example.com", Some("admin"));
    rejects(
        decide(&v, &body("agents", "admin", &swapped, Some(&stored))).await,
        "owner_immutable: spec.owner: owner cannot change (from \"bob@example.com\" to \"carol@example.com\")",
    );
}
