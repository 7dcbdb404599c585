//! The MCP gateway's decoder on arbitrary bytes: one JSON-RPC message, and
//! for a `tools/call` its action through a tool map (templates, amounts,
//! currencies). Must never panic, and a mapped resource never holds a glob.
#![no_main]

use std::sync::LazyLock;

use agentauth_mcp_gateway::jsonrpc::{self, Kind};
use agentauth_mcp_gateway::mapping;
use agentauth_mcp_gateway::toolmap::ToolMap;
use libfuzzer_sys::fuzz_target;

static MAP: LazyLock<Option<ToolMap>> = LazyLock::new(|| {
    ToolMap::parse(
        r#"
session: {type: read, resource: mcp/payments}
tools:
  get_balance: {type: read, resource: "accounts/{account}"}
  send_payment: {type: transact, resource: "payments/{currency}/{to}", amount: {argument: amount}, currency: {argument: currency}}
  fee: {type: transact, resource: fees, amount: {argument: fee}, currency: {value: JPY}}
"#,
        "fuzz.yaml",
    )
    .ok()
});

fuzz_target!(|data: &[u8]| {
    let _ = jsonrpc::best_effort_id(data);
    let Ok((message, _)) = jsonrpc::decode(data) else {
        return;
    };
    let (Kind::ToolCall { name, arguments }, Some(map)) = (message.kind, MAP.as_ref()) else {
        return;
    };
    if let Ok(action) = mapping::tool_action(map, &name, &arguments) {
        assert!(!action.resource.contains('*'));
    }
});
