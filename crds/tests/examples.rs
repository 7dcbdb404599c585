//! Every manifest under `examples/` is a valid resource: it parses into the
//! Rust types without losing a field, passes `validate()`, and its
//! references point at resources of the same story.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use support::{Resource, documents, example_files};

#[test]
fn every_example_parses_round_trips_and_validates() {
    let files = example_files();
    assert!(
        files.len() >= 7,
        "expected the example manifests, found {files:?}"
    );
    let mut kinds = BTreeSet::new();
    for file in &files {
        for doc in documents(file) {
            let resource =
                Resource::parse(&doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if let Err(e) = resource.validate() {
                panic!("{} ({}): {e}", file.display(), resource.name());
            }
            assert!(
                doc["metadata"]["namespace"].is_null(),
                "{}: examples leave the namespace to `kubectl apply -n`",
                file.display()
            );
            kinds.insert(doc["kind"].as_str().unwrap().to_owned());
        }
    }
    let want: BTreeSet<String> = ["Agent", "Approver", "BehavioralEnvelope", "CapabilityGrant"]
        .map(String::from)
        .into();
    assert_eq!(kinds, want, "every kind has an example");
}

#[test]
fn grants_refer_to_the_agent_and_envelope_of_their_story() {
    for story in ["calendar-assistant", "shopping-agent"] {
        let dir = support::repo_root().join("examples").join(story);
        let resources: Vec<Resource> = example_files()
            .iter()
            .filter(|f| f.starts_with(&dir))
            .flat_map(|f| documents(f))
            .map(|d| Resource::parse(&d).unwrap())
            .collect();
        let names = |pick: fn(&Resource) -> bool| -> BTreeSet<String> {
            resources
                .iter()
                .filter(|r| pick(r))
                .map(|r| r.name().to_owned())
                .collect()
        };
        let agents = names(|r| matches!(r, Resource::Agent(_)));
        let envelopes = names(|r| matches!(r, Resource::Envelope(_)));
        let grants: Vec<_> = resources
            .iter()
            .filter_map(|r| match r {
                Resource::Grant(g) => Some(g),
                _ => None,
            })
            .collect();
        assert!(!grants.is_empty(), "{story} has a grant");
        for grant in grants {
            assert!(
                agents.contains(&grant.spec.agent_ref.name),
                "{story}: agentRef"
            );
            let envelope = grant.spec.envelope_ref.as_ref().unwrap();
            assert!(envelopes.contains(&envelope.name), "{story}: envelopeRef");
        }
    }
}

#[test]
fn the_stories_say_what_the_issue_asked_for() {
    use agentauth_core::window::Weekday::*;
    let calendar = support::repo_root().join("examples/calendar-assistant/envelope.yaml");
    let Resource::Envelope(office) = Resource::parse(&documents(&calendar)[0]).unwrap() else {
        panic!("not an envelope")
    };
    let window = &office.spec.time_windows[0];
    assert_eq!(window.days, [Mon, Tue, Wed, Thu, Fri]);
    assert_eq!(
        (window.start.as_str(), window.end.as_str()),
        ("09:00", "18:00")
    );
    assert_eq!(window.time_zone, "Europe/Berlin");
    let rate = &office.spec.rate_limits[0];
    assert_eq!((rate.requests, rate.period.as_millis()), (60, 60_000));

    let shop = support::repo_root().join("examples/shopping-agent/envelope.yaml");
    let Resource::Envelope(budget) = Resource::parse(&documents(&shop)[0]).unwrap() else {
        panic!("not an envelope")
    };
    let minor = budget.spec.transactions.unwrap().to_minor().unwrap();
    assert_eq!(minor.currency.code(), "EUR");
    assert_eq!(
        (minor.max_per_transaction, minor.max_per_day),
        (Some(5000), Some(20000))
    );
}
