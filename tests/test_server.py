"""Tests for the reference server, with real websockets clients on both backends."""

from __future__ import annotations

import json
import math
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import sniffio
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from tests.raw import connect, no_server_errors  # noqa: F401 - a fixture
from tests.utils import LONG, T, interruptible
from wsclient.server import Server, ServerCounters, serve
from wsclient.server.__main__ import main

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.anyio


# Helpers.


async def ping(ws: Any) -> None:
    """Send a WebSocket ping and wait for its pong."""
    waiter = await ws.ping()
    if sniffio.current_async_library() == "trio":
        await waiter.wait()
    else:
        await waiter


async def command(ws: Any, **message: Any) -> Any:
    """Send a JSON command and return the parsed reply."""
    await ws.send(json.dumps(message))
    return json.loads(await ws.recv())


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A server on 127.0.0.1 and a free port."""
    async with serve() as server:
        yield server


# Start-up and addresses.


async def test_url_and_port(server: Server) -> None:
    """The server reports the port it really bound and a ws:// URL for it."""
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"ws://127.0.0.1:{server.port}"
    assert repr(server) == f"<Server {server.url} up>"


async def test_ready_when_serve_yields() -> None:
    """A client can connect as soon as serve() yields, without waiting."""
    async with serve() as server:
        with anyio.fail_after(LONG):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.aclose()


async def test_ipv6_url() -> None:
    """An IPv6 host is put in brackets in the URL."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support")
    try:
        probe = socket.socket(socket.AF_INET6)
        with probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not available")
    async with serve(host="::1") as server, connect(server.url) as ws:
        assert server.url == f"ws://[::1]:{server.port}"
        with anyio.fail_after(LONG):
            assert await command(ws, type="echo", data=1) == {"type": "echo", "data": 1}


# Wire protocol.


async def test_echo_command(server: Server) -> None:
    """An echo command comes back with the same data."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            reply = await command(ws, type="echo", data={"a": [1, "b", None]})
            assert reply == {"type": "echo", "data": {"a": [1, "b", None]}}
            assert await command(ws, type="echo") == {"type": "echo", "data": None}


async def test_ping_command(server: Server) -> None:
    """An application ping gets a pong with the same id, or none without one."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            assert await command(ws, type="ping", id=42) == {"type": "pong", "id": 42}
            assert await command(ws, type="ping", id="a") == {"type": "pong", "id": "a"}
            assert await command(ws, type="ping") == {"type": "pong"}


async def test_broadcast_command(server: Server) -> None:
    """A broadcast command reaches every open connection, the sender included."""
    async with connect(server.url) as ws1, connect(server.url) as ws2:
        with anyio.fail_after(LONG):
            await server.wait_for(lambda c: c.handshakes_completed == 2)
            await ws1.send(json.dumps({"type": "broadcast", "data": "hi"}))
            expected = {"type": "broadcast", "data": "hi"}
            assert json.loads(await ws1.recv()) == expected
            assert json.loads(await ws2.recv()) == expected


async def test_stream_command(server: Server) -> None:
    """A stream command sends count messages in order, each with size characters."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await ws.send(json.dumps({"type": "stream", "count": 100, "size": 10}))
            for seq in range(100):
                reply = json.loads(await ws.recv())
                assert reply == {"type": "stream", "seq": seq, "data": "x" * 10}
            # Stream commands run one after the other.
            await ws.send(json.dumps({"type": "stream", "count": 2, "size": 0}))
            await ws.send(json.dumps({"type": "stream", "count": 1, "size": 1}))
            replies = [json.loads(await ws.recv()) for _ in range(3)]
            assert [(r["seq"], r["data"]) for r in replies] == [
                (0, ""),
                (1, ""),
                (0, "x"),
            ]


