"""Keeping credentials out of logs, messages and plain-text connections.

Bots put tokens in two places: the URL (``?token=...``, ``user:pass@``) and
handshake headers (``Authorization``, ``Cookie``, ``X-Api-Key``). Both end up
where they should not unless every output path redacts them: websockets'
own DEBUG log prints the request line and every header, its ``InvalidURI``
prints the whole URI, and a redirect's error names the new URI. This module
has the rules (what is a credential, what is loopback) and the redactors;
the transport applies them.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from websockets.frames import DATA_OPCODES, Frame

from ._core.failure import escape_controls

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping

__all__ = [
    "REDACTED",
    "RedactingLogger",
    "carries_credentials",
    "header_items",
    "insecure_credentials",
    "is_loopback",
    "is_sensitive_header",
    "redact_text",
    "redact_url",
    "strip_sensitive",
]

REDACTED = "***"

_SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
)
# The handshake's own headers: their values are not secrets.
_PROTOCOL_HEADERS = frozenset(
    {"sec-websocket-key", "sec-websocket-accept", "sec-websocket-version"}
)
# Words that, as a part of a name (x-api-key, X-Auth-Token, access_token,
# client_secret, sig), suggest a secret, in headers and in query strings.
_SECRET_PARTS = frozenset(
    {
        "auth", "authorization", "token", "key", "apikey", "secret", "password",
        "passwd", "pass", "pwd", "sig", "signature", "session", "sessionid",
        "sid", "cookie", "credential", "credentials", "jwt", "bearer", "otp",
    }
)  # fmt: skip
_NAME_PARTS = re.compile(r"[^a-z0-9]+")
_URL_IN_TEXT = re.compile(r"\b(?:wss?|https?)://[^\s'\"<>]+", re.IGNORECASE)


def _secret_name(name: str) -> bool:
    """Whether a header or query parameter name suggests a secret."""
    return any(part in _SECRET_PARTS for part in _NAME_PARTS.split(name.lower()))


def is_sensitive_header(name: str) -> bool:
    """Whether a header may carry a credential, judging by its name."""
    lower = name.lower()
    if lower in _PROTOCOL_HEADERS:
        return False
    return lower in _SENSITIVE_HEADERS or _secret_name(lower)


def header_items(headers: object) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of a mapping or a sequence of pairs."""
    if headers is None:
        return []
    raw_items = getattr(headers, "raw_items", None)  # websockets.Headers, which
    if callable(raw_items):  # may repeat a name: before Mapping.items().
        return [(str(k), str(v)) for k, v in raw_items()]
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]  # type: ignore[attr-defined]


def strip_sensitive(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers without those that may carry a credential."""
    return [(k, v) for k, v in headers if not is_sensitive_header(k)]


def redact_url(url: str) -> str:
    """Hide the user info and query values of ``url``: they often hold tokens.

    Query *names* stay, so that a log still says which parameters were sent;
    a user name stays when there is a password (it is then an identifier),
    not alone (``wss://TOKEN@host`` is a common way to pass a token).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc
    if "@" in netloc:
        host = netloc.rpartition("@")[2]
        shown = f"{user}:{REDACTED}" if password is not None else REDACTED
        netloc = f"{shown}@{host}"
    query = parts.query
    if query:
        query = "&".join(
            f"{field.partition('=')[0]}={REDACTED}" if "=" in field else REDACTED
            for field in query.split("&")
        )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """Redact every URL in free text and escape control characters.

    For messages built from exceptions and from what a server sent (a close
    reason): a URL may carry a token, and a control character (a newline,
    an ANSI escape) could forge or hide log lines.
    """
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return escape_controls(text)


def carries_credentials(url: str, headers: Iterable[tuple[str, str]]) -> str | None:
    """What in ``url`` or ``headers`` looks like a credential, or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None or parts.username:
        return "credentials in the URL (user:password@)"
    for field in parts.query.split("&") if parts.query else ():
        name = urllib.parse.unquote_plus(field.partition("=")[0])
        if "=" not in field or _secret_name(name):  # A bare value: a token?
            return f"the query parameter {name!r}"
    for name, _ in headers:
        if is_sensitive_header(name):
            return f"the {name!r} header"
    return None


def insecure_credentials(
    url: str,
    headers: Iterable[tuple[str, str]],
    auth: bool = False,
    proxied: bool = False,
) -> str | None:
    """Why sending these credentials over ``url`` would expose them, or None.

    Plain ``ws://`` to another machine sends them in clear text, readable by
    anyone on the path. Loopback traffic never leaves the machine, unless
    it goes through a proxy (``proxied``).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "ws" or (is_loopback(parts.hostname) and not proxied):
        return None
    what = carries_credentials(url, headers)
    if what is None and auth:
        what = "the auth credentials"
    if what is None:
        return None
    return (
        f"{what} would be sent in clear text over ws:// to {parts.hostname}: "
        f"use wss://, or pass allow_insecure_credentials=True if the network "
        f"is trusted"
    )


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine: traffic to it never leaves it.

    Only ``localhost`` and loopback addresses: other names ending in
    ``.localhost`` (or with a trailing dot) may be resolved by DNS, whose
    answer would then decide where a token goes in clear text.
    """
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger for websockets' protocol objects: their DEBUG lines, redacted.

    websockets logs the request line (its query may hold a token), every
    request and response header (``Authorization``, ``Cookie``,
    ``Set-Cookie``), and every frame. Frames in the ``secret_frames``
    direction show only their type and size: for a client, what it sends
    (it may be a first-message credential); for a server, what it receives.

    Args:
        logger: The logger to write to.
        secret_frames: ``">"`` (sent) or ``"<"`` (received).
    """

    def __init__(self, logger: logging.Logger, secret_frames: str = ">") -> None:
        super().__init__(logger, {})
        self.frame_format = f"{secret_frames} %s"

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            super().log(level, msg, *self._redact(msg, args), **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs

    def _redact(self, msg: object, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if msg == "> GET %s HTTP/1.1" and args:  # The client's request line.
            return (_redact_path(str(args[0])),)
        if msg == "< %s %s %s" and len(args) == 3:  # The server's.
            return (args[0], _redact_path(str(args[1])), args[2])
        if msg in ("> %s: %s", "< %s: %s") and len(args) == 2:
            name, value = args
            return (name, REDACTED if is_sensitive_header(str(name)) else value)
        if msg == self.frame_format and args and isinstance(args[0], Frame):
            frame = args[0]
            if frame.opcode in DATA_OPCODES:
                return (f"{frame.opcode.name} [{len(frame.data)} bytes, not logged]",)
        # Frames too: a close reason or a message may hold control characters
        # (a forged log line, an ANSI escape) or a URL with a token.
        return tuple(
            redact_text(str(a)) if isinstance(a, str | Frame) else a for a in args
        )


def _redact_path(path: str) -> str:
    """A request target (``/feed?token=x``) with its query values hidden."""
    return redact_url(f"ws://host{path}").removeprefix("ws://host")
