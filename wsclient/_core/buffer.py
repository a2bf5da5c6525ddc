"""The outbound buffer: messages sent while the client is not connected.

While the client is down, ``send()`` puts a message here instead of failing;
the writer flushes it in order once a connection is open. A message count *and*
a byte size bound it at all times (except after
:meth:`OutboundBuffer.push_front`, see there), so an outage of any length costs
bounded memory. An optional time to live drops messages too old to be useful.

Every message is a :class:`Pending` that ends with exactly one
:class:`Outcome`. The buffer settles those it decides about (expired, dropped
by the overflow policy, replaced by a newer value) and returns them; the caller
resolves their receipts, and settles what it pops or drains itself.

Nothing here does I/O, waits or reads a clock (methods take ``now``): the
caller wakes waiters, and sleeps until :meth:`~OutboundBuffer.next_expiry`.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

__all__ = ["Admission", "Offer", "OutboundBuffer", "Outcome", "Overflow", "Pending"]


class Outcome(enum.Enum):
    """How a sent message ended. Each message gets exactly one."""

    WRITTEN = "written"
    """Handed to the connection (not proof of delivery: the link may die)."""
    ACKED = "acked"
    """The server acknowledged it."""
    EXPIRED = "expired"
    """Still buffered when its time to live ran out: never sent."""
    DROPPED = "dropped"
    """Discarded unsent: by the overflow policy, or when the client closed."""
    REPLACED = "replaced"
    """Coalesced: a newer message with the same key superseded it unsent."""
    POSSIBLY_LOST = "possibly_lost"
    """The link failed while writing it or before its ack: maybe delivered."""


class Overflow(enum.Enum):
    """What :meth:`OutboundBuffer.offer` does with a message that does not fit."""

    BLOCK = "block"
    """Refuse for now: the sender waits for room, then offers again."""
    DROP_OLDEST = "drop_oldest"
    """Drop the oldest buffered messages until the new one fits."""
    DROP_NEWEST = "drop_newest"
    """Drop the new message; keep what is buffered."""
    FAIL = "fail"
    """Refuse: the sender raises :exc:`~wsclient.BufferFull`."""


@dataclass(eq=False, slots=True, init=False)
class Pending:
    """One message on its way out. Compared and hashed by identity.

    Attributes:
        data: The message.
        enqueued_at: When it was sent.
        expires_at: When it expires if still buffered (inclusive), from the
            buffer's ttl (:meth:`OutboundBuffer.message`); None for never.
        key: Coalescing key: a newer message with the same key replaces this
            one while both are unsent. None to never coalesce.
        size: Its size on the wire in bytes (UTF-8 for text), computed once.
        outcome: How it ended; None while it is buffered or being written.
    """

    data: str | bytes = field(repr=False)
    enqueued_at: float
    expires_at: float | None = None
    key: Hashable | None = None
    size: int = field(init=False)
    outcome: Outcome | None = field(default=None, init=False)

    def __init__(
        self,
        data: str | bytes,
        enqueued_at: float,
        expires_at: float | None = None,
        key: Hashable | None = None,
    ) -> None:
        # Written out rather than generated with a __post_init__: one is
        # made per message sent, and the second call was a fifth of the cost.
        self.data = data
        self.enqueued_at = enqueued_at
        self.expires_at = expires_at
        self.key = key
        # str.isascii() reads a flag in CPython: ASCII is free to measure.
        # Other text is encoded once (a short-lived copy): counting characters
        # would let 4-byte characters exceed max_bytes fourfold.
        if isinstance(data, str) and not data.isascii():
            self.size = len(data.encode())
        else:
            self.size = len(data)
        self.outcome = None

    def settle(self, outcome: Outcome) -> None:
        """Record how it ended. A second outcome is a bug: AssertionError."""
        assert self.outcome is None, f"{self!r} already ended as {self.outcome}"
        self.outcome = outcome


class Admission(enum.Enum):
    """What :meth:`OutboundBuffer.offer` did with the offered message."""

    ACCEPTED = "accepted"
    """Buffered: it will come out of :meth:`~OutboundBuffer.pop`."""
    WAIT = "wait"
    """Full under BLOCK. Untouched: wait for room (until its ``expires_at`` at
    most), then offer it again."""
    DROPPED = "dropped"
    """Full under DROP_NEWEST: settled as DROPPED."""
    EXPIRED = "expired"
    """Already past its ``expires_at``: settled as EXPIRED."""
    FULL = "full"
    """Full under FAIL. Untouched: raise BufferFull with the error."""
    TOO_LARGE = "too_large"
    """Larger than ``max_bytes``, never fits. Untouched: raise ValueError."""


@dataclass(frozen=True, slots=True)
class Offer:
    """The answer of :meth:`OutboundBuffer.offer`.

    Attributes:
        admission: What happened to the offered message.
        evicted: Every message the call settled, outcome set (EXPIRED,
            DROPPED, REPLACED), in that order; it includes the offered one
            when admission is DROPPED or EXPIRED. Resolve their receipts.
        error: For FULL and TOO_LARGE, the message of the exception to raise.
    """

    admission: Admission
    evicted: list[Pending]
    error: str | None = None


class OutboundBuffer:
    """A bounded FIFO of :class:`Pending` messages; no clock, no waiting.

    Senders build a message with :meth:`message` and :meth:`offer` it. The
    writer calls :meth:`pop` until it gives None, and :meth:`push_front` for
    a message it could not write. A timer calls :meth:`expire` at
    :meth:`next_expiry`. Methods return the messages they settled: resolve
    their receipts, and wake blocked senders if any message left.

    Args:
        max_messages: The most messages it holds.
        max_bytes: The most payload bytes it holds (see :attr:`Pending.size`).
        overflow: What to do with a message that does not fit.
        ttl: Seconds a message may wait, from when it was sent, before it
            expires unsent; None to never expire.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: A limit or the ttl is not positive.
    """

    # One per client, for its life: slots, not a dict.
    __slots__ = (
        "_deadlines",
        "_keys",
        "_queue",
        "_tiebreak",
        "bytes",
        "dropped",
        "expired",
        "max_bytes",
        "max_messages",
        "overflow",
        "queued",
        "replaced",
        "ttl",
    )

    def __init__(
        self,
        *,
        max_messages: int,
        max_bytes: int,
        overflow: Overflow,
        ttl: float | None = None,
    ) -> None:
        _check(max_messages=max_messages, max_bytes=max_bytes)
        _check_policy(overflow, ttl)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.ttl = ttl
        self.bytes = 0
        """Payload bytes buffered now; ``len()`` gives the messages."""
        self.dropped = 0
        """Messages dropped by the overflow policy."""
        self.expired = 0
        """Messages that expired unsent."""
        self.replaced = 0
        """Messages superseded by a newer one with the same key."""
        # An ordered set: O(1) removal anywhere (coalescing, expiry) and at
        # both ends (pop, push_front), which a deque does not give.
        self._queue: OrderedDict[Pending, None] = OrderedDict()
        self.queued: Mapping[Pending, None] = self._queue
        """The messages buffered, oldest first (read-only: a cheaper
        emptiness test than ``len()`` on a hot path)."""
        self._keys: dict[Hashable, Pending] = {}
        # Deadlines are not in queue order (push_front, or a blocked sender
        # offering an old message late): a heap with lazy removal (entries of
        # messages gone are skipped) finds the earliest in O(log n).
        self._deadlines: list[tuple[float, int, Pending]] = []
        self._tiebreak = itertools.count()

    def __len__(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        return (
            f"<OutboundBuffer {len(self)}/{self.max_messages} messages, "
            f"{self.bytes}/{self.max_bytes} bytes, {self.overflow.name}>"
        )

    # Public methods for senders.

    def message(
        self, data: str | bytes, now: float, key: Hashable | None = None
    ) -> Pending:
        """The :class:`Pending` for ``data`` sent at ``now``; :meth:`offer` it."""
        expires_at = None if self.ttl is None else now + self.ttl
        return Pending(data, now, expires_at, key)

    def has_room_for(self, item: Pending) -> bool:
        """Whether :meth:`offer` would accept ``item`` without dropping any:
        a blocked sender checks it when woken. The message ``item`` would
        replace counts as room; expired ones do not until removed."""
        return self._fits(item.size, self._coalesced_by(item))

    def offer(self, item: Pending, now: float) -> Offer:
        """Add ``item`` at the end, applying the overflow policy if needed.

        In order: a message larger than ``max_bytes`` is refused; expired
        messages are removed; ``item`` is EXPIRED if it expired itself (its
        sender was blocked too long). If an unsent message with its key is
        buffered, that one is REPLACED and ``item`` goes at the *end*, not in
        its place: what gets sent stays a subsequence of what was sent, so a
        receiver never sees a value before one produced earlier. If ``item``
        does not fit even so, ``overflow`` decides.

        Returns:
            What happened and the messages settled: resolve their receipts,
            then act on :attr:`Offer.admission`.
        """
        assert item.outcome is None, f"{item!r} already ended as {item.outcome}"
        assert item not in self._queue, f"{item!r} is already buffered"
        if item.size > self.max_bytes:
            error = (
                f"message of {item.size} bytes exceeds max_bytes="
                f"{self.max_bytes}: send smaller messages or raise max_bytes"
            )
            return Offer(Admission.TOO_LARGE, [], error)
        evicted = self.expire(now)
        if item.expires_at is not None and item.expires_at <= now:
            self._settle(item, Outcome.EXPIRED, evicted)
            return Offer(Admission.EXPIRED, evicted)
        old = self._coalesced_by(item)
        if not self._fits(item.size, old):
            refusal = self._refuse(item, evicted)
            if refusal is not None:
                return refusal
        if old is not None:
            self._remove(old)
            self._settle(old, Outcome.REPLACED, evicted)
        while not self._fits(item.size):
            self._settle(self._remove(), Outcome.DROPPED, evicted)
        self._add(item)
        return Offer(Admission.ACCEPTED, evicted)

    # Public methods for the writer.

    def pop(self, now: float) -> tuple[Pending | None, list[Pending]]:
        """Take the oldest unexpired message (None if empty) to write it.

        Also returns the messages that expired, settled. The message is now
        yours to settle (WRITTEN, ACKED, POSSIBLY_LOST), or to
        :meth:`push_front` if the connection was lost before writing it.
        """
        expired = self.expire(now)
        return (self._remove() if self._queue else None), expired

    def push_front(self, item: Pending) -> list[Pending]:
        """Put back a message from :meth:`pop` that was not written.

        Put several back in the reverse order of :meth:`pop` to keep the
        order. Limits are not checked: the buffer may exceed them by the
        messages put back (one, for a writer that pops one at a time) until
        it drains below them; :meth:`offer` sees no room meanwhile. If a
        newer message with the same key was buffered meanwhile, ``item`` is
        REPLACED instead and returned as ``[item]``; else returns ``[]``.
        """
        assert item.outcome is None, f"{item!r} already ended as {item.outcome}"
        assert item not in self._queue, f"{item!r} is already buffered"
        settled: list[Pending] = []
        if self._coalesced_by(item) is not None:
            self._settle(item, Outcome.REPLACED, settled)
        else:
            self._add(item)
            self._queue.move_to_end(item, last=False)
        return settled

    # Public methods for timers and closing.

    def expire(self, now: float) -> list[Pending]:
        """Remove and return, settled as EXPIRED and earliest first, the
        messages whose ``expires_at`` is at or before ``now``."""
        expired: list[Pending] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, item = heapq.heappop(self._deadlines)
            if item in self._queue:
                self._remove(item)
                self._settle(item, Outcome.EXPIRED, expired)
        return expired

    def next_expiry(self) -> float | None:
        """When to call :meth:`expire` next: the earliest deadline, or None."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][2] not in self._queue:
            heapq.heappop(deadlines)  # Popped, dropped or replaced already.
        return deadlines[0][0] if deadlines else None

    def drain(self) -> list[Pending]:
        """Remove and return every message, oldest first, for closing.

        They are *not* settled, nor counted: only the caller knows why they
        will not be sent (closed, gave up). Settle each, typically DROPPED.
        """
        items = list(self._queue)
        self._queue.clear()
        self._keys.clear()
        self._deadlines.clear()
        self.bytes = 0
        return items

    # Private methods.

    def _fits(self, size: int, leaving: Pending | None = None) -> bool:
        count, total = len(self._queue), self.bytes
        if leaving is not None:
            count, total = count - 1, total - leaving.size
        return count < self.max_messages and total + size <= self.max_bytes

    def _coalesced_by(self, item: Pending) -> Pending | None:
        """The buffered message that ``item`` would replace, if any."""
        return None if item.key is None else self._keys.get(item.key)

    def _refuse(self, item: Pending, evicted: list[Pending]) -> Offer | None:
        """Apply the policy to ``item``, which does not fit; None: make room."""
        if self.overflow is Overflow.BLOCK:
            return Offer(Admission.WAIT, evicted)
        if self.overflow is Overflow.FAIL:
            error = f"{self!r} is full: retry later, or raise its limits"
            return Offer(Admission.FULL, evicted, error)
        if self.overflow is Overflow.DROP_NEWEST:
            self._settle(item, Outcome.DROPPED, evicted)
            return Offer(Admission.DROPPED, evicted)
        return None

    def _add(self, item: Pending) -> None:
        self._queue[item] = None
        self.bytes += item.size
        if item.key is not None:
            self._keys[item.key] = item
        if item.expires_at is not None:
            entry = (item.expires_at, next(self._tiebreak), item)
            heapq.heappush(self._deadlines, entry)
            if len(self._deadlines) > 2 * len(self._queue) + 16:
                self._compact()

    def _compact(self) -> None:
        # Entries of messages that left before expiring pile up: rebuilding once
        # they outnumber live ones bounds the heap, at O(1) amortised cost.
        self._deadlines = [
            (item.expires_at, next(self._tiebreak), item)
            for item in self._queue
            if item.expires_at is not None
        ]
        heapq.heapify(self._deadlines)

    def _remove(self, item: Pending | None = None) -> Pending:
        """Remove ``item``, by default the oldest, and return it."""
        if item is None:
            item = next(iter(self._queue))  # O(1): an OrderedDict is linked.
        del self._queue[item]
        self.bytes -= item.size
        if item.key is not None and self._keys.get(item.key) is item:
            del self._keys[item.key]
        return item

    def _settle(self, item: Pending, outcome: Outcome, into: list[Pending]) -> None:
        item.settle(outcome)
        if outcome is Outcome.DROPPED:
            self.dropped += 1
        elif outcome is Outcome.EXPIRED:
            self.expired += 1
        elif outcome is Outcome.REPLACED:
            self.replaced += 1
        into.append(item)


def _check(**limits: object) -> None:
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be a positive int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")


def _check_policy(overflow: object, ttl: object) -> None:
    if not isinstance(overflow, Overflow):
        choices = ", ".join(f"Overflow.{o.name}" for o in Overflow)
        raise TypeError(f"overflow must be one of {choices}, got {overflow!r}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, float | int)):
        raise TypeError(f"ttl must be a number of seconds or None, got {ttl!r}")
    if isinstance(ttl, float | int) and not ttl > 0:  # Also refuses NaN.
        raise ValueError(f"ttl must be > 0, or None to never expire; got {ttl!r}")
