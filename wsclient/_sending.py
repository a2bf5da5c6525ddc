"""``Client.send``: write now when connected, else buffer, and say what became of it.

The policy lives in :mod:`._core.buffer`; this module adds the waiting: a
sender blocked on a full buffer, the flush of the buffer onto a new
connection, the timer that expires old messages, and the receipts that
callers await.

Order is the rule that shapes it. A message goes straight to the connection
only when the client is connected *and* nothing is buffered, being flushed,
or blocked waiting for room; otherwise it joins the buffer (or the line of
blocked senders), which is written in order. So a message sent during a
flush waits behind older ones instead of overtaking them. One exception:
the supervisor's own task, running the connect callbacks just before the
flush, writes directly: that is where an application re-authenticates or
resubscribes, which must precede what was buffered.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import anyio

from ._core.buffer import Admission, OutboundBuffer, Outcome, Overflow, Pending
from ._exceptions import BufferFull
from ._latch import Latch
from ._options import check_seconds
from ._signal import Signal
from ._transport.base import ConnectionClosed

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from anyio.abc import TaskGroup

    from ._core.stats import Stats
    from ._exceptions import WSClientError
    from ._outbox import PublishReceipt
    from ._supervisor import Supervisor
    from ._transport.base import Connection, Data

__all__ = [
    "OverflowPolicy",
    "SendReceipt",
    "Sender",
    "UndeliveredEvent",
    "check_drain_timeout",
    "check_key",
    "make_sender",
]

logger = logging.getLogger("wsclient")

_WRITTEN = Outcome.WRITTEN

OverflowPolicy: TypeAlias = Literal["block", "drop_oldest", "drop_newest", "fail"]
"""The ``buffer_overflow`` option of :class:`~wsclient.Client`."""


class SendReceipt(Pending):
    """The fate of one message given to :meth:`Client.send`.

    ``outcome`` is None while the message waits in the outbound buffer, then
    exactly one :class:`~wsclient.Outcome`: ``WRITTEN`` (handed to an open
    connection; plain sends are at-most-once from there), ``POSSIBLY_LOST``
    (the connection died while writing it), ``EXPIRED`` (``buffer_ttl``
    passed first), ``REPLACED`` (a newer message with the same ``key`` took
    its place), or ``DROPPED`` (the overflow policy discarded it, or the
    client closed or stopped before it could be sent).

    Attributes:
        data: The message (a buffered bytearray or memoryview is copied to
            bytes).
        enqueued_at: When it entered the buffer (``anyio.current_time()``);
            0.0 if it was written at once.
        expires_at: When it expires if still buffered (``buffer_ttl``).
        key: Its coalescing key, if any.
        size: Its size in bytes (UTF-8 for text).
        outcome: How it ended, or None while buffered.
    """

    # Not a dataclass field: Pending's __init__ leaves it unset (one store
    # less per message sent), the first wait() makes it, and asdict() and
    # the repr do not see it.
    __slots__ = ("_done",)
    _done: anyio.Event

    async def wait(self) -> Outcome:
        """Wait until the message has an outcome, and return it.

        Cancelling it is safe: the message stays buffered.
        """
        if self.outcome is None:
            try:
                done = self._done
            except AttributeError:
                done = self._done = anyio.Event()
            await done.wait()
        assert self.outcome is not None
        return self.outcome

    def _end(self, outcome: Outcome) -> None:
        self.settle(outcome)
        self._woken()

    def _woken(self) -> None:
        try:
            done = self._done
        except AttributeError:
            return  # Nobody waits.
        done.set()


@dataclass(frozen=True, slots=True)
class UndeliveredEvent:
    """What the client had not delivered when it closed or stopped.

    Returned by :meth:`Client.close` and passed to ``on_undelivered``
    callbacks (only when not empty). Nothing here was silently lost: each
    message is listed with its receipt.

    Attributes:
        messages: Buffered sends never written, oldest first; each outcome
            is ``DROPPED``. Send them again on a new client if they matter.
        publications: Acknowledged publications still awaiting their ack;
            each may or may not have reached the server. Publish them again
            (the server de-duplicates by ``msg_id`` only within one client).
        error: Why the client stopped; None when it was closed.
    """

    messages: tuple[SendReceipt, ...] = ()
    publications: tuple[PublishReceipt, ...] = ()
    error: WSClientError | None = None

    def __len__(self) -> int:
        return len(self.messages) + len(self.publications)


class Sender:
    """The sending side of one client: the buffer and everyone waiting on it.

    Args:
        buffer: The outbound buffer, configured from the client's options.
        stats: The client's counters, kept in step with the buffer.
        block_timeout: Seconds a sender may wait for room under the
            ``"block"`` policy before :exc:`~wsclient.BufferFull`; None waits
            as long as it takes.
        write_grace: Seconds a write of the flush may go on after the flush
            was cancelled (by close()): a frame cut in the middle would
            corrupt the stream, and the closing handshake would time out.
    """

    # One per client, for its life: slots, not a dict.
    __slots__ = (
        "_attached",
        "_blocked",
        "_discarded",
        "_flusher",
        "_grew",
        "_max_bytes",
        "_queued",
        "_shrank",
        "block_timeout",
        "buffer",
        "error",
        "flushing",
        "stats",
        "write_grace",
    )

    def __init__(
        self,
        buffer: OutboundBuffer,
        stats: Stats,
        block_timeout: float | None,
        write_grace: float = 10.0,
    ) -> None:
        self.buffer = buffer
        self._queued = buffer.queued
        self._max_bytes = buffer.max_bytes
        self.stats = stats
        self.block_timeout = block_timeout
        self.write_grace = write_grace
        self.flushing = False
        """True while the supervisor writes the buffer onto a connection, and
        while it runs the connect callbacks just before: meanwhile only the
        supervisor's task (the callbacks) writes directly."""
        self.error: WSClientError | None = None
        """Set when the client stopped; the buffer is empty from then on."""
        self._discarded = 0
        self._blocked: list[object] = []
        """Senders waiting for room, first come first served (a list: an
        empty deque takes 600 bytes, and the line is short)."""
        # Signals, not anyio Events: an idle client awaits neither.
        self._grew = Signal()
        """Fires when a message joins the buffer: wakes the expiry timer."""
        self._shrank = Signal()
        """Fires when messages leave it: wakes blocked senders and flush()."""
        self._attached: (
            tuple[Connection, TaskGroup, Callable[[Exception], None]] | None
        ) = None
        """The open connection, once flushed, where to start a flusher, and
        whom to tell if it fails."""
        self._flusher: tuple[anyio.CancelScope, Latch] | None = None
        """The flusher's scope and end, while one runs."""

    # Public methods for the client.

    async def send(
        self, supervisor: Supervisor, message: Data, key: Hashable | None
    ) -> SendReceipt:
        """Write ``message`` now if connected and nothing waits, else buffer it.

        Decided when awaited, not when called: a coroutine made before a
        reconnection or a close() goes by the state it finds.
        """
        conn = supervisor.conn
        if (
            conn is None
            or self.flushing
            or self._queued
            or self._blocked
            or supervisor.close_requested.is_set()
            or not conn.is_open
        ):
            return await self._send_later(supervisor, message, key)
        # The fast path, connected and nothing waits: as _write(), inlined.
        direct = SendReceipt(message, 0.0, None, key)
        if direct.size > self._max_bytes:
            self._check_size(direct)
        try:
            await conn.send(message)
        except BaseException as exc:
            self._interrupted(direct, exc)
            if isinstance(exc, ConnectionClosed):
                return direct
            raise
        direct.outcome = _WRITTEN  # Nobody can wait on it yet.
        stats = self.stats
        stats.messages_out += 1
        stats.bytes_out += len(message)
        return direct

    async def _send_later(
        self, supervisor: Supervisor, message: Data, key: Hashable | None
    ) -> SendReceipt:
        """Write it once nothing waits, or buffer it, or wait in line for room:
        :meth:`send`'s general case, apart from its fast path."""
        receipt: SendReceipt | None = None
        deadline: float | None = None
        ticket: object | None = None  # Our place among blocked senders.
        try:
            while True:
                self._check_running(supervisor)
                first = not self._blocked or self._blocked[0] is ticket
                conn = supervisor.conn
                if (
                    conn is not None
                    and conn.is_open
                    and (
                        (first and not self.flushing and not self.buffer)
                        or supervisor.in_supervisor()  # A connect callback.
                    )
                ):
                    if receipt is None:
                        receipt = SendReceipt(message, 0.0, None, key)
                        self._check_size(receipt)
                    await self._write(conn, receipt)
                    return receipt
                now = anyio.current_time()
                if receipt is None:
                    receipt = self._new_receipt(message, key, now)
                    if self.block_timeout is not None:
                        deadline = now + self.block_timeout
                shrank = self._shrank.version
                expired = receipt.expires_at is not None and receipt.expires_at <= now
                if first or expired:  # Else queued behind others: no offer.
                    offer = self.buffer.offer(receipt, now)
                    self._settled(offer.evicted)
                    admission = offer.admission
                    if admission is Admission.ACCEPTED:
                        self._update_stats()
                        self._wake_grew()
                        return receipt
                    if admission is Admission.DROPPED or admission is Admission.EXPIRED:
                        return receipt
                    if admission is Admission.TOO_LARGE:
                        raise ValueError(offer.error)
                    if admission is Admission.FULL:
                        raise BufferFull(offer.error or "the outbound buffer is full")
                # Admission.WAIT, or others wait already: wait in line.
                if supervisor.in_supervisor():
                    raise BufferFull(
                        "the outbound buffer is full and send() was called from "
                        "a callback, which cannot wait for room (the client "
                        "reconnects only once it returns): start a task for it"
                    )
                if deadline is not None and now >= deadline:
                    raise BufferFull(
                        f"the outbound buffer stayed full for buffer_timeout="
                        f"{self.block_timeout} s: the client is not connected, "
                        f"or sends faster than the link; raise the limits or "
                        f"the timeout"
                    )
                if ticket is None:
                    ticket = object()
                    self._blocked.append(ticket)
                with anyio.move_on_at(_earliest(deadline, receipt.expires_at)):
                    await self._shrank.wait(shrank)
        finally:
            if ticket is not None:
                self._blocked.remove(ticket)
                self._wake_shrank()  # The next in line may go now.

    async def wait_flushed(self, supervisor: Supervisor) -> None:
        """Wait until the buffer is empty and written; raise if the client stopped."""
        while self.buffer or self.flushing:
            self._check_running(supervisor)
            await self._shrank.wait(self._shrank.version)
        self._check_running(supervisor)

    # Public methods for the supervisor.

    async def flush_to(self, conn: Connection) -> None:
        """Write the buffer onto ``conn`` in order until empty or ``conn`` closes.

        Messages buffered meanwhile are written too: it returns with the
        buffer empty (unless ``conn`` closed), so that new messages can go
        straight to the connection without overtaking any.
        """
        buffer = self.buffer
        self.flushing = True
        try:
            while conn.is_open:
                # Writes are shielded (see write_grace): cancellation is
                # delivered here, between two messages.
                await anyio.lowlevel.checkpoint_if_cancelled()
                item, expired = buffer.pop(anyio.current_time())
                self._settled(expired)
                if item is None:
                    return
                self._wake_shrank()
                self._update_stats()
                await self._write(conn, item, shield=True)  # type: ignore[arg-type]
        finally:
            self.flushing = False
            self._update_stats()
            self._wake_shrank()

    def attach(
        self,
        conn: Connection,
        tg: TaskGroup,
        crashed: Callable[[Exception], None],
    ) -> None:
        """``conn`` is open and flushed: flush what joins the buffer from now on.

        A safety net rather than a task that waits: while nothing is
        buffered, senders write directly, so the buffer rarely grows while
        connected; when it does, a flusher task starts in ``tg`` and ends
        once the buffer is empty; what it raises (a bug) goes to
        ``crashed``. Call :meth:`detach` when ``conn`` ends.
        """
        self._attached = (conn, tg, crashed)
        self._start_flusher()

    async def detach(self) -> None:
        """The connection ended: stop the flusher, if one runs, and wait for it
        (a write in progress gets its ``write_grace``), so that closing the
        connection never overtakes it."""
        self._attached = None
        self.flushing = False
        flusher = self._flusher
        if flusher is not None:
            scope, done = flusher
            scope.cancel()
            await done.wait()

    async def expire(self) -> None:
        """Expire buffered messages on time, connected or not; runs until cancelled."""
        buffer = self.buffer
        if buffer.ttl is None:
            return
        grew = self._grew
        while True:
            version = grew.version
            at = buffer.next_expiry()
            # A message admitted late (its sender was blocked) may expire
            # before the earliest seen so far: look again when one joins.
            with anyio.move_on_at(math.inf if at is None else at):
                await grew.wait(version)
                continue
            self._settled(buffer.expire(anyio.current_time()))

    def stop(self, error: WSClientError) -> list[SendReceipt]:
        """The client stopped: settle every buffered message as DROPPED."""
        self.error = error
        items: list[Any] = self.buffer.drain()
        for item in items:
            item._end(Outcome.DROPPED)
        if items:
            self._discarded += len(items)
            logger.warning(
                "%d buffered messages were not sent before the client stopped "
                "(their receipts say DROPPED; see UndeliveredEvent)",
                len(items),
            )
        self._update_stats()
        self._wake_shrank()
        self._wake_grew()
        return items

    # Private methods.

    def _check_running(self, supervisor: Supervisor) -> None:
        supervisor.check_running()
        if self.error is not None:  # Stopped, the supervisor not quite yet.
            raise self.error

    def _new_receipt(
        self, message: Data, key: Hashable | None, now: float
    ) -> SendReceipt:
        data: object = message
        if not isinstance(data, str | bytes):
            # A bytearray or memoryview: the caller may reuse it.
            message = bytes(cast("bytearray", data))
        ttl = self.buffer.ttl
        receipt = SendReceipt(message, now, None if ttl is None else now + ttl, key)
        self._check_size(receipt)
        return receipt

    def _check_size(self, receipt: SendReceipt) -> None:
        """Refuse what the buffer could never hold, connected or not, so that
        whether a send fails does not depend on the state of the link."""
        if receipt.size > self.buffer.max_bytes:
            raise ValueError(
                f"message of {receipt.size} bytes exceeds buffer_max_bytes="
                f"{self.buffer.max_bytes}: send smaller messages or raise "
                f"buffer_max_bytes"
            )

    async def _write(
        self, conn: Connection, receipt: SendReceipt, *, shield: bool = False
    ) -> None:
        try:
            if shield:
                with anyio.CancelScope(shield=True) as scope:
                    scope.deadline = anyio.current_time() + self.write_grace
                    await conn.send(receipt.data)
                if scope.cancelled_caught:  # Cut mid-frame: the stream is corrupt.
                    await conn.abort()
                    raise ConnectionClosed(None, None)
            else:
                await conn.send(receipt.data)
        except BaseException as exc:
            self._interrupted(receipt, exc)
            if isinstance(exc, ConnectionClosed):
                return
            raise
        receipt._end(Outcome.WRITTEN)
        stats = self.stats
        stats.messages_out += 1
        stats.bytes_out += len(receipt.data)

    def _interrupted(self, receipt: SendReceipt, exc: BaseException) -> None:
        """Writing ``receipt`` failed with ``exc``: it may have left, or not.

        The connection closed (ConnectionClosed), or the sender was cancelled
        halfway: either way part of it may have reached the server.
        """
        if receipt.outcome is None:
            receipt._end(Outcome.POSSIBLY_LOST)
            self.stats.sends_interrupted += 1
        if isinstance(exc, ConnectionClosed):
            logger.debug("a message was sent as the connection closed; it may be lost")

    def _settled(self, items: list[Pending]) -> None:
        """The buffer settled ``items`` (expired, dropped, replaced)."""
        if not items:
            return
        for item in items:
            assert isinstance(item, SendReceipt)
            item._woken()
        self._update_stats()
        self._wake_shrank()  # Some may have left the buffer: room, or empty.

    def _update_stats(self) -> None:
        stats, buffer = self.stats, self.buffer
        stats.buffered = len(buffer)
        stats.buffered_bytes = buffer.bytes
        stats.buffer_dropped = buffer.dropped + self._discarded
        stats.buffer_expired = buffer.expired
        stats.buffer_replaced = buffer.replaced

    def _wake_grew(self) -> None:
        self._grew.fire()
        if self._attached is not None:
            self._start_flusher()

    def _wake_shrank(self) -> None:
        self._shrank.fire()

    def _start_flusher(self) -> None:
        """Start a task to flush the buffer onto the attached connection,
        unless one runs already, or a flush is under way, or nothing waits."""
        attached = self._attached
        if (
            attached is None
            or self._flusher is not None
            or self.flushing
            or not self.buffer
        ):
            return
        conn, tg, crashed = attached
        if not conn.is_open:
            return  # The next connection flushes it.
        self._flusher = flusher = (anyio.CancelScope(), Latch())
        tg.start_soon(self._flush, conn, flusher, crashed)

    async def _flush(
        self,
        conn: Connection,
        flusher: tuple[anyio.CancelScope, Latch],
        crashed: Callable[[Exception], None],
    ) -> None:
        scope, done = flusher
        try:
            with scope:
                await self.flush_to(conn)
        except Exception as exc:
            crashed(exc)
        finally:
            if self._flusher is flusher:
                self._flusher = None
            done.set()


