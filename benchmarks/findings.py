"""What a resilience figure found, and the second table that shows it.

The throughput figures are ratios of two sides measured alike; these are
absolute times and sizes, each with its own goal from issue 6, so they get
their own result type and table rather than bending ``method.Result``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .method import quantile
from .report import aligned

if TYPE_CHECKING:
    from pathlib import Path

    from .clients import Backend

__all__ = ["Finding", "add_to_json", "ms", "spread", "table"]


@dataclass
class Finding:
    """One resilience figure measured on one backend.

    Attributes:
        name: The figure, as ``--only`` takes it (``recovery``...).
        backend: ``asyncio`` or ``trio``.
        result: The figure in one line, for the table.
        goal: The goal in one line, with the budget measured in this run.
        meets: Whether the goal is met; None when there is no goal.
        details: Every measurement, for the JSON output.
    """

    name: str
    backend: Backend
    result: str
    goal: str
    meets: bool | None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "backend": self.backend,
            "result": self.result,
            "goal": self.goal,
            "meets_goal": self.meets,
            **self.details,
        }


def ms(seconds: float) -> str:
    """``seconds`` in milliseconds, for the table."""
    return f"{seconds * 1e3:.1f} ms"


def spread(values: list[float]) -> dict[str, float]:
    """Median, p99, min and max of ``values`` (nearest rank), for the JSON."""
    return {
        "median": quantile(values, 0.5),
        "p99": quantile(values, 0.99),
        "min": min(values),
        "max": max(values),
    }


HEADER = ["figure", "backend", "result", "goal"]


def table(findings: list[Finding]) -> str:
    """The findings as a text table, with a line that says what they are."""
    rows = [HEADER]
    for finding in findings:
        verdict = {None: "", True: " ok", False: " MISSED"}[finding.meets]
        rows.append(
            [finding.name, finding.backend, finding.result, finding.goal + verdict]
        )
    head = (
        "Resilience (wsclient against the reference server in another process; "
        "raw websockets measured in the same run for the budgets):"
    )
    return "\n".join([head, *aligned(rows)])


def add_to_json(path: Path, findings: list[Finding]) -> None:
    """Add the findings, under ``resilience``, to the JSON that report.py wrote.

    Added afterwards rather than written alongside, so that the layout of
    the throughput results stays report.py's alone.
    """
    data = json.loads(path.read_text())
    data["resilience"] = [finding.as_dict() for finding in findings]
    path.write_text(json.dumps(data, indent=2) + "\n")
