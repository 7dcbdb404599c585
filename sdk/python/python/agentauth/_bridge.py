"""How the native module hands results to asyncio (see src/awaitable.rs)."""

from __future__ import annotations

import asyncio


def complete(future: "asyncio.Future", ok: bool, value: object) -> None:
    """Runs on the event loop: settles ``future`` unless it was cancelled."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)  # type: ignore[arg-type]
