//! `agentauth mcp-gateway` flags, with environment fallbacks (DESIGN §9).
//!
//! ```text
//!  agent ─▶ --public-url (this gateway, as agents reach it) ─▶ --upstream (the MCP server)
//!                 │ each message
//!                 ▼
//!           --verifier-url /v1/verify (node-local), audience --audience, action from --tool-map
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

/// `agentauth mcp-gateway` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct GatewayConfig {
    /// Address the gateway listens on. Loopback by default: put it behind
    /// your ingress (TLS) rather than exposing it directly.
    #[arg(long, env = "AGENTAUTH_MCP_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,

    /// The MCP endpoint as agents reach it, e.g. `https://mcp.example.com/mcp`:
    /// the resource identifier of the metadata, the URL DPoP proofs are made
    /// for, and (its path) the path the gateway serves.
    #[arg(long, env = "AGENTAUTH_MCP_PUBLIC_URL")]
    pub public_url: String,

    /// The MCP server's streamable HTTP endpoint, e.g. `http://127.0.0.1:8000/mcp`.
    /// It receives only messages the verifier allowed, without the agent's
    /// credentials.
    #[arg(long, env = "AGENTAUTH_MCP_UPSTREAM")]
    pub upstream: String,

    /// The operator's issuer URL: the authorization server the metadata names.
    #[arg(long, env = "AGENTAUTH_MCP_AUTHORIZATION_SERVER")]
    pub authorization_server: String,

    /// The service provider id of this MCP server (the grants'
    /// `serviceProvider`, the tokens' audience). Default: `--public-url`.
    #[arg(long, env = "AGENTAUTH_MCP_AUDIENCE")]
    pub audience: Option<String>,

    /// The node-local verifier.
    #[arg(
        long,
        env = "AGENTAUTH_VERIFIER_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub verifier_url: String,

    /// The tool map (YAML or JSON): which capability each tool call needs.
    #[arg(long, env = "AGENTAUTH_MCP_TOOL_MAP")]
    pub tool_map: PathBuf,

    /// The largest POST body accepted, in bytes.
    #[arg(long, env = "AGENTAUTH_MCP_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

/// A checked absolute http(s) URL without query or fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `scheme://authority`.
    pub origin: String,
    /// The path, `/` at least, without a trailing `/` unless it is `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `url`; `flag` names it in the error.
    pub fn parse(url: &str, flag: &str) -> Result<HttpUrl, String> {
        let bad = |why: &str| format!("--{flag} {url:?}: {why}");
        let rest = url
            .strip_prefix("https://")
            .map(|r| ("https", r))
            .or_else(|| url.strip_prefix("http://").map(|r| ("http", r)));
        let Some((scheme, rest)) = rest else {
            return Err(bad("must start with http:// or https://"));
        };
        if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("may not have a query, a fragment or whitespace"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host (and no user info)"));
        }
        let path = match path.trim_end_matches('/') {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        Ok(HttpUrl {
            origin: format!("{scheme}://{authority}"),
            path,
        })
    }

    /// The URL as text.
    pub fn full(&self) -> String {
        if self.path == "/" {
            self.origin.clone()
        } else {
            format!("{}{}", self.origin, self.path)
        }
    }
}

impl GatewayConfig {
    /// Checks what clap cannot: URLs and bounds.
    pub fn validate(&self) -> Result<(), String> {
        HttpUrl::parse(&self.public_url, "public-url")?;
        HttpUrl::parse(&self.upstream, "upstream")?;
        HttpUrl::parse(&self.authorization_server, "authorization-server")?;
        HttpUrl::parse(&self.verifier_url, "verifier-url")?;
        if self.max_body_bytes < 1024 || self.max_body_bytes > 64 * 1024 * 1024 {
            return Err(format!(
                "--max-body-bytes {}: must be between 1024 and 67108864",
                self.max_body_bytes
            ));
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return Err("--audience: must not be empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_urls_strictly() {
        let u = HttpUrl::parse("https://mcp.example.com/mcp/", "x").unwrap();
        assert_eq!(
            (u.origin.as_str(), u.path.as_str()),
            ("https://mcp.example.com", "/mcp")
        );
        assert_eq!(u.full(), "https://mcp.example.com/mcp");
        assert_eq!(HttpUrl::parse("http://127.0.0.1:9", "x").unwrap().path, "/");
        for bad in [
            "ftp://x",
            "mcp.example.com",
            "https://",
            "https://a@b/",
            "https://x/?q",
            "https://x/#f",
            "https://x/a b",
        ] {
            let e = HttpUrl::parse(bad, "public-url").unwrap_err();
            assert!(e.contains("--public-url"), "{e}");
        }
    }
}
