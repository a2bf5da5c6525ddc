"""The one task that connects, watches, and reconnects: the client's engine.

Its loop follows websockets' ``connect.__aiter__`` (try, classify, ask the
policy for a delay, sleep, retry) with two differences that matter for bots
that run for days: the backoff resets only after a connection stayed up for
``stable_after`` seconds, and *every* end of a connection (not only a failed
handshake) goes through the backoff gate.

The application's consumer never goes through this task: it reads the open
connection directly (see :meth:`Client.__anext__`). This task only learns that
the connection ended, decides what comes next, and tells everyone.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio
from websockets.uri import parse_uri

from ._core.backoff import ReconnectPolicy
from ._core.classify import Verdict, classify
from ._core.events import ConnectEvent, DisconnectEvent, GiveUpEvent, ReconnectEvent
from ._core.failure import Failure, FailureKind
from ._core.state import ClientState, check_transition
from ._exceptions import (
    AuthenticationError,
    ClientClosed,
    ClientStopped,
    ConnectionRejected,
    GaveUp,
)
from ._heartbeat import Monitor
from ._latch import Latch
from ._secrets import redact_text
from ._sending import UndeliveredEvent
from ._signal import Signal
from ._transport.auto import get_opener
from ._transport.base import ConnectFailed, Connection, Opening, scrub
from ._urls import UrlRotation, redact_url

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._callbacks import Callbacks
    from ._core.stats import Stats
    from ._options import Options
    from ._outbox import PublishReceipt
    from ._router import Router
    from ._sending import Sender

__all__ = ["CALLBACK_GRACE", "MAX_UNDRAINED", "Supervisor"]

logger = logging.getLogger("wsclient")

MAX_UNDRAINED = 8
"""Closed connections whose unread messages are kept for the consumer.

