"""Resource hygiene over many connections, and nothing after close() (issue 5).

A bot that reconnects for days must not leak a little on each connection:
memory, file descriptors and tasks stay flat over a thousand cycles, and no
``ResourceWarning`` is ever raised. Once closed, a client never makes another
connection attempt.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
import sniffio

from wsclient import Client, ClientState

from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from collections.abc import Iterator

    from wsclient.server import Server

pytestmark = pytest.mark.anyio

CYCLES = 1000
"""Connect/disconnect cycles per backend."""

WARMUP = 100
"""Cycles before the first measurement: caches fill, lazy imports happen."""

KiB = 1024


def open_fds() -> int:
    """File descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


def running_tasks() -> int:
    """Tasks alive in the running event loop (asyncio) or run (trio)."""
    if sniffio.current_async_library() == "trio":
        import trio  # Only on the trio backend: it is an optional dependency.

        def count(task: trio.lowlevel.Task) -> int:
            return 1 + sum(
                count(child)
                for nursery in task.child_nurseries
                for child in nursery.child_tasks
            )

        root = trio.lowlevel.current_root_task()
        assert root is not None
        return count(root)
    return len(asyncio.all_tasks())


async def settle(server: Server) -> tuple[int, int, int]:
    """Let every connection finish closing; return (memory, fds, tasks).

    The server closes its side last: wait for that, then collect garbage so
    that only what is really kept alive is counted.
    """
    await server.wait_for(lambda c: c.connections_open == 0)
    await anyio.wait_all_tasks_blocked()
    gc.collect()
    return tracemalloc.get_traced_memory()[0], open_fds(), running_tasks()


@contextmanager
def asyncio_debug_off() -> Iterator[None]:
    """Turn asyncio's debug mode off for a while (a no-op on trio).

    Debug mode records a traceback for every callback and task; with
    tracemalloc tracing each of those allocations, 1,000 cycles take about
    27 s instead of 4 s. What this test looks for (what survives a cycle,
    ResourceWarnings, tasks left behind) does not depend on debug mode, which
    the rest of the suite keeps on.
    """
    if sniffio.current_async_library() != "asyncio":
        yield
        return
    loop = asyncio.get_running_loop()
    debug = loop.get_debug()
    loop.set_debug(False)
    try:
        yield
    finally:
        loop.set_debug(debug)


@contextmanager
def tracing() -> Iterator[None]:
    """Trace allocations (unless something traces them already)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


async def cycles(server: Server, count: int) -> None:
    """Connect, wait until connected, disconnect; ``count`` times."""
    options = fast_options()
    for _ in range(count):
        async with Client(server.url, **options) as client:
            await client.wait_connected()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_connect_disconnect_cycles_leak_nothing(server: Server) -> None:
    """1,000 connect/disconnect cycles: memory, fds and tasks stay flat.

    Memory is traced from cycle 100 on, so what is still allocated at cycle
    1,000 after a garbage collection is what the last 900 cycles left
    behind. Every warning is recorded, ResourceWarnings raised by finalizers
    during the collections too, and none is allowed.
    """
    with (
        warnings.catch_warnings(record=True) as caught,
        asyncio_debug_off(),
        anyio.fail_after(6 * LONG),
    ):
        warnings.simplefilter("always")
        await cycles(server, WARMUP)
        with tracing():
            before = await settle(server)
            await cycles(server, CYCLES - WARMUP)
            after = await settle(server)
    memory, fds, tasks = (b - a for a, b in zip(before, after, strict=True))
    # A leak of anything that lives per connection (a socket, a transport, a
    # task, an event, a client) is several hundred bytes per cycle, so over
    # 256 KiB in 900 cycles. Below that: caches (the server's Date header
    # formatting, for one), about 40 to 100 KiB measured.
    assert memory < 256 * KiB, f"memory grew by {memory / KiB:.0f} KiB"
    assert fds <= 0, f"{fds} more file descriptors open"
    assert tasks <= 0, f"{tasks} more tasks alive"
    assert [str(w.message) for w in caught] == []
    assert server.counters.handshakes_completed == CYCLES


# No connection attempt after close().


async def attempts_after_close(
    server: Server, client: Client, *, backoff_max: float
) -> int:
    """Close ``client``; return how many attempts the server saw afterwards.

    Waits for a new TCP connection for three times the longest backoff
    delay (a late attempt would come by then) and returns as soon as one
    comes, so that a late attempt is caught without sleeping.
    """
    await client.close()
    assert client.state is ClientState.CLOSED
    before = server.counters.connections_accepted
    stats = (client.stats.connects, client.stats.failed_attempts)
    server.stall(False)  # A client stopped mid-handshake could go on now.
    with anyio.move_on_after(3 * backoff_max + 100 * T):
        await server.wait_for(lambda c: c.connections_accepted > before)
    assert (client.stats.connects, client.stats.failed_attempts) == stats
    return server.counters.connections_accepted - before


class TestNothingAfterClose:
    async def test_no_attempt_after_close_while_connected(self, server: Server) -> None:
        """close() while connected: the server never sees another attempt."""
        options = fast_options()
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                late = await attempts_after_close(
                    server, client, backoff_max=options["backoff_max"]
                )
        assert late == 0

    async def test_no_attempt_after_close_while_backing_off(
        self, server: Server
    ) -> None:
        """close() during the backoff delay: the pending attempt is never made."""
        server.close_after_handshake(1012)  # Every connection drops at once.
        recorder = Recorder()
        # Delays of 100 to 200 ms: close() surely lands inside one.
        options = fast_options(backoff_initial=200 * T, backoff_max=200 * T)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                event = await recorder.wait_for("disconnect", 2)
                assert event.will_reconnect
                assert client.state is ClientState.BACKING_OFF
                late = await attempts_after_close(
                    server, client, backoff_max=options["backoff_max"]
                )
        assert late == 0

    async def test_no_attempt_after_close_while_connecting(
        self, server: Server
    ) -> None:
        """close() during the opening handshake: no retry follows."""
        server.stall(True)  # TCP is accepted, the handshake never answered.
        options = fast_options()
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await server.wait_for(lambda c: c.connections_accepted >= 1)
                assert client.state is ClientState.CONNECTING
                late = await attempts_after_close(
                    server, client, backoff_max=options["backoff_max"]
                )
        assert late == 0
        assert client.stats.connects == 0

    async def test_no_attempt_after_leaving_async_with(self, server: Server) -> None:
        """Leaving ``async with`` while backing off: nothing afterwards either."""
        server.close_after_handshake(1012)
        recorder = Recorder()
        options = fast_options(backoff_initial=200 * T, backoff_max=200 * T)
        with anyio.fail_after(LONG):
            async with Client(server.url, **options, **recorder.callbacks()) as c:
                await recorder.wait_for("disconnect", 2)
            before = server.counters.connections_accepted
            with anyio.move_on_after(3 * options["backoff_max"] + 100 * T):
                await server.wait_for(lambda n: n.connections_accepted > before)
        assert server.counters.connections_accepted == before
        assert c.state is ClientState.CLOSED
