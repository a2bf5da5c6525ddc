"""Token authentication for the reference server, and the requests it saw.

Clients authenticate in one of three ways that real services use, so that
tests can exercise each one end to end:

- ``via="handshake"``: an ``Authorization: Bearer <token>`` header, or a
  ``token=<token>`` query parameter, on the opening handshake; anything
  else gets ``401 Unauthorized``;
- ``via="message"``: the handshake is accepted, and the first message must be
  ``{"type": "auth", "token": T, "id": I}``, answered by
  ``{"type": "authenticated", "id": I}``, or by ``{"type": "auth_error",
  "id": I, "error": "..."}`` followed by a close with code 4001. Any other
  message first gets the same refusal.

Changing the token (``Server.require_auth(new)``) models a rotation: clients
holding the old one are refused from their next attempt.

This module is I/O-free: the connection asks it and acts on the answer.
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from websockets.datastructures import Headers
from websockets.http11 import Response

if TYPE_CHECKING:
    from websockets.http11 import Request

__all__ = [
    "AUTH_CLOSE_CODE",
    "Auth",
    "SeenRequest",
    "check_auth",
    "check_message",
    "seen",
]

AUTH_CLOSE_CODE = 4001
"""Close code after a refused first-message authentication."""

Via = Literal["handshake", "message"]


@dataclass(frozen=True, slots=True)
class Auth:
    """The token clients must present, and where."""

    token: str
    via: Via

    def refuses(self, request: Request) -> bool:
        """Whether a handshake with ``request`` must be refused (401)."""
        if self.via != "handshake":
            return False
        presented = _bearer(request.headers.get("Authorization"))
        if presented is None:
            query = urllib.parse.urlsplit(request.path).query
            tokens = urllib.parse.parse_qs(query).get("token", [])
            presented = tokens[0] if tokens else None
        return presented is None or not _same(presented, self.token)


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """A handshake request the server received, for tests to inspect.

    Attributes:
        path: The request target, query string included.
        headers: The headers, in order, as (name, value) pairs.
    """

    path: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)


def seen(request: Request) -> SeenRequest:
    return SeenRequest(request.path, tuple(request.headers.raw_items()))


def check_auth(token: object, via: object) -> Auth | None:
    """Check the arguments of ``Server.require_auth()``."""
    if token is None:
        return None
    if not isinstance(token, str) or not token:
        raise TypeError(f"token must be a non-empty str or None, got {token!r}")
    if via not in ("handshake", "message"):
        raise ValueError(f"via must be 'handshake' or 'message', got {via!r}")
    return Auth(token, via)


def unauthorized() -> Response:
    """The 401 answer to a handshake without the right token."""
    body = b"a valid token is required"
    headers = Headers(
        [
            ("WWW-Authenticate", 'Bearer realm="wsclient reference server"'),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
    )
    return Response(401, "Unauthorized", headers, body)


def check_message(text: str, auth: Auth) -> tuple[str, bool]:
    """Judge the first message of a connection under ``via="message"``.

    Returns:
        The reply to send, and whether the connection is now authenticated
        (if not, close it with :data:`AUTH_CLOSE_CODE` after the reply).
    """
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError):
        fields = None
    if not isinstance(fields, dict) or fields.get("type") != "auth":
        return _refusal(None, "authenticate first"), False
    request_id = fields.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        request_id = None
    token = fields.get("token")
    if not isinstance(token, str) or not _same(token, auth.token):
        return _refusal(request_id, "invalid token"), False
    return json.dumps({"type": "authenticated", "id": request_id}), True


def _refusal(request_id: int | None, error: str) -> str:
    return json.dumps({"type": "auth_error", "id": request_id, "error": error})


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _same(presented: str, expected: str) -> bool:
    # surrogatepass: a JSON token may hold a lone surrogate ("\ud800").
    encode = "surrogatepass"
    return hmac.compare_digest(
        presented.encode(errors=encode), expected.encode(errors=encode)
    )
