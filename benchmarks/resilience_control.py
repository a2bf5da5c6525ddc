"""Drive ``benchmarks.resilience_server`` from the benchmark's event loop.

The server process is started with :func:`anyio.open_process`, which works on
asyncio and trio alike, so that waiting for its answer never blocks the
clients being measured: they keep running while a command is carried out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import Process

ROOT = Path(__file__).resolve().parent.parent
"""Where ``python -m benchmarks...`` finds the package."""

__all__ = ["CommandFailed", "ReferenceServer"]

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
MAX_LINE = 2**24
"""Longest answer: the storm's handshake times for 1,000 clients are ~20 KB."""


class CommandFailed(RuntimeError):
    """The server process answered a command with an error."""


class ReferenceServer:
    """The reference server in a child process pinned to ``cpu``.

    Use as an async context manager; ``url`` is set once it listens. Closing
    its stdin stops it; it is killed if it does not stop within 5 seconds.
    """

    def __init__(self, cpu: int | None, tune_malloc: bool = True) -> None:
        self.cpu = cpu
        self.tune_malloc = tune_malloc
        self.url = ""
        self._process: Process | None = None
        self._stdout: BufferedByteReceiveStream | None = None

    async def __aenter__(self) -> Self:
        command = [sys.executable, "-m", "benchmarks.resilience_server"]
        if self.cpu is not None:
            command += ["--cpu", str(self.cpu)]
        if not self.tune_malloc:
            command.append("--no-malloc-tuning")
        self._process = process = await anyio.open_process(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # The server's warnings and tracebacks go to ours.
            cwd=ROOT,
        )
        assert process.stdout is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)
        try:
            with anyio.fail_after(START_TIMEOUT):
                line = await self._stdout.receive_until(b"\n", MAX_LINE)
            if not line.startswith(b"PORT "):
                raise RuntimeError(f"the reference server did not start: {line!r}")
            self.url = f"ws://127.0.0.1:{int(line.split()[1])}/"
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    async def command(self, timeout: float, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one command; return its answer.

        Canceling it (or the timeout) leaves the answer unread and the server
        out of step: only let it fail along with the figure.

        Raises:
            CommandFailed: The server answered with an error.
            TimeoutError: No answer within ``timeout`` seconds.
        """
        process, stdout = self._process, self._stdout
        assert process is not None
        assert process.stdin is not None
        assert stdout is not None
        with anyio.fail_after(timeout):
            await process.stdin.send(
                json.dumps({"cmd": cmd, **fields}).encode() + b"\n"
            )
            answer: dict[str, Any] = json.loads(
                await stdout.receive_until(b"\n", MAX_LINE)
            )
        if "error" in answer:
            raise CommandFailed(f"{cmd}: {answer['error']}")
        return answer

    async def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        with anyio.CancelScope(shield=True):
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.move_on_after(STOP_TIMEOUT):
                await process.aclose()  # Closes stdout too, then waits.
                return
            process.kill()
            with anyio.move_on_after(STOP_TIMEOUT):
                await process.aclose()
