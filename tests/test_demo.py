"""``python -m wsclient demo``: end to end in subprocesses, and its command line."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wsclient import Client, Gap, GapReason, Message, Outcome, SendReceipt
from wsclient.__main__ import main
from wsclient._demo import DemoConfig, _Console, _Demo
from wsclient._demo_actors import CHANNEL, StatusSender, Subscriber

from .utils import LONG, interruptible

ROOT = Path(__file__).resolve().parent.parent

# With this seed the first fault comes within 0.1 s of connecting, so even a
# 3-second run sees several faults.
DEMO = [sys.executable, "-m", "wsclient", "demo", "--duration", "3"]
DEMO += ["--fault-rate", "2", "--seed", "1"]


def summary_of(output: str) -> str:
    """The summary: everything from its title line on."""
    assert "--- summary after " in output, output
    return output[output.index("--- summary after ") :]


# The status updates' line of the summary: sent, then each outcome.
STATUS_UPDATES = (
    r"\nstatus updates: +(\d+) sent: (\d+) written, (\d+) replaced while offline "
    r"\(latest value wins\), (\d+) possibly lost, (\d+) dropped, (\d+) expired\n"
)


def status_updates(summary: str) -> list[int]:
    """The counts of the status updates' line: sent, written, replaced, ...;
    they add up, and nothing was dropped or expired."""
    match = re.search(STATUS_UPDATES, summary)
    assert match is not None, summary
    sent, *outcomes = map(int, match.groups())
    assert sum(outcomes) == sent, summary  # None pending.
    assert outcomes[3:] == [0, 0], summary
    return [sent, *outcomes]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_delivers_exactly_once(backend: str) -> None:
    """Through the faults, every publication is acked and reaches both
    subscribers once, in order; the clients reconnected; exit status 0."""
    argv = [*DEMO, "--backend", backend]
    # 3 s of faults, up to 8 s to recover, and start-up.
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=15 + 2 * LONG
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"backend {backend}, 3 s, ~2 faults/s, seed 1" in result.stdout
    status = r"STATUS +up \d/3 +published \d+ \(\d+ acked / \d+ pending\) +"
    status += r"received \d+/\d+ +reconnects \d+ +buffered \d+ pub \+ [01] send +"
    status += r"lost 0 +duplicated 0"
    assert re.search(status, result.stdout), output
    assert re.search(r"EVENT +sub-1 +disconnect: code ", result.stdout), output
    summary = summary_of(result.stdout)
    reconnects = re.search(r"\nreconnects: +(\d+) \(all clients\)", summary)
    assert reconnects is not None, summary
    assert int(reconnects[1]) >= 1, summary
    published = re.search(r"\npublished: +(\d+), (\d+) acked, 0 not acked", summary)
    assert published is not None, summary
    assert published[1] == published[2], summary
    received = re.findall(
        r"\nreceived by (sub-\d): +(\d+) of (\d+): 0 lost, 0 duplicated, 0 reordered",
        summary,
    )
    assert [name for name, _, _ in received] == ["sub-1", "sub-2"], summary
    assert all(got == of == published[1] for _, got, of in received), summary
    # 5 a second for 3 s; the first ones go out before any fault.
    sent, written, *_ = status_updates(summary)
    assert 5 <= sent <= 16, summary
    assert written >= 1, summary
    assert "result: OK" in summary
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_demo_ctrl_c() -> None:
    """Ctrl-C stops the demo at once, prints a summary and exits with 130."""
    with subprocess.Popen(
        interruptible(DEMO),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        # The first line printed from the event loop: the clients are running.
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
    # Never disconnected: written (a first one sent before the publisher's
    # first connection might be replaced), never possibly lost.
    sent, written, _, possibly_lost, _, _ = status_updates(summary)
    assert sent >= 1, summary
    assert written >= 1, summary
    assert possibly_lost == 0, summary
    assert "result: OK" in summary


@pytest.mark.anyio
async def test_subscriber_counts_what_went_wrong() -> None:
    """The subscriber's tally tells lost, duplicated and reordered apart."""
    client = Client("ws://127.0.0.1:9", proxy=None)  # Never entered: no I/O.
    subscriber = Subscriber("sub", client)
    for seq in [0, 1, 1, 3, 2]:
        subscriber._message(Message({"seq": seq}, CHANNEL))
    subscriber._message(Message("not ours", CHANNEL))
    subscriber._gap(Gap(CHANNEL, GapReason.TRUNCATED, 6, 7))
    assert subscriber.received == 4
    assert (subscriber.duplicated, subscriber.reordered) == (1, 1)
    assert (subscriber.gaps, subscriber.gap_lost) == (1, 2)
    assert subscriber.lost(8) == 4  # 4, 5 never came; 6, 7 reported.
    assert not subscriber.exact(4)
    await client.close()


@pytest.mark.anyio
async def test_status_sender_counts_outcomes() -> None:
    """The status updates' line counts each outcome, and the pending; a
    dropped or expired update, and only that, makes the result FAILED."""
    client = Client("ws://127.0.0.1:9", proxy=None)  # Never entered: no I/O.
    status = StatusSender(client)
    outcomes = [Outcome.WRITTEN] * 3 + [Outcome.REPLACED] * 2
    outcomes += [Outcome.POSSIBLY_LOST, None]
    for outcome in outcomes:
        receipt = SendReceipt("{}", 0.0, None, "status")
        if outcome is not None:
            receipt.settle(outcome)
        status.receipts.append(receipt)
    assert status.describe() == (
        "7 sent: 3 written, 2 replaced while offline (latest value wins), "
        "1 possibly lost, 0 dropped, 0 expired, 1 pending"
    )
    demo = _Demo(DemoConfig(), 0, _Console(sys.stdout))
    demo.recovered, demo.status = True, status
    assert demo._problems() == []
    for outcome in [Outcome.DROPPED, Outcome.EXPIRED]:
        receipt = SendReceipt("{}", 0.0, None, "status")
        receipt.settle(outcome)
        status.receipts.append(receipt)
    assert status.describe().endswith("1 dropped, 1 expired, 1 pending")
    assert demo._problems() == ["2 status updates dropped or expired"]
    await client.close()


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


def test_console_script() -> None:
    """pip installs a ``wsclient`` command next to the interpreter; it runs the demo."""
    script = shutil.which("wsclient", path=str(Path(sys.executable).parent))
    assert script is not None, "the wsclient console script is not installed"
    argv = [script, "demo", "--duration", "0.3", "--fault-rate", "0"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=3 * LONG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: OK" in summary_of(result.stdout)
