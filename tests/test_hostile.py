"""The client against broken or hostile servers (issue 5).

Whatever the server does, the client keeps its memory bounded, reports a
clear error or counts what it dropped, and keeps working or reconnects under
backoff: it never crashes and never hangs. The servers are in
``tests/hostile.py``; every test runs on asyncio and on trio, over real
sockets on 127.0.0.1.
"""

from __future__ import annotations

import gc
import json
import logging
import tracemalloc
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from websockets.asyncio.messages import MAX_FRAGMENTS
from websockets.frames import Opcode

import wsclient
from wsclient import Client, ClientState, FailureKind

from .hostile import (
    EVIL_REASON,
    Peer,
    bomb_frame,
    channel_server,
    endless_headers,
    first_then_echo,
    flood,
    hostile_server,
    huge_header,
    pub,
    raw_frame,
    trickle,
)
from .utils import LONG, T, fast_options

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from .hostile import Behaviour, HostileServer

pytestmark = pytest.mark.anyio

MiB = 1 << 20

CONTROL_CHARACTERS = ("\r", "\n", "\x1b", "\x00", "\x07")
"""What a close reason must not smuggle into a log line."""

BACKOFF = {"backoff_initial": 100 * T, "backoff_max": 200 * T}
"""Delays long enough to tell a backoff from none (50 to 100 ms at first)."""


@pytest.fixture(autouse=True)
def no_client_crash(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture the client's logs at DEBUG; fail on any error it logged.

    The client logs an error when its supervisor crashes, a callback or the
    protocol adapter raises: none of that may happen whatever the server
    sends. Giving up is an error too, but an expected one where a test asks
    for it.
    """
    caplog.set_level(logging.DEBUG, logger="wsclient")
    yield
    errors = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("wsclient")
        and record.levelno >= logging.ERROR
        and not record.getMessage().startswith("giving up")
    ]
    assert errors == []


@contextmanager
def traced_memory() -> Iterator[Callable[[], int]]:
    """Trace allocations; yield a function returning the peak growth so far.

    Everything in the process counts, the test server included: a bound met
    here is met by the client alone.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        yield lambda: tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if started:
            tracemalloc.stop()


class Timeline:
    """The client's events with the time each one fired; wait for them."""

    def __init__(self, client: Client) -> None:
        self.events: list[tuple[str, float, Any]] = []
        self._changed = anyio.Event()
        for name in ("connect", "disconnect", "reconnect", "give_up"):
            client.on(name, self._recorder(name))

    def of(self, name: str) -> list[Any]:
        return [event for n, _, event in self.events if n == name]

    def time_of(self, name: str, index: int = 0) -> float:
        return [at for n, at, _ in self.events if n == name][index]

    async def wait_for(self, name: str, count: int = 1) -> Any:
        """Wait for the ``count``-th event named ``name``; return it."""
        while len(self.of(name)) < count:
            await self._changed.wait()
        return self.of(name)[count - 1]

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            self.events.append((name, anyio.current_time(), event))
            self._changed.set()
            self._changed = anyio.Event()

        return record


async def check_echo(client: Client) -> None:
    """The client works: a message goes out and its echo comes back."""
    await client.send("still alive?")
    assert await anext(aiter(client)) == "still alive?"


async def read_forever(client: Client, into: list[Any] | None = None) -> None:
    """Read the client's stream, as an application does, until cancelled."""
    async for message in client:
        if into is not None:
            into.append(message)


async def send_oversized(peer: Peer) -> None:
    await peer.send_raw(raw_frame(Opcode.BINARY, bytes(MiB + 1)))


async def send_bomb(peer: Peer) -> None:
    await peer.send_raw(bomb_frame())


async def send_invalid_utf8(peer: Peer) -> None:
    await peer.send_raw(raw_frame(Opcode.TEXT, b"caf\xc3 \xff\xfe"))


AFTER_THE_BAD_ONE = "sent right after the invalid message"


async def send_invalid_utf8_then_text(peer: Peer) -> None:
    # One write: the valid message is buffered when the invalid one is read.
    invalid = raw_frame(Opcode.TEXT, b"caf\xc3 \xff\xfe")
    await peer.send_raw(invalid + raw_frame(Opcode.TEXT, AFTER_THE_BAD_ONE.encode()))


async def send_too_many_fragments(peer: Peer) -> None:
    """One text message in more fragments than websockets accepts."""
    first = raw_frame(Opcode.TEXT, b"x", fin=False)
    more = raw_frame(Opcode.CONT, b"x", fin=False) * (MAX_FRAGMENTS + 1)
    await peer.send_raw(first + more)


async def reconnected_after(
    misbehave: Callable[[Peer], Awaitable[None]],
    *,
    compression: bool = False,
    received: list[Any] | None = None,
    **options: Any,
) -> tuple[HostileServer, Timeline, Client]:
    """Run a client against one misbehaving connection until it reconnected.

    The client's stream is read all along, as an application does (invalid
    UTF-8 is only found when the message is read), into ``received`` if
    given. Returns once the second connection is open and the echo works on
    it.
    """
    behaviour = first_then_echo(misbehave)
    async with hostile_server(behaviour, compression=compression) as server:
        async with Client(server.url, **fast_options(**BACKOFF, **options)) as client:
            timeline = Timeline(client)
            with anyio.fail_after(LONG):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_forever, client, received)
                    await timeline.wait_for("reconnect")
                    tg.cancel_scope.cancel()
                await check_echo(client)
    return server, timeline, client


