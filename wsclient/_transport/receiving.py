"""Reading messages with one coroutine less than websockets' ``recv()``.

websockets' ``recv()`` is a thin coroutine around its message assembler's
``get()`` that translates the assembler's errors. On the client's hot paths
(``async for message in client``, the router's reader) that layer is a
coroutine per message on top of the client's own, about 3 % of the time per
small message: they call ``conn.recv_messages.get()`` directly and, when it
raises, :meth:`Receiving.recv_failed`, which does what ``recv()`` would
have done from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, Protocol, cast

from websockets.exceptions import ConcurrencyError, ConnectionClosed, TooManyFragments
from websockets.frames import CloseCode

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from websockets.protocol import Protocol as WebSocketsProtocol

__all__ = ["Receiving"]


class _WebSocketsConnection(Protocol):
    """What :meth:`Receiving.recv_failed` uses of websockets' connection."""

    @property
    def protocol(self) -> WebSocketsProtocol: ...

    @property
    def close_exc(self) -> ConnectionClosed: ...

    def set_connection_exc(self, exc: BaseException | None) -> None: ...

    def send_context(self) -> AbstractAsyncContextManager[None]: ...

    async def wait_closed(self) -> None: ...


class Receiving:
    """Mixin for websockets' connections (asyncio and trio alike).

    The code mirrors ``recv()`` of websockets 17 (``asyncio/connection.py``
    and ``trio/connection.py``, the same but for how they wait for the
    connection to close, which :meth:`wait_closed` hides). The paths
    other than a plain close are tested against real sockets: invalid UTF-8
    and too many fragments in ``tests/test_hostile.py``, two readers at
    once in ``tests/test_client.py``.
    """

    async def recv_failed(self, exc: Exception) -> NoReturn:
        """Finish a read whose ``recv_messages.get()`` raised ``exc``.

        Raises:
            ConnectionClosed: The connection is closed (or was just failed:
                too many fragments, invalid UTF-8), once it is.
            ConcurrencyError: Another task is reading.
        """
        ws = cast("_WebSocketsConnection", self)  # A mixin of theirs.
        if isinstance(exc, ConcurrencyError):
            raise ConcurrencyError(
                "cannot call recv while another coroutine "
                "is already running recv or recv_streaming"
            ) from None
        if isinstance(exc, TooManyFragments):
            ws.set_connection_exc(exc)
            async with ws.send_context():
                ws.protocol.fail(CloseCode.MESSAGE_TOO_BIG, "too many fragments")
        elif isinstance(exc, UnicodeDecodeError):
            ws.set_connection_exc(exc)
            async with ws.send_context():
                ws.protocol.fail(
                    CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}"
                )
        elif not isinstance(exc, EOFError):
            raise exc  # Not one get() documents: not ours to translate.
        await ws.wait_closed()
        raise ws.close_exc
