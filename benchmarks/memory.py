"""Figure 6: memory per idle connection, wsclient against raw websockets.

Each side runs alone in a fresh process (``benchmarks.memory_probe``), once
measured with tracemalloc (Python allocations, exact, the figure judged) and
once by its RSS (what the machine pays, tracemalloc off). The server is the
reference server in its own process, so none of its memory is counted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .findings import Finding

if TYPE_CHECKING:
    from .clients import Backend

ROOT = Path(__file__).resolve().parent.parent
"""Where ``python -m benchmarks...`` finds the package."""

__all__ = ["memory"]

KiB = 1024
GOAL_EXTRA = 4 * KiB
"""Per idle connection, wsclient may take at most raw websockets' + 4 KiB."""
PROBE_TIMEOUT = 180.0
SIDES = ("raw", "wsclient", "wsclient_sub")
MEASURES = ("tracemalloc", "rss")


async def _probe(
    backend: Backend, side: str, count: int, url: str, measure: str, tune: bool
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "benchmarks.memory_probe",
        backend, side, str(count), url, measure,
    ]  # fmt: skip
    if not tune:
        command.append("--no-malloc-tuning")
    with anyio.fail_after(PROBE_TIMEOUT):  # Cancelling run_process kills it.
        done = await anyio.run_process(command, cwd=ROOT, stderr=None)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[0])
    return result


def _kib(value: float) -> str:
    return f"{value / KiB:.1f}"


async def memory(backend: Backend, url: str, count: int, tune: bool) -> Finding:
    """Open ``count`` idle connections per side, each side in its own process."""
    per: dict[str, dict[str, float]] = {measure: {} for measure in MEASURES}
    top: dict[str, Any] = {}
    for measure in MEASURES:
        for side in SIDES:
            result = await _probe(backend, side, count, url, measure, tune)
            per[measure][side] = result["per_connection"]
            if "top" in result:
                top[side] = result["top"]
    exact, rss = per["tracemalloc"], per["rss"]
    limit = exact["raw"] + GOAL_EXTRA
    return Finding(
        "memory",
        backend,
        f"KiB per idle connection (tracemalloc / RSS): raw {_kib(exact['raw'])} / "
        f"{_kib(rss['raw'])}, wsclient {_kib(exact['wsclient'])} / "
        f"{_kib(rss['wsclient'])}, with a subscription "
        f"{_kib(exact['wsclient_sub'])} / {_kib(rss['wsclient_sub'])} "
        f"({count} connections)",
        f"wsclient <= raw + 4 KiB = {_kib(limit)} KiB (tracemalloc)",
        exact["wsclient"] <= limit,
        {
            "connections": count,
            "bytes_per_connection": per,
            "limit_bytes": limit,
            "wsclient_extra_bytes": exact["wsclient"] - exact["raw"],
            "top_allocations_bytes_per_connection": top,
        },
    )
