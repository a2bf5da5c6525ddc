"""First-message authentication: present a token before anything else.

Some servers accept any handshake and expect the first message to carry the
credentials. With the client's ``auth`` option, on every connection and
before the subscriptions are restored, the router asks the protocol adapter
for that message (``adapter.authenticate(token, request_id)``), sends it, and
waits (up to ``open_timeout``) for the answer, which the adapter routes as
:class:`~wsclient.Authenticated` or :class:`~wsclient.AuthFailed`.

``auth`` is a token, or a callable (sync or async) returning one, called on
every connection so that a token can be refreshed; a refusal then ends the
connection with a :attr:`~wsclient.FailureKind.AUTH` failure, which the
client answers with one more attempt with a fresh token, then
:exc:`~wsclient.AuthenticationError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

import anyio

from ._adapters.base import Authenticated, AuthFailed
from ._calls import call
from ._core.failure import Failure, FailureKind
from ._secrets import redact_text
from ._transport.base import scrub

if TYPE_CHECKING:
    from ._adapters.base import ProtocolAdapter
    from ._transport.base import Data

__all__ = ["AuthExchange", "AuthSource", "check_auth"]

AuthSource: TypeAlias = str | Callable[[], str | Awaitable[str]]
"""The ``auth`` option: a token, or a callable returning one."""


def check_auth(auth: object, protocol: object) -> AuthSource | None:
    """Validate the ``auth`` option of :class:`~wsclient.Client`."""
    if auth is None:
        return None
    if isinstance(auth, str):
        if not auth:
            raise ValueError("auth must be a non-empty token, or None")
    elif not callable(auth):
        raise TypeError(
            "auth must be a token (str) or a callable returning one, got "
            f"{type(auth).__name__}"
        )
    if protocol is None or not callable(getattr(protocol, "authenticate", None)):
        raise ValueError(
            "auth= sends the token in the first message, which needs a protocol "
            "adapter that implements authenticate(): pass "
            "protocol=wsclient.ReferenceProtocol() or your own; for a token in a "
            "header or the URL, use additional_headers= or a URL provider"
        )
    return auth


class AuthExchange:
    """The authentication of one connection: the request and its answer."""

    def __init__(self) -> None:
        self.request_id: int | None = None
        self.answer: Authenticated | AuthFailed | None = None
        self._answered = anyio.Event()

    def connection_closed(self) -> None:
        """No answer can come any more: stop waiting (the close code says why)."""
        self._answered.set()

    def answered(self, routed: Authenticated | AuthFailed) -> bool:
        """Take the answer to our request; False if it answers something else."""
        if self.request_id is None or routed.request_id != self.request_id:
            return False
        if self.answer is None:
            self.answer = routed
            self._answered.set()
        return True

    async def run(
        self,
        source: AuthSource,
        adapter: ProtocolAdapter,
        send: Callable[[Data], Awaitable[bool]],
        request_id: int,
        timeout: float | None,
    ) -> Failure | None:
        """Authenticate; return why it failed, or None (also if the connection
        closed meanwhile: the supervisor reports that)."""
        try:
            token = await call(source) if callable(source) else source
            message = adapter.authenticate(token, request_id)  # type: ignore[attr-defined]
        except Exception as exc:
            scrub(exc)
            reason = f"the auth token could not be obtained: {redact_text(repr(exc))}"
            return Failure(FailureKind.ERROR, reason=reason, error=exc)
        self.request_id = request_id
        if not await send(message):
            return None
        with anyio.move_on_after(timeout):
            await self._answered.wait()
        if self.answer is None and not self._answered.is_set():
            reason = "no answer to the authentication message within open_timeout"
            return Failure(FailureKind.TIMEOUT, reason=reason)
        if self.answer is None:
            return None  # Closed first (4001, 1008...): its close code says why.
        if isinstance(self.answer, AuthFailed):
            return Failure(FailureKind.AUTH, reason=self.answer.error)
        return None
