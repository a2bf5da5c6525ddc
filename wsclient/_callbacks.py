"""Running the application's callbacks without letting them hurt the client."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, TypeAlias

__all__ = ["EVENT_NAMES", "Callback", "Callbacks", "EventName"]

logger = logging.getLogger("wsclient")

EventName: TypeAlias = Literal[
    "connect", "disconnect", "reconnect", "give_up", "undelivered"
]
EVENT_NAMES: Final[tuple[str, ...]] = (
    "connect",
    "disconnect",
    "reconnect",
    "give_up",
    "undelivered",
)

Callback: TypeAlias = Callable[[Any], Awaitable[None] | None]
"""A sync or async function taking one event object."""


class Callbacks:
    """The registered callbacks of one client, by event name."""

    def __init__(self) -> None:
        # Only the names that have callbacks: most clients register few.
        self._by_name: dict[str, list[Callback]] = {}

    def add(self, name: str, callback: Callback) -> None:
        """Register ``callback`` for ``name``; validate both."""
        if not isinstance(name, str):
            raise TypeError(f"event name must be one of {EVENT_NAMES}, got {name!r}")
        if name not in EVENT_NAMES:
            raise ValueError(f"event name must be one of {EVENT_NAMES}, got {name!r}")
        if not callable(callback):
            raise TypeError(
                f"the callback for {name!r} must be callable, got {callback!r}"
            )
        self._by_name.setdefault(name, []).append(callback)

    async def fire(self, name: str, event: object) -> None:
        """Call every callback of ``name`` in registration order.

        A callback that raises is logged with its traceback and skipped: a bug
        in application code must never stop the client from reconnecting.
        Cancellation is not caught, so closing the client stays prompt.
        """
        for callback in self._by_name.get(name, ()):
            try:
                result = callback(event)
                # Only coroutines (async callbacks) are awaited: a sync one
                # may return a task handle or a future, as does
                # ``lambda e: task_group.start_soon(work)`` with anyio >= 4.10;
                # awaiting it would hold the client until that task ended.
                if inspect.iscoroutine(result):
                    await result
            except Exception:
                logger.error("%s callback %r raised", name, callback, exc_info=True)
