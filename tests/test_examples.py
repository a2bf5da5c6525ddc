"""The scripts in examples/ run as real programs against the reference server."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from .utils import LONG

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from subprocess import CompletedProcess

    from wsclient.server import Server

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["bot.py", "trio_bot.py"]

# Seconds between two messages of the bot. The fault lands within
# milliseconds of the first reply; two more intervals must pass before the
# third reply, so the bot cannot finish before the fault.
INTERVAL = 0.1


def example_env() -> dict[str, str]:
    """The examples' environment: this checkout importable, no system proxy.

    The examples keep the client's default ``proxy=True``, as a real bot
    would, so proxy variables of the machine running the tests must go.
    """
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["no_proxy"] = "*"
    env["PYTHONPATH"] = os.pathsep.join(
        path for path in (str(ROOT), os.environ.get("PYTHONPATH")) if path
    )
    return env


async def run_example(script: str, url: str) -> CompletedProcess[bytes]:
    """Run an example until it has received three replies."""
    argv = [sys.executable, str(ROOT / "examples" / script), "--url", url]
    argv += ["--count", "3", "--interval", str(INTERVAL)]
    return await anyio.run_process(argv, check=False, env=example_env())


def output_of(result: CompletedProcess[bytes]) -> list[str]:
    """The lines printed by the example, after checking that it succeeded."""
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    return stdout.splitlines()


def replies(lines: list[str]) -> list[int]:
    """The numbers of the ``hello N`` replies, in the order printed."""
    return [
        int(m[1])
        for line in lines
        if (m := re.fullmatch(r"received: hello (\d+)", line))
    ]


@pytest.mark.parametrize("script", EXAMPLES)
async def test_bot_echoes(server: Server, script: str) -> None:
    """The bot connects, prints three echoed replies in order and exits with 0."""
    with anyio.fail_after(2 * LONG):
        lines = output_of(await run_example(script, server.url))
    assert lines[0] == f"connected to {server.url} (attempt 1)"
    assert replies(lines) == [1, 2, 3]
    assert lines[-1] == "done: received 3 messages"


@pytest.mark.parametrize("script", EXAMPLES)
async def test_bot_reconnects(server: Server, script: str) -> None:
    """The bot prints an abnormal closure and the reconnection, then carries on."""
    results: list[CompletedProcess[bytes]] = []

    async def run() -> None:
        results.append(await run_example(script, server.url))

    with anyio.fail_after(3 * LONG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await server.wait_for(lambda c: c.messages_sent >= 1)
            await server.abort_all()
    lines = output_of(results[0])
    disconnected = [line for line in lines if line.startswith("disconnected: ")]
    assert disconnected[0].startswith("disconnected: code 1006")
    assert "; reconnecting in " in disconnected[0]
    reconnected = [i for i, line in enumerate(lines) if line.startswith("reconnected")]
    assert len(reconnected) == 1
    assert lines[reconnected[0] - 1] == f"connected to {server.url} (attempt 1)"
    # Three replies, in order; the one in flight during the fault may be lost.
    numbers = replies(lines)
    assert len(numbers) == 3
    assert numbers == sorted(numbers)
    assert lines.index(f"received: hello {numbers[-1]}") > reconnected[0]
    assert lines[-1] == "done: received 3 messages"


# subscriber.py and exchange_bot.py: subscriptions across reconnections.

# Seconds between two publications of subscriber.py. The fault lands after
# the 5th publication, within milliseconds; 20 messages need 15 more, so the
# subscriber cannot finish before the fault.
PUBLISH_INTERVAL = 0.02
SUBSCRIBER_COUNT = 20


async def run_script(script: str, *args: str) -> CompletedProcess[bytes]:
    """Run ``examples/<script>`` with ``args`` until it exits."""
    argv = [sys.executable, str(ROOT / "examples" / script), *args]
    return await anyio.run_process(argv, check=False, env=example_env())


async def run_subscriber_through(
    server: Server, fault: Callable[[], Awaitable[None]]
) -> list[str]:
    """Run subscriber.py, inject ``fault`` after 5 publications; return its output."""
    results: list[CompletedProcess[bytes]] = []

    async def run() -> None:
        argv = ["--url", server.url, "--count", str(SUBSCRIBER_COUNT)]
        argv += ["--interval", str(PUBLISH_INTERVAL)]
        results.append(await run_script("subscriber.py", *argv))

    with anyio.fail_after(3 * LONG):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await server.wait_for(lambda c: c.publications >= 5)
            await fault()
    return output_of(results[0])


def positions(lines: list[str]) -> list[tuple[int, str, int]]:
    """(line index, channel, offset) of each message printed by subscriber.py."""
    return [
        (i, m[1], int(m[2]))
        for i, line in enumerate(lines)
        if (m := re.match(r"(trades\.(?:BTC|ETH)) #(\d+): ", line))
    ]


async def test_subscriber_resumes(server: Server) -> None:
    """subscriber.py resumes both channels after a 1006: nothing lost or repeated."""
    lines = await run_subscriber_through(server, server.abort_all)
    reconnected = [i for i, line in enumerate(lines) if line.startswith("reconnected")]
    assert len(reconnected) == 1
    messages = positions(lines)
    assert len(messages) == SUBSCRIBER_COUNT
    assert messages[-1][0] > reconnected[0]  # It went on after the reconnection.
    for channel in ("trades.BTC", "trades.ETH"):
        offsets = [offset for _, name, offset in messages if name == channel]
        # Publishing starts after subscribing, and the resume replays what
        # the fault interrupted: each channel's offsets run 1, 2, 3...
        assert offsets == list(range(1, len(offsets) + 1))
    assert not [line for line in lines if line.startswith("gap")]
    assert lines[-1] == f"done: received {SUBSCRIBER_COUNT} messages"


async def test_subscriber_reports_gaps(server: Server) -> None:
    """After a restart that lost history, one channel raises MessagesLost and the
    other yields a Gap marker; both go on."""

    async def restart_without_history() -> None:
        await server.go_down()
        server.lose_history()
        await server.come_back()

    lines = await run_subscriber_through(server, restart_without_history)
    gaps = [line for line in lines if line.startswith("gap")]
    assert len(gaps) == 2
    assert {line.split(": ", 1)[0] for line in gaps} == {
        "gap (MessagesLost)",
        "gap (marker)",
    }
    assert all(line.endswith("(epoch)") for line in gaps)
    assert any("'trades.BTC'" in line for line in gaps if "MessagesLost" in line)
    last_gap = max(lines.index(line) for line in gaps)
    assert positions(lines)[-1][0] > last_gap  # Iteration went on after both.
    assert lines[-1] == f"done: received {SUBSCRIBER_COUNT} messages"


async def test_exchange_bot(anyio_backend: object) -> None:
    """exchange_bot.py prints 20 trades and resubscribes after its server drops it."""
    with anyio.fail_after(3 * LONG):
        lines = output_of(await run_script("exchange_bot.py", "--count", "20"))
    trades = [
        i
        for i, line in enumerate(lines)
        if re.fullmatch(r"(btc|eth)usdt@trade: [\d.]+ at [\d.]+", line)
    ]
    assert len(trades) == 20
    reconnected = [i for i, line in enumerate(lines) if line.startswith("reconnected")]
    assert len(reconnected) == 1
    assert trades[0] < reconnected[0] < trades[-1]
    assert lines[-1] == "done: printed 20 trades"
