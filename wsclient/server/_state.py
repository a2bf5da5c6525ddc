"""State shared by the :class:`~wsclient.server.Server` facade and its connections.

The server sets faults here and connections read them at the moment they
matter (when a handshake arrives, before each read or write), so a fault set
between two events applies from the next event on, on every connection.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._pubsub import PubSub

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from ._auth import Auth, SeenRequest
    from ._connection import Connection
    from ._faults import Refusal

SEEN_REQUESTS = 100
"""Handshake requests kept for :attr:`Server.requests`: the most recent ones."""


@dataclass(frozen=True, slots=True)
class ServerCounters:
    """A snapshot of the server's counters, from :attr:`Server.counters`.

    A snapshot never changes: read :attr:`Server.counters` again, or wait with
    :meth:`Server.wait_for`, to see new values.

    Attributes:
        connections_accepted: TCP connections accepted, whatever came next.
        handshakes_completed: Handshakes answered with ``101 Switching
            Protocols``, including those closed at once by
            :meth:`Server.close_after_handshake`.
        handshakes_refused: Handshake requests answered with an HTTP error,
            either by :meth:`Server.refuse_next` or because the request was
            not a valid WebSocket upgrade. Requests too malformed to parse are
            dropped or answered by websockets itself, and not counted.
        messages_received: Complete data messages (text or binary) received.
        messages_sent: Data messages written to a socket (control frames such
            as pongs and close frames are not counted).
        connections_open: TCP connections accepted and not closed yet,
            including those still in the opening handshake.
        pings_received: WebSocket ping frames received; each one got a pong.
            Pings that a stalled server has not read yet are not counted.
        subscribes: Subscribe commands that succeeded, resuming or not.
        unsubscribes: Unsubscribe commands that succeeded. Subscriptions
            that end because their connection closed are not counted here;
            they only leave :attr:`subscriptions_open`.
        duplicate_subscribes: Subscribe commands refused with "already
            subscribed": the connection held that channel already. A client
            that tracks its subscriptions correctly keeps this at 0.
        subscriptions_open: Subscriptions held now, over all connections.
        max_subscriptions_per_channel: The most subscriptions to one channel
            ever held by one connection at once. Duplicates are refused, so
            it is 1 after the first subscribe and cannot grow: it states the
            invariant, while :attr:`duplicate_subscribes` counts the attempts
            to break it.
        publications: Publications accepted (each got a new offset), from
            clients and from :meth:`Server.publish`.
        duplicate_publications: Publishes not published again because their
            ``msg_id`` was already accepted on that channel.
        tls_handshakes_failed: TLS handshakes that did not complete, on a
            server given ``ssl=``: the client did not trust the certificate
            or expected another host name, spoke plain ``ws://`` to it, or
            dropped the connection during the handshake. Each one is logged
            at INFO, never as an error: it is the client's problem.
        auth_failures: Authentications refused (see
            :meth:`Server.require_auth`): a handshake without the token (also
            counted in ``handshakes_refused``), or a first message that was
            not the right ``auth``.
        redirects: Handshakes answered with a redirect
            (:meth:`Server.redirect_next`).
    """

    connections_accepted: int = 0
    handshakes_completed: int = 0
    handshakes_refused: int = 0
    messages_received: int = 0
    messages_sent: int = 0
    connections_open: int = 0
    pings_received: int = 0
    subscribes: int = 0
    unsubscribes: int = 0
    duplicate_subscribes: int = 0
    subscriptions_open: int = 0
    max_subscriptions_per_channel: int = 0
    publications: int = 0
    duplicate_publications: int = 0
    tls_handshakes_failed: int = 0
    auth_failures: int = 0
    redirects: int = 0


class CounterBoard:
    """Mutable counters plus a way to wait for them to reach some state.

    Connections call one method per event; each call wakes the waiters of
    :meth:`wait_for` so that they re-evaluate their predicate.
    """

    def __init__(self) -> None:
        self._counts = dict.fromkeys(ServerCounters.__dataclass_fields__, 0)
        # Created only when someone waits: a stream of a million messages
        # should not allocate a million events that nobody looks at.
        self._changed: anyio.Event | None = None

    def snapshot(self) -> ServerCounters:
        """Return the current values."""
        return ServerCounters(**self._counts)

    async def wait_for(
        self, predicate: Callable[[ServerCounters], bool]
    ) -> ServerCounters:
        """Wait until ``predicate(snapshot)`` is true; return that snapshot."""
        if not callable(predicate):
            raise TypeError(
                "predicate must be a function of ServerCounters, such as "
                f"lambda c: c.handshakes_completed >= 1; got {predicate!r}"
            )
        snapshot = self.snapshot()
        if predicate(snapshot):
            await anyio.lowlevel.checkpoint()
            return snapshot
        while True:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
            snapshot = self.snapshot()
            if predicate(snapshot):
                return snapshot

    # Public methods called by connections, one per event.

    def connection_accepted(self) -> None:
        """Count a TCP connection that the listener accepted."""
        self._add("connections_accepted", 1)
        self._add("connections_open", 1)

    def connection_closed(self) -> None:
        """Count a TCP connection that was closed, whatever the reason."""
        self._add("connections_open", -1)

    def handshake_completed(self) -> None:
        """Count a handshake answered with 101."""
        self._add("handshakes_completed", 1)

    def tls_handshake_failed(self) -> None:
        """Count a TLS handshake that the client failed or dropped."""
        self._add("tls_handshakes_failed", 1)

    def auth_failed(self) -> None:
        """Count refused credentials."""
        self._add("auth_failures", 1)

    def redirected(self) -> None:
        """Count a handshake answered with a redirect."""
        self._add("redirects", 1)

    def handshake_refused(self) -> None:
        """Count a handshake answered with an HTTP error."""
        self._add("handshakes_refused", 1)

    def message_received(self) -> None:
        """Count a complete data message received."""
        self._add("messages_received", 1)

    def ping_received(self) -> None:
        """Count a WebSocket ping frame received."""
        self._add("pings_received", 1)

    def messages_sent(self, n: int) -> None:
        """Count ``n`` data messages written to a socket."""
        self._add("messages_sent", n)

    def subscribed(self, open_now: int, on_channel: int) -> None:
        """Count a subscribe; ``on_channel``: the sender's subscriptions there."""
        self._add("subscribes", 1)
        self._set("subscriptions_open", open_now)
        if on_channel > self._counts["max_subscriptions_per_channel"]:
            self._set("max_subscriptions_per_channel", on_channel)

    def subscribe_refused(self) -> None:
        """Count a subscribe refused because the connection already held the channel."""
        self._add("duplicate_subscribes", 1)

    def unsubscribed(self, open_now: int) -> None:
        """Count an unsubscribe command that succeeded."""
        self._add("unsubscribes", 1)
        self._set("subscriptions_open", open_now)

    def set_subscriptions_open(self, open_now: int) -> None:
        """Record the number of subscriptions after some were dropped."""
        self._set("subscriptions_open", open_now)

    def published(self, duplicate: bool) -> None:
        """Count a publish: accepted, or refused as a duplicate."""
        self._add("duplicate_publications" if duplicate else "publications", 1)

    # Private methods.

    def _set(self, name: str, value: int) -> None:
        self._add(name, value - self._counts[name])

    def _add(self, name: str, delta: int) -> None:
        self._counts[name] += delta
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class StallGate:
    """Holds every read and write while the server is stalled.

    A connection passes through the gate before each read from and each write
    to its socket. A connection that :meth:`Server.close_all` is closing is
    exempt, so that its closing handshake completes even during a stall.
    """

    def __init__(self) -> None:
        self.stalled = False
        self._changed: anyio.Event | None = None

    def set(self, stalled: bool) -> None:
        """Stall or resume every connection."""
        self.stalled = stalled
        self.poke()

    def poke(self) -> None:
        """Wake the waiters so that they check the stall and their exemption."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait(self, exempt: Callable[[], bool]) -> None:
        """Return at once unless stalled; else wait for a resume or an exemption.

        This is not a checkpoint when the server is not stalled: it is on the
        path of every frame and must cost nothing then.
        """
        while self.stalled and not exempt():
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()


class ServerState:
    """Fault settings, counters and open connections, shared by all connections."""

    def __init__(
        self, *, max_size: int | None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.max_size = max_size
        # Connections wrap their socket in TLS with it when set (see _tls.py).
        self.ssl_context = ssl_context
        self.counters = CounterBoard()
        self.pubsub = PubSub(self.counters)
        self.stall = StallGate()
        self.connections: set[Connection] = set()
        self.latency = 0.0
        # (code, reason) while close_after_handshake() is on.
        self.close_after_handshake: tuple[int, str] | None = None
        self._refusal: Refusal | None = None
        self._refusals_left = 0
        self.auth: Auth | None = None
        # The last handshake requests, for tests (bounded).
        self.requests: collections.deque[SeenRequest] = collections.deque(
            maxlen=SEEN_REQUESTS
        )

    def refuse(self, n: int, refusal: Refusal) -> None:
        """Refuse the next ``n`` handshakes, replacing any pending refusals."""
        self._refusal, self._refusals_left = refusal, n

    def take_refusal(self) -> Refusal | None:
        """Return how to refuse the handshake at hand, or None to accept it."""
        if self._refusals_left == 0:
            return None
        self._refusals_left -= 1
        return self._refusal

    async def broadcast(self, text: bool, payload: bytes) -> int:
        """Queue a message on every open connection; return how many took it.

        It waits while a connection's outbound queue is full: that is the
        backpressure that bounds memory when a client reads slowly.
        """
        sent = 0
        for connection in list(self.connections):
            if await connection.enqueue(text, payload):
                sent += 1
        return sent
