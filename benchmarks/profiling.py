"""``--profile FIGURE``: where the time of each side goes, with cProfile.

Profiling slows Python code several times over, and not evenly: use it to
find hot spots, never for the ratios.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
from typing import TYPE_CHECKING

import anyio

from .figures import skip_reason
from .method import BLOCK_TIMEOUT, block_function

if TYPE_CHECKING:
    from .clients import Backend
    from .figures import Figure

__all__ = ["profile"]

BLOCKS_PROFILED = 3
LINES = 30


async def profile(figure: Figure, backend: Backend, url: str, count: int) -> str:
    """Profile ``BLOCKS_PROFILED`` blocks of each side; return both reports
    (or why ``figure`` cannot run on ``backend``)."""
    skipped = skip_reason(figure, backend)
    if skipped is not None:
        return f"=== {figure.name} skipped: {skipped}"
    reports = []
    for side in dict.fromkeys(figure.sides):  # Once for A/A.
        block = block_function(figure, side)
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
        stats.sort_stats(os.environ.get("BENCH_SORT", "tottime")).print_stats(LINES)
        if side == "wsclient":  # Where wsclient's own code spends its time.
            stats.sort_stats("cumulative").print_stats(r"wsclient[/\\]", LINES)
        messages = BLOCKS_PROFILED * count
        reports.append(
            f"=== {figure.name} on {backend}, {side}: {messages} messages, "
            f"{total / messages * 1e6:.2f} µs per message under the profiler\n"
            + out.getvalue()
        )
    return "\n".join(reports)
