//! RFC 9457 problem details: the body of every AgentAuth HTTP error.
//!
//! ```json
//! {"type": "https://agentauth.dev/errors/dpop_replayed", "title": "the DPoP proof was already used",
//!  "status": 401, "detail": "...", "code": "dpop_replayed"}
//! ```
//!
//! One definition for every service that answers HTTP and every client that
//! reads the answers (the SDK maps `code` back to an [`ErrorCode`]).

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// Media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of every problem `type` URI; the stable code follows it.
pub const TYPE_BASE: &str = "https://agentauth.dev/errors/";

/// Details longer than this many characters are cut, so an error that quotes
/// its input cannot echo a large attacker-chosen body back.
pub const MAX_DETAIL_LEN: usize = 512;

/// A problem details object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `https://agentauth.dev/errors/<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The code's default message.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// The stable code.
    pub code: String,
}

impl Problem {
    /// The problem for `code` with HTTP `status`; `detail` is cut to
    /// [`MAX_DETAIL_LEN`] characters.
    pub fn new(code: ErrorCode, status: u16, detail: &str) -> Self {
        let detail = match detail.char_indices().nth(MAX_DETAIL_LEN) {
            Some((cut, _)) => &detail[..cut],
            None => detail,
        };
        Problem {
            type_: format!("{TYPE_BASE}{}", code.as_str()),
            title: code.default_message().to_owned(),
            status,
            detail: detail.to_owned(),
            code: code.as_str().to_owned(),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings and numbers always serialize; an empty body still has its status.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The stable code, when it is one this version knows.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_wire(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_details_are_cut_on_a_character_boundary_and_the_code_round_trips() {
        let detail = "é".repeat(MAX_DETAIL_LEN + 10);
        let p = Problem::new(ErrorCode::DpopReplayed, 401, &detail);
        assert_eq!(p.detail.chars().count(), MAX_DETAIL_LEN);
        assert_eq!(p.type_, "https://agentauth.dev/errors/dpop_replayed");
        let back: Problem = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(back.error_code(), Some(ErrorCode::DpopReplayed));
        assert_eq!(back, p);
    }
}
