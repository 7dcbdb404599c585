//! Request bodies: size, media type and strict parsing, each refusal a
//! problem with a stable code.
//!
//! ```text
//!  Content-Type ──▶ json | form | else 415
//!  body ──────────▶ at most MAX_BODY_BYTES, else 413 input_too_large;
//!                   complete within the server's body read deadline
//!                   ([`crate::http`]), else 408 request_timeout
//!  JSON ──────────▶ no duplicate member names at any depth, then the typed
//!                   struct (unknown members, wrong types: 400 request_invalid)
//!  form ──────────▶ no repeated parameter (RFC 6749 §3.2), UTF-8
//! ```
//!
//! The body is read here rather than by axum's `Json` extractor so that every
//! refusal is problem+json, and because serde_json keeps the last of two
//! equal member names in maps (`constraints`): a request that two parsers
//! could read differently is refused instead.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use agentauth_core::ErrorCode;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

use super::problem::ApiError;
use crate::http::deadline::is_body_deadline;

/// The largest request body accepted: a grant request with 64 capabilities
/// of the largest size is about 40 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The request body formats the API reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded` (OAuth token requests).
    Form,
}

impl Format {
    fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// Which of `accepted` the request's `Content-Type` names (415 otherwise).
/// A `charset` parameter, when present, must be UTF-8.
pub fn format(headers: &HeaderMap, accepted: &[Format]) -> Result<Format, ApiError> {
    let unsupported = || {
        let names: Vec<&str> = accepted.iter().map(|f| f.media_type()).collect();
        ApiError::invalid(format!("the Content-Type must be {}", names.join(" or ")))
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    for param in parts {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
            return Err(unsupported());
        }
    }
    accepted
        .iter()
        .copied()
        .find(|f| f.media_type().eq_ignore_ascii_case(media_type))
        .ok_or_else(unsupported)
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] (by the
/// declared `Content-Length` before reading, and by counting while reading),
/// and a body that misses the server's read deadline.
pub async fn read(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::InputTooLarge,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let capacity = declared.map_or(1024, |n| usize::try_from(n).unwrap_or(MAX_BODY_BYTES));
    let mut buffer = Vec::with_capacity(capacity.min(MAX_BODY_BYTES));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| unreadable(&e))?;
        if buffer.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

/// A body that could not be read: too slow for the read deadline (408
/// `request_timeout`), or cut off (400 `request_invalid`).
pub fn unreadable(error: &axum::Error) -> ApiError {
    if is_body_deadline(error) {
        ApiError::new(
            ErrorCode::RequestTimeout,
            format!("{error}; send the whole request at once, without pausing, and retry"),
        )
    } else {
        ApiError::invalid(format!("failed to read the body: {error}"))
    }
}

/// Parses JSON into `T`, refusing duplicate member names anywhere.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let refuse = |e: serde_json::Error| ApiError::invalid(format!("malformed JSON body: {e}"));
    serde_json::from_slice::<Unique>(bytes).map_err(refuse)?;
    serde_json::from_slice(bytes).map_err(refuse)
}

/// Parses a form body into name–value pairs, refusing repeated names.
pub fn form(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::invalid("the form body is not UTF-8"));
    }
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if !seen.insert(name.clone()) {
            return Err(ApiError::invalid(format!(
                "the form parameter {:?} is repeated",
                brief(&name)
            )));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

/// At most 64 characters of untrusted text, for messages.
pub fn brief(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Any JSON value whose objects have distinct member names, at every depth.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if !seen.insert(name.clone()) {
                return Err(de::Error::custom(format!(
                    "duplicate member {:?}",
                    brief(&name)
                )));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct T {
        a: serde_json::Value,
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert!(json::<T>(br#"{"a": {"x": 1, "y": [{"z": 1}]}}"#).is_ok());
        for bad in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"{"a": {"x": 1, "x": 2}}"#,
            br#"{"a": [{"z": 1, "\u007a": 2}]}"#,
            br#"{"a": 1"#,
            br#"{"a": 1, "b": 2} trailing"#,
        ] {
            let e = json::<T>(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::RequestInvalid, "{e:?}");
        }
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        let accepted = [Format::Json, Format::Form];
        assert_eq!(
            format(&h, &accepted).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        for (value, want) in [
            ("application/json", Some(Format::Json)),
            ("Application/JSON; charset=UTF-8", Some(Format::Json)),
            ("application/x-www-form-urlencoded", Some(Format::Form)),
            ("application/json; charset=latin1", None),
            ("text/plain", None),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(format(&h, &accepted).ok(), want, "{value}");
        }
    }

    #[test]
    fn repeated_form_parameters_are_refused() {
        assert_eq!(form(b"a=1&b=%2F").unwrap().len(), 2);
        assert!(form(b"a=1&a=2").is_err());
    }
}
