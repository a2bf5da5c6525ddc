"""Messages routed as websockets receives them, and handed back to the router's task.

While the router's reader task waits for the network, each message is routed
where websockets receives it (``Router._take`` through a ``Diversion``); it
leaves a message to the reader task when the consumer is behind or the queue
is full, and the reader task then reads everything that follows until it
waits again. These tests check, over real sockets, that the hand-over keeps
the order, routes each message once, and does not let a burst overflow the
client's inbox while it is being read.
"""

from __future__ import annotations

import gc
import json
import sys
import types
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from websockets.frames import Opcode

from wsclient import (
    Client,
    Publication,
    ReferenceProtocol,
    Subscription,
)
from wsclient._router import INBOX_SIZE
from wsclient._transport.base import SLOTS
from wsclient._transport.receiving import READY_STREAK

from .hostile import Behaviour, Peer, channel_server, hostile_server, pub, raw_frame
from .test_ready_messages import read_through_a_pause
from .test_subscriptions import channel_options, take
from .utils import LONG, fast_options, wait_stopped_by_a_bug

if TYPE_CHECKING:
    from wsclient._transport.base import Data
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


class CountingProtocol(ReferenceProtocol):
    """The reference protocol, counting the publications it routes."""

    def __init__(self) -> None:
        super().__init__()
        self.publications = 0

    def route(self, message: Data) -> Any:
        routed = super().route(message)
        if isinstance(routed, Publication):
            self.publications += 1
        return routed


def count_takes(client: Client) -> dict[bool, int]:
    """Count what Router._take() takes (True) and leaves to the reader task;
    call it before the client connects."""
    router = client._router
    assert router is not None
    counts = {True: 0, False: 0}
    take = router._take

    def counting_take(*args: Any) -> bool:
        taken = take(*args)
        counts[taken] += 1
        return taken

    router._take = counting_take  # type: ignore[method-assign,assignment]
    return counts


async def burst_into(
    max_queue: int, *, read_after: bool
) -> tuple[int, dict[bool, int]]:
    """Subscribe with ``max_queue``; the server then sends 10 x READY_STREAK
    publications in one write (while the router's reader task waits, nothing
    buffered) and "after them". Checks the subscription gets them all, in
    order; returns how many publications the adapter routed, and what
    _take() took or left.

    ``read_after``: nobody iterates until "after them" arrives (every
    publication queued by then, routed in order); else the subscription is
    read at once.
    """
    count = 10 * READY_STREAK

    async def burst(peer: Peer) -> None:
        await peer.send_raw(b"".join(pub("news", n) for n in range(count)))
        await peer.send_text("after them")

    protocol = CountingProtocol()
    async with hostile_server(channel_server(burst)) as server:
        client = Client(server.url, **fast_options(protocol=protocol))
        takes = count_takes(client)
        async with client:
            with anyio.fail_after(LONG):
                news = client.subscribe("news", max_queue=max_queue)
                if read_after:
                    assert await anext(aiter(client)) == "after them"
                received = await take(news, count)
    assert received == list(range(count))
    return protocol.publications, takes


async def test_a_burst_is_handed_over_in_order() -> None:
    """A burst while nobody iterates: the first READY_STREAK messages are
    routed as they arrive, the rest by the reader task, which paces them;
    the subscription gets them all, in order."""
    count = 10 * READY_STREAK
    routed, takes = await burst_into(2 * count, read_after=True)
    assert routed == count
    # The subscribed answer, publications; then the reader task took over.
    assert READY_STREAK <= takes[True] < count


