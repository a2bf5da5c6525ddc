"""``python -m wsclient demo``: publish and subscribe through a misbehaving server.

The demo runs the reference server (:mod:`wsclient.server`) and three
:class:`~wsclient.Client` objects in one process, on one event loop, over
127.0.0.1, for ``--duration`` seconds (15 by default):

- a **publisher** publishes ``{"seq": n}`` on channel ``"demo"``, 50 times a
  second, with acknowledged publish (:meth:`Client.publish_nowait`): each
  publication is kept, and sent again after every reconnection, until the
  server acknowledges it; the server de-duplicates by ``msg_id``;
- the publisher's client also sends a **status** update ``{"seq": k}`` 5
  times a second by plain ``send(..., key="status")``: while disconnected it
  waits in the outbound buffer, where the next one replaces it (latest value
  wins; ``stats.buffer_replaced``); each receipt's outcome is counted;
- two **subscribers** (each its own client and connection) iterate
  ``client.subscribe("demo")``; after every reconnection the client resumes
  from the last publication delivered, from the server's history (sized to
  hold the whole run), and drops what it already has. Each subscriber counts
  what it receives, duplicates, publications out of order, and gaps;
- a **fault injector** waits until every client is connected, lets a random
  (exponentially distributed) gap pass, then breaks every connection at once
  in one of five ways, and starts over;
- a **reporter** prints one status line per second: messages published
  (acknowledged / pending), received by each subscriber, reconnections of
  all clients, messages buffered (publications awaiting their ack, plus
  ``stats.buffered``: status updates), lost and duplicated.

Every callback event is printed as it happens. When the time is up the faults
stop, the server is healed, and the demo checks that everything recovers:
every client reconnects, one last publication goes through, every
publication is acknowledged, and each subscriber receives every one. The
result is OK only if each subscriber got each publication exactly once and
in order, and no status update was dropped or expired (it never happens);
the exit status says so.

That is the point of the demo: connections die at random moments, acks and
publications are lost with them, and yet the channel holds each message once
and every subscriber sees the whole sequence: at-least-once sending by the
client, de-duplication by ``msg_id`` on the server, resume from a position
and duplicate dropping on the subscriber's side.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

import anyio

from ._adapters.reference import ReferenceProtocol
from ._client import Client
from ._core.state import ClientState
from ._demo_actors import (
    CHANNEL,
    FAULTS,
    PUBLISH_RATE,
    PUBLISH_WINDOW,
    STATUS_RATE,
    SUBSCRIBERS,
    ClientLog,
    FaultInjector,
    Publisher,
    StatusSender,
    Subscriber,
)
from ._exceptions import WSClientError
from .server import serve

if TYPE_CHECKING:
    from collections.abc import Mapping

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

# Durations, in seconds.
STARTUP_TIMEOUT: Final = 5.0  # For the subscriptions, before publishing starts.
RECOVERY_TIMEOUT: Final = 8.0  # backoff_max + open_timeout + Retry-After + spare.
STATUS_TIMEOUT: Final = 1.0  # For the last status receipts, once reconnected.


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
        0 if every publication was acknowledged and each subscriber got each
        one exactly once, in order; 1 if not; 130 on Ctrl-C.
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
    problems = demo.print_summary(interrupted)
    if interrupted:
        return 130
    return 1 if problems else 0


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


class _Demo:
    """One run: the server, the clients, the tasks, and what they observed."""

    def __init__(self, config: DemoConfig, seed: int, console: _Console) -> None:
        self.config = config
        self.seed = seed
        self.console = console
        self.logs: dict[Client, ClientLog] = {}
        # Created once the server has a port.
        self.publisher: Publisher | None = None
        self.status: StatusSender | None = None
        self.subscribers: list[Subscriber] = []
        self.injected: Counter[str] = Counter()
        self.recovered = False
        self.stop_error: WSClientError | None = None

    async def run(self) -> None:
        """Run the whole demo; the result is left in the attributes."""
        config = self.config
        async with serve() as server:
            self._print_header(server.url)
            publisher = self.publisher = Publisher(
                self._make_client("publisher", server.url), config.duration
            )
            status = self.status = StatusSender(publisher.client)
            # Every publication of the run, and the final one: a subscriber
            # that resumes from any position finds what it missed.
            server.configure_history(size=publisher.limit + 1, ttl=math.inf)
            self.subscribers = [
                Subscriber(name, self._make_client(name, server.url))
                for name in SUBSCRIBERS
            ]
            clients = list(self.logs)
            injector = FaultInjector(
                server, self.console.line, self.seed, self.injected
            )
            async with contextlib.AsyncExitStack() as stack:
                for client in clients:
                    await stack.enter_async_context(client)
                background = await stack.enter_async_context(anyio.create_task_group())
                for subscriber in self.subscribers:
                    background.start_soon(subscriber.run)
                await self._wait_subscribed(server)
                deadline = anyio.current_time() + config.duration
                # Through the final check too: it may take a few seconds.
                background.start_soon(self._report, deadline + RECOVERY_TIMEOUT)
                async with anyio.create_task_group() as faulty:
                    faulty.start_soon(
                        injector.run, clients, config.fault_rate, deadline
                    )
                    faulty.start_soon(publisher.run, deadline)
                    faulty.start_soon(status.run, deadline)
                # A refusal may still be pending if the clients had no time to
                # reconnect after the last fault; the other faults heal themselves.
                server.refuse_next(0)
                self.console.line("CHECK", "faults stopped; does everything recover?")
                await self._final_check(publisher)
                await status.finish(STATUS_TIMEOUT)
                background.cancel_scope.cancel()

    def print_summary(self, interrupted: bool) -> list[str]:
        """Print what happened; works after a Ctrl-C too, with what is known.

        Returns:
            What went wrong; empty if the demo succeeded.
        """
        out = self.console.plain
        elapsed = time.monotonic() - self.console.started
        title = "interrupted" if interrupted else "summary"
        out(f"--- {title} after {elapsed:.1f} s ({self.config.backend}) ---")
        detail = ", ".join(f"{kind} {self.injected[kind]}" for kind in FAULTS)
        out(f"faults injected:     {self.injected.total()} ({detail})")
        for client, log in self.logs.items():
            stats = client.stats
            out(
                f"{log.name + ':':<20} {stats.connects} connections, "
                f"{stats.reconnects} reconnects, {stats.failed_attempts} failed "
                f"attempts, {log.give_ups} give-ups"
            )
        reconnects = sum(client.stats.reconnects for client in self.logs)
        longest = max((log.longest_downtime for log in self.logs.values()), default=0)
        out(f"reconnects:          {reconnects} (all clients)")
        out(f"longest downtime:    {longest:.2f} s")
        self._print_traffic(interrupted)
        problems = self._problems()
        if interrupted:
            out("result: interrupted (Ctrl-C)")
        elif problems:
            out(f"result: FAILED: {'; '.join(problems)}")
        else:
            out(
                "result: OK: every publication acked, and delivered to each "
                "subscriber exactly once, in order"
            )
        out(f"re-run this schedule with --seed {self.seed}")
        return problems

    # Tasks.

    async def _wait_subscribed(self, server: Server) -> None:
        """Wait until the server holds every subscription: publishing may start.

        A subscription without a position starts at the channel's present, so
        a publication before it would never reach that subscriber.
        """
        count = len(self.subscribers)
        with anyio.move_on_after(STARTUP_TIMEOUT):
            await server.wait_for(lambda c: c.subscriptions_open >= count)

    async def _report(self, until: float) -> None:
        """Print a status line every second until ``until`` or cancelled."""
        start = anyio.current_time()
        for tick in range(1, math.ceil(until - start) + 1):
            await anyio.sleep_until(start + tick)
            self.console.line("STATUS", self._status())

    async def _final_check(self, publisher: Publisher) -> None:
        """Wait (bounded) for the clients, the acks, then every subscriber."""
        started = anyio.current_time()
        with anyio.move_on_after(RECOVERY_TIMEOUT):
            try:
                for client in self.logs:
                    await client.wait_connected()
                await publisher.finish()
                for subscriber in self.subscribers:
                    if not await subscriber.wait_for(publisher.published):
                        break
                else:
                    self.recovered = True
            except WSClientError as exc:
                self.stop_error = exc
        waited = anyio.current_time() - started
        verdict = "caught up" if self.recovered else "did NOT catch up"
        self.console.line("CHECK", f"{verdict} in {waited:.2f} s: {self._status()}")

    # Private helpers.

    def _status(self) -> str:
        publisher, clients = self.publisher, list(self.logs)
        assert publisher is not None
        pending = len(publisher.pending())
        buffered = sum(client.stats.buffered for client in clients)
        up = sum(client.state is ClientState.CONNECTED for client in clients)
        received = "/".join(str(s.received) for s in self.subscribers)
        return (
            f"up {up}/{len(clients)}  published {publisher.published} "
            f"({publisher.published - pending} acked / {pending} pending)  "
            f"received {received}  "
            f"reconnects {sum(client.stats.reconnects for client in clients)}  "
            f"buffered {pending} pub + {buffered} send  "
            f"lost {sum(s.gap_lost for s in self.subscribers)}  "
            f"duplicated {sum(s.duplicated for s in self.subscribers)}"
        )

    def _print_traffic(self, interrupted: bool) -> None:
        out, publisher = self.console.plain, self.publisher
        if publisher is None:
            return
        published, pending = publisher.published, len(publisher.pending())
        out(
            f"published:           {published}, {published - pending} acked, "
            f"{pending} not acked; {publisher.resent} resent after a lost ack "
            f"(the server published each once)"
        )
        if self.status is not None:
            out(f"status updates:      {self.status.describe()}")
        for s in self.subscribers:
            # Interrupted, what is still in flight is not lost: only the gaps are.
            lost = s.gap_lost if interrupted else s.lost(published)
            out(
                f"{'received by ' + s.name + ':':<20} {s.received} of {published}: "
                f"{lost} lost, {s.duplicated} duplicated, {s.reordered} reordered "
                f"({s.gaps} gaps reported)"
            )

    def _problems(self) -> list[str]:
        publisher = self.publisher
        errors = [self.stop_error]
        if publisher is not None:
            errors.append(publisher.error)
        errors += [s.error for s in self.subscribers]
        problems = [f"a client stopped: {error}" for error in errors if error]
        if not self.recovered:
            problems.append(f"no full recovery within {RECOVERY_TIMEOUT:g} s")
        if self.status is not None and self.status.failed:
            problems.append(f"{self.status.failed} status updates dropped or expired")
        if publisher is None:
            return problems
        published, pending = publisher.published, len(publisher.pending())
        if pending:
            problems.append(f"{pending} of {published} publications not acked")
        problems += [
            f"{s.name} did not get each publication exactly once, in order"
            for s in self.subscribers
            if not s.exact(published)
        ]
        return problems

    def _make_client(self, name: str, url: str) -> Client:
        log = ClientLog(name, self.console.line)
        client = Client(
            url,
            protocol=ReferenceProtocol(),
            publish_window=PUBLISH_WINDOW,
            **log.callbacks(),
            **CLIENT_OPTIONS,
        )
        self.logs[client] = log
        return client

    def _print_header(self, url: str) -> None:
        config, out = self.config, self.console.plain
        out(
            f"wsclient demo: server {url} (in-process), backend {config.backend}, "
            f"{config.duration:g} s, ~{config.fault_rate:g} faults/s, seed {self.seed}"
        )
        out("clients: " + ", ".join(f"{k}={v}" for k, v in CLIENT_OPTIONS.items()))
        out(
            f"traffic: a publisher sends {PUBLISH_RATE:g} acknowledged publications/s "
            f"on {CHANNEL!r} (publish_window={PUBLISH_WINDOW}) to "
            f"{len(SUBSCRIBERS)} subscribers, and {STATUS_RATE:g} plain status "
            f"sends/s (key='status'); Ctrl-C stops and summarizes"
        )
