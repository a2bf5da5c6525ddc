"""A subscription: one channel's messages across reconnections, in a bounded queue."""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    NamedTuple,
    Self,
    TypeAlias,
    TypeVar,
)

import anyio
from anyio.lowlevel import checkpoint

from ._core.subscriptions import Gap, Position, Tracker
from ._exceptions import MessagesLost, SubscriptionError, WSClientError
from ._transport.receiving import READY_STREAK

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType

    from ._adapters.base import Publication

__all__ = ["Marker", "Message", "Overflow", "Subscription", "SubscriptionState"]

_new_tuple = tuple.__new__
"""Builds a Message on the hot path without its generated ``__new__``."""


class Message(NamedTuple):
    """One publication, as a subscriber receives it.

    A named tuple ``(data, channel, position)``: immutable, and the cheapest
    record Python builds (from C, without calling an ``__init__``), which
    matters because one is made per message received.

    Attributes:
        data: The payload.
        channel: The channel it was published on.
        position: Its position in the channel's history, for servers that
            keep one (None otherwise).
    """

    data: Any
    channel: str
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class Marker:
    """A lifecycle marker in a subscription's stream (with ``markers=True``).

    Lets a subscriber reconcile its state without callbacks, in order with
    the messages.

    Attributes:
        kind: ``"reconnected"``: the subscription was restored on a new
            connection; what follows was replayed or is live.
            ``"recovered"``: the replay caught up: every publication up to
            the reconnection was delivered, none lost.
            ``"stale"``: no message for ``stale_after`` seconds; the
            subscription was renewed.
        channel: The channel.
        position: The subscription's position when the marker was queued.
    """

    kind: Literal["reconnected", "recovered", "stale"]
    channel: str
    position: Position | None = None


class SubscriptionState(enum.Enum):
    """Where a subscription is in its lifecycle."""

    PENDING = "pending"
    """Waiting for the server's answer (or for a connection)."""
    ACTIVE = "active"
    """The server accepted it; messages flow."""
    FAILED = "failed"
    """The server refused it, or its queue overflowed with ``overflow="fail"``."""
    CLOSED = "closed"
    """Unsubscribed, or the client closed."""


class Overflow(enum.Enum):
    """What a subscription does when its queue is full."""

    BLOCK = "block"
    """Stop reading the connection until there is room: backpressure to the
    server. Every subscription and the client's own stream wait too."""
    DROP_OLDEST = "drop_oldest"
    """Drop the oldest queued message; count it in ``dropped``."""
    FAIL = "fail"
    """Fail the subscription: its iterator raises :exc:`SubscriptionError`."""


OverflowName: TypeAlias = Overflow | Literal["block", "drop_oldest", "fail"]
GapPolicy: TypeAlias = Literal["raise", "marker"]

_Item: TypeAlias = Message | Gap | Marker


T = TypeVar("T", covariant=True)
"""What iterating a subscription yields: ``Message``, plus ``Gap`` and
``Marker`` when the subscription asked for them."""


