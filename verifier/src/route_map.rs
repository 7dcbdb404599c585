//! The ext_authz route map: which action a request performs, by method and
//! path, for providers that cannot add action headers.
//!
//! ```yaml
//! - method: GET                       # optional: any method
//!   path: /orders/*                   # '*' one segment, '**' the rest (last only)
//!   type: read
//!   resource: orders/{1}              # {1}, {2}…: the wildcards; {path}: the whole path
//!   action: get                       # optional
//! - method: POST
//!   path: /payments/**
//!   type: transact
//!   resource: payments/{1}
//!   audience: bank.example            # optional: else --ext-authz-audience
//!   amount: {body: /amount}           # transact: where the amount comes from:
//!   currency: {value: EUR}            #   {header: <name Envoy sets>} | {body: <JSON pointer>} | {value: <fixed>}
//! ```
//!
//! The first route that matches wins. The file is YAML (JSON is YAML too)
//! and is checked when loaded: a placeholder naming a wildcard the path
//! does not have, or a transact route that does not say where its amount
//! and currency come from, is refused then, not at request time.
//!
//! Routes match the path in the form a DPoP `htu` is compared in
//! ([`agentauth_core::htu::normalize_path`]: unreserved characters decoded,
//! dot segments removed), so `/public/%2e%2e/admin` is `/admin` here as it
//! is for the proof. Paths a backend could read in another way than this
//! map does are refused before matching ([`route_path`]).

use agentauth_core::capability::CapabilityType;
use agentauth_core::{ErrorCode, htu};
use axum::http::HeaderName;
use serde::Deserialize;

/// One route.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The HTTP method; absent: every method.
    #[serde(default)]
    pub method: Option<String>,
    /// The path pattern.
    pub path: String,
    /// The action type.
    #[serde(rename = "type")]
    pub kind: CapabilityType,
    /// The resource template.
    pub resource: String,
    /// The action name, e.g. `get`.
    #[serde(default)]
    pub action: Option<String>,
    /// For custom: the capability name.
    #[serde(default)]
    pub name: Option<String>,
    /// The service provider (token audience) of this route; absent: the
    /// listener's (`--ext-authz-audience`).
    #[serde(default)]
    pub audience: Option<String>,
    /// For transact: where the amount comes from.
    #[serde(default)]
    pub amount: Option<Source>,
    /// For transact: where the currency comes from.
    #[serde(default)]
    pub currency: Option<Source>,
}

/// Where a route's amount or currency comes from: never from a header the
/// agent could send, unless the configuration names it and the mesh sets it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A header that Envoy sets (`headers_to_add` overrides the client's).
    Header(String),
    /// A member of the JSON request body, as a JSON pointer (`/amount`);
    /// Envoy must send the body (`with_request_body`).
    Body(String),
    /// A fixed value.
    Value(String),
}

impl Source {
    fn check(&self, what: &str) -> Result<(), String> {
        match self {
            Source::Header(name) => HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map(|_| ())
                .map_err(|_| format!("{what}: {name:?} is not a header name")),
            Source::Body(pointer) if !pointer.starts_with('/') => Err(format!(
                "{what}: the body field {pointer:?} must be a JSON pointer like /amount"
            )),
            Source::Body(_) | Source::Value(_) => Ok(()),
        }
    }
}

/// What a matched route says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched<'r> {
    /// The route.
    pub route: &'r Route,
    /// Its resource with the placeholders filled in.
    pub resource: String,
}

/// The loaded routes.
#[derive(Clone, Debug, Default)]
pub struct RouteMap {
    routes: Vec<(Route, Vec<String>)>,
}

