#![allow(clippy::unwrap_used)]

use super::*;
use crate::money::Currency;

fn pat(s: &str) -> ResourcePattern {
    ResourcePattern::parse(s).unwrap()
}

fn cap(kind: CapabilityType, resource: &str) -> Capability {
    Capability {
        kind,
        name: None,
        resource: pat(resource),
        actions: None,
        filter: None,
        constraints: None,
        max_amount: None,
        currency: None,
    }
}

fn pay(resource: &str, max: &str, currency: Currency) -> Capability {
    Capability {
        max_amount: Some(Decimal::new(max).unwrap()),
        currency: Some(currency),
        ..cap(CapabilityType::Transact, resource)
    }
}

fn with_actions(c: Capability, actions: &[&str]) -> Capability {
    Capability {
        actions: Some(actions.iter().map(|a| a.to_string()).collect()),
        ..c
    }
}

fn req(kind: CapabilityType, resource: &str) -> RequestedAction {
    RequestedAction {
        kind,
        resource: resource.into(),
        action: None,
        amount: None,
        currency: None,
        name: None,
    }
}

fn req_pay(resource: &str, amount: &str, currency: Currency) -> RequestedAction {
    RequestedAction {
        amount: Some(amount.into()),
        currency: Some(currency),
        ..req(CapabilityType::Transact, resource)
    }
}

#[test]
fn patterns_accepted() {
    let long_ok = format!("{}/b", "a".repeat(MAX_RESOURCE_LEN - 2));
    let deep_ok = vec!["s"; MAX_SEGMENTS].join("/");
    for p in [
        "a",
        "*",
        "**",
        "a/b",
        "a/*/c",
        "a/**",
        "**/x",
        "a/**/b/*",
        "ns:prod/orders/42",
        "~!@#$%^&()_+=[]{}|\\;'\",<>?`",
        "...",
        ".a",
        "a.",
        "**/**",
    ] {
        assert_eq!(pat(p).as_str(), p, "{p}");
    }
    assert!(ResourcePattern::parse(&long_ok).is_ok());
    assert!(ResourcePattern::parse(&deep_ok).is_ok());
}

#[test]
fn patterns_refused() {
    use ErrorCode::{InputTooLarge, ResourcePatternInvalid as Invalid};
    let too_long = "a".repeat(MAX_RESOURCE_LEN + 1);
    let too_deep = vec!["s"; MAX_SEGMENTS + 1].join("/");
    let cases: &[(&str, ErrorCode)] = &[
        ("", Invalid),
        ("/", Invalid),
        ("/a", Invalid),
        ("a/", Invalid),
        ("a//b", Invalid),
        ("***", Invalid),
        ("a*", Invalid),
        ("*a", Invalid),
        ("a/b*c", Invalid),
        ("a/./b", Invalid),
        ("a/..", Invalid),
        ("..", Invalid),
        ("a b", Invalid),
        ("a\tb", Invalid),
        ("a\nb", Invalid),
        ("caf\u{e9}", Invalid),
        ("a/\u{0}", Invalid),
        (&too_deep, Invalid),
        (&too_long, InputTooLarge),
    ];
    for &(p, code) in cases {
        let err = ResourcePattern::parse(p).unwrap_err();
        assert_eq!(err.code, code, "{p:?}: {err}");
    }
}

#[test]
fn resources_are_concrete() {
    assert!(Resource::parse("orders/eu/42").is_ok());
    for r in ["orders/*", "**", "", "a//b", "a/../b"] {
        assert_eq!(
            Resource::parse(r).unwrap_err().code,
            ErrorCode::ResourcePatternInvalid,
            "{r:?}"
        );
    }
    assert_eq!(
        Resource::parse(&"a".repeat(600)).unwrap_err().code,
        ErrorCode::InputTooLarge
    );
}

