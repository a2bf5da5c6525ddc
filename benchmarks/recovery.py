"""Figure 4: recovery after an abort, with its budget measured on raw websockets.

Both need a server fault at a known moment. The reference server runs in
another process and reports when it injected the fault on the clock that
every process shares (``time.perf_counter()``, ``CLOCK_MONOTONIC`` on Linux),
and the client records when it noticed, in its own callbacks and iterator:
no sleeps, no polling. The figure is the difference.

Recovery is judged against a budget measured in the same run on the same
server with raw websockets: one opening handshake plus three round trips
(noticing the reset, the resubscription, and delivering the replay), each
measured after an idle pause as long as the backoff delay, as the recovery
meets them (back-to-back figures, two to three times lower, are reported
too).
"""

from __future__ import annotations

import contextlib
import json
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

import anyio
from websockets.exceptions import ConnectionClosed

import wsclient

from .findings import Finding, ms, spread

if TYPE_CHECKING:
    from .clients import Backend
    from .resilience_control import ReferenceServer

__all__ = ["FAST_BACKOFF", "STEP_TIMEOUT", "WARMUP", "Timeline", "baseline", "recovery"]

CHANNEL = "recovery"
RAW_CHANNEL = "recovery-raw"
STEP_TIMEOUT = 10.0
"""Seconds one abort, stall or reconnection may take before the figure fails."""
WARMUP = 2
"""Aborts (or stalls) done first and not counted: first-time costs."""
HANDSHAKES = 20
ROUND_TRIPS = 50
BUDGET_ROUND_TRIPS = 3
# A short fixed backoff with no escalation between aborts, so that 50 aborts
# take seconds: the delay is subtracted anyway, whatever it is.
FAST_BACKOFF: dict[str, Any] = {"backoff_initial": 0.05, "stable_after": 0.0}


def _raw_connect(backend: Backend, url: str) -> Any:
    """websockets' own connect with its defaults (no proxy), as a user calls it."""
    if backend == "asyncio":
        from websockets.asyncio.client import connect as asyncio_connect

        return asyncio_connect(url, proxy=None)
    from websockets.trio.client import connect as trio_connect

    return trio_connect(url, proxy=None)


async def baseline(
    backend: Backend, url: str, idle: float = 0.0
) -> dict[str, list[float]]:
    """Raw websockets' opening handshakes and echo round trips, in seconds.

    A handshake is ``connect()`` until the connection is open: TCP connect,
    upgrade request, 101 response. A round trip is a short text message
    echoed by the reference server. With ``idle``, each one follows a pause
    that long, as during a recovery (where the handshake follows the backoff
    delay): after a pause both processes' CPUs have gone idle and their
    caches cold, and here each costs two to three times as much (about
    1.3 ms and 0.7 ms after 50 ms, 0.55 ms and 0.2 ms back to back).
    """
    clock = time.perf_counter
    handshakes: list[float] = []
    round_trips: list[float] = []
    with anyio.fail_after(STEP_TIMEOUT * 3 + (HANDSHAKES + ROUND_TRIPS) * idle * 2):
        for index in range(HANDSHAKES + 1):
            if idle:
                await anyio.sleep(idle)
            started = clock()
            async with _raw_connect(backend, url) as ws:
                opened = clock()
                if index:  # The first one is a warm-up.
                    handshakes.append(opened - started)
                if index == HANDSHAKES:
                    for _ in range(ROUND_TRIPS + 5):
                        if idle:
                            await anyio.sleep(idle)
                        started = clock()
                        await ws.send("x" * 32)
                        await ws.recv()
                        round_trips.append(clock() - started)
    return {"handshake": handshakes, "round_trip": round_trips[5:]}


