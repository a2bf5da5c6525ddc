"""Acceptance: publications survive connections aborted at random moments.

A publisher on the reference server publishes sequenced messages at full
speed while an aborter drops every connection (1006) at random moments; the
client resubscribes after each reconnection, resuming from its position. Each
channel must receive every message exactly once, in order.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

import anyio
import pytest

import wsclient
from wsclient import Client, Gap

from .utils import LONG, T, fast_options, faults

if TYPE_CHECKING:
    from wsclient import Subscription
    from wsclient.server import Server

pytestmark = pytest.mark.anyio

END = "end"


def verdict(channel: str, received: list[object], published: int) -> str:
    """Describe what went wrong on a channel: lost, duplicated, reordered."""
    numbers = [n for n in received if isinstance(n, int)]
    gaps = [g for g in received if isinstance(g, Gap)]
    return (
        f"{channel}: published {published}, received {len(numbers)}: "
        f"{faults(numbers, published)}, {len(gaps)} gaps reported"
    )


async def collect(subscription: Subscription, into: list[object]) -> None:
    async for item in subscription:
        if isinstance(item, Gap):
            into.append(item)
            continue
        if item.data == END:
            return
        into.append(item.data)


async def run_chaos(
    server: Server, channels: list[str], aborts: int, minimum: int, seed: int
) -> tuple[dict[str, list[object]], int, int]:
    """Publish while aborting; return what each channel received, how many
    were published per channel, and how many connections were aborted."""
    rng = random.Random(seed)
    server.configure_history(size=1_000_000, ttl=math.inf)
    options = fast_options(
        protocol=wsclient.ReferenceProtocol(),
        backoff_initial=5 * T,
        backoff_max=20 * T,
        stable_after=0,
    )
    received: dict[str, list[object]] = {channel: [] for channel in channels}
    done_aborting = anyio.Event()
    published = 0
    aborted = 0

    async def publish() -> None:
        nonlocal published
        # A new subscription starts at the channel's present, as the client
        # learns it from the server's answer: publish once the client is
        # connected, which it reports only once its subscriptions are answered.
        # (Publishing once the server holds them is too early: if the answer
        # is lost with the connection, the client never learns where it began.)
        await client.wait_connected()
        # Bounded: stop at 200,000 per channel whatever happens.
        while published < 200_000 and (
            published < minimum or not done_aborting.is_set()
        ):
            published += 1
            for channel in channels:
                await server.publish(channel, published)
        for channel in channels:
            await server.publish(channel, END)

    async def abort() -> None:
        nonlocal aborted
        for _ in range(aborts):
            # A moment at random while this connection is subscribed.
            await server.wait_for(lambda n: n.subscriptions_open == len(channels))
            with anyio.move_on_after(rng.uniform(0, 20 * T)):
                await anyio.sleep_forever()  # The random moment itself.
            aborted += server.counters.connections_open
            await server.abort_all()
        done_aborting.set()

    client = Client(server.url, **options)
    subscriptions = [client.subscribe(c, gaps="marker") for c in channels]
    async with client:
        with anyio.fail_after(LONG * 12):
            async with anyio.create_task_group() as tg:
                for subscription in subscriptions:
                    tg.start_soon(collect, subscription, received[subscription.channel])
                tg.start_soon(publish)
                tg.start_soon(abort)
    assert server.counters.duplicate_subscribes == 0
    return received, published, aborted


@pytest.mark.no_asyncio_debug
async def test_chaos_three_channels(server: Server) -> None:
    """10,000+ messages over 3 channels, 20+ aborts: exactly once, in order."""
    received, published, aborted = await run_chaos(
        server, ["a", "b", "c"], aborts=22, minimum=3400, seed=2026
    )
    assert published * 3 >= 10_000
    assert aborted >= 20
    report = "; ".join(verdict(c, r, published) for c, r in received.items())
    for items in received.values():
        assert items == list(range(1, published + 1)), report


async def test_publications_racing_resubscribe(server: Server) -> None:
    """At full speed through 50 reconnections: nothing lost, duplicated or reordered."""
    received, published, aborted = await run_chaos(
        server, ["race"], aborts=50, minimum=2000, seed=7
    )
    assert aborted >= 50
    report = verdict("race", received["race"], published)
    assert received["race"] == list(range(1, published + 1)), report
