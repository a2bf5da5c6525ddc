"""The asyncio backend: websockets.asyncio.client, adapted to :class:`Connection`."""

from __future__ import annotations

import asyncio
import functools
import math
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.lowlevel
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import DATA_OPCODES, Frame
from websockets.protocol import State

from .base import (
    SLOTS,
    ConnectFailed,
    Connection,
    StrictRedirects,
    failure_from_exception,
    forget_handshake,
)
from .closing import DropCounter, close_bound, close_failure, drop_beyond
from .receiving import Diversion, Receiving, take_message
from .sending import frame_now

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from websockets.typing import Data

__all__ = ["open_connection"]

try:
    # anyio finds the running backend with sniffio when it is installed.
    from sniffio import current_async_library_cvar as _library
except ImportError:  # pragma: no cover - then anyio asks asyncio itself.
    _library = None  # type: ignore[assignment]

_OPEN = State.OPEN
"""An enum member read from a module global: the class attribute lookup
costs more than the rest of ``is_open``, which every direct send reads."""


class _Connection(ClientConnection, DropCounter, Receiving):
    """websockets' connection plus the few facts the heartbeat needs."""

    __slots__ = (*SLOTS, "_diverting")  # See .base.SLOTS.

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pauses = 0
        self.last_frame_at = self.last_data_at = 0.0
        self.messages_dropped = 0
        self._closed_waiter: asyncio.Future[None] | None = None
        self._diverting = False  # Set once the router diverts messages.
        super().__init__(*args, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # websockets passes transport.pause_reading: count the pauses. A
        # bound method rather than a closure around it: half the memory.
        self.recv_messages.pause = self._pause_reading_and_count

    def _pause_reading_and_count(self) -> None:
        self.pauses += 1
        self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self._diverting and _library is not None:
            # Diverted messages are routed right here, outside any task,
            # where sniffio finds no library (it looks for the current task)
            # and anyio's calls would fail: tell it.
            token = _library.set("asyncio")
            try:
                super().data_received(data)
            finally:
                _library.reset(token)
        else:
            super().data_received(data)
        if self.protocol.handshake_exc is not None and self.response is None:
            # An invalid handshake response: websockets would read and discard
            # whatever follows until the server hangs up, or open_timeout.
            self.transport.abort()

    def origin(self) -> tuple[bool, str, int]:
        uri = self.protocol.uri
        return uri.secure, uri.host, uri.port

    @property
    def is_open(self) -> bool:
        return self.protocol.state is _OPEN

    async def send(self, message: Any, text: bool | None = None) -> None:
        # websockets' send() without send_context(): see .sending.
        if not frame_now(self, message, text):
            return await super().send(message, text=text)
        try:
            self.send_data()
            if self.paused or self.transport.is_closing():
                await self.drain()  # Only when it would wait or yield.
            return
        except Exception as exc:
            if self.debug:
                self.logger.debug("! error while sending data", exc_info=True)
            self.set_connection_exc(exc)
        # As send_context(): the connection is unusable, end it.
        self.transport.abort()
        await asyncio.shield(self.connection_lost_waiter)
        raise self.close_exc  # Caused by the error, as websockets raises it.

    def recv_now(self) -> Data | None:
        assembler = self.recv_messages
        return take_message(assembler, assembler.frames.queue)

    async def recv_next(self) -> Data:
        # get() of websockets 17 up to its first frame, then take_message():
        # see .receiving.
        assembler = self.recv_messages
        queue = assembler.frames
        frames = queue.queue
        # With a frame queued (the start of a fragmented message, since
        # recv_now() came first) or another reader, get() does it all.
        if not frames and not assembler.get_in_progress:
            assembler.get_in_progress = True
            try:
                frame = await queue.get(not assembler.closed)
            finally:
                assembler.get_in_progress = False
            frames.appendleft(frame)  # As get() puts frames back when cancelled.
            if (message := take_message(assembler, frames)) is not None:
                return message
        return await assembler.get()  # A fragmented message.

    def recv_queue(self) -> tuple[Any, deque[Frame]]:
        assembler = self.recv_messages
        return assembler, assembler.frames.queue

    def diversion(self, take: Callable[[Data], bool]) -> Diversion:
        self._diverting = True
        return Diversion(*self.recv_queue(), take)

    @property
    def reading_paused(self) -> bool:
        return self.recv_messages.paused

    @property
    def pending_messages(self) -> int:
        return len(self.recv_messages.frames)

    async def abort(self) -> None:
        self.transport.abort()

    async def wait_closed_until(self, deadline: float) -> bool:
        # Plain asyncio rather than anyio's move_on_at() around wait_closed():
        # the heartbeat spends its life here, and a cancel scope plus
        # wait_closed()'s shield future cost more than twice the memory. For
        # the same reason connection_lost() wakes the first waiter's future
        # itself (no callback, with its partial, on connection_lost_waiter).
        lost = self.connection_lost_waiter
        if lost.done():
            await anyio.lowlevel.checkpoint()
            return True
        wake = self.loop.create_future()
        on_lost = None
        if self._closed_waiter is None:
            self._closed_waiter = wake
        else:  # Several watchers: the others register a callback.
            on_lost = functools.partial(_wake, wake)
            lost.add_done_callback(on_lost)
        timer = self.loop.call_at(deadline, _wake, wake)
        try:
            await wake  # Cancelling the task cancels only this future.
        finally:
            timer.cancel()
            if on_lost is not None:
                lost.remove_done_callback(on_lost)
            elif self._closed_waiter is wake:
                self._closed_waiter = None
        return lost.done()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        waiter, self._closed_waiter = self._closed_waiter, None
        if waiter is not None:  # See wait_closed_until().
            _wake(waiter)

    async def ping(self) -> Callable[[], Awaitable[None]]:  # type: ignore[override]
        pong = await super().ping()

        async def wait_pong() -> None:
            # Shielded: a timed-out wait must not cancel the future, because
            # the heartbeat may wait for the same pong again (blocked loop).
            await asyncio.shield(pong)

        return wait_pong

    def stop_flow_control(self) -> None:
        assembler = self.recv_messages
        drop_beyond(
            assembler, assembler.high, lambda: len(assembler.frames.queue), self
        )
        assembler.high = None  # Never pause again.
        if assembler.paused:
            assembler.paused = False
            self.transport.resume_reading()

    def close_failure(self, reason_override: str | None = None) -> Any:
        return close_failure(self.protocol, reason_override)


def _wake(future: asyncio.Future[None], *_: object) -> None:
    if not future.done():
        future.set_result(None)


class _TrackingConnection(_Connection):
    """Also records when each frame arrives, for the idle watchdog."""

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            self.last_frame_at = self.loop.time()
            if event.opcode in DATA_OPCODES:
                self.last_data_at = self.last_frame_at
        super().process_event(event)


class _Connect(StrictRedirects, connect):
    """websockets' connect, with :class:`StrictRedirects`."""


class open_connection:
    """:class:`Opening` of the asyncio backend.

    A class rather than an ``@asynccontextmanager``: an idle client keeps it
    for the life of the connection, and a generator with its frame, its
    context manager and asyncio's weak reference to it cost three times more.
    It keeps only what closing needs, not the options.
    """

    __slots__ = ("_close_bound", "_factory", "ws")

    def __init__(self, track_frames: bool) -> None:
        self._factory = _TrackingConnection if track_frames else _Connection
        self._close_bound = math.inf
        self.ws: _Connection | None = None

    async def connect(self, url: str, options: dict[str, Any]) -> Connection:
        assert self.ws is None, "connect() is called once"
        self._close_bound = close_bound(options)
        try:
            ws = await _Connect(url, create_connection=self._factory, **options)
        except Exception as exc:
            raise ConnectFailed(failure_from_exception(exc)) from exc
        assert isinstance(ws, _Connection)
        ws.last_frame_at = ws.last_data_at = ws.loop.time()
        forget_handshake(ws)
        self.ws = ws
        return ws

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        ws = self.ws
        if ws is None:
            return
        if exc_type is not None:
            # Cancelled or failing: do not wait for a closing handshake, and
            # do not leave the transport open until garbage collection.
            ws.transport.abort()
            return
        try:
            # websockets bounds the closing handshake by close_timeout, but
            # not the write of the close frame: with a full send buffer and a
            # dead peer, that blocks. Bound the whole close, then abort.
            ws.stop_flow_control()
            with anyio.move_on_after(self._close_bound) as scope:
                await ws.close()
            if scope.cancelled_caught:
                ws.transport.abort()
        except BaseException:
            ws.transport.abort()
            raise
