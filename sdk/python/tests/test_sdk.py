"""The Python SDK, installed from its wheel, against the real stack:
request -> approve (software passkey) -> token -> call allowed; a call
outside the grant refused with a typed exception; refresh across expiry;
one issuance for concurrent get_token; local refusals (unsafe key, plain
HTTP, no grant, timeouts)."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

import agentauth
from agentauth import Capability


async def test_request_approve_token_and_call(stack):
    client, grant = await stack.approved_client()
    assert grant.agent == f"{stack.namespace}/{stack.agent}"
    assert grant.service_provider == stack.provider
    token = await client.get_token(stack.provider)
    assert token.grant == grant.reference and token.expires_at > time.time()

    status, body = await stack.call(client, "GET", "/calendars/primary/events")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["ok"] is True and answer["grant"] == grant.reference

    headers = await client.authenticate_headers(stack.provider, "get", "/calendars/primary/events")
    assert headers["Authorization"] == f"DPoP {token.access_token}"
    assert headers["DPoP"].count(".") == 2


async def test_a_call_outside_the_grant_is_a_typed_error(stack):
    client, _ = await stack.approved_client()
    for method, path in [("GET", "/calendars/work/events"), ("DELETE", "/calendars/primary/events/1")]:
        status, body = await stack.call(client, method, path)
        assert status == 403, body
        with pytest.raises(agentauth.CapabilityError) as refused:
            agentauth.check_response(status, body)
        assert refused.value.code == "capability_not_granted"
        assert refused.value.status == 403
        assert isinstance(refused.value, agentauth.ServerError)


async def test_tokens_are_refreshed_across_expiry(stack):
    client, _ = await stack.approved_client(token_lifetime=2)
    first = await client.get_token(stack.provider)
    assert (await client.get_token(stack.provider)).access_token == first.access_token
    before = await stack.issued()
    await asyncio.sleep(max(0.0, first.expires_at - time.time()) + 0.2)
    second = await client.get_token(stack.provider)
    assert second.access_token != first.access_token
    assert second.expires_at > first.expires_at
    assert await stack.issued() == before + 1
    status, body = await stack.call(client, "GET", "/calendars/primary/events")
    assert status == 200, body


async def test_concurrent_get_token_makes_one_issuance(stack):
    client, _ = await stack.approved_client()
    before = await stack.issued()
    tokens = await asyncio.gather(*(client.get_token(stack.provider) for _ in range(16)))
    assert len({t.access_token for t in tokens}) == 1
    assert await stack.issued() == before + 1


async def test_no_grant_pending_grant_and_timeouts_are_typed(stack):
    client = stack.client()
    with pytest.raises(agentauth.NoGrantError):
        await client.get_token(stack.provider)
    grant = await client.request_grant(
        service_provider_id=stack.provider,
        capabilities=[Capability.read("calendars/primary/**")],
        duration="10m",
        reason="pytest: a grant nobody approves",
    )
    with pytest.raises(agentauth.AgentAuthTimeoutError) as timed_out:
        await client.wait_for_approval(grant.reference, timeout=0.5)
    assert timed_out.value.code == "timeout"
    with pytest.raises(agentauth.GrantError) as pending:
        await client.get_token(stack.provider)
    assert pending.value.code == "grant_not_approved"


def test_unsafe_keys_and_plain_http_are_refused(stack, tmp_path):
    path = tmp_path / "agent.jwk"
    thumbprint = agentauth.generate_key(path)
    assert agentauth.key_thumbprint(path) == thumbprint
    with pytest.raises(agentauth.AgentAuthKeyError):
        agentauth.generate_key(path)  # never overwritten
    os.chmod(path, 0o644)
    with pytest.raises(agentauth.AgentAuthKeyError) as unsafe:
        agentauth.AgentAuthClient(stack.operator, namespace="ns", agent="a", key_file=path)
    assert "chmod 600" in unsafe.value.message
    os.chmod(path, 0o600)
    with pytest.raises(agentauth.AgentAuthConfigError):
        agentauth.AgentAuthClient("http://operator.example.com", namespace="ns", agent="a", key_file=path)
    manifest = agentauth.agent_manifest("ns", "a", "A bot", "dana@example.com", path)
    assert "kind: Agent" in manifest and thumbprint not in manifest


def test_capabilities_and_error_mapping():
    assert Capability.read("calendars/**").type == "read"
    assert Capability.transact("orders/**", "25.00", "EUR").resource == "orders/**"
    assert Capability.custom("export", "reports/*").type == "custom"
    assert isinstance(agentauth.error_for("dpop_replayed", "m", 401), agentauth.DpopError)
    assert isinstance(agentauth.error_for("token_expired", "m", 401), agentauth.TokenError)
    assert isinstance(agentauth.error_for("rate_limited", "m", 429), agentauth.RateLimitedError)
    unknown = agentauth.error_for("brand_new_code", "m", 400)
    assert type(unknown) is agentauth.ServerError and unknown.code == "brand_new_code"
    with pytest.raises(agentauth.ProtocolError):
        agentauth.check_response(502, b"<html>")
    agentauth.check_response(200, b"")
