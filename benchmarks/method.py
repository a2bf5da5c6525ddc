"""The method: interleaved ABBA / BAAB blocks, ratio per group, median of groups.

Run on a noisy machine, two measurements taken a minute apart differ by more
than the few percent we look for. So A (raw websockets) and B (wsclient) run
in the same process, in alternating blocks of a fixed amount of work, each on
a fresh connection, with garbage collected before each timed window. Blocks
come in groups of four, ABBA then BAAB, so that a slow drift (another process
starting, the CPU warming up) weighs on both sides alike. Each group gives
one ratio, of the sums of its blocks' times; the figure is the median ratio
over the groups, which shrugs off a group hit by a burst of load.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from .clients import BLOCKS, Backend, Sample
from .context import CONTEXT_BLOCKS
from .figures import skip_reason

if TYPE_CHECKING:
    from .clients import BlockFunction
    from .figures import Figure

__all__ = [
    "BLOCK_TIMEOUT",
    "Result",
    "block_function",
    "measure",
    "orders",
    "quantile",
]

BLOCK_TIMEOUT = 60.0
"""Seconds one block may take before the run fails."""


def orders(groups: int) -> list[str]:
    """The order of the blocks of each group: ABBA, BAAB, ABBA..."""
    return ["ABBA" if index % 2 == 0 else "BAAB" for index in range(groups)]


def block_function(figure: Figure, side: str) -> BlockFunction:
    """The block that ``side`` (a name from ``figure.sides``) runs."""
    kind = figure.kind
    return {**BLOCKS[kind], **CONTEXT_BLOCKS.get(kind, {})}[side]


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank, no interpolation)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Result:
    """A figure measured on one backend."""

    figure: Figure
    backend: Backend
    count: int
    group_ratios: list[float] = field(default_factory=list)
    group_cpu_ratios: list[float] = field(default_factory=list)
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"A": [], "B": []})
    seconds: float = 0.0
    skipped: str | None = None
    """Why the figure was not measured (then it has no ratios)."""

    @property
    def ratio(self) -> float:
        """B's speed relative to A's: the median over groups."""
        return statistics.median(self.group_ratios)

    @property
    def cpu_ratio(self) -> float:
        """A's CPU time over B's, for the same work: the median over groups."""
        return statistics.median(self.group_cpu_ratios)

    def rate(self, side: str) -> float:
        """Messages per second of ``side`` over all its blocks."""
        samples = self.samples[side]
        return self.count * len(samples) / sum(s.elapsed for s in samples)

    def latency(self, side: str, q: float) -> float:
        """The ``q`` quantile of the round trips of ``side``, all blocks pooled."""
        return quantile(_latencies(self.samples[side]), q)

    def as_dict(self, message_bytes: int) -> dict[str, Any]:
        figure = self.figure
        if self.skipped is not None:
            return {
                "figure": figure.name,
                "backend": self.backend,
                "skipped": self.skipped,
            }
        data: dict[str, Any] = {
            "figure": figure.name,
            "backend": self.backend,
            "kind": figure.kind,
            "sides": list(figure.sides),
            "size": figure.size,
            "count_per_block": self.count,
            "groups": len(self.group_ratios),
            "metric": figure.metric,
            "ratio": self.ratio,
            "ratio_q1": quantile(self.group_ratios, 0.25),
            "ratio_q3": quantile(self.group_ratios, 0.75),
            "group_ratios": self.group_ratios,
            "cpu_ratio": self.cpu_ratio,
            "group_cpu_ratios": self.group_cpu_ratios,
            "goal": figure.goal_text() or None,
            "meets_goal": figure.meets(self.ratio),
            "seconds": self.seconds,
        }
        for key, side in zip(("a", "b"), "AB", strict=True):
            data[f"{key}_block_seconds"] = [s.elapsed for s in self.samples[side]]
            data[f"{key}_block_cpu_seconds"] = [s.cpu for s in self.samples[side]]
            data[f"{key}_block_page_faults"] = [
                s.page_faults for s in self.samples[side]
            ]
            if figure.metric == "latency":
                data[f"{key}_p50_us"] = self.latency(side, 0.50) * 1e6
                data[f"{key}_p99_us"] = self.latency(side, 0.99) * 1e6
            else:
                data[f"{key}_messages_per_s"] = self.rate(side)
                data[f"{key}_mb_per_s"] = self.rate(side) * message_bytes / 1e6
        return data


def _latencies(samples: list[Sample]) -> list[float]:
    return [x for s in samples for x in (s.latencies or ())]


def group_ratio(figure: Figure, a: list[Sample], b: list[Sample]) -> float:
    """One group's ratio of speeds, B relative to A: the ratio of the sums of
    block times, A over B; for latency, of the median round trips, A over B."""
    if figure.metric == "latency":
        return statistics.median(_latencies(a)) / statistics.median(_latencies(b))
    return sum(s.elapsed for s in a) / sum(s.elapsed for s in b)


def group_cpu_ratio(a: list[Sample], b: list[Sample]) -> float:
    """One group's ratio of CPU times, A over B (the same work on both sides)."""
    return sum(s.cpu for s in a) / sum(s.cpu for s in b)


async def measure(
    figure: Figure, backend: Backend, url: str, groups: int, count: int
) -> Result:
    """Measure ``figure`` on ``backend``: one warm-up block per side, then
    ``groups`` groups of four blocks of ``count`` messages each.

    A figure that cannot run on ``backend`` (a context line on trio, or
    its client is not installed) is skipped with a note: the result says
    why, and has no ratio.

    Raises:
        TimeoutError: A block took longer than :data:`BLOCK_TIMEOUT`.
    """
    result = Result(figure, backend, count)
    result.skipped = skip_reason(figure, backend)
    if result.skipped is not None:
        print(
            f"  {backend:7} {figure.name:20} skipped: {result.skipped}",
            file=sys.stderr,
            flush=True,
        )
        return result
    run = {"A": block_function(figure, figure.sides[0])}
    run["B"] = block_function(figure, figure.sides[1])

    async def one(side: str) -> Sample:
        with anyio.fail_after(BLOCK_TIMEOUT):
            return await run[side](backend, url, count, figure.size)

    started = time.perf_counter()
    for side in "AB":  # Warm-up: imports, caches, code paths; discarded.
        await one(side)
    for order in orders(groups):
        group: dict[str, list[Sample]] = {"A": [], "B": []}
        for side in order:
            group[side].append(await one(side))
        result.group_ratios.append(group_ratio(figure, group["A"], group["B"]))
        result.group_cpu_ratios.append(group_cpu_ratio(group["A"], group["B"]))
        for side in "AB":
            result.samples[side] += group[side]
    result.seconds = time.perf_counter() - started
    print(
        f"  {backend:7} {figure.name:20} {result.ratio:6.3f}"
        f"  cpu {result.cpu_ratio:6.3f}  ({result.seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )
    return result
