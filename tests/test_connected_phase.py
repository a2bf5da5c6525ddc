"""The connected phase without a task group of its own (no router).

The readying task (connect callbacks, flush) runs in the client's task group
and the websockets connection is opened in the attempt's cancel scope but
used outside it: these tests pin what that must not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

from wsclient import Client, ClientState, ClientStopped
from wsclient._sending import Sender, SendReceipt

from .utils import LONG, T, fast_options, wait_for_reconnects, wait_stopped_by_a_bug

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


class TestReadying:
    async def test_close_while_a_connect_callback_hangs(self, server: Server) -> None:
        """close() from another task cancels a hung connect callback and
        returns promptly (past its drain, here none); the callback's cleanup
        runs first."""
        entered, cleaned = anyio.Event(), []

        async def hang(event: object) -> None:
            entered.set()
            try:
                await anyio.sleep_forever()
            finally:
                cleaned.append(True)

        options = fast_options(drain_timeout=0)
        async with Client(server.url, on_connect=hang, **options) as client:
            with anyio.fail_after(LONG):
                await entered.wait()
            with anyio.fail_after(500 * T):
                await client.close()
            assert cleaned == [True]
            assert client.state is ClientState.CLOSED

    async def test_a_bug_while_readying_stops_the_client(
        self,
        server: Server,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """What the readying task raises reaches the supervisor, as if it ran
        in a task group of its own: the client stops with an internal error,
        and leaving the block raises nothing."""
        client = Client(server.url, **fast_options())

        async def broken_flush(self: Sender, conn: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(Sender, "flush_to", broken_flush)  # Slots: per class.
        async with client:
            with anyio.fail_after(LONG):
                await wait_stopped_by_a_bug(client, caplog, "a bug")

    async def test_reconnects_after_the_readying_task_ended(
        self, server: Server
    ) -> None:
        """Each connection gets its readying task: connect callbacks run on
        every reconnection."""
        connects: list[object] = []
        client = Client(server.url, on_connect=connects.append, **fast_options())
        async with client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                for expected in (2, 3):
                    await server.abort_all()
                    while client.stats.connects < expected:
                        await client._supervisor.wait_changed()  # type: ignore[union-attr]
        assert len(connects) == 3


class TestOpenConnection:
    async def test_handshake_is_not_kept(self, server: Server) -> None:
        """An open connection keeps neither the handshake request (its
        headers carry the credentials) nor the response's headers."""
        headers = {"Authorization": "Bearer secret"}
        options = fast_options(additional_headers=headers)
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
            conn: Any = client._supervisor.conn  # type: ignore[union-attr]
            assert conn.request is None
            assert len(conn.response.headers) == 0
            await client.send('{"type": "echo", "data": 1}')
            assert "1" in str(await anext(aiter(client)))

    async def test_several_watchers_notice_the_close(self, server: Server) -> None:
        """With several watchers waiting for the close at once, a lost
        connection ends every wait."""
        options = fast_options(ping_interval=3600, idle_timeout=3600)
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await server.abort_all()
                await wait_for_reconnects(client)
                assert client.state is ClientState.CONNECTED


class TestFlusher:
    async def test_a_bug_in_the_flusher_stops_the_client(
        self,
        server: Server,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The flusher runs in the client's task group; what it raises still
        stops the client with an internal error, not the whole group."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                sender = client._sender

                async def broken_flush(self: Sender, conn: object) -> None:
                    raise RuntimeError("a flusher bug")

                # Connected and flushed by now: only the flusher calls it.
                monkeypatch.setattr(Sender, "flush_to", broken_flush)
                receipt = SendReceipt('{"type": "echo", "data": 1}', 0.0, None, None)
                sender.buffer.offer(receipt, anyio.current_time())
                sender._wake_grew()
                while client.state is not ClientState.CLOSED:
                    await client._supervisor.wait_changed()  # type: ignore[union-attr]
        error = client._supervisor.error  # type: ignore[union-attr]
        assert isinstance(error, ClientStopped)
        assert "a flusher bug" in str(error)