impl RouteMap {
    /// Parses and checks a route map document.
    pub fn parse(yaml: &str) -> Result<RouteMap, String> {
        let routes: Vec<Route> = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        let mut checked = Vec::with_capacity(routes.len());
        for (i, route) in routes.into_iter().enumerate() {
            let segments = split(&route.path);
            let wildcards = segments.iter().filter(|s| *s == "*" || *s == "**").count();
            if let Some(pos) = segments.iter().position(|s| s == "**")
                && pos + 1 != segments.len()
            {
                return Err(format!(
                    "routes[{i}]: '**' must be the last segment of the path"
                ));
            }
            if !route.path.starts_with('/') {
                return Err(format!("routes[{i}]: the path must start with '/'"));
            }
            for placeholder in placeholders(&route.resource) {
                let ok = placeholder == "path"
                    || placeholder
                        .parse::<usize>()
                        .is_ok_and(|n| (1..=wildcards).contains(&n));
                if !ok {
                    return Err(format!(
                        "routes[{i}]: resource placeholder {{{placeholder}}} is neither {{path}} \
                         nor one of the path's {wildcards} wildcards"
                    ));
                }
            }
            match (&route.kind, &route.amount, &route.currency) {
                (CapabilityType::Transact, Some(amount), Some(currency)) => {
                    amount.check(&format!("routes[{i}].amount"))?;
                    currency.check(&format!("routes[{i}].currency"))?;
                }
                (CapabilityType::Transact, _, _) => {
                    return Err(format!(
                        "routes[{i}]: a transact route must say where its amount and currency \
                         come from (amount/currency: {{header: …}}, {{body: /…}} or {{value: …}})"
                    ));
                }
                (_, None, None) => {}
                _ => {
                    return Err(format!(
                        "routes[{i}]: amount and currency belong to transact routes only"
                    ));
                }
            }
            if route.audience.as_deref() == Some("") {
                return Err(format!("routes[{i}]: audience must not be empty"));
            }
            checked.push((route, segments));
        }
        Ok(RouteMap { routes: checked })
    }

    /// Whether the map has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes' audiences, for checking them against the configuration.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.routes
            .iter()
            .filter_map(|(route, _)| route.audience.as_deref())
    }

    /// The first route matching `method` and `path` (a [`route_path`]).
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let segments = split(path);
        self.routes.iter().find_map(|(route, pattern)| {
            if route
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                return None;
            }
            let captures = capture(pattern, &segments)?;
            Some(Matched {
                route,
                resource: fill(&route.resource, &captures, path.trim_start_matches('/')),
            })
        })
    }
}

/// The form of a request path that routes match: normalized as DPoP `htu`
/// is, and refused (`request_invalid`) when a backend could resolve it to
/// another resource than the map sees: an encoded `/` or `\` (some servers
/// decode them into separators), a `\`, a NUL, an empty segment (`//`), or
/// a dot segment with parameters (`..;x`, which some servers read as `..`).
pub fn route_path(raw: &str) -> Result<String, agentauth_core::Error> {
    let path = htu::normalize_path(raw, ErrorCode::RequestInvalid)?;
    let ambiguous = |why: &str| {
        Err(agentauth_core::Error::new(
            ErrorCode::RequestInvalid,
            format!("the request path is ambiguous ({why}); send it without that"),
        ))
    };
    for bad in ["%2F", "%5C", "%00"] {
        if path.contains(bad) {
            return ambiguous(&format!("it holds {bad}"));
        }
    }
    if path.contains('\\') {
        return ambiguous("it holds a backslash");
    }
    let inner = path.strip_suffix('/').unwrap_or(&path);
    for segment in inner.split('/').skip(1) {
        if segment.is_empty() {
            return ambiguous("it has an empty segment, //");
        }
        if segment.contains(';') && matches!(segment.split(';').next(), Some("." | "..")) {
            return ambiguous("a dot segment carries parameters");
        }
    }
    Ok(path)
}