def first_close_code(server: HostileServer) -> int:
    """The close code the client sent on its first connection."""
    close = server.peers[0].close_received
    assert close is not None
    return close.code


def reference_or_none(protocol: str | None) -> wsclient.ReferenceProtocol | None:
    """The adapter a test's ``protocol`` parameter names."""
    return None if protocol is None else wsclient.ReferenceProtocol()


def check_backoff(server: HostileServer, timeline: Timeline) -> None:
    """The client waited out the delay it announced before trying again."""
    disconnect = timeline.of("disconnect")[0]
    assert disconnect.will_reconnect
    assert disconnect.delay is not None
    assert disconnect.delay >= BACKOFF["backoff_initial"] / 2
    waited = server.accepted[1] - timeline.time_of("disconnect")
    # The delay starts just before on_disconnect fires: allow for that.
    assert waited >= disconnect.delay - 25 * T


class TestTooBig:
    async def test_oversized_message_closes_1009_and_reconnects(self) -> None:
        """A message over max_size closes with 1009; the client reconnects."""
        server, timeline, client = await reconnected_after(send_oversized)
        close = server.peers[0].close_received
        assert close is not None
        assert close.code == 1009
        disconnect = timeline.of("disconnect")[0]
        assert disconnect.was_connected
        assert disconnect.failure.kind is FailureKind.CLOSED
        check_backoff(server, timeline)
        assert client.stats.messages_in == 1  # The echo; never the big one.
        assert client.stats.reconnects == 1

    async def test_zero_bomb_closes_1009_with_bounded_memory(self) -> None:
        """200 MiB of compressed zeros: 1009 after at most max_size, not 200 MiB."""
        bomb_frame()  # Built before tracing: it is the server's, and cached.
        with traced_memory() as growth:
            server, timeline, client = await reconnected_after(
                send_bomb, compression=True
            )
            peak = growth()
        assert peak < 5 * MiB, f"memory grew by {peak / MiB:.1f} MiB"
        assert server.peers[0].protocol.extensions, "deflate was not negotiated"
        close = server.peers[0].close_received
        assert close is not None
        assert close.code == 1009
        check_backoff(server, timeline)
        assert client.stats.bytes_in == len("still alive?")


