"""Faults that strike while the client waits on something else.

Each test reproduces a hang or crash found in review: the client must neither
hang nor stop when a connection dies mid-wait, a callback yields, or the
application cancels it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
import pytest

import wsclient
from wsclient import Client, ClientState

from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


class TestNoHang:
    async def test_iteration_ends_when_a_callback_yields(self, server: Server) -> None:
        """async for ends on close() even while an async callback is awaited."""

        async def on_disconnect(event: object) -> None:
            await anyio.lowlevel.checkpoint()

        options = fast_options(on_disconnect=on_disconnect)
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.close)
                    assert [m async for m in client] == []

    async def test_close_with_unread_messages_is_prompt(self, server: Server) -> None:
        """close() after the application stopped reading a busy stream is prompt.

        With reading paused behind unread messages, the server's close frame
        would wait unread until close_timeout.
        """
        options = fast_options(close_timeout=LONG, max_queue=4)
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.send(
                    json.dumps({"type": "stream", "count": 5000, "size": 100})
                )
                await anext(aiter(client))  # Then stop reading, as bots do on exit.
                await server.wait_for(lambda n: n.messages_sent >= 200)
                with anyio.fail_after(LONG / 5):
                    await client.close()

    async def test_dead_link_found_while_send_buffer_is_full(
        self, server: Server
    ) -> None:
        """A silent server is found dead even while send() blocks on a full buffer."""
        recorder = Recorder()
        options = fast_options(
            ping_interval=100 * T, ping_timeout=100 * T, compression=None
        )
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                server.stall(True)

                async def flood() -> None:
                    blob = b"x" * 65536
                    for _ in range(2000):  # Far more than the socket buffers hold.
                        await client.send(blob)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(flood)
                    event = await recorder.wait_for("disconnect")
                    tg.cancel_scope.cancel()
                server.stall(False)
                with anyio.fail_after(LONG / 5):
                    await client.close()
        assert event.reason == "keepalive ping timeout"


class TestNoCrash:
    async def test_link_lost_while_waiting_for_a_pong(self, server: Server) -> None:
        """A connection lost while a ping waits for its pong just reconnects."""
        recorder = Recorder()
        options = fast_options(ping_interval=10 * T, ping_timeout=LONG)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.pings_received >= 1)
                server.stall(True)  # The next ping waits for a pong forever.
                await anyio.sleep(50 * T)  # Let that ping go out.
                await server.abort_all()
                server.stall(False)
                await recorder.wait_for("reconnect")
            assert client.state is ClientState.CONNECTED

    async def test_heartbeat_message_that_raises(
        self, server: Server, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A heartbeat_message callable that raises is logged; the client goes on."""

        def broken() -> str:
            raise ZeroDivisionError("bug in the application")

        options = fast_options(
            heartbeat_interval=10 * T, heartbeat_timeout=LONG, heartbeat_message=broken
        )
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await anyio.sleep(50 * T)  # Several beats.
                await client.send(json.dumps({"type": "echo", "data": 1}))
                await anext(aiter(client))
            assert client.state is ClientState.CONNECTED
        assert "heartbeat_message raised" in caplog.text


class TestCancellation:
    async def test_cancel_during_close(self, server: Server) -> None:
        """Cancelling the closing handshake from outside leaves nothing behind."""
        client = Client(server.url, **fast_options(close_timeout=LONG))
        with anyio.fail_after(LONG):
            with anyio.move_on_after(100 * T) as outer:
                async with client:
                    await client.wait_connected()
                    server.stall(True)  # The closing handshake will hang.
            server.stall(False)
        assert outer.cancelled_caught
        assert client.state is ClientState.CLOSED

    async def test_enter_under_cancelled_scope(self, server: Server) -> None:
        """Entering the client in an already-cancelled scope unwinds cleanly."""
        client = Client(server.url, **fast_options())
        with anyio.CancelScope() as scope:
            scope.cancel()
            async with client:
                pytest.fail("the body of a cancelled scope must not run")
        assert client.state is ClientState.CLOSED


class TestCloseFromCallbacks:
    async def test_close_in_disconnect_callback_skips_backoff(
        self, server: Server
    ) -> None:
        """close() from a disconnect callback does not wait out the backoff."""
        options = fast_options(backoff_initial=LONG * 10, backoff_jitter=0)
        async with Client(server.url, **options) as client:

            @client.on("disconnect")
            async def stop(event: wsclient.DisconnectEvent) -> None:
                await client.close()

            with anyio.fail_after(LONG):
                await client.wait_connected()
                await server.abort_all()
                assert [m async for m in client] == []
                assert client.state is ClientState.CLOSED  # Not backing off.
        assert client.state is ClientState.CLOSED

    async def test_close_in_task_started_by_callback_waits(
        self, server: Server
    ) -> None:
        """close() in a task that a callback started waits for the client to close."""
        states: list[ClientState] = []
        async with anyio.create_task_group() as tg:
            client = Client(server.url, **fast_options())

            async def worker() -> None:
                await client.close()
                states.append(client.state)

            client.on("connect", lambda event: tg.start_soon(worker))
            with anyio.fail_after(LONG):
                async with client:
                    assert [m async for m in client] == []
        assert states == [ClientState.CLOSED]
