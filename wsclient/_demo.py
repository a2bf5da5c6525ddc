"""``python -m wsclient demo``: watch a client survive a misbehaving server.

The demo runs the reference server (:mod:`wsclient.server`) and a
:class:`~wsclient.Client` in one process, on one event loop, over 127.0.0.1.
Four tasks share the loop for ``--duration`` seconds:

- a **publisher** sends sequenced echo commands ``{"type": "echo", "data":
  {"seq": n}}`` at a steady rate with :meth:`Client.send`;
- a **consumer** reads the echoes with ``async for`` and counts what comes
  back, duplicates and messages out of order;
- a **fault injector** waits until the client is connected, lets a random
  (exponentially distributed) gap pass, then breaks the link in one of five
  ways, and starts over;
- a **reporter** prints one status line per second.

Every callback event is printed as it happens. When the time is up the faults
stop, the server is healed, and the demo checks that the client recovers: it
must be connected and get an echo back. The exit status says whether it did.

The client's ``send`` is at-most-once: a message handed to a connection that
then dies is lost. The summary reports those losses as they are (sent minus
received) rather than hiding them.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

import anyio

from ._client import Client
from ._core.state import ClientState
from ._exceptions import WSClientError
from .server import serve

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping

    from ._core.events import ConnectEvent, DisconnectEvent, GiveUpEvent, ReconnectEvent
    from .server import Server

__all__ = ["CLIENT_OPTIONS", "DemoConfig", "run"]

Backend = Literal["asyncio", "trio"]

# Short delays everywhere, so that a 15-second demo shows many recoveries.
# stable_after is short too: the backoff resets once a connection has stayed
# up for a second, so each fault starts from a short delay again.
CLIENT_OPTIONS: Final[Mapping[str, Any]] = {
    "backoff_initial": 0.2,
    "backoff_max": 2.0,
    "stable_after": 1.0,
    "ping_interval": 0.5,
    "ping_timeout": 0.5,
    "open_timeout": 2.0,
    "close_timeout": 1.0,
    "proxy": None,  # Loopback only: never go through a system proxy.
}

# Rates and durations, in seconds.
SEND_RATE: Final = 50.0  # Echo commands per second while connected.
STALL_SECONDS: Final = 1.5  # > ping_interval + ping_timeout: the heartbeat sees it.
OUTAGE_SECONDS: Final = (0.5, 1.5)  # Bounds of the random time the server is down.
RETRY_AFTER: Final = 1  # Of the 503 refusal: the client must wait that long.
SERVER_CALL_TIMEOUT: Final = 5.0  # close_all() takes up to 1 s, come_back() 1 s.
RECOVERY_TIMEOUT: Final = 8.0  # backoff_max + open_timeout + Retry-After + spare.
FINAL_ECHO_TIMEOUT: Final = 2.0  # Then the final echo is sent again.

FAULTS: Final[Mapping[str, str]] = {
    "abort": "abort_all(): TCP RST, no close frame (the client sees 1006)",
    "restart": "close_all(1012, 'service restart'): a clean close",
    "stall": f"stall() for {STALL_SECONDS} s: TCP stays open but nothing moves "
    f"(a half-open link that only the heartbeat can find)",
    "outage": "go_down(): drop every connection and refuse new ones",
    "overload": f"close_all(1013) then refuse_next(1, 503, retry_after={RETRY_AFTER})",
}
"""The faults, and what each does, as printed when it is injected."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """The command-line options of the demo, already checked."""

    duration: float = 15.0
    fault_rate: float = 0.5
    backend: Backend = "asyncio"
    seed: int | None = None


def run(config: DemoConfig, out: TextIO | None = None) -> int:
    """Run the demo to the end or to Ctrl-C; print to ``out``; return the exit status.

    Returns:
        0 if the client recovered from every fault, 1 if not, 130 on Ctrl-C.
    """
    seed = random.randrange(2**32) if config.seed is None else config.seed
    console = _Console(sys.stdout if out is None else out)
    demo = _Demo(config, seed, console)
    interrupted = False
    # Library warnings (a heartbeat timeout, say) go in the log, in order.
    logger = logging.getLogger("wsclient")
    logger.addHandler(console)
    try:
        anyio.run(demo.run, backend=config.backend)
    # On trio, Ctrl-C may reach us inside task groups, wrapped in a group.
    except* KeyboardInterrupt:
        interrupted = True
    finally:
        logger.removeHandler(console)
    demo.print_summary(interrupted)
    if interrupted:
        return 130
    return 0 if demo.recovered else 1


class _Console(logging.Handler):
    """Print timestamped lines at once: the output is a live log, maybe piped.

    As a logging handler, it prints wsclient's warnings and errors as lines.
    """

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.WARNING)
        self.out = out
        self.started = time.monotonic()

    def line(self, tag: str, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.plain(f"{elapsed:6.2f}s  {tag:<7} {text}")

    def plain(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text = f"{text}: {record.exc_info[1]!r}"
            self.line("LOG", f"{record.levelname.lower()}: {text}")
        except Exception:
            self.handleError(record)


class _Traffic:
    """What the publisher sent and the consumer got back."""

    def __init__(self) -> None:
        self.sent = 0
        self.seen: set[int] = set()
        self.duplicates = 0
        self.out_of_order = 0
        self.highest = -1

    def received(self, message: str | bytes) -> bool:
        """Account for one message; return True for the final check's echo."""
        try:
            data = json.loads(message)["data"]
            seq, final = data.get("seq"), data.get("final")
        except (ValueError, TypeError, KeyError, AttributeError):
            return False  # Not one of ours; the reference server sends none.
        if final or not isinstance(seq, int):
            return bool(final)
        if seq in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(seq)
            if seq < self.highest:
                self.out_of_order += 1
            self.highest = max(self.highest, seq)
        return False

    @property
    def lost(self) -> int:
        # Only sequence numbers whose send() returned count as sent.
        return self.sent - sum(1 for seq in self.seen if seq < self.sent)