A consumer that lags behind several reconnects still reads every message, in
order: each connection's queue is bounded by ``max_queue``, so this bounds
memory. Beyond it, the oldest connection's unread messages are dropped,
counted in :attr:`Stats.messages_dropped` and logged.
"""


CALLBACK_GRACE = 1.0
"""Seconds ``on_undelivered`` callbacks may take when the client is unwinding
(its ``async with`` block raised or was cancelled): long enough to log or
persist what was not sent, short enough not to hold up the exit."""


class Supervisor:
    """Connection lifecycle of one client: state, policy, current connection."""

    def __init__(
        self,
        urls: UrlRotation,
        options: Options,
        callbacks: Callbacks,
        stats: Stats,
        router: Router | None,
        sender: Sender,
    ) -> None:
        self.urls = urls
        self.router = router
        self.sender = sender
        self.options = options
        self.callbacks = callbacks
        self.stats = stats
        self.state = ClientState.IDLE
        self.error: ClientStopped | None = None
        """Why the client stopped, when it stopped on its own."""
        self.conn: Connection | None = None
        """The open connection, while CONNECTED."""
        self.undrained: list[Connection] = []
        """Connections the consumer has not finished reading, oldest first
        (at most MAX_UNDRAINED + 1: a list, lighter than a deque)."""
        self.reading: Connection | None = None
        """The connection the consumer reads now (set by the client)."""
        self.url = ""
        self.undelivered: UndeliveredEvent | None = None
        """What was left undelivered, once the client stopped."""
        self.policy = ReconnectPolicy(
            options.wait_strategy(), options.stop_strategy(), options.stable_after
        )
        # Latches and a Signal, not anyio Events: an idle client must not
        # pay for events that nobody awaits (see Latch).
        self.close_requested = Latch()
        self.stopped = Latch()
        self._changed = Signal()
        self.task_group: TaskGroup | None = None
        """The client's task group, set before :meth:`run` starts: the task
        that readies a connection and the flusher run there."""
        self._attempt_scope: anyio.CancelScope | None = None
        """Cancelled by close(): the attempt, the backoff, or the connection."""
        self._setup_scope: anyio.CancelScope | None = None
        """Cancelled by close() too: readying a connection, when it runs in
        the client's task group (see :meth:`_connected`)."""
        self._setup_task_id: int | None = None
        """The task that readies a new connection (connect callbacks, flush)."""
        self._task_error: Exception | None = None
        """What that task or the flusher raised (a bug), for this task to
        raise: as if they ran in a task group of its own."""
        self._auth_retried = False
        self._reached = False
        """Whether the last connection was reported connected."""
        self._stable = False
        """Whether it then stayed up for ``stable_after``."""
        self._lost_at = 0.0
        """When the watcher found the last connection closed: the backoff
        counts from then, so that tearing it down (draining the reader,
        callbacks) overlaps the delay instead of adding to the downtime."""
        self._task_id: int | None = None
        self._opener = get_opener()
        self._credentials_fixed = options.credentials_fixed(not urls.is_provider)
        """Checked once and for all at construction (see Options)."""

    # Public methods for the client.

    def request_close(self) -> None:
        """Stop now if connecting or backing off, gracefully if connected."""
        self.close_requested.set()
        if self._attempt_scope is not None:
            # Connecting, backing off: stop at once. Connected: stop watching
            # and readying the connection, which then closes gracefully.
            self._attempt_scope.cancel()
        if self._setup_scope is not None:
            self._setup_scope.cancel()
        if self.state is ClientState.IDLE:
            self._set_state(ClientState.CLOSED)
            self.stopped.set()

    def check_running(self) -> None:
        """Raise why the client no longer runs: its error, or ClientClosed."""
        if self.error is not None:
            raise self.error
        if self.close_requested.is_set() or self.stopped.is_set():
            raise ClientClosed()

    def in_supervisor(self) -> bool:
        """True when called from the supervisor task (from a callback).

        close() called there must not wait for the very task that runs it.
        The connect callbacks run in the task that readies the connection
        (see :meth:`_connected`), which counts. A task id, not a context variable:
        tasks that a callback starts inherit its context but are not the
        supervisor.
        """
        task_id = anyio.get_current_task().id
        return task_id == self._task_id or task_id == self._setup_task_id

    async def wait_changed(self) -> None:
        """Wait for the next change of state (or of the connection).

        Call it right after looking at the state, with no checkpoint in
        between: a change made meanwhile would be missed.
        """
        await self._changed.wait(self._changed.version)

    async def run(self, started: anyio.Event) -> None:
        """The supervisor task. It never raises: failures become state.

        It sets ``started`` first. Not ``task_status``: start() keeps its
        machinery alive as long as the task runs (0.3 to 0.7 KiB per client).
        """
        self._task_id = anyio.get_current_task().id
        started.set()
        del started
        try:
            if self.sender.buffer.ttl is None:
                await self._loop()
            else:  # A task to expire messages on time, connected or not.
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self.sender.expire)
                    await self._loop()
                    tg.cancel_scope.cancel()
            undelivered = self._discard()
            if undelivered:
                await self.callbacks.fire("undelivered", undelivered)
        except Exception as exc:  # A bug: report it rather than hang the client.
            logger.error("the wsclient supervisor crashed", exc_info=True)
            while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]  # From the task group: the real error.
            failure = Failure(FailureKind.ERROR, reason=repr(exc), error=exc)
            self.error = ClientStopped(f"internal error: {exc!r}", failure)
        finally:
            if self.undelivered is None:  # Cancelled, or crashed.
                undelivered = self._discard()
                if undelivered:
                    # Unwinding: the callbacks still hear of it, briefly.
                    with anyio.move_on_after(CALLBACK_GRACE, shield=True):
                        await self.callbacks.fire("undelivered", undelivered)
            if self.state is not ClientState.CLOSED:
                self._set_state(ClientState.CLOSED)
            self.stopped.set()
            if self.router is not None:
                self.router.stop(self.error)
            self._notify()

    # Private methods.

    def _discard(self) -> UndeliveredEvent:
        """Settle what will never be delivered now; remember and return it."""
        error = self.error
        messages = self.sender.stop(ClientClosed() if error is None else error)
        publications: tuple[PublishReceipt, ...] = ()
        if self.router is not None:
            outbox = self.router.outbox
            publications = tuple(outbox.unacked.values())
            outbox.stop(error)  # Their receipts end before the event fires.
        self.undelivered = UndeliveredEvent(tuple(messages), publications, error)
        return self.undelivered

    def _set_state(self, state: ClientState) -> None:
        check_transition(self.state, state)
        self.state = state
        logger.debug("= client is %s", state.value)
        self._notify()

    def _notify(self) -> None:
        """Wake every task waiting in :meth:`wait_changed`."""
        self._changed.fire()

    async def _loop(self) -> None:
        # Each attempt inline (its end in _ended()): an idle client keeps
        # every frame of the wait it sits in, about 300 bytes each.
        attempts = 0  # Since the last connection, for events and providers.
        last: Failure | None = None
        down_at: float | None = None
        wake_at: float | None = None  # When to try again; at once at first.
        while not self.close_requested.is_set():
            attempts += 1
            # Connect and stay connected, until something ends it.
            failure: Failure | None
            monitor: Monitor | None = None
            async with self._opener(self.options.track_frames) as opening:
                opened = await self._open(opening, attempts, last, wake_at)
                if isinstance(opened, tuple):
                    # Out of the attempt's cancel scope: close() is graceful.
                    conn, url = opened
                    failure = self._redirected_away(url, conn)
                    if failure is None:
                        monitor = await self._connected(conn, attempts, down_at)
                else:
                    failure = opened  # Failed, or None: close() interrupted it.
            if monitor is not None:
                failure, monitor = self._ended(conn, monitor)
            if failure is None:  # close requested while connecting
                break
            if monitor is not None:  # the connection was up
                attempts = 0
                down_at = anyio.current_time()
            else:
                self.stats.failed_attempts += 1
            last = failure
            self.urls.failed()
            if self.close_requested.is_set():
                self._set_state(ClientState.CLOSED)
                await self._fire_disconnect(failure, monitor, None)
                break
            wake_at = await self._decide(failure, monitor)
            if wake_at is None or self.close_requested.is_set():
                return  # Gave up, or close() was called from a callback.

    def _ended(
        self, conn: Connection, monitor: Monitor
    ) -> tuple[Failure, Monitor | None]:
        """What ended a connection that opened, and its monitor if it counts
        as a connection (None: a failed attempt)."""
        if conn.messages_dropped:
            self.stats.messages_dropped += conn.messages_dropped
            logger.warning(
                "dropped %d messages received while closing, beyond max_queue",
                conn.messages_dropped,
            )
        router_failure = None if self.router is None else self.router.failure
        if router_failure is not None:
            # Credentials refused in a message: a failed attempt, not a
            # connection (it never became usable).
            return router_failure, None
        failure = conn.close_failure(monitor.dead_reason)
        # Lost before it was reported connected: a failed attempt.
        return failure, (monitor if self._reached else None)

    async def _open(
        self,
        opening: Opening,
        attempt: int,
        last: Failure | None,
        wake_at: float | None,
    ) -> tuple[Connection, str] | Failure | None:
        """Back off until ``wake_at``, then open a connection, or fail;
        close() stops either at once.

        Returns the connection and its URL, the failure, or None when close()
        interrupted it. The websockets options live only here: an idle client
        does not keep them. The backoff runs in the attempt's cancel scope:
        one scope per reconnection rather than two, entered and left on a CPU
        that the backoff let go cold (about 0.1 ms here).
        """
        try:
            with anyio.CancelScope() as self._attempt_scope:
                if self.close_requested.is_set():
                    self._attempt_scope.cancel()
                if wake_at is not None:
                    await anyio.sleep_until(wake_at)
                self._set_state(ClientState.CONNECTING)
                try:
                    url = await self.urls.url_for(attempt, last)
                except (TypeError, ValueError) as exc:
                    return Failure(FailureKind.INVALID_URL, reason=str(exc), error=exc)
                except Exception as exc:
                    scrub(exc)  # Token services name URLs with client_secret=...
                    reason = f"url provider raised {redact_text(repr(exc))}"
                    return Failure(FailureKind.ERROR, reason=reason, error=exc)
                try:
                    options = await self.options.websockets_options_now()
                except Exception as exc:
                    scrub(exc)
                    reason = "the additional_headers callable raised "
                    reason += redact_text(repr(exc))
                    return Failure(FailureKind.ERROR, reason=reason, error=exc)
                insecure = (
                    None
                    if self._credentials_fixed
                    else self.options.insecure_credentials(url, options)
                )
                if insecure is not None:
                    return Failure(FailureKind.INSECURE, reason=insecure)
                self.url = redact_url(url)
                try:
                    conn = await opening.connect(url, options)
                except ConnectFailed as exc:
                    return exc.failure
                return conn, url
            return None
        finally:
            self._attempt_scope = None  # Over: close() has nothing to stop here.

    async def _connected(
        self, conn: Connection, attempt: int, down_at: float | None
    ) -> Monitor:
        """Run one open connection until it closes or close() is requested.

        The connection counts (stats, the backoff's stability clock) once
        authenticated: one whose credentials were refused is a failed attempt.

        This task watches the connection (the heartbeat) until it closes; a
        short-lived task readies it meanwhile (resubscribe, connect
        callbacks, flush), so that a dead link is found even while a
        callback or the flush is stuck. An idle connection costs no task of
        its own: thousands of idle clients fit in one process. Without a
        router, it costs no task group either (the readying task and the
        flusher run in the client's, see :meth:`_ready_apart`), and a single
        cancel scope, the one close() cancels.
        """
        self.stats.ping_rtt = None  # A round trip of this connection, not the last.
        self._reached = self._stable = False
        monitor = Monitor(conn, self.options, self.stats)
        up_at: list[float] = []  # When it was counted as connected, if it was.
        ready = Latch()  # Built only if the connection closes while readying.
        try:
            if self.router is not None:
                await self._watch_routed(conn, monitor, attempt, down_at, ready, up_at)
            else:
                # No task group of its own (it would cost more than the rest
                # of an idle connection): the readying task runs in the
                # client's, in a scope that close() cancels along with this
                # one. That scope is not kept in a local: once entered, a
                # scope refers to its parent, the task's, which would outlive
                # the task.
                assert self.task_group is not None
                self._setup_scope = anyio.CancelScope()
                with anyio.CancelScope() as self._attempt_scope:
                    if self.close_requested.is_set():
                        self._attempt_scope.cancel()
                        self._setup_scope.cancel()
                    self.task_group.start_soon(
                        self._ready_apart, conn, attempt, down_at, ready, up_at
                    )
                    await monitor.run()  # Until the connection is closed.
                self._lost_at = anyio.current_time()
                # Its callbacks end first: a disconnect never overtakes them.
                await ready.wait()
        finally:
            if self._setup_scope is not None:  # This failed or was cancelled.
                self._setup_scope.cancel()
            self._attempt_scope = None
            self.conn = None
            await self.sender.detach()
        error, self._task_error = self._task_error, None
        if error is not None:
            raise error
        if up_at:
            self.stats.disconnects += 1
            uptime = anyio.current_time() - up_at[0]
            self._reached, self._stable = True, uptime >= self.options.stable_after
        return monitor

    async def _watch_routed(
        self,
        conn: Connection,
        monitor: Monitor,
        attempt: int,
        down_at: float | None,
        ready: Latch,
        up_at: list[float],
    ) -> None:
        """Watch a connection with a router: its reader needs a task group."""
        async with anyio.create_task_group() as tg:
            self._attempt_scope = tg.cancel_scope  # close(): graceful now.
            if self.close_requested.is_set():
                tg.cancel_scope.cancel()
            tg.start_soon(self._ready, conn, attempt, down_at, tg, ready, up_at)
            await monitor.run()  # Until the connection is closed.
            self._lost_at = anyio.current_time()
            # Its callbacks end first: a disconnect never overtakes them.
            await ready.wait()
            await self._hand_over(conn)
            tg.cancel_scope.cancel()  # The router's reader.

    async def _ready_apart(
        self,
        conn: Connection,
        attempt: int,
        down_at: float | None,
        ready: Latch,
        up_at: list[float],
    ) -> None:
        """:meth:`_ready` in the client's task group: what it raises (a bug)
        goes to the supervisor, as if it ran in the supervisor's own group."""
        scope = self._setup_scope
        assert scope is not None
        try:
            with scope:
                await self._ready(conn, attempt, down_at, None, ready, up_at)
        except Exception as exc:
            self._crashed(exc)
        finally:
            self._setup_scope = None

    def _crashed(self, exc: Exception) -> None:
        """A task of this connection hit a bug: stop watching, raise it here."""
        if self._task_error is None:
            self._task_error = exc
        if self._attempt_scope is not None:
            self._attempt_scope.cancel()

    async def _ready(
        self,
        conn: Connection,
        attempt: int,
        down_at: float | None,
        tg: TaskGroup | None,
        ready: Latch,
        up_at: list[float],
    ) -> None:
        """Ready a new connection for use, then end (its own task, see above).

        Resubscribe, count it, report CONNECTED, run the connect callbacks,
        write what was buffered; from then on, anything that joins the
        buffer is flushed by a task started on demand (see Sender.attach).
        """
        self._setup_task_id = anyio.get_current_task().id
        try:
            if self.router is not None:
                # Resubscribe before anyone can send or see CONNECTED.
                assert tg is not None
                await tg.start(self.router.serve, conn)
            else:
                self._keep_for_consumer(conn)
            now = anyio.current_time()
            reconnect = self.stats.connects > 0
            if self.router is None or self.router.failure is None:
                # Counted from here: after authentication, so that a slow
                # refusal never looks like a stable connection.
                self.policy.connected(now)
                up_at.append(now)
                self.stats.connects += 1
                if reconnect:
                    self.stats.reconnects += 1
            if not conn.is_open:  # Lost while resubscribing.
                return
            # Until the buffer is flushed, only the callbacks write directly
            # (a raw client re-authenticates or resubscribes there);
            # everyone else queues behind the buffer.
            self.sender.flushing = True
            self.conn = conn
            self._set_state(ClientState.CONNECTED)
            logger.info("connected to %s", self.url)
            connected = ConnectEvent(self.url, attempt, reconnect)
            try:
                await self.callbacks.fire("connect", connected)
                if reconnect:
                    downtime = now - (now if down_at is None else down_at)
                    back = ReconnectEvent(attempt, downtime, self.url)
                    await self.callbacks.fire("reconnect", back)
                # What was sent while disconnected, in order; then new sends
                # go straight to the connection.
                await self.sender.flush_to(conn)
            finally:
                self.sender.flushing = False
            assert self.task_group is not None
            self.sender.attach(conn, self.task_group, self._crashed)
        finally:
            self._setup_task_id = None
            ready.set()

    async def _hand_over(self, conn: Connection) -> None:
        """Let the router read what the closed connection received.

        With ``overflow="block"`` the reader waits for slow subscribers, for
        up to ``close_timeout`` (10 s if None). Past that, publications are
        left to recovery (resume from the last position delivered) and what
        is left is counted in :attr:`Stats.messages_dropped` and logged.
        """
        assert self.router is not None
        timeout = self.options.websockets.get("close_timeout", 10)
        with anyio.move_on_after(10.0 if timeout is None else float(timeout)):
            await self.router.drained()
            return
        left = conn.pending_messages
        if left:
            self.stats.messages_dropped += left
            logger.warning(
                "%d messages of a closed connection were not read in time; "
                "publications among them are recovered by the resume",
                left,
            )

    def _keep_for_consumer(self, conn: Connection) -> None:
        self.undrained.append(conn)
        if len(self.undrained) > MAX_UNDRAINED:
            # Never the one the consumer is reading: it will read it all.
            index = 1 if self.undrained[0] is self.reading else 0
            oldest = self.undrained[index]
            del self.undrained[index]
            lost = oldest.pending_messages
            if lost:
                self.stats.messages_dropped += lost
                logger.warning(
                    "dropped %d unread messages of a connection closed %d "
                    "reconnections ago: the application is not reading",
                    lost,
                    MAX_UNDRAINED,
                )

    def _redirected_away(self, url: str, conn: Connection) -> Failure | None:
        """Refuse a connection redirected to another origin when the first
        message would carry the token there (headers were stripped already)."""
        wsuri = parse_uri(url)
        if conn.origin() == (wsuri.secure, wsuri.host, wsuri.port):
            return None
        secure, host, port = conn.origin()
        self.url = f"{'wss' if secure else 'ws'}://{host}:{port}/"
        if self.router is None or self.router.auth is None:
            return None
        reason = (
            f"redirected to another origin ({self.url}): the auth token is not "
            "sent across origins; connect to it directly"
        )
        return Failure(FailureKind.INSECURE, reason=reason)

    def _may_refresh_credentials(self) -> bool:
        """Whether refused credentials deserve one more attempt: only once in
        a row, and only when the next attempt fetches them afresh."""
        return not self._auth_retried and (
            self.urls.is_provider
            or self.options.refreshes_credentials
            or (self.router is not None and callable(self.router.auth))
        )

    def _verdict(self, failure: Failure) -> Verdict:
        default = classify(failure, time.time())
        hook = self.options.classify
        if hook is None:
            return default
        try:
            verdict: object = hook(failure, default)
        except Exception:
            logger.error("the classify hook raised; using the default", exc_info=True)
            return default
        if not isinstance(verdict, Verdict):
            logger.error("the classify hook returned %r, not a Verdict", verdict)
            return default
        return verdict

    async def _decide(self, failure: Failure, monitor: Monitor | None) -> float | None:
        """Classify, ask the policy, report; return when to retry, None to stop."""
        if monitor is not None:
            self.stats.last_close_code = failure.code
            self.stats.last_close_reason = failure.reason
        verdict = self._verdict(failure)
        if monitor is not None and self._stable:
            # The credentials worked for a while: a refusal now (a token that
            # expired) deserves its one retry again. Not sooner: a server that
            # accepts the handshake and then closes with 4001 at once must not
            # get a retry per connection.
            self._auth_retried = False
        if verdict.auth and not verdict.retry and self._may_refresh_credentials():
            self._auth_retried = True
            logger.warning("%s: trying once more with fresh credentials", failure)
            verdict = Verdict.again(verdict.why, verdict.delay)
        decision = self.policy.next_delay(anyio.current_time(), verdict.delay)
        if not verdict.retry:
            why = f"{failure}: {verdict.why}" if verdict.why else str(failure)
            rejected = AuthenticationError if verdict.auth else ConnectionRejected
            error: ClientStopped = rejected(why, failure)
        elif decision.delay is None:
            error = GaveUp(
                f"gave up after {decision.attempt} attempts and "
                f"{decision.downtime:.1f} s of downtime; last failure: {failure}",
                failure,
                decision.attempt,
                decision.downtime,
            )
        else:
            # From the loss of a connection; from now after a failed attempt.
            since = self._lost_at if monitor is not None else anyio.current_time()
            wake_at = since + decision.delay
            self.stats.backoff_delay = decision.delay
            self._set_state(ClientState.BACKING_OFF)
            logger.info(
                "%s; reconnecting in %.2f s (attempt %d)",
                failure,
                decision.delay,
                decision.attempt,
            )
            await self._fire_disconnect(failure, monitor, decision.delay)
            return wake_at
        error.__cause__ = failure.error
        self.error = error
        logger.error("giving up: %s", error)
        self._set_state(ClientState.CLOSED)
        await self._fire_disconnect(failure, monitor, None)
        await self.callbacks.fire(
            "give_up", GiveUpEvent(error, decision.attempt, decision.downtime)
        )
        return None

    async def _fire_disconnect(
        self, failure: Failure, monitor: Monitor | None, delay: float | None
    ) -> None:
        event = DisconnectEvent(
            code=failure.code,
            reason=failure.reason,
            will_reconnect=delay is not None,
            delay=delay,
            failure=failure,
            was_connected=monitor is not None,
            loop_blocked=None if monitor is None else monitor.loop_blocked,
            error=self.error,
        )
        await self.callbacks.fire("disconnect", event)
