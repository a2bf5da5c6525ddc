"""The client's lifecycle states and the transitions allowed between them."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["TRANSITIONS", "ClientState", "check_transition"]


class ClientState(enum.Enum):
    """Where the client is in its lifecycle; read it from :attr:`Client.state`."""

    IDLE = "idle"
    """Created, not entered yet (``async with`` starts it)."""
    CONNECTING = "connecting"
    """An attempt to connect is under way (the first one or a reconnect)."""
    CONNECTED = "connected"
    """A connection is open: messages flow."""
    BACKING_OFF = "backing_off"
    """The connection is down and the client waits before the next attempt."""
    CLOSED = "closed"
    """Closed by the application, or stopped by a fatal error or by giving up."""


_S = ClientState

# Rule 1: every connection ends in BACKING_OFF (or CLOSED), never straight in
# CONNECTING: each reconnect goes through the backoff gate.
# Rule 2: CLOSED is final.
TRANSITIONS: Final[Mapping[ClientState, frozenset[ClientState]]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.CONNECTED, _S.BACKING_OFF, _S.CLOSED}),
    _S.CONNECTED: frozenset({_S.BACKING_OFF, _S.CLOSED}),
    _S.BACKING_OFF: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}


def check_transition(old: ClientState, new: ClientState) -> None:
    """Raise :exc:`AssertionError` if going from ``old`` to ``new`` is a bug."""
    if new not in TRANSITIONS[old]:
        raise AssertionError(f"invalid state transition: {old.name} -> {new.name}")
