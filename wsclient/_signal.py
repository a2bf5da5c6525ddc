"""A wake-up signal that costs nothing when nobody waits for it."""

from __future__ import annotations

import anyio
import anyio.lowlevel

__all__ = ["Signal"]


class Signal:
    """Wakes the tasks waiting for "something changed", as often as it fires.

    An :class:`anyio.Event` cannot be cleared, so the usual idiom sets it and
    replaces it on every change: about a microsecond each time (the backend
    is looked up to build the new one). On hot paths (each publication, each
    ack) that was a good part of the cost. A Signal builds an event only
    when a task is about to wait, and firing it is a counter increment when
    nobody waits.

    Changes must not be missed between looking and waiting, so a waiter
    reads :attr:`version` before it looks, and waits for a version after
    that one::

        while True:
            version = signal.version
            ...  # Look at the state; act on it.
            await signal.wait(version)
    """

    __slots__ = ("_event", "version")

    def __init__(self) -> None:
        self.version = 0
        """How many times it fired."""
        self._event: anyio.Event | None = None

    def fire(self) -> None:
        """Wake every waiter (and every future wait for an earlier version)."""
        self.version += 1
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    async def wait(self, version: int) -> None:
        """Return once it fired after :attr:`version` was ``version``.

        If it already did, it still yields once (a checkpoint), so that a
        loop that always finds work cannot starve the other tasks.
        """
        if self.version != version:
            await anyio.lowlevel.checkpoint()
            return
        event = self._event
        if event is None:
            event = self._event = anyio.Event()
        await event.wait()
