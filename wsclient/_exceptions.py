"""Every exception wsclient raises.

The tree::

    WSClientError             root: ``except wsclient.WSClientError`` catches all
    ├── ClientClosed          send() / iteration after close(); a RuntimeError too
    ├── ClientStopped         the client stopped for good; ``.failure`` says why
    │   ├── ConnectionRejected  a fatal failure per the classification table
    │   │   └── AuthenticationError  the server refused the credentials
    │   └── GaveUp              the stop strategy ran out; ``.attempts``, ``.downtime``
    ├── BufferFull            send() found the outbound buffer full (overflow "fail",
    │                         or "block" past ``buffer_timeout``)
    ├── PublishWindowFull     publish_nowait() with ``publish_window`` acks pending
    ├── SubscriptionError     refused by the server, or the queue overflowed
    └── MessagesLost          publications missed; ``.channel``, ``.first``, ``.last``

Bad arguments raise the builtin :exc:`TypeError` / :exc:`ValueError`, never one
of these, so that a programming error is not mistaken for a network condition.

Every exception raised because of another one is chained (``raise X from exc``)
so the websockets, anyio or OS error that caused it stays in the traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._core.failure import Failure
    from ._core.subscriptions import Gap

__all__ = [
    "AuthenticationError",
    "BufferFull",
    "ClientClosed",
    "ClientStopped",
    "ConnectionRejected",
    "GaveUp",
    "MessagesLost",
    "PublishWindowFull",
    "SubscriptionError",
    "WSClientError",
]


class WSClientError(Exception):
    """Base class of every exception raised by wsclient."""


class ClientClosed(WSClientError, RuntimeError):
    """The client was closed by the application; it cannot send or receive.

    This is a usage error, which is why it is also a :exc:`RuntimeError`: do not
    call :meth:`~wsclient.Client.send` after :meth:`~wsclient.Client.close`.
    """

    def __init__(self, message: str = "the client is closed") -> None:
        super().__init__(message)


class ClientStopped(WSClientError):
    """The client stopped reconnecting and will not recover on its own.

    Attributes:
        failure: What ended the last connection or connection attempt.
    """

    def __init__(self, message: str, failure: Failure | None = None) -> None:
        super().__init__(message)
        self.failure = failure


class ConnectionRejected(ClientStopped):
    """The server's answer is fatal: retrying would get the same answer.

    Raised for the outcomes that the classification table (or your
    ``classify`` hook) marks fatal: for example a 401, 403 or 404 at the
    handshake, close code 1008 (policy violation), or a TLS certificate that
    fails verification. The fields of :attr:`failure` (``status``, ``code``,
    ``reason``, ``headers``) say what the server answered.
    """


class AuthenticationError(ConnectionRejected):
    """The server refused the credentials: a 401 or 403 at the handshake, an
    authentication close code (1008, 4001, 4003...), or an error answer to
    first-message authentication.

    When the client can fetch fresh credentials (a URL provider, an
    ``additional_headers`` callable, an ``auth`` provider), it tries once
    more with them before raising this: a token may just have expired.
    Retrying further would only hammer the server with a bad token.
    """


class GaveUp(ClientStopped):
    """The reconnect policy's stop condition was reached.

    Attributes:
        attempts: Consecutive failed attempts when the client gave up.
        downtime: Seconds since the connection was last up (or since start).
    """

    def __init__(
        self, message: str, failure: Failure | None, attempts: int, downtime: float
    ) -> None:
        super().__init__(message, failure)
        self.attempts = attempts
        self.downtime = downtime


class BufferFull(WSClientError):
    """:meth:`~wsclient.Client.send` found the outbound buffer full.

    Raised under ``buffer_overflow="fail"``, and under ``"block"`` once
    ``buffer_timeout`` passed without room. The message was not buffered:
    nothing will send it. Retry later, or raise ``buffer_max_messages`` /
    ``buffer_max_bytes``.
    """


class PublishWindowFull(WSClientError):
    """:meth:`~wsclient.Client.publish_nowait` found the publish window full.

    ``publish_window`` publications await their ack already. Wait for the
    oldest receipt (``await receipt.wait()``) and try again, or use
    :meth:`~wsclient.Client.publish`, which waits for room.

    Attributes:
        window: The ``publish_window`` of the client.
    """

    def __init__(self, window: int) -> None:
        super().__init__(f"{window} publications await their ack (publish_window)")
        self.window = window


class SubscriptionError(WSClientError):
    """A subscription failed: the server refused it, or its queue overflowed.

    Raised by the subscription's iterator.

    Attributes:
        channel: The channel.
    """

    def __init__(self, message: str, channel: str) -> None:
        super().__init__(message)
        self.channel = channel


class MessagesLost(WSClientError):
    """Publications on a channel were missed and will not be delivered.

    Raised by a subscription's iterator (unless it asked for gap markers in
    the stream instead); iterating again goes on after the gap.

    Attributes:
        gap: The full description, with its reason.
        channel: The channel.
        first: Offset of the first message lost, when known.
        last: Offset of the last message lost, when known.
    """

    def __init__(self, gap: Gap) -> None:
        super().__init__(str(gap))
        self.gap = gap
        self.channel = gap.channel
        self.first = gap.first
        self.last = gap.last
