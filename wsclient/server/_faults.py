"""Argument checks and value objects for the fault-injection methods.

Every public fault method validates its arguments here first, so a typo in a
test fails at the call with a message that says what to pass instead of
surfacing later as a confusing client-side symptom.
"""

from __future__ import annotations

import email.utils
import http
import math
from dataclasses import dataclass
from typing import TypeGuard

from websockets.datastructures import Headers
from websockets.frames import EXTERNAL_CLOSE_CODES
from websockets.http11 import Response

MAX_CLOSE_REASON_BYTES = 123
"""A close frame's payload is at most 125 bytes, 2 of them for the code (RFC 6455)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """How to reject a handshake: built by :func:`check_refusal`."""

    status: int
    retry_after: str | None
    body: str
    location: str | None = None

    def response(self) -> Response:
        """Build the HTTP response to send instead of ``101 Switching Protocols``."""
        body = self.body.encode()
        # The same headers as websockets' ServerProtocol.reject(), which cannot
        # be used here because it only accepts statuses that HTTPStatus knows.
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", "text/plain; charset=utf-8"),
            ]
        )
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        if self.location is not None:
            headers["Location"] = self.location
        return Response(self.status, _reason_phrase(self.status), headers, body)


def check_count(n: object) -> int:
    """Check the number of handshakes to refuse."""
    if not _is_int(n) or n < 0:
        raise _type_or_value(n, f"n must be an integer >= 0, got {n!r}")
    return n


def check_refusal(status: object, retry_after: object, body: object) -> Refusal:
    """Check the arguments of ``refuse_next()`` and bundle them.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``status`` is not an HTTP error status (400-599), or
            ``retry_after`` is negative or not a printable ASCII string.
    """
    if not _is_int(status) or not 400 <= status <= 599:
        message = f"status must be an HTTP error status from 400 to 599, got {status!r}"
        raise _type_or_value(status, message)
    if not isinstance(body, str):
        raise TypeError(f"body must be a str, got {type(body).__name__}")
    return Refusal(int(status), _check_retry_after(retry_after), body)


def check_redirect(status: object, location: object) -> Refusal:
    """Check the arguments of ``redirect_next()`` and bundle them.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``status`` is not a redirect (301, 302, 303, 307,
            308) or ``location`` is empty or has control characters.
    """
    if not _is_int(status) or status not in (301, 302, 303, 307, 308):
        message = f"status must be 301, 302, 303, 307 or 308, got {status!r}"
        raise _type_or_value(status, message)
    if not isinstance(location, str):
        raise TypeError(f"location must be a str (a URL), got {location!r}")
    if not location or not location.isprintable() or not location.isascii():
        raise ValueError(f"location must be a printable ASCII URL, got {location!r}")
    return Refusal(int(status), None, "", location)


def check_close(code: object, reason: object) -> tuple[int, str]:
    """Check a close code and reason that the server will put in a close frame.

    Raises:
        TypeError: If ``code`` is not an int or ``reason`` not a str.
        ValueError: If the code may not appear in a close frame or the
            reason is longer than 123 bytes in UTF-8.
    """
    # 1005, 1006 and 1015 are reserved for reporting; they never go on the wire.
    if not _is_int(code) or not (code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000):
        message = (
            f"code must be a close code allowed on the wire (1000-1003, 1007-1014 "
            f"or 3000-4999), got {code!r}; use abort_all() for an abnormal 1006"
        )
        raise _type_or_value(code, message)
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, got {type(reason).__name__}")
    if len(reason.encode()) > MAX_CLOSE_REASON_BYTES:
        raise ValueError(
            f"reason must fit in {MAX_CLOSE_REASON_BYTES} bytes of UTF-8, "
            f"got {len(reason.encode())}"
        )
    return int(code), reason


def check_latency(seconds: object) -> float:
    """Check a latency in seconds: a finite number >= 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
    return float(seconds)


def check_message(message: object) -> tuple[bool, bytes]:
    """Check a message to broadcast.

    Returns:
        Whether it goes in a text frame, and its payload.
    """
    if isinstance(message, str):
        return True, message.encode()
    if isinstance(message, bytes | bytearray | memoryview):
        return False, bytes(message)
    raise TypeError(f"message must be str or bytes, got {type(message).__name__}")


# Private helpers.


def _check_retry_after(value: object) -> str | None:
    if value is None:
        return None
    if _is_int(value):
        if value < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {value!r}")
        return str(int(value))
    if isinstance(value, str):
        # Printable ASCII only: a CR or LF here would inject headers.
        if not value or not value.isascii() or not value.isprintable():
            raise ValueError(
                f"retry_after must be a non-empty printable ASCII string, got {value!r}"
            )
        return value
    raise TypeError(
        f"retry_after must be None, an int (seconds) or a str (verbatim), "
        f"got {type(value).__name__}"
    )


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass, but refuse_next(True) is a bug to report.
    return isinstance(value, int) and not isinstance(value, bool)


def _type_or_value(value: object, message: str) -> TypeError | ValueError:
    return ValueError(message) if _is_int(value) else TypeError(message)


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"