#[test]
fn matching_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("a", "a", true),
        ("a", "b", false),
        ("a", "a/b", false),
        ("a/b", "a", false),
        ("*", "a", true),
        ("*", "a/b", false),
        ("**", "a", true),
        ("**", "a/b/c", true),
        ("a/**", "a", true),
        ("a/**", "a/b/c", true),
        ("a/**", "b/a", false),
        ("a/*", "a", false),
        ("a/*", "a/b", true),
        ("a/*/c", "a/b/c", true),
        ("a/*/c", "a/b/d", false),
        ("a/*/c", "a/b/x/c", false),
        ("a/**/c", "a/c", true),
        ("a/**/c", "a/b/x/c", true),
        ("a/**/c", "a/b/x/d", false),
        ("**/c", "c", true),
        ("**/c", "a/b/c", true),
        ("**/c/*", "c/c/c", true),
        ("**/a/*/**", "x/a", false),
        ("**/a/*/**", "x/a/y/z", true),
        ("Orders", "orders", false),
    ];
    for &(p, r, want) in cases {
        assert_eq!(
            pat(p).matches(&Resource::parse(r).unwrap()),
            want,
            "{p} vs {r}"
        );
    }
}

#[test]
fn containment_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("a/*/c", "a/**", true),
        ("a/**", "a/*", false),
        ("**", "**", true),
        ("a", "a", true),
        ("a", "b", false),
        ("a", "*", true),
        ("*", "a", false),
        ("a/b", "a/**", true),
        ("a", "a/**", true),
        ("a/**", "a/**", true),
        ("a/**/b", "a/**", true),
        ("a/**", "**", true),
        ("**", "a/**", false),
        ("*/b", "**/b", true),
        ("**/b", "*/b", false),
        ("a/*", "*/*", true),
        ("*/*", "a/*", false),
        // Reordered wildcards: both are "one segment or more".
        ("**/*", "*/**", true),
        ("*/**", "**/*", true),
        // Every resource has a segment, so "**" and "*/**" both mean everything.
        ("**", "*/**", true),
        ("*/*/**", "**/*/*", true),
        ("**/*/*", "*/**", true),
        ("*/**", "*/*/**", false),
        ("a/**/b", "**/b", true),
        ("a/**/b", "a/**/b/**", true),
        ("a/**/b/**", "a/**/b", false),
        // A child "*" may be "a": then the parent needs the "x" branch too.
        ("*/a/*", "**/a/*", true),
        ("a/a/*", "**/a/*", true),
        ("a/*/a", "**/a/*", false),
        ("x/**", "x/**/y", false),
    ];
    for &(c, p, want) in cases {
        assert_eq!(pat(c).is_subset_of(&pat(p)), want, "{c} ⊆ {p}");
    }
}

#[test]
fn containment_of_adversarial_patterns_stays_bounded() {
    // Many stars after a literal make the parent's state sets many; the
    // search must end (answering conservatively if it must).
    let child = format!("**/a/{}", vec!["*"; 29].join("/"));
    let parent = format!("**/a/{}", vec!["*"; 29].join("/"));
    let (c, p) = (pat(&child), pat(&parent));
    assert!(c.is_subset_of(&p));
    let alt = vec!["**/a"; 16].join("/");
    let _ = pat(&alt).is_subset_of(&pat(&parent));
    let _ = pat(&parent).is_subset_of(&pat(&alt));
}

