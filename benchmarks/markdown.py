"""``python -m benchmarks.markdown [results.json]``: the README's tables.

The Performance section of the README is pasted from this, so that every
number in it comes from one run's JSON, unedited: one row per figure, the
two backends side by side, with the goal and whether it was met.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "markdown"]

DEFAULT = Path(__file__).resolve().parent / "results.json"


def _verdict(meets: bool | None) -> str:
    return {None: "", True: " ✓", False: " ✗"}[meets]


def _throughput(results: list[dict[str, Any]]) -> list[str]:
    by_figure: dict[str, dict[str, dict[str, Any]]] = {}
    for result in results:
        if result.get("skipped"):
            continue
        by_figure.setdefault(result["figure"], {})[result["backend"]] = result
    lines = [
        "| figure | asyncio B/A (cpu) | trio B/A (cpu) | goal |",
        "|---|---|---|---|",
    ]
    for figure, backends in by_figure.items():
        cells = []
        goal = ""
        for backend in ("asyncio", "trio"):
            result = backends.get(backend)
            if result is None:
                cells.append("—")
                continue
            goal = result.get("goal") or goal
            cells.append(
                f"{result['ratio']:.3f} ({result['cpu_ratio']:.3f})"
                f"{_verdict(result.get('meets_goal'))}"
            )
        lines.append(f"| `{figure}` | {cells[0]} | {cells[1]} | {goal or '—'} |")
    return lines


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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT
    print(markdown(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
