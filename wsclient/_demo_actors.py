"""The demo's actors: publisher, status sender, subscribers, fault injector, client log.

:mod:`wsclient._demo` runs them on one event loop against the reference
server and prints what they observe. Every publication is ``{"seq": n}``
with n = 0, 1, 2, ..., so a subscriber can tell by the numbers alone whether
it got each one exactly once and in order. The status sender shares the
publisher's client and shows the other way out: plain ``send()`` with a
coalescing key, buffered while disconnected. The fault injector breaks every
connection at once, in one of five ways, at moments drawn from a seed.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import anyio

from ._core.buffer import Outcome
from ._core.subscriptions import Gap
from ._exceptions import WSClientError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from ._client import Client
    from ._core.events import ConnectEvent, DisconnectEvent, GiveUpEvent, ReconnectEvent
    from ._outbox import PublishReceipt
    from ._sending import SendReceipt
    from ._subscription import Message
    from .server import Server

__all__ = [
    "CHANNEL",
    "FAULTS",
    "PUBLISH_RATE",
    "PUBLISH_WINDOW",
    "STATUS_CHANNEL",
    "STATUS_RATE",
    "SUBSCRIBERS",
    "ClientLog",
    "FaultInjector",
    "Publisher",
    "StatusSender",
    "Subscriber",
]

CHANNEL: Final = "demo"
SUBSCRIBERS: Final = ("sub-1", "sub-2")
CLIENTS: Final = len(SUBSCRIBERS) + 1  # And the publisher.

PUBLISH_RATE: Final = 50.0
"""Publications per second, connected or not: while disconnected they wait
in the publisher's outbox and go out on the next connection."""

PUBLISH_WINDOW: Final = 200
"""The publisher's ``publish_window``: 4 s of publications. The longest
outage (a down server, then backoff) stays below that, so the publisher
rarely has to wait for room; when it must, it skips the missed slots."""

STATUS_CHANNEL: Final = "status"
STATUS_KEY: Final = "status"
STATUS_RATE: Final = 5.0
"""Status updates per second, by plain ``send()``, connected or not."""

# Durations, in seconds.
STALL_SECONDS: Final = 1.5  # > ping_interval + ping_timeout: the heartbeat sees it.
OUTAGE_SECONDS: Final = (0.5, 1.5)  # Bounds of the random time the server is down.
RETRY_AFTER: Final = 1  # Of the 503 refusals: the clients must wait that long.
SERVER_CALL_TIMEOUT: Final = 5.0  # close_all() takes up to 1 s, come_back() 1 s.

FAULTS: Final[Mapping[str, str]] = {
    "abort": "abort_all(): TCP RST, no close frame (the clients see 1006)",
    "restart": "close_all(1012, 'service restart'): a clean close",
    "stall": f"stall() for {STALL_SECONDS} s: TCP stays open but nothing moves "
    f"(a half-open link that only the heartbeat can find)",
    "outage": "go_down(): drop every connection and refuse new ones",
    "overload": f"close_all(1013) then refuse_next({CLIENTS}, 503, "
    f"retry_after={RETRY_AFTER})",
}
"""The faults, and what each does, as printed when it is injected."""