class TestInvalidUtf8:
    @pytest.mark.parametrize("protocol", [None, "reference"])
    async def test_invalid_utf8_closes_1007_and_reconnects(
        self, protocol: str | None
    ) -> None:
        """Invalid UTF-8 in a text frame closes with 1007; the client reconnects.

        Read by the application (no adapter) or by the router's reader.
        """
        adapter = reference_or_none(protocol)
        server, timeline, client = await reconnected_after(
            send_invalid_utf8, protocol=adapter
        )
        assert first_close_code(server) == 1007
        check_backoff(server, timeline)
        assert client.stats.reconnects == 1

    @pytest.mark.parametrize("protocol", [None, "reference"])
    async def test_messages_after_invalid_utf8_are_not_delivered(
        self, protocol: str | None
    ) -> None:
        """The invalid message ends the connection, as websockets' recv()
        does: a message already buffered behind it is not read."""
        adapter = reference_or_none(protocol)
        received: list[Any] = []
        server, _, _ = await reconnected_after(
            send_invalid_utf8_then_text, protocol=adapter, received=received
        )
        assert first_close_code(server) == 1007
        assert AFTER_THE_BAD_ONE not in received


class TestTooManyFragments:
    @pytest.mark.parametrize("protocol", [None, "reference"])
    async def test_too_many_fragments_close_1009_and_reconnect(
        self, protocol: str | None
    ) -> None:
        """A message in more fragments than websockets allows closes with
        1009 (as websockets' recv() does); the client reconnects."""
        adapter = reference_or_none(protocol)
        server, timeline, client = await reconnected_after(
            send_too_many_fragments, protocol=adapter
        )
        assert first_close_code(server) == 1009
        assert timeline.of("disconnect")[0].code == 1009
        check_backoff(server, timeline)
        assert client.stats.reconnects == 1


class TestReportedCode:
    @pytest.mark.parametrize(
        ("misbehave", "code"),
        [
            pytest.param(send_oversized, 1009, id="oversized"),
            pytest.param(send_bomb, 1009, id="bomb"),
            pytest.param(send_invalid_utf8, 1007, id="invalid-utf8"),
        ],
    )
    async def test_disconnect_event_has_the_code_the_client_sent(
        self, misbehave: Callable[[Peer], Awaitable[None]], code: int
    ) -> None:
        """DisconnectEvent.code is the code the client closed with, and it retries."""
        compression = misbehave is send_bomb
        _, timeline, _ = await reconnected_after(misbehave, compression=compression)
        disconnect = timeline.of("disconnect")[0]
        assert (disconnect.code, disconnect.will_reconnect) == (code, True)


ENDLESS = 1 << 40
"""Bytes an "endless" handshake response would take: the client hangs up first."""


