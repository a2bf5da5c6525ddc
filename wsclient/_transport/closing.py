"""How a closed connection is described, the same way on both backends."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from websockets.frames import Frame, Opcode

from .._core.failure import Failure, FailureKind

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from websockets.protocol import Protocol

__all__ = ["DropCounter", "close_bound", "close_failure", "drop_beyond"]


def close_failure(protocol: Protocol, reason_override: str | None = None) -> Failure:
    """Describe a closed connection; ``reason_override`` names a local cause.

    A connection that the heartbeat found dead was aborted without a closing
    handshake, so websockets reports 1006 with no reason: the override says
    why (``"keepalive ping timeout"``).

    When the client closed first (websockets failed the connection: the
    server sent a message over ``max_size``, invalid UTF-8, a protocol
    error), the code is the one the client sent, and the failure says it is
    local: websockets' ``close_code`` would say 1006, or echo our own code
    back as if the server had closed with it.
    """
    sent, received = protocol.close_sent, protocol.close_rcvd
    local = sent is not None and (received is None or not protocol.close_rcvd_then_sent)
    close = sent if local else received
    code = 1006 if close is None else int(close.code)
    reason = None if close is None else close.reason
    if not (reason_override or reason) and code == 1006:
        reason = "connection lost without a close frame"
    return Failure(
        FailureKind.CLOSED,
        code=code,
        reason=reason_override or reason or "",
        local=local,
    )


def close_bound(options: Mapping[str, Any]) -> float:
    """The longest a graceful close may take before the connection is aborted.

    websockets' ``close_timeout`` bounds the wait for the peer's close frame;
    this bounds the whole close, the write of our close frame included, with
    some room so that websockets' own timeout fires first when it can.
    """
    close_timeout = options.get("close_timeout", 10)
    return math.inf if close_timeout is None else close_timeout * 1.5


class DropCounter:
    """Messages dropped while closing, by :func:`drop_beyond`."""

    messages_dropped: int  # A slot each connection sets to 0: see .base.SLOTS.


def drop_beyond(
    assembler: Any, limit: int | None, queued: Callable[[], int], into: DropCounter
) -> None:
    """Make ``assembler`` drop whole messages once ``limit`` frames wait.

    While closing, the client reads freely so that the server's close frame
    is not stuck behind unread messages; a server that keeps sending would
    then fill memory until ``close_timeout``. Past the high-water mark, new
    messages are dropped (whole: dropping part of a fragmented one would
    corrupt the next) and counted. ``limit`` None (``max_queue=None``) keeps
    them all, as the application asked.
    """
    if limit is None:
        return
    put: Callable[[Frame], None] = assembler.put
    dropping = False

    def put_or_drop(frame: Frame) -> None:
        nonlocal dropping
        if frame.opcode is not Opcode.CONT:  # The first frame of a message.
            dropping = queued() >= limit
        if not dropping:
            put(frame)
        elif frame.fin:
            into.messages_dropped += 1

    assembler.put = put_or_drop
