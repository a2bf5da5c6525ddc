"""How errors raised while connecting become a Failure (no sockets)."""

from __future__ import annotations

import socket
import ssl

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import (
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from websockets.http11 import Response

from wsclient import FailureKind
from wsclient._transport.base import failure_from_exception
from wsclient._transport.closing import close_failure


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


class BrokenResourceError(Exception):
    """Stands for trio.BrokenResourceError, matched by name."""


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (socket.gaierror(-2, "Name or service not known"), FailureKind.DNS),
        (ConnectionRefusedError(111, "Connection refused"), FailureKind.REFUSED),
        # trio: OSError caused by a group of one error per address tried.
        (
            caused(
                OSError("all attempts to connect failed"),
                ExceptionGroup("attempts", [ConnectionRefusedError(111, "refused")]),
            ),
            FailureKind.REFUSED,
        ),
        (TimeoutError("timed out during opening handshake"), FailureKind.TIMEOUT),
        (ConnectionResetError(104, "reset"), FailureKind.RESET),
        (
            caused(InvalidMessage("no response"), EOFError("connection closed")),
            FailureKind.RESET,
        ),
        (InvalidMessage("garbage"), FailureKind.HANDSHAKE),
        (NegotiationError("no subprotocol"), FailureKind.NEGOTIATION),
        (InvalidURI("x", "not a ws URI"), FailureKind.INVALID_URL),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
            FailureKind.TLS_VERIFY,
        ),
        # trio wraps TLS errors in BrokenResourceError.
        (
            caused(
                BrokenResourceError(), ssl.SSLCertVerificationError(1, "verify failed")
            ),
            FailureKind.TLS_VERIFY,
        ),
        (ssl.SSLError(1, "wrong version number"), FailureKind.TLS),
        (BrokenResourceError(), FailureKind.RESET),
        (RuntimeError("a bug"), FailureKind.ERROR),
    ],
)
def test_kinds(exc: BaseException, kind: FailureKind) -> None:
    """Each connect error maps to its failure kind, through causes and groups."""
    failure = failure_from_exception(exc)
    assert failure.kind is kind
    assert failure.error is exc
    assert failure.during_handshake


def test_refused_reason_is_the_same_on_both_backends() -> None:
    """A refused connection reads the same whatever the backend's wording."""
    trio_style = caused(OSError("all attempts"), ConnectionRefusedError(111, "x"))
    asyncio_style = ConnectionRefusedError(111, "Connect call failed")
    assert failure_from_exception(trio_style).reason == "connection refused"
    assert failure_from_exception(asyncio_style).reason == "connection refused"


def test_status_keeps_status_and_headers() -> None:
    """An HTTP rejection keeps its status and lower-cased headers."""
    headers = Headers([("Retry-After", "5"), ("X-Thing", "y")])
    exc = InvalidStatus(Response(429, "Too Many Requests", headers))
    failure = failure_from_exception(exc)
    assert failure.kind is FailureKind.STATUS
    assert failure.status == 429
    assert failure.headers["retry-after"] == "5"
    assert "429" in str(failure)


@pytest.mark.parametrize(
    ("code", "reason", "override", "expected"),
    [
        (None, None, None, (1006, "connection lost without a close frame")),
        (1006, "", "keepalive ping timeout", (1006, "keepalive ping timeout")),
        (1012, "restart", None, (1012, "restart")),
        (1000, "", None, (1000, "")),
    ],
)
def test_close_failure(
    code: int | None,
    reason: str | None,
    override: str | None,
    expected: tuple[int, str],
) -> None:
    """Closed connections report a code (1006 without a close frame) and a reason."""
    failure = close_failure(code, reason, override)
    assert failure.kind is FailureKind.CLOSED
    assert (failure.code, failure.reason) == expected
