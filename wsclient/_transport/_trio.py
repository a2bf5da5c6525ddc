"""The trio backend: websockets.trio.client, adapted to :class:`Connection`."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, Self

import trio
import trio._util
from websockets.frames import DATA_OPCODES, Frame
from websockets.protocol import State
from websockets.trio.client import ClientConnection, connect

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

_OPEN = State.OPEN
"""An enum member read from a module global: the class attribute lookup
costs more than the rest of ``is_open``, which every direct send reads."""


class _Connection(ClientConnection, DropCounter, Receiving):
    """websockets' connection plus the few facts the heartbeat needs."""

    __slots__ = SLOTS  # See .base.SLOTS.

    def pause_reading(self) -> None:
        self.pauses += 1
        super().pause_reading()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pauses = 0
        self.last_frame_at = self.last_data_at = 0.0
        self.messages_dropped = 0
        self._closed_waiter: trio.lowlevel.Task | None = None
        super().__init__(*args, **kwargs)
        # Until the handshake response: every frame sent afterwards would
        # pay for the check (an extra coroutine per send).
        self.send_data = self._send_data_in_handshake  # type: ignore[method-assign]

    async def _send_data_in_handshake(self) -> None:
        await ClientConnection.send_data(self)
        if self.response is not None:
            # Back to websockets' method; another task may have done it
            # already. Not through __dict__: see receiving.Diversion.
            with contextlib.suppress(AttributeError):
                del self.send_data
        elif self.protocol.handshake_exc is not None:
            # An invalid handshake response: websockets would read and discard
            # whatever follows until the server hangs up, or open_timeout.
            await self.close_stream()

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
            await self.send_data()
            return
        except Exception as exc:
            if self.debug:
                self.logger.debug("! error while sending data", exc_info=True)
            self.set_connection_exc(exc)
        # As send_context(): the connection is unusable, end it.
        await self.close_stream()
        raise self.close_exc  # Caused by the error, as websockets raises it.

    def recv_now(self) -> Data | None:
        assembler = self.recv_messages
        return take_message(assembler, assembler.recv_frames._state.data)

    async def recv_next(self) -> Data:
        # get() of websockets 17 up to its first frame, then take_message():
        # see .receiving.
        assembler = self.recv_messages
        channel = assembler.recv_frames
        frames = channel._state.data
        # With a frame queued (the start of a fragmented message, since
        # recv_now() came first) or another reader, get() does it all.
        if not frames and not assembler.get_in_progress:
            assembler.get_in_progress = True
            try:
                frame = await channel.receive()
            except trio.EndOfChannel:
                raise EOFError("stream of frames ended") from None
            finally:
                assembler.get_in_progress = False
            frames.appendleft(frame)  # As get() puts frames back when cancelled.
            if (message := take_message(assembler, frames)) is not None:
                return message
        return await assembler.get()  # A fragmented message.

    def recv_queue(self) -> tuple[Any, deque[Frame]]:
        assembler = self.recv_messages
        # trio's channel has no peek: its deque, as websockets reads it.
        return assembler, assembler.recv_frames._state.data

    def diversion(self, take: Callable[[Data], bool]) -> Diversion:
        return Diversion(*self.recv_queue(), take)

    @property
    def reading_paused(self) -> bool:
        return self.recv_messages.paused

    @property
    def pending_messages(self) -> int:
        return int(self.recv_messages.recv_frames.statistics().current_buffer_used)

    async def abort(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def wait_closed_until(self, deadline: float) -> bool:
        # The heartbeat spends its life here. Rather than wait on the
        # stream_closed event (a frame and a parking lot more), the task
        # parks itself and close_stream() reschedules it.
        closed = self.stream_closed
        if closed.is_set():
            await trio.lowlevel.checkpoint()
            return True
        with trio.move_on_at(deadline):
            if self._closed_waiter is not None:  # Several watchers: one parks.
                await closed.wait()
            else:
                self._closed_waiter = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_closed_wait)
        return closed.is_set()

    def _abort_closed_wait(self, _: object) -> trio.lowlevel.Abort:
        self._closed_waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def stop_flow_control(self) -> None:
        assembler = self.recv_messages
        drop_beyond(
            assembler,
            assembler.high,
            lambda: len(assembler.send_frames._state.data),
            self,
        )
        assembler.high = None  # Never pause again.
        if assembler.paused:
            assembler.paused = False
            self.resume_reading()

    async def close_stream(self) -> None:
        await super().close_stream()
        waiter, self._closed_waiter = self._closed_waiter, None
        if waiter is not None:  # See wait_closed_until().
            trio.lowlevel.reschedule(waiter)
        # websockets 17.4: closing the assembler replaces its resume callback
        # with a no-op, so recv_events() waiting for flow control to resume
        # would wait forever and the connection's nursery would never exit.
        if self.recv_flow_control is not None:
            self.recv_flow_control.set()

    async def ping(self) -> Callable[[], Awaitable[None]]:  # type: ignore[override]
        # Set on close too (ack_on_close), so that the heartbeat waiting for
        # it learns of the close (asyncio's pong future fails then).
        pong = await super().ping(ack_on_close=True)

        async def wait_pong() -> None:
            await pong.wait()
            if self.protocol.state is State.CLOSED:
                raise self.protocol.close_exc

        return wait_pong

    def close_failure(self, reason_override: str | None = None) -> Any:
        return close_failure(self.protocol, reason_override)