class Publisher:
    """Publishes ``{"seq": n}`` on :data:`CHANNEL` at a steady pace; keeps receipts.

    ``publish_nowait`` hands each publication to the client's outbox at once,
    connected or not; the client sends it, and sends it again after every
    reconnection, until the server acknowledges it.
    """

    def __init__(self, client: Client, duration: float) -> None:
        self.client = client
        self.limit = math.ceil(PUBLISH_RATE * duration) + 1
        """Publications at most during the faults; the final check adds one."""
        self.receipts: list[PublishReceipt] = []
        self.error: WSClientError | None = None
        self._settled = 0  # receipts[:_settled] are all acknowledged.

    # Public attributes.

    @property
    def published(self) -> int:
        return len(self.receipts)

    @property
    def resent(self) -> int:
        """Publications the server had already published: the ack was lost."""
        return sum(1 for receipt in self.receipts if receipt.duplicate)

    # Public methods.

    def pending(self) -> list[PublishReceipt]:
        """The publications not acknowledged (yet, or ever if the client stopped)."""
        receipts = self.receipts
        while self._settled < len(receipts) and receipts[self._settled].acked:
            self._settled += 1
        return [receipt for receipt in receipts[self._settled :] if not receipt.acked]

    async def run(self, deadline: float) -> None:
        """Publish until ``deadline``; a stopped client ends it (see ``error``)."""
        period, next_at = 1 / PUBLISH_RATE, anyio.current_time()
        try:
            for _ in range(self.limit):
                with anyio.move_on_at(deadline):
                    await anyio.sleep_until(next_at)
                    await self._room()
                if anyio.current_time() >= deadline:
                    return
                self._publish_next()
                # Keep a steady pace; the slots missed while waiting for room
                # are skipped rather than sent as a burst.
                next_at = max(next_at + period, anyio.current_time())
        except WSClientError as exc:
            self.error = exc

    async def finish(self) -> None:
        """Publish one more, then wait until every publication is acknowledged.

        The last one goes through the healed server: it proves that the
        publisher works again, not only that it got its acks before the end.
        The caller bounds the time.

        Raises:
            WSClientError: The client stopped; unacknowledged receipts failed.
        """
        await self._room()
        self._publish_next()
        for receipt in self.pending():
            await receipt.wait()

    # Private methods.

    async def _room(self) -> None:
        """Wait until one more publication fits in the window."""
        while len(pending := self.pending()) >= PUBLISH_WINDOW:
            await pending[0].wait()

    def _publish_next(self) -> None:
        receipt = self.client.publish_nowait(CHANNEL, {"seq": self.published})
        self.receipts.append(receipt)


class StatusSender:
    """Send ``{"seq": k}`` on :data:`STATUS_CHANNEL` by plain ``send()``; keep receipts.

    Each update is a publish command without ``"id"``: the reference server
    publishes it (nobody subscribes) and answers nothing, so nothing lands in
    the client's inbox. Connected, an update is written at once; otherwise it
    waits in the outbound buffer, where the next one replaces it (same
    ``key``: the latest value wins), so the buffer holds at most one. Plain
    sends are at-most-once: none is resent, unlike the publisher's.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.receipts: list[SendReceipt] = []
        self.error: WSClientError | None = None

    @property
    def failed(self) -> int:
        """Updates dropped or expired: it never happens here (an unbounded
        ttl, a buffer far from full, the client never stops)."""
        counts = self.outcomes()
        return counts[Outcome.DROPPED] + counts[Outcome.EXPIRED]

    def outcomes(self) -> Counter[Outcome | None]:
        """How many receipts ended each way; None: still buffered."""
        return Counter(receipt.outcome for receipt in self.receipts)

    def describe(self) -> str:
        """One line for the summary: how many were sent, and how each ended."""
        counts = self.outcomes()
        text = (
            f"{len(self.receipts)} sent: {counts[Outcome.WRITTEN]} written, "
            f"{counts[Outcome.REPLACED]} replaced while offline (latest value "
            f"wins), {counts[Outcome.POSSIBLY_LOST]} possibly lost, "
            f"{counts[Outcome.DROPPED]} dropped, {counts[Outcome.EXPIRED]} expired"
        )
        if counts[None]:
            text += f", {counts[None]} pending"
        return text if self.error is None else f"{text}; stopped: {self.error}"

    async def run(self, deadline: float) -> None:
        """Send until ``deadline``; a stopped client ends it (see ``error``)."""
        period, next_at = 1 / STATUS_RATE, anyio.current_time()
        try:
            while True:
                with anyio.move_on_at(deadline):
                    await anyio.sleep_until(next_at)
                if anyio.current_time() >= deadline:
                    return
                # Not cancelled by the deadline: a write cut short would say
                # POSSIBLY_LOST for the demo's sake, not the client's.
                update = {"seq": len(self.receipts)}
                message = {"type": "publish", "channel": STATUS_CHANNEL, "data": update}
                receipt = await self.client.send(json.dumps(message), key=STATUS_KEY)
                self.receipts.append(receipt)
                next_at = max(next_at + period, anyio.current_time())
        except WSClientError as exc:
            self.error = exc

    async def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the receipts still pending; the rest stay so.

        Once the client is connected again its buffer is written: normally
        nothing is left to wait for.
        """
        with anyio.move_on_after(timeout):
            for receipt in self.receipts:
                await receipt.wait()


