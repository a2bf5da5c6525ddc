"""The client's public API over real sockets, on asyncio and trio."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import anyio
import pytest
from websockets.exceptions import ConcurrencyError

import wsclient
from wsclient import Client, ClientState

from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


def echo(data: object) -> str:
    return json.dumps({"type": "echo", "data": data})


def data_of(message: str | bytes) -> object:
    return json.loads(message)["data"]


class TestSendReceive:
    async def test_echo(self, server: Server) -> None:
        """A text message sent is echoed back and read with async for."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.send(echo("hello"))
                async for message in client:
                    assert data_of(message) == "hello"
                    break

    async def test_binary(self, server: Server) -> None:
        """Binary messages (bytes, bytearray, memoryview) go through unchanged."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                for payload in (b"\x00\x01", bytearray(b"ab"), memoryview(b"xyz")):
                    await client.send(payload)
                    assert await anext(aiter(client)) == bytes(payload)

    async def test_send_buffers_until_connected(self, server: Server) -> None:
        """send() while the server is down buffers; it goes out once connected."""
        await server.go_down()
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.send, echo(1))
                    await server.come_back()
                assert data_of(await anext(aiter(client))) == 1

    async def test_send_goes_by_the_state_it_finds_when_awaited(
        self, server: Server
    ) -> None:
        """A send coroutine made while connected and awaited after a
        reconnection goes out on the new connection (not the dead one)."""
        recorder = Recorder()
        async with Client(
            server.url, **fast_options(), **recorder.callbacks()
        ) as client:
            with anyio.fail_after(LONG):
                await recorder.wait_for("connect")
                pending = client.send(echo("made before"))
                await server.abort_all()
                await recorder.wait_for("reconnect")
                receipt = await pending
                assert receipt.outcome is wsclient.Outcome.WRITTEN
                assert data_of(await anext(aiter(client))) == "made before"

    async def test_send_awaited_after_close_raises(self, server: Server) -> None:
        """A send coroutine made while connected and awaited after close()
        raises ClientClosed, as a send made then would: nothing is lost
        silently."""
        async with Client(server.url, **fast_options()) as client:
            await client.wait_connected()
            pending = client.send(echo("too late"))
            await client.close()
            with pytest.raises(wsclient.ClientClosed):
                await pending

    async def test_stats_count_traffic(self, server: Server) -> None:
        """stats counts messages and payload sizes in both directions."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.send(b"12345")
                await anext(aiter(client))
            stats = client.stats
            assert (stats.messages_out, stats.bytes_out) == (1, 5)
            assert (stats.messages_in, stats.bytes_in) == (1, 5)
            assert stats.connects == 1
            assert stats.reconnects == 0

    async def test_latency(self, server: Server) -> None:
        """With server latency, replies take at least that long; nothing breaks."""
        server.set_latency(50 * T)
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                sent_at = anyio.current_time()
                await client.send(echo("slow"))
                assert data_of(await anext(aiter(client))) == "slow"
                assert anyio.current_time() - sent_at >= 50 * T

    async def test_iteration_survives_reconnect(self, server: Server) -> None:
        """async for keeps going across an abnormal closure, in order."""
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()) as c:
            with anyio.fail_after(LONG):
                received = []
                await c.send(echo(0))
                await c.send(echo(1))
                await server.wait_for(lambda n: n.messages_sent >= 2)
                await server.abort_all()
                await recorder.wait_for("reconnect")
                await c.send(echo(2))
                async for message in c:
                    received.append(data_of(message))
                    if len(received) == 3:
                        break
        assert received == [0, 1, 2]
        assert recorder.of("disconnect")[0].code == 1006

    async def test_unread_connections_are_bounded(self, server: Server) -> None:
        """Unread messages of at most 8 closed connections are kept, in order.

        Older ones are dropped and counted in stats.messages_dropped.
        """
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()) as c:
            with anyio.fail_after(LONG):
                for n in range(10):
                    await recorder.wait_for("connect", n + 1)
                    await c.send(echo(n))
                    await server.wait_for(lambda counts, n=n: counts.messages_sent > n)
                    await server.close_all(1012)
                await recorder.wait_for("connect", 11)
                await c.send(echo("last"))
                received = []
                async for message in c:
                    received.append(data_of(message))
                    if received[-1] == "last":
                        break
        assert received == [3, 4, 5, 6, 7, 8, 9, "last"]
        assert c.stats.messages_dropped == 3

    async def test_iteration_ends_on_close(self, server: Server) -> None:
        """async for stops once the client is closed by the application."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await client.send(echo("last"))
                await server.wait_for(lambda n: n.messages_sent >= 1)
                received = []
                async with anyio.create_task_group() as tg:

                    async def consume() -> None:
                        async for message in client:
                            received.append(data_of(message))
                            await client.close()

                    tg.start_soon(consume)
        assert received == ["last"]
        assert client.state is ClientState.CLOSED


class TestLifecycle:
    async def test_states(self, server: Server) -> None:
        """state goes idle, connected, backing off, connected, closed."""
        recorder = Recorder()
        client = Client(server.url, **fast_options(), **recorder.callbacks())
        assert client.state is ClientState.IDLE
        states = []
        client.on("disconnect", lambda e: states.append(client.state))
        async with client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                assert client.state is ClientState.CONNECTED
                await server.abort_all()
                await recorder.wait_for("reconnect")
                assert client.state is ClientState.CONNECTED
        assert client.state is ClientState.CLOSED
        assert states == [ClientState.BACKING_OFF, ClientState.CLOSED]

    async def test_wait_connected_timeout(self, server: Server) -> None:
        """wait_connected(timeout) raises TimeoutError while the server is down."""
        await server.go_down()
        async with Client(server.url, **fast_options()) as client:
            with pytest.raises(TimeoutError):
                await client.wait_connected(timeout=50 * T)

    async def test_close_is_idempotent(self, server: Server) -> None:
        """close() twice, and close() then leaving the block, are fine."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await client.close()
                await client.close()
        assert client.state is ClientState.CLOSED

    async def test_close_never_reconnects(self, server: Server) -> None:
        """A closed client opens no new connection, even after a while."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
        accepted = server.counters.connections_accepted
        with anyio.move_on_after(100 * T):  # Nothing to wait for: time passing.
            await server.wait_for(lambda n: n.connections_accepted > accepted)
        assert server.counters.connections_accepted == accepted

    async def test_close_during_backoff_is_prompt(self, server: Server) -> None:
        """close() while backing off for a long delay returns at once."""
        await server.go_down()
        recorder = Recorder()
        options = fast_options(backoff_initial=LONG * 10, backoff_jitter=0)
        async with Client(server.url, **options, **recorder.callbacks()) as client:
            with anyio.fail_after(LONG):
                await recorder.wait_for("disconnect")
                assert client.state is ClientState.BACKING_OFF
                with anyio.fail_after(500 * T):
                    await client.close()

    async def test_close_during_connect_is_prompt(self) -> None:
        """close() while the opening handshake hangs returns at once."""
        with anyio.fail_after(LONG):
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with listener, anyio.create_task_group() as tg:
                accepted = anyio.Event()

                async def never_answer(stream: anyio.abc.SocketStream) -> None:
                    accepted.set()
                    async with stream:
                        await anyio.sleep_forever()

                tg.start_soon(listener.serve, never_answer)
                url = f"ws://127.0.0.1:{port}"
                async with Client(url, **fast_options()) as client:
                    await accepted.wait()
                    assert client.state is ClientState.CONNECTING
                    with anyio.fail_after(500 * T):
                        await client.close()
                tg.cancel_scope.cancel()

    async def test_exception_in_block_stops_client(self, server: Server) -> None:
        """An exception in the async with block closes the client and propagates."""
        client = Client(server.url, **fast_options())
        with pytest.raises(KeyError):  # noqa: PT012 - the block under test
            async with client:
                with anyio.fail_after(LONG):
                    await client.wait_connected()
                raise KeyError("boom")
        assert client.state is ClientState.CLOSED

    async def test_enter_twice(self, server: Server) -> None:
        """A client cannot be entered a second time."""
        client = Client(server.url, **fast_options())
        async with client:
            pass
        with pytest.raises(RuntimeError, match="only once"):
            async with client:
                pass


class TestMisuse:
    async def test_send_wrong_type(self, server: Server) -> None:
        """send() of something that is not str or bytes raises TypeError."""
        async with Client(server.url, **fast_options()) as client:
            with pytest.raises(TypeError, match=r"str \(text\) or bytes"):
                await client.send({"a": 1})  # type: ignore[arg-type]

    async def test_send_after_close(self, server: Server) -> None:
        """send() after close() raises ClientClosed, a WSClientError."""
        async with Client(server.url, **fast_options()) as client:
            await client.close()
            with pytest.raises(wsclient.ClientClosed):
                await client.send("late")
        with pytest.raises(wsclient.WSClientError):
            await client.send("later")

    async def test_send_before_enter(self, server: Server) -> None:
        """send() before entering the client says how to use it."""
        client = Client(server.url, **fast_options())
        with pytest.raises(RuntimeError, match="async with"):
            await client.send("early")

    async def test_two_readers_at_once(self, server: Server) -> None:
        """One reader at a time, as with websockets: a second one raises
        websockets' ConcurrencyError; the first keeps reading."""
        async with Client(server.url, **fast_options()) as client:
            await client.wait_connected()
            with anyio.fail_after(LONG):
                async with anyio.create_task_group() as tg:
                    first: list[str | bytes] = []

                    async def read_one() -> None:
                        first.append(await anext(client))

                    tg.start_soon(read_one)
                    await anyio.wait_all_tasks_blocked()
                    with pytest.raises(ConcurrencyError, match="another coroutine"):
                        await anext(client)
                    await client.send(echo("for the first"))
            assert [data_of(m) for m in first] == ["for the first"]

    async def test_iterate_after_close(self, server: Server) -> None:
        """Iterating a closed client ends at once."""
        async with Client(server.url, **fast_options()) as client:
            pass
        assert [m async for m in client] == []


