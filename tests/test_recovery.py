"""Recovery boundaries, and resubscription bookkeeping over many reconnections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

import wsclient
from wsclient import Client, Gap, GapReason, Position

from .utils import LONG, Recorder, T, fast_options

if TYPE_CHECKING:
    from wsclient import Subscription
    from wsclient.server import Server

pytestmark = pytest.mark.anyio


def channel_options(**overrides: Any) -> dict[str, Any]:
    return fast_options(protocol=wsclient.ReferenceProtocol(), **overrides)


async def drain(subscription: Subscription, until: object) -> list[object]:
    """Read until the message ``until``; Gap markers are kept as they are."""
    items: list[object] = []
    async for item in subscription:
        if isinstance(item, Gap):
            items.append((item.reason, item.first, item.last))
            continue
        if item.data == until:
            return items
        items.append(item.data)
    return items


async def prepare_nothing(server: Server, sub: Subscription) -> None:
    pass


async def prepare_truncate(server: Server, sub: Subscription) -> None:
    server.configure_history(size=2)


async def prepare_expire(server: Server, sub: Subscription) -> None:
    server.expire_history()  # Everything published so far is too old now.


async def prepare_lose(server: Server, sub: Subscription) -> None:
    server.lose_history()


async def prepare_future(server: Server, sub: Subscription) -> None:
    position = sub.tracker.position
    assert position is not None
    sub.tracker.position = Position(position.epoch, position.offset + 100)


# What happens between the drop and the reconnection, then what the
# subscriber must see: each case ends in exact replay or a reported gap.
CASES = {
    # Missed 4..6, still in history: exact replay.
    "in history": (prepare_nothing, [4, 5, 6, "live"]),
    # Nothing published while away: nothing to replay.
    "same position": (None, ["live"]),
    # History keeps only the last 2: 4 is gone, 5..6 replayed.
    "truncated": (prepare_truncate, [(GapReason.TRUNCATED, 4, 4), 5, 6, "live"]),
    # Everything expired by age: 4..6 gone.
    "expired": (prepare_expire, [(GapReason.TRUNCATED, 4, 6), "live"]),
    # The server lost its history: unknown gap, never a stale position.
    "epoch": (prepare_lose, [(GapReason.EPOCH, 4, None), "live"]),
    # Our position is beyond the server's: it lost publications.
    "future": (prepare_future, [(GapReason.FUTURE, None, None), "live"]),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_recovery_boundaries(server: Server, case: str) -> None:
    """Each resume boundary ends in exact replay or a gap with the right range."""
    prepare, expected = CASES[case]
    recorder = Recorder()
    async with Client(server.url, **channel_options(), **recorder.callbacks()) as c:
        news = c.subscribe("news", gaps="marker")
        with anyio.fail_after(LONG):
            await server.wait_for(lambda n: n.subscriptions_open == 1)
            for n in (1, 2, 3):
                await server.publish("news", n)
            assert await drain_three(news) == [1, 2, 3]
            await server.go_down()
            if prepare is not None:
                for n in (4, 5, 6):
                    await server.publish("news", n)
                await prepare(server, news)
            await server.come_back()
            await recorder.wait_for("reconnect")
            await server.publish("news", "live")
            await server.publish("news", "stop")
            assert await drain(news, "stop") == expected


async def drain_three(subscription: Subscription) -> list[object]:
    return [(await anext(aiter(subscription))).data for _ in range(3)]  # type: ignore[union-attr]


async def test_empty_channel(server: Server) -> None:
    """Resuming on a channel that never had a publication replays nothing."""
    recorder = Recorder()
    async with Client(server.url, **channel_options(), **recorder.callbacks()) as c:
        empty = c.subscribe("empty", gaps="marker")
        with anyio.fail_after(LONG):
            await server.wait_for(lambda n: n.subscriptions_open == 1)
            await server.abort_all()
            await recorder.wait_for("reconnect")
            await server.wait_for(lambda n: n.subscribes == 2)
            await server.publish("empty", "first")
            await server.publish("empty", "stop")
            assert await drain(empty, "stop") == ["first"]
    assert empty.tracker.resume_from() == Position(empty.tracker.position.epoch, 2)  # type: ignore[union-attr]


async def test_malformed_position_fails_closed(server: Server) -> None:
    """A position the server cannot accept fails the subscription, loudly."""
    recorder = Recorder()
    async with Client(server.url, **channel_options(), **recorder.callbacks()) as c:
        news = c.subscribe("news")
        with anyio.fail_after(LONG):
            await server.wait_for(lambda n: n.subscriptions_open == 1)
            news.tracker.position = Position("e", 2**60)  # Beyond MAX_OFFSET.
            await server.abort_all()
            with pytest.raises(wsclient.SubscriptionError):
                await anext(aiter(news))


@pytest.mark.no_asyncio_debug
async def test_many_reconnections_keep_one_subscription_per_channel(
    server: Server,
) -> None:
    """200 reconnections with 100 subscriptions: one subscribe each per connection.

    Unsubscribed channels are never subscribed again, and the server never
    sees a duplicate subscription.
    """
    cycles, channels, dropped = 200, 100, 10
    options = channel_options(backoff_initial=1 * T, backoff_max=5 * T, stable_after=0)
    async with Client(server.url, **options) as client:
        subscriptions = [client.subscribe(f"ch{n}") for n in range(channels)]
        with anyio.fail_after(LONG * 6):
            await server.wait_for(lambda n: n.subscriptions_open == channels)
            for subscription in subscriptions[:dropped]:
                await subscription.unsubscribe()
            live = channels - dropped
            await server.wait_for(lambda n: n.subscriptions_open == live)
            expected = channels
            for _ in range(cycles):
                await server.abort_all()
                expected += live
                await server.wait_for(
                    lambda n, e=expected: (
                        n.subscribes >= e and n.subscriptions_open == live
                    )
                )
    counters = server.counters
    assert counters.subscribes == channels + cycles * live
    assert counters.duplicate_subscribes == 0
    assert counters.max_subscriptions_per_channel == 1
    for n in range(dropped):
        assert server.channel_info(f"ch{n}").subscribers == 0
