"""A one-shot event that costs nothing until a task waits for it."""

from __future__ import annotations

import anyio
import anyio.lowlevel

__all__ = ["Latch"]


class Latch:
    """Set once, never cleared: :class:`anyio.Event`'s interface, built lazily.

    On asyncio an :class:`anyio.Event` allocates an :class:`asyncio.Event`
    and its deque of waiters, about 600 bytes. A client keeps a few per
    connection that nobody awaits while it sits idle ("close requested",
    "stopped"): with thousands of idle clients in one process that is
    megabytes. A Latch builds the event only when a task waits before it is
    set.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._set

    def set(self) -> None:
        """Wake every waiter, now and for good. Idempotent."""
        if self._set:
            return
        self._set = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Return once it is set; a checkpoint even if it already is."""
        if self._set:
            await anyio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()