class Timeline:
    """What the client's callbacks saw, with the time they saw it."""

    def __init__(self) -> None:
        self.disconnects: list[tuple[float, float, str]] = []  # time, delay, reason
        self.connects: list[float] = []
        self.changed = anyio.Event()

    def on_disconnect(self, event: wsclient.DisconnectEvent) -> None:
        self.disconnects.append((time.perf_counter(), event.delay or 0.0, event.reason))
        self._changed()

    def on_connect(self, event: wsclient.ConnectEvent) -> None:
        self.connects.append(time.perf_counter())
        self._changed()

    async def wait_for(self, disconnects: int, connects: int) -> None:
        """Wait until the callbacks have seen that many events of each kind."""
        while len(self.disconnects) < disconnects or len(self.connects) < connects:
            self.changed = anyio.Event()
            await self.changed.wait()  # Each wake-up is a new event: bounded.

    def _changed(self) -> None:
        self.changed.set()


async def _next_message(
    messages: wsclient.Subscription[wsclient.Message], into: list[Any]
) -> None:
    message = await anext(messages)
    into += [time.perf_counter(), message.data]


async def _wsclient_recovery(
    server: ReferenceServer, aborts: int, phases: dict[str, list[float]]
) -> list[float]:
    """wsclient's side: each abort's overhead; ``phases`` gets its parts.

    The parts: ``detect`` (abort to the disconnect event), ``reconnect``
    (then, minus the delay, to the connect event: the sleep's overshoot, the
    handshake and the resubscription, which wsclient waits for before it
    reports the connection), ``deliver`` (then to the replay delivered).
    """
    timeline = Timeline()
    overheads: list[float] = []
    async with wsclient.Client(
        server.url,
        proxy=None,
        protocol=wsclient.ReferenceProtocol(),
        on_disconnect=timeline.on_disconnect,
        on_connect=timeline.on_connect,
        **FAST_BACKOFF,
    ) as client:
        messages = client.subscribe(CHANNEL)
        await client.wait_connected(timeout=STEP_TIMEOUT)
        for index in range(WARMUP + aborts):
            seen = len(timeline.disconnects), len(timeline.connects)
            got: list[Any] = []
            with anyio.fail_after(STEP_TIMEOUT):
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(_next_message, messages, got)
                    answer = await server.command(
                        STEP_TIMEOUT, "abort", channel=CHANNEL, data=index
                    )
                await timeline.wait_for(seen[0] + 1, seen[1] + 1)
            delivered, data = got
            if data != index:
                raise AssertionError(f"abort {index}: got {data!r} first")
            if index < WARMUP:
                continue
            disconnects = timeline.disconnects[seen[0] :]
            noticed, connected = disconnects[0][0], timeline.connects[seen[1]]
            # More than one disconnect: an attempt failed; all delays count.
            delay = sum(d for _, d, _ in disconnects)
            overheads.append(delivered - answer["t"] - delay)
            phases["detect"].append(noticed - answer["t"])
            phases["reconnect"].append(connected - noticed - delay)
            phases["deliver"].append(delivered - connected)
            phases["failed_attempts"].append(len(disconnects) - 1)
    return overheads


async def _closed(ws: Any, into: list[float]) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.recv()
    into.append(time.perf_counter())


async def _raw_recovery(
    backend: Backend,
    server: ReferenceServer,
    aborts: int,
    phases: dict[str, list[float]],
) -> list[float]:
    """Raw websockets doing the same by hand: what the overhead costs anyway.

    Notice the reset, sleep a delay drawn as wsclient draws it, connect,
    resubscribe from the last position, read until the replayed ``pub``.
    """
    clock, draw = time.perf_counter, random.Random().uniform
    base = FAST_BACKOFF["backoff_initial"]
    overheads: list[float] = []
    since: dict[str, Any] | None = None
    aborted: tuple[float, float] | None = None  # (abort time, delay)
    noticed: list[float] = []
    for index in range(WARMUP + aborts + 1):
        with anyio.fail_after(STEP_TIMEOUT):
            if aborted is not None:
                await anyio.sleep(aborted[1])
            async with _raw_connect(backend, server.url) as ws:
                request = {"type": "subscribe", "channel": RAW_CHANNEL, "id": index}
                await ws.send(
                    json.dumps(
                        request if since is None else {**request, "since": since}
                    )
                )
                while (message := json.loads(await ws.recv()))["type"] != "pub":
                    if aborted is None:  # The first subscribe: nothing to replay.
                        break
                if aborted is not None:
                    if index > WARMUP:
                        delivered = clock()
                        overheads.append(delivered - aborted[0] - aborted[1])
                        phases["detect"].append(noticed[-1] - aborted[0])
                        phases["reconnect"].append(delivered - noticed[-1] - aborted[1])
                    if message["data"] != index - 1:
                        raise AssertionError(f"abort {index - 1}: got {message!r}")
                since = {"epoch": message["epoch"], "offset": message["offset"]}
                if index == WARMUP + aborts:
                    break
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(_closed, ws, noticed)
                    answer = await server.command(
                        STEP_TIMEOUT, "abort", channel=RAW_CHANNEL, data=index
                    )
            aborted = answer["t"], draw(base / 2, base)
    return overheads


