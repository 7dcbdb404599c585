//! `tools/list` as the agent sees it: only the tools the tool map names.
//! A tool the map lacks is refused when called, so listing it would only
//! invite calls that fail; the MCP server's answer is rewritten, whether it
//! came as JSON or as an SSE event.
//!
//! ```text
//!  {"id": n, "result": {"tools": [a, b, c]}}   ─▶ {"id": n, "result": {"tools": [a, c]}}
//!  event: message\ndata: {"id": n, "result": …}  ─▶ the same event, its data rewritten
//! ```
//!
//! Anything else passes unchanged (notifications in the stream, errors, a
//! body that is not what a tools/list answer looks like).

use serde_json::Value;

/// The body with tools `known` rejects removed from the answer to request
/// `id`; `None` when there is nothing to change.
pub fn filter(
    content_type: &str,
    body: &[u8],
    id: &Value,
    known: &dyn Fn(&str) -> bool,
) -> Option<Vec<u8>> {
    if content_type.starts_with("text/event-stream") {
        let text = std::str::from_utf8(body).ok()?;
        let mut changed = false;
        let rewritten: Vec<String> = text
            .split('\n')
            .map(|line| match line.strip_prefix("data:") {
                Some(data) => match rewrite(data.trim_start().as_bytes(), id, known) {
                    Some(new) => {
                        changed = true;
                        format!("data: {}", String::from_utf8_lossy(&new))
                    }
                    None => line.to_owned(),
                },
                None => line.to_owned(),
            })
            .collect();
        changed.then(|| rewritten.join("\n").into_bytes())
    } else {
        rewrite(body, id, known)
    }
}

/// One JSON-RPC message, rewritten when it answers `id` with a tool list.
fn rewrite(json: &[u8], id: &Value, known: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let mut message: Value = serde_json::from_slice(json).ok()?;
    if message.get("id") != Some(id) {
        return None;
    }
    let tools = message.pointer_mut("/result/tools")?.as_array_mut()?;
    let before = tools.len();
    tools.retain(|tool| tool.get("name").and_then(Value::as_str).is_some_and(known));
    if tools.len() == before {
        return None;
    }
    serde_json::to_vec(&message).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn known(name: &str) -> bool {
        name != "secret"
    }

    #[test]
    fn removes_unmapped_tools_from_json_and_sse_answers() {
        let answer = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": "a"}, {"name": "secret"}]}});
        let out = filter(
            "application/json",
            answer.to_string().as_bytes(),
            &json!(3),
            &known,
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["result"]["tools"], json!([{"name": "a"}]));

        let sse = format!("id: 0\nretry: 3000\ndata: \n\nevent: message\ndata: {answer}\n\n");
        let out = String::from_utf8(
            filter("text/event-stream", sse.as_bytes(), &json!(3), &known).unwrap(),
        )
        .unwrap();
        assert!(
            out.starts_with("id: 0\nretry: 3000\ndata: \n\nevent: message\ndata: {"),
            "{out}"
        );
        assert!(!out.contains("secret") && out.ends_with("\n\n"), "{out}");
    }

    #[test]
    fn leaves_other_answers_alone() {
        let answer = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": "a"}]}});
        assert_eq!(
            filter(
                "application/json",
                answer.to_string().as_bytes(),
                &json!(3),
                &known
            ),
            None
        );
        let other = json!({"jsonrpc": "2.0", "id": 4, "result": {"tools": [{"name": "secret"}]}});
        assert_eq!(
            filter(
                "application/json",
                other.to_string().as_bytes(),
                &json!(3),
                &known
            ),
            None
        );
        assert_eq!(
            filter("application/json", b"not json", &json!(3), &known),
            None
        );
        assert_eq!(
            filter("text/event-stream", &[0xff, 0xfe], &json!(3), &known),
            None
        );
    }
}
