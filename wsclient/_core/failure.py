"""A backend-neutral description of what ended a connection or an attempt."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Failure", "FailureKind", "escape_controls"]


class FailureKind(enum.Enum):
    """How a connection, or an attempt to open one, ended."""

    CLOSED = "closed"
    """The connection was open and closed: with a close frame, or abnormally (1006)."""
    STATUS = "status"
    """The server answered the opening handshake with a non-101 HTTP status."""
    DNS = "dns"
    """The host name could not be resolved."""
    REFUSED = "refused"
    """The TCP connection was refused (nothing listens on that port)."""
    RESET = "reset"
    """The TCP connection was reset or dropped during the opening handshake."""
    TIMEOUT = "timeout"
    """Connecting, or the opening handshake, took longer than ``open_timeout``."""
    TLS_VERIFY = "tls_verify"
    """The server's TLS certificate failed verification (CA or host name)."""
    TLS = "tls"
    """Any other TLS error during the handshake."""
    HANDSHAKE = "handshake"
    """The server's handshake response was malformed or failed validation."""
    NEGOTIATION = "negotiation"
    """Subprotocol or extension negotiation failed: a configuration mismatch."""
    INVALID_URL = "invalid_url"
    """The URL (typically from a URL provider) is not a valid ws:// or wss:// URL."""
    AUTH = "auth"
    """The server refused the credentials in a message (first-message
    authentication through the protocol adapter)."""
    INSECURE = "insecure"
    """Refused by the client: credentials would go over plain ws:// to a host
    that is not this machine (see ``allow_insecure_credentials``)."""
    ERROR = "error"
    """Anything else: an unexpected exception, most likely a bug."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What ended a connection or a connection attempt.

    The transport layer builds it from websockets' or the OS's exception; the
    classification table and your ``classify`` hook decide from it whether to
    retry.

    Attributes:
        kind: The category of failure.
        code: The close code, for :attr:`FailureKind.CLOSED` (1006 when no close
            frame was received).
        reason: The close reason, or a short human-readable description.
        status: The HTTP status, for :attr:`FailureKind.STATUS`.
        headers: The HTTP response headers, for :attr:`FailureKind.STATUS`
            (names in lower case).
        error: The exception that caused the failure, if any.
        during_handshake: True when the connection never opened.
        local: For :attr:`FailureKind.CLOSED`, True when this client closed
            the connection, with ``code``, because the server misbehaved
            (1009: a message over ``max_size``; 1007: invalid UTF-8; 1002: a
            protocol error). Such closes are retried, under backoff.
    """

    kind: FailureKind
    code: int | None = None
    reason: str = ""
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: BaseException | None = field(default=None, compare=False)
    during_handshake: bool = False
    local: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FailureKind):
            raise TypeError(
                f"kind must be a FailureKind such as FailureKind.CLOSED, "
                f"got {self.kind!r}"
            )

    def __str__(self) -> str:
        # The reason may come from the server (a close reason): escape control
        # characters, which could forge or hide lines where this is logged.
        reason = escape_controls(self.reason)
        if self.kind is FailureKind.CLOSED:
            who = "the client" if self.local else "connection"
            text = f"{who} closed with code {self.code}"
            return f"{text} ({reason})" if reason else text
        if self.kind is FailureKind.STATUS:
            return f"server rejected the handshake with HTTP {self.status}"
        return f"{self.kind.value}: {reason}" if reason else self.kind.value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``): text
    from a server could otherwise forge or hide lines where it is logged."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)
