"""A connection's ordered queue of replies and publications, with a soft limit.

Why not the connection's bounded outbox (an anyio memory stream) directly?
Putting a message in a full memory stream means awaiting, and an await
between taking a channel's history snapshot and queuing its replay would let
a concurrent publication overtake the replay. A mailbox takes messages
without waiting (:meth:`Mailbox.post`), so a subscribe can queue its answer
and a replay of up to ``history_size`` publications in one synchronous step,
and a publish can hand its publication to every subscriber in offset order.
A pump task per connection then moves messages into the outbox, at the pace
the client reads.

Memory stays bounded because producers wait *before* posting while a
mailbox is over its limit (:meth:`Mailbox.wait_room`): publishers wait for
every subscriber of the channel, and a connection's reader waits for its own
mailbox before it handles the next command. A mailbox therefore holds at most
its limit, plus one message per producer that found room at the same time,
plus the replay of one subscribe.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Iterable


class Mailbox:
    """An unbounded FIFO of outgoing messages whose producers wait at a limit.

    Posting never waits, so that a caller can queue several messages without
    anything getting between them; callers that produce without end must
    await :meth:`wait_room` before posting.
    """

    def __init__(self, limit: int) -> None:
        self._items: deque[tuple[bool, bytes]] = deque()
        self._limit = limit
        self._closed = False
        # Created only when someone waits, as in CounterBoard.
        self._readable: anyio.Event | None = None
        self._room: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def has_room(self) -> bool:
        """True below the limit, and once closed (posting is then a no-op)."""
        return self._closed or len(self._items) < self._limit

    # Public methods for producers.

    def post(self, payload: bytes, text: bool = True) -> None:
        """Queue a message at once, even over the limit; drop it if closed."""
        if self._closed:
            return
        self._items.append((text, payload))
        if self._readable is not None:
            self._readable.set()
            self._readable = None

    def post_many(self, payloads: Iterable[bytes]) -> None:
        """Queue text messages in order, as one step."""
        for payload in payloads:
            self.post(payload)

    async def wait_room(self) -> None:
        """Wait until the mailbox is below its limit or closed.

        This is not a checkpoint when there is room already. Canceling it is
        safe.
        """
        while not self.has_room:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    # Public methods for the consumer.

    async def get(self) -> tuple[bool, bytes]:
        """Take the oldest message: whether it is text, and its payload.

        Canceling it is safe: a message is only taken when this returns.

        Raises:
            anyio.EndOfStream: Once the mailbox is closed.
        """
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            if self._readable is None:
                self._readable = anyio.Event()
            await self._readable.wait()
        item = self._items.popleft()
        if self._room is not None and len(self._items) < self._limit:
            self._room.set()
            self._room = None
        return item

    def close(self) -> None:
        """Drop queued messages and release every waiter; later posts are dropped."""
        self._closed = True
        self._items.clear()
        for event in (self._readable, self._room):
            if event is not None:
                event.set()
        self._readable = self._room = None
