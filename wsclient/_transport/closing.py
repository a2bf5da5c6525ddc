"""How a closed connection is described, the same way on both backends."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .._core.failure import Failure, FailureKind

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["close_bound", "close_failure"]


def close_failure(
    code: int | None, reason: str | None, reason_override: str | None = None
) -> Failure:
    """Describe a closed connection; ``reason_override`` names a local cause.

    A connection that the heartbeat found dead was aborted without a closing
    handshake, so websockets reports 1006 with no reason: the override says
    why (``"keepalive ping timeout"``).
    """
    code = 1006 if code is None else int(code)
    if not (reason_override or reason) and code == 1006:
        reason = "connection lost without a close frame"
    return Failure(
        FailureKind.CLOSED, code=code, reason=reason_override or reason or ""
    )


def close_bound(options: Mapping[str, Any]) -> float:
    """The longest a graceful close may take before the connection is aborted.

    websockets' ``close_timeout`` bounds the wait for the peer's close frame;
    this bounds the whole close, the write of our close frame included, with
    some room so that websockets' own timeout fires first when it can.
    """
    close_timeout = options.get("close_timeout", 10)
    return math.inf if close_timeout is None else close_timeout * 1.5
