"""Acknowledged publish: pipelined, resent after reconnections, published once."""

from __future__ import annotations

import collections
import json
import math
import random
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import wsclient
from wsclient import Client, PublishReceipt, PublishWindowFull

from .raw import connect
from .utils import LONG, T, fast_options, faults

if TYPE_CHECKING:
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


def channel_options(**overrides: Any) -> dict[str, Any]:
    """Test options with the reference server's channel protocol."""
    return fast_options(protocol=wsclient.ReferenceProtocol(), **overrides)


async def publish_all(
    client: Client, channel: str, items: range
) -> list[PublishReceipt]:
    """Publish ``items`` with publish_nowait, waiting for the oldest when full."""
    receipts: list[PublishReceipt] = []
    in_flight: collections.deque[PublishReceipt] = collections.deque()
    for item in items:
        while True:
            try:
                receipt = client.publish_nowait(channel, item)
            except PublishWindowFull:
                await in_flight.popleft().wait()
                continue
            break
        receipts.append(receipt)
        in_flight.append(receipt)
    for receipt in in_flight:
        await receipt.wait()
    return receipts


def verdict(offsets: list[int | None], published: int) -> str:
    """Describe what went wrong: lost, duplicated, reordered."""
    numbers = [n for n in offsets if n is not None]
    return f"published {published}, acked {len(numbers)}: {faults(numbers, published)}"


class TestPublish:
    async def test_publish_returns_offsets(self, server: Server) -> None:
        """publish() returns increasing offsets; a subscriber receives the data."""
        async with Client(server.url, **channel_options()) as client:
            async with client.subscribe("news") as news:
                with anyio.fail_after(LONG):
                    await server.wait_for(lambda n: n.subscriptions_open == 1)
                    offsets = [await client.publish("news", n) for n in (1, 2, 3)]
                    received = [(await anext(aiter(news))).data for _ in range(3)]
        assert offsets == [1, 2, 3]
        assert received == [1, 2, 3]

    async def test_publish_nowait_pipelines(self, server: Server) -> None:
        """publish_nowait pipelines 500 publications: all acked, in order."""
        async with Client(server.url, **channel_options(publish_window=500)) as client:
            with anyio.fail_after(LONG):
                receipts = [client.publish_nowait("bulk", n) for n in range(500)]
                offsets = [await receipt.wait() for receipt in receipts]
        assert offsets == list(range(1, 501))
        assert all(receipt.acked for receipt in receipts)
        assert server.channel_info("bulk").offset == 500

    async def test_window_full(self, server: Server) -> None:
        """publish_nowait raises PublishWindowFull; publish() waits for room."""
        async with Client(server.url, **channel_options(publish_window=2)) as client:
            server.stall()
            first = client.publish_nowait("w", 1)
            client.publish_nowait("w", 2)
            with pytest.raises(PublishWindowFull):
                client.publish_nowait("w", 3)
            with anyio.move_on_after(50 * T) as scope:
                await client.publish("w", 3)  # Waits for room: cancelled unsent.
            assert scope.cancelled_caught
            server.stall(False)
            with anyio.fail_after(LONG):
                assert await first.wait() == 1
                assert await client.publish("w", 4) == 3
        assert server.channel_info("w").offset == 3

    async def test_needs_publish_in_adapter(self, server: Server) -> None:
        """An adapter without publish() makes publish raise NotImplementedError."""
        options = fast_options(protocol=wsclient.ExchangeProtocol())
        async with Client(server.url, **options) as client:
            with pytest.raises(NotImplementedError, match="no publish"):
                client.publish_nowait("x", 1)

    async def test_bad_data(self, server: Server) -> None:
        """Data that is not JSON fails in the caller, and nothing is queued."""
        async with Client(server.url, **channel_options()) as client:
            with pytest.raises(TypeError):
                client.publish_nowait("x", object())
            assert await client.publish("x", 1) == 1

    async def test_resent_after_reconnect(self, server: Server) -> None:
        """Unacked publications are resent after a reconnection, published once."""
        async with Client(server.url, **channel_options()) as client:
            await client.wait_connected(LONG)
            server.set_latency(100 * T)  # The acks are late: still in flight.
            receipts = [client.publish_nowait("r", n) for n in range(10)]
            with anyio.fail_after(LONG):
                await server.wait_for(lambda n: n.publications == 10)
                await server.abort_all()
                server.set_latency(0)
                offsets = [await receipt.wait() for receipt in receipts]
        assert offsets == list(range(1, 11))
        assert server.counters.duplicate_publications >= 10
        assert any(receipt.duplicate for receipt in receipts)
        assert server.channel_info("r").offset == 10
        assert server.counters.handshakes_completed == 2

    async def test_close_fails_unacked(self, server: Server) -> None:
        """Closing with publications unacked waits drain_timeout for the ack,
        then fails their receipts with ClientClosed and reports them."""
        options = channel_options(drain_timeout=100 * T)
        async with Client(server.url, **options) as client:
            await client.wait_connected(LONG)
            server.stall()
            receipt = client.publish_nowait("c", 1)
            with anyio.fail_after(LONG):
                undelivered = await client.close()
        assert undelivered.publications == (receipt,)
        assert undelivered.messages == ()
        assert undelivered.error is None
        assert not receipt.acked
        assert receipt.outcome is wsclient.Outcome.POSSIBLY_LOST
        with pytest.raises(wsclient.ClientClosed):
            await receipt.wait()
        with pytest.raises(wsclient.ClientClosed):
            client.publish_nowait("c", 2)

    async def test_published_before_start(self, server: Server) -> None:
        """A publication made before the client starts is sent on connect."""
        client = Client(server.url, **fast_options())
        receipt = client.publish_nowait("early", "hi")
        async with client:
            with anyio.fail_after(LONG):
                assert await receipt.wait() == 1