#[test]
fn capability_validation_table() {
    use CapabilityType::*;
    let named = |kind, name: &str| Capability {
        name: Some(name.into()),
        ..cap(kind, "a")
    };
    let ok = [
        cap(Read, "a/**"),
        named(Custom, "send-email"),
        pay("shop/**", "50.00", Currency::EUR),
        cap(Transact, "shop"),
        with_actions(cap(Read, "a"), &["get", "list"]),
        Capability {
            filter: Some("status=open".into()),
            ..cap(Read, "a")
        },
    ];
    for c in &ok {
        assert_eq!(c.validate(), Ok(()), "{c:?}");
    }
    let half = Capability {
        currency: Some(Currency::EUR),
        ..cap(Transact, "a")
    };
    let stray = Capability {
        currency: Some(Currency::EUR),
        max_amount: Some(Decimal::new("1").unwrap()),
        ..cap(Read, "a")
    };
    let big = serde_json::json!({ "k": "x".repeat(MAX_CONSTRAINTS_LEN) });
    let refused = [
        (named(Read, "x"), ErrorCode::CapabilityInvalid),
        (cap(Custom, "a"), ErrorCode::CapabilityInvalid),
        (named(Custom, "has space"), ErrorCode::CapabilityInvalid),
        (named(Custom, ""), ErrorCode::CapabilityInvalid),
        (half, ErrorCode::CapabilityInvalid),
        (stray, ErrorCode::CapabilityInvalid),
        (pay("a", "1.234", Currency::EUR), ErrorCode::AmountInvalid),
        (
            with_actions(cap(Read, "a"), &[]),
            ErrorCode::CapabilityInvalid,
        ),
        (
            with_actions(cap(Read, "a"), &["get", "get"]),
            ErrorCode::CapabilityInvalid,
        ),
        (
            with_actions(cap(Read, "a"), &["g et"]),
            ErrorCode::CapabilityInvalid,
        ),
        (
            Capability {
                filter: Some(String::new()),
                ..cap(Read, "a")
            },
            ErrorCode::CapabilityInvalid,
        ),
        (
            Capability {
                filter: Some("a\nb".into()),
                ..cap(Read, "a")
            },
            ErrorCode::CapabilityInvalid,
        ),
        (
            Capability {
                constraints: serde_json::from_value(big).unwrap(),
                ..cap(Read, "a")
            },
            ErrorCode::CapabilityInvalid,
        ),
    ];
    for (c, code) in refused {
        assert_eq!(c.validate().unwrap_err().code, code, "{c:?}");
    }
    let err = Capability::validate_all(&[cap(Read, "a"), cap(Custom, "a")]).unwrap_err();
    assert!(err.message.starts_with("capabilities[1]: "), "{err}");
    assert!(Capability::validate_all(&[]).is_err());
}

#[test]
fn crd_form_is_yaml_friendly_and_strict() {
    let json = r#"{"type":"transact","resource":"shop/orders/*","actions":["pay"],"maxAmount":"50.00","currency":"EUR"}"#;
    let c: Capability = serde_json::from_str(json).unwrap();
    assert_eq!(
        c,
        with_actions(pay("shop/orders/*", "50.00", Currency::EUR), &["pay"])
    );
    assert_eq!(serde_json::to_string(&c).unwrap(), json);
    for bad in [
        r#"{"type":"transact","resource":"a","maxAmount":50.0,"currency":"EUR"}"#,
        r#"{"type":"agentauth:read","resource":"a"}"#,
        r#"{"type":"read","resource":"a/"}"#,
        r#"{"type":"read","resource":"a","extra":1}"#,
        r#"{"type":"read"}"#,
    ] {
        assert!(serde_json::from_str::<Capability>(bad).is_err(), "{bad}");
    }
}

