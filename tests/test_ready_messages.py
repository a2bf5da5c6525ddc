"""Messages already received are taken without websockets' coroutines (recv_now).

The client's hot paths take a message that is complete in one buffered frame
straight off websockets' queue (``_transport/receiving.py``) and await
websockets only for the rest: nothing buffered, a fragmented message. These
tests check, over real sockets, that the two ways give the same messages and
errors, that flow control still resumes reading, and that a reader taking a
long run of ready messages still goes through a checkpoint at least every
READY_STREAK messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest
from websockets.frames import Opcode

from wsclient import Client, ReferenceProtocol
from wsclient._transport.receiving import READY_STREAK

from .hostile import Peer, hostile_server, raw_frame
from .test_subscriptions import channel_options, take
from .utils import LONG, Recorder, fast_options

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from wsclient._transport.base import Connection, Data
    from wsclient.server import Server

    from .hostile import Behaviour

pytestmark = pytest.mark.anyio


def text(payload: str, *, fin: bool = True, first: bool = True) -> bytes:
    return raw_frame(Opcode.TEXT if first else Opcode.CONT, payload.encode(), fin=fin)


def binary(payload: bytes, *, fin: bool = True, first: bool = True) -> bytes:
    return raw_frame(Opcode.BINARY if first else Opcode.CONT, payload, fin=fin)


def connection(client: Client) -> Connection:
    conn = client._supervisor.conn  # type: ignore[union-attr]
    assert conn is not None
    return conn


def paused_event(conn: Connection) -> anyio.Event:
    """An event set when websockets pauses reading (its queue of frames is
    full): the assembler's pause callback, wrapped."""
    paused = anyio.Event()
    assembler: Any = conn.recv_messages
    pause = assembler.pause

    def pause_and_tell() -> None:
        pause()
        paused.set()

    assembler.pause = pause_and_tell
    return paused


def adapter(protocol: str | None) -> ReferenceProtocol | None:
    return None if protocol is None else ReferenceProtocol()


async def read_across_1007(
    behaviour: Behaviour,
    protocol: str | None,
    read: Callable[[Client], Awaitable[list[Data]]],
) -> list[Data]:
    """What ``read`` returns against ``behaviour``, whose first connection
    sends invalid UTF-8: checks that the client closed it with 1007 and
    reconnected."""
    recorder = Recorder()
    async with hostile_server(behaviour) as server:
        options = fast_options(protocol=adapter(protocol), **recorder.callbacks())
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                received = await read(client)
                await recorder.wait_for("reconnect")
    close = server.peers[0].close_received
    assert close is not None
    assert close.code == 1007
    return received


@pytest.mark.parametrize("protocol", [None, "reference"])
async def test_fragmented_messages_among_whole_ones(protocol: str | None) -> None:
    """Whole messages are taken at once, fragmented ones awaited: all of
    them arrive whole, in order, text as str and binary as bytes.

    Without an adapter ``async for`` reads the connection; with one, the
    router reads it (these are no publications: they go to ``async for``).
    """
    expected: list[str | bytes] = ["one", "two", b"three", b"four", "five", "six"]

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        await peer.send_raw(  # One write: all of it buffered at once.
            text("one")
            + text("t", fin=False)
            + text("w", fin=False, first=False)
            + text("o", first=False)
            + binary(b"three")
            + binary(b"fo", fin=False)
            + binary(b"ur", first=False)
            + text("five")
        )
        await peer.send_raw(text("si", fin=False))  # The rest comes later.
        await peer.send_raw(text("x", first=False))
        await peer.serve()

    async with hostile_server(behaviour) as server:
        options = fast_options(protocol=adapter(protocol))
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                received = [await anext(aiter(client)) for _ in expected]
    assert received == expected
    assert [type(message) for message in received] == [type(m) for m in expected]


@pytest.mark.parametrize("protocol", [None, "reference"])
async def test_invalid_utf8_behind_a_ready_message(protocol: str | None) -> None:
    """Invalid UTF-8 found while taking a buffered message ends the
    connection with 1007, as websockets' recv() would; what came before it
    is delivered, and the client reconnects."""
    after = "after the invalid one"

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        if peer.index == 0:
            invalid = raw_frame(Opcode.TEXT, b"caf\xc3 \xff\xfe")
            await peer.send_raw(text("before") + invalid + text(after))
        else:
            await peer.send_raw(text("again"))
        await peer.serve()

    async def read(client: Client) -> list[Data]:
        return [await anext(aiter(client)) for _ in range(2)]

    assert await read_across_1007(behaviour, protocol, read) == ["before", "again"]


@pytest.mark.parametrize("protocol", [None, "reference"])
async def test_messages_awaited_one_at_a_time(protocol: str | None) -> None:
    """Each message sent only when the client asks for it, so the reader is
    waiting for it (recv_next(): websockets' get() up to its first frame,
    then taken as recv_now() takes it): text as str, binary as bytes, empty
    ones, a fragmented one, in order; then invalid UTF-8 ends the connection
    with 1007, and the client reads on after reconnecting.

    With an adapter, the router's diversion takes the whole messages as
    they arrive (see test_diversion.py): recv_next() gets the fragmented
    one and the invalid one."""
    replies = [
        text("one"),
        binary(b"two"),
        text(""),
        binary(b""),
        text("fr", fin=False) + text("ag", first=False),
        raw_frame(Opcode.TEXT, b"caf\xc3 \xff\xfe"),
    ]
    expected: list[str | bytes] = ["one", b"two", "", b"", "frag", "again"]

    async def reply(peer: Peer, _: str | bytes) -> None:
        await peer.send_raw(replies[len(peer.messages) - 1])

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        if peer.index == 0:
            await peer.serve(reply)
        else:
            await peer.send_raw(text("again"))
            await peer.serve()

    async def read(client: Client) -> list[Data]:
        received = []
        for _ in expected:
            await client.send("next")  # Buffered if disconnected.
            received.append(await anext(aiter(client)))
        return received

    received = await read_across_1007(behaviour, protocol, read)
    assert received == expected
    assert [type(message) for message in received] == [type(m) for m in expected]


