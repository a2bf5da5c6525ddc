"""A subscription's queue limit holds for a gap marker and its message together.

Driven without a connection: the router offers publications to the
subscription as it reads them (``_offer``, then ``_deliver`` when there is no
room); this checks the overflow policy on the pair that a skipped offset
produces.
"""

from __future__ import annotations

from typing import Any

import pytest

from wsclient import Gap, Publication, SubscriptionState
from wsclient._subscription import Overflow, Subscription

pytestmark = pytest.mark.anyio


def subscription(max_queue: int, overflow: Overflow) -> Subscription[Any]:
    async def unsubscribe(_: Subscription[Any]) -> None:
        pass

    sub: Subscription[Any] = Subscription(
        "c", {}, max_queue=max_queue, overflow=overflow, gaps="report",
        on_unsubscribe=unsubscribe,
    )  # fmt: skip
    sub.state = SubscriptionState.ACTIVE
    return sub


async def offer(sub: Subscription[Any], offset: int) -> None:
    """What Router._read does with one publication."""
    publication = Publication("c", offset, "e", offset)
    if not sub._offer(publication):
        await sub._deliver(publication)


async def test_fail_counts_the_gap_marker() -> None:
    """One slot left, and a skipped offset brings a gap and a message: fail."""
    sub = subscription(3, Overflow.FAIL)
    await offer(sub, 1)
    await offer(sub, 2)
    await offer(sub, 5)  # Gap 3-4, then 5: two items for one slot.
    assert sub.state is SubscriptionState.FAILED


async def test_drop_oldest_keeps_the_limit() -> None:
    """With drop_oldest the queue never holds more than max_queue items."""
    sub = subscription(3, Overflow.DROP_OLDEST)
    for offset in (1, 2, 5, 6):
        await offer(sub, offset)
    items = list(sub._items)
    assert len(items) <= 3
    assert any(isinstance(item, Gap) for item in items)
    assert sub.dropped >= 1
