"""AgentAuth agent SDK for Python.

The secure path is the easy one: the agent's key stays in a 0600 file,
every request carries a fresh DPoP proof, tokens are cached per service
provider and refreshed before they expire, and every refusal is an
exception with the server's stable code.

    client = AgentAuthClient("https://registry.example.com",
                             namespace="team-a", agent="calendar-bot", key_file="agent.jwk")
    grant = await client.request_grant(service_provider_id="https://calendar.example.com",
                                       capabilities=[Capability.read("calendar")])
    await client.wait_for_approval(grant.reference, timeout=600)
    headers = await client.authenticate_headers("https://calendar.example.com", "POST", "/api/events")

The work happens in Rust (the ``agentauth`` crate) through the native module
``agentauth._agentauth``.
"""

from __future__ import annotations

import atexit as _atexit

from . import _agentauth
from ._agentauth import (
    AgentAuthClient,
    Capability,
    Grant,
    Token,
    __version__,
    agent_manifest,
    generate_key,
    key_thumbprint,
)
from .mcp import McpClient
from .errors import (
    AgentAuthConfigError,
    AgentAuthError,
    AgentAuthKeyError,
    AgentAuthTimeoutError,
    CapabilityError,
    DpopError,
    GrantDeniedError,
    GrantError,
    NoGrantError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    StateUnavailableError,
    TokenError,
    TransportError,
    check_response,
    error_for,
)

# Let SDK calls that are still handing their result to asyncio finish before
# the interpreter shuts down (see src/awaitable.rs).
_atexit.register(_agentauth._drain, 2.0)

__all__ = [
    "AgentAuthClient",
    "AgentAuthConfigError",
    "AgentAuthError",
    "AgentAuthKeyError",
    "AgentAuthTimeoutError",
    "Capability",
    "CapabilityError",
    "DpopError",
    "Grant",
    "GrantDeniedError",
    "GrantError",
    "McpClient",
    "NoGrantError",
    "ProtocolError",
    "RateLimitedError",
    "ServerError",
    "StateUnavailableError",
    "Token",
    "TokenError",
    "TransportError",
    "__version__",
    "agent_manifest",
    "check_response",
    "error_for",
    "generate_key",
    "key_thumbprint",
]
