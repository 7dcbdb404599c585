//! Properties of resource patterns and capability containment: parsing never
//! panics, matching agrees with how patterns are built, and `is_subset` is
//! both sound (an attenuated grant never permits more than its parent) and,
//! for patterns, complete (when it says no, a counterexample exists).
#![allow(clippy::unwrap_used)]

use agentauth_core::capability::{
    Capability, CapabilityType, RequestedAction, Resource, ResourcePattern, is_subset, permits,
};
use agentauth_core::money::{Currency, Decimal};
use proptest::prelude::*;

/// Literals patterns are built from; "x" never appears in a pattern, so it
/// stands for every literal a pattern does not name.
const LITERALS: [&str; 4] = ["a", "b", "c", "x"];

fn pattern_of(max_len: usize) -> impl Strategy<Value = String> {
    let seg = prop_oneof![Just("a"), Just("b"), Just("c"), Just("*"), Just("**")];
    prop::collection::vec(seg, 1..=max_len).prop_map(|v| v.join("/"))
}

fn resource() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&LITERALS[..]), 1..=6).prop_map(|v| v.join("/"))
}

/// How to fill the wildcards of a pattern: per wildcard, a count (for `**`)
/// and literal picks.
fn fills() -> impl Strategy<Value = Vec<(usize, [usize; 3])>> {
    prop::collection::vec((0usize..=3, [0usize..4, 0usize..4, 0usize..4]), 1..=6)
}

/// A concrete resource the pattern matches by construction: `*` becomes one
/// literal, `**` zero to three. `None` when that leaves nothing.
fn instantiate(pattern: &str, fills: &[(usize, [usize; 3])]) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    let mut k = 0;
    for seg in pattern.split('/') {
        let (count, picks) = fills[k % fills.len()];
        match seg {
            "*" => out.push(LITERALS[picks[0]]),
            "**" => out.extend(picks[..count].iter().map(|&p| LITERALS[p])),
            lit => {
                out.push(lit);
                continue;
            }
        }
        k += 1;
    }
    (!out.is_empty()).then(|| out.join("/"))
}

fn matches(p: &ResourcePattern, r: &str) -> bool {
    p.matches(&Resource::parse(r).unwrap())
}

/// Every "hardest" resource of `child` (see `ResourcePattern::is_subset_of`):
/// `*` as the fresh literal "x", `**` as 0..=max_run of them.
fn hardest_words(child: &str, max_run: usize) -> Vec<String> {
    let mut words: Vec<Vec<&str>> = vec![Vec::new()];
    for seg in child.split('/') {
        words = match seg {
            "*" => words
                .into_iter()
                .map(|mut w| {
                    w.push("x");
                    w
                })
                .collect(),
            "**" => words
                .into_iter()
                .flat_map(|w| (0..=max_run).map(move |n| [w.clone(), vec!["x"; n]].concat()))
                .collect(),
            lit => words
                .into_iter()
                .map(|mut w| {
                    w.push(lit);
                    w
                })
                .collect(),
        };
    }
    words
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(|w| w.join("/"))
        .collect()
}

proptest! {
    #[test]
    fn parsing_never_panics(s in any::<String>()) {
        let _ = ResourcePattern::parse(&s);
        let _ = Resource::parse(&s);
    }

    #[test]
    fn parsing_pattern_like_strings_never_panics_and_round_trips(s in "[ab/*.~\\x00\u{e9} ]{0,40}") {
        if let Ok(p) = ResourcePattern::parse(&s) {
            prop_assert_eq!(p.as_str(), s.as_str());
            let json = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<ResourcePattern>(&json).unwrap(), p);
        }
        if Resource::parse(&s).is_ok() {
            prop_assert!(ResourcePattern::parse(&s).unwrap().is_concrete());
        }
    }

    #[test]
    fn a_resource_matches_its_own_literal_pattern(r in resource()) {
        let p = ResourcePattern::parse(&r).unwrap();
        prop_assert!(p.is_concrete());
        prop_assert!(matches(&p, &r));
    }

    #[test]
    fn instantiated_resources_match_their_pattern(p in pattern_of(6), f in fills()) {
        if let Some(r) = instantiate(&p, &f) {
            prop_assert!(matches(&ResourcePattern::parse(&p).unwrap(), &r), "{} vs {}", p, r);
        }
    }

    #[test]
    fn pattern_containment_is_sound(c in pattern_of(5), p in pattern_of(5), f in fills(), r in resource()) {
        let (cp, pp) = (ResourcePattern::parse(&c).unwrap(), ResourcePattern::parse(&p).unwrap());
        if cp.is_subset_of(&pp) {
            for r in instantiate(&c, &f).into_iter().chain([r]) {
                if matches(&cp, &r) {
                    prop_assert!(matches(&pp, &r), "{} ⊆ {} but {} matches only the child", c, p, r);
                }
            }
        }
    }

    #[test]
    fn pattern_containment_is_complete(c in pattern_of(4), p in pattern_of(4)) {
        let (cp, pp) = (ResourcePattern::parse(&c).unwrap(), ResourcePattern::parse(&p).unwrap());
        if !cp.is_subset_of(&pp) {
            let witness = hardest_words(&c, p.split('/').count() + 1)
                .into_iter()
                .find(|w| matches(&cp, w) && !matches(&pp, w));
            prop_assert!(witness.is_some(), "{} ⊄ {} but no resource shows it", c, p);
        }
    }

    #[test]
    fn pattern_containment_is_reflexive_and_transitive(a in pattern_of(4), b in pattern_of(4), c in pattern_of(4)) {
        let [a, b, c] = [a, b, c].map(|s| ResourcePattern::parse(&s).unwrap());
        prop_assert!(a.is_subset_of(&a));
        if a.is_subset_of(&b) && b.is_subset_of(&c) {
            prop_assert!(a.is_subset_of(&c), "{} ⊆ {} ⊆ {}", a, b, c);
        }
    }
}

