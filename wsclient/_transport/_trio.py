"""The trio backend: websockets.trio.client, adapted to :class:`Connection`."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
from websockets.frames import Frame
from websockets.trio.client import ClientConnection, connect

from .base import ConnectFailed, Connection, failure_from_exception
from .closing import close_failure

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["open_connection"]


class _Connection(ClientConnection):
    """websockets' connection plus the few facts the heartbeat needs."""

    pauses = 0
    last_frame_at = 0.0

    def pause_reading(self) -> None:
        self.pauses += 1
        super().pause_reading()

    @property
    def is_open(self) -> bool:
        return self.protocol.state.name == "OPEN"

    @property
    def reading_paused(self) -> bool:
        return self.recv_messages.paused

    @property
    def pending_messages(self) -> int:
        stats = self.recv_messages.recv_frames.statistics()
        return int(stats.current_buffer_used)

    async def abort(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def ping(self) -> Callable[[], Awaitable[None]]:  # type: ignore[override]
        pong = await super().ping()
        return pong.wait

    def close_failure(self, reason_override: str | None = None) -> Any:
        return close_failure(self.close_code, self.close_reason, reason_override)


class _TrackingConnection(_Connection):
    """Also records when each frame arrives, for the idle watchdog."""

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            self.last_frame_at = trio.current_time()
        super().process_event(event)


@asynccontextmanager
async def open_connection(
    url: str, options: dict[str, Any], track_frames: bool
) -> AsyncIterator[Connection]:
    """Open a connection; raise :exc:`ConnectFailed` if the attempt fails."""
    factory = _TrackingConnection if track_frames else _Connection
    manager = connect(url, create_connection=factory, **options)
    try:
        ws = await manager.__aenter__()
    except Exception as exc:
        raise ConnectFailed(failure_from_exception(exc)) from exc
    assert isinstance(ws, _Connection)
    ws.last_frame_at = trio.current_time()
    try:
        yield ws
    except BaseException as exc:
        await manager.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    else:
        await manager.__aexit__(None, None, None)