class _FaultInjector:
    """Break the link at random moments, one fault at a time, then heal it."""

    def __init__(
        self, server: Server, console: _Console, seed: int, injected: Counter[str]
    ) -> None:
        self.server = server
        self.console = console
        self.random = random.Random(seed)
        self.injected = injected

    async def run(self, client: Client, rate: float, deadline: float) -> None:
        """Inject faults until ``deadline``; each one hits a working connection."""
        if rate <= 0:
            return
        with anyio.move_on_at(deadline):  # Cuts a stall or an outage short.
            # A loose bound: rate faults per second of connection, on average.
            for _ in range(math.ceil(rate * (deadline - anyio.current_time())) * 3):
                try:
                    await client.wait_connected()
                except WSClientError:  # Gave up: the consumer reports why.
                    return
                # Draw all three each time: the schedule depends on the seed only.
                gap = self.random.expovariate(rate)
                kind = self.random.choice(list(FAULTS))
                outage = self.random.uniform(*OUTAGE_SECONDS)
                await anyio.sleep(gap)
                self.injected[kind] += 1
                self.console.line("FAULT", FAULTS[kind])
                await self._inject(kind, outage)

    async def _inject(self, kind: str, outage: float) -> None:
        server = self.server
        if kind == "abort":
            await _shielded(server.abort_all())
        elif kind == "restart":
            await _shielded(server.close_all(1012, "service restart"))
        elif kind == "overload":
            server.refuse_next(1, 503, retry_after=RETRY_AFTER)
            await _shielded(server.close_all(1013, "try again later"))
        elif kind == "stall":
            server.stall()
            try:
                await anyio.sleep(STALL_SECONDS)
            finally:
                server.stall(False)
                self.console.line("FAULT", "stall over: the server answers again")
        else:
            await _shielded(server.go_down())
            try:
                await anyio.sleep(outage)
            finally:
                await _shielded(server.come_back())
                self.console.line("FAULT", f"come_back() after {outage:.1f} s")


async def _shielded(action: Awaitable[None]) -> None:
    """Finish a server call even if the deadline passes meanwhile.

    A fault left half done (down, or a listener bound but not serving) would
    make the final check fail for the demo's sake, not the client's.
    """
    with anyio.move_on_after(SERVER_CALL_TIMEOUT, shield=True):
        await action


