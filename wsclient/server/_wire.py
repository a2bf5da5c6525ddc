"""The reference server's application protocol: JSON commands over text frames.

This module is I/O-free: :func:`interpret` turns one incoming text message into
an action and the connection carries it out. Keeping the rules here means the
package docstring's table and the code can be checked side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeGuard

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_STREAM_COUNT: Final = 1_000_000
"""Largest ``count`` a ``stream`` command may ask for."""

MAX_STREAM_SIZE: Final = 2**20
"""Largest ``size`` (characters of ``data`` per message) a ``stream`` may ask for."""


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``text`` back to the connection that sent the command."""

    text: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``text`` to every open connection, the sender included."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamJob:
    """Send ``count`` stream messages of ``size`` characters to the sender."""

    count: int
    size: int


Action = Reply | Broadcast | StreamJob
"""What the connection must do with one command."""


def interpret(text: str) -> Action | None:
    """Decide what to do with one incoming text message.

    Args:
        text: The complete, decoded text message.

    Returns:
        The action to carry out, or :obj:`None` when the message is not a
        known command: the caller must then echo it back verbatim.
    """
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested JSON from a hostile client. It is not a
        # command, so it gets the same treatment as any other non-JSON text.
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    command = _COMMANDS.get(kind) if isinstance(kind, str) else None
    return None if command is None else command(message)


def stream_message(seq: int, data: str) -> str:
    """Format the ``seq``-th message of a stream.

    Args:
        seq: Position of the message in its stream, from 0.
        data: The payload, a run of ``"x"``: it needs no JSON escaping, which
            lets a large stream skip :func:`json.dumps` for every message.
    """
    return f'{{"type":"stream","seq":{seq},"data":"{data}"}}'


def error(text: str) -> Reply:
    """Build the reply sent for a malformed command."""
    return Reply(_dumps({"type": "error", "error": text}))


# Private helpers, one per command.


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _echo(message: dict[str, Any]) -> Action:
    return Reply(_dumps({"type": "echo", "data": message.get("data")}))


def _ping(message: dict[str, Any]) -> Action:
    pong: dict[str, Any] = {"type": "pong"}
    if "id" in message:
        pong["id"] = message["id"]
    return Reply(_dumps(pong))


def _broadcast(message: dict[str, Any]) -> Action:
    return Broadcast(_dumps({"type": "broadcast", "data": message.get("data")}))


def _stream(message: dict[str, Any]) -> Action:
    count, size = message.get("count"), message.get("size")
    if not _is_int_between(count, MAX_STREAM_COUNT):
        return error(f"stream count must be an integer from 0 to {MAX_STREAM_COUNT}")
    if not _is_int_between(size, MAX_STREAM_SIZE):
        return error(f"stream size must be an integer from 0 to {MAX_STREAM_SIZE}")
    return StreamJob(count, size)


def _is_int_between(value: object, upper: int) -> TypeGuard[int]:
    # bool is an int subclass, but {"count": true} is a client bug to report.
    return type(value) is int and 0 <= value <= upper


_COMMANDS: Final[dict[str, Callable[[dict[str, Any]], Action]]] = {
    "echo": _echo,
    "ping": _ping,
    "broadcast": _broadcast,
    "stream": _stream,
}
