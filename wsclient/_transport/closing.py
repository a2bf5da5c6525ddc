"""How a closed connection is described, the same way on both backends."""

from __future__ import annotations

from .._core.failure import Failure, FailureKind

__all__ = ["close_failure"]


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