@pytest.mark.parametrize(
    ("count", "size", "culprit"),
    [
        (-1, 1, "count"),
        (1_000_001, 1, "count"),
        ("3", 1, "count"),
        (True, 1, "count"),
        (1.5, 1, "count"),
        (None, 1, "count"),
        (1, -1, "size"),
        (1, 2**20 + 1, "size"),
        (1, "1", "size"),
        (1, None, "size"),
    ],
)
async def test_stream_command_bad_values(
    server: Server, count: Any, size: Any, culprit: str
) -> None:
    """A stream command with a bad count or size gets an error reply."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            reply = await command(ws, type="stream", count=count, size=size)
            assert reply["type"] == "error"
            assert f"stream {culprit} must be" in reply["error"]


async def test_stream_interleaves_with_pings(server: Server) -> None:
    """The server answers pings while a large stream is still going out."""
    count = 10_000
    with anyio.fail_after(LONG):
        # max_queue=None: the client reads eagerly, so it sees the pong as soon
        # as it is on the wire rather than after the messages before it.
        async with connect(server.url, max_queue=None, max_size=None) as ws:
            await ws.send(json.dumps({"type": "stream", "count": count, "size": 1000}))
            await ping(ws)
            assert server.counters.messages_sent < count
            start = anyio.current_time()
        # The server also reads the close frame mid-stream and stops streaming.
        assert anyio.current_time() - start < 500 * T
        assert ws.close_code == 1000


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        '{"data": 1}',
        '{"type": "unknown", "data": 1}',
        '{"type": 7}',
        "[" * 100_000,
        b"\x00\x01binary",
        b'{"type": "echo", "data": 1}',
    ],
)
async def test_verbatim_echo(server: Server, message: str | bytes) -> None:
    """Anything that is not a known command comes back verbatim, same frame type."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await ws.send(message)
            assert await ws.recv() == message


async def test_fragmented_message(server: Server) -> None:
    """A fragmented message is reassembled, then handled as one message."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await ws.send(['{"type": "ec', 'ho", "data": 5}'])
            assert json.loads(await ws.recv()) == {"type": "echo", "data": 5}
            await ws.send([b"ab", b"cd"])
            assert await ws.recv() == b"abcd"
    assert server.counters.messages_received == 2


async def test_websocket_ping_gets_pong(server: Server) -> None:
    """WebSocket pings get pongs and are counted."""
    async with connect(server.url, ping_interval=None) as ws:
        with anyio.fail_after(LONG):
            await ping(ws)
            await ping(ws)
    assert server.counters.pings_received == 2


async def test_invalid_utf8_closes_with_1007(server: Server) -> None:
    """A text message that is not UTF-8 closes the connection with 1007."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await ws.send(b"\xff\xfe", text=True)
            with pytest.raises(ConnectionClosedError):
                await ws.recv()
            assert ws.close_code == 1007


async def test_max_size_closes_with_1009() -> None:
    """A message over max_size closes the connection with 1009."""
    async with serve(max_size=1024) as server, connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await ws.send("x" * 1025)
            with pytest.raises(ConnectionClosedError):
                await ws.recv()
            assert ws.close_code == 1009


async def test_broken_clients_do_not_crash_the_server(server: Server) -> None:
    """Bad HTTP requests are refused or dropped; the server keeps serving."""
    with anyio.fail_after(LONG):
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = await read_until_eof(stream)
            assert response.startswith(b"HTTP/1.1 426 ")
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"\x00\xffgarbage\r\n\r\n")
            assert await read_until_eof(stream) == b""
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            pass  # connects and leaves at once
        await server.wait_for(lambda c: c.connections_open == 0)
        async with connect(server.url) as ws:
            assert await command(ws, type="echo", data=1) == {"type": "echo", "data": 1}
    counters = server.counters
    assert counters.connections_accepted == 4
    assert counters.handshakes_refused == 1
    assert counters.handshakes_completed == 1


async def read_until_eof(stream: Any) -> bytes:
    """Read a raw TCP stream until the peer closes it."""
    data = b""
    try:
        while True:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return data


# Counters.


async def test_counters(server: Server) -> None:
    """Counters follow connections, handshakes and messages."""
    assert server.counters == ServerCounters()
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await command(ws, type="echo", data=1)
            await ws.send(json.dumps({"type": "stream", "count": 3, "size": 1}))
            for _ in range(3):
                await ws.recv()
        counters = server.counters
        assert counters == ServerCounters(
            connections_accepted=1,
            handshakes_completed=1,
            handshakes_refused=0,
            messages_received=2,
            messages_sent=4,
            connections_open=1,
        )
    with anyio.fail_after(LONG):
        await server.wait_for(lambda c: c.connections_open == 0)


