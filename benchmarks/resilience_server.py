"""The reference server in a child process, driven through stdin.

Run as ``python -m benchmarks.resilience_server [--cpu N]``: it runs
``wsclient.server.serve`` (the bundled reference server, with its fault
injection) on 127.0.0.1 and a free port, prints ``PORT <n>``, then reads one
JSON command per line on stdin and answers each with one JSON line on
stdout, until stdin closes. The resilience figures drive it.

It runs in its own process, pinned to another CPU, so that the server's work
does not count as the client's. Every time it reports comes from
``time.perf_counter()``, which is ``CLOCK_MONOTONIC`` on Linux: the same clock
in every process, so the benchmark subtracts it from its own readings. A
fault's time is taken just before the fault, when the command is carried out,
so the pipe's latency does not count.

Commands (``{"cmd": NAME, ...}``) and answers:

- ``abort`` (``channel``, ``data``): ``abort_all()`` (RSTs), then
  ``publish(channel, data)``; ``{"t": time of the abort}``.
- ``stall_after_ping``: waits for the next ping (already answered), then
  ``stall()``; ``{"t": time of the stall}``.
- ``resume``: ``stall(False)``; ``{}``.
- ``wait_subscriptions`` (``n``): waits for ``subscriptions_open >= n``;
  the counters.
- ``restart`` (``n``, ``down``): ``go_down()``, ``down`` seconds,
  ``come_back()``, until ``n`` more subscribes; the times and every
  handshake's time.
- ``counters``: the counters.

A command that fails or times out answers ``{"error": "..."}``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio

from wsclient.server import Server, serve

from .machine import prepare_server

if TYPE_CHECKING:
    from wsclient.server import ServerCounters

__all__ = ["COMMAND_TIMEOUT", "main"]

COMMAND_TIMEOUT = 120.0
"""Seconds any command may take in the server; the caller's timeouts are shorter."""


def _counters(counters: ServerCounters) -> dict[str, int]:
    return dataclasses.asdict(counters)


class HandshakeLog:
    """Records when each handshake completes, as the server counts it.

    A task waiting on :meth:`Server.wait_for` would see them late and in
    clumps: during a storm the server has a thousand runnable tasks ahead of
    it, and a first try put 472 handshakes in one 100 ms bin that way. So
    this wraps the counter's method on the server's own board (a private
    attribute, read-only use): the time is taken where the 101 went out.
    """

    def __init__(self, server: Server) -> None:
        self.times: list[float] = []
        self._counters = server._state.counters
        self._original = self._counters.handshake_completed

    def __enter__(self) -> HandshakeLog:
        times, original = self.times, self._original

        def handshake_completed() -> None:
            times.append(time.perf_counter())
            original()

        self._counters.handshake_completed = handshake_completed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self._counters.handshake_completed  # Back to the class's method.


async def _abort(server: Server, command: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    await server.abort_all()
    # Published while the client is away: its resubscription replays it.
    await server.publish(command["channel"], command["data"])
    return {"t": started}


async def _stall_after_ping(server: Server, command: dict[str, Any]) -> dict[str, Any]:
    # Right after a ping was answered is the worst moment to stall: the
    # client's next ping comes a full interval later, then its timeout runs.
    pings = server.counters.pings_received
    await server.wait_for(lambda c: c.pings_received > pings)
    stalled = time.perf_counter()
    server.stall()
    return {"t": stalled}


async def _resume(server: Server, command: dict[str, Any]) -> dict[str, Any]:
    server.stall(False)
    return {}


async def _wait_subscriptions(
    server: Server, command: dict[str, Any]
) -> dict[str, Any]:
    n = command["n"]
    counters = await server.wait_for(lambda c: c.subscriptions_open >= n)
    return _counters(counters)


async def _restart(server: Server, command: dict[str, Any]) -> dict[str, Any]:
    n, down = command["n"], command["down"]
    before = server.counters
    with HandshakeLog(server) as log:
        went_down = time.perf_counter()
        await server.go_down()
        await anyio.sleep(down)  # The restart's length: a parameter, not a sync.
        came_back = time.perf_counter()
        await server.come_back()
        counters = await server.wait_for(
            lambda c: c.subscribes >= before.subscribes + n
        )
        done = time.perf_counter()
    return {
        "down": went_down,
        "up": came_back,
        "done": done,
        "handshakes": log.times,
        "counters": _counters(counters),
    }


async def _counters_command(server: Server, command: dict[str, Any]) -> dict[str, Any]:
    return _counters(server.counters)


COMMANDS = {
    "abort": _abort,
    "stall_after_ping": _stall_after_ping,
    "resume": _resume,
    "wait_subscriptions": _wait_subscriptions,
    "restart": _restart,
    "counters": _counters_command,
}


async def _answer(server: Server, line: bytes) -> dict[str, Any]:
    try:
        command = json.loads(line)
        handler = COMMANDS[command["cmd"]]
        with anyio.fail_after(COMMAND_TIMEOUT):
            return await handler(server, command)
    except Exception as exc:  # Answered, so that the benchmark says what failed.
        return {"error": f"{type(exc).__name__}: {exc}"}


async def serve_until_stdin_closes() -> None:
    stdin = anyio.wrap_file(sys.stdin.buffer)
    async with serve("127.0.0.1", 0) as server:
        print(f"PORT {server.port}", flush=True)
        while line := await stdin.readline():
            answer = await _answer(server, line)
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


def main() -> None:
    prepare_server(__doc__.splitlines()[0])
    anyio.run(serve_until_stdin_closes)


if __name__ == "__main__":
    main()