class TestCallbacks:
    async def test_order(self, server: Server) -> None:
        """Events come in order: connect, disconnect, connect, reconnect."""
        recorder = Recorder()
        async with Client(server.url, **fast_options(), **recorder.callbacks()) as c:
            with anyio.fail_after(LONG):
                await c.wait_connected()
                await server.abort_all()
                await recorder.wait_for("reconnect")
        names = recorder.names()
        assert names[:4] == ["connect", "disconnect", "connect", "reconnect"]
        connect, disconnect, reconnect = (
            recorder.of("connect")[1],
            recorder.of("disconnect")[0],
            recorder.of("reconnect")[0],
        )
        assert disconnect.will_reconnect
        assert disconnect.delay is not None
        assert disconnect.was_connected
        assert connect.reconnect
        assert connect.attempt == 1
        assert reconnect.attempt == 1
        assert reconnect.downtime >= disconnect.delay * 0.9

    async def test_async_callbacks_and_on(self, server: Server) -> None:
        """Async callbacks registered with on() are awaited."""
        seen: list[str] = []
        async with Client(server.url, **fast_options()) as client:

            @client.on("disconnect")
            async def on_disconnect(event: wsclient.DisconnectEvent) -> None:
                await anyio.lowlevel.checkpoint()
                seen.append(f"disconnect {event.code}")

            with anyio.fail_after(LONG):
                await client.wait_connected()
        assert seen == ["disconnect 1000"]

    async def test_raising_callback(
        self, server: Server, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A callback that raises is logged; the client keeps reconnecting."""
        recorder = Recorder()

        def broken(event: object) -> None:
            raise ValueError("bug in the application")

        options = fast_options(on_disconnect=broken, on_reconnect=broken)
        caplog.set_level(logging.ERROR, logger="wsclient")
        async with Client(server.url, **options) as client:
            client.on("reconnect", recorder.callbacks()["on_reconnect"])
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await server.abort_all()
                await recorder.wait_for("reconnect")
                await client.send(echo("alive"))
                assert data_of(await anext(aiter(client))) == "alive"
        assert "bug in the application" in caplog.text

    async def test_close_from_callback(self, server: Server) -> None:
        """close() called from a callback stops the client without deadlock."""
        async with Client(server.url, **fast_options()) as client:

            @client.on("connect")
            async def stop(event: object) -> None:
                await client.close()

            with anyio.fail_after(LONG):
                assert [m async for m in client] == []
        assert client.state is ClientState.CLOSED


class TestCancellation:
    async def test_cancel_anext(self, server: Server) -> None:
        """Cancelling a pending receive loses nothing."""
        async with Client(server.url, **fast_options()) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                with anyio.move_on_after(20 * T):
                    await anext(aiter(client))
                await client.send(echo("after cancel"))
                assert data_of(await anext(aiter(client))) == "after cancel"

    async def test_cancel_send_waiting(self, server: Server) -> None:
        """Cancelling a send() that waits for room in the buffer sends nothing."""
        await server.go_down()
        options = fast_options(buffer_max_messages=1)
        async with Client(server.url, **options) as client:
            buffered = await client.send(echo("buffered"))
            assert buffered.outcome is None
            with anyio.move_on_after(50 * T) as waiting:
                await client.send(echo("never"))
            assert waiting.cancelled_caught
            with anyio.fail_after(LONG):
                await server.come_back()
                await client.wait_connected()
                await client.send(echo("sent"))
                assert data_of(await anext(aiter(client))) == "buffered"
                assert data_of(await anext(aiter(client))) == "sent"
        assert buffered.outcome is wsclient.Outcome.WRITTEN
        assert client.stats.messages_out == 2

    async def test_cancel_wait_connected(self, server: Server) -> None:
        """Cancelling wait_connected() leaves the client working."""
        await server.go_down()
        async with Client(server.url, **fast_options()) as client:
            with anyio.move_on_after(50 * T):
                await client.wait_connected()
            with anyio.fail_after(LONG):
                await server.come_back()
                await client.wait_connected()
