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

from typing import TYPE_CHECKING, Any

import anyio
import pytest
from websockets.frames import Opcode

from wsclient import Client, Publication, ReferenceProtocol
from wsclient._router import INBOX_SIZE
from wsclient._transport.receiving import READY_STREAK

from .hostile import Peer, channel_server, hostile_server, pub, raw_frame
from .test_subscriptions import take
from .utils import LONG, fast_options

if TYPE_CHECKING:
    from wsclient._router import Router
    from wsclient._transport.base import Data

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


def count_takes(router: Router) -> dict[bool, int]:
    """Count what Router._take() took (True) and left to the reader task."""
    counts = {True: 0, False: 0}
    take = router._take

    def counting_take(*args: Any) -> bool:
        taken = take(*args)
        counts[taken] += 1
        return taken

    router._take = counting_take  # type: ignore[method-assign]
    return counts


async def test_a_burst_is_handed_over_in_order_and_routed_once() -> None:
    """A burst while nobody iterates: the first READY_STREAK publications
    are routed as they arrive, the rest by the reader task; the subscription
    gets them all, in order, and the adapter routed each exactly once (the
    one left to the reader task is not routed again)."""
    count = 10 * READY_STREAK

    async def burst(peer: Peer) -> None:
        # One write: the router's reader task waits for it, nothing buffered.
        await peer.send_raw(b"".join(pub("news", n) for n in range(count)))
        await peer.send_text("after them")

    protocol = CountingProtocol()
    async with hostile_server(channel_server(burst)) as server:
        async with Client(server.url, **fast_options(protocol=protocol)) as client:
            assert client._router is not None
            takes = count_takes(client._router)  # Before the first connection.
            with anyio.fail_after(LONG):
                news = client.subscribe("news", max_queue=2 * count)
                # Routed in order: every publication is queued by now.
                assert await anext(aiter(client)) == "after them"
                received = await take(news, count)
    assert received == list(range(count))
    assert protocol.publications == count
    assert takes[True] >= READY_STREAK  # The subscribed answer, publications.
    assert takes[False] == 1  # Then the reader task read the rest.


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
        async with Client(server.url, **options) as client:
            assert client._router is not None
            takes = count_takes(client._router)
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
    assert takes[True] >= READY_STREAK
    assert takes[False] >= 1
