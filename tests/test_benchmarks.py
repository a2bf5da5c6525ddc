"""The benchmark harness still runs: one small block per kind of figure.

Not a measurement (the figures are far too small to mean anything, and CI
machines are noisy): it keeps ``python -m benchmarks`` from rotting while
the client changes under it, on both backends, and checks that the JSON it
writes carries a ratio for every figure run and that the README's tables can
be made from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .utils import LONG

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ["recv_client_32", "recv_sub_32", "send_32", "publish_32", "echo_32"]


@pytest.mark.timeout(600)
def test_benchmarks_run_and_report(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    command = [
        sys.executable, "-m", "benchmarks", "--quick", "--groups", "1",
        "--no-pin", "--output", str(output), "--only", *FIGURES,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=LONG * 60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())["results"]
    ran = {(r["figure"], r["backend"]) for r in results}
    assert ran == {(f, b) for f in FIGURES for b in ("asyncio", "trio")}
    for result in results:
        assert 0 < result["ratio"] < 100, result
    tables = subprocess.run(
        [sys.executable, "-m", "benchmarks.markdown", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=LONG * 6, check=True,
    )  # fmt: skip
    assert "| `recv_sub_32` |" in tables.stdout


def test_markdown_of_several_runs_judges_the_median() -> None:
    from benchmarks.markdown import markdown_runs

    def run(recv: float, send: float) -> dict[str, Any]:
        return {
            "results": [
                {"figure": "recv_client_32", "backend": "asyncio", "ratio": recv},
                {"figure": "send_32", "backend": "trio", "ratio": send},
                {"figure": "send_32", "backend": "asyncio", "skipped": "no"},
            ],
            "resilience": [
                {
                    "figure": "recovery",
                    "backend": "trio",
                    "result": "r",
                    "goal": "g",
                    "meets_goal": recv > 0.95,
                    "budget_s": send / 100,
                }
            ],
        }

    first = run(0.99, 0.96)
    first["results"].append({"figure": "echo_32", "backend": "trio", "ratio": 1.1})
    tables = markdown_runs(
        {"a.json": first, "b.json": run(0.90, 0.94), "c.json": run(0.96, 0.93)}
    )
    # One run under the goal does not fail a figure whose median meets it;
    # one over it does not pass a figure whose median misses it.
    assert "| `recv_client_32` | 0.960 ✓ (0.900-0.990) | — | >=0.95 |" in tables
    assert "| `send_32` | — | 0.940 ✗ (0.930-0.960) | >=0.95 |" in tables
    assert "median of 3 runs" in tables
    assert "| `echo_32` | — | 1.100 (1.100-1.100, in 1 of 3) | — |" in tables
    assert tables.count("| `recovery` | trio | r | g") == 3
    assert (
        "| `recovery` | trio | budget 9.4 ms (9.3 ms to 9.6 ms) | 2 of 3 runs |"
        in tables
    )
