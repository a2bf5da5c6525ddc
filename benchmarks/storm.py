"""Figure 7: a reconnect storm, 1,000 subscribed clients after a server restart.

The reference server in the other process goes down (every connection
dropped with an RST, connections refused) and comes back on the same port;
it records when each handshake completes and when the last of the clients
has resubscribed. The clients keep the default backoff and jitter: the
jitter is what must spread their reconnections, so that the restarted server
sees a ramp rather than a wall.

Two histograms of 100 ms bins from the moment the server came back: the
handshakes the server completed, and the attempts the clients scheduled
(each disconnect time plus the delay it announced). The second shows the
jitter alone; the first also carries what the clients' one CPU and the
server could do.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

import wsclient

from .findings import Finding, ms

if TYPE_CHECKING:
    from .clients import Backend
    from .resilience_control import ReferenceServer

__all__ = ["storm"]

CHANNEL = "storm"
BIN = 0.1
"""Seconds per histogram bin."""
SPREAD_FACTOR = 1.5
"""The peak bin may hold this many times an even share of the jitter window."""
LAG_TICK = 0.01
CONNECT_TIMEOUT = 60.0
STORM_TIMEOUT = 90.0
CLOSE_TIMEOUT = 30.0


def histogram(times: list[float], origin: float) -> list[int]:
    """Counts per :data:`BIN` of ``times`` from ``origin`` (earlier ones in bin 0)."""
    if not times:
        return []
    bins = [0] * (int((max(times) - origin) / BIN) + 1)
    for moment in times:
        bins[max(0, int((moment - origin) / BIN))] += 1
    return bins


def summary(bins: list[int]) -> dict[str, Any]:
    """Peak, spread and the bins themselves, for the table and the JSON."""
    busy = [count for count in bins if count]
    first = next((i for i, count in enumerate(bins) if count), 0)
    return {
        "peak_per_bin": max(busy, default=0),
        "peak_per_s": max(busy, default=0) / BIN,
        "busy_bins": len(busy),
        "median_busy_bin": sorted(busy)[len(busy) // 2] if busy else 0,
        "first_bin_s": first * BIN,
        "last_bin_s": (len(bins) - 1) * BIN,
        "bins": bins,
    }


async def _hold(
    url: str,
    scheduled: list[float],
    stop: anyio.Event,
) -> None:
    def on_disconnect(event: wsclient.DisconnectEvent) -> None:
        if event.delay is not None:
            scheduled.append(time.perf_counter() + event.delay)

    # Defaults (backoff 1 s, x2, jitter 0.5), no proxy lookup.
    async with wsclient.Client(
        url,
        proxy=None,
        protocol=wsclient.ReferenceProtocol(),
        on_disconnect=on_disconnect,
    ) as client:
        client.subscribe(CHANNEL)
        await stop.wait()


async def _watch_lag(lags: list[float], stop: anyio.Event) -> None:
    """Record how late a 10 ms tick wakes: how long the clients' loop was busy.

    Not a synchronisation: a probe of the loop, for the report.
    """
    while not stop.is_set():
        started = time.perf_counter()
        await anyio.sleep(LAG_TICK)
        lags.append(time.perf_counter() - started - LAG_TICK)


async def storm(
    backend: Backend, server: ReferenceServer, clients: int, down: float = 0.0
) -> Finding:
    """Subscribe ``clients`` clients, restart the server, watch them come back.

    ``down`` is how long the server stays down; 0 is the densest storm, as
    every client's first retry then succeeds.
    """
    scheduled: list[float] = []
    lags: list[float] = []
    stop, storming = anyio.Event(), anyio.Event()
    # The clients close as the task group exits: bounded as well.
    with anyio.fail_after(CONNECT_TIMEOUT + STORM_TIMEOUT + CLOSE_TIMEOUT):
        async with anyio.create_task_group() as task_group:
            for _ in range(clients):
                task_group.start_soon(_hold, server.url, scheduled, stop)
            base = await server.command(
                CONNECT_TIMEOUT, "wait_subscriptions", n=clients
            )
            task_group.start_soon(_watch_lag, lags, storming)
            answer = await server.command(
                STORM_TIMEOUT, "restart", n=clients, down=down
            )
            storming.set()
            stop.set()
    up = answer["up"]
    measured = summary(histogram(answer["handshakes"], up))
    planned = summary(histogram(scheduled, up))
    jitter_window = 1.0 * 0.5  # backoff_initial x backoff_jitter, the defaults
    allowed = SPREAD_FACTOR * clients * BIN / jitter_window
    counters = answer["counters"]
    resubscribed = answer["done"] - answer["down"]
    # The verdict is on the attempts the jitter scheduled: the handshakes
    # the server saw also carry the one CPU that runs all the clients here
    # (1,000 machines would not share it), which bunches them up.
    return Finding(
        "storm",
        backend,
        f"{clients} resubscribed {resubscribed:.2f} s after going down "
        f"(down {ms(answer['up'] - answer['down'])}); per 100 ms: scheduled "
        f"attempts peak {planned['peak_per_bin']} over {planned['busy_bins']} "
        f"bins; handshakes at the server peak {measured['peak_per_bin']} "
        f"({measured['peak_per_s']:.0f}/s), {measured['busy_bins']} bins over "
        f"{measured['first_bin_s']:.1f}-{measured['last_bin_s']:.1f} s, median "
        f"{measured['median_busy_bin']}; clients' loop blocked up to "
        f"{ms(max(lags, default=0.0))}",
        f"jitter spreads them: scheduled peak bin <= {allowed:.0f}",
        planned["peak_per_bin"] <= allowed,
        {
            "clients": clients,
            "down_s": answer["up"] - answer["down"],
            "resubscribed_after_down_s": resubscribed,
            "resubscribed_after_up_s": answer["done"] - up,
            "handshakes": measured,
            "scheduled_attempts": planned,
            "allowed_peak_per_bin": allowed,
            "bin_s": BIN,
            "server_counters_before": base,
            "server_counters_after": counters,
            "handshakes_recorded": len(answer["handshakes"]),
            "client_loop_lag_max_s": max(lags, default=0.0),
            "client_loop_lags_over_50ms": sum(lag > 0.05 for lag in lags),
        },
    )
