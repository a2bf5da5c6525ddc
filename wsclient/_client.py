"""The public client: one logical connection over many real ones."""

from __future__ import annotations

import logging
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Self,
    TypeAlias,
    TypeVar,
    overload,
)

import anyio
from anyio.lowlevel import checkpoint
from websockets.http11 import USER_AGENT

from ._authenticating import check_auth
from ._callbacks import Callback, Callbacks, EventName
from ._core.state import ClientState
from ._core.stats import Stats
from ._exceptions import ClientClosed, WSClientError
from ._options import ClassifyHook, Options, check_seconds
from ._outbox import check_window
from ._publishing import PublishingMixin
from ._sending import (
    OverflowPolicy,
    SendReceipt,
    UndeliveredEvent,
    check_drain_timeout,
    check_key,
    make_sender,
)
from ._subscribing import check_adapter
from ._supervisor import Supervisor
from ._transport.base import Connection, ConnectionClosed, Data
from ._transport.receiving import READY_STREAK
from ._urls import UrlRotation, UrlSource

if TYPE_CHECKING:
    import ssl as ssl_module
    from collections.abc import (
        Awaitable,
        Callable,
        Coroutine,
        Hashable,
        Mapping,
        Sequence,
    )
    from types import TracebackType

    from ._adapters.base import ProtocolAdapter
    from ._authenticating import AuthSource
    from ._core.backoff import StopStrategy, WaitStrategy
    from ._router import Router

__all__ = ["Client"]

logger = logging.getLogger("wsclient")

_DATA_TYPES = (str, bytes, bytearray, memoryview)

C = TypeVar("C", bound=Callback)

HeadersLike: TypeAlias = "Mapping[str, str] | Sequence[tuple[str, str]]"