def _earliest(a: float | None, b: float | None) -> float:
    if a is None:
        return float("inf") if b is None else b
    return a if b is None else min(a, b)


def make_sender(
    stats: Stats,
    *,
    max_messages: int,
    max_bytes: int,
    overflow: OverflowPolicy,
    timeout: float | None,
    ttl: float | None,
    write_grace: float,
) -> Sender:
    """The :class:`Sender` for the ``buffer_*`` options of a client, checked."""
    policies = {policy.value: policy for policy in Overflow}
    if overflow not in policies:
        raise ValueError(
            f"buffer_overflow must be one of {', '.join(map(repr, policies))}; "
            f"got {overflow!r}"
        )
    check_seconds("buffer_timeout", timeout, allow_none=True)
    check_seconds("buffer_ttl", ttl, allow_none=True)
    try:
        buffer = OutboundBuffer(
            max_messages=max_messages,
            max_bytes=max_bytes,
            overflow=policies[overflow],
            ttl=ttl,
        )
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"buffer_{exc}") from None  # max_messages -> buffer_...
    return Sender(buffer, stats, timeout, write_grace)


def check_key(key: object) -> None:
    """A coalescing key must be hashable: it is looked up among buffered ones."""
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            f"key must be hashable (a str, an int, a tuple...), got {key!r}"
        ) from None


def check_drain_timeout(value: object) -> float:
    """Validate the ``drain_timeout`` option of :class:`~wsclient.Client`."""
    check_seconds("drain_timeout", value, allow_none=False, zero=True)
    return float(value)  # type: ignore[arg-type]
