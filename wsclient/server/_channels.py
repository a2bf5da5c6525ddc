"""Channels: numbered publications, bounded history, and resume decisions.

This module is I/O-free and synchronous: it reads no clock (callers pass
``now``) and never awaits. That is what makes the resume point exact. A
subscribe takes the history snapshot, decides what to replay and registers
the subscriber in one call, and a publish assigns the offset, stores the
publication and hands it to every subscriber in one call, so no publication
can fall between the snapshot and the registration, and each subscriber is
handed publications in offset order. The caller queues the subscribe answer
and the replay in the subscriber's outbound order before it awaits anything
(see :mod:`._pubsub`); live publications then queue behind the replay.

Rules, for a channel at offset ``CURRENT`` whose history holds ``FIRST`` to
``CURRENT`` (``FIRST = CURRENT + 1`` when it holds nothing), and a client
resuming from ``since = (epoch, N)``:

1. No ``since``: ``recovered`` is None, nothing is replayed.
2. Another epoch: ``recovered`` False, reason ``epoch``, nothing replayed.
3. ``N > CURRENT``: ``recovered`` False, reason ``future``, nothing replayed.
4. ``N >= FIRST - 1``: ``recovered`` True, ``N + 1`` to ``CURRENT`` replayed.
5. Otherwise: ``recovered`` False, reason ``truncated``, ``missing`` is
   ``(N + 1, FIRST - 1)`` and ``FIRST`` to ``CURRENT`` are replayed.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, Literal, Protocol, TypeVar

from . import _wire

if TYPE_CHECKING:
    from collections.abc import Collection

DEFAULT_HISTORY_SIZE: Final = 1000
"""Publications kept per channel, by default."""

DEFAULT_HISTORY_TTL: Final = 300.0
"""Seconds a publication stays in history, by default."""

DEDUP_WINDOW: Final = 10_000
"""``msg_id`` values remembered per channel for de-duplicating publishes."""

Reason = Literal["truncated", "future", "epoch"]
"""Why a resume did not recover everything (the ``reason`` field on the wire)."""


class Sink(Protocol):
    """Where a subscriber's publications go: a connection's ordered outbox."""

    def post(self, payload: bytes) -> None:
        """Queue a text message without waiting; keep the order of calls."""


SinkT = TypeVar("SinkT", bound=Sink)


class AlreadySubscribedError(Exception):
    """The sink is already subscribed to the channel."""


@dataclass(frozen=True, slots=True)
class Position:
    """A client's place in a channel: the last offset it got in an epoch."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A snapshot of one channel, from :meth:`Server.channel_info`.

    Attributes:
        epoch: Names this incarnation of the channel's history; it changes
            when the server loses its history (:meth:`Server.lose_history`).
        offset: Offset of the latest publication; 0 before the first one.
        first_available: Offset of the oldest publication still in history,
            or ``offset + 1`` when the history is empty (all truncated,
            expired, or nothing published yet).
        subscribers: Connections subscribed to the channel now.
    """

    epoch: str
    offset: int
    first_available: int
    subscribers: int


@dataclass(frozen=True, slots=True)
class Resume:
    """The answer to a subscribe: what to tell the client, and what to replay."""

    epoch: str
    offset: int
    recovered: bool | None
    reason: Reason | None = None
    missing: tuple[int, int] | None = None
    replay: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome of a publish: its offset, or the original one for a duplicate."""

    offset: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    offset: int
    time: float  # the caller's clock when it was published
    frame: bytes  # the "pub" message, serialized once for every subscriber


