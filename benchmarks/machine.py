"""The machine: what it is, CPU pinning, and the server processes."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import platform
import select
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ServerProcess", "describe", "pin_cpus", "prepare_server", "tune_malloc"]

SERVER_START_TIMEOUT = 20.0

# mallopt() parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def prepare_server(description: str) -> None:
    """In a server process: read ``--cpu`` and ``--no-malloc-tuning`` (as
    :class:`ServerProcess` passes them), pin this process, tune malloc."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    if not args.no_malloc_tuning:
        tune_malloc()


def tune_malloc() -> bool:
    """Stop glibc from giving heap memory back to the system between messages.

    By default glibc trims the top of the heap once 128 KiB or more are free
    there, and serves large requests (asyncio's 256 KiB reads) with mmap.
    With 64 KiB messages, whether a block then takes a page fault for every
    4 KiB it receives depends on how the heap happens to be laid out: blocks
    of the same work took 1x or 3x as long at random, on either side. Fixed
    thresholds keep the pages: what is left is the clients' own work.

    Returns:
        Whether the thresholds were set (glibc only).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    trimmed = mallopt(_M_TRIM_THRESHOLD, 256 * 2**20)
    mapped = mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    return bool(trimmed and mapped)


def pin_cpus() -> tuple[int | None, int | None]:
    """Pin this process to the second allowed CPU; return (server, benchmark).

    Returns ``(None, None)`` when there is only one CPU or pinning is not
    supported (the figures are then noisier, and the report says so).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    server, benchmark = cpus[0], cpus[1]
    os.sched_setaffinity(0, {benchmark})
    return server, benchmark


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(
    server_cpu: int | None, benchmark_cpu: int | None, malloc_tuned: bool
) -> dict[str, Any]:
    """The facts that a figure means nothing without."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "server_cpu": server_cpu,
        "benchmark_cpu": benchmark_cpu,
        "load_average": None if load is None else [round(x, 2) for x in load],
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "websockets": _version("websockets"),
        "wsclient": _version("wsclient"),
        "anyio": _version("anyio"),
        "trio": _version("trio"),
        "malloc_tuned": malloc_tuned,
        "asyncio_debug": bool(os.environ.get("PYTHONASYNCIODEBUG")),
    }


class ServerProcess:
    """``python -m benchmarks.server`` in a child process, pinned to ``cpu``.

    Use as a context manager; ``url`` is set once it listens. Closing its
    stdin stops it; it is killed if it does not stop within 5 seconds.
    """

    def __init__(self, cpu: int | None, tune_malloc: bool = True) -> None:
        self.cpu = cpu
        self.tune_malloc = tune_malloc
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        command = [sys.executable, "-m", "benchmarks.server"]
        if self.cpu is not None:
            command += ["--cpu", str(self.cpu)]
        if not self.tune_malloc:
            command.append("--no-malloc-tuning")
        self._process = process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            assert process.stdout is not None
            line = _read_line(process.stdout, SERVER_START_TIMEOUT)
            if not line.startswith(b"PORT "):
                raise RuntimeError(f"the benchmark server did not start: {line!r}")
            self.url = f"ws://127.0.0.1:{int(line.split()[1])}/"
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"the benchmark server did not start in {timeout} s")
    return stream.readline()