class TestHandshake:
    @pytest.mark.parametrize(
        "behaviour",
        [
            pytest.param(huge_header(), id="huge-header"),
            pytest.param(endless_headers(), id="endless-headers"),
        ],
    )
    async def test_oversized_handshake_response_is_retried(
        self, behaviour: Behaviour
    ) -> None:
        """A 10 MiB handshake response fails the attempt; retried, memory bounded."""
        with traced_memory() as growth:
            async with hostile_server(behaviour) as server:
                async with Client(server.url, **fast_options(**BACKOFF)) as client:
                    timeline = Timeline(client)
                    with anyio.fail_after(2 * LONG):
                        await timeline.wait_for("disconnect", 2)
                        await server.wait_for(lambda s: len(s.accepted) >= 2)
            peak = growth()
        assert peak < 5 * MiB, f"memory grew by {peak / MiB:.1f} MiB"
        for disconnect in timeline.of("disconnect")[:2]:
            assert disconnect.code is None
            assert not disconnect.was_connected
            assert disconnect.failure.kind is FailureKind.HANDSHAKE
            assert disconnect.failure.during_handshake
            assert disconnect.will_reconnect
        check_backoff(server, timeline)
        assert client.stats.failed_attempts >= 2
        assert client.stats.connects == 0

    @pytest.mark.parametrize(
        "behaviour",
        [
            pytest.param(huge_header(ENDLESS), id="huge-header"),
            pytest.param(endless_headers(ENDLESS), id="endless-headers"),
        ],
    )
    async def test_endless_handshake_response_ends_at_open_timeout(
        self, behaviour: Behaviour
    ) -> None:
        """A handshake response that never ends: each attempt ends by open_timeout.

        Memory stays bounded, the client backs off between attempts and
        gives up per max_attempts.
        """
        open_timeout = 300 * T
        options = fast_options(open_timeout=open_timeout, max_attempts=2, **BACKOFF)
        with traced_memory() as growth:
            async with hostile_server(behaviour) as server:
                async with Client(server.url, **options) as client:
                    timeline = Timeline(client)
                    with anyio.fail_after(LONG):
                        with pytest.raises(wsclient.GaveUp) as raised:
                            await client.wait_connected()
            peak = growth()
        assert peak < 5 * MiB, f"memory grew by {peak / MiB:.1f} MiB"
        assert raised.value.attempts == 2
        assert len(server.accepted) == 2
        disconnects = timeline.of("disconnect")
        assert [e.will_reconnect for e in disconnects] == [True, False]
        for index, disconnect in enumerate(disconnects):
            assert disconnect.failure.kind in (
                FailureKind.HANDSHAKE,
                FailureKind.TIMEOUT,
            )
            took = timeline.time_of("disconnect", index) - server.accepted[index]
            assert took <= open_timeout + 250 * T
        check_backoff(server, timeline)

    @pytest.mark.parametrize(
        "behaviour",
        [
            pytest.param(huge_header(ENDLESS), id="huge-header"),
            pytest.param(endless_headers(ENDLESS), id="endless-headers"),
        ],
    )
    async def test_invalid_handshake_response_fails_at_once(
        self, behaviour: Behaviour
    ) -> None:
        """The attempt fails as soon as the response is known to be invalid."""
        open_timeout = 600 * T
        options = fast_options(open_timeout=open_timeout, max_attempts=1)
        async with hostile_server(behaviour) as server:
            async with Client(server.url, **options) as client:
                timeline = Timeline(client)
                with anyio.fail_after(LONG), pytest.raises(wsclient.GaveUp):
                    await client.wait_connected()
        disconnect = timeline.of("disconnect")[0]
        took = timeline.time_of("disconnect") - server.accepted[0]
        assert (disconnect.failure.kind, took < open_timeout / 3) == (
            FailureKind.HANDSHAKE,
            True,
        )

    async def test_trickled_handshake_times_out(self) -> None:
        """A handshake trickled byte by byte fails at open_timeout; then backoff."""
        open_timeout = 300 * T
        async with hostile_server(trickle(interval=20 * T)) as server:
            options = fast_options(open_timeout=open_timeout, **BACKOFF)
            async with Client(server.url, **options) as client:
                timeline = Timeline(client)
                with anyio.fail_after(LONG):
                    disconnect = await timeline.wait_for("disconnect")
                    await server.wait_for(lambda s: len(s.accepted) >= 2)
        took = timeline.time_of("disconnect") - server.accepted[0]
        # The timeout covers the TCP connect too, which comes before accepted[0].
        assert open_timeout - 20 * T <= took <= open_timeout + 250 * T
        assert server.peers[0].sent < 100, "the handshake completed"
        assert disconnect.failure.kind is FailureKind.TIMEOUT
        assert disconnect.code is None
        check_backoff(server, timeline)
        assert client.stats.connects == 0


async def close_with_evil_reason(peer: Peer) -> None:
    await peer.close(4000, EVIL_REASON)