#[test]
fn authorization_detail_round_trip() {
    let c = Capability {
        constraints: Some([("region".to_string(), serde_json::json!("eu"))].into()),
        ..with_actions(pay("shop/orders/*", "50.00", Currency::EUR), &["pay"])
    };
    let d = AuthorizationDetail::from(&c);
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(
        json,
        r#"{"type":"agentauth:transact","resource":"shop/orders/*","actions":["pay"],"constraints":{"region":"eu"},"maxAmount":"50.00","currency":"EUR"}"#
    );
    let back: AuthorizationDetail = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    assert_eq!(<Capability>::try_from(back).unwrap(), c);
    for kind in CapabilityType::ALL {
        let json = serde_json::to_string(&DetailType(kind)).unwrap();
        assert_eq!(json, format!("\"agentauth:{kind}\""));
        assert_eq!(
            serde_json::from_str::<DetailType>(&json).unwrap(),
            DetailType(kind)
        );
    }
    assert!(
        serde_json::from_str::<AuthorizationDetail>(r#"{"type":"read","resource":"a"}"#).is_err()
    );
    assert!(
        serde_json::from_str::<AuthorizationDetail>(
            r#"{"type":"payment_initiation","resource":"a"}"#
        )
        .is_err()
    );
    // TryFrom validates: a custom detail without a name is refused.
    let d: AuthorizationDetail =
        serde_json::from_str(r#"{"type":"agentauth:custom","resource":"a"}"#).unwrap();
    assert_eq!(
        <Capability>::try_from(d).unwrap_err().code,
        ErrorCode::CapabilityInvalid
    );
}

#[test]
fn permits_allows() {
    use CapabilityType::*;
    let granted = [
        cap(Read, "docs/**"),
        with_actions(cap(Write, "orders/*"), &["create", "update"]),
        pay("shop/**", "50.00", Currency::EUR),
        cap(Transact, "free/**"),
        Capability {
            name: Some("send-email".into()),
            ..cap(Custom, "mail/*")
        },
    ];
    let with_action = |r: RequestedAction, a: &str| RequestedAction {
        action: Some(a.into()),
        ..r
    };
    let allowed = [
        req(Read, "docs"),
        req(Read, "docs/a/b"),
        with_action(req(Read, "docs/x"), "anything"),
        with_action(req(Write, "orders/1"), "update"),
        req_pay("shop/cart", "50.00", Currency::EUR),
        req_pay("shop/cart", "0.5", Currency::EUR),
        req_pay("free/x", "1000000", Currency::JPY),
        RequestedAction {
            name: Some("send-email".into()),
            ..req(Custom, "mail/alice")
        },
    ];
    for r in &allowed {
        assert_eq!(permits(&granted, r), Ok(()), "{r:?}");
    }
}

#[test]
fn permits_denial_codes() {
    use CapabilityType::*;
    use ErrorCode::*;
    let granted = [
        cap(Read, "docs/**"),
        with_actions(cap(Write, "orders/*"), &["create"]),
        pay("shop/**", "50.00", Currency::EUR),
        pay("shop/**", "30.00", Currency::USD),
        Capability {
            name: Some("send-email".into()),
            ..cap(Custom, "mail/*")
        },
    ];
    let with_action = |r: RequestedAction, a: &str| RequestedAction {
        action: Some(a.into()),
        ..r
    };
    let cases: Vec<(RequestedAction, ErrorCode)> = vec![
        (req(Read, "secrets/x"), CapabilityNotGranted),
        (req(Delete, "docs/a"), CapabilityNotGranted),
        (
            with_action(req(Write, "orders/1"), "delete"),
            CapabilityNotGranted,
        ),
        (req(Write, "orders/1"), CapabilityNotGranted),
        (
            with_action(req(Write, "orders/1/items"), "create"),
            CapabilityNotGranted,
        ),
        (
            RequestedAction {
                name: Some("send-sms".into()),
                ..req(Custom, "mail/alice")
            },
            CapabilityNotGranted,
        ),
        (req(Custom, "mail/alice"), CapabilityNotGranted),
        (
            RequestedAction {
                name: Some("send-email".into()),
                ..req(Read, "docs/a")
            },
            CapabilityNotGranted,
        ),
        (
            req_pay("elsewhere", "1", Currency::EUR),
            CapabilityNotGranted,
        ),
        (
            req_pay("shop/cart", "50.01", Currency::EUR),
            AmountOverLimit,
        ),
        (
            req_pay("shop/cart", "30.01", Currency::USD),
            AmountOverLimit,
        ),
        (req_pay("shop/cart", "1", Currency::JPY), CurrencyMismatch),
        (req_pay("shop/cart", "1.234", Currency::EUR), AmountInvalid),
        (req_pay("shop/cart", "-1", Currency::EUR), AmountInvalid),
        (req_pay("shop/cart", "1e3", Currency::EUR), AmountInvalid),
        (req(Transact, "shop/cart"), AmountInvalid),
        (
            RequestedAction {
                currency: None,
                ..req_pay("shop/cart", "1", Currency::EUR)
            },
            AmountInvalid,
        ),
        (
            RequestedAction {
                amount: Some("1".into()),
                ..req(Read, "docs/a")
            },
            AmountInvalid,
        ),
        (req(Read, "docs/*"), ResourcePatternInvalid),
        (req(Read, "docs/../secrets"), ResourcePatternInvalid),
    ];
    for (r, code) in cases {
        let err = permits(&granted, &r).unwrap_err();
        assert_eq!(err.code, code, "{r:?}: {err}");
    }
}

#[test]
fn denial_messages_say_what_and_why() {
    let granted = [pay("shop/**", "50.00", Currency::EUR)];
    let err = permits(&granted, &req_pay("shop/cart", "60", Currency::EUR)).unwrap_err();
    assert_eq!(
        err.message,
        "transact of 60.00 EUR on \"shop/cart\" exceeds the granted per-transaction limit of 50.00 EUR"
    );
    let err = permits(&granted, &req_pay("shop/cart", "6", Currency::USD)).unwrap_err();
    assert_eq!(
        err.message,
        "transact of 6.00 USD on \"shop/cart\" is in the wrong currency: the grant allows EUR"
    );
    let hostile = RequestedAction {
        action: Some("x\n".repeat(500)),
        ..req(CapabilityType::Read, "a")
    };
    let err = permits(&granted, &hostile).unwrap_err();
    assert!(
        err.message.len() < 300 && !err.message.contains('\n'),
        "{err}"
    );
}

#[test]
fn subset_table() {
    use CapabilityType::*;
    let parent = [
        with_actions(cap(Read, "docs/**"), &["get", "list"]),
        cap(Write, "tmp/**"),
        pay("shop/**", "50.00", Currency::EUR),
        Capability {
            filter: Some("owner=me".into()),
            ..cap(Delete, "files/*")
        },
        Capability {
            name: Some("send-email".into()),
            ..cap(Custom, "mail/*")
        },
    ];
    let sub = |child: Vec<Capability>| is_subset(&child, &parent);
    assert!(sub(vec![]));
    assert!(sub(vec![with_actions(cap(Read, "docs/a/*"), &["get"])]));
    assert!(sub(vec![
        with_actions(cap(Read, "docs/a/*"), &["get"]),
        pay("shop/cart", "10", Currency::EUR)
    ]));
    assert!(sub(vec![with_actions(cap(Write, "tmp/x"), &["anything"])]));
    assert!(sub(vec![Capability {
        filter: Some("x".into()),
        ..cap(Write, "tmp/x")
    }]));
    assert!(sub(vec![pay("shop/**", "50", Currency::EUR)]));
    assert!(sub(vec![Capability {
        filter: Some("owner=me".into()),
        ..cap(Delete, "files/a")
    }]));
    assert!(sub(vec![Capability {
        name: Some("send-email".into()),
        ..cap(Custom, "mail/bob")
    }]));

    assert!(
        !sub(vec![cap(Read, "docs/a")]),
        "no actions asks for all actions"
    );
    assert!(!sub(vec![with_actions(
        cap(Read, "docs/a"),
        &["get", "delete"]
    )]));
    assert!(!sub(vec![with_actions(cap(Read, "**"), &["get"])]));
    assert!(!sub(vec![cap(Write, "docs/a")]), "type differs");
    assert!(!sub(vec![pay("shop/cart", "50.01", Currency::EUR)]));
    assert!(!sub(vec![pay("shop/cart", "10", Currency::USD)]));
    assert!(
        !sub(vec![cap(Transact, "shop/cart")]),
        "unlimited is not within a limit"
    );
    assert!(
        !sub(vec![cap(Delete, "files/a")]),
        "the parent's filter must be kept"
    );
    assert!(!sub(vec![Capability {
        filter: Some("owner=you".into()),
        ..cap(Delete, "files/a")
    }]));
    assert!(!sub(vec![Capability {
        name: Some("send-sms".into()),
        ..cap(Custom, "mail/bob")
    }]));
    // One capability must cover each child capability alone.
    let split = [
        with_actions(cap(Read, "a"), &["get"]),
        with_actions(cap(Read, "a"), &["list"]),
    ];
    assert!(!is_subset(
        &[with_actions(cap(Read, "a"), &["get", "list"])],
        &split
    ));
}
