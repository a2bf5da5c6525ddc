"""What the client needs from a backend, and the translation of its errors.

websockets' exceptions are the same classes on both backends, so translating
them into a :class:`~wsclient._core.failure.Failure` happens once, here.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from websockets.datastructures import Headers
from websockets.exceptions import (
    ConnectionClosed as ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from websockets.http11 import Response
from websockets.typing import Data as Data
from websockets.uri import parse_uri

from .._core.failure import Failure, FailureKind
from .._secrets import (
    REDACTED,
    header_items,
    is_sensitive_header,
    redact_text,
    redact_url,
    strip_sensitive,
)

if TYPE_CHECKING:
    from collections import deque
    from types import TracebackType

    from websockets.frames import Frame

    from .receiving import Diversion

__all__ = [
    "SLOTS",
    "ConnectFailed",
    "Connection",
    "ConnectionClosed",
    "Data",
    "Opener",
    "Opening",
    "StrictRedirects",
    "failure_from_exception",
    "forget_handshake",
]


SLOTS = (
    "_closed_waiter",
    "last_data_at",
    "last_frame_at",
    "messages_dropped",
    "pauses",
)
"""The attributes both backends add to websockets' connection, as slots.

On CPython 3.11, a class's instances keep their attributes inline (fast to
read) as long as the class has seen at most 30 attribute names; past that,
an instance that sets a name the class has not seen keeps all its attributes
in a dict, and every read of one costs about 18 ns more. websockets'
asyncio connection sets 26 names; ours, set later in a connection's life
(a pause, the heartbeat's wait, the router's diversion), would take the
rest in whatever order connections happened to set them, and then every
later connection setting another would read all its attributes from a
dict, websockets' own per-message reads included. Slots are not counted.
"""


class ConnectFailed(Exception):
    """Internal: an attempt to connect failed; ``failure`` says how."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


class Assembler(Protocol):
    """websockets' message assembler, as the client reads it."""

    async def get(self, decode: bool | None = None) -> Data:
        """Return the next message; raise what ``recv`` translates."""


class Connection(Protocol):
    """An open WebSocket connection, as the client drives it.

    These are websockets' connections, so the hot paths cost nothing over
    websockets: no wrapper frame, no queue hop, no copy. They skip even some
    of websockets' own layers: the readers take a message with
    :meth:`recv_now` if one is ready, else await :meth:`recv_next` and,
    if it raises, :meth:`recv_failed` (see :mod:`.receiving`); :meth:`send`
    frames and writes a str or bytes without websockets' ``send_context()``
    (see :mod:`.sending`).
    """

    def recv_queue(self) -> tuple[Any, deque[Frame]]:
        """websockets' assembler and its queue of frames, what :meth:`recv_now`
        reads: for a reader that calls :func:`.receiving.take_message` itself
        (one call less per message). Both live as long as the connection."""

    def diversion(self, take: Callable[[Data], bool]) -> Diversion:
        """A :class:`.receiving.Diversion` of this connection's messages to
        ``take()``, off until turned on; one per connection."""

    @property
    def recv_messages(self) -> Assembler:
        """websockets' assembler of received messages."""

    latency: float
    """Last ping round-trip time measured by websockets."""
    pauses: int
    """How many times inbound flow control paused reading (slow consumer)."""
    last_frame_at: float
    """Clock reading when the last frame arrived (maintained when tracking)."""
    last_data_at: float
    """Clock reading when the last data frame arrived (maintained when tracking)."""

    def recv_now(self) -> Data | None:
        """The next message if it is buffered, complete in one frame; else
        None: then await :meth:`recv_next`. Synchronous: it never waits, never
        yields (see :mod:`.receiving`).

        Raises:
            UnicodeDecodeError: Pass it to :meth:`recv_failed`.
        """

    async def recv_next(self) -> Data:
        """Await the next message, as ``recv_messages.get()`` would return it,
        but a message complete in one frame is decoded where it lies, as
        :meth:`recv_now` does (see :mod:`.receiving`). Call it once
        :meth:`recv_now` has returned None.

        Raises:
            Exception: What ``get()`` raises: pass it to :meth:`recv_failed`.
        """

    async def recv(self) -> Data:
        """Return the next message (websockets' own method)."""

    async def recv_failed(self, exc: Exception) -> NoReturn:
        """Finish a read whose :meth:`recv_next` raised ``exc``, as
        ``recv`` would: raise :exc:`ConnectionClosed` once closed."""

    async def send(self, message: Data | bytearray | memoryview) -> None:
        """Send one message, as websockets' own ``send()`` does (see
        :mod:`.sending`)."""

    @property
    def is_open(self) -> bool:
        """True while messages can be sent and received."""

    @property
    def reading_paused(self) -> bool:
        """True while the inbound queue is full and reading is paused."""

    @property
    def pending_messages(self) -> int:
        """Frames received and not read yet (approximately messages)."""

    async def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""

    async def ping(self) -> Callable[[], Awaitable[None]]:
        """Send a ping; return a coroutine function that waits for its pong."""

    async def wait_closed(self) -> None:
        """Return once the connection is closed."""

    async def wait_closed_until(self, deadline: float) -> bool:
        """Wait until the connection is closed or the clock reaches ``deadline``
        (``anyio.current_time()``); return True if it is closed.

        Cancelling it is safe.
        """

    messages_dropped: int
    """Messages dropped by :meth:`stop_flow_control` beyond ``max_queue``."""

    def origin(self) -> tuple[bool, str, int]:
        """``(secure, host, port)`` of the server connected to, after redirects."""

    def stop_flow_control(self) -> None:
        """Read freely from now on: the client is closing.

        With reading paused behind unread messages, the server's close frame
        would never be read and every close would wait ``close_timeout``.
        Messages beyond ``max_queue`` are dropped and counted meanwhile.
        """

    def close_failure(self, reason_override: str | None = None) -> Failure:
        """Describe how the (closed) connection ended."""


