"""What an idle connected client costs: tasks, against raw websockets.

Issue 6 budgets the memory of an idle client at raw websockets' + 4 KiB, and
on both backends a task is the most expensive thing a client can keep (about
3 KiB with anyio's task handle and cancel scope). An idle client keeps one:
its supervisor, which also runs the keepalive and notices the close. These
tests count tasks rather than bytes, which would depend on the interpreter
and on asyncio's debug mode; ``python -m benchmarks --only memory`` measures
the bytes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from wsclient import Client, ClientState, Outcome
from wsclient._sending import SendReceipt

from .utils import LONG, T, fast_options, wait_for_reconnects

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from wsclient.server import Server

pytestmark = pytest.mark.anyio

CLIENTS = 3


def count_tasks() -> int:
    """Tasks alive now, on the running backend."""
    if _backend() == "asyncio":
        import asyncio

        return len(asyncio.all_tasks())
    import trio

    def walk(task: Any) -> int:
        return 1 + sum(
            walk(child)
            for nursery in task.child_nurseries
            for child in nursery.child_tasks
        )

    return walk(trio.lowlevel.current_root_task())


def _backend() -> str:
    import sniffio

    return sniffio.current_async_library()


@contextlib.asynccontextmanager
async def raw_connection(url: str) -> AsyncIterator[object]:
    """websockets' client as wsclient drives it: its keepalive off."""
    if _backend() == "asyncio":
        from websockets.asyncio.client import connect

        async with connect(url, ping_interval=None, proxy=None) as ws:
            yield ws
    else:
        from websockets.trio.client import connect as trio_connect

        async with trio_connect(url, ping_interval=None, proxy=None) as ws:
            yield ws


@contextlib.asynccontextmanager
async def idle_client(url: str, **options: Any) -> AsyncIterator[Client]:
    async with Client(url, **fast_options(**options)) as client:
        await client.wait_connected()
        yield client


async def tasks_per_connection(opener: Any, *args: Any, **kwargs: Any) -> float:
    """Tasks that each of CLIENTS idle connections keeps (the server's too)."""
    with anyio.fail_after(LONG):
        await anyio.wait_all_tasks_blocked()
        before = count_tasks()
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(CLIENTS):
                await stack.enter_async_context(opener(*args, **kwargs))
            await anyio.wait_all_tasks_blocked()  # Start-up tasks ended.
            return (count_tasks() - before) / CLIENTS


def parsed_response_headers(ws: Any) -> int:
    """Headers of the handshake response that websockets' parser still holds
    (its generator stays suspended, for the life of the connection, in the
    frame that parsed the response)."""
    frame = ws.protocol.parser.gi_frame
    return len(frame.f_locals["response"].headers)


class TestIdleClient:
    async def test_handshake_headers_are_not_kept(self, server: Server) -> None:
        """An open connection keeps neither the handshake's request nor its
        response headers, which websockets' parser would keep."""
        with anyio.fail_after(LONG):
            async with raw_connection(server.url) as raw:
                assert parsed_response_headers(raw) > 0  # The check finds them.
            async with idle_client(server.url) as client:
                await client.send("x")  # Used, not just opened.
                conn = client._supervisor.conn  # type: ignore[union-attr]
                assert conn is not None
                assert parsed_response_headers(conn) == 0
                assert conn.request is None  # type: ignore[attr-defined]

    async def test_one_task_with_the_default_keepalive(self, server: Server) -> None:
        """An idle client keeps one task more than raw websockets: the supervisor."""
        raw = await tasks_per_connection(raw_connection, server.url)
        ours = await tasks_per_connection(idle_client, server.url, ping_interval=20)
        assert ours == raw + 1

    async def test_one_task_without_heartbeat(self, server: Server) -> None:
        """Without a heartbeat, the supervisor alone waits for the close."""
        raw = await tasks_per_connection(raw_connection, server.url)
        ours = await tasks_per_connection(idle_client, server.url, ping_interval=None)
        assert ours == raw + 1

    async def test_one_task_with_a_buffer_ttl(self, server: Server) -> None:
        """buffer_ttl adds the task that expires messages, and only then."""
        raw = await tasks_per_connection(raw_connection, server.url)
        ours = await tasks_per_connection(idle_client, server.url, buffer_ttl=60)
        assert ours == raw + 2

    async def test_several_watchers_get_a_task_each(self, server: Server) -> None:
        """With two watchers enabled, each runs in a task of its own."""
        raw = await tasks_per_connection(raw_connection, server.url)
        ours = await tasks_per_connection(
            idle_client, server.url, ping_interval=20, idle_timeout=60
        )
        assert ours == raw + 3


class TestIdleClientNoticesClose:
    async def test_close_noticed_while_the_keepalive_sleeps(
        self, server: Server
    ) -> None:
        """A lost connection is noticed at once, not at the next ping."""
        async with Client(server.url, **fast_options(ping_interval=3600)) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await server.abort_all()
                await wait_for_reconnects(client)
                assert client.state is ClientState.CONNECTED

    async def test_close_noticed_while_a_ping_awaits_its_pong(
        self, server: Server
    ) -> None:
        """A connection lost while a pong is awaited ends that wait at once."""
        pinged = anyio.Event()

        def on_connect(event: object) -> None:
            conn: Any = client._supervisor.conn  # type: ignore[union-attr]
            ping = conn.ping

            async def ping_unanswered() -> object:
                if pinged.is_set():
                    return await ping()
                server.stall()  # This ping is never read: no pong.
                waiter = await ping()
                pinged.set()
                return waiter

            conn.ping = ping_unanswered

        options = fast_options(ping_interval=10 * T, ping_timeout=3600)
        client = Client(server.url, on_connect=on_connect, **options)
        async with client:
            with anyio.fail_after(LONG):
                await pinged.wait()
                await server.abort_all()
                server.stall(False)
                await wait_for_reconnects(client)
        assert client.stats.heartbeat_timeouts == 0


class TestFlusherOnDemand:
    async def test_buffered_while_connected_is_flushed(self, server: Server) -> None:
        """A message that joins the buffer while connected is flushed by a task
        started for it, which ends once the buffer is empty."""
        async with idle_client(server.url) as client:
            with anyio.fail_after(LONG):
                await anyio.wait_all_tasks_blocked()
                before = count_tasks()
                sender = client._sender
                # What send() does when a message must queue: no public path
                # leads here while connected and idle (the safety net).
                receipt = SendReceipt('{"type": "echo", "data": 1}', 0.0, None, None)
                offer = sender.buffer.offer(receipt, anyio.current_time())
                assert offer.admission.name == "ACCEPTED"
                sender._wake_grew()
                assert await receipt.wait() is Outcome.WRITTEN
                assert "1" in str(await anext(aiter(client)))
                await anyio.wait_all_tasks_blocked()
                assert count_tasks() == before