async def test_a_full_queue_is_handed_over_and_routed_once() -> None:
    """A burst into a small queue, while its iterator waits: the message
    that finds the queue full is left to the reader task, whose overflow
    policy waits for room; every message arrives, in order, and the adapter
    routed each one once (the reader task does not route it again)."""
    routed, takes = await burst_into(READY_STREAK // 4, read_after=False)
    assert routed == 10 * READY_STREAK
    assert takes[False] >= 1


async def test_a_burst_to_the_inbox_is_paced_not_dropped() -> None:
    """Many more messages than the inbox holds, in one write, while
    ``async for`` reads the client: routed a whole read at a time they would
    overflow it; the reader task takes over and paces them instead, and none
    is dropped."""
    count = 4 * INBOX_SIZE
    numbers = [str(n) for n in range(count)]

    async def burst(peer: Peer, message: str | bytes) -> None:
        # Asked for once the router's reader task waits, nothing buffered.
        await peer.send_raw(
            b"".join(raw_frame(Opcode.TEXT, n.encode()) for n in [*numbers, "end"])
        )

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        await peer.serve(burst)

    options = fast_options(protocol=ReferenceProtocol())
    async with hostile_server(behaviour) as server:
        client = Client(server.url, **options)
        takes = count_takes(client)
        async with client:
            received: list[Any] = []
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await client.send("go")
                async for message in client:
                    if message == "end":
                        break
                    received.append(message)
            assert client.stats.messages_dropped == 0
    assert received == numbers
    assert READY_STREAK <= takes[True] < count


def on_go(*messages: bytes) -> Behaviour:
    """Handshake, then send ``messages`` in one write when the client says
    "go": by then the router's reader task waits, nothing buffered."""

    async def send(peer: Peer, message: str | bytes) -> None:
        if message == "go":
            await peer.send_raw(b"".join(messages))

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        await peer.serve(send)

    return behaviour


def text(payload: str, *, fin: bool = True, first: bool = True) -> bytes:
    return raw_frame(Opcode.TEXT if first else Opcode.CONT, payload.encode(), fin=fin)


async def test_fragmented_messages_while_diverting() -> None:
    """A fragmented message arriving while messages are routed as they
    arrive goes to the reader task, with everything after it: all of them
    whole, in order, text as str and binary as bytes."""
    messages = [
        text("one"),
        text("tw", fin=False),
        text("o", first=False),
        raw_frame(Opcode.BINARY, b"three"),
        text("fo", fin=False),
        text("u", first=False, fin=False),
        text("r", first=False),
        text("five"),
    ]
    expected: list[str | bytes] = ["one", "two", b"three", "four", "five"]
    async with hostile_server(on_go(*messages)) as server:
        client = Client(server.url, **fast_options(protocol=ReferenceProtocol()))
        takes = count_takes(client)
        async with client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await client.send("go")
                received = [await anext(aiter(client)) for _ in expected]
    assert received == expected
    assert [type(m) for m in received] == [type(m) for m in expected]
    assert takes[True] >= 1  # "one" at least.


async def test_invalid_utf8_while_diverting() -> None:
    """Invalid UTF-8 arriving while messages are routed as they arrive is
    left to the reader task, which closes with 1007 (as websockets does):
    what came before is delivered, what came after is not."""
    bad = raw_frame(Opcode.TEXT, b"\xff\xfe")
    async with hostile_server(on_go(text("before"), bad, text("after"))) as server:
        client = Client(server.url, **fast_options(protocol=ReferenceProtocol()))
        received: list[Any] = []
        async with client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await client.send("go")
                received.append(await anext(aiter(client)))
                while client.stats.disconnects == 0:
                    await client._supervisor.wait_changed()  # type: ignore[union-attr]
            assert client.stats.last_close_code == 1007
            assert not client._router.inbox  # type: ignore[union-attr]
    assert received == ["before"]


class FailingProtocol(ReferenceProtocol):
    """The reference protocol, with a route() that raises on "boom"."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def route(self, message: Data) -> Any:
        if message == "boom":
            self.calls += 1
            raise ValueError("a broken adapter")
        return super().route(message)


async def test_an_adapter_error_while_diverting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An adapter's route() that raises on a message routed as it arrives is
    logged once, and the message goes to ``async for`` on the client, as
    when the reader task routes it; the adapter is not asked twice."""
    protocol = FailingProtocol()
    async with hostile_server(on_go(text("boom"), text("next"))) as server:
        client = Client(server.url, **fast_options(protocol=protocol))
        takes = count_takes(client)
        async with client:
            with anyio.fail_after(LONG):
                await client.wait_connected()
                await client.send("go")
                received = [await anext(aiter(client)) for _ in range(2)]
    assert received == ["boom", "next"]
    assert protocol.calls == 1
    assert caplog.text.count("the protocol adapter failed to route a message") == 1
    assert takes[True] >= 2


async def test_a_bug_while_diverting_stops_the_client(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in routing a message as it arrives (in websockets' reader) is
    raised by the router's reader task, as one of its own would be: the
    client stops with an internal error rather than reconnecting quietly."""

    def broken_offer(self: Subscription[Any], publication: Publication) -> bool:
        raise RuntimeError("a bug")

    async def on_message(peer: Peer, message: str | bytes) -> None:
        if message == "go":  # The reader task waits by then.
            await peer.send_raw(pub("news", 1))
            return
        request = json.loads(message)
        if request["type"] == "subscribe":
            answer = {"type": "subscribed", "id": request["id"], "channel": "news"}
            await peer.send_json(answer)

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        await peer.serve(on_message)

    async with hostile_server(behaviour) as server:
        client = Client(server.url, **fast_options(protocol=ReferenceProtocol()))
        takes = count_takes(client)
        async with client:
            client.subscribe("news")
            with anyio.fail_after(LONG):
                await client.wait_connected()
                monkeypatch.setattr(Subscription, "_offer", broken_offer)
                await client.send("go")
                await wait_stopped_by_a_bug(client, caplog, "a bug")
    assert client.stats.reconnects == 0
    assert takes[False] >= 1


def attributes_in_a_dict(obj: object, name: str) -> bool:
    """Whether CPython keeps ``obj``'s attributes in a dict of their own.

    An instance starts with its attributes inline (no dict); reading its
    ``__dict__`` makes one for good, after which every attribute read on it
    is slower (about 18 ns on 3.11). The garbage collector then sees that
    dict (holding ``name``) among what the object refers to, rather than
    the values.
    """
    assert hasattr(obj, name)
    return any(
        type(referent) is dict and name in referent
        for referent in gc.get_referents(obj)
    )


@pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="CPython's instance layout"
)
async def test_connections_keep_attributes_inline(server: Server) -> None:
    """The assembler and the connection, read for every message, keep their
    attributes inline (fast), whatever the connection did: the diversion
    turned on and off (and the trio connection's handshake-time send_data)
    never read an instance's ``__dict__``, and the attributes the client
    adds to websockets' connection (counting a pause here, the heartbeat's
    wait, the diversion) are slots, which do not count towards CPython's
    limit of 30 names inline per class (see _transport.base.SLOTS)."""
    # A keepalive (never due here) makes the heartbeat wait for the close.
    options = channel_options(max_queue=4, ping_interval=LONG)
    async with Client(server.url, **options) as client:
        conn = await read_through_a_pause(client, server, 200)
        assert conn.pauses >= 1
        for name in SLOTS:  # Read on the class: the instance's would make a dict.
            assert type(getattr(type(conn), name)) is types.MemberDescriptorType
        assert not attributes_in_a_dict(conn.recv_messages, "high")
        assert not attributes_in_a_dict(conn, "protocol")
