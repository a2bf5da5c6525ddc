"""Routing received messages to subscriptions, and (re)subscribing on each connection.

Only clients with a protocol adapter have a router. It then owns reading:
each message is routed once, as the adapter says, to a subscription, to a
pending request, or to the client's own stream (``async for message in
client``). That costs a queue hop per message, which is why clients without
subscriptions read the connection directly instead.

Routing happens in one of two places. One reader task per connection takes
the messages websockets has queued (:meth:`Router._read`); while it waits
for more with nothing queued, messages are routed as websockets receives
them, in websockets' own reader (:meth:`Router._take`, through a
:class:`~._transport.receiving.Diversion`), which saves a task switch per
message that arrives alone. The reader task takes over, in order, after 64
messages (READY_STREAK) routed that way in a row (so that a burst is paced
by its checkpoints as before), and for a message that cannot be routed
there: its subscription's queue is full (the overflow policy may wait), it
is fragmented, or not valid UTF-8.

On every connection, before the client is reported connected, the router
sends the adapter's hello messages and exactly one subscribe per live
subscription, resuming from its last position; answers are awaited (up to
``open_timeout``) so that ``on_reconnect`` sees a working client and nothing
the application sends can overtake the resubscription. Then, still before,
it sends again every publication of the outbox not acknowledged yet, in
order (see :mod:`._outbox`); new publications follow.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio
from anyio.lowlevel import checkpoint

from ._adapters.base import (
    Acked,
    Authenticated,
    AuthFailed,
    ProtocolAdapter,
    Publication,
    Routed,
    Subscribed,
    SubscribeFailed,
    Unsubscribed,
)
from ._authenticating import AuthExchange
from ._outbox import Outbox, PublishReceipt
from ._signal import Signal
from ._subscription import Subscription, SubscriptionState
from ._transport.base import ConnectionClosed
from ._transport.receiving import READY_STREAK, take_message

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from anyio.abc import TaskStatus

    from ._authenticating import AuthSource
    from ._core.failure import Failure
    from ._core.stats import Stats
    from ._exceptions import WSClientError
    from ._transport.base import Connection, Data

__all__ = ["INBOX_SIZE", "REQUEST_ID_BASE", "Router"]

logger = logging.getLogger("wsclient")

INBOX_SIZE = 1024
"""Messages kept for ``async for message in client`` when a router reads.

When nobody reads them, the oldest are dropped and counted in
:attr:`Stats.messages_dropped`, so that subscriptions keep flowing.
"""


_Kind = Literal["sub", "unsub", "pub"]

Wakeups: TypeAlias = "set[Callable[[], None]]"
"""Wake-ups of readers put off by Router._read until it is about to wait
(Router._take makes its own at once)."""

REQUEST_ID_BASE = 1 << 30
"""The client's own request ids count up from here, for the life of the
client: unique across connections, so a publication keeps its id (and its
encoded message) when it is sent again.

Applications number their requests 1, 2, 3...: starting far from there keeps
an answer to the application's request from being taken for ours (and ours
from leaking into ``async for message in client``).
"""


class _Failed:
    """What _take() raised (a bug), for _read() to raise in its place."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Link:
    """What the router knows about one connection."""

    def __init__(self, conn: Connection, ids: Iterator[int]) -> None:
        self.conn = conn
        self.sent: dict[Subscription[Any], int] = {}
        """Subscriptions subscribed on this connection: exactly once each."""
        self.pending: dict[int, tuple[_Kind, Subscription[Any] | PublishReceipt]] = {}
        self.awaiting: set[Subscription[Any]] = set()
        """Subscribed on this link, answer not received yet: positioned
        publications for them are in flight from an earlier subscription."""
        self.delivering = False
        """True while the reader waits for room in a subscription's queue."""
        self.ahead: Publication | _Failed | None = None
        """How _take() routed the message it left to the reader task (its
        queue was full; a bug): the reader's next message, not routed again."""
        self.woken: Wakeups = set()
        """_take()'s wake-ups, made at once (it runs outside the reader task)."""
        self._ids = ids
        self.auth = AuthExchange()
        self.answered = anyio.Event()
        self.done = anyio.Event()

    def request_id(self) -> int:
        return next(self._ids)

    def check_answered(self) -> None:
        if self.answered.is_set():
            return  # For good: no need to scan (publications) again.
        if not any(kind == "sub" for kind, _ in self.pending.values()):
            self.answered.set()