async def test_reading_resumes_after_flow_control_paused_it() -> None:
    """Taking buffered messages resumes reading once the queue runs low, as
    websockets' get() does: else the client would stall with the rest of
    the stream unread in the socket."""
    count = 400
    payload = "x" * 1000

    go = anyio.Event()

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        await go.wait()
        frames = b"".join(text(f"{n} {payload}") for n in range(count))
        await peer.send_raw(frames)  # More than one read of the socket.
        await peer.serve()

    async with hostile_server(behaviour) as server:
        async with Client(server.url, **fast_options(max_queue=4)) as client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                conn = connection(client)
                paused = paused_event(conn)
                go.set()
                await paused.wait()
                received = [await anext(aiter(client)) for _ in range(count)]
    assert [int(message.split()[0]) for message in received] == list(range(count))  # type: ignore[union-attr]
    assert conn.pauses >= 1


async def test_router_resumes_reading_after_flow_control_paused_it(
    server: Server,
) -> None:
    """The same through the router: a full subscription queue stops it,
    websockets' queue fills and reading pauses; reading the subscription
    lets the router take the buffered messages, and reading resumes."""
    async with Client(server.url, **channel_options(max_queue=4)) as client:
        conn = await read_through_a_pause(client, server, 400)
    assert conn.pauses >= 1


async def read_through_a_pause(
    client: Client, server: Server, count: int
) -> Connection:
    """Publish ``count`` messages of 1 KB to a subscription that holds two,
    until websockets' queue (``max_queue=4`` in the client's options) fills
    and reading pauses; then read them all, in order. Returns the connection."""
    news = client.subscribe("news", max_queue=2)
    with anyio.fail_after(LONG):
        await client.wait_connected()
        await server.wait_for(lambda n: n.subscriptions_open == 1)
        conn = connection(client)
        paused = paused_event(conn)

        async def publish() -> None:
            for n in range(count):
                await server.publish("news", {"n": n, "pad": "x" * 1000})

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish)
            await paused.wait()  # The router waits for room: reading pauses.
            received: list[Any] = await take(news, count)
    assert [item["n"] for item in received] == list(range(count))
    return conn


@pytest.mark.parametrize("protocol", [None, "reference"])
@pytest.mark.parametrize("fragmented", [False, True], ids=["whole", "fragmented"])
async def test_async_for_checkpoints_while_messages_are_ready(
    protocol: str | None, fragmented: bool
) -> None:
    """A run of buffered messages is taken without yielding, but with a
    checkpoint at least every READY_STREAK messages: a cancelled scope
    around ``async for`` ends it that soon, and nothing is lost.

    Fragmented messages are read by websockets' get(), which on asyncio
    does not yield either while the frames are buffered: they count too.
    With an adapter the router reads them all into the client's inbox first.
    """
    count = 10 * READY_STREAK

    def message(n: int) -> bytes:
        if fragmented:
            return text(str(n), fin=False) + text(".", first=False)
        return text(str(n))

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        await peer.send_raw(b"".join(message(n) for n in range(count)))
        await peer.serve()

    options = fast_options(max_queue=4 * count, protocol=adapter(protocol))
    async with hostile_server(behaviour) as server:
        async with Client(server.url, **options) as client:
            with anyio.fail_after(LONG):
                first = await anext(aiter(client))
                # One write, one read: the rest is buffered now (in the
                # inbox, with an adapter, once the router is done reading).
                await anyio.wait_all_tasks_blocked()
                router = client._router
                if router is None:
                    frames = connection(client).pending_messages
                    assert frames == (count - 1) * (2 if fragmented else 1)
                else:
                    assert len(router.inbox) == count - 1
                taken: list[Any] = []
                with anyio.CancelScope() as scope:
                    scope.cancel()  # The loop's next checkpoint raises.
                    async for message in client:
                        taken.append(message)  # noqa: PERF401 (cancelled midway)
                # (On trio get() is a checkpoint itself: maybe none taken.)
                assert len(taken) <= READY_STREAK
                rest = [
                    await anext(aiter(client)) for _ in range(count - 1 - len(taken))
                ]
    suffix = "." if fragmented else ""
    assert [first, *taken, *rest] == [f"{n}{suffix}" for n in range(count)]


async def test_subscription_checkpoints_while_items_are_queued(server: Server) -> None:
    """The same for a subscription's iterator over a backlog in its queue."""
    count = 10 * READY_STREAK
    async with Client(server.url, **channel_options()) as client:
        news = client.subscribe("news", max_queue=2 * count)
        with anyio.fail_after(LONG):
            await server.wait_for(lambda n: n.subscriptions_open == 1)
            for n in range(count):
                await server.publish("news", n)
            await server.broadcast("after them")
            # Read in order by the router: every publication is queued now.
            assert await anext(aiter(client)) == "after them"
            taken: list[Any] = []
            with anyio.CancelScope() as scope:
                scope.cancel()  # The loop's next checkpoint raises.
                async for message in news:
                    taken.append(message.data)  # noqa: PERF401 (cancelled midway)
            assert 0 < len(taken) <= READY_STREAK
            rest = await take(news, count - len(taken))
    assert [*taken, *rest] == list(range(count))
