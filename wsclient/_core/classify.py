"""Which failures are worth a reconnect, and which are fatal.

The rule of thumb: retry what time can fix (the network, a restarting or
overloaded server) and stop on what it cannot (bad credentials, a wrong path,
a configuration mismatch, a certificate that does not verify), because retrying
those only hammers the server with requests that will fail the same way.

Override any verdict with the ``classify`` argument of :class:`wsclient.Client`:
it receives the :class:`~wsclient.Failure` and the default :class:`Verdict` and
returns the verdict to apply.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .failure import Failure, FailureKind

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AUTH_CLOSE_CODES",
    "AUTH_STATUSES",
    "CLOSE_CODES",
    "HANDSHAKE_STATUSES",
    "KIND_VERDICTS",
    "MAX_RETRY_AFTER",
    "Verdict",
    "classify",
    "parse_retry_after",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one failure.

    Attributes:
        retry: Whether to reconnect (after the backoff delay) or stop.
        delay: A minimum delay before the next attempt, in seconds, such as
            the server's ``Retry-After``; the backoff delay applies if longer.
        why: A short explanation, used in logs and in the exception when fatal.
        auth: The server refused the credentials. The client then stops with
            :exc:`~wsclient.AuthenticationError`, after one more attempt
            when it can fetch fresh credentials (a URL provider, a headers
            callable, an ``auth`` provider): a token may just have expired.
    """

    retry: bool
    delay: float | None = None
    why: str = ""
    auth: bool = False

    def __post_init__(self) -> None:
        # A classify hook builds these: a wrong field must fail in the hook
        # (which is logged, and the default verdict used), not later.
        if not isinstance(self.retry, bool):
            raise TypeError(f"retry must be a bool, got {self.retry!r}")
        if not isinstance(self.auth, bool):
            raise TypeError(f"auth must be a bool, got {self.auth!r}")
        if not isinstance(self.why, str):
            raise TypeError(f"why must be a str, got {self.why!r}")
        delay = self.delay
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, int | float)
        ):
            raise TypeError(f"delay must be a number of seconds or None, got {delay!r}")
        if delay is not None and not 0 <= delay < math.inf:
            raise ValueError(f"delay must be finite and >= 0, got {delay!r}")

    @classmethod
    def fatal(cls, why: str = "") -> Verdict:
        """A verdict that stops the client."""
        return cls(retry=False, why=why)

    @classmethod
    def again(cls, why: str = "", delay: float | None = None) -> Verdict:
        """A verdict that reconnects after the backoff delay (or ``delay``)."""
        return cls(retry=True, delay=delay, why=why)


RETRY: Final = True
FATAL: Final = False

# Close codes. See https://www.iana.org/assignments/websocket/websocket.xhtml
# and RFC 6455, section 7.4.1. Codes not listed here retry: 1016-2999 are
# unassigned or reserved, 3000-3999 belong to libraries and frameworks and
# 4000-4999 to applications, whose meaning we cannot know. Make a private code
# fatal with the ``classify`` hook.
CLOSE_CODES: Final[Mapping[int, tuple[bool, str]]] = {
    1000: (RETRY, "normal closure: the server ended the session; stay connected"),
    1001: (RETRY, "going away: the server is shutting down or restarting"),
    1002: (RETRY, "protocol error: may come from a faulty proxy; retry"),
    1003: (FATAL, "unsupported data: the server will not accept what we send"),
    1004: (RETRY, "reserved"),
    1005: (RETRY, "no status code in the close frame"),
    1006: (RETRY, "abnormal closure: the connection dropped without a close frame"),
    1007: (FATAL, "invalid payload data: the server rejects what we send"),
    1008: (FATAL, "policy violation: typically authorization; retrying will not help"),
    1009: (RETRY, "message too big: the message is dropped; the session can go on"),
    1010: (FATAL, "mandatory extension missing: a configuration mismatch"),
    1011: (RETRY, "internal server error"),
    1012: (RETRY, "service restart"),
    1013: (RETRY, "try again later"),
    1014: (RETRY, "bad gateway"),
    1015: (FATAL, "TLS handshake failure"),
    3000: (FATAL, "unauthorized (registered code)"),
    3003: (FATAL, "forbidden (registered code)"),
    3008: (RETRY, "timeout (registered code)"),
    4001: (FATAL, "unauthorized (a common application code)"),
    4003: (FATAL, "forbidden (a common application code)"),
    4401: (FATAL, "unauthorized (a common application code)"),
    4403: (FATAL, "forbidden (a common application code)"),
}

AUTH_CLOSE_CODES: Final = frozenset({1008, 3000, 3003, 4001, 4003, 4401, 4403})
"""Close codes that mean "credentials refused": :attr:`Verdict.auth`."""

