"""Figure 5: how fast the heartbeat finds a half-open link.

The reference server in the other process stops all traffic while TCP stays
open (``stall()``), right after it answered one of the client's pings, and
reports when; the client's ``on_disconnect`` callback records when it gave
up on the link. The difference is the detection time, against the
configured ``ping_interval + ping_timeout``.
"""

from __future__ import annotations

import logging
import statistics
from typing import TYPE_CHECKING

import anyio

import wsclient

from .findings import Finding, ms, spread
from .recovery import FAST_BACKOFF, STEP_TIMEOUT, WARMUP, Timeline

if TYPE_CHECKING:
    from .clients import Backend
    from .resilience_control import ReferenceServer

__all__ = ["half_open"]

MARGIN = 0.10
"""Half-open links must be found within (interval + timeout) x 1.10."""


async def half_open(
    backend: Backend,
    server: ReferenceServer,
    repetitions: int,
    interval: float = 0.2,
    timeout: float = 0.2,
) -> Finding:
    """Stall the server right after it answered a ping; time until the disconnect.

    That moment is the worst case: the client's next ping leaves a full
    interval later, and its timeout runs from there, so detection should
    take interval + timeout, plus scheduling.
    """
    # Each detection logs a warning: expected here, noise on the terminal.
    logger = logging.getLogger("wsclient")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return await _half_open(backend, server, repetitions, interval, timeout)
    finally:
        logger.setLevel(level)


async def _half_open(
    backend: Backend,
    server: ReferenceServer,
    repetitions: int,
    interval: float,
    timeout: float,
) -> Finding:
    timeline = Timeline()
    detections: list[float] = []
    reasons: set[str] = set()
    async with wsclient.Client(
        server.url,
        proxy=None,
        ping_interval=interval,
        ping_timeout=timeout,
        on_disconnect=timeline.on_disconnect,
        **FAST_BACKOFF,
    ) as client:
        for index in range(WARMUP + repetitions):
            await client.wait_connected(timeout=STEP_TIMEOUT)
            seen = len(timeline.disconnects)
            answer = await server.command(STEP_TIMEOUT, "stall_after_ping")
            with anyio.fail_after(STEP_TIMEOUT):
                await timeline.wait_for(seen + 1, 0)
            await server.command(STEP_TIMEOUT, "resume")
            noticed, _, reason = timeline.disconnects[seen]
            if index >= WARMUP:
                detections.append(noticed - answer["t"])
                reasons.add(reason)
    bound = (interval + timeout) * (1 + MARGIN)
    worst, median = max(detections), statistics.median(detections)
    return Finding(
        "half_open",
        backend,
        f"detected in p50 {ms(median)}, max {ms(worst)} "
        f"({len(detections)} stalls, ping {interval:g} s + timeout {timeout:g} s)",
        f"max <= (interval + timeout) x 1.1 = {ms(bound)}",
        worst <= bound,
        {
            "stalls": len(detections),
            "ping_interval_s": interval,
            "ping_timeout_s": timeout,
            "detection_s": spread(detections),
            "detections_s": detections,
            "bound_s": bound,
            "reasons": sorted(reasons),
        },
    )
