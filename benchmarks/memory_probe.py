"""One side of the memory figure, alone in a fresh process.

Run as ``python -m benchmarks.memory_probe BACKEND SIDE COUNT URL MEASURE``:
it opens COUNT idle connections of SIDE (``raw``, ``wsclient`` or
``wsclient_sub``) to URL and prints one JSON line with the memory they took,
measured by MEASURE (``tracemalloc`` or ``rss``), then closes them.

A fresh process per side and per measure, because memory freed by one side
stays in the process (Python's arenas, glibc's heap) and the next side would
reuse it: the RSS delta would read near zero. And tracemalloc costs memory
per traced block, so RSS is measured without it.

Before the baseline, one connection of the side is opened and closed, so that
imports, caches and first-use allocations are not counted per connection.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tracemalloc
from typing import TYPE_CHECKING, Any

import anyio

import wsclient

from .machine import tune_malloc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["SIDES", "main"]

SIDES = ("raw", "wsclient", "wsclient_sub")
TIMEOUT = 120.0
"""Seconds to open, measure and close every connection."""
TOP = 10
"""tracemalloc's biggest allocation sites, by line, reported for wsclient sides."""
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss() -> int:
    """The process's resident set size now, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@contextlib.asynccontextmanager
async def _raw(backend: str, url: str) -> AsyncIterator[object]:
    # websockets' defaults (keepalive every 20 s...), as a user calls it.
    if backend == "asyncio":
        from websockets.asyncio.client import connect as asyncio_connect

        async with asyncio_connect(url, proxy=None) as ws:
            yield ws
    else:
        from websockets.trio.client import connect as trio_connect

        async with trio_connect(url, proxy=None) as ws:
            yield ws


@contextlib.asynccontextmanager
async def _wsclient(url: str, subscribe: bool) -> AsyncIterator[object]:
    # A realistic idle client: the defaults, without a proxy lookup.
    protocol = wsclient.ReferenceProtocol() if subscribe else None
    async with wsclient.Client(url, proxy=None, protocol=protocol) as client:
        if subscribe:
            # Subscribed before the connection opens: wait_connected() then
            # returns once the server has answered the subscribe.
            subscription = client.subscribe("idle")
        await client.wait_connected()
        if subscribe and subscription.state is not wsclient.SubscriptionState.ACTIVE:
            raise AssertionError(f"not subscribed: {subscription!r}")
        yield client


def _open(
    backend: str, side: str, url: str
) -> contextlib.AbstractAsyncContextManager[object]:
    if side == "raw":
        return _raw(backend, url)
    return _wsclient(url, subscribe=side == "wsclient_sub")


def _measure(measure: str) -> int:
    gc.collect()
    if measure == "tracemalloc":
        return tracemalloc.get_traced_memory()[0]
    return rss()


async def probe(
    backend: str, side: str, count: int, url: str, measure: str
) -> dict[str, Any]:
    """Open ``count`` connections of ``side``; print and return what they took.

    One deadline covers everything: a cancel scope must enclose the exit
    stack, whose nested task groups it would otherwise cut across.
    """
    with anyio.fail_after(TIMEOUT):
        async with _open(backend, side, url):
            pass  # Warm-up: imports and first-use allocations.
        async with contextlib.AsyncExitStack() as stack:
            before = _measure(measure)
            snapshot = tracemalloc.take_snapshot() if measure == "tracemalloc" else None
            for _ in range(count):
                await stack.enter_async_context(_open(backend, side, url))
            after = _measure(measure)
            result: dict[str, Any] = {
                "backend": backend,
                "side": side,
                "count": count,
                "measure": measure,
                "before": before,
                "after": after,
                "per_connection": (after - before) / count,
            }
            if snapshot is not None and side != "raw":
                diff = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")
                result["top"] = [
                    [str(stat.traceback[0]), stat.size_diff / count]
                    for stat in diff[:TOP]
                ]
            # Out before the connections close: closing them is not measured.
            print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["asyncio", "trio"])
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("count", type=int)
    parser.add_argument("url")
    parser.add_argument("measure", choices=["tracemalloc", "rss"])
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning:
        tune_malloc()
    if args.measure == "tracemalloc":
        tracemalloc.start()
    anyio.run(
        probe, args.backend, args.side, args.count, args.url, args.measure,
        backend=args.backend,
    )  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