class TestCloseReason:
    async def test_evil_close_reason_reconnects(self) -> None:
        """A close reason full of control characters: reported, then reconnect.

        The event keeps the reason as received (the text survives, raw or
        escaped), for the application to inspect.
        """
        server, timeline, client = await reconnected_after(close_with_evil_reason)
        disconnect = timeline.of("disconnect")[0]
        assert disconnect.code == 4000
        assert "EVIL" in disconnect.reason
        assert "FAKE LOG LINE" in disconnect.reason
        check_backoff(server, timeline)
        assert client.stats.reconnects == 1

    @pytest.mark.parametrize("code", [4000, 1008], ids=["retried", "fatal"])
    async def test_evil_close_reason_never_reaches_logs_raw(
        self, caplog: pytest.LogCaptureFixture, code: int
    ) -> None:
        """No control character from a close reason reaches a log line.

        Neither the reconnect line (4000 retries) nor the give-up line and
        the error raised (1008 is fatal).
        """

        async def close_with_code(peer: Peer) -> None:
            await peer.close(code, EVIL_REASON)

        async with hostile_server(first_then_echo(close_with_code)) as server:
            async with Client(server.url, **fast_options()) as client:
                timeline = Timeline(client)
                with anyio.fail_after(LONG):
                    if code == 1008:
                        with pytest.raises(wsclient.ConnectionRejected) as raised:
                            await read_forever(client)
                        message = str(raised.value)
                        assert "EVIL" in message
                        assert not any(c in message for c in CONTROL_CHARACTERS)
                    else:
                        await timeline.wait_for("reconnect")
        logged = [
            record.getMessage()
            for record in caplog.records
            if record.name.startswith("wsclient")
        ]
        assert any("EVIL" in line for line in logged), "the reason is not logged"
        raw = [
            line for line in logged if any(char in line for char in CONTROL_CHARACTERS)
        ]
        assert raw == []

    async def test_evil_close_reason_never_reaches_websockets_logs_raw(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The client's websockets logger does not log the reason raw either.

        An application that turns DEBUG on for everything gets these lines.
        (The hostile server logs on ``websockets.server``: not checked.)
        """
        caplog.set_level(logging.DEBUG, logger="websockets.client")
        await reconnected_after(close_with_evil_reason)
        logged = [
            record.getMessage()
            for record in caplog.records
            if record.name == "websockets.client"
        ]
        assert any("EVIL" in line for line in logged), "the reason is not logged"
        raw = [
            line for line in logged if any(char in line for char in CONTROL_CHARACTERS)
        ]
        assert raw == []


def text_frames(count: int, size: int) -> Callable[[], Iterator[bytes]]:
    frame = raw_frame(Opcode.TEXT, b"x" * size)

    def frames() -> Iterator[bytes]:
        for _ in range(count):
            yield frame

    return frames


FLOOD_SIZE = 16 * 1024


async def slow_reader(count: int, deaf: bool, **options: Any) -> tuple[int, int, int]:
    """Read 50 messages slowly from a flood of ``count`` messages, then close.

    Returns the peak memory growth while reading, then after closing, and
    how many messages the server managed to write.
    """
    behaviour = flood(text_frames(count, FLOOD_SIZE), deaf=deaf)
    with traced_memory() as growth:
        async with hostile_server(behaviour) as server:
            async with Client(server.url, **fast_options(**options)) as client:
                with anyio.fail_after(2 * LONG):
                    messages = aiter(client)
                    for _ in range(50):
                        assert len(await anext(messages)) == FLOOD_SIZE
                        await anyio.sleep(2 * T)  # A slow application.
                    reading = growth()
                    await client.close()
                closing = growth()
    return reading, closing, server.peers[0].sent


class TestFlood:
    @pytest.mark.parametrize("deaf", [False, True], ids=["polite", "deaf"])
    async def test_flood_with_slow_reader_keeps_memory_bounded(
        self, deaf: bool
    ) -> None:
        """A server floods a slow reader: max_queue pushes back; memory bounded."""
        count = 20_000  # 320 MiB, far more than socket buffers hold.
        reading, _, sent = await slow_reader(count, deaf, close_timeout=100 * T)
        assert reading < 5 * MiB, f"memory grew by {reading / MiB:.1f} MiB"
        assert sent < count, "no backpressure: the server wrote everything"

    @pytest.mark.parametrize(
        "deaf",
        [
            False,
            True,
        ],
        ids=["polite", "deaf"],
    )
    async def test_close_during_flood_keeps_memory_bounded(self, deaf: bool) -> None:
        """close() while a server floods: memory stays bounded.

        The polite server stops at the client's close frame; what was in the
        socket buffers then (a few MiB on loopback) may be read. The deaf one
        ignores the close frame, writes all of its 40 MiB, then hangs up.
        """
        count = 2500  # 40 MiB
        _, closing, _ = await slow_reader(count, deaf, close_timeout=3000 * T)
        assert closing < 16 * MiB, f"closing: grew by {closing / MiB:.1f} MiB"

    async def test_flood_on_drop_oldest_subscription_counts_drops(self) -> None:
        """A publication flood on a drop_oldest subscription: dropped and counted."""
        count = 500
        payload = "x" * 20_000  # 10 MB offered.
        finished = anyio.Event()

        async def publish(peer: Peer) -> None:
            await peer.flood(pub("c", [n, payload]) for n in range(count))
            await peer.send_raw(pub("c", "end"))
            finished.set()

        with traced_memory() as growth:
            async with hostile_server(channel_server(publish)) as server:
                options = fast_options(protocol=wsclient.ReferenceProtocol())
                async with Client(server.url, **options) as client:
                    timeline = Timeline(client)
                    sub = client.subscribe("c", max_queue=8, overflow="drop_oldest")
                    with anyio.fail_after(2 * LONG):
                        await finished.wait()  # The application did not read.
                        received = []
                        async for message in sub:
                            received.append(message.data)
                            if message.data == "end":
                                break
                        peak = growth()
                        await client.send(json.dumps({"type": "probe"}))
                        assert (await anext(sub)).data == "probe"
        assert peak < 5 * MiB, f"memory grew by {peak / MiB:.1f} MiB"
        assert sub.dropped > 0
        assert sub.dropped + len(received) == count + 1
        numbers = [data[0] for data in received[:-1]]
        assert numbers == sorted(numbers), "reordered"
        assert numbers[-1] == count - 1, "the newest were dropped"
        assert timeline.of("reconnect") == [], "the flood cost a reconnection"
        assert [e.will_reconnect for e in timeline.of("disconnect")] == [False]
        assert server.peers[0].sent == count
        assert len(server.accepted) == 1


JUNK: list[str | bytes] = [
    "not json {",
    "{",
    '{"type": "pub"',
    b"\x00\xff binary",
    "[1, 2, 3]",
    "null",
    '{"type": "surprise", "data": 1}',
    '{"type": 42}',
    '{"type": "pub"}',
    '{"type": "pub", "channel": 5, "data": 1}',
    '{"type": "pub", "channel": "c", "epoch": "e", "data": 1}',
    '{"type": "pub", "channel": "c", "epoch": "e", "offset": -1, "data": 1}',
    '{"type": "pub", "channel": "c", "epoch": "e", "offset": 1e400}',
    '{"type": "pub", "channel": "c", "data": ' + "1" * 5000 + "}",
    '{"a": ' * 100_000 + "1" + "}" * 100_000,
    '{"type": "subscribed", "id": "nope"}',
    '{"type": "subscribed", "id": 999999999999}',
    '{"type": "ack", "id": 7}',
    '{"type": "subscribe_error", "id": null, "error": {"x": 1}}',
]
"""Messages a reference-protocol client cannot route: each goes to its stream."""


class TestMalformed:
    async def test_malformed_messages_go_to_the_client_stream(self) -> None:
        """Junk from the server is handed to ``async for``: no crash, no reconnect.

        A publication for a channel nobody subscribed to is counted as
        unrouted; the subscription keeps flowing.
        """

        async def publish(peer: Peer) -> None:
            for message in JUNK:
                opcode = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
                data = message.encode() if isinstance(message, str) else message
                await peer.send_raw(raw_frame(opcode, data))
            await peer.send_raw(pub("elsewhere", 1))
            await peer.send_raw(pub("c", "end"))

        async with hostile_server(channel_server(publish)) as server:
            options = fast_options(protocol=wsclient.ReferenceProtocol())
            async with Client(server.url, **options) as client:
                timeline = Timeline(client)
                sub = client.subscribe("c")
                with anyio.fail_after(LONG):
                    assert (await anext(sub)).data == "end"
                    stream = aiter(client)
                    received = [await anext(stream) for _ in JUNK]
                    await client.send(json.dumps({"type": "probe"}))
                    assert (await anext(sub)).data == "probe"
                    assert client.state is ClientState.CONNECTED
        assert received == JUNK
        assert client.stats.publications_unrouted == 1
        assert client.stats.messages_dropped == 0
        assert [e.will_reconnect for e in timeline.of("disconnect")] == [False]
        assert len(server.accepted) == 1