class _Demo:
    """One run: the server, the client, the tasks, and what they observed."""

    def __init__(self, config: DemoConfig, seed: int, console: _Console) -> None:
        self.config = config
        self.seed = seed
        self.console = console
        self.client: Client | None = None  # Created once the server has a port.
        self.traffic = _Traffic()
        self.injected: Counter[str] = Counter()
        self.give_ups = 0
        self.longest_downtime = 0.0
        self.recovered = False
        self.round_trip: float | None = None
        self.stop_error: WSClientError | None = None

    async def run(self) -> None:
        """Run the whole demo; the result is left in the attributes."""
        config, final_seen = self.config, anyio.Event()
        async with serve() as server:
            self._print_header(server.url)
            client = self.client = self._make_client(server.url)
            injector = _FaultInjector(server, self.console, self.seed, self.injected)
            async with client, anyio.create_task_group() as tg:
                tg.start_soon(self._consume, client, final_seen)
                deadline = anyio.current_time() + config.duration
                async with anyio.create_task_group() as faulty:
                    faulty.start_soon(injector.run, client, config.fault_rate, deadline)
                    faulty.start_soon(self._report, client, deadline)
                    faulty.start_soon(self._publish, client, deadline)
                # A refusal may still be pending if the client had no time to
                # reconnect after the last fault; the other faults heal themselves.
                server.refuse_next(0)
                self.console.line("CHECK", "faults stopped; is the client working?")
                await self._final_check(client, final_seen)
                tg.cancel_scope.cancel()

    def print_summary(self, interrupted: bool) -> None:
        """Print what happened; works after a Ctrl-C too, with what is known."""
        traffic, out = self.traffic, self.console.plain
        elapsed = time.monotonic() - self.console.started
        title = "interrupted" if interrupted else "summary"
        out(f"--- {title} after {elapsed:.1f} s ({self.config.backend}) ---")
        detail = ", ".join(f"{kind} {self.injected[kind]}" for kind in FAULTS)
        out(f"faults injected:     {self.injected.total()} ({detail})")
        stats = None if self.client is None else self.client.stats
        if stats is not None:
            out(
                f"connections:         {stats.connects} opened, {stats.reconnects} "
                f"reconnects, {stats.failed_attempts} failed attempts, "
                f"{self.give_ups} give-ups"
            )
            out(f"longest downtime:    {self.longest_downtime:.2f} s")
            out(f"last ping RTT:       {_ms(stats.ping_rtt)}")
        out(f"messages sent:       {traffic.sent}")
        out(
            f"messages received:   {len(traffic.seen)} ({traffic.duplicates} "
            f"duplicates, {traffic.out_of_order} out of order)"
        )
        out(f"lost in flight:      {traffic.lost} (at-most-once send: sent - received)")
        if stats is not None:
            interrupted_sends = stats.sends_interrupted
            out(f"sends interrupted:   {interrupted_sends} (stats.sends_interrupted)")
        if interrupted:
            out("result: interrupted (Ctrl-C)")
        elif self.recovered:
            out(f"result: OK, recovered from every fault ({_ms(self.round_trip)} echo)")
        else:
            why = f": {self.stop_error}" if self.stop_error else ""
            out(f"result: FAILED, the client did not recover{why}")
        out(f"re-run this schedule with --seed {self.seed}")

    # Tasks.

    async def _publish(self, client: Client, deadline: float) -> None:
        period, next_at = 1 / SEND_RATE, anyio.current_time()
        for seq in range(math.ceil(SEND_RATE * self.config.duration) + 1):
            # Wait for the connection here rather than in send(), so that the
            # deadline never cancels a send() halfway: a message that left
            # anyway would come back without having been counted as sent.
            try:
                with anyio.move_on_at(deadline):
                    await anyio.sleep_until(next_at)
                    await client.wait_connected()
                if anyio.current_time() >= deadline:
                    return
                await client.send(json.dumps({"type": "echo", "data": {"seq": seq}}))
            except WSClientError:  # Gave up: the consumer reports why.
                return
            self.traffic.sent += 1
            # Keep a steady pace; skip the slots missed while disconnected
            # instead of sending a burst to catch up.
            next_at = max(next_at + period, anyio.current_time())

    async def _consume(self, client: Client, final_seen: anyio.Event) -> None:
        try:
            async for message in client:  # Cancelled after the final check.
                if self.traffic.received(message):
                    final_seen.set()
        except WSClientError as exc:
            self.stop_error = exc

    async def _report(self, client: Client, deadline: float) -> None:
        start = anyio.current_time()
        for tick in range(1, math.ceil(deadline - start) + 1):
            await anyio.sleep_until(min(start + tick, deadline))
            stats, traffic = client.stats, self.traffic
            last = f"{stats.last_close_code} {stats.last_close_reason or ''}"
            self.console.line(
                "STATUS",
                f"{client.state.value:<11} sent {traffic.sent:>5}  "
                f"recv {len(traffic.seen):>5}  reconnects {stats.reconnects:>2}  "
                f"last close {last.strip() if stats.last_close_code else '-'}  "
                f"rtt {_ms(stats.ping_rtt)}",
            )

    async def _final_check(self, client: Client, final_seen: anyio.Event) -> None:
        """Wait for a connection and an echo; a lost echo is sent again."""
        started = anyio.current_time()
        with anyio.move_on_after(RECOVERY_TIMEOUT):
            for attempt in range(1, 4):
                try:
                    await client.wait_connected()
                    sent_at = anyio.current_time()
                    final = {"type": "echo", "data": {"final": attempt}}
                    await client.send(json.dumps(final))
                except WSClientError as exc:
                    self.stop_error = exc
                    break
                with anyio.move_on_after(FINAL_ECHO_TIMEOUT):
                    await final_seen.wait()
                    self.round_trip = anyio.current_time() - sent_at
                    self.recovered = client.state is ClientState.CONNECTED
                    break
        waited = anyio.current_time() - started
        verdict = "working" if self.recovered else "NOT working"
        self.console.line("CHECK", f"client {verdict} (checked in {waited:.2f} s)")

    # Client callbacks: print each event as it happens.

    def _on_connect(self, event: ConnectEvent) -> None:
        first = "reconnection" if event.reconnect else "first connection"
        self.console.line("EVENT", f"connect: {first}, attempt {event.attempt}")

    def _on_disconnect(self, event: DisconnectEvent) -> None:
        if event.was_connected:
            reason = f" ({event.reason})" if event.reason else ""
            what = f"disconnect: code {event.code}{reason}"
        else:
            what = f"attempt failed: {event.failure}"
        if event.delay is not None:
            what += f"; retry in {event.delay:.2f} s"
        self.console.line(
            "EVENT", what if event.will_reconnect else f"{what}; not reconnecting"
        )

    def _on_reconnect(self, event: ReconnectEvent) -> None:
        self.longest_downtime = max(self.longest_downtime, event.downtime)
        self.console.line(
            "EVENT",
            f"reconnect: back after {event.downtime:.2f} s, attempt {event.attempt}",
        )

    def _on_give_up(self, event: GiveUpEvent) -> None:
        self.give_ups += 1
        self.console.line("EVENT", f"give_up after {event.attempts}: {event.error}")

    # Private helpers.

    def _make_client(self, url: str) -> Client:
        return Client(
            url,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_reconnect=self._on_reconnect,
            on_give_up=self._on_give_up,
            **CLIENT_OPTIONS,
        )

    def _print_header(self, url: str) -> None:
        config, out = self.config, self.console.plain
        out(
            f"wsclient demo: server {url} (in-process), backend {config.backend}, "
            f"{config.duration:g} s, ~{config.fault_rate:g} faults/s, seed {self.seed}"
        )
        out("client: " + ", ".join(f"{k}={v}" for k, v in CLIENT_OPTIONS.items()))
        out(f"traffic: {SEND_RATE:g} echo messages/s; Ctrl-C stops and summarizes")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"