async def test_counters_are_snapshots(server: Server) -> None:
    """A counters snapshot does not change, and cannot be changed."""
    before = server.counters
    async with connect(server.url):
        pass
    assert before.connections_accepted == 0
    assert server.counters.connections_accepted == 1
    with pytest.raises(AttributeError):
        before.connections_accepted = 5  # type: ignore[misc]


async def test_wait_for(server: Server) -> None:
    """wait_for returns once the predicate holds, with that snapshot."""
    results: list[ServerCounters] = []

    async def waiter() -> None:
        results.append(await server.wait_for(lambda c: c.handshakes_completed >= 2))

    with anyio.fail_after(LONG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            async with connect(server.url):
                pass
            assert results == []
            async with connect(server.url):
                pass
    assert results[0].handshakes_completed == 2
    # A predicate that already holds returns at once.
    with anyio.fail_after(LONG):
        counters = await server.wait_for(lambda c: True)
    assert counters.handshakes_completed == 2


# Fault injection.


def is_refused(exc: BaseException | None) -> bool:
    """Tell whether an error, its cause, or a member of it is ECONNREFUSED."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(is_refused(member) for member in exc.exceptions)
    return exc is not None and is_refused(exc.__cause__)


async def test_abort_all(server: Server) -> None:
    """abort_all drops connections without a close frame: the client sees 1006."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await server.wait_for(lambda c: c.handshakes_completed == 1)
            await server.abort_all()
            assert server.counters.connections_open == 0
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.rcvd is None
            assert ws.close_code == 1006
        # The server still accepts new connections.
        async with connect(server.url) as ws2:
            with anyio.fail_after(LONG):
                assert await command(ws2, type="ping") == {"type": "pong"}


async def test_abort_all_during_handshake(server: Server) -> None:
    """abort_all also drops connections still in the opening handshake."""
    errors: list[Exception] = []

    async def attempt() -> None:
        try:
            async with connect(server.url, open_timeout=LONG):
                pass
        except Exception as exc:
            errors.append(exc)

    server.stall(True)  # holds the handshake
    with anyio.fail_after(LONG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt)
            await server.wait_for(lambda c: c.connections_accepted == 1)
            await server.abort_all()
    assert len(errors) == 1
    assert not isinstance(errors[0], TimeoutError)
    assert server.counters.handshakes_completed == 0


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [((), 1012, "restart"), ((4000, "bye"), 4000, "bye"), ((1000,), 1000, "restart")],
)
async def test_close_all(
    server: Server, args: tuple[Any, ...], code: int, reason: str
) -> None:
    """close_all sends a close frame with the code and reason, then closes TCP."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await server.wait_for(lambda c: c.handshakes_completed == 1)
            await server.close_all(*args)
            assert server.counters.connections_open == 0
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert (ws.close_code, ws.close_reason) == (code, reason)


async def test_close_all_while_stalled(server: Server) -> None:
    """close_all completes the closing handshake even while the server is stalled."""
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await server.wait_for(lambda c: c.handshakes_completed == 1)
            server.stall(True)
            start = anyio.current_time()
            await server.close_all(4001, "stalled")
            assert anyio.current_time() - start < 500 * T  # not the 1 s timeout
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4001, "stalled")


async def test_stall(server: Server) -> None:
    """While stalled, pings get no pong and TCP stays open; traffic then resumes."""
    async with connect(server.url, ping_interval=None) as ws:
        with anyio.fail_after(LONG):
            await server.wait_for(lambda c: c.handshakes_completed == 1)
        server.stall(True)
        await ws.send(json.dumps({"type": "echo", "data": "late"}))
        with anyio.move_on_after(100 * T) as scope:
            await ping(ws)
        assert scope.cancelled_caught, "a stalled server answered a ping"
        assert server.counters.connections_open == 1
        assert server.counters.messages_received == 0
        server.stall(False)
        with anyio.fail_after(LONG):
            await ping(ws)
            assert json.loads(await ws.recv()) == {"type": "echo", "data": "late"}
            assert await command(ws, type="ping") == {"type": "pong"}


async def test_stall_holds_new_handshakes(server: Server) -> None:
    """While stalled, new TCP connections are accepted but never get a handshake."""
    server.stall(True)
    with anyio.fail_after(LONG):
        with pytest.raises(TimeoutError):
            async with connect(server.url, open_timeout=100 * T):
                pass
        assert server.counters.connections_accepted == 1
        assert server.counters.handshakes_completed == 0
        server.stall(False)
        async with connect(server.url) as ws:
            assert await command(ws, type="ping") == {"type": "pong"}


async def test_refuse_next(server: Server) -> None:
    """The next n handshakes get the HTTP status, Retry-After and body; then accept."""
    server.refuse_next(2, status=503, retry_after=7, body="busy")
    with anyio.fail_after(LONG):
        for _ in range(2):
            with pytest.raises(InvalidStatus) as info:
                async with connect(server.url):
                    pass
            response = info.value.response
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "7"
            assert response.body == b"busy"
        async with connect(server.url):
            pass
    counters = server.counters
    assert (counters.handshakes_refused, counters.handshakes_completed) == (2, 1)


async def test_refuse_next_retry_after_verbatim(server: Server) -> None:
    """A str retry_after is sent verbatim; no retry_after sends no header."""
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.refuse_next(1, status=429, retry_after=date)
    with anyio.fail_after(LONG):
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url):
                pass
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == date
        server.refuse_next(1, status=599)
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url):
                pass
        assert info.value.response.status_code == 599
        assert "Retry-After" not in info.value.response.headers


async def test_refuse_next_zero_cancels(server: Server) -> None:
    """refuse_next(0) cancels pending refusals."""
    server.refuse_next(3)
    server.refuse_next(0)
    with anyio.fail_after(LONG):
        async with connect(server.url):
            pass
    assert server.counters.handshakes_refused == 0


async def test_close_after_handshake(server: Server) -> None:
    """In this mode every new connection opens, then closes at once with the code."""
    server.close_after_handshake(1013, "try later")
    with anyio.fail_after(LONG):
        for _ in range(3):
            async with connect(server.url) as ws:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert (ws.close_code, ws.close_reason) == (1013, "try later")
        await server.wait_for(lambda c: c.handshakes_completed == 3)
        server.close_after_handshake(None)
        async with connect(server.url) as ws:
            assert await command(ws, type="ping") == {"type": "pong"}


async def test_close_after_handshake_default(server: Server) -> None:
    """The default code is 1012 with an empty reason."""
    server.close_after_handshake()
    with anyio.fail_after(LONG):
        async with connect(server.url) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (1012, "")


async def test_set_latency(server: Server) -> None:
    """Latency delays data messages by about that much, but not pongs."""
    latency = 200 * T
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await ping(ws)  # the connection is warm
            server.set_latency(latency)
            start = anyio.current_time()
            await ws.send(json.dumps({"type": "echo", "data": 1}))
            await ping(ws)
            assert anyio.current_time() - start < latency, "pong was delayed"
            assert json.loads(await ws.recv()) == {"type": "echo", "data": 1}
            elapsed = anyio.current_time() - start
            assert latency <= elapsed < latency + LONG / 2
            server.set_latency(0)
            start = anyio.current_time()
            await command(ws, type="echo", data=2)
            assert anyio.current_time() - start < latency


async def test_go_down_and_come_back(server: Server) -> None:
    """go_down refuses connections and drops open ones; come_back reuses the port."""
    port = server.port
    async with connect(server.url) as ws:
        with anyio.fail_after(LONG):
            await server.wait_for(lambda c: c.handshakes_completed == 1)
            await server.go_down()
            with pytest.raises(ConnectionClosedError):
                await ws.recv()
            assert ws.close_code == 1006
    assert repr(server) == f"<Server {server.url} down>"
    with anyio.fail_after(LONG):
        # Trio raises a plain OSError whose cause holds the refusal.
        with pytest.raises(OSError) as info:  # noqa: PT011
            async with connect(server.url):
                pass
        assert is_refused(info.value)
        with pytest.raises(RuntimeError, match="already down"):
            await server.go_down()
        await server.come_back()
        assert server.port == port
        async with connect(server.url) as ws:
            assert await command(ws, type="ping") == {"type": "pong"}
        with pytest.raises(RuntimeError, match="not down"):
            await server.come_back()
        # Down and up again, several times in a row.
        for _ in range(3):
            await server.go_down()
            await server.come_back()
        async with connect(server.url) as ws:
            assert await command(ws, type="ping") == {"type": "pong"}


async def test_broadcast_from_server(server: Server) -> None:
    """broadcast sends text or binary to every open connection."""
    async with connect(server.url) as ws1, connect(server.url) as ws2:
        with anyio.fail_after(LONG):
            await server.wait_for(lambda c: c.handshakes_completed == 2)
            assert await server.broadcast("hello") == 2
            assert await server.broadcast(b"\x01") == 2
            for ws in (ws1, ws2):
                assert await ws.recv() == "hello"
                assert await ws.recv() == b"\x01"
    with anyio.fail_after(LONG):
        await server.wait_for(lambda c: c.connections_open == 0)
    assert await server.broadcast("nobody") == 0


# Invalid arguments.


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda s: s.refuse_next(-1), ValueError, id="n<0"),
        pytest.param(lambda s: s.refuse_next(1.5), TypeError, id="n-float"),
        pytest.param(lambda s: s.refuse_next(True), TypeError, id="n-bool"),
        pytest.param(lambda s: s.refuse_next(1, 200), ValueError, id="status-200"),
        pytest.param(lambda s: s.refuse_next(1, 600), ValueError, id="status-600"),
        pytest.param(lambda s: s.refuse_next(1, "503"), TypeError, id="status-str"),
        pytest.param(lambda s: s.refuse_next(1, 503, -1), ValueError, id="retry<0"),
        pytest.param(lambda s: s.refuse_next(1, 503, 1.5), TypeError, id="retry-float"),
        pytest.param(lambda s: s.refuse_next(1, 503, ""), ValueError, id="retry-empty"),
        pytest.param(
            lambda s: s.refuse_next(1, 503, "1\r\nX-Evil: 1"),
            ValueError,
            id="retry-crlf",
        ),
        pytest.param(lambda s: s.refuse_next(1, body=b"x"), TypeError, id="body-bytes"),
        pytest.param(
            lambda s: s.close_after_handshake(1006), ValueError, id="code-1006"
        ),
        pytest.param(
            lambda s: s.close_after_handshake(1005), ValueError, id="code-1005"
        ),
        pytest.param(lambda s: s.close_after_handshake(999), ValueError, id="code-999"),
        pytest.param(
            lambda s: s.close_after_handshake(5000), ValueError, id="code-5000"
        ),
        pytest.param(lambda s: s.close_after_handshake("1"), TypeError, id="code-str"),
        pytest.param(
            lambda s: s.close_after_handshake(1000, b"x"), TypeError, id="reason-bytes"
        ),
        pytest.param(
            lambda s: s.close_after_handshake(1000, "é" * 62),
            ValueError,
            id="reason-124B",
        ),
        pytest.param(lambda s: s.set_latency(-1), ValueError, id="latency<0"),
        pytest.param(lambda s: s.set_latency(math.inf), ValueError, id="latency-inf"),
        pytest.param(lambda s: s.set_latency(math.nan), ValueError, id="latency-nan"),
        pytest.param(lambda s: s.set_latency("1"), TypeError, id="latency-str"),
        pytest.param(lambda s: s.stall("yes"), TypeError, id="stall-str"),
    ],
)
async def test_invalid_arguments(
    server: Server, call: Callable[[Server], object], error: type[Exception]
) -> None:
    """Fault methods reject bad arguments with TypeError or ValueError."""
    with pytest.raises(error):
        call(server)


async def test_invalid_arguments_async(server: Server) -> None:
    """Async fault methods reject bad arguments too."""
    with pytest.raises(ValueError, match="1006"):
        await server.close_all(1006)
    with pytest.raises(ValueError, match="123 bytes"):
        await server.close_all(1000, "x" * 124)
    with pytest.raises(TypeError, match="str or bytes"):
        await server.broadcast(1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"port": -1}, ValueError),
        ({"port": 65536}, ValueError),
        ({"port": "80"}, TypeError),
        ({"host": ""}, TypeError),
        ({"max_size": 0}, ValueError),
        ({"max_size": 1.5}, TypeError),
    ],
)
async def test_invalid_serve_arguments(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """serve() rejects a bad host, port or max_size."""
    with pytest.raises(error):
        async with serve(**kwargs):
            pass


# Lifetime.


async def test_serve_reraises_body_exception() -> None:
    """An exception in the body of `async with serve()` comes out unwrapped."""
    with pytest.raises(ZeroDivisionError):
        async with serve():
            1 / 0  # noqa: B018


async def test_methods_fail_after_exit() -> None:
    """go_down and come_back say so when the server is closed."""
    async with serve() as server:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await server.go_down()
    with pytest.raises(RuntimeError, match="closed"):
        await server.come_back()


async def client_until_closed(
    url: str, codes: list[tuple[int | None, str | None]], *, task_status: Any
) -> None:
    """Connect, report readiness, then record the close code and reason."""
    async with connect(url, ping_interval=None) as ws:
        task_status.started()
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        codes.append((ws.close_code, ws.close_reason))


async def test_exit_closes_connections_with_1001() -> None:
    """Leaving serve() closes open connections with 1001, promptly."""
    codes: list[tuple[int | None, str | None]] = []
    with anyio.fail_after(LONG):
        async with anyio.create_task_group() as tg:
            async with serve() as server:
                await tg.start(client_until_closed, server.url, codes)
                start = anyio.current_time()
            assert anyio.current_time() - start < 500 * T
    assert codes == [(1001, "server shutting down")]
    assert server.counters.connections_open == 0


async def test_exit_while_stalled_is_prompt() -> None:
    """Leaving serve() while stalled, with a connection mid-handshake, is prompt."""
    codes: list[tuple[int | None, str | None]] = []
    with anyio.fail_after(LONG):
        async with anyio.create_task_group() as tg:
            async with serve() as server:
                await tg.start(client_until_closed, server.url, codes)
                server.stall(True)
                raw = await anyio.connect_tcp("127.0.0.1", server.port)
                await server.wait_for(lambda c: c.connections_accepted == 2)
                start = anyio.current_time()
            assert anyio.current_time() - start < 500 * T
            await raw.aclose()
    assert codes == [(1001, "server shutting down")]


HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


async def test_exit_with_unresponsive_client_is_bounded() -> None:
    """A client that never answers the close frame is dropped after about 1 s."""
    with anyio.fail_after(LONG):
        async with serve() as server:
            raw = await anyio.connect_tcp("127.0.0.1", server.port)
            await raw.send(HANDSHAKE)
            await server.wait_for(lambda c: c.handshakes_completed == 1)
            start = anyio.current_time()
        elapsed = anyio.current_time() - start
        await raw.aclose()
    assert 0.9 <= elapsed < 1.0 + 1000 * T


# Command line.


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad command-line arguments are a usage error (exit status 2)."""
    for argv in (["--port", "x"], ["--port", "70000"], ["--backend", "curio"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "usage:" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parent.parent
"""The checkout under test: `python -m` from here runs its code."""


async def test_cli_runs_until_interrupted(anyio_backend: Any) -> None:
    """`python -m wsclient.server` prints its URL, serves, and stops on Ctrl-C."""
    backend = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
    argv = [sys.executable, "-m", "wsclient.server", "--port", "0"]
    with anyio.fail_after(2 * LONG):
        argv += ["--backend", backend]
        process = await anyio.open_process(interruptible(argv), cwd=ROOT)
        async with process:
            try:
                assert process.stdout is not None
                output = b""
                while b"\n" not in output:
                    output += await process.stdout.receive()
                url = output.decode().split()[2]
                assert url.startswith("ws://127.0.0.1:")
                async with connect(url) as ws:
                    reply = await command(ws, type="echo", data=1)
                    assert reply == {"type": "echo", "data": 1}
                process.send_signal(signal.SIGINT)
                status = await process.wait()
                assert status == 0, await _read_all(process.stderr)
            finally:
                if process.returncode is None:
                    process.kill()


async def _read_all(stream: Any) -> str:
    """What is left to read on a process's pipe, for a failure message."""
    chunks = []
    with anyio.move_on_after(LONG):
        try:
            while True:
                chunks.append(await stream.receive())
        except anyio.EndOfStream:
            pass
    return b"".join(chunks).decode(errors="replace")
