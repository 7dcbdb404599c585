//! Reading one MCP message from a POST body, and writing the JSON-RPC
//! errors the gateway answers with.
//!
//! The streamable HTTP transport (MCP 2025-06-18) posts one JSON-RPC
//! message per request: a request, a notification, or a response to a
//! server's request. Batches were removed in that version; the gateway
//! refuses them (and everything that is not one JSON-RPC 2.0 object)
//! rather than guess how to check several calls with one DPoP proof.

use serde_json::{Map, Value, json};

/// The JSON-RPC error code of an AgentAuth refusal (the server-error range
/// JSON-RPC leaves to implementations); `error.data.code` carries the
/// stable AgentAuth reason.
pub const REFUSED: i64 = -32001;
/// JSON-RPC 2.0: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: the JSON is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0: the method's parameters are invalid.
pub const INVALID_PARAMS: i64 = -32602;

/// One decoded MCP message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The `id` of a request or response (`None`: a notification).
    pub id: Option<Value>,
    /// What the message asks.
    pub kind: Kind,
}

/// What a message asks.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `tools/call` with its tool and arguments.
    ToolCall {
        /// The tool's name.
        name: String,
        /// Its arguments (absent: empty).
        arguments: Map<String, Value>,
    },
    /// Any other request or notification (`initialize`, `tools/list`, …).
    Other {
        /// The method.
        method: String,
    },
    /// A response to a request the server sent (sampling, elicitation).
    Response,
}

/// Why a body is not one MCP message; each names what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// A JSON array.
    #[error(
        "JSON-RPC batches are not supported (MCP 2025-06-18 removed them); send one message per request"
    )]
    Batch,
    /// Not a JSON-RPC 2.0 object.
    #[error("not a JSON-RPC 2.0 message: {0}")]
    Invalid(&'static str),
    /// A `tools/call` without a usable `params.name` / `params.arguments`.
    #[error("tools/call: {0}")]
    ToolCall(&'static str),
}

impl DecodeError {
    /// The JSON-RPC error code for it.
    pub fn rpc_code(&self) -> i64 {
        match self {
            DecodeError::NotJson(_) => PARSE_ERROR,
            DecodeError::Batch | DecodeError::Invalid(_) => INVALID_REQUEST,
            DecodeError::ToolCall(_) => INVALID_PARAMS,
        }
    }
}

/// Decodes `body` as one MCP message. Never panics, whatever the bytes.
pub fn decode(body: &[u8]) -> Result<(Message, Value), DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let message = classify(&value)?;
    Ok((message, value))
}

/// The id a reply to a malformed `body` should carry: its `id` when the
/// body is an object with a valid one, else `null` (JSON-RPC 2.0 §5).
pub fn best_effort_id(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .filter(valid_id)
        .unwrap_or(Value::Null)
}

fn classify(value: &Value) -> Result<Message, DecodeError> {
    let object = match value {
        Value::Array(_) => return Err(DecodeError::Batch),
        Value::Object(object) => object,
        _ => return Err(DecodeError::Invalid("the body must be a JSON object")),
    };
    if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err(DecodeError::Invalid("\"jsonrpc\" must be \"2.0\""));
    }
    let id = match object.get("id") {
        None => None,
        Some(id) if valid_id(id) => Some(id.clone()),
        Some(_) => {
            return Err(DecodeError::Invalid(
                "\"id\" must be a string or an integer",
            ));
        }
    };
    let Some(method) = object.get("method") else {
        if id.is_some() && (object.contains_key("result") || object.contains_key("error")) {
            return Ok(Message {
                id,
                kind: Kind::Response,
            });
        }
        return Err(DecodeError::Invalid(
            "a message has a \"method\", or is a response with \"id\" and \"result\" or \"error\"",
        ));
    };
    let Value::String(method) = method else {
        return Err(DecodeError::Invalid("\"method\" must be a string"));
    };
    if method != "tools/call" {
        return Ok(Message {
            id,
            kind: Kind::Other {
                method: method.clone(),
            },
        });
    }
    if id.is_none() {
        return Err(DecodeError::Invalid(
            "tools/call is a request: it needs an \"id\"",
        ));
    }
    let params = match object.get("params") {
        Some(Value::Object(params)) => params,
        _ => return Err(DecodeError::ToolCall("\"params\" must be an object")),
    };
    let Some(Value::String(name)) = params.get("name") else {
        return Err(DecodeError::ToolCall(
            "\"params.name\" must be the tool's name",
        ));
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments.clone(),
        Some(_) => {
            return Err(DecodeError::ToolCall(
                "\"params.arguments\" must be an object",
            ));
        }
    };
    Ok(Message {
        id,
        kind: Kind::ToolCall {
            name: name.clone(),
            arguments,
        },
    })
}

fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// A JSON-RPC error response.
pub fn error(id: Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn kind(body: &str) -> Result<Kind, DecodeError> {
        decode(body.as_bytes()).map(|(m, _)| m.kind)
    }

    #[test]
    fn reads_tool_calls_and_other_messages() {
        let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send_payment","arguments":{"amount":"1.00"}}}"#;
        let (message, _) = decode(call.as_bytes()).unwrap();
        assert_eq!(message.id, Some(json!(7)));
        let Kind::ToolCall { name, arguments } = message.kind else {
            panic!()
        };
        assert_eq!(name, "send_payment");
        assert_eq!(arguments["amount"], "1.00");
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Kind::Other {
                method: "notifications/initialized".into()
            }
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap(),
            Kind::Response
        );
        assert!(
            matches!(kind(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#).unwrap(),
            Kind::ToolCall { arguments, .. } if arguments.is_empty())
        );
    }

    #[test]
    fn refuses_what_is_not_one_message() {
        assert_eq!(kind("[]"), Err(DecodeError::Batch));
        assert!(matches!(kind("{"), Err(DecodeError::NotJson(_))));
        for bad in [
            r#"{"id":1,"method":"x"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","method":7}"#,
            r#"{"jsonrpc":"2.0"}"#,
            "7",
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"t"}}"#,
        ] {
            assert!(matches!(kind(bad), Err(DecodeError::Invalid(_))), "{bad}");
        }
        for bad in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":[1]}}"#,
        ] {
            assert!(matches!(kind(bad), Err(DecodeError::ToolCall(_))), "{bad}");
        }
        assert_eq!(best_effort_id(br#"{"id":"x","method":1}"#), json!("x"));
        assert_eq!(best_effort_id(br#"{"id":{}}"#), Value::Null);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let _ = best_effort_id(&bytes);
        }
    }
}