async def recovery(backend: Backend, server: ReferenceServer, aborts: int) -> Finding:
    """Abort the connection ``aborts`` times; time each recovery minus its delay.

    Each abort comes with a publication made while the client is away; the
    first message delivered after the abort is its replay on the
    resubscription, so recovery ends when the application holds it. Raw
    websockets doing the same by hand is measured alongside, for context.
    """
    warm = await baseline(backend, server.url)
    # The delay wsclient draws averages 3/4 of backoff_initial (jitter 0.5).
    raw = await baseline(backend, server.url, FAST_BACKOFF["backoff_initial"] * 0.75)
    phases: dict[str, list[float]] = {
        "detect": [],
        "reconnect": [],
        "deliver": [],
        "failed_attempts": [],
    }
    overheads: list[float] = []
    raw_overheads: list[float] = []
    raw_phases: dict[str, list[float]] = {"detect": [], "reconnect": []}
    # ABBA in halves, so that a drift in the machine's load weighs on both.
    first, second = aborts // 2, aborts - aborts // 2
    raw_overheads += await _raw_recovery(backend, server, first, raw_phases)
    overheads += await _wsclient_recovery(server, first, phases)
    overheads += await _wsclient_recovery(server, second, phases)
    raw_overheads += await _raw_recovery(backend, server, second, raw_phases)
    handshake = statistics.median(raw["handshake"])
    round_trip = statistics.median(raw["round_trip"])
    budget = handshake + BUDGET_ROUND_TRIPS * round_trip
    warm_budget = statistics.median(warm["handshake"]) + BUDGET_ROUND_TRIPS * (
        statistics.median(warm["round_trip"])
    )
    overhead, raw_overhead = spread(overheads), spread(raw_overheads)
    median, p99 = overhead["median"], overhead["p99"]
    raw_median = raw_overhead["median"]  # As wsclient's, and the JSON's.
    return Finding(
        "recovery",
        backend,
        f"overhead p50 {ms(median)}, p99 {ms(p99)} ({len(overheads)} aborts, "
        f"minus backoff; raw by hand p50 {ms(raw_median)})",
        f"p50 <= handshake {ms(handshake)} + 3 RTT {ms(round_trip)} = {ms(budget)}"
        f" (each after an idle pause as long as the backoff; back to back: "
        f"{ms(warm_budget)})",
        median <= budget,
        {
            "aborts": len(overheads),
            "overhead_s": overhead,
            "overheads_s": overheads,
            "phases_median_s": {
                k: statistics.median(v) for k, v in phases.items() if k[0] != "f"
            },
            "phases_s": phases,
            "raw_by_hand_overhead_s": raw_overhead,
            "raw_by_hand_phases_median_s": {
                k: statistics.median(v) for k, v in raw_phases.items()
            },
            "raw_handshake_s": spread(raw["handshake"]),
            "raw_round_trip_s": spread(raw["round_trip"]),
            "budget_s": budget,
            "budget_idle_s": FAST_BACKOFF["backoff_initial"] * 0.75,
            "raw_handshake_back_to_back_s": spread(warm["handshake"]),
            "raw_round_trip_back_to_back_s": spread(warm["round_trip"]),
            "budget_back_to_back_s": warm_budget,
            "p99_within_budget": p99 <= budget,
            "client_options": {"proxy": None, **FAST_BACKOFF},
        },
    )