@pytest.mark.no_asyncio_debug
async def test_chaos_acknowledged_publish(server: Server) -> None:
    """10,000 acked publications through 20+ random aborts: exactly once, in order."""
    rng = random.Random(2027)
    total = 10_000
    server.configure_history(size=20_000, ttl=math.inf)
    options = channel_options(
        publish_window=100, backoff_initial=5 * T, backoff_max=20 * T, stable_after=0
    )
    aborted = 0

    async def abort() -> None:
        nonlocal aborted
        connects = 0
        # Bounded: at most 200 aborts; cancelled once everything is acked.
        for _ in range(200):
            # A moment at random while a connection is up.
            await server.wait_for(lambda n, c=connects: n.handshakes_completed > c)
            await anyio.sleep(rng.uniform(0, 20 * T))
            connects = server.counters.handshakes_completed
            aborted += server.counters.connections_open
            await server.abort_all()

    async with Client(server.url, **options) as client:
        with anyio.fail_after(LONG * 3):
            async with anyio.create_task_group() as tg:
                tg.start_soon(abort)
                receipts = await publish_all(client, "chaos", range(1, total + 1))
                tg.cancel_scope.cancel()
    offsets = [receipt.offset for receipt in receipts]
    report = verdict(offsets, total)
    assert aborted >= 20, report
    assert offsets == list(range(1, total + 1)), report
    assert server.channel_info("chaos").offset == total, report
    assert server.counters.publications == total, report
    assert server.counters.duplicate_publications >= 0
    # The server's log itself, read back by a raw subscriber from the start.
    logged = await read_channel(server, "chaos", total)
    assert logged == list(range(1, total + 1)), faults(logged, total)


async def read_channel(server: Server, channel: str, count: int) -> list[Any]:
    """The data of a channel's first ``count`` publications, replayed raw."""
    epoch = server.channel_info(channel).epoch
    since = {"epoch": epoch, "offset": 0}
    command = {"type": "subscribe", "channel": channel, "id": 1, "since": since}
    data = []
    with anyio.fail_after(LONG):
        async with connect(server.url) as ws:
            await ws.send(json.dumps(command))
            while len(data) < count:
                message = json.loads(await ws.recv())
                if message["type"] == "pub":
                    data.append(message["data"])
    return data


async def test_close_before_start_fails_queued() -> None:
    """Closing a client never started fails what publish_nowait queued."""
    client = Client("ws://127.0.0.1:9", **fast_options())
    receipt = client.publish_nowait("never", 1)
    await client.close()
    with pytest.raises(wsclient.ClientClosed):
        await receipt.wait()