fn split(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn capture(pattern: &[String], segments: &[String]) -> Option<Vec<String>> {
    let mut captures = Vec::new();
    for (i, p) in pattern.iter().enumerate() {
        match p.as_str() {
            "**" => {
                captures.push(segments.get(i..)?.join("/"));
                return Some(captures);
            }
            "*" => captures.push(segments.get(i)?.clone()),
            literal => {
                if segments.get(i)? != literal {
                    return None;
                }
            }
        }
    }
    (segments.len() == pattern.len()).then_some(captures)
}

fn placeholders(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        found.push(&after[..close]);
        rest = &after[close + 1..];
    }
    found
}

fn fill(template: &str, captures: &[String], path: &str) -> String {
    let mut out = String::with_capacity(template.len() + path.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        match name {
            "path" => out.push_str(path),
            n => {
                let index = n.parse::<usize>().ok().and_then(|n| n.checked_sub(1));
                out.push_str(
                    index
                        .and_then(|i| captures.get(i))
                        .map_or("", String::as_str),
                );
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"
- method: GET
  path: /orders/*
  type: read
  resource: orders/{1}
  action: get
- path: /payments/**
  type: transact
  resource: payments/{1}
  amount: {body: /amount}
  currency: {header: x-envoy-currency}
- path: /
  type: read
  resource: "home{path}"
"#;

    #[test]
    fn routes_match_in_order_and_fill_placeholders() {
        let map = RouteMap::parse(MAP).unwrap();
        let m = map.find("GET", "/orders/42").unwrap();
        assert_eq!(
            (m.route.kind, m.resource.as_str()),
            (CapabilityType::Read, "orders/42")
        );
        assert!(
            map.find("POST", "/orders/42").is_none(),
            "method must match"
        );
        assert!(
            map.find("GET", "/orders/42/items").is_none(),
            "'*' is one segment"
        );
        let m = map.find("POST", "/payments/eu/7").unwrap();
        assert_eq!(m.resource, "payments/eu/7");
        assert_eq!(map.find("GET", "/").unwrap().resource, "home");
    }

    #[test]
    fn paths_are_normalized_and_ambiguous_ones_refused() {
        assert_eq!(
            route_path("/public/%2e%2e/admin/users").unwrap(),
            "/admin/users"
        );
        assert_eq!(route_path("/orders/%34%32").unwrap(), "/orders/42");
        assert_eq!(route_path("").unwrap(), "/");
        assert_eq!(route_path("/orders/42/").unwrap(), "/orders/42/");
        for bad in [
            "/public/..%2fadmin",
            "/public/%2F",
            "/public//admin",
            "//admin",
            "/public/..;x/admin",
            "/a/%5cb",
            "/a/%00",
            "/a\\b",
        ] {
            let e = route_path(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::RequestInvalid, "{bad}");
        }
    }

    #[test]
    fn bad_maps_are_refused_when_loaded() {
        let bad = "- {path: /pay, type: transact, resource: pay}";
        assert!(
            RouteMap::parse(bad)
                .unwrap_err()
                .contains("amount and currency")
        );
        let bad = "- {path: /pay, type: read, resource: pay, amount: {value: '1'}}";
        assert!(
            RouteMap::parse(bad)
                .unwrap_err()
                .contains("transact routes only")
        );
        let bad = "- {path: /pay, type: transact, resource: pay, amount: {body: amount}, currency: {value: EUR}}";
        assert!(RouteMap::parse(bad).unwrap_err().contains("JSON pointer"));
        let ok = "- {path: /pay, type: transact, resource: pay, amount: {header: x-envoy-amount}, currency: {value: EUR}}";
        assert!(RouteMap::parse(ok).is_ok());
        let bad = "- {path: /a/*, type: read, resource: 'a/{2}'}";
        assert!(RouteMap::parse(bad).unwrap_err().contains("placeholder"));
        let bad = "- {path: /a/**/b, type: read, resource: a}";
        assert!(RouteMap::parse(bad).unwrap_err().contains("last segment"));
        assert!(RouteMap::parse("- {path: /a, type: fly, resource: a}").is_err());
    }
}
