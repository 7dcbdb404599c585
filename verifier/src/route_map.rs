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
//! ```
//!
//! The first route that matches wins. The file is YAML (JSON is YAML too)
//! and is checked when loaded: a placeholder naming a wildcard the path
//! does not have is refused then, not at request time.

use agentauth_core::capability::CapabilityType;
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
            checked.push((route, segments));
        }
        Ok(RouteMap { routes: checked })
    }

    /// Whether the map has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The first route matching `method` and `path`.
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
    fn bad_maps_are_refused_when_loaded() {
        let bad = "- {path: /a/*, type: read, resource: 'a/{2}'}";
        assert!(RouteMap::parse(bad).unwrap_err().contains("placeholder"));
        let bad = "- {path: /a/**/b, type: read, resource: a}";
        assert!(RouteMap::parse(bad).unwrap_err().contains("last segment"));
        assert!(RouteMap::parse("- {path: /a, type: fly, resource: a}").is_err());
    }
}
