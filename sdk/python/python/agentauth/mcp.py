"""An MCP client (streamable HTTP) for MCP servers behind ``agentauth mcp-gateway``.

Every HTTP request carries the grant's token and a fresh DPoP proof; a
refusal raises the SDK's exception for its stable code (``CapabilityError``
for ``capability_not_granted``, ``RateLimitedError`` for ``rate_limited``, …)::

    mcp = McpClient(client, "https://payments.example.com", "https://mcp.example.com/mcp")
    await mcp.initialize()
    tools = await mcp.list_tools()
    result = await mcp.call_tool("get_balance", {"account": "acct-1"})

An error the MCP server itself returns has ``code == "jsonrpc:<n>"``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ._agentauth import AgentAuthClient, _McpClient


class McpClient:
    """A client of one MCP endpoint, authenticated with ``client``'s grant for
    ``service_provider_id``."""

    def __init__(self, client: AgentAuthClient, service_provider_id: str, endpoint: str) -> None:
        self._native = _McpClient(client, service_provider_id, endpoint)

    @property
    def session_id(self) -> Optional[str]:
        """The ``Mcp-Session-Id`` the server gave at ``initialize``."""
        return self._native.session_id

    async def initialize(self, client_name: str = "agentauth-python") -> Dict[str, Any]:
        """``initialize`` then ``notifications/initialized``; the server's result."""
        return json.loads(await self._native.initialize(client_name))

    async def request(self, method: str, params: Optional[Dict[str, Any]] = None) -> Any:
        """Request ``method``; its result."""
        return json.loads(await self._native.request(method, json.dumps(params or {})))

    async def notify(self, method: str, params: Optional[Dict[str, Any]] = None) -> None:
        """Notification ``method``."""
        await self._native.notify(method, json.dumps(params or {}))

    async def list_tools(self) -> List[Dict[str, Any]]:
        """``tools/list``: the tools' descriptions."""
        return (await self.request("tools/list"))["tools"]

    async def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """``tools/call``: the call's result (``content``, ``isError``)."""
        return await self.request("tools/call", {"name": name, "arguments": arguments or {}})

    async def close(self) -> None:
        """Ends the session (``DELETE``)."""
        await self._native.close()