class Subscription(Generic[T]):
    """The messages of one channel, restored after every reconnection.

    Create it with :meth:`wsclient.Client.subscribe`. Iterate it, and use it
    as an async context manager to unsubscribe on exit::

        async with client.subscribe("trades.BTC") as trades:
            async for message in trades:
                print(message.data)

    A :exc:`~wsclient.MessagesLost` ends that ``async for``; to go on after a
    gap, iterate again (or ask for ``gaps="marker"``)::

        while True:
            try:
                async for message in trades:
                    handle(message)
                break  # Unsubscribed or the client closed.
            except wsclient.MessagesLost as lost:
                resync(lost.first, lost.last)  # e.g. fetch a snapshot

    Attributes:
        channel: The channel.
        params: Extra fields for the subscribe request.
        state: See :class:`SubscriptionState`.
        dropped: Messages dropped because the queue was full (``drop_oldest``).
        gaps: Gaps reported (publications the server could not deliver).
    """

    def __init__(
        self,
        channel: str,
        params: dict[str, Any],
        *,
        max_queue: int,
        overflow: Overflow,
        gaps: GapPolicy,
        markers: bool = False,
        stale_after: float | None = None,
        on_unsubscribe: Callable[[Subscription[Any]], Coroutine[Any, Any, None]],
    ) -> None:
        self.channel = channel
        self.params = params
        self.state = SubscriptionState.PENDING
        self._ended = False
        """``state`` is CLOSED or FAILED: a plain read for the hot path."""
        self.dropped = 0
        self.gaps = 0
        self.tracker = Tracker(channel)
        self._max_queue = max_queue
        self._overflow = overflow
        self._gap_policy = gaps
        self._markers = markers
        self.stale_after = stale_after
        self.stale_renewals = 0
        """Times the stale-data watchdog renewed the subscription."""
        self.last_message_at: float | None = None
        """When the last publication was queued (clock of the event loop);
        kept only with ``stale_after``, whose watchdog reads it."""
        self.connections = 0
        """Times the server accepted the subscription (connections, renewals)."""
        self._catch_up: int | None = None
        self._renewing = False
        self._on_unsubscribe = on_unsubscribe
        self._items: collections.deque[_Item] = collections.deque()
        self._error: WSClientError | None = None
        # Events are made only when a side must wait (an idle subscription
        # holds none), and set only then: not per message.
        self._readable: anyio.Event | None = None
        self._reader_waits = False
        self._streak = 0
        """Items __anext__ returned since it last yielded."""
        self._writable: anyio.Event | None = None
        self._router_waits = False

    # Public methods.

    async def unsubscribe(self) -> None:
        """Stop the subscription; iteration ends after the queued messages.

        Idempotent. Once unsubscribed, the channel is never resubscribed.
        """
        if not self._done():
            self._finish(SubscriptionState.CLOSED)
        # Always: a failed subscription must also stop its flow on the server.
        await self._on_unsubscribe(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=exc_type is not None):
            await self.unsubscribe()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        """The next message, or a :class:`~wsclient.Gap` or
        :class:`~wsclient.Marker` if asked for.

        Cancelling it is safe: nothing is lost. Items already queued are
        returned without yielding, with a checkpoint at least every 64.

        Raises:
            MessagesLost: Publications were missed (with ``gaps="raise"``).
            SubscriptionError: The server refused the subscription, or the
                queue overflowed with ``overflow="fail"``.
            ClientStopped: The client stopped on its own (fatal error or
                gave up).
            StopAsyncIteration: Unsubscribed, or the client closed, and
                every queued message was read.
        """
        if self._streak >= READY_STREAK:
            # Items queued are returned without yielding, but not forever: a
            # checkpoint at least every READY_STREAK, as async for on the
            # client (cancellation, other tasks' turn).
            self._streak = 0
            await checkpoint()
        while not self._items:
            self._streak = 0
            if self.state is SubscriptionState.FAILED and self._error is not None:
                raise self._error
            if self.state is SubscriptionState.CLOSED:
                raise StopAsyncIteration
            if self._readable is None:
                self._readable = anyio.Event()
            self._reader_waits = True
            await self._readable.wait()
        self._streak += 1
        item = self._items.popleft()
        if self._router_waits:
            self._wake_router()
        if isinstance(item, Gap) and self._gap_policy == "raise":
            raise MessagesLost(item)
        # The item types queued are those the subscriber asked for (T).
        return item  # type: ignore[return-value]

    def __repr__(self) -> str:
        queued = len(self._items)
        return f"<Subscription {self.channel!r} {self.state.value} queued={queued}>"

    # Private methods, for the client's router.

    def _accepted(
        self, recovered: bool | None = None, current: int | None = None
    ) -> None:
        """The server accepted the subscription on a connection."""
        if self.state is SubscriptionState.PENDING:
            self.state = SubscriptionState.ACTIVE
        self.connections += 1
        self.last_message_at = anyio.current_time()
        self._catch_up = None  # A new answer supersedes an unfinished catch-up.
        renewal, self._renewing = self._renewing, False
        if self.connections == 1 or renewal or not self._markers:
            return
        self._mark("reconnected")
        if recovered and current is not None:
            here = self.tracker.position
            if here is not None and here.offset >= current:
                self._mark("recovered")
            else:
                self._catch_up = current

    def _link_ended(self) -> None:
        """The connection ended: a renewal under way there is over."""
        self._renewing = False

    def _stale(self) -> None:
        """The stale-data watchdog is renewing the subscription."""
        self.stale_renewals += 1
        self.last_message_at = anyio.current_time()
        self._renewing = True
        self._mark("stale")

    def _mark(self, kind: Literal["reconnected", "recovered", "stale"]) -> None:
        last = self._items[-1] if self._items else None
        if kind == "stale" and isinstance(last, Marker) and last.kind == "stale":
            return  # Unread: one stale marker says it all (the queue stays bounded).
        if self._markers:
            self._items.append(Marker(kind, self.channel, self.tracker.position))
            self._wake_reader()

    def _refused(self, error: str) -> None:
        message = f"the server refused the subscription to {self.channel!r}: {error}"
        self._error = SubscriptionError(message, self.channel)
        self._finish(SubscriptionState.FAILED)

    def _stop(self, error: WSClientError | None) -> None:
        """The client stopped: end iteration, with ``error`` if it failed."""
        if self._done():
            return
        self._error = error
        self._finish(
            SubscriptionState.CLOSED if error is None else SubscriptionState.FAILED
        )

    def _finish(self, state: SubscriptionState) -> None:
        self.state = state
        self._ended = True
        self._wake_reader()
        self._wake_router()  # Never leave the router blocked on a dead queue.

    def _report(self, gap: Gap | None) -> None:
        if gap is not None:
            self.gaps += 1
            self._items.append(gap)  # Gaps are rare; they never wait for room.
            self._wake_reader()

    def _offer(self, publication: Publication) -> bool:
        """Queue one publication at once if there is room: the common case.

        Returns False, having done nothing, when the queue is full: the
        router then awaits :meth:`_deliver`, which applies the overflow
        policy. Synchronous on purpose: no coroutine per message. It does
        not wake the reader: the router does, when it sees fit (see
        Router._read).
        """
        items = self._items
        if len(items) >= self._max_queue - 1:
            # Maybe no room for a gap marker and the message: _deliver()
            # applies the overflow policy to the pair.
            return False
        tracker = self.tracker
        position = tracker.next_in_order(publication.epoch, publication.offset)
        if position is None:  # Out of order, or no position: the general case.
            deliver, gap = tracker.publication(publication.epoch, publication.offset)
            if gap is not None:
                self._report(gap)
            if deliver and not self._ended:
                self._append(publication)
            return True
        if self._ended:
            return True
        if self._catch_up is not None or self.stale_after:
            self._append(publication)
            return True
        # _append() inlined for the common case: no catch-up, no watchdog.
        items.append(
            _new_tuple(Message, (publication.data, publication.channel, position))
        )
        return True

    async def _deliver(self, publication: Publication) -> None:
        """Queue one publication, per the recovery rules and the overflow policy.

        If waiting for room is cancelled (the connection was replaced), the
        position goes back to before this publication, so that the resume on
        the next connection replays it: never a silent loss.
        """
        before = self.tracker.position
        try:
            await self._queue(publication)
        except BaseException:
            if self.tracker.position != before and not self._done():
                self.tracker.position = before
            raise

    async def _queue(self, publication: Publication) -> None:
        deliver, gap = self.tracker.publication(publication.epoch, publication.offset)
        self._report(gap)
        if not deliver or self._done():
            return
        while len(self._items) >= self._max_queue:
            if self._overflow is Overflow.DROP_OLDEST:
                if not self._drop_oldest():
                    break  # Only gap markers queued: they never wait for room.
            elif self._overflow is Overflow.FAIL:
                text = f"the queue of {self.channel!r} overflowed ({self._max_queue})"
                self._error = SubscriptionError(text, self.channel)
                self._finish(SubscriptionState.FAILED)
                return
            else:
                self._writable = anyio.Event()
                self._router_waits = True
                await self._writable.wait()
                if self._done():  # Unsubscribed or stopped while waiting.
                    return
        self._append(publication)
        self._wake_reader()

    def _append(self, publication: Publication) -> None:
        """Queue a publication the tracker let through (the caller wakes the
        reader)."""
        offset = publication.offset
        position = None if offset is None else self.tracker.position
        self._items.append(Message(publication.data, publication.channel, position))
        if self.stale_after is not None:  # The clock costs: only if watched.
            self.last_message_at = anyio.current_time()
        if self._catch_up is not None and (offset or 0) >= self._catch_up:
            self._catch_up = None
            self._mark("recovered")

    def _done(self) -> bool:
        return self._ended

    def _drop_oldest(self) -> bool:
        for index, item in enumerate(self._items):
            if isinstance(item, Message):
                del self._items[index]
                self.dropped += 1
                return True
        return False

    def _wake_reader(self) -> None:
        # A new event only when the reader waits on this one: not per message.
        if self._reader_waits:
            self._reader_waits = False
            readable, self._readable = self._readable, None
            if readable is not None:
                readable.set()

    def _wake_router(self) -> None:
        self._router_waits = False
        writable, self._writable = self._writable, None
        if writable is not None:
            writable.set()
