"""Reading messages without websockets' ``recv()`` coroutines when they are ready.

websockets' ``recv()`` is a coroutine around its message assembler's
``get()``, itself a coroutine around its queue of frames' ``get()``; then it
joins the message's frames into a new ``bytes`` (a copy, as a frame's
payload is a ``bytearray``) and decodes that. When a whole message is
already buffered, none of it waits: those three coroutines, the list of
frames and the join are about 0.6 us per message, a tenth of what reading a
small publication costs in all; a text message is decoded where it lies,
without the copy (a binary one is still copied to ``bytes``).

So the client's hot paths (``async for message in client``, the router's
reader) first call :func:`take_message` (through the connection's
``recv_now()``): it takes a message that is complete in one frame straight
off the queue, synchronously, doing what ``get()`` would do with it (flow
control, UTF-8 decoding). Else they await the connection's ``recv_next()``:
it does what ``get()`` does up to its first frame, puts that frame back and
takes the message as :func:`take_message` does (a large message always
arrives alone, and the copy is a twentieth of its cost on trio at 64 KiB);
only a fragmented message, or another reader, goes through ``get()``. When
either raises, :meth:`Receiving.recv_failed` does what ``recv()`` would
have done from there. Both raise the same errors for the same frames.
Taking a message is not a checkpoint: they go through one at least every
:data:`READY_STREAK` messages.

A reader that hands messages on to other tasks (the router) can also have
them as websockets receives them, before they are queued, while it waits
for the network: see :class:`Diversion`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, Protocol, cast

from websockets.exceptions import ConcurrencyError, ConnectionClosed, TooManyFragments
from websockets.frames import CloseCode, Opcode

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from websockets.frames import Frame
    from websockets.protocol import Protocol as WebSocketsProtocol
    from websockets.typing import Data

__all__ = ["READY_STREAK", "Diversion", "Receiving", "take_message"]

READY_STREAK = 64
"""Messages taken in a row without yielding, at most: then the reader goes
through a checkpoint even while more are ready (cancellation, other tasks'
turn; for the router, the time to wake the readers it put off). websockets'
``recv()`` is a checkpoint on trio, and on asyncio never yields while
messages are ready: this is between the two, on both."""

_TEXT = Opcode.TEXT
_CONT = Opcode.CONT


def take_message(assembler: Any, frames: deque[Frame]) -> Data | None:
    """Take the next message off websockets' ``assembler`` if it is ready.

    ``frames`` is the assembler's queue of frames (where it is depends on the
    backend). Returns None, having done nothing, unless the next message is
    complete in one frame and no ``get()`` is running: the caller then awaits
    the connection's ``recv_next()``. Otherwise does what ``get()`` would:
    takes the frame, resumes reading if flow control paused it and the queue
    went below its low mark, and returns the message, decoded if text.

    Raises:
        UnicodeDecodeError: A text frame holds invalid UTF-8 (as ``get()``;
            :meth:`Receiving.recv_failed` handles it).
    """
    if not frames or assembler.get_in_progress:
        return None
    frame = frames[0]
    if not frame.fin:
        return None  # The first of several frames: get() assembles them.
    frames.popleft()
    if assembler.paused:
        assembler.maybe_resume()
    data = frame.data
    if frame.opcode is _TEXT:
        # Decoded where it lies (a bytearray): get() copies it to bytes first.
        return str(data, "utf-8")
    return data if type(data) is bytes else bytes(data)


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
        """Finish a read whose ``recv_next()`` (or ``get()``) raised ``exc``.

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


class Diversion:
    """Hands each message to ``take()`` as websockets receives it, while on.

    A reader task waiting for websockets' next message costs a task switch
    per message that arrives alone (a large one always does: it takes
    several reads): websockets' reader puts the frame in its queue and wakes
    the task, which takes the message and hands it on, waking the task that
    was waiting for it: two switches, where websockets wakes a raw loop
    directly.

    While the reader task waits for the next message with nothing buffered,
    it turns this on: a message complete in one frame is then offered to
    ``take()`` where websockets receives it (the reading task on trio, the
    protocol's ``data_received()`` on asyncio), before it is queued. When
    ``take()`` returns True the message is consumed: it never reaches the
    queue. Otherwise the frame is queued as usual and the diversion turns
    off, so that nothing overtakes it: the reader task takes it (with
    whatever follows) and turns the diversion on again when it next waits
    with nothing buffered. That happens when ``take()`` returns False, for a
    fragmented message, invalid UTF-8 (``get()`` raises it, and the reader
    fails the connection), and after READY_STREAK messages taken: so a read
    of many small messages (up to 256 KiB on asyncio) is handed over rather
    than all routed in one go, and the reader task's checkpoints give other
    tasks (the consumers) their turn, as they do without a diversion.

    ``take()`` runs inside websockets' reader, synchronously: it must not
    raise (that ends the connection, as any error in websockets' reader).
    """

    __slots__ = ("_assembler", "_frames", "_hook", "_left", "_own", "_put", "_take")

    def __init__(
        self, assembler: Any, frames: deque[Frame], take: Callable[[Data], bool]
    ) -> None:
        self._assembler = assembler
        self._frames = frames  # Where the assembler queues them, as in take_message().
        self._take = take
        self._hook = self._put_or_take  # One bound method, set and unset.
        self._put: Callable[[Frame], None] = assembler.put
        self._own = True
        self._left = 0

    # Never through the assembler's __dict__: on CPython 3.11, reading an
    # instance's __dict__ turns its attributes into a dict for good, and every
    # attribute read on it costs about 18 ns more from then on (a few percent
    # of small messages' speed, counting websockets' own reads).

    def on(self) -> None:
        """Divert from now on; only while ``frames`` is empty."""
        assert not self._frames, "a frame queued would be overtaken"
        assembler = self._assembler
        self._put = put = assembler.put  # The class's, or someone else's wrapper.
        self._own = getattr(put, "__func__", None) is type(assembler).put
        assembler.put = self._hook  # websockets calls assembler.put(frame).
        self._left = READY_STREAK

    def off(self) -> None:
        """Queue every frame again."""
        assembler = self._assembler
        if assembler.put is self._hook:
            if self._own:
                del assembler.put  # The class's put again.
            else:
                assembler.put = self._put

    def _put_or_take(self, frame: Frame) -> None:
        if frame.fin and frame.opcode is not _CONT and self._left:
            data = frame.data
            message: Data | None
            if frame.opcode is _TEXT:
                try:
                    message = str(data, "utf-8")
                except UnicodeDecodeError:
                    message = None  # get() raises it; the reader fails the connection.
            else:
                message = data if type(data) is bytes else bytes(data)
            if message is not None and self._take(message):
                self._left -= 1
                return
        self.off()  # Nothing may overtake this frame.
        self._put(frame)