class _Channel(Generic[SinkT]):
    __slots__ = ("epoch", "history", "msg_ids", "name", "offset", "subscribers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.epoch = _new_epoch()
        self.offset = 0
        # Offsets in history are consecutive and end at self.offset.
        self.history: deque[_Entry] = deque()
        # msg_id -> offset, oldest first (dicts keep insertion order).
        self.msg_ids: dict[str, int] = {}
        # A dict rather than a set: delivery order is subscription order.
        self.subscribers: dict[SinkT, None] = {}

    @property
    def first_available(self) -> int:
        return self.history[0].offset if self.history else self.offset + 1

    def forget(self) -> None:
        epoch = self.epoch
        while self.epoch == epoch:  # a collision is unlikely, but must not pass
            self.epoch = _new_epoch()
        self.offset = 0
        self.history.clear()
        self.msg_ids.clear()


class ChannelRegistry(Generic[SinkT]):
    """Every channel of a server, and which sinks subscribe to which.

    Channels are created on first use and never deleted: forgetting one would
    give it a new epoch, and turn a client's valid position into an unknown
    gap. History is bounded per channel by count and by age; expired entries
    are dropped lazily, before any read of the history.
    """

    def __init__(
        self,
        *,
        history_size: int = DEFAULT_HISTORY_SIZE,
        history_ttl: float = DEFAULT_HISTORY_TTL,
    ) -> None:
        self.history_size = history_size
        self.history_ttl = history_ttl
        self._channels: dict[str, _Channel[SinkT]] = {}
        # Channel names per sink, to drop a closed connection's subscriptions.
        self._subscriptions: dict[SinkT, dict[str, None]] = {}
        self._open = 0

    @property
    def subscriptions_open(self) -> int:
        """Subscriptions held now, over all sinks and channels."""
        return self._open

    # Public methods for subscribers.

    def subscribe(
        self, sink: SinkT, name: str, since: Position | None, now: float
    ) -> Resume:
        """Register ``sink`` on channel ``name`` and decide what to replay.

        The caller must queue the answer, then ``Resume.replay``, on the sink
        before awaiting anything: publications made after this call are
        posted to the sink directly, behind them.

        Raises:
            AlreadySubscribedError: If ``sink`` already subscribes to ``name``;
                nothing changed.
        """
        names = self._subscriptions.get(sink, {})
        if name in names:
            raise AlreadySubscribedError(name)
        channel = self._channel(name, now)
        resume = _resume(channel, since)
        channel.subscribers[sink] = None
        names[name] = None
        self._subscriptions[sink] = names
        self._open += 1
        return resume

    def subscriptions(self, sink: SinkT, name: str) -> int:
        """Subscriptions ``sink`` holds on ``name``: 0 or 1, by construction."""
        return 1 if name in self._subscriptions.get(sink, {}) else 0

    def unsubscribe(self, sink: SinkT, name: str) -> bool:
        """Stop posting ``name``'s publications to ``sink``; False if not subscribed."""
        names = self._subscriptions.get(sink)
        if names is None or name not in names:
            return False
        del names[name]
        if not names:
            del self._subscriptions[sink]
        del self._channels[name].subscribers[sink]
        self._open -= 1
        return True

    def drop(self, sink: SinkT) -> int:
        """Drop all subscriptions of ``sink`` (its connection closed); count them."""
        names = self._subscriptions.pop(sink, {})
        for name in names:
            del self._channels[name].subscribers[sink]
        self._open -= len(names)
        return len(names)

    def subscribers(self, name: str) -> Collection[SinkT]:
        """The sinks subscribed to ``name``: a live view; do not await while in use."""
        channel = self._channels.get(name)
        return () if channel is None else channel.subscribers.keys()

    # Public methods for publishers.

    def publish(
        self, name: str, data_json: str, msg_id: str | None, now: float
    ) -> Published:
        """Publish on ``name`` and post the publication to every subscriber.

        Args:
            name: The channel, created if new.
            data_json: The data, already serialized as JSON.
            msg_id: If not None and already accepted on this channel (among
                the last :data:`DEDUP_WINDOW`), nothing is published and the
                original offset is returned with ``duplicate`` set.
            now: The caller's clock, for expiry.
        """
        channel = self._channel(name, now)
        if msg_id is not None:
            original = channel.msg_ids.get(msg_id)
            if original is not None:
                return Published(original, duplicate=True)
        channel.offset += 1
        offset = channel.offset
        frame = _wire.pub_frame(name, channel.epoch, offset, data_json)
        channel.history.append(_Entry(offset, now, frame))
        self._trim(channel, now)
        if msg_id is not None:
            channel.msg_ids[msg_id] = offset
            if len(channel.msg_ids) > DEDUP_WINDOW:
                del channel.msg_ids[next(iter(channel.msg_ids))]
        for sink in channel.subscribers:
            sink.post(frame)
        return Published(offset, duplicate=False)

    # Public methods for tests.

    def configure(self, size: int | None, ttl: float | None, now: float) -> None:
        """Change the bounds of every channel's history; apply them at once."""
        if size is not None:
            self.history_size = size
        if ttl is not None:
            self.history_ttl = ttl
        for channel in self._channels.values():
            self._trim(channel, now)

    def expire(self, older_than: float, now: float) -> int:
        """Drop entries at least ``older_than`` seconds old; return how many."""
        dropped = 0
        for channel in self._channels.values():
            history = channel.history
            while history and now - history[0].time >= older_than:
                history.popleft()
                dropped += 1
        return dropped

    def lose_history(self) -> None:
        """Forget every channel's history: new epochs, offsets back to 0.

        Subscriptions stay: their next publication carries the new epoch.
        """
        for channel in self._channels.values():
            channel.forget()

    def info(self, name: str, now: float) -> ChannelInfo:
        """Describe channel ``name``, creating it (and fixing its epoch) if new."""
        channel = self._channel(name, now)
        return ChannelInfo(
            channel.epoch,
            channel.offset,
            channel.first_available,
            len(channel.subscribers),
        )

    # Private methods.

    def _channel(self, name: str, now: float) -> _Channel[SinkT]:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name)
        else:
            self._trim(channel, now)
        return channel

    def _trim(self, channel: _Channel[SinkT], now: float) -> None:
        history = channel.history
        while len(history) > self.history_size:
            history.popleft()
        # Strictly older than the TTL: an entry exactly ttl seconds old stays.
        while history and now - history[0].time > self.history_ttl:
            history.popleft()


def _resume(channel: _Channel[SinkT], since: Position | None) -> Resume:
    current, epoch = channel.offset, channel.epoch
    if since is None:
        return Resume(epoch, current, None)
    if since.epoch != epoch:
        return Resume(epoch, current, False, "epoch")
    if since.offset > current:
        return Resume(epoch, current, False, "future")
    first = channel.first_available
    frames = (entry.frame for entry in channel.history)
    if since.offset >= first - 1:
        # Offsets are consecutive, so the entry for offset k sits at k - first.
        replay = tuple(itertools.islice(frames, since.offset + 1 - first, None))
        return Resume(epoch, current, True, replay=replay)
    missing = (since.offset + 1, first - 1)
    return Resume(epoch, current, False, "truncated", missing, tuple(frames))


def _new_epoch() -> str:
    # Random rather than a counter or a timestamp: an epoch from a previous run
    # of the server (or another server) must not match by accident.
    return secrets.token_hex(8)
