"""Figures 4 to 7 of issue 6: recovery, half-open detection, memory, storm.

They measure times and sizes rather than throughput ratios, against the
bundled reference server (``wsclient.server``) and its fault injection, run
in a child process pinned to the server's CPU. ``python -m benchmarks``
runs them after the throughput figures; ``--only`` takes their names.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .half_open import half_open
from .memory import memory
from .recovery import recovery
from .resilience_control import ReferenceServer
from .storm import storm

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .clients import Backend
    from .findings import Finding

__all__ = ["NAMES", "Sizes", "run_resilience", "split_names"]

NAMES = ("recovery", "half_open", "memory", "storm")


@dataclass(frozen=True)
class Sizes:
    """How much each figure does: a full run, or ``--quick``."""

    aborts: int = 60
    stalls: int = 10
    connections: int = 1000
    storm_clients: int = 1000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(aborts=20, stalls=4, connections=500, storm_clients=1000)


def split_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ``--only`` names into (resilience figures, the others).

    A name selects a resilience figure when it is a prefix of it (``half``
    selects ``half_open``), as names select the throughput figures.
    """
    chosen: list[str] = []
    others: list[str] = []
    for name in names:
        matches = [n for n in NAMES if n.startswith(name)]
        if matches:
            chosen += [n for n in matches if n not in chosen]
        else:
            others.append(name)
    return [n for n in NAMES if n in chosen], others


async def run_resilience(
    backend: Backend,
    names: list[str],
    server_cpu: int | None,
    sizes: Sizes,
    tune_malloc: bool,
) -> list[Finding]:
    """Run the figures in ``names`` on ``backend``, one fresh server for all."""
    findings: list[Finding] = []
    async with ReferenceServer(server_cpu, tune_malloc) as server:
        for name in names:
            print(f"  {name}", file=sys.stderr, flush=True)
            if name == "recovery":
                findings.append(await recovery(backend, server, sizes.aborts))
            elif name == "half_open":
                findings.append(await half_open(backend, server, sizes.stalls))
            elif name == "memory":
                findings.append(
                    await memory(backend, server.url, sizes.connections, tune_malloc)
                )
            elif name == "storm":
                findings.append(await storm(backend, server, sizes.storm_clients))
    return findings