AUTH_STATUSES: Final = frozenset({401, 403})
"""Handshake statuses that mean "credentials refused": :attr:`Verdict.auth`."""

# Handshake statuses other than 101. Statuses not listed: 5xx retry, any other
# status is fatal (a 4xx is an answer about the request, which does not change
# by itself, and a 3xx that websockets did not follow is a redirect it refused).
HANDSHAKE_STATUSES: Final[Mapping[int, tuple[bool, str]]] = {
    401: (FATAL, "unauthorized: check the credentials"),
    403: (FATAL, "forbidden: check the credentials and the origin"),
    404: (FATAL, "not found: check the URL path"),
    408: (RETRY, "request timeout"),
    426: (FATAL, "upgrade required: the server does not speak this WebSocket version"),
    429: (RETRY, "too many requests: honours Retry-After"),
    500: (RETRY, "internal server error"),
    502: (RETRY, "bad gateway"),
    503: (RETRY, "service unavailable: honours Retry-After"),
    504: (RETRY, "gateway timeout"),
}

MAX_RETRY_AFTER: Final = 3600.0
"""The longest Retry-After honoured, in seconds; longer values are capped."""

# The statuses whose Retry-After header is honoured, per RFC 9110, 10.2.3.
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})

KIND_VERDICTS: Final[Mapping[FailureKind, tuple[bool, str]]] = {
    FailureKind.DNS: (RETRY, "name resolution failed: DNS outages are often transient"),
    FailureKind.REFUSED: (RETRY, "connection refused: the server may be restarting"),
    FailureKind.RESET: (RETRY, "connection reset or lost during the handshake"),
    FailureKind.TIMEOUT: (RETRY, "timed out while opening the connection"),
    FailureKind.TLS_VERIFY: (FATAL, "TLS certificate verification failed"),
    FailureKind.TLS: (RETRY, "TLS error during the handshake"),
    FailureKind.HANDSHAKE: (RETRY, "invalid handshake response: may be a proxy"),
    FailureKind.NEGOTIATION: (FATAL, "subprotocol or extension negotiation failed"),
    FailureKind.INVALID_URL: (FATAL, "invalid WebSocket URL"),
    FailureKind.AUTH: (FATAL, "the server refused the credentials"),
    FailureKind.INSECURE: (FATAL, "credentials would travel in clear text"),
    FailureKind.ERROR: (FATAL, "unexpected error"),
}


def classify(failure: Failure, now: float) -> Verdict:
    """Return the default verdict for ``failure``.

    Args:
        failure: What ended the connection or the attempt.
        now: The current wall-clock time (seconds since the epoch), needed to
            turn a ``Retry-After`` HTTP-date into a delay.
    """
    if failure.kind is FailureKind.CLOSED and failure.local:
        # The server sent what the client could not accept; a new connection
        # is the way to recover, and the backoff keeps it from hammering.
        why = "the client closed the connection: the server misbehaved"
        return Verdict(RETRY, None, f"close code {failure.code}: {why}")
    if failure.kind is FailureKind.CLOSED:
        code = 1006 if failure.code is None else failure.code
        retry, why = CLOSE_CODES.get(code, (RETRY, "unknown close code"))
        return Verdict(
            retry, None, f"close code {code}: {why}", code in AUTH_CLOSE_CODES
        )
    if failure.kind is FailureKind.STATUS:
        return _classify_status(failure, now)
    retry, why = KIND_VERDICTS[failure.kind]
    return Verdict(retry, None, why, failure.kind is FailureKind.AUTH)


def _classify_status(failure: Failure, now: float) -> Verdict:
    status = failure.status or 0
    default = (RETRY, "server error") if 500 <= status < 600 else (FATAL, "rejected")
    retry, why = HANDSHAKE_STATUSES.get(status, default)
    delay = None
    if status in RETRY_AFTER_STATUSES:
        delay = parse_retry_after(failure.headers.get("retry-after"), now)
    return Verdict(retry, delay, f"HTTP {status}: {why}", status in AUTH_STATUSES)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Parse a ``Retry-After`` header in either form into a delay in seconds.

    Args:
        value: The header: delay-seconds (``"120"``) or an HTTP-date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``); None when absent.
        now: The current wall-clock time, to turn a date into a delay.

    Returns:
        The delay (0 for a date in the past, at most :data:`MAX_RETRY_AFTER`:
        a server must not be able to park a client for days), or None when
        the header is
        absent or malformed: a broken header must not stall the client, so the
        ordinary backoff applies instead.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; tolerate a missing zone.
        return None
    delay = when.timestamp() - now
    return min(max(0.0, delay), MAX_RETRY_AFTER) if math.isfinite(delay) else None
