"""``--profile FIGURE``: where the time of each side goes, with cProfile.

Profiling slows Python code several times over, and not evenly: use it to
find hot spots, never for the ratios.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from typing import TYPE_CHECKING

import anyio

from .clients import BLOCKS, Backend
from .method import BLOCK_TIMEOUT

if TYPE_CHECKING:
    from .figures import Figure

__all__ = ["profile"]

BLOCKS_PROFILED = 3
LINES = 30


async def profile(figure: Figure, backend: Backend, url: str, count: int) -> str:
    """Profile ``BLOCKS_PROFILED`` blocks of each side; return both reports."""
    reports = []
    for side in dict.fromkeys(figure.sides):  # Once for A/A.
        block = BLOCKS[figure.kind][side]
        with anyio.fail_after(BLOCK_TIMEOUT):
            await block(backend, url, count, figure.size)  # Warm-up.
        profiler = cProfile.Profile()
        total = 0.0
        for _ in range(BLOCKS_PROFILED):
            with anyio.fail_after(BLOCK_TIMEOUT):
                profiler.enable()
                try:
                    sample = await block(backend, url, count, figure.size)
                finally:
                    profiler.disable()
            total += sample.elapsed
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(LINES)
        if side == "wsclient":  # Where wsclient's own code spends its time.
            stats.sort_stats("cumulative").print_stats(r"wsclient[/\\]", LINES)
        messages = BLOCKS_PROFILED * count
        reports.append(
            f"=== {figure.name} on {backend}, {side}: {messages} messages, "
            f"{total / messages * 1e6:.2f} µs per message under the profiler\n"
            + out.getvalue()
        )
    return "\n".join(reports)
