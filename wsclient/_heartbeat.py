"""Finding dead links fast, without mistaking a busy client for a dead server.

Three watchers, each optional, run beside an open connection:

- **keepalive**: a ping every ``ping_interval``, a pong expected within
  ``ping_timeout`` (websockets' names and meanings);
- **idle watchdog**: no frame at all for ``idle_timeout`` means the link is
  dead;
- **application heartbeat**: ``heartbeat_message`` sent every
  ``heartbeat_interval``; any frame received within ``heartbeat_timeout``
  counts as the answer, for servers and proxies that do not answer pings.

A watcher that finds the link dead aborts the TCP connection at once. That is
the difference with websockets' keepalive, which starts a closing handshake
with the dead peer and reports the connection closed only after
``close_timeout`` more: here a half-open link is reported within
``ping_interval + ping_timeout``.

Two situations look like a dead link and are not:

- **A slow consumer.** When the application stops reading, websockets' inbound
  queue fills up and it stops reading the socket (flow control, which keeps
  memory bounded), so the pong stays unread behind the queued messages. The
  same happens, briefly, behind a large backlog in the TCP buffers. A full
  queue, or messages still being read, prove that the server is sending, so
  while reading is paused or data flows, the deadline is postponed by
  another timeout. Memory stays bounded by ``max_queue``.
- **A blocked event loop.** A long synchronous call in the application
  freezes the loop; timers then fire late, all at once, possibly before the
  pong that sits in the socket buffer is processed. When a deadline fires
  late by more than a quarter of the timeout (at least 50 ms), the loop was
  blocked: the watcher grants one more timeout, logs a warning naming the
  stall, and if the link is dead after all, the disconnect event carries
  ``loop_blocked``.

The watchers run in the supervisor's task, not in tasks of their own, and
their every wait also ends when the connection closes: :meth:`Monitor.run`
returns then, and the supervisor moves on. An idle connection with one
watcher (the default keepalive) costs no task. Only when several watchers are
enabled do they get a task each.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, cast

import anyio

from ._transport.base import Connection, ConnectionClosed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._core.stats import Stats
    from ._options import Options

__all__ = ["Monitor"]

logger = logging.getLogger("wsclient")


class _Closed(Exception):
    """Internal: the connection closed while a watcher waited."""


def _lag_threshold(timeout: float) -> float:
    return max(0.05, timeout / 4)


class Monitor:
    """Watch one connection; abort it when a watcher finds it dead.

    Attributes:
        dead_reason: Why the connection was aborted; None if it was not.
        loop_blocked: How long the event loop was blocked, when a stall
            coincided with the timeout that declared the link dead.
    """

    # One per connection, for its life: slots, not a dict.
    __slots__ = ("conn", "dead_reason", "loop_blocked", "options", "stats")

    def __init__(self, conn: Connection, options: Options, stats: Stats) -> None:
        self.conn = conn
        self.options = options
        self.stats = stats
        self.dead_reason: str | None = None
        self.loop_blocked: float | None = None

    def run(self) -> Awaitable[None]:
        """Run the enabled watchers; return once the connection is closed.

        A watcher that finds the link dead aborts it, so this returns then
        too. Cancel the surrounding scope to stop watching; that is safe.

        With one watcher, the usual case, this is that watcher's coroutine,
        with no frame of its own: an idle client keeps every frame of the
        wait it sits in.
        """
        opts = self.options
        watchers: list[tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]] = []
        if opts.ping_interval is not None:
            args = (opts.ping_interval, opts.ping_timeout)
            watchers.append((self._keepalive, args))
        if opts.idle_timeout is not None:
            watchers.append((self._idle_watchdog, (opts.idle_timeout,)))
        if opts.heartbeat_interval is not None:
            args = (opts.heartbeat_interval, opts.heartbeat_timeout)
            watchers.append((self._app_heartbeat, args))
        if len(watchers) == 1:  # The usual case: in this task.
            watcher, args = watchers[0]
            if watcher == self._keepalive:  # The default: it guards itself.
                return self._keepalive(*args)
            return self._guard(watcher, args, until_closed=True)
        return self._run_all(watchers)

    async def _run_all(
        self, watchers: list[tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]]
    ) -> None:
        if watchers:
            async with anyio.create_task_group() as tg:
                for watcher in watchers:
                    tg.start_soon(self._guard, *watcher)
        # Every watcher ends once the connection is closed, or after aborting
        # it (then closed within a loop iteration or two).
        await self.conn.wait_closed()

    async def _guard(
        self,
        watcher: Callable[..., Awaitable[None]],
        args: tuple[Any, ...],
        until_closed: bool = False,
    ) -> None:
        """Run one watcher; nothing it raises may take the client down.

        A closed connection ends the watcher quietly (the supervisor is about
        to notice). Anything else is a bug: log it and drop the connection,
        so that the client reconnects with working watchers rather than go on
        unwatched.
        """
        try:
            await watcher(*args)
        except (ConnectionClosed, _Closed):
            pass
        except Exception:
            await self._watcher_failed(watcher.__name__)
        if until_closed:  # Then return once it is closed, as run() promises.
            await self.conn.wait_closed()

    async def _watcher_failed(self, name: str) -> None:
        """A watcher raised (a bug): log it and drop the connection, so that
        the client reconnects with working watchers rather than go on
        unwatched. Call it from the ``except`` block."""
        logger.error("the %s watcher failed", name, exc_info=True)
        await self._declare_dead(f"{name.strip('_')} watcher failed")

    # Watchers.

    async def _keepalive(self, interval: float, timeout: float | None) -> None:
        """Ping every ``interval``; declare the link dead if a pong is late.

        Returns once the connection is closed. It does :meth:`_guard`'s job
        itself: it is the only watcher of an idle client with the default
        options, which keeps every frame of the wait it sits in (one frame
        less, about 260 bytes per client).
        """
        conn = self.conn
        try:
            while True:
                # What _sleep_until() does, inline, for the same reason.
                deadline = anyio.current_time() + interval
                if await conn.wait_closed_until(deadline):
                    return
                self._record_lag(anyio.current_time() - deadline)
                if timeout is None:
                    await conn.ping()
                    continue
                progress = self._progress()
                pong_within = functools.partial(self._pong_within, waiter=[])
                if not await self._wait(pong_within, timeout, progress):
                    await self._declare_dead("keepalive ping timeout")
                    break
                self.stats.ping_rtt = conn.latency
        except (ConnectionClosed, _Closed):
            pass
        except Exception:
            await self._watcher_failed("_keepalive")
        await conn.wait_closed()  # Aborted: closed within an iteration or two.

    async def _pong_within(
        self, seconds: float, waiter: list[Callable[[], Awaitable[None]]]
    ) -> float | None:
        """Ping (once per ``waiter``) and wait for the pong up to ``seconds``.

        Returns None when the pong came, else how late the deadline fired.
        """
        deadline = anyio.current_time() + seconds
        with anyio.move_on_after(seconds):
            # The deadline covers sending the ping too: with a full send
            # buffer, a dead peer blocks the write itself.
            if not waiter:
                waiter.append(await self.conn.ping())
            await waiter[0]()
            # A pong processed after its deadline came late because the loop
            # was blocked: that is loop lag too.
            self._record_lag(anyio.current_time() - deadline)
            return None
        return anyio.current_time() - deadline

    async def _idle_watchdog(self, idle_timeout: float) -> None:
        conn = self.conn
        floor = 0.0

        async def frame_within(seconds: float) -> float | None:
            nonlocal floor
            deadline = max(conn.last_frame_at, floor) + seconds
            late = await self._sleep_until(deadline)
            if conn.last_frame_at + seconds > deadline:
                return None
            # If the deadline is postponed, the next wait lasts a full timeout.
            floor = anyio.current_time()
            return late

        while True:
            if not await self._wait(frame_within, idle_timeout, self._progress()):
                await self._declare_dead(f"idle timeout: no frame for {idle_timeout} s")
                return

    async def _app_heartbeat(self, interval: float, timeout: float) -> None:
        """Send every ``interval``; a data frame must follow within ``timeout``.

        Only data frames answer: a proxy that answers pings itself must not
        make a dead server look alive. Heartbeats go out on schedule whether
        or not the previous one was answered, so the period stays
        ``interval`` even when ``timeout`` is longer.
        """
        conn = self.conn
        unanswered: float | None = None  # When the oldest unanswered one left.
        progress = self._progress()
        next_send = anyio.current_time() + interval
        granted_for_lag = False
        while True:
            wake = (
                next_send
                if unanswered is None
                else min(next_send, unanswered + timeout)
            )
            late = await self._sleep_until(wake)
            now = anyio.current_time()
            if unanswered is not None and conn.last_data_at >= unanswered:
                unanswered, granted_for_lag = None, False
                self.loop_blocked = None
            if unanswered is not None and now >= unanswered + timeout:
                if conn.reading_paused or self._progress() != progress:
                    unanswered, progress = now, self._progress()  # Data flows.
                elif late >= _lag_threshold(timeout) and not granted_for_lag:
                    granted_for_lag = True
                    self._note_lag(late)
                    unanswered = now
                else:
                    await self._declare_dead("application heartbeat timeout")
                    return
            if now >= next_send:
                next_send = now + interval
                if not await self._send_heartbeat(timeout):
                    await self._declare_dead("application heartbeat send timed out")
                    return
                if unanswered is None:
                    unanswered, progress = now, self._progress()

    async def _send_heartbeat(self, timeout: float) -> bool:
        """Send one heartbeat; False if the send itself blocked for ``timeout``."""
        message = self.options.heartbeat_message
        try:
            data = message() if callable(message) else message
        except Exception:
            logger.error("heartbeat_message raised; skipping this beat", exc_info=True)
            return True
        if not isinstance(cast("object", data), str | bytes):
            logger.error("heartbeat_message returned %r, not str or bytes", data)
            return True
        with anyio.move_on_after(timeout):
            await self.conn.send(data)
            return True
        return False

    # Shared rules.

    async def _wait(
        self,
        attempt: Callable[[float], Awaitable[float | None]],
        timeout: float,
        progress: tuple[int, int],
    ) -> bool:
        """Wait for a sign of life with the slow-consumer and blocked-loop rules.

        ``attempt(seconds)`` waits up to ``seconds`` for a sign of life and
        returns None if it came, else how late the deadline fired.
        ``progress`` is :meth:`_progress` when the wait began.
        Returns False when the link must be declared dead.
        """
        granted_for_lag = False
        while True:
            late = await attempt(timeout)
            if late is None:
                self.loop_blocked = None  # Alive: an earlier stall is history.
                return True
            if self.conn.reading_paused or self._progress() != progress:
                # Data is flowing: the answer is queued behind messages that
                # the application has not read yet, or behind a backlog in
                # the TCP buffers (head-of-line blocking). Not dead.
                progress = self._progress()
                logger.debug("= data is flowing: postponing the heartbeat deadline")
                continue
            if late >= _lag_threshold(timeout) and not granted_for_lag:
                granted_for_lag = True
                self._note_lag(late)
                logger.warning(
                    "the event loop was blocked for %.3f s around a heartbeat "
                    "deadline; waiting %.3f s more before declaring the link dead",
                    late,
                    timeout,
                )
                continue
            return False

    def _progress(self) -> tuple[int, int]:
        """A snapshot that changes while data flows through the connection.

        Reading pauses (the inbound queue filled up) and messages read by the
        application: both are free to observe, unlike a per-frame timestamp.
        A dead link stops both within ``max_queue`` messages.
        """
        return self.conn.pauses, self.stats.messages_in

    async def _declare_dead(self, reason: str) -> None:
        self.dead_reason = reason
        self.stats.heartbeat_timeouts += 1
        if self.loop_blocked is not None:
            logger.warning(
                "%s after the event loop was blocked for %.3f s: the application "
                "may have stalled the loop; the server may be fine",
                reason,
                self.loop_blocked,
            )
        else:
            logger.warning("%s: dropping the connection", reason)
        await self.conn.abort()

    async def _sleep_until(self, deadline: float) -> float:
        """Sleep until ``deadline``; return how late the wake-up was, and
        record it: that is loop lag.

        Raises:
            _Closed: The connection closed first: stop watching.
        """
        if await self.conn.wait_closed_until(deadline):
            raise _Closed
        late = anyio.current_time() - deadline
        self._record_lag(late)
        return late

    def _record_lag(self, late: float) -> None:
        if late > self.stats.loop_lag_max:
            self.stats.loop_lag_max = late

    def _note_lag(self, late: float) -> None:
        self.loop_blocked = late
        self._record_lag(late)
