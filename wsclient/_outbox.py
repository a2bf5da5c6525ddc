"""Acknowledged publications, kept and resent until the server acks them.

Each publication gets a ``msg_id`` unique to the client (a random prefix and
a counter). It stays in the :class:`Outbox` of the client's router until the
server acknowledges it; on every new connection the router sends again,
in the original order and with the same ``msg_id``, every publication not
acknowledged yet. The server de-duplicates by ``msg_id``, so a publication
sent twice (its ack was lost with the connection) is published once:
at-least-once delivery by the client, exactly once in the channel.

The window (``publish_window``) bounds how many publications may wait for
their ack: it bounds memory and what must be resent after a reconnection.
"""

from __future__ import annotations

import collections
import itertools
import secrets
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ._core.buffer import Outcome
from ._exceptions import ClientClosed
from ._signal import Signal

if TYPE_CHECKING:
    from websockets.typing import Data

    from ._exceptions import WSClientError

__all__ = ["Outbox", "PublishReceipt", "PublishingAdapter", "check_window"]


class PublishingAdapter(Protocol):
    """A :class:`~wsclient.ProtocolAdapter` that also implements ``publish``."""

    def publish(self, channel: str, data: Any, msg_id: str, request_id: int) -> Data:
        """The message that publishes ``data`` on ``channel``."""
        ...


class PublishReceipt:
    """The fate of one acknowledged publication, from :meth:`Client.publish_nowait`.

    Attributes:
        channel: The channel.
        msg_id: The id the server de-duplicates by; the same on every resend.
        offset: The publication's offset in the channel once acknowledged,
            if the server gives one.
        duplicate: True if the server had already published it (the ack of an
            earlier send was lost with its connection).
    """

    def __init__(
        self, channel: str, data: Any, msg_id: str, request_id: int, message: Data
    ) -> None:
        self.channel = channel
        self.msg_id = msg_id
        self.offset: int | None = None
        self.duplicate = False
        self._data = data
        self._request_id = request_id
        """Unique to the client, so valid on every connection: the same
        ``message`` is sent again after a reconnection."""
        self._message = message
        self._error: WSClientError | None = None
        self._done = False
        self._event: anyio.Event | None = None
        """Made by the first wait() that must block: most are never awaited
        (or only once acked), and an event costs a microsecond."""
        self._link: object = None
        """The connection it was last sent on; None if never sent."""

    # Public attributes.

    @property
    def acked(self) -> bool:
        """True once the server acknowledged the publication."""
        return self._done and self._error is None

    @property
    def outcome(self) -> Outcome | None:
        """None while awaiting the ack, then ``ACKED``; if the client closed or
        stopped first, ``POSSIBLY_LOST`` when it had been sent (it may have
        reached the server) and ``DROPPED`` when it never was."""
        if not self._done:
            return None
        if self._error is None:
            return Outcome.ACKED
        return Outcome.DROPPED if self._link is None else Outcome.POSSIBLY_LOST

    # Public methods.

    async def wait(self) -> int | None:
        """Wait for the acknowledgement; return the offset (None if unknown).

        Cancelling it is safe: the publication stays in flight and is still
        resent after a reconnection until acknowledged.

        Raises:
            ClientClosed: The client was closed before the ack arrived.
            ClientStopped: The client stopped (fatal error or gave up) first.
            In both cases the publication may or may not have reached the
            server.
        """
        if not self._done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        # Already settled: no yield (a windowed publisher awaits receipts
        # that were mostly acked already; a loop iteration each halved it).
        if self._error is not None:
            raise self._error
        return self.offset

    # Private methods.

    def _ack(self, offset: int | None, duplicate: bool) -> None:
        self.offset, self.duplicate = offset, duplicate
        self._settle()

    def _fail(self, error: WSClientError) -> None:
        self._error = error
        self._settle()

    def _settle(self) -> None:
        self._done = True
        if self._event is not None:
            self._event.set()

    def __repr__(self) -> str:
        state = "acked" if self.acked else "failed" if self._done else "unacked"
        return f"<PublishReceipt {self.channel!r} {self.msg_id} {state}>"


class Outbox:
    """Publications awaiting their ack, oldest first: at most ``window``."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.unacked: dict[str, PublishReceipt] = {}
        self.error: WSClientError | None = None
        self.stopped = False
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)
        self._room = Signal()
        self._unsent: collections.deque[PublishReceipt] = collections.deque()
        """Added since the current connection sent the outbox, in order."""

    def full(self) -> bool:
        """Whether a new publication must wait for an ack."""
        return len(self.unacked) >= self.window

    def next_msg_id(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"

    def add(self, receipt: PublishReceipt) -> None:
        """Queue ``receipt``; the router's connection sends it soon."""
        assert not self.full()
        self.unacked[receipt.msg_id] = receipt
        self._unsent.append(receipt)

    def rewind(self) -> None:
        """A new connection: everything not acked is to be sent (again)."""
        self._unsent = collections.deque(self.unacked.values())

    def next_unsent(self, link: object) -> PublishReceipt | None:
        """The oldest publication to send on ``link``, in order; None if none.

        O(1) per publication (rather than a scan of the window per wake-up).
        """
        unsent = self._unsent
        while unsent:
            receipt = unsent.popleft()
            if not receipt._done and receipt._link is not link:
                return receipt
        return None

    def acked(self, receipt: PublishReceipt, offset: int | None, dup: bool) -> None:
        """The server acknowledged ``receipt``: make room for the next one."""
        if self.unacked.pop(receipt.msg_id, None) is None:
            return  # Already failed by stop().
        receipt._ack(offset, dup)
        self._wake()

    def stop(self, error: WSClientError | None) -> None:
        """The client stopped: fail every unacknowledged publication."""
        self.stopped = True
        self.error = error if error is not None else ClientClosed()
        for receipt in self.unacked.values():
            receipt._fail(self.error)
        self.unacked.clear()
        self._unsent.clear()
        self._wake()

    async def wait_room(self) -> None:
        """Wait until a publication fits; raise the client's error if stopped."""
        while True:
            version = self._room.version
            if self.error is not None:
                raise self.error
            if not self.full():
                return
            await self._room.wait(version)

    async def wait_acked(self) -> None:
        """Wait until no publication awaits its ack; raise if stopped first."""
        while self.unacked:
            await self._room.wait(self._room.version)
        if self.error is not None:
            raise self.error

    def _wake(self) -> None:
        self._room.fire()


def check_window(window: object) -> int:
    """Validate the ``publish_window`` option of :class:`~wsclient.Client`."""
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"publish_window must be an int >= 1, got {window!r}")
    if window < 1:
        raise ValueError(f"publish_window must be an int >= 1, got {window!r}")
    return window
