"""How errors raised while connecting become a Failure (no sockets)."""

from __future__ import annotations

import socket
import ssl
from types import SimpleNamespace

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import (
    ConnectionClosedError,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)
from websockets.frames import Close
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
        # websockets.trio, when the server aborts while the request is sent.
        (ConnectionClosedError(None, None), FailureKind.RESET),
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


def closed(
    sent: Close | None, received: Close | None, received_first: bool | None = None
) -> SimpleNamespace:
    """The closing state of a websockets protocol, as close_failure() reads it."""
    return SimpleNamespace(
        close_sent=sent, close_rcvd=received, close_rcvd_then_sent=received_first
    )


@pytest.mark.parametrize(
    ("state", "override", "expected"),
    [
        (
            closed(None, None),
            None,
            (1006, "connection lost without a close frame", False),
        ),
        (
            closed(None, None),
            "keepalive ping timeout",
            (1006, "keepalive ping timeout", False),
        ),
        (closed(None, Close(1012, "restart")), None, (1012, "restart", False)),
        (
            closed(Close(1012, "restart"), Close(1012, "restart"), True),
            None,
            (1012, "restart", False),
        ),
        (closed(Close(1000, ""), Close(1000, ""), True), None, (1000, "", False)),
        # The client failed the connection: its own code, marked local.
        (
            closed(Close(1009, "over size limit"), None),
            None,
            (1009, "over size limit", True),
        ),
        (
            closed(Close(1007, "invalid UTF-8"), Close(1007, "x"), False),
            None,
            (1007, "invalid UTF-8", True),
        ),
    ],
)
def test_close_failure(
    state: SimpleNamespace, override: str | None, expected: tuple[int, str, bool]
) -> None:
    """Closed connections report a code (1006 without a close frame), a reason,
    and whether the client closed first."""
    failure = close_failure(state, override)  # type: ignore[arg-type]
    assert failure.kind is FailureKind.CLOSED
    assert (failure.code, failure.reason, failure.local) == expected
