"""Calling the application's providers, which may be sync or async."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["call"]


async def call(provider: Any, *args: Any) -> Any:
    """``provider(*args)``, awaited if it returned an awaitable.

    URL providers, headers callables and ``auth`` callables may each be a
    plain function or a coroutine function: one rule for all three.
    """
    result = provider(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
