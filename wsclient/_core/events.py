"""The event objects passed to callbacks. Each is frozen: callbacks observe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .failure import Failure

__all__ = ["ConnectEvent", "DisconnectEvent", "GiveUpEvent", "ReconnectEvent"]


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    """A connection opened (the first one, or a reconnection).

    Attributes:
        url: The URL connected to (query string redacted).
        attempt: Consecutive attempts it took, 1 when the first one worked.
        reconnect: False for the first connection of the client.
    """

    url: str
    attempt: int
    reconnect: bool


@dataclass(frozen=True, slots=True)
class DisconnectEvent:
    """A connection ended, or an attempt to open one failed.

    Attributes:
        code: Close code; 1006 (abnormal closure) when no close frame was
            received, including a half-open link found by the heartbeat.
            None when the connection never opened (see ``failure``).
        reason: Close reason, or a description of the failure.
        will_reconnect: False when the client stops (fatal error, gave up,
            or closed by the application).
        delay: Seconds before the next attempt; None when not reconnecting.
        failure: The full description of what happened.
        was_connected: True when a connection was open (not a failed attempt).
        loop_blocked: Seconds the event loop was blocked around a heartbeat
            timeout, when that is the likely cause: a long synchronous call in
            the application, not a dead server. None otherwise.
        error: When the client stops on its own (``will_reconnect`` False,
            not closed by the application), the exception it stops with,
            e.g. :exc:`~wsclient.AuthenticationError`; None otherwise.
    """

    code: int | None
    reason: str
    will_reconnect: bool
    delay: float | None
    failure: Failure
    was_connected: bool
    loop_blocked: float | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ReconnectEvent:
    """The client reconnected after losing its connection.

    Attributes:
        attempt: Attempts it took since the connection was lost.
        downtime: Seconds between losing the connection and getting it back.
        url: The URL connected to (query string redacted).
    """

    attempt: int
    downtime: float
    url: str


@dataclass(frozen=True, slots=True)
class GiveUpEvent:
    """The client stopped reconnecting: a fatal failure, or the stop strategy.

    Attributes:
        error: The exception that :meth:`Client.wait_connected`, ``send()`` and
            ``async for`` now raise.
        attempts: Consecutive failed attempts.
        downtime: Seconds since the connection was last up.
    """

    error: BaseException
    attempts: int
    downtime: float
