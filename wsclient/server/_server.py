"""The :class:`Server` facade, its fault-injection methods, and :func:`serve`."""

from __future__ import annotations

import errno
import ipaddress
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

import anyio
from anyio.abc import SocketAttribute, SocketListener

from . import _faults, _tls
from ._auth_api import AuthControl
from ._channel_api import ChannelControl
from ._connection import CLOSE_TIMEOUT, Connection
from ._state import ServerCounters, ServerState

if TYPE_CHECKING:
    import ssl as ssl_module
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import SocketStream, TaskGroup
    from anyio.streams.stapled import MultiListener

logger = logging.getLogger("wsclient.server")

REBIND_ATTEMPTS: Final = 20
REBIND_DELAY: Final = 0.05
"""come_back() retries a busy port for about a second (see :meth:`Server.come_back`)."""

ACCEPT_RETRY_DELAY: Final = 0.1
"""Pause after a failed accept(), so that running out of file descriptors
(EMFILE) does not turn the accept loop into a busy loop."""


class Server(ChannelControl, AuthControl):
    """A running reference server; get one from :func:`serve`.

    All methods must be called from the event loop that runs :func:`serve`.
    Fault settings apply to every connection, open or future, from the next
    event on (handshake, read or write) until they are changed again.
    Channels and their history belong to the server, not to connections:
    they survive :meth:`go_down` and :meth:`come_back`, and only
    :meth:`lose_history` forgets them.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_size: int | None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        """Check the arguments; :func:`serve` binds and starts the server."""
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port must be an int, got {type(port).__name__}")
        if not 0 <= port <= 65535:
            raise ValueError(
                f"port must be from 0 (any free port) to 65535, got {port}"
            )
        if max_size is not None:
            if isinstance(max_size, bool) or not isinstance(max_size, int):
                raise TypeError(f"max_size must be an int or None, got {max_size!r}")
            if max_size < 1:
                raise ValueError(f"max_size must be >= 1 byte, got {max_size}")
        self._host = host
        self._port = port
        self._state = ServerState(
            max_size=max_size, ssl_context=_tls.check_context(ssl)
        )
        self._task_group: TaskGroup | None = None
        self._accepting: tuple[anyio.CancelScope, anyio.Event] | None = None
        self._down = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<Server {self.url} {'down' if self._down else 'up'}>"

    # Public attributes.

    @property
    def host(self) -> str:
        """The host the server binds, as given to :func:`serve`."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port: the real one when :func:`serve` got ``port=0``."""
        return self._port

    @property
    def url(self) -> str:
        """The URL to connect to, e.g. ``ws://127.0.0.1:8765`` or ``ws://[::1]:8765``.

        With ``ssl=`` it is ``wss://`` and names :attr:`host` as given, so
        the certificate must be issued for that name: see :func:`serve`.
        """
        host = self._host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass  # a host name, used as is
        scheme = "ws" if self._state.ssl_context is None else "wss"
        return f"{scheme}://{host}:{self._port}"

    @property
    def counters(self) -> ServerCounters:
        """A snapshot of the counters; see :class:`ServerCounters`."""
        return self._state.counters.snapshot()

    # Public methods for tests.

    async def wait_for(
        self, predicate: Callable[[ServerCounters], bool]
    ) -> ServerCounters:
        """Wait until ``predicate(counters)`` is true.

        The predicate is evaluated now and again whenever a counter changes,
        so there is no polling. It sees the counters when this task runs, so
        it may miss a state that lasted less than that: prefer conditions on
        counters that only grow, such as ``handshakes_completed >= 3``.

        It has no timeout of its own: wrap it in :func:`anyio.fail_after`.
        Canceling it is safe.

        Returns:
            The snapshot for which the predicate was true.
        """
        return await self._state.counters.wait_for(predicate)

    async def broadcast(self, message: str | bytes) -> int:
        """Send a message to every open connection (text for str, binary for bytes).

        It returns once the message is queued on every connection, which
        may wait while a slow client's queue is full. The latency fault applies.

        Returns:
            The number of connections that took the message.
        """
        text, payload = _faults.check_message(message)
        return await self._state.broadcast(text, payload)

    # Public methods for injecting faults.

    async def abort_all(self) -> None:
        """Drop every connection without a close frame, with an RST.

        Connections still in the opening handshake are dropped too. The
        client sees close code 1006. Returns once every socket is closed.
        """
        connections = list(self._state.connections)
        for connection in connections:
            connection.abort()
        for connection in connections:
            await connection.wait_closed()

    async def close_all(self, code: int = 1012, reason: str = "restart") -> None:
        """Close every connection with a close frame, then close TCP.

        Connections still in the opening handshake are aborted instead. The
        closing handshake goes through even while the server is stalled. A
        client that does not answer the close frame within one second is
        dropped. Returns once every socket is closed.

        Raises:
            TypeError, ValueError: If ``code`` cannot go in a close frame or
                ``reason`` is longer than 123 bytes.
        """
        code, reason = _faults.check_close(code, reason)
        async with anyio.create_task_group() as task_group:
            for connection in list(self._state.connections):
                task_group.start_soon(connection.close, code, reason)

    def stall(self, stalled: bool = True) -> None:
        """Freeze (or, with False, resume) all traffic on open and future connections.

        While stalled, connections neither read from nor write to their
        sockets: no pongs, no replies, no handshake responses, while TCP
        stays open. The kernel still accepts new TCP connections and buffers
        what clients send, so the client sees a half-open link.
        """
        if not isinstance(stalled, bool):
            raise TypeError(f"stalled must be a bool, got {type(stalled).__name__}")
        self._state.stall.set(stalled)

    def refuse_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: int | str | None = None,
        body: str = "",
    ) -> None:
        """Reject the next ``n`` handshakes with an HTTP error.

        This replaces any refusals still pending; ``n=0`` cancels them.

        Args:
            n: How many handshakes to reject.
            status: HTTP status, from 400 to 599.
            retry_after: Seconds as an int, or any string (such as an
                HTTP-date) sent verbatim in a ``Retry-After`` header; None
                sends no such header.
            body: Plain-text response body.
        """
        count = _faults.check_count(n)
        self._state.refuse(count, _faults.check_refusal(status, retry_after, body))

    def close_after_handshake(self, code: int | None = 1012, reason: str = "") -> None:
        """Close every new connection with ``code`` right after its handshake.

        Pass ``None`` to turn this mode off. The handshake counts as
        completed; the close frame follows the ``101`` response at once.
        """
        if code is None:
            self._state.close_after_handshake = None
        else:
            self._state.close_after_handshake = _faults.check_close(code, reason)

    def set_latency(self, seconds: float) -> None:
        """Delay every outbound data message by ``seconds``; 0 disables.

        The delay is counted from the moment the message is queued, like a
        propagation delay: it does not limit throughput. Control frames
        (pongs, close frames) and handshake responses are not delayed.
        """
        self._state.latency = _faults.check_latency(seconds)

    async def go_down(self) -> None:
        """Stop listening and drop every connection without a close frame.

        Until :meth:`come_back`, connecting fails with "connection refused".

        Raises:
            RuntimeError: If the server is already down or closed.
        """
        self._check_running()
        if self._down:
            raise RuntimeError("server is already down; call come_back() first")
        self._down = True
        await self._stop_listening()
        await self.abort_all()

    async def come_back(self) -> None:
        """Listen again on the same port after :meth:`go_down`.

        If another socket took the port meanwhile, it retries for about a
        second, then raises :exc:`OSError`.

        Raises:
            RuntimeError: If the server is not down.
        """
        self._check_running()
        if not self._down:
            raise RuntimeError("server is not down; call go_down() first")
        await self._listen()
        self._down = False

    # Private methods.

    def _check_running(self) -> None:
        if self._closed or self._task_group is None:
            raise RuntimeError("server is closed; use it inside `async with serve()`")

    async def _start(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        await self._listen()

    async def _shutdown(self) -> None:
        """Close the listener, then every connection with 1001, within about 1 s."""
        if not self._down:
            await self._stop_listening()
        self._closed = True
        with anyio.move_on_after(2 * CLOSE_TIMEOUT):
            await self.close_all(1001, "server shutting down")
        await self.abort_all()

    async def _listen(self) -> None:
        listener = await self._bind()
        self._port = listener.listeners[0].extra(SocketAttribute.local_port)
        scope, done = anyio.CancelScope(), anyio.Event()
        self._accepting = (scope, done)
        assert self._task_group is not None
        self._task_group.start_soon(self._accept_loop, listener, scope, done)

    async def _bind(self) -> MultiListener[SocketStream]:
        # anyio sets SO_REUSEADDR, so connections in TIME_WAIT do not block the
        # port. A client socket that picked our port as its ephemeral port
        # would, hence the retries when coming back.
        for attempt in range(REBIND_ATTEMPTS):
            try:
                return await anyio.create_tcp_listener(
                    local_host=self._host, local_port=self._port
                )
            except OSError as exc:
                last = attempt == REBIND_ATTEMPTS - 1
                if exc.errno != errno.EADDRINUSE or self._port == 0 or last:
                    raise
                await anyio.sleep(REBIND_DELAY)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stop_listening(self) -> None:
        # The accept loop closes the listener when it exits; waiting for it
        # guarantees that every accepted socket is registered and that new
        # connection attempts are refused when this returns.
        assert self._accepting is not None
        scope, done = self._accepting
        scope.cancel()
        await done.wait()

    async def _accept_loop(
        self,
        listener: MultiListener[SocketStream],
        scope: anyio.CancelScope,
        done: anyio.Event,
    ) -> None:
        try:
            with scope:
                async with anyio.create_task_group() as task_group:
                    for sublistener in listener.listeners:
                        # create_tcp_listener() makes socket listeners only.
                        assert isinstance(sublistener, SocketListener)
                        task_group.start_soon(self._accept_from, sublistener)
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            done.set()

    async def _accept_from(self, listener: SocketListener) -> None:
        assert self._task_group is not None
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                logger.warning("accept() failed: %s", exc)
                await anyio.sleep(ACCEPT_RETRY_DELAY)
                continue
            # Register before the connection's task starts, so that a fault
            # method called in between reaches it.
            connection = Connection(stream, self._state)
            self._state.connections.add(connection)
            self._state.counters.connection_accepted()
            self._task_group.start_soon(connection.run)


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_size: int | None = 2**20,
    ssl: ssl_module.SSLContext | None = None,
) -> AsyncIterator[Server]:
    """Run a reference server on the current event loop (asyncio or trio).

    When it yields, the port is bound and listening. On exit it closes every
    connection with code 1001 (dropping those that do not answer within
    about a second, and stalled ones finish their closing handshake
    first), closes the listener, and waits for all its tasks.

    Args:
        host: Address to bind; only this one is bound.
        port: Port to bind; 0 picks a free one, see :attr:`Server.port`.
        max_size: Largest incoming message in bytes; larger ones close the
            connection with 1009. None means no limit.
        ssl: A server-side context with a certificate loaded, to serve
            ``wss://`` (see below); None serves plain ``ws://``.

    Yields:
        The running :class:`Server`.

    Raises:
        TypeError, ValueError: If an argument is invalid, such as a
            client-side ``ssl`` context.

    Over TLS, the certificate must name ``host``, which :attr:`Server.url`
    keeps as given: see "TLS" in the :mod:`wsclient.server` documentation.
    """
    server = Server(host, port, max_size=max_size, ssl=ssl)
    try:
        async with anyio.create_task_group() as task_group:
            await server._start(task_group)
            try:
                yield server
            finally:
                with anyio.CancelScope(shield=True):
                    await server._shutdown()
                task_group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Background tasks log their errors, so the only exception here is the
        # one raised by the body of `async with serve()`, or a KeyboardInterrupt
        # that trio delivered inside a connection's task group: give it back
        # as is, without the groups around it.
        error = group
        while isinstance(error, BaseExceptionGroup):
            if len(error.exceptions) != 1:
                raise AssertionError("bug: several errors escaped serve()") from group
            error = error.exceptions[0]
    else:
        return
    # Raised outside the except clause so that the group does not become the
    # __context__ of the caller's own exception.
    raise error
