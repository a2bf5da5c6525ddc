"""``python -m wsclient demo``: end to end in subprocesses, and its command line."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wsclient.__main__ import main

from .utils import LONG

ROOT = Path(__file__).resolve().parent.parent

# With this seed the first fault comes within 0.1 s of connecting, so even a
# 3-second run sees several faults.
DEMO = [sys.executable, "-m", "wsclient", "demo", "--duration", "3"]
DEMO += ["--fault-rate", "2", "--seed", "1"]


def summary_of(output: str) -> str:
    """The summary: everything from its title line on."""
    assert "--- summary after " in output, output
    return output[output.index("--- summary after ") :]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_recovers(backend: str) -> None:
    """The demo injects faults, the client reconnects each time, exit status 0."""
    argv = [*DEMO, "--backend", backend]
    # 3 s of faults, up to 8 s to recover, and start-up.
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=15 + 2 * LONG
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"backend {backend}, 3 s, ~2 faults/s, seed 1" in result.stdout
    assert re.search(r"STATUS +\w+ +sent +\d+ +recv +\d+", result.stdout)
    assert "EVENT   disconnect: code " in result.stdout
    summary = summary_of(result.stdout)
    match = re.search(r"connections: +\d+ opened, (\d+) reconnects", summary)
    assert match is not None, summary
    assert int(match[1]) >= 1
    assert re.search(r"lost in flight: +\d+ \(at-most-once send", summary)
    assert "0 duplicates, 0 out of order" in summary
    assert "result: OK" in summary


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_demo_ctrl_c() -> None:
    """Ctrl-C stops the demo at once, prints a summary and exits with 130."""
    with subprocess.Popen(
        DEMO, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        # The first line printed from the event loop: the client is running.
        for _ in range(10):
            if "connect: first connection" in process.stdout.readline():
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=LONG)
    assert process.returncode == 130, stdout + stderr
    assert "--- interrupted after " in stdout
    assert "result: interrupted (Ctrl-C)" in stdout
    assert "Traceback" not in stderr


def test_main_runs_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """main() runs a short fault-free demo on this thread and returns 0."""
    assert main(["demo", "--duration", "0.3", "--fault-rate", "0"]) == 0
    summary = summary_of(capsys.readouterr().out)
    assert "faults injected:     0" in summary
    assert "result: OK" in summary


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-command"),
        pytest.param(["demo", "--duration", "-1"], id="negative-duration"),
        pytest.param(["demo", "--duration", "0"], id="zero-duration"),
        pytest.param(["demo", "--duration", "nan"], id="nan-duration"),
        pytest.param(["demo", "--duration", "soon"], id="not-a-number"),
        pytest.param(["demo", "--fault-rate", "-0.5"], id="negative-rate"),
        pytest.param(["demo", "--fault-rate", "inf"], id="infinite-rate"),
        pytest.param(["demo", "--backend", "curio"], id="unknown-backend"),
        pytest.param(["demo", "--seed", "1.5"], id="float-seed"),
    ],
)
def test_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A bad command line is a usage error: exit status 2 and a message."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err
