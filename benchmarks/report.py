"""The table printed and the JSON written."""

from __future__ import annotations

import json
from importlib import metadata
from typing import TYPE_CHECKING, Any

from .clients import CHANNEL
from .method import quantile
from .server import publication

if TYPE_CHECKING:
    from pathlib import Path

    from .figures import Figure
    from .method import Result

__all__ = ["message_bytes", "table", "write_json"]


def message_bytes(figure: Figure, count: int) -> int:
    """Bytes of one WebSocket message of ``figure`` (a typical ``pub`` for
    subscriptions, ``publish`` for publications: the envelope around
    ``size`` bytes of data)."""
    if figure.kind == "recv_sub":
        return len(publication(CHANNEL, count // 2, figure.size).encode())
    if figure.kind == "publish":
        request = {"type": "publish", "channel": CHANNEL, "data": "x" * figure.size}
        msg_id = f"{'0' * 16}-{count // 2}"  # As clients.raw_publish numbers them.
        return len(json.dumps({**request, "id": count // 2, "msg_id": msg_id}))
    return figure.size


def _throughput(result: Result, side: str, size: int) -> str:
    rate = result.rate(side)
    return f"{rate / 1e3:8.1f}k msg/s {rate * size / 1e6:8.1f} MB/s"


def _latency(result: Result, side: str) -> str:
    p50, p99 = (result.latency(side, q) * 1e6 for q in (0.50, 0.99))
    return f"p50 {p50:6.1f} µs  p99 {p99:6.1f} µs"


def row(result: Result) -> list[str]:
    figure = result.figure
    size = message_bytes(figure, result.count)
    if figure.metric == "latency":
        a, b = _latency(result, "A"), _latency(result, "B")
    else:
        a, b = _throughput(result, "A", size), _throughput(result, "B", size)
    ratios = result.group_ratios
    spread = f"{quantile(ratios, 0.25):.3f}-{quantile(ratios, 0.75):.3f}"
    cpu = result.group_cpu_ratios
    cpu_spread = f"{quantile(cpu, 0.25):.3f}-{quantile(cpu, 0.75):.3f}"
    meets = figure.meets(result.ratio)
    goal = figure.goal_text()
    if meets is not None:
        goal += " ok" if meets else " MISSED"
    return [
        figure.name,
        result.backend,
        a,
        b,
        f"{result.ratio:.3f}",
        spread,
        f"{result.cpu_ratio:.3f}",
        cpu_spread,
        str(len(ratios)),
        goal,
    ]


HEADER = [
    "figure", "backend", "A", "B", "B/A", "IQR", "cpu B/A", "IQR", "groups", "goal"
]  # fmt: skip


def table(results: list[Result], machine: dict[str, Any]) -> str:
    """The results as a text table, after a line describing the machine."""
    lines = aligned([HEADER] + [row(r) for r in results if r.skipped is None])
    pinning = (
        f"server on CPU {machine['server_cpu']}, "
        f"benchmark on CPU {machine['benchmark_cpu']}"
        if machine["server_cpu"] is not None
        else "not pinned"
    )
    head = [
        f"machine: {machine['cpu']}, {machine['cpus']} CPUs ({pinning}), "
        f"load {machine['load_average']}",
        f"{machine['python']} on {machine['platform']}; websockets "
        f"{machine['websockets']}, anyio {machine['anyio']}, trio {machine['trio']}"
        f"; glibc heap trimming {'off' if machine['malloc_tuned'] else 'on'}",
        "A = raw websockets (asyncio or websockets.trio), B = wsclient; A/A: raw "
        "both; ctx_*: B = another client (picows, aiohttp; tcp: a raw TCP reader "
        "of frame headers), asyncio only, context without a goal. B/A: B's "
        "speed relative to A's (messages/s; for echo, p50 of A over p50 of B): "
        "1.0 = as fast as raw, higher is better; cpu B/A: A's CPU time over B's "
        "for the same work. Medians over groups of ABBA/BAAB blocks, with their "
        "interquartile range.",
        "",
    ]
    context = _context_versions(results)
    if context:
        head.insert(2, f"context lines: {context}")
    if machine["asyncio_debug"]:
        head.insert(0, "WARNING: PYTHONASYNCIODEBUG is set: figures are meaningless")
    return "\n".join(head + lines)


def aligned(rows: list[list[str]]) -> list[str]:
    """``rows`` (the header first) as text columns, a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return [line.rstrip() for line in lines]


def _context_versions(results: list[Result]) -> str:
    """The versions of the other clients measured, e.g. ``picows 2.3.1``."""
    measured = {r.figure.requires for r in results if r.skipped is None}
    names = sorted(name for name in measured if name is not None)
    return ", ".join(f"{name} {metadata.version(name)}" for name in names)


def write_json(
    path: Path,
    results: list[Result],
    machine: dict[str, Any],
    config: dict[str, Any],
) -> None:
    data = {
        "machine": machine,
        "config": config,
        "results": [r.as_dict(message_bytes(r.figure, r.count)) for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