class _TrackingConnection(_Connection):
    """Also records when each frame arrives, for the idle watchdog."""

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            self.last_frame_at = trio.current_time()
            if event.opcode in DATA_OPCODES:
                self.last_data_at = self.last_frame_at
        super().process_event(event)


class _Connect(StrictRedirects, connect):
    """websockets' connect, with :class:`StrictRedirects`."""


class open_connection:
    """:class:`Opening` of the trio backend.

    A class rather than an ``@asynccontextmanager``: an idle client keeps it
    for the life of the connection (see the asyncio backend). It keeps only
    what closing needs, not the options, nor websockets' ``connect``.

    Entering it opens the nursery for the connection's tasks, as
    websockets' ``connect`` does in ``__aenter__``, but before the attempt's
    cancel scope rather than within it (see :class:`Opening`).
    """

    __slots__ = ("_close_bound", "_factory", "_nursery", "_nursery_manager", "ws")

    def __init__(self, track_frames: bool) -> None:
        self._factory = _TrackingConnection if track_frames else _Connection
        self._close_bound = math.inf
        self._nursery_manager: Any = None
        self._nursery: trio.Nursery | None = None
        self.ws: _Connection | None = None

    async def connect(self, url: str, options: dict[str, Any]) -> Connection:
        assert self._nursery is not None, "enter it first"
        assert self.ws is None, "connect() is called once"
        self._close_bound = close_bound(options)
        try:
            # Constructing it parses the URL: InvalidURI is an attempt's failure.
            manager = _Connect(url, create_connection=self._factory, **options)
            ws = await manager.connect(self._nursery)
        except Exception as exc:
            raise ConnectFailed(failure_from_exception(exc)) from exc
        assert isinstance(ws, _Connection)
        ws.last_frame_at = ws.last_data_at = trio.current_time()
        forget_handshake(ws)
        self.ws = ws
        return ws

    async def __aenter__(self) -> Self:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        ws = self.ws
        try:
            if ws is not None and exc_type is None:
                # websockets bounds the closing handshake by close_timeout,
                # but not the write of the close frame: with a full send
                # buffer and a dead peer, that blocks. Bound the whole close;
                # cancelling it aborts.
                ws.stop_flow_control()
                with trio.move_on_after(self._close_bound):
                    await ws.aclose()
            elif ws is not None:
                # Cancelled or failing: no closing handshake (it could block
                # on a dead peer), as on asyncio.
                await ws.abort()
        except BaseException as exc:
            await self._exit_nursery(type(exc), exc, exc.__traceback__)
            raise
        # Closed by now, so this only waits for the connection's own tasks.
        await self._exit_nursery(exc_type, exc_value, traceback)

    async def _exit_nursery(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Exit the nursery; unwrap what it raises, as websockets' connect does
        (the connection's tasks catch and log their own errors)."""
        nursery_manager, self._nursery_manager = self._nursery_manager, None
        self._nursery = None
        try:
            await nursery_manager.__aexit__(exc_type, exc_value, traceback)
        except BaseExceptionGroup as group:
            # trio's private helper, as websockets 17.4 uses it here: the
            # one error, else one Cancelled; AssertionError if several.
            trio._util.raise_single_exception_from_group(group)
