"""Exceptions of the AgentAuth SDK, one class per family of stable codes.

Every exception is an :class:`AgentAuthError` with ``code`` (the stable
snake_case code of DESIGN §5, e.g. ``capability_not_granted``, or the kind of
a local failure: ``timeout``, ``key``, ``config``, ``transport``,
``protocol``, ``no_grant``), ``message`` (for a person) and ``status`` (the
HTTP status when a server answered). Branch on the class or on ``code``,
never on the message text.

    AgentAuthError
    ├── ServerError              a server refused (status set when it answered HTTP)
    │   ├── DpopError            dpop_*
    │   ├── TokenError           token_*
    │   ├── CapabilityError      capability_not_granted, amount/currency limits, time windows
    │   ├── RateLimitedError     rate_limited
    │   ├── StateUnavailableError  state_unavailable (retry later)
    │   └── GrantError           grant_*
    │       └── GrantDeniedError a human denied, or the grant was revoked, expired or deleted
    ├── NoGrantError             no grant requested for this provider yet
    ├── AgentAuthTimeoutError    nothing decided in time
    ├── AgentAuthKeyError        the key file is unsafe or unreadable
    ├── AgentAuthConfigError     a bad URL, a missing agent identity, ...
    ├── TransportError           the network failed
    └── ProtocolError            an answer that could not be read
"""

from __future__ import annotations

import json
from typing import Optional, Type


class AgentAuthError(Exception):
    """Base of every SDK error."""

    def __init__(self, code: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.status = status

    def __reduce__(self):  # keeps pickling (multiprocessing, logging) working
        return (type(self), (self.code, self.message, self.status))


class ServerError(AgentAuthError):
    """A server (operator, verifier, service provider) refused."""


class DpopError(ServerError):
    """The DPoP proof was refused (``dpop_*``)."""


class TokenError(ServerError):
    """The access token was refused (``token_*``)."""


class CapabilityError(ServerError):
    """The action is outside what the grant allows."""


class RateLimitedError(ServerError):
    """A rate limit of the behavioral envelope refused the request."""


class StateUnavailableError(ServerError):
    """The shared state did not answer; retrying later may succeed."""


class GrantError(ServerError):
    """The grant cannot be used (``grant_*``)."""


class GrantDeniedError(GrantError):
    """A human denied the grant, or it was revoked, expired or deleted."""


class NoGrantError(AgentAuthError):
    """No grant is known for this service provider: request one first."""


class AgentAuthTimeoutError(AgentAuthError, TimeoutError):
    """Nothing happened in time (e.g. no decision on a grant)."""


class AgentAuthKeyError(AgentAuthError):
    """The agent key could not be generated, read or trusted."""


class AgentAuthConfigError(AgentAuthError, ValueError):
    """The SDK was set up wrongly."""


class TransportError(AgentAuthError, ConnectionError):
    """The network failed."""


class ProtocolError(AgentAuthError):
    """A server answered something the SDK cannot read."""


_CAPABILITY_CODES = {
    "capability_not_granted",
    "amount_invalid",
    "amount_over_limit",
    "daily_amount_over_limit",
    "currency_mismatch",
    "currency_unknown",
    "outside_time_window",
}

_LOCAL_KINDS: dict = {
    "denied": GrantDeniedError,
    "no_grant": NoGrantError,
    "timeout": AgentAuthTimeoutError,
    "key": AgentAuthKeyError,
    "config": AgentAuthConfigError,
    "transport": TransportError,
    "protocol": ProtocolError,
}


def _family(code: str) -> Optional[Type[ServerError]]:
    if code.startswith("dpop_"):
        return DpopError
    if code.startswith("token_"):
        return TokenError
    if code.startswith("grant_"):
        return GrantError
    if code in _CAPABILITY_CODES:
        return CapabilityError
    if code == "rate_limited":
        return RateLimitedError
    if code == "state_unavailable":
        return StateUnavailableError
    return None


def error_for(code: str, message: str, status: Optional[int] = None) -> AgentAuthError:
    """The exception for a stable ``code`` a server sent with HTTP ``status``."""
    return (_family(code) or ServerError)(code, message, status)


def check_response(status: int, body: bytes) -> None:
    """Raises the exception of a non-2xx answer with an RFC 9457 problem body
    (``{"code": ..., "detail": ...}``), as service providers and the operator
    send them; does nothing for a 2xx."""
    if 200 <= status < 300:
        return
    try:
        problem = json.loads(body)
        code = str(problem["code"])
        message = str(problem.get("detail") or problem.get("title") or code)
    except (ValueError, KeyError, TypeError):
        raise ProtocolError("protocol", f"HTTP {status} without a problem+json body", status) from None
    raise error_for(code, message, status)


def _from_native(kind: str, code: str, message: str, status: Optional[int]) -> AgentAuthError:
    """Called by the native module for every SDK error."""
    if kind == "server":
        return error_for(code, message, status)
    cls = _LOCAL_KINDS.get(kind, AgentAuthError)
    return cls(code, message, status)
