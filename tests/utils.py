"""Shared test helpers.

Every duration in the tests is a multiple of ``T`` so that slow machines can
scale all of them at once with ``WSCLIENT_TEST_TIMEOUT_FACTOR`` (as websockets'
own suite does).
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import pytest

    from wsclient import Client

T = 0.001 * float(os.environ.get("WSCLIENT_TEST_TIMEOUT_FACTOR", "1"))
"""One time unit, in seconds (1 ms by default)."""

LONG = 5000 * T
"""A generous bound for waits that should finish much sooner (5 s by default)."""


_LAUNCHER = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def interruptible(argv: list[str]) -> list[str]:
    """``argv``, a Python command, run with Ctrl-C's default action, so that
    a test can interrupt it with SIGINT. A shell starts background jobs with
    SIGINT ignored, and a child process inherits that: Python then never
    raises KeyboardInterrupt, and the test would wait for nothing."""
    assert argv[0] == sys.executable, argv
    return [sys.executable, "-c", _LAUNCHER, *argv[1:]]


def fast_options(**overrides: Any) -> dict[str, Any]:
    """Client options for tests: quick backoff and heartbeat, no system proxy."""
    options: dict[str, Any] = {
        "backoff_initial": 20 * T,
        "backoff_max": 100 * T,
        "stable_after": 500 * T,
        "ping_interval": None,
        "open_timeout": LONG,
        "close_timeout": 1000 * T,
        "proxy": None,
    }
    options.update(overrides)
    return options


class Recorder:
    """Collects callback events in order and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = anyio.Event()

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments registering this recorder for every event."""
        return {
            f"on_{name}": self._recorder(name)
            for name in ("connect", "disconnect", "reconnect", "give_up", "undelivered")
        }

    def names(self) -> list[str]:
        """The names of the events so far, in order."""
        return [name for name, _ in self.events]

    def of(self, name: str) -> list[Any]:
        """The events of one kind, in order."""
        return [event for n, event in self.events if n == name]

    async def wait_for(self, name: str, count: int = 1) -> Any:
        """Wait until ``count`` events named ``name`` happened; return the last."""
        while len(self.of(name)) < count:
            await self._changed.wait()
        return self.of(name)[count - 1]

    def _recorder(self, name: str) -> Any:
        def record(event: Any) -> None:
            self.events.append((name, event))
            self._changed.set()
            self._changed = anyio.Event()

        return record


async def wait_for_reconnects(client: Client, count: int = 1) -> None:
    """Wait, on the client's own state changes, until it reconnected
    ``count`` times."""
    while client.stats.reconnects < count:
        await client._supervisor.wait_changed()  # type: ignore[union-attr]


async def wait_stopped_by_a_bug(
    client: Client, caplog: pytest.LogCaptureFixture, bug: str
) -> None:
    """Wait until the client stopped because a task of its raised ``bug``
    (an internal error, logged)."""
    from wsclient import ClientState, ClientStopped

    while client.state is not ClientState.CLOSED:
        await client._supervisor.wait_changed()  # type: ignore[union-attr]
    error = client._supervisor.error  # type: ignore[union-attr]
    assert isinstance(error, ClientStopped)
    assert bug in str(error)
    assert "supervisor crashed" in caplog.text


def faults(numbers: list[int], published: int) -> str:
    """Count what went wrong in a sequence that should be 1..published, in order."""
    lost = published - len(set(numbers))
    duplicated = len(numbers) - len(set(numbers))
    reordered = sum(1 for a, b in itertools.pairwise(numbers) if b < a)
    return f"{lost} lost, {duplicated} duplicated, {reordered} reordered"
