"""The authentication and redirect controls of :class:`Server` (a mixin).

Kept apart from the fault methods of :mod:`._server` so that each module
stays small; the rules themselves live in :mod:`._auth`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from . import _auth, _faults

if TYPE_CHECKING:
    from ._auth import SeenRequest
    from ._state import ServerState

__all__ = ["AuthControl"]


class AuthControl:
    """Require a token, redirect handshakes, and show the requests received."""

    _state: ServerState

    def require_auth(
        self, token: str | None, *, via: Literal["handshake", "message"] = "handshake"
    ) -> None:
        """Require ``token`` from every new connection; None stops requiring one.

        With ``via="handshake"``, the handshake must carry ``Authorization:
        Bearer <token>`` or a ``token=<token>`` query parameter, else it gets
        ``401 Unauthorized``. With ``via="message"``, the first message must
        be ``{"type": "auth", "token": T, "id": I}``: it is answered
        ``{"type": "authenticated", "id": I}``, or ``{"type": "auth_error",
        ...}`` and a close with code 4001. Refusals are counted in
        :attr:`ServerCounters.auth_failures`. Connections already open are
        not affected: call it again with another token to model a rotation.

        Raises:
            TypeError: ``token`` is not a non-empty str or None.
            ValueError: ``via`` is not ``"handshake"`` or ``"message"``.
        """
        self._state.auth = _auth.check_auth(token, via)

    def redirect_next(self, n: int = 1, location: str = "", status: int = 307) -> None:
        """Answer the next ``n`` handshakes with a redirect to ``location``.

        Counted in :attr:`ServerCounters.redirects`. It replaces any refusal
        pending from :meth:`refuse_next`; ``n=0`` cancels it.

        Raises:
            TypeError: An argument has the wrong type.
            ValueError: ``status`` is not 301, 302, 303, 307 or 308, or
                ``location`` is not a printable URL.
        """
        count = _faults.check_count(n)
        self._state.refuse(count, _faults.check_redirect(status, location))

    @property
    def requests(self) -> list[SeenRequest]:
        """The last 100 handshake requests received, oldest first, with their
        path and headers exactly as sent (tokens included: it is for tests)."""
        return list(self._state.requests)
