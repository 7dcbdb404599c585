//! What every generated CRD promises, checked on the generated objects:
//! names, scope, category, the status subresource, printer columns,
//! conditions as a list-map, a message on every CEL rule, and a rule in
//! words beside every pattern.

#![allow(clippy::unwrap_used, clippy::panic)]

use agentauth_crds::schema::{VALIDATIONS, patterns_without_rules};
use serde_json::Value;

fn crds() -> Vec<Value> {
    agentauth_crds::all_crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect()
}

fn schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

#[test]
fn names_scope_category_and_subresources() {
    let want = [
        ("agents.agentauth.dev", "Agent", "Namespaced", "ag"),
        (
            "behavioralenvelopes.agentauth.dev",
            "BehavioralEnvelope",
            "Namespaced",
            "benv",
        ),
        (
            "capabilitygrants.agentauth.dev",
            "CapabilityGrant",
            "Namespaced",
            "cgrant",
        ),
        ("approvers.agentauth.dev", "Approver", "Cluster", "apprv"),
    ];
    let crds = crds();
    assert_eq!(crds.len(), want.len());
    for (crd, (name, kind, scope, short)) in crds.iter().zip(want) {
        assert_eq!(crd["metadata"]["name"], name);
        let spec = &crd["spec"];
        assert_eq!(spec["group"], agentauth_crds::GROUP);
        assert_eq!(spec["names"]["kind"], kind);
        assert_eq!(spec["scope"], scope, "{name}");
        assert_eq!(spec["names"]["shortNames"][0], short, "{name}");
        assert_eq!(
            spec["names"]["categories"],
            serde_json::json!([agentauth_crds::CATEGORY])
        );
        let version = &spec["versions"][0];
        assert_eq!(version["name"], agentauth_crds::VERSION);
        assert_eq!(
            version["subresources"]["status"],
            serde_json::json!({}),
            "{name}"
        );
        let conditions = &schema(crd)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{name}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{name}"
        );
        assert!(
            schema(crd)["description"].as_str().unwrap().len() > 40,
            "{name} has a description"
        );
    }
}

#[test]
fn printer_columns() {
    let columns = |kind: &str| -> Vec<String> {
        let crd = crds()
            .into_iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .unwrap();
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        columns("CapabilityGrant"),
        ["Agent", "Provider", "Phase", "Approvals", "Expires", "Age"]
    );
    assert_eq!(
        columns("Agent"),
        ["Display Name", "Owner", "Thumbprint", "Ready", "Age"]
    );
    assert!(columns("BehavioralEnvelope").ends_with(&["Ready".into(), "Age".into()]));
    assert!(columns("Approver").starts_with(&["Display Name".into(), "Email".into()]));
}

/// Calls `f` on every schema object nested in `schema`.
fn each_schema(schema: &Value, f: &mut impl FnMut(&Value)) {
    f(schema);
    for key in ["properties"] {
        if let Some(props) = schema[key].as_object() {
            props.values().for_each(|p| each_schema(p, f));
        }
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            each_schema(&schema[key], f);
        }
    }
}

#[test]
fn every_rule_has_a_message_and_every_pattern_a_rule() {
    let mut rules = 0;
    for crd in crds() {
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        each_schema(schema(&crd), &mut |s| {
            for rule in s[VALIDATIONS].as_array().into_iter().flatten() {
                rules += 1;
                let message = rule["message"].as_str().unwrap_or_default();
                assert!(
                    message.len() > 20,
                    "{name}: rule {} has no real message",
                    rule["rule"]
                );
            }
        });
        assert_eq!(
            patterns_without_rules(schema(&crd)),
            Vec::<String>::new(),
            "{name}"
        );
    }
    assert!(rules >= 30, "only {rules} CEL rules");
}
