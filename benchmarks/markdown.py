"""``python -m benchmarks.markdown [RUN.json ...]``: the README's tables.

The Performance section of the README is pasted from this, so that every
number in it comes from runs' JSON, unedited: one row per figure, the two
backends side by side, with the goal and whether it was met.

Given several runs, each cell is the median of the runs' ratios, with their
range: ratios move by a few percent from run to run on a cloud VM (more than
within a run, where A and B share every disturbance), so one run cannot say
on which side of its goal a figure within a few percent of it falls. The
goal is judged on the median.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from .figures import FIGURES

if TYPE_CHECKING:
    from collections.abc import Callable

    from .figures import Figure

__all__ = ["main", "markdown", "markdown_runs"]

DEFAULT = Path(__file__).resolve().parent / "results.json"


def _verdict(meets: bool | None) -> str:
    return {None: "", True: " ✓", False: " ✗"}[meets]


Grouped: TypeAlias = "dict[str, dict[str, list[dict[str, Any]]]]"
"""Results by figure, then backend: one per run, in the runs' order."""


def _grouped(runs: list[dict[str, Any]]) -> Grouped:
    grouped: Grouped = {}
    for run in runs:
        for result in run.get("results", []):
            if not result.get("skipped"):
                by_backend = grouped.setdefault(result["figure"], {})
                by_backend.setdefault(result["backend"], []).append(result)
    return grouped


Cell: TypeAlias = "Callable[[Figure | None, list[dict[str, Any]]], str]"
"""Formats one figure's results on one backend (figure: None if renamed)."""


def _rows(grouped: Grouped, cell: Cell) -> list[str]:
    figures = {figure.name: figure for figure in FIGURES}
    lines = []
    for name, backends in grouped.items():
        figure = figures.get(name)
        cells = [
            cell(figure, backends[backend]) if backend in backends else "—"
            for backend in ("asyncio", "trio")
        ]
        goal = figure.goal_text() if figure is not None else ""
        lines.append(f"| `{name}` | {cells[0]} | {cells[1]} | {goal or '—'} |")
    return lines


def _throughput(results: list[dict[str, Any]]) -> list[str]:
    def cell(figure: Figure | None, one: list[dict[str, Any]]) -> str:
        (result,) = one
        verdict = _verdict(result.get("meets_goal"))
        return f"{result['ratio']:.3f} ({result['cpu_ratio']:.3f}){verdict}"

    return [
        "| figure | asyncio B/A (cpu) | trio B/A (cpu) | goal |",
        "|---|---|---|---|",
        *_rows(_grouped([{"results": results}]), cell),
    ]


def _median_throughput(runs: list[dict[str, Any]]) -> list[str]:
    def cell(figure: Figure | None, results: list[dict[str, Any]]) -> str:
        ratios = [result["ratio"] for result in results]
        median = statistics.median(ratios)
        verdict = _verdict(None if figure is None else figure.meets(median))
        return f"{median:.3f}{verdict} ({min(ratios):.3f}-{max(ratios):.3f})"

    return [
        f"| figure | asyncio B/A, median of {len(runs)} runs (range) "
        "| trio B/A (range) | goal |",
        "|---|---|---|---|",
        *_rows(_grouped(runs), cell),
    ]


def _resilience(findings: list[dict[str, Any]]) -> list[str]:
    lines = ["| figure | backend | result | goal |", "|---|---|---|---|"]
    for finding in findings:
        verdict = _verdict(finding.get("meets_goal"))
        lines.append(
            f"| `{finding['figure']}` | {finding['backend']} | "
            f"{finding['result']} | {finding['goal']}{verdict} |"
        )
    return lines


def markdown(data: dict[str, Any]) -> str:
    """The tables for the README, from the JSON that a run wrote."""
    machine = data.get("machine", {})
    config = data.get("config", {})
    parts = [
        "Command: `" + " ".join(config.get("command", [])) + "`",
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()),
        "",
        *_throughput(data.get("results", [])),
    ]
    if data.get("resilience"):
        parts += ["", *_resilience(data["resilience"])]
    return "\n".join(parts)


def markdown_runs(runs: dict[str, dict[str, Any]]) -> str:
    """The tables from several runs (by file name): medians; how many runs
    met each resilience goal; then each run's resilience findings (which
    already summarise 60 aborts or 1,000 clients each)."""
    parts = [*_median_throughput(list(runs.values()))]
    met: dict[tuple[str, str], list[bool]] = {}
    for data in runs.values():
        for finding in data.get("resilience", []):
            key = (finding["figure"], finding["backend"])
            met.setdefault(key, []).append(bool(finding.get("meets_goal")))
    if met:
        parts += ["", "| resilience | backend | goal met in |", "|---|---|---|"]
        parts += [
            f"| `{figure}` | {backend} | {sum(runs_met)} of {len(runs_met)} runs |"
            for (figure, backend), runs_met in met.items()
        ]
    for name, data in runs.items():
        if data.get("resilience"):
            parts += ["", f"Resilience, {name}:", "", *_resilience(data["resilience"])]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(arg) for arg in args] or [DEFAULT]
    if len(paths) == 1:
        print(markdown(json.loads(paths[0].read_text())))
    else:
        print(markdown_runs({p.name: json.loads(p.read_text()) for p in paths}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