class Opening(Protocol):
    """One attempt's connection: ``async with`` it, then :meth:`connect`.

    Two steps rather than one ``async with``, so that the supervisor can
    connect within the attempt's cancel scope (``close()`` stops a handshake
    at once) and use the connection outside it (``close()`` then closes it
    gracefully): an open connection keeps no cancel scope of the client's.
    On trio, entering opens the nursery that the connection's tasks run in,
    which must outlive any cancel scope entered after it.
    """

    async def connect(self, url: str, options: dict[str, Any]) -> Connection:
        """Open the connection; raise :exc:`ConnectFailed` if the attempt fails.

        Call it once. Cancelling it leaves nothing open.
        """

    async def __aenter__(self) -> Opening:
        """Get ready to connect."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the connection, if :meth:`connect` opened one: gracefully
        (bounded by ``close_timeout``), or at once if the block raised or was
        cancelled."""


Opener = Callable[[bool], Opening]
"""``opener(track_frames)`` → an :class:`Opening`."""


_SWITCHED = Response(101, "Switching Protocols", Headers())
"""Stands for every handshake response once the handshake is over."""


def forget_handshake(ws: Any) -> None:
    """Drop the handshake's request and response from an open connection.

    websockets keeps both for the life of the connection, though it never
    reads them again (the response only stands for "answered"): about
    2.8 KiB of headers per connection, credentials included, which an idle
    client does not need to keep.

    Dropping the reference is not enough for the response: websockets'
    parser (a generator, suspended for the life of the connection in the
    frame that parsed it) keeps it too, so its headers are emptied in place.
    """
    response = ws.response
    if response is not None and response is not _SWITCHED:
        response.headers.clear()
    ws.request = None
    ws.response = _SWITCHED


class StrictRedirects:
    """Mixin for websockets' ``connect``: redirects never carry credentials
    to another origin.

    websockets already refuses a redirect from wss:// to ws:// and drops
    ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` on a
    cross-origin redirect; this drops every header that looks like a
    credential (``X-Api-Key``, ``X-Auth-Token``...) too.
    """

    additional_headers: Any
    ws_uri: Any

    def process_redirect(self, exc: Exception) -> Exception | str:
        old = self.ws_uri
        result: Exception | str = super().process_redirect(exc)  # type: ignore[misc]
        if isinstance(result, str) and self.additional_headers is not None:
            new = parse_uri(result)
            if (old.secure, old.host, old.port) != (new.secure, new.host, new.port):
                items = header_items(self.additional_headers)
                self.additional_headers = Headers(strip_sensitive(items))
        return result


