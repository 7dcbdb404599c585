"""The MCP client against the rmcp example server behind the gateway
(``AGENTAUTH_TEST_MCP``; the stack's verifier decides each message)."""

from __future__ import annotations

import os

import pytest

from agentauth import Capability, CapabilityError, McpClient


async def test_mcp_tools_inside_and_outside_the_grant(stack):
    endpoint = os.environ["AGENTAUTH_TEST_MCP"]
    client = stack.client()
    grant = await client.request_grant(
        service_provider_id=stack.provider,
        capabilities=[Capability.read("mcp/payments"), Capability.read("accounts/*")],
    )
    await stack.approve(grant)
    await client.wait_for_approval(grant.reference, timeout=20)

    mcp = McpClient(client, stack.provider, endpoint)
    info = await mcp.initialize("pytest")
    assert info["serverInfo"]["name"] == "mcp-payments"
    assert mcp.session_id
    names = [tool["name"] for tool in await mcp.list_tools()]
    assert {"get_balance", "send_payment", "delete_account"} <= set(names)

    result = await mcp.call_tool("get_balance", {"account": "acct-1"})
    assert "account acct-1" in str(result["content"])

    with pytest.raises(CapabilityError) as refused:
        await mcp.call_tool("delete_account", {"account": "acct-1"})
    assert refused.value.code == "capability_not_granted"
    with pytest.raises(CapabilityError):
        await mcp.call_tool("not_in_the_map", {})
    await mcp.close()
