//! Normalization of the DPoP `htu` claim and of request URLs (RFC 9449 §4.3).
//!
//! A proof is valid for a request when the two normalize to the same string.
//! Following RFC 3986 §6.2.2 and §6.2.3: scheme and host are lower-cased,
//! the default port is dropped, percent-encodings get upper-case hex and
//! unreserved characters are decoded, dot segments are removed, an empty path
//! becomes `/`, and query and fragment are dropped (RFC 9449 §4.2). Only
//! `http` and `https` are accepted; userinfo and non-ASCII input are refused,
//! since neither has any business in an API URL and both invite confusion.

use crate::error::{Error, ErrorCode, Result};

/// URLs longer than this are refused.
pub const MAX_URL_LEN: usize = 4096;

/// Normalizes an absolute `http(s)` URL to the form `htu` is compared in.
/// Errors carry `code` (the caller's "wrong URL" code).
pub fn normalize(url: &str, code: ErrorCode) -> Result<String> {
    let fail = |m: &str| Err(Error::new(code, format!("invalid URL: {m}")));
    if url.len() > MAX_URL_LEN {
        return Err(Error::new(ErrorCode::InputTooLarge, "URL is too long"));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return fail("only printable ASCII without spaces is allowed");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return fail("not an absolute URL");
    };
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return fail("scheme must be http or https"),
    };
    // Query and fragment are not part of htu.
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return fail("userinfo is not allowed");
    }
    let (host, port) =
        split_host_port(authority).ok_or_else(|| Error::new(code, "invalid authority"))?;
    if host.is_empty() {
        return fail("empty host");
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host.to_ascii_lowercase());
    if let Some(port) = port {
        let port = port.trim_start_matches('0');
        if port != default_port && !port.is_empty() {
            out.push(':');
            out.push_str(port);
        } else if port.is_empty() {
            // ":0" or ":000" is port 0, which no server listens on.
            return fail("port 0");
        }
    }
    out.push_str(&normalize_path(path, code)?);
    Ok(out)
}

/// The path part of [`normalize`] on its own: percent-encodings get
/// upper-case hex, unreserved characters are decoded, dot segments are
/// removed, an empty path becomes `/`. `path` is empty or starts with `/`
/// and holds no query. The ext_authz route map matches this form, so that
/// it sees the very path a DPoP proof's `htu` is compared in.
pub fn normalize_path(path: &str, code: ErrorCode) -> Result<String> {
    if path.len() > MAX_URL_LEN {
        return Err(Error::new(ErrorCode::InputTooLarge, "URL is too long"));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(
            code,
            "invalid URL: only printable ASCII without spaces is allowed",
        ));
    }
    if !(path.is_empty() || path.starts_with('/')) {
        return Err(Error::new(code, "invalid URL: the path must start with /"));
    }
    let path = normalize_percent(path).ok_or_else(|| Error::new(code, "bad percent-encoding"))?;
    let path = remove_dot_segments(&path);
    Ok(if path.is_empty() {
        "/".to_owned()
    } else {
        path
    })
}

/// Splits `host[:port]`; IPv6 literals are bracketed. An empty port (`host:`)
/// is the same as none (RFC 3986 §6.2.3).
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    match port {
        Some("") => Some((host, None)),
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().map(|_| (host, Some(p)))
        }
        Some(_) => None,
        None => Some((host, None)),
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Upper-cases percent-encoding hex and decodes unreserved characters.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            if is_unreserved(value) {
                out.push(value as char);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4, on a path that is empty or starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(url: &str) -> String {
        normalize(url, ErrorCode::DpopUrlMismatch).unwrap()
    }

    #[test]
    fn equivalent_urls_normalize_alike() {
        let base = "https://server.example.com/token";
        for u in [
            "https://server.example.com/token",
            "HTTPS://Server.Example.COM/token",
            "https://server.example.com:443/token",
            "https://server.example.com/token?x=1#frag",
            "https://server.example.com/a/../token",
            "https://server.example.com/./token",
            "https://server.example.com/%74oken",
            "https://server.example.com:/token",
        ] {
            assert_eq!(n(u), base, "{u}");
        }
        assert_eq!(n("http://h:80"), "http://h/");
        assert_eq!(n("http://h:8080/x/"), "http://h:8080/x/");
        assert_eq!(n("https://h/a%2fb"), "https://h/a%2Fb");
        assert_eq!(n("https://[::1]:8443/x"), "https://[::1]:8443/x");
        assert_eq!(n("https://h/a/b/.."), "https://h/a/");
    }

    #[test]
    fn the_path_alone_normalizes_as_in_a_url() {
        let p = |path: &str| normalize_path(path, ErrorCode::RequestInvalid).unwrap();
        assert_eq!(p("/public/%2e%2e/admin/users"), "/admin/users");
        assert_eq!(p(""), "/");
        assert_eq!(p("/a/%7e%2fb/./c"), "/a/~%2Fb/c");
        assert!(normalize_path("a/b", ErrorCode::RequestInvalid).is_err());
        assert!(normalize_path("/%zz", ErrorCode::RequestInvalid).is_err());
    }

    #[test]
    fn different_resources_stay_different() {
        assert_ne!(n("https://h/token"), n("https://h/Token"));
        assert_ne!(n("https://h:8443/token"), n("https://h/token"));
        assert_ne!(n("http://h/token"), n("https://h/token"));
        assert_ne!(n("https://h/a%2Fb"), n("https://h/a/b"));
    }

    #[test]
    fn bad_urls_are_refused() {
        for u in [
            "ftp://h/x",
            "/relative",
            "https://user@h/x",
            "https://h:99999/x",
            "https://h:abc/x",
            "https://h/%zz",
            "https://h/%4",
            "https:///x",
            "https://h/ä",
            "https://h/a b",
            "https://h:0/x",
        ] {
            assert!(normalize(u, ErrorCode::DpopUrlMismatch).is_err(), "{u}");
        }
        let long = format!("https://h/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            normalize(&long, ErrorCode::DpopUrlMismatch)
                .unwrap_err()
                .code,
            ErrorCode::InputTooLarge
        );
    }
}
