"""README.md stays in step with the code it documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import wsclient

README = (Path(__file__).parent.parent / "README.md").read_text()


def table_rows(header: str) -> dict[str, tuple[bool, str]]:
    """Parse the README table whose first column is ``header``."""
    section = README.split(f"| {header} | verdict | why |", 1)[1]
    rows = {}
    for line in section.splitlines()[2:]:
        if not line.startswith("|"):
            break
        key, verdict, why = (cell.strip() for cell in line.strip("|").split("|"))
        rows[key] = (verdict == "retry", why)
    return rows


@pytest.mark.parametrize(
    ("header", "table"),
    [
        ("close code", {str(k): v for k, v in wsclient.CLOSE_CODES.items()}),
        (
            "handshake status",
            {str(k): v for k, v in wsclient.HANDSHAKE_STATUSES.items()},
        ),
        ("failure", {k.name: v for k, v in wsclient.KIND_VERDICTS.items()}),
    ],
)
def test_classification_tables(header: str, table: dict[str, tuple[bool, str]]) -> None:
    """The README's classification tables are the code's tables, row by row."""
    assert table_rows(header) == table


def test_set_up_commands() -> None:
    """README has the two set-up commands that .ci/run extracts."""
    for marker in ("demo-command", "test-command"):
        block = re.search(
            f"<!-- {marker} -->\n```sh\n(.+)\n```\n<!-- /{marker} -->", README
        )
        assert block is not None, marker
    assert "python -m wsclient demo" in README