class Router:
    """Subscriptions of one client, and the reader of its current connection."""

    def __init__(
        self,
        adapter: ProtocolAdapter,
        stats: Stats,
        answer_timeout: float | None,
        publish_window: int = 100,
        auth: AuthSource | None = None,
    ) -> None:
        self.adapter = adapter
        self.auth = auth
        self.failure: Failure | None = None
        """Why the router ended the last connection (refused credentials)."""
        self.outbox = Outbox(publish_window)
        self.stats = stats
        self.answer_timeout = answer_timeout
        self.subscriptions: dict[str, Subscription[Any]] = {}
        self.inbox: collections.deque[Data] = collections.deque()
        self.link: _Link | None = None
        self.stopped = False
        self.error: WSClientError | None = None
        self._changed = Signal()
        """Fires when the set of (active) subscriptions changed."""
        self._outgoing = Signal()
        """Fires when there is something to send: subscriptions changed or
        a publication was added. Only the task serving the link waits."""
        self._ids = itertools.count(REQUEST_ID_BASE + 1)
        self._readable: anyio.Event | None = None
        """Made when ``async for`` waits for the inbox, set when it fills."""
        self._reader_waits = False
        self._streak = 0
        """Messages receive() returned since it last yielded."""
        self._warned_inbox = False

    # Public methods for the client.

    def add(self, subscription: Subscription[Any]) -> None:
        """Register a subscription; the current connection subscribes soon."""
        self.subscriptions[subscription.channel] = subscription
        self._notify()

    async def remove(self, subscription: Subscription[Any]) -> None:
        """Forget a subscription; unsubscribe on the current connection."""
        if self.subscriptions.get(subscription.channel) is subscription:
            del self.subscriptions[subscription.channel]
        link = self.link
        if link is None or link.sent.pop(subscription, None) is None:
            return
        request_id = link.request_id()
        link.pending[request_id] = ("unsub", subscription)
        message = self.adapter.unsubscribe(
            subscription.channel, subscription.params, request_id
        )
        await self._send(link, message)  # If closed: the next one won't subscribe it.

    def publications_changed(self) -> None:
        """A publication joined the outbox: the current connection sends it."""
        self._outgoing.fire()

    def request_id(self) -> int:
        """A new id for a request of the client's own."""
        return next(self._ids)

    async def receive(self) -> Data:
        """The next message that is not a subscription's, for ``async for``.

        Messages in the inbox are returned without yielding, with a
        checkpoint at least every READY_STREAK (as in Client.__anext__).
        """
        if self._streak >= READY_STREAK:
            self._streak = 0
            await checkpoint()
        self._streak += 1
        while not self.inbox:
            self._streak = 0
            if self.stopped:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            if self._readable is None:
                self._readable = anyio.Event()
            self._reader_waits = True
            await self._readable.wait()
        return self.inbox.popleft()

    def stop(self, error: WSClientError | None) -> None:
        """The client stopped: end every iterator (with ``error`` if any)."""
        self.stopped, self.error = True, error
        for subscription in list(self.subscriptions.values()):
            subscription._stop(error)
        self.outbox.stop(error)
        self._wake()

    async def serve(self, conn: Connection, *, task_status: TaskStatus[None]) -> None:
        """Read ``conn`` and keep its subscriptions in step until cancelled.

        Reports started once every live subscription was subscribed and
        answered (or ``open_timeout`` passed): the client is ready then.
        """
        link = _Link(conn, self._ids)
        self.link = link
        self.outbox.rewind()  # Everything not acked goes out on this one.
        self.failure = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read, link)
                if self.auth is not None:
                    self.failure = await link.auth.run(
                        self.auth,
                        self.adapter,
                        lambda message: self._send(link, message),
                        link.request_id(),
                        self.answer_timeout,
                    )
                    if self.failure is None and not conn.is_open:
                        # Closed instead of answering (4001, 1008...): a
                        # refused attempt too, which its close code explains.
                        self.failure = conn.close_failure()
                    if self.failure is not None:
                        # Refused: end the connection; the supervisor reports
                        # self.failure rather than how the connection closed.
                        await conn.abort()
                        task_status.started()
                        await anyio.sleep_forever()
                for message in self.adapter.hello():
                    if not await self._send(link, message):
                        break
                await self._sync(link)
                with anyio.move_on_after(self.answer_timeout):
                    await link.answered.wait()
                await self._publish(link)
                task_status.started()
                outgoing = self._outgoing
                watching = False
                while True:
                    version = outgoing.version
                    await self._sync(link)
                    await self._publish(link)
                    if not watching and any(s.stale_after for s in link.sent):
                        # A task only for clients that asked for the watchdog.
                        tg.start_soon(self._watch_stale, link)
                        watching = True
                    await outgoing.wait(version)
        finally:
            for subscription in link.sent:
                subscription._link_ended()
            if self.link is link:
                self.link = None

    async def drained(self) -> None:
        """Wait until the reader has read everything the connection received.

        Call it after the connection closed, before cancelling :meth:`serve`.
        """
        if self.link is not None:
            await self.link.done.wait()

    # Private methods.

    async def _sync(self, link: _Link) -> None:
        """Subscribe every live subscription not subscribed on ``link`` yet."""
        requests = []
        for subscription in list(self.subscriptions.values()):
            if subscription in link.sent or subscription._done():
                continue
            request_id = link.request_id()
            link.sent[subscription] = request_id
            link.pending[request_id] = ("sub", subscription)
            link.awaiting.add(subscription)
            requests.append((subscription, request_id))
        # Every request is pending before the first goes out, so that an early
        # answer cannot make the link look fully answered.
        for subscription, request_id in requests:
            message = self.adapter.subscribe(
                subscription.channel,
                subscription.params,
                subscription.tracker.resume_from(),
                request_id,
            )
            if not await self._send(link, message):
                break
        link.check_answered()

    async def _publish(self, link: _Link) -> None:
        """Send, in order, every unacknowledged publication not sent on ``link``.

        Only the task serving ``link`` calls it, which keeps the order.
        """
        outbox = self.outbox
        while (receipt := outbox.next_unsent(link)) is not None:
            # Encoded once, when published, with an id valid on any link.
            link.pending[receipt._request_id] = ("pub", receipt)
            receipt._link = link
            if not await self._send(link, receipt._message):
                return

    async def _send(self, link: _Link, message: Data) -> bool:
        """Send on ``link``; False if it closed (the supervisor reconnects)."""
        try:
            await link.conn.send(message)
        except ConnectionClosed:
            return False
        return True

    async def _watch_stale(self, link: _Link) -> None:
        """Renew subscriptions with ``stale_after`` that went quiet.

        A channel that should be live but delivers nothing may have been
        dropped by the server without telling; unsubscribing and subscribing
        again (resuming from the position) costs little and recovers it.
        """
        while True:
            version = self._changed.version
            now = anyio.current_time()
            due = {
                sub: sub.last_message_at + sub.stale_after
                for sub in link.sent
                if sub.stale_after is not None
                and sub.last_message_at is not None
                and sub.state is SubscriptionState.ACTIVE
            }
            # A reader blocked on a full queue reads nothing: not staleness.
            stale = [] if link.delivering else [s for s, d in due.items() if d <= now]
            for subscription in stale:
                await self._renew(link, subscription)
            if stale:
                continue
            wake = min(due.values(), default=None)
            if wake is not None and link.delivering:
                wake = now + min(sub.stale_after or 1.0 for sub in due)
            with anyio.move_on_after(None if wake is None else wake - now):
                await self._changed.wait(version)

    async def _renew(self, link: _Link, subscription: Subscription[Any]) -> None:
        subscription._stale()
        logger.warning(
            "no message on %r for %s s: renewing the subscription",
            subscription.channel,
            subscription.stale_after,
        )
        unsubscribe_id, subscribe_id = link.request_id(), link.request_id()
        link.pending[unsubscribe_id] = ("unsub", subscription)
        link.pending[subscribe_id] = ("sub", subscription)
        link.sent[subscription] = subscribe_id
        link.awaiting.add(subscription)
        # Back to back, in this order: the server answers in order, so the
        # resume replays what the position has not seen, and what was in
        # flight meanwhile is dropped (awaiting) and then replayed.
        unsubscribe = self.adapter.unsubscribe(
            subscription.channel, subscription.params, unsubscribe_id
        )
        subscribe = self.adapter.subscribe(
            subscription.channel,
            subscription.params,
            subscription.tracker.resume_from(),
            subscribe_id,
        )
        if await self._send(link, unsubscribe):
            await self._send(link, subscribe)

    async def _read(self, link: _Link) -> None:
        # The hot loop: every message received goes through it once, so the
        # common case (a publication with room in its queue) makes no call
        # it can avoid, and no coroutine.
        #
        # Messages already buffered are taken without awaiting (take_message()),
        # so this task yields only when it must wait for the network, and at
        # least every READY_STREAK messages (a checkpoint: cancellation, other
        # tasks' turn). Waking a reader costs a task switch, and a woken
        # reader runs only when this task yields: so the wake-ups wait (in
        # ``deferred``) until it is about to. While it waits for the network,
        # _take() routes what arrives (see the module's docstring): what it
        # leaves, it leaves to this loop, which then reads it next.
        stats = self.stats
        conn = link.conn
        assembler, frames = conn.recv_queue()  # For take_message().
        recv = conn.recv_next  # See _transport.receiving.
        route = self.adapter.route
        subscriptions = self.subscriptions
        sent, awaiting = link.sent, link.awaiting
        deferred: Wakeups = set()
        streak = 0  # Messages read since the last checkpoint.
        diversion = conn.diversion(functools.partial(self._take, link))
        try:
            while True:
                if streak >= READY_STREAK:
                    if deferred:
                        _wake_all(deferred)
                    streak = 0
                    await checkpoint()  # Even while more are ready.
                streak += 1  # Awaiting recv() may not yield either (asyncio).
                try:
                    if (message := take_message(assembler, frames)) is None:
                        if deferred:
                            _wake_all(deferred)  # They run while this task waits.
                        if frames:  # The start of a fragmented message.
                            message = await recv()
                        else:
                            diversion.on()  # _take() routes what comes meanwhile.
                            try:
                                message = await recv()
                            finally:
                                diversion.off()
                except Exception as exc:
                    try:
                        await conn.recv_failed(exc)
                    except ConnectionClosed:
                        return
                stats.messages_in += 1
                stats.bytes_in += len(message)
                if (ahead := link.ahead) is None:
                    try:
                        routed = route(message)
                    except Exception:
                        logger.error(
                            "the protocol adapter failed to route a message",
                            exc_info=True,
                        )
                        routed = None
                else:
                    link.ahead = None  # _take() routed it, then left it here.
                    if isinstance(ahead, _Failed):
                        raise ahead.error
                    routed = ahead
                if isinstance(routed, Publication):
                    subscription = subscriptions.get(routed.channel)
                    if (
                        subscription is not None
                        and subscription in sent
                        and not (
                            awaiting  # Empty unless a subscribe awaits its answer.
                            and routed.offset is not None
                            and subscription in awaiting
                        )
                    ):
                        if subscription._offer(routed):
                            if subscription._reader_waits:
                                deferred.add(subscription._wake_reader)
                            continue
                        # The queue is full: apply the overflow policy, maybe wait.
                        _wake_all(deferred)
                        link.delivering = True
                        try:
                            await subscription._deliver(routed)
                        finally:
                            link.delivering = False
                        if subscription.state is SubscriptionState.FAILED:
                            await self.remove(subscription)  # Overflowed: stop it.
                        continue
                self._route_other(link, message, routed, deferred)
        finally:
            _wake_all(deferred)
            link.answered.set()  # No answer can come any more.
            link.auth.connection_closed()
            link.done.set()

    def _take(self, link: _Link, message: Data) -> bool:
        """Route a message as websockets receives it, while _read() waits.

        Runs in websockets' reader (see the Diversion), so it wakes readers
        at once and never waits: False leaves the message to _read(), with
        its routing in ``link.ahead``, when its subscription's queue is full
        (the overflow policy may wait). A bug here would end the connection
        from within websockets, and the client would reconnect as if the
        server had failed: it goes to ``link.ahead`` too, for _read() to
        raise, as it would have raised routing the message itself.
        """
        try:
            try:
                routed = self.adapter.route(message)
            except Exception:
                logger.error(
                    "the protocol adapter failed to route a message", exc_info=True
                )
                routed = None
            awaiting = link.awaiting
            if isinstance(routed, Publication) and (  # Ours: as in _read().
                (subscription := self.subscriptions.get(routed.channel)) is not None
                and subscription in link.sent
                and not (
                    awaiting and routed.offset is not None and subscription in awaiting
                )
            ):
                if not subscription._offer(routed):
                    link.ahead = routed
                    return False
                if subscription._reader_waits:
                    subscription._wake_reader()
            else:
                woken = link.woken
                self._route_other(link, message, routed, woken)
                if woken:
                    _wake_all(woken)
        except Exception as exc:
            link.ahead = _Failed(exc)
            return False
        stats = self.stats
        stats.messages_in += 1
        stats.bytes_in += len(message)
        return True

    def _route_other(
        self, link: _Link, message: Data, routed: Routed | None, deferred: Wakeups
    ) -> None:
        """Route what is not a publication for a subscription of ``link``.

        Readers to wake go to ``deferred``.
        """
        if routed is None:
            self._to_inbox(message, deferred)
        elif isinstance(routed, Publication):
            # Unsubscribed, never ours, or in flight from an earlier
            # subscription: the resume will replay what matters.
            self.stats.publications_unrouted += 1
        elif isinstance(routed, Authenticated | AuthFailed):
            if not link.auth.answered(routed):
                self._to_inbox(message, deferred)
        elif not self._answer(link, routed):
            # An answer to a request of the app's.
            self._to_inbox(message, deferred)

    def _answer(
        self, link: _Link, answer: Subscribed | SubscribeFailed | Unsubscribed | Acked
    ) -> bool:
        """Apply an answer to one of our requests; False if it is not ours."""
        entry = link.pending.get(answer.request_id) if answer.request_id else None
        if entry is None or not _answers(answer, entry[0]):
            return False
        del link.pending[answer.request_id]  # type: ignore[arg-type]
        kind, subscription = entry
        if isinstance(subscription, PublishReceipt):
            assert isinstance(answer, Acked)  # See _answers().
            self.outbox.acked(subscription, answer.offset, answer.duplicate)
            return True
        if kind == "sub":
            link.awaiting.discard(subscription)
        if kind == "sub" and not subscription._done():
            if isinstance(answer, SubscribeFailed):
                subscription._refused(answer.error)
                if self.subscriptions.get(subscription.channel) is subscription:
                    del self.subscriptions[subscription.channel]
            elif isinstance(answer, Subscribed):
                gap = subscription.tracker.subscribed(
                    answer.epoch,
                    answer.offset,
                    answer.recovered,
                    answer.reason,
                    answer.missing,
                )
                # Markers in stream order: reconnected, the gap, the replay.
                subscription._accepted(answer.recovered, answer.offset)
                subscription._report(gap)
            elif isinstance(answer, Acked):
                subscription._accepted()
            self._notify()  # The stale-data watchdog watches active ones.
        link.check_answered()
        return True

    def _to_inbox(self, message: Data, deferred: Wakeups) -> None:
        """Keep a message for ``async for message in client``; its reader's
        wake-up goes to ``deferred`` (see _read)."""
        if len(self.inbox) >= INBOX_SIZE:
            self.inbox.popleft()
            self.stats.messages_dropped += 1
            if not self._warned_inbox:
                self._warned_inbox = True
                logger.warning(
                    "dropping messages that no subscription claims: nothing "
                    "iterates the client (counted in stats.messages_dropped)"
                )
        self.inbox.append(message)
        if self._reader_waits:
            deferred.add(self._wake)

    def _notify(self) -> None:
        self._changed.fire()
        self._outgoing.fire()

    def _wake(self) -> None:
        # A new event only when the reader waits on this one: not per message.
        if self._reader_waits:
            self._reader_waits = False
            readable, self._readable = self._readable, None
            if readable is not None:
                readable.set()


def _wake_all(deferred: Wakeups) -> None:
    for wake in deferred:
        wake()
    deferred.clear()


def _answers(answer: Routed, kind: _Kind) -> bool:
    """Whether ``answer`` can be the answer to a request of this kind.

    A plain acknowledgement answers any (exchange-style servers reply
    ``{"result": null, "id": n}`` to both subscribe and unsubscribe); a
    publish is answered by an acknowledgement only.
    """
    if isinstance(answer, Subscribed | SubscribeFailed):
        return kind == "sub"
    if isinstance(answer, Unsubscribed):
        return kind == "unsub"
    return isinstance(answer, Acked)