class Subscriber:
    """One client subscribed to :data:`CHANNEL`, checking the sequence it gets.

    Subscribed with ``gaps="marker"``: a publication the client knows it
    missed comes as a :class:`~wsclient.Gap` in the stream and counts as lost.
    """

    def __init__(self, name: str, client: Client) -> None:
        self.name = name
        self.client = client
        self.subscription = client.subscribe(CHANNEL, gaps="marker")
        self.seqs: list[int] = []
        """Every sequence number received, in order, repeats included."""
        self.duplicated = 0
        self.reordered = 0
        self.gaps = 0
        self.gap_lost = 0
        """Publications the gaps reported (1 for a gap of unknown size)."""
        self.error: WSClientError | None = None
        self._seen: set[int] = set()
        self._highest = -1
        self._ended = False
        self._changed = anyio.Event()

    # Public attributes.

    @property
    def received(self) -> int:
        """Distinct sequence numbers received."""
        return len(self._seen)

    # Public methods.

    def lost(self, published: int) -> int:
        """Sequence numbers below ``published`` never received (at least the gaps)."""
        missing = published - sum(1 for seq in self._seen if seq < published)
        return max(missing, self.gap_lost)

    def exact(self, published: int) -> bool:
        """Whether it got 0 .. published - 1, each exactly once, in order."""
        return self.seqs == list(range(published)) and self.gaps == 0

    async def run(self) -> None:
        """Read the subscription until it ends or the client stops."""
        try:
            async for item in self.subscription:
                if isinstance(item, Gap):
                    self._gap(item)
                else:
                    self._message(item)
                self._wake()
        except WSClientError as exc:
            self.error = exc
        finally:
            self._ended = True
            self._wake()  # wait_for() gives up when the stream ended.

    async def wait_for(self, published: int) -> bool:
        """Wait until ``published`` distinct publications came; False if it ended first.

        The caller bounds the time.
        """
        while self.received < published:
            if self._ended:
                return False
            changed = self._changed
            await changed.wait()
        return True

    # Private methods.

    def _message(self, message: Message) -> None:
        data = message.data
        seq = data.get("seq") if isinstance(data, dict) else None
        if not isinstance(seq, int):
            return  # Not the publisher's; nobody else publishes on the channel.
        self.seqs.append(seq)
        if seq in self._seen:
            self.duplicated += 1
            return
        self._seen.add(seq)
        if seq < self._highest:
            self.reordered += 1
        self._highest = max(self._highest, seq)

    def _gap(self, gap: Gap) -> None:
        self.gaps += 1
        if gap.first is not None and gap.last is not None:
            self.gap_lost += gap.last - gap.first + 1
        else:
            self.gap_lost += 1  # An unknown range: at least one.

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class ClientLog:
    """Print one client's callback events as they happen; keep a few numbers."""

    def __init__(self, name: str, log: Callable[[str, str], None]) -> None:
        """Set up; ``log(tag, text)`` prints a line of the live log."""
        self.name = name
        self.log = log
        self.give_ups = 0
        self.longest_downtime = 0.0

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments of :class:`Client` registering every callback."""
        return {
            "on_connect": self._on_connect,
            "on_disconnect": self._on_disconnect,
            "on_reconnect": self._on_reconnect,
            "on_give_up": self._on_give_up,
        }

    def _line(self, text: str) -> None:
        self.log("EVENT", f"{self.name:<9} {text}")

    def _on_connect(self, event: ConnectEvent) -> None:
        first = "reconnection" if event.reconnect else "first connection"
        self._line(f"connect: {first}, attempt {event.attempt}")

    def _on_disconnect(self, event: DisconnectEvent) -> None:
        if event.was_connected:
            reason = f" ({event.reason})" if event.reason else ""
            what = f"disconnect: code {event.code}{reason}"
        else:
            what = f"attempt failed: {event.failure}"
        if event.delay is not None:
            what += f"; retry in {event.delay:.2f} s"
        self._line(what if event.will_reconnect else f"{what}; not reconnecting")

    def _on_reconnect(self, event: ReconnectEvent) -> None:
        self.longest_downtime = max(self.longest_downtime, event.downtime)
        self._line(
            f"reconnect: back after {event.downtime:.2f} s, attempt {event.attempt}"
        )

    def _on_give_up(self, event: GiveUpEvent) -> None:
        self.give_ups += 1
        self._line(f"give_up after {event.attempts}: {event.error}")


class FaultInjector:
    """Break every connection at random moments, one fault at a time, then heal."""

    def __init__(
        self,
        server: Server,
        log: Callable[[str, str], None],
        seed: int,
        injected: Counter[str],
    ) -> None:
        """Set up; ``log(tag, text)`` prints a line of the live log."""
        self.server = server
        self.log = log
        self.random = random.Random(seed)
        self.injected = injected

    async def run(
        self, clients: Sequence[Client], rate: float, deadline: float
    ) -> None:
        """Inject faults until ``deadline``; each one hits working connections."""
        if rate <= 0:
            return
        with anyio.move_on_at(deadline):  # Cuts a stall or an outage short.
            # A loose bound: rate faults per second of connection, on average.
            for _ in range(math.ceil(rate * (deadline - anyio.current_time())) * 3):
                try:
                    for client in clients:
                        await client.wait_connected()
                except WSClientError:  # Gave up: the summary reports why.
                    return
                # Draw all three each time: the schedule depends on the seed only.
                gap = self.random.expovariate(rate)
                kind = self.random.choice(list(FAULTS))
                outage = self.random.uniform(*OUTAGE_SECONDS)
                await anyio.sleep(gap)
                self.injected[kind] += 1
                self.log("FAULT", FAULTS[kind])
                await self._inject(kind, outage)

    async def _inject(self, kind: str, outage: float) -> None:
        server = self.server
        if kind == "abort":
            await _shielded(server.abort_all())
        elif kind == "restart":
            await _shielded(server.close_all(1012, "service restart"))
        elif kind == "overload":
            # As many refusals as clients: most of them meet one (whoever
            # tries first gets them), and each has to honour Retry-After.
            server.refuse_next(CLIENTS, 503, retry_after=RETRY_AFTER)
            await _shielded(server.close_all(1013, "try again later"))
        elif kind == "stall":
            server.stall()
            try:
                await anyio.sleep(STALL_SECONDS)
            finally:
                server.stall(False)
                self.log("FAULT", "stall over: the server answers again")
        else:
            await _shielded(server.go_down())
            try:
                await anyio.sleep(outage)
            finally:
                await _shielded(server.come_back())
                self.log("FAULT", f"come_back() after {outage:.1f} s")


async def _shielded(action: Awaitable[None]) -> None:
    """Finish a server call even if the deadline passes meanwhile.

    A fault left half done (down, or a listener bound but not serving) would
    make the final check fail for the demo's sake, not the client's.
    """
    with anyio.move_on_after(SERVER_CALL_TIMEOUT, shield=True):
        await action
