"""An example AgentAuth agent in Python: ask for a grant to read a calendar,
wait for a human to approve it, then call the example provider with a
DPoP-bound token, and show a call outside the grant being refused.

    # once: a key (0600) and the Agent to apply
    python agent.py --key-file agent.jwk manifest | kubectl apply -f -
    # ask, wait for the approval (approve it in the approval UI), call
    python agent.py --key-file agent.jwk run

Defaults fit ./dev.sh (operator on 8080) with the example provider on 8090
(`cargo run -p agentauth --example provider -- --audience https://calendar.example.com`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.error
import urllib.request

import agentauth
from agentauth import AgentAuthClient, Capability


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--operator-url", default=env("AGENTAUTH_OPERATOR_URL", "http://127.0.0.1:8080"))
    p.add_argument("--namespace", default=env("AGENTAUTH_NAMESPACE", "default"))
    p.add_argument("--name", default=env("AGENTAUTH_AGENT_NAME", "calendar-bot-py"))
    p.add_argument("--key-file", default=env("AGENTAUTH_KEY_FILE", "agent.jwk"))
    p.add_argument("--provider-id", default=env("PROVIDER_ID", "https://calendar.example.com"))
    p.add_argument("--provider-url", default=env("PROVIDER_URL", "http://127.0.0.1:8090"))
    p.add_argument("--wait", type=float, default=600.0, help="seconds to wait for approval")
    p.add_argument("command", choices=["manifest", "run"])
    return p.parse_args()


def fetch(method: str, url: str, headers: dict) -> tuple:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def run(args: argparse.Namespace) -> None:
    client = AgentAuthClient(args.operator_url, namespace=args.namespace,
                             agent=args.name, key_file=args.key_file)
    grant = await client.request_grant(
        service_provider_id=args.provider_id,
        capabilities=[Capability.read("calendars/primary/**")],
        reason="Read my primary calendar to plan the week",
    )
    print(f"requested grant {grant.reference} ({grant.phase}); waiting up to {args.wait:.0f} s")
    grant = await client.wait_for_approval(grant.reference, timeout=args.wait)
    print(f"grant {grant.reference} approved")
    for calendar in ("primary", "work"):
        url = f"{args.provider_url}/calendars/{calendar}/events"
        headers = await client.authenticate_headers(args.provider_id, "GET", url)
        status, body = await asyncio.to_thread(fetch, "GET", url, headers)
        try:
            agentauth.check_response(status, body)
            print(f"GET {url}: {body.decode()}")
        except agentauth.AgentAuthError as error:
            print(f"GET {url}: refused with {error.code} ({error.message})")


def main() -> int:
    args = parse_args()
    if not os.path.exists(args.key_file):
        agentauth.generate_key(args.key_file)
    try:
        if args.command == "manifest":
            print(agentauth.agent_manifest(args.namespace, args.name, "Calendar bot (Python example)",
                                           "owner@example.com", args.key_file), end="")
        else:
            asyncio.run(run(args))
    except agentauth.AgentAuthError as error:
        print(f"error: {error.message} ({error.code})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