def scrub(exc: BaseException) -> None:
    """Redact URLs in the messages of ``exc`` and its causes, in place.

    websockets' ``InvalidURI`` prints the whole URI and redirect errors print
    the new one: a token in the query would reach a traceback or a log.
    """
    for cause in _causes(exc):
        if isinstance(cause, InvalidURI):
            cause.uri = redact_url(cause.uri)
        proxy = getattr(cause, "proxy", None)  # InvalidProxy prints it.
        if isinstance(proxy, str):
            cause.proxy = redact_url(proxy)  # type: ignore[attr-defined]
        if isinstance(cause, UnicodeDecodeError | UnicodeEncodeError):
            # Decoding a percent-encoded password: the bytes are the password.
            empty: Any = b"" if isinstance(cause, UnicodeDecodeError) else ""
            cause.object, cause.start, cause.end = empty, 0, 0
            cause.args = (cause.encoding, empty, 0, 0, cause.reason)
        if isinstance(cause, InvalidStatus):  # Its repr shows the headers.
            response = cause.response
            response.headers = Headers(
                (k, REDACTED if _secret_response_header(k) else v)
                for k, v in response.headers.raw_items()
            )
        if any(isinstance(arg, str) and "://" in arg for arg in cause.args):
            cause.args = tuple(
                redact_text(arg) if isinstance(arg, str) else arg for arg in cause.args
            )


def failure_from_exception(exc: BaseException) -> Failure:
    """Translate an exception raised while connecting into a :class:`Failure`.

    Secrets in the exception's messages are redacted first (see :func:`scrub`),
    and so are credential headers of the response (``Set-Cookie``).
    """
    scrub(exc)
    reason = str(exc)
    if isinstance(exc, InvalidStatus):
        response = exc.response
        headers = {
            k.lower(): REDACTED if _secret_response_header(k) else v
            for k, v in response.headers.raw_items()
        }
        return Failure(
            FailureKind.STATUS,
            status=response.status_code,
            reason=response.reason_phrase,
            headers=headers,
            error=exc,
            during_handshake=True,
        )
    kind = _kind_of(exc)
    if kind is FailureKind.REFUSED:  # The same words on both backends.
        reason = "connection refused"
    elif kind is FailureKind.TLS_VERIFY or kind is FailureKind.TLS:
        # trio raises an empty BrokenResourceError caused by the SSL error:
        # say what the SSL error says (an unknown CA, a host name mismatch).
        reason = next(
            (str(c) for c in _causes(exc) if isinstance(c, ssl.SSLError)), reason
        )
    return Failure(kind, reason=reason, error=exc, during_handshake=True)


def _secret_response_header(name: str) -> bool:
    # WWW-Authenticate says why credentials were refused, and holds none.
    return is_sensitive_header(name) and name.lower() != "www-authenticate"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and what caused it, depth first.

    trio wraps TLS errors in BrokenResourceError and connection errors in an
    OSError caused by an ExceptionGroup of one error per address tried.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(reversed(current.exceptions))
        cause = current.__cause__ or current.__context__
        if cause is not None:
            stack.append(cause)


def _kind_of(exc: BaseException) -> FailureKind:
    # The whole chain first: trio raises BrokenResourceError from an ssl error
    # and a plain OSError from ConnectionRefusedError. Order matters:
    # SSLCertVerificationError is an SSLError, which is an OSError.
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FailureKind.TLS_VERIFY
        if isinstance(cause, ssl.SSLError):
            return FailureKind.TLS
        if isinstance(cause, socket.gaierror):
            return FailureKind.DNS
        if isinstance(cause, ConnectionRefusedError):
            return FailureKind.REFUSED
    if isinstance(exc, TimeoutError):
        return FailureKind.TIMEOUT
    if isinstance(exc, InvalidURI):
        return FailureKind.INVALID_URL
    if isinstance(exc, NegotiationError):
        return FailureKind.NEGOTIATION
    if isinstance(exc, InvalidHandshake):
        if any(isinstance(c, OSError | EOFError) for c in _causes(exc)):
            return FailureKind.RESET
        return FailureKind.HANDSHAKE
    if isinstance(exc, OSError | EOFError) or type(exc).__name__ in _BROKEN:
        return FailureKind.RESET
    if isinstance(exc, ConnectionClosed):
        # The peer went away while the handshake was being written (trio's
        # websockets raises this from send_context): a reset, retried.
        return FailureKind.RESET
    return FailureKind.ERROR


# trio's stream errors, matched by name so that this module imports no backend.
_BROKEN = frozenset({"BrokenResourceError", "ClosedResourceError"})