class Client(PublishingMixin):
    """One logical WebSocket connection that survives network faults.

    Use it as an async context manager; entering starts a supervisor task
    that connects, and reconnects with exponential backoff and jitter after
    every failure, until the block exits or :meth:`close` is called::

        async with wsclient.Client("wss://example.com/feed") as client:
            await client.send('{"op": "subscribe"}')
            async for message in client:
                ...

    Works under asyncio and trio (through anyio); the running library picks
    websockets' matching implementation.

    Args:
        url: A ``ws://`` or ``wss://`` URL; a list of them, tried in turn
            (the client moves to the next one after each failure); or a
            callable ``provider(attempt, last_failure)``, sync or async,
            called before every attempt, for short-lived tokens, service
            discovery or failover. ``attempt`` counts from 1 since the
            connection was last up; ``last_failure`` is a
            :class:`~wsclient.Failure` or None.
        on_connect: Callback for :class:`~wsclient.ConnectEvent`.
        on_disconnect: Callback for :class:`~wsclient.DisconnectEvent`.
        on_reconnect: Callback for :class:`~wsclient.ReconnectEvent`.
        on_give_up: Callback for :class:`~wsclient.GiveUpEvent`.
        on_undelivered: Callback for :class:`~wsclient.UndeliveredEvent`:
            messages and publications not delivered when the client closed
            or stopped.
        backoff_initial: Base delay before the first reconnection attempt.
        backoff_max: Cap of the base delay.
        backoff_multiplier: Growth of the base delay per consecutive failure.
        backoff_jitter: Randomised fraction of each delay (0 to 1); every
            delay is drawn from ``[base * (1 - jitter), base]``. After a
            connection was lost, the delay counts from when the loss was
            found (its teardown and callbacks overlap it); after a failed
            attempt, from the failure.
        max_attempts: Give up after this many consecutive failures.
        max_downtime: Give up after this many seconds without a stable
            connection.
        stable_after: Seconds a connection must stay up before the backoff
            resets. A server that accepts and drops at once keeps backing off.
        wait: Your own tenacity wait strategy; replaces the ``backoff_*``
            options.
        stop: Your own tenacity stop strategy; replaces ``max_attempts`` and
            ``max_downtime``.
        classify: ``classify(failure, default_verdict)`` → the
            :class:`~wsclient.Verdict` to apply: override the retry/fatal table.
        ping_interval: Seconds between keepalive pings; None disables them.
        ping_timeout: Seconds to wait for a pong; None waits forever.
        idle_timeout: Declare the link dead after this many seconds without
            any frame; None disables the watchdog.
        heartbeat_interval: Seconds between application-level heartbeat
            messages, for servers or proxies that do not answer pings.
        heartbeat_timeout: Seconds to wait for any frame after a heartbeat.
        heartbeat_message: The heartbeat message, or a callable returning it.
        heartbeat_reply: Predicate recognising heartbeat replies, which are
            then not yielded by ``async for``.
        protocol: The protocol adapter that maps subscriptions to the
            server's wire format (:class:`~wsclient.ReferenceProtocol`,
            :class:`~wsclient.ExchangeProtocol`, or your own). Subscribing on
            a client created without one selects ``ReferenceProtocol``.
        auth: First-message authentication: a token, or a callable (sync or
            async) returning one, called on every connection; the protocol
            adapter's ``authenticate()`` message carries it, first on every
            connection, and its answer is awaited before anything else.
        publish_window: Publications that may await their ack at once
            (:meth:`publish`, :meth:`publish_nowait`); they are kept, and
            resent after a reconnection, until acknowledged.
        buffer_max_messages: Most messages the outbound buffer holds (what
            :meth:`send` keeps while the client is not connected).
        buffer_max_bytes: Most bytes it holds (UTF-8 size for text).
        buffer_overflow: When a message does not fit: ``"block"`` (send()
            waits for room), ``"drop_oldest"``, ``"drop_newest"`` (the
            dropped receipt says ``DROPPED``), or ``"fail"`` (raise
            :exc:`~wsclient.BufferFull`).
        buffer_timeout: Under ``"block"``, seconds send() waits for room
            before raising :exc:`~wsclient.BufferFull`; None waits as long as
            it takes.
        buffer_ttl: Seconds a message may wait in the buffer before it
            expires unsent (receipt ``EXPIRED``); None keeps it until sent.
        drain_timeout: Seconds :meth:`close` spends delivering what is
            buffered or awaiting an ack (reconnecting if need be) before
            closing; what is left is reported, not sent. 0 closes at once.
        open_timeout: As in websockets: timeout of the opening handshake.
        close_timeout: As in websockets: timeout of the closing handshake.
        max_size: As in websockets: maximum size of incoming messages.
        max_queue: As in websockets: high-water mark of the inbound queue.
        additional_headers: As in websockets: extra handshake headers; or a
            callable (sync or async) returning them, called before every
            attempt, to send a fresh token each time.
        subprotocols: As in websockets: subprotocols to offer.
        compression: As in websockets: ``"deflate"`` or None.
        ssl: As in websockets: an :class:`ssl.SSLContext` for ``wss://``.
        proxy: As in websockets: True (system settings), None, or a URL.
        user_agent_header: As in websockets: the User-Agent header, or None.
        origin: As in websockets: the Origin header, or None.
        allow_insecure_credentials: Allow credentials (a token in the URL's
            query, ``user:password@``, an ``Authorization``, ``Cookie`` or
            other secret-looking header) over plain ``ws://`` to a host that
            is not this machine. Refused by default: anyone on the path could
            read them.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument has a wrong value.
    """

    def __init__(
        self,
        url: UrlSource,
        *,
        # Callbacks
        on_connect: Callback | None = None,
        on_disconnect: Callback | None = None,
        on_reconnect: Callback | None = None,
        on_give_up: Callback | None = None,
        on_undelivered: Callback | None = None,
        # Reconnection
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        backoff_multiplier: float = 2.0,
        backoff_jitter: float = 0.5,
        max_attempts: int | None = None,
        max_downtime: float | None = None,
        stable_after: float = 5.0,
        wait: WaitStrategy | None = None,
        stop: StopStrategy | None = None,
        classify: ClassifyHook | None = None,
        # Heartbeat
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        idle_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float | None = None,
        heartbeat_message: Data | Callable[[], Data] = '{"type": "ping"}',
        heartbeat_reply: Callable[[Data], bool] | None = None,
        # Subscriptions
        protocol: ProtocolAdapter | None = None,
        auth: AuthSource | None = None,
        publish_window: int = 100,
        # Outbound buffer
        buffer_max_messages: int = 1000,
        buffer_max_bytes: int = 2**20,
        buffer_overflow: OverflowPolicy = "block",
        buffer_timeout: float | None = None,
        buffer_ttl: float | None = None,
        drain_timeout: float = 5.0,
        # Timeouts (websockets)
        open_timeout: float | None = 10,
        close_timeout: float | None = 10,
        # Limits (websockets)
        max_size: int | tuple[int | None, int | None] | None = 2**20,
        max_queue: int | tuple[int | None, int | None] | None = 16,
        # Handshake and TLS (websockets)
        additional_headers: HeadersLike
        | Callable[[], HeadersLike | Awaitable[HeadersLike]]
        | None = None,
        subprotocols: Sequence[str] | None = None,
        compression: str | None = "deflate",
        ssl: ssl_module.SSLContext | None = None,
        proxy: str | Literal[True] | None = True,
        user_agent_header: str | None = USER_AGENT,
        origin: str | None = None,
        # Security
        allow_insecure_credentials: bool = False,
    ) -> None:
        urls = UrlRotation(url)
        ws_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "close_timeout": close_timeout,
            "max_size": max_size,
            "max_queue": max_queue,
            "additional_headers": additional_headers,
            "subprotocols": subprotocols,
            "compression": compression,
            "ssl": ssl,
            "proxy": proxy,
            "user_agent_header": user_agent_header,
            "origin": origin,
        }
        options = Options(
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            backoff_multiplier=backoff_multiplier,
            backoff_jitter=backoff_jitter,
            max_attempts=max_attempts,
            max_downtime=max_downtime,
            stable_after=stable_after,
            wait=wait,
            stop=stop,
            classify=classify,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            idle_timeout=idle_timeout,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            heartbeat_message=heartbeat_message,
            heartbeat_reply=heartbeat_reply,
            allow_insecure_credentials=allow_insecure_credentials,
            first_message_auth=auth is not None,
            websockets=ws_options,
        )
        options.check_credentials(urls.static)
        if ssl is not None and urls.all_insecure():
            raise ValueError("ssl= needs a wss:// URL; drop ssl= or use wss://")
        callbacks = Callbacks()
        for name, fn in (
            ("connect", on_connect),
            ("disconnect", on_disconnect),
            ("reconnect", on_reconnect),
            ("give_up", on_give_up),
            ("undelivered", on_undelivered),
        ):
            if fn is not None:
                callbacks.add(name, fn)
        self._urls = urls
        self._options = options
        self._callbacks = callbacks
        self._reply_filter = heartbeat_reply
        self._supervisor: Supervisor | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._rx: Connection | None = None
        self._streak = 0
        """Messages ``async for`` read since its last checkpoint (see __anext__)."""
        self._stats = Stats()
        self._sender = make_sender(
            self._stats,
            max_messages=buffer_max_messages,
            max_bytes=buffer_max_bytes,
            overflow=buffer_overflow,
            timeout=buffer_timeout,
            ttl=buffer_ttl,
            write_grace=10.0 if close_timeout is None else float(close_timeout),
        )
        self._drain_timeout = check_drain_timeout(drain_timeout)
        self._router: Router | None = None
        self._publish_window = check_window(publish_window)
        self._auth = check_auth(auth, protocol)
        if protocol is not None:
            self._router = self._make_router(check_adapter(protocol))
        self._closed_before_start = False
        self._undelivered_before_start = UndeliveredEvent()

    # Public attributes.

    @property
    def state(self) -> ClientState:
        """Where the client is: idle, connecting, connected, backing off, closed."""
        if self._supervisor is None:
            return ClientState.CLOSED if self._closed_before_start else ClientState.IDLE
        return self._supervisor.state

    @property
    def stats(self) -> Stats:
        """Live counters: connects, reconnects, messages and bytes, delays, RTT.

        The same object for the life of the client, updated in place.
        """
        return self._stats

    @property
    def url(self) -> str:
        """The URL of the current or last connection, with secrets redacted."""
        return "" if self._supervisor is None else self._supervisor.url

    # Public methods.

    @overload
    def on(self, event: EventName, callback: C) -> C: ...
    @overload
    def on(self, event: EventName, callback: None = None) -> Callable[[C], C]: ...
    def on(self, event: EventName, callback: C | None = None) -> C | Callable[[C], C]:
        """Register ``callback`` for ``event``; without it, return a decorator.

        ``event`` is ``"connect"``, ``"disconnect"``, ``"reconnect"``,
        ``"give_up"`` or ``"undelivered"``. Callbacks run in the client's
        supervisor task (connect and reconnect callbacks in a short-lived
        task of its own, while it watches the new connection), one at a
        time, in registration order, and may be sync or async. One that
        raises is logged and skipped. A slow async callback delays the
        supervisor: start a task for long work.

        ::

            @client.on("reconnect")
            async def resync(event: wsclient.ReconnectEvent) -> None: ...
        """
        if callback is None:

            def register(fn: C) -> C:
                self._callbacks.add(event, fn)
                return fn

            return register
        self._callbacks.add(event, callback)
        return callback

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a connection is open.

        Cancelling it is safe.

        Args:
            timeout: Seconds to wait; None waits as long as it takes.

        Raises:
            TimeoutError: No connection within ``timeout``.
            ClientStopped: The client stopped (fatal error or gave up); the
                exception says why.
            ClientClosed: The client was closed by the application.
        """
        with anyio.fail_after(
            check_seconds("timeout", timeout, allow_none=True, zero=True)
        ):
            await self._open_connection()

    def send(
        self, message: Data, *, key: Hashable | None = None
    ) -> Coroutine[Any, Any, SendReceipt]:
        """Send a text (str) or binary (bytes-like) message, connected or not.

        ``await client.send(message)``. (A plain method that checks its
        arguments and returns the sending coroutine: one coroutine less per
        message than an ``async def`` here, on a path as hot as websockets'
        own ``send``. The arguments are checked when it is called.)

        Connected, with nothing buffered, the message is written at once and
        ``send`` returns when the connection took it (as websockets' send).
        Otherwise it joins the outbound buffer, which is written in order
        after the next connection is open, its subscriptions restored and
        the connect callbacks run (what they send goes first);
        ``send`` returns at once unless the buffer is full (see
        ``buffer_overflow``). Either way, the :class:`~wsclient.SendReceipt`
        says what became of it: ``WRITTEN``, ``POSSIBLY_LOST``, ``EXPIRED``,
        ``REPLACED`` or ``DROPPED`` (``await receipt.wait()``).

        Plain sends are at-most-once: a message written to a connection that
        dies before the server reads it is lost (see the README, "Sending").
        For delivery the server confirms, use :meth:`publish`.

        Cancelling ``send`` while it waits for room is safe: nothing was
        buffered.

        Args:
            message: The message.
            key: Coalescing key: while buffered, a newer message with the
                same key replaces this one (latest value wins), e.g. for
                state updates.

        Raises:
            TypeError: ``message`` is not str or bytes-like.
            ValueError: ``message`` is larger than ``buffer_max_bytes``
                (connected or not, so that it does not depend on the link).
            BufferFull: The buffer is full under ``"fail"``, or stayed full
                for ``buffer_timeout`` under ``"block"``.
            ClientStopped: The client stopped (fatal error or gave up).
            ClientClosed: The client was closed.
        """
        checked: object = message  # For users without a type checker.
        if not isinstance(checked, _DATA_TYPES):
            kind = type(message).__name__
            raise TypeError(f"send() takes str (text) or bytes (binary), got {kind}")
        if key is not None:
            check_key(key)
        supervisor = self._supervisor
        if supervisor is None:
            supervisor = self._running_supervisor()  # Raises why.
        return self._sender.send(supervisor, message, key)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the outbound buffer is written and publications acked.

        Returns at once when nothing is buffered and no publication awaits
        its ack. Messages and publications sent meanwhile are waited for too.

        Args:
            timeout: Seconds to wait; None waits as long as it takes.

        Raises:
            TimeoutError: Not flushed within ``timeout``; nothing is lost,
                the client goes on trying.
            ClientStopped: The client stopped first.
            ClientClosed: The client was closed first.
        """
        supervisor = self._running_supervisor()
        if supervisor.in_supervisor():
            raise RuntimeError(
                "flush() cannot be awaited in a callback: the client flushes "
                "only once the callback returns; start a task for it"
            )
        sender, router = self._sender, self._router
        with anyio.fail_after(
            check_seconds("timeout", timeout, allow_none=True, zero=True)
        ):
            while True:
                await sender.wait_flushed(supervisor)
                if router is not None:
                    await router.outbox.wait_acked()
                if not sender.buffer and not sender.flushing:
                    break  # Else sent meanwhile: wait for that too.
        if supervisor.error is not None:
            raise supervisor.error

    async def close(self) -> UndeliveredEvent:
        """Deliver what is pending (up to ``drain_timeout``), then close.

        Idempotent. If messages are buffered or publications await their
        ack, it first waits for them as :meth:`flush` does, for up to
        ``drain_timeout`` seconds (the client keeps reconnecting meanwhile).
        Then it stops reconnecting and closes: promptly while connecting or
        backing off; while connected, with the closing handshake, which
        takes up to ``close_timeout``. It never triggers a reconnection.

        Called from a callback, it requests the close and returns at once,
        without draining (an empty result: the ``undelivered`` event still
        reports what is left).

        Returns:
            What was not delivered: buffered messages never sent (their
            receipts say ``DROPPED``) and publications never acknowledged.
            The same is passed to ``on_undelivered`` callbacks, if not empty.
        """
        supervisor = self._supervisor
        if supervisor is None:
            return await self._close_before_start()
        if supervisor.in_supervisor():
            supervisor.request_close()
            return UndeliveredEvent()
        if self._drain_timeout and not supervisor.close_requested.is_set():
            with anyio.move_on_after(self._drain_timeout):
                try:
                    await self.flush()
                except WSClientError:
                    pass  # Stopped or closed meanwhile: nothing more to drain.
        supervisor.request_close()
        await supervisor.stopped.wait()
        assert supervisor.undelivered is not None
        return supervisor.undelivered

    async def _close_before_start(self) -> UndeliveredEvent:
        """Close a client never started: fail what publish_nowait queued."""
        if self._closed_before_start:
            return self._undelivered_before_start
        self._closed_before_start = True
        undelivered = UndeliveredEvent()
        if self._router is not None:
            outbox = self._router.outbox
            undelivered = UndeliveredEvent(publications=tuple(outbox.unacked.values()))
            outbox.stop(None)
        self._undelivered_before_start = undelivered
        if undelivered:
            await self._callbacks.fire("undelivered", undelivered)
        return undelivered

    # Async context manager.

    async def __aenter__(self) -> Self:
        if self._supervisor is not None or self._closed_before_start:
            raise RuntimeError("a Client can be entered only once; create a new one")
        self._supervisor = Supervisor(
            self._urls,
            self._options,
            self._callbacks,
            self._stats,
            self._router,
            self._sender,
        )
        self._task_group = task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._supervisor.task_group = task_group
        started = anyio.Event()
        task_group.start_soon(self._supervisor.run, started)
        try:
            await started.wait()
        except BaseException as exc:  # Cancelled while starting.
            await self._exit_task_group(exc)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._supervisor is not None
        assert self._task_group is not None
        try:
            if exc_type is None:
                await self.close()
            else:  # Unwinding: no closing handshake, just stop.
                self._supervisor.request_close()
                self._task_group.cancel_scope.cancel()
        except BaseException as exc:  # close() cancelled from outside.
            await self._exit_task_group(exc)
            raise
        # The supervisor never raises, so the group has nothing to report; the
        # exception of the block, if any, propagates unwrapped.
        await self._task_group.__aexit__(None, None, None)

    async def _exit_task_group(self, exc: BaseException) -> None:
        """Stop the supervisor and leave the task group while ``exc`` is raised."""
        assert self._supervisor is not None
        assert self._task_group is not None
        self._supervisor.request_close()
        self._task_group.cancel_scope.cancel()
        await self._task_group.__aexit__(type(exc), exc, exc.__traceback__)

    # Async iterator.

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Data:
        """Return the next message, across reconnections, in order.

        The consumer reads the open connection directly: no queue hop, no
        task, no copy per message. After a reconnection it first drains what
        the previous connection received, then moves on. One consumer at a
        time, as with websockets.

        Cancelling it is safe: no message is lost.

        Raises:
            StopAsyncIteration: The client was closed and everything received
                has been read.
            ClientStopped: The client stopped on its own (after the messages
                received before that were read).
        """
        # The hot path: every message goes through it, so it makes no call
        # it can avoid (this is why it reads the attributes, not properties).
        # A message already received is taken without awaiting, but there
        # is a checkpoint (cancellation, other tasks' turn) at least every
        # READY_STREAK messages: see _transport.receiving.
        while True:
            conn = self._rx
            if conn is not None:
                if self._streak >= READY_STREAK:
                    self._streak = 0
                    await checkpoint()  # Even while more are ready.
                # Awaiting recv_next() may not yield either (asyncio).
                self._streak += 1
                try:
                    if (message := conn.recv_now()) is None:
                        message = await conn.recv_next()
                except Exception as exc:
                    try:
                        await conn.recv_failed(exc)
                    except ConnectionClosed:
                        self._next_rx()
                        continue
                stats = self._stats
                stats.messages_in += 1
                stats.bytes_in += len(message)
                if self._reply_filter is not None and self._reply_filter(message):
                    continue
                return message
            if self._router is not None:
                return await self._next_routed()
            await self._wait_for_rx()

    async def _next_routed(self) -> Data:
        """With a protocol adapter: the next message no subscription claimed."""
        assert self._router is not None
        while True:
            message = await self._router.receive()
            if self._reply_filter is None or not self._reply_filter(message):
                return message

    # Private methods.

    def _next_rx(self) -> None:
        """Done with the current connection: move to the next one received."""
        assert self._supervisor is not None
        undrained = self._supervisor.undrained
        if undrained and undrained[0] is self._rx:
            del undrained[0]
        self._rx = self._supervisor.reading = undrained[0] if undrained else None

    async def _wait_for_rx(self) -> None:
        supervisor = self._running_supervisor()
        while not supervisor.undrained:
            if supervisor.stopped.is_set():
                if supervisor.error is not None:
                    raise supervisor.error
                raise StopAsyncIteration
            await supervisor.wait_changed()
        self._rx = supervisor.reading = supervisor.undrained[0]

    async def _open_connection(self) -> Connection:
        supervisor = self._running_supervisor()
        while True:
            supervisor.check_running()
            conn = supervisor.conn
            if conn is not None and conn.is_open:
                return conn
            await supervisor.wait_changed()

    def _running_supervisor(self) -> Supervisor:
        if self._supervisor is None:
            if self._closed_before_start:
                raise ClientClosed()
            raise RuntimeError("use 'async with Client(...) as client:' first")
        return self._supervisor

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"<Client {self.url or '(not started)'} state={self.state.value} "
            f"connects={stats.connects} reconnects={stats.reconnects}>"
        )
