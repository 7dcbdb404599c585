"""Fixtures of the Python SDK tests: the stack a Rust test started
(`sdk/tests/python.rs`), described by environment variables.

    AGENTAUTH_TEST_OPERATOR   the operator's agent API
    AGENTAUTH_TEST_PROVIDER   the example provider (its URL is its id)
    AGENTAUTH_TEST_NAMESPACE  the agent's namespace
    AGENTAUTH_TEST_AGENT      the agent's name
    AGENTAUTH_TEST_KEY_FILE   the agent's key file (0600)
    AGENTAUTH_TEST_HOOK       POST /approve (body: namespace/name) approves a grant
                              with the approver's software passkey; GET /issued
                              counts the operator's token issuances
"""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import pytest

import agentauth
from agentauth import AgentAuthClient, Capability


@dataclass
class Stack:
    operator: str
    provider: str
    namespace: str
    agent: str
    key_file: str
    hook: str

    def client(self, **options) -> AgentAuthClient:
        return AgentAuthClient(
            self.operator,
            namespace=self.namespace,
            agent=self.agent,
            key_file=self.key_file,
            **options,
        )

    async def approve(self, grant: agentauth.Grant) -> None:
        status, _ = await http("POST", f"{self.hook}/approve", grant.reference.encode())
        assert status == 204

    async def issued(self) -> int:
        status, body = await http("GET", f"{self.hook}/issued")
        assert status == 200
        return int(body)

    async def approved_client(self, **options) -> Tuple[AgentAuthClient, agentauth.Grant]:
        """A client whose grant to read calendars/primary/** is approved."""
        client = self.client(**options)
        grant = await client.request_grant(
            service_provider_id=self.provider,
            capabilities=[Capability.read("calendars/primary/**")],
        )
        assert grant.phase == "Pending"
        await self.approve(grant)
        grant = await client.wait_for_approval(grant.reference, timeout=30)
        assert grant.is_approved
        return client, grant

    async def call(self, client: AgentAuthClient, method: str, path: str) -> Tuple[int, bytes]:
        headers = await client.authenticate_headers(self.provider, method, path)
        return await http(method, f"{self.provider}{path}", None, headers)


def _request(method: str, url: str, body: Optional[bytes], headers: Dict[str, str]) -> Tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def http(method: str, url: str, body: Optional[bytes] = None,
               headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
    """A blocking urllib request, off the event loop."""
    return await asyncio.to_thread(_request, method, url, body, headers or {})


@pytest.fixture
def stack() -> Stack:
    env = os.environ
    return Stack(
        operator=env["AGENTAUTH_TEST_OPERATOR"],
        provider=env["AGENTAUTH_TEST_PROVIDER"],
        namespace=env["AGENTAUTH_TEST_NAMESPACE"],
        agent=env["AGENTAUTH_TEST_AGENT"],
        key_file=env["AGENTAUTH_TEST_KEY_FILE"],
        hook=env["AGENTAUTH_TEST_HOOK"],
    )