/// A small capability space where containment is frequent.
#[derive(Clone, Debug)]
struct Spec {
    transact: bool,
    pattern: String,
    actions: Option<Vec<&'static str>>,
    /// Limit in minor units and whether it is in EUR (else USD).
    limit: Option<(u64, bool)>,
}

const ACTIONS: [&str; 3] = ["get", "put", "del"];

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        pattern_of(4),
        prop::option::of(prop::sample::subsequence(&ACTIONS[..], 1..=3)),
        prop::option::of((0u64..=1000, any::<bool>())),
    )
        .prop_map(|(transact, pattern, actions, limit)| Spec {
            transact,
            pattern,
            actions,
            limit: limit.filter(|_| transact),
        })
}

fn currency(eur: bool) -> Currency {
    if eur { Currency::EUR } else { Currency::USD }
}

fn build(s: &Spec) -> Capability {
    Capability {
        kind: if s.transact {
            CapabilityType::Transact
        } else {
            CapabilityType::Read
        },
        name: None,
        resource: ResourcePattern::parse(&s.pattern).unwrap(),
        actions: s
            .actions
            .as_ref()
            .map(|a| a.iter().map(|s| s.to_string()).collect()),
        filter: None,
        constraints: None,
        max_amount: s
            .limit
            .map(|(m, eur)| Decimal::from_minor(m, &currency(eur))),
        currency: s.limit.map(|(_, eur)| currency(eur)),
    }
}

/// A narrowing of `s`: wildcards filled, fewer actions, a lower limit.
fn attenuate(s: &Spec, f: &[(usize, [usize; 3])], drop_action: bool, cut: u64) -> Option<Spec> {
    let pattern = instantiate(&s.pattern, f)?;
    let actions = match &s.actions {
        Some(a) if drop_action && a.len() > 1 => Some(a[1..].to_vec()),
        other => other.clone(),
    };
    let limit = s.limit.map(|(m, eur)| (m.saturating_sub(cut), eur));
    Some(Spec {
        pattern,
        actions,
        limit,
        ..s.clone()
    })
}

fn request() -> impl Strategy<Value = (bool, String, Option<&'static str>, u64, bool)> {
    (
        any::<bool>(),
        resource(),
        prop::option::of(prop::sample::select(&ACTIONS[..])),
        0u64..=1200,
        any::<bool>(),
    )
}

fn to_request(
    (transact, resource, action, amount, eur): &(bool, String, Option<&'static str>, u64, bool),
) -> RequestedAction {
    RequestedAction {
        kind: if *transact {
            CapabilityType::Transact
        } else {
            CapabilityType::Read
        },
        resource: resource.clone(),
        action: action.map(str::to_owned),
        amount: transact.then(|| Decimal::from_minor(*amount, &currency(*eur)).to_string()),
        currency: transact.then(|| currency(*eur)),
        name: None,
    }
}

proptest! {
    #[test]
    fn subset_grants_never_permit_more(
        parent in prop::collection::vec(spec(), 1..=3),
        extra in prop::collection::vec(spec(), 0..=2),
        f in fills(),
        drop_action in any::<bool>(),
        cut in 0u64..=100,
        requests in prop::collection::vec(request(), 1..=16),
    ) {
        let parent_caps: Vec<Capability> = parent.iter().map(build).collect();
        let attenuated: Vec<Spec> = parent.iter().filter_map(|s| attenuate(s, &f, drop_action, cut)).collect();
        let narrowed: Vec<Capability> = attenuated.iter().map(build).collect();
        // Narrowing each capability always yields a subset.
        prop_assert!(is_subset(&narrowed, &parent_caps), "{:?} ⊄ {:?}", narrowed, parent_caps);
        // Random extras may or may not keep it a subset; either way the
        // answer must be sound.
        let child: Vec<Capability> = narrowed.into_iter().chain(extra.iter().map(build)).collect();
        if is_subset(&child, &parent_caps) {
            // Requests aimed at the child's own patterns, plus random ones.
            let aimed = attenuated.iter().chain(&extra).filter_map(|s| {
                let r = instantiate(&s.pattern, &f)?;
                Some((s.transact, r, s.actions.as_ref().and_then(|a| a.first().copied()), 0, true))
            });
            for r in requests.iter().cloned().chain(aimed) {
                let r = to_request(&r);
                if permits(&child, &r).is_ok() {
                    prop_assert!(permits(&parent_caps, &r).is_ok(), "{:?} permitted by child {:?} only", r, child);
                }
            }
        }
    }
}
