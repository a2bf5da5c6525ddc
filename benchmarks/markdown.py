"""``python -m benchmarks.markdown [RUN.json ...]``: the README's tables.

The Performance section of the README is made from this (its rows renamed
for readers), so that every number in it comes from runs' JSON: one row per
figure, the two backends side by side, with the goal and whether it was met.

Given several runs, each cell is the median of the runs' ratios, with their
range: ratios move by a few percent from run to run on a cloud VM (more than
within a run, where A and B share every disturbance), so one run cannot say
on which side of its goal a figure within a few percent of it falls. The
goal is judged on the median; a figure that some runs lack says over how
many runs its median was taken. The resilience findings get the median and
range of their main numbers over the runs, and how many runs met each goal.
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


def _machine(data: dict[str, Any]) -> str:
    """The machine a run describes, on one line."""
    return "; ".join(f"{k}: {v}" for k, v in data.get("machine", {}).items())


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
        goals = [r["goal"] for rs in backends.values() for r in rs if r.get("goal")]
        goal = goals[-1] if goals else figure.goal_text() if figure else ""
        lines.append(f"| `{name}` | {cells[0]} | {cells[1]} | {goal or '—'} |")
    return lines


def _throughput(results: list[dict[str, Any]]) -> list[str]:
    def cell(figure: Figure | None, one: list[dict[str, Any]]) -> str:
        result = one[-1]  # (A run lists each figure once per backend.)
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
        over = "" if len(ratios) == len(runs) else f", in {len(ratios)} of {len(runs)}"
        return f"{median:.3f}{verdict} ({min(ratios):.3f}-{max(ratios):.3f}{over})"

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
    config = data.get("config", {})
    parts = [
        "Command: `" + " ".join(config.get("command", [])) + "`",
        "",
        f"Machine: {_machine(data)}",
        "",
        *_throughput(data.get("results", [])),
    ]
    if data.get("resilience"):
        parts += ["", *_resilience(data["resilience"])]
    return "\n".join(parts)


_NUMBERS: dict[str, list[tuple[str, tuple[str, ...], float, str]]] = {
    # figure: (label, where in the finding's JSON, scale, format with unit)
    "recovery": [
        ("p50", ("overhead_s", "median"), 1e3, "{:.1f} ms"),
        ("p99", ("overhead_s", "p99"), 1e3, "{:.1f} ms"),
        ("budget", ("budget_s",), 1e3, "{:.1f} ms"),
        ("raw by hand p50", ("raw_by_hand_overhead_s", "median"), 1e3, "{:.1f} ms"),
    ],
    "half_open": [("max", ("detection_s", "max"), 1e3, "{:.1f} ms")],
    "memory": [
        ("wsclient", ("bytes_per_connection", "tracemalloc", "wsclient"), 1 / 1024,
         "{:.1f} KiB"),
        ("raw", ("bytes_per_connection", "tracemalloc", "raw"), 1 / 1024, "{:.1f} KiB"),
    ],
    "storm": [
        ("resubscribed after", ("resubscribed_after_down_s",), 1.0, "{:.1f} s"),
        ("peak per 100 ms", ("scheduled_attempts", "peak_per_bin"), 1.0, "{:.0f}"),
    ],
}  # fmt: skip
"""The numbers of each resilience finding summarised over several runs."""


def _resilience_medians(runs: list[dict[str, Any]]) -> list[str]:
    findings: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for finding in run.get("resilience", []):
            key = (finding["figure"], finding["backend"])
            findings.setdefault(key, []).append(finding)
    lines = [
        "| resilience | backend | median (range) over the runs | goal met in |",
        "|---|---|---|---|",
    ]
    for (figure, backend), found in findings.items():
        numbers = []
        for label, path, scale, form in _NUMBERS.get(figure, []):
            values = [v * scale for f in found if (v := _number(f, path)) is not None]
            if values:
                median, low, high = statistics.median(values), min(values), max(values)
                numbers.append(
                    f"{label} {form.format(median)} "
                    f"({form.format(low)} to {form.format(high)})"
                )
        judged = [f["meets_goal"] for f in found if f.get("meets_goal") is not None]
        met = f"{sum(judged)} of {len(judged)} runs" if judged else "—"
        lines.append(f"| `{figure}` | {backend} | {'; '.join(numbers)} | {met} |")
    return lines


def _number(finding: dict[str, Any], path: tuple[str, ...]) -> float | None:
    """The number at ``path`` in ``finding``; None if an older run lacks it."""
    value: Any = finding
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value)


def markdown_runs(runs: dict[str, dict[str, Any]]) -> str:
    """The tables from several runs (by file name): throughput medians,
    resilience medians, then each run's machine and resilience findings."""
    parts = [*_median_throughput(list(runs.values()))]
    if any(data.get("resilience") for data in runs.values()):
        parts += ["", *_resilience_medians(list(runs.values()))]
    for name, data in runs.items():
        parts += ["", f"{name}: {_machine(data)}"]
        if data.get("resilience"):
            parts += ["", *_resilience(data["resilience"])]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(arg) for arg in args] or [DEFAULT]
    if len(paths) == 1:
        print(markdown(json.loads(paths[0].read_text())))
    else:
        if len(set(paths)) != len(paths):
            print("each run once, please: a file is named twice", file=sys.stderr)
            return 2
        print(markdown_runs({str(p): json.loads(p.read_text()) for p in paths}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
