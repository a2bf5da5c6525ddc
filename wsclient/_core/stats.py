"""Counters behind :attr:`Client.stats`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Stats"]


@dataclass(slots=True)
class Stats:
    """Live counters of a client. Read them; the client updates them in place.

    Sizes are payload sizes: bytes for binary messages, characters for text
    messages (equal for ASCII). Counting encoded bytes would cost a copy per
    text message.

    Attributes:
        connects: Connections opened.
        reconnects: Connections opened after losing one.
        disconnects: Connections that ended.
        failed_attempts: Connection attempts that failed before opening.
        messages_in: Data messages received.
        messages_out: Data messages sent.
        bytes_in: Payload size received.
        bytes_out: Payload size sent.
        messages_dropped: Received messages dropped unread because the
            application did not read them across many reconnections.
        publications_unrouted: Publications for a channel with no live
            subscription (typically in flight during an unsubscribe): dropped.
        sends_interrupted: Messages handed to a connection that closed
            while sending them: they may be lost (their receipts say
            ``POSSIBLY_LOST``). This is *not* a count of all losses: a message
            written to the socket just before the link died is lost without
            any error (plain sends are at-most-once).
        buffered: Messages in the outbound buffer now (sent while not
            connected, waiting for a connection).
        buffered_bytes: Their total size in bytes (UTF-8 for text).
        buffer_dropped: Buffered messages discarded unsent: by the
            ``buffer_overflow`` policy, or left over when the client closed
            or stopped (those are also reported by ``UndeliveredEvent``).
        buffer_expired: Buffered messages that outlived ``buffer_ttl`` unsent.
        buffer_replaced: Buffered messages superseded unsent by a newer one
            with the same coalescing ``key``.
        last_close_code: Close code of the last connection that ended.
        last_close_reason: Close reason of the last connection that ended.
        backoff_delay: Current (or last) delay before a reconnection, in seconds.
        ping_rtt: Last ping round-trip time on the current connection, in
            seconds (None until its first pong).
        heartbeat_timeouts: Connections declared dead by the heartbeat or the
            idle watchdog.
        loop_lag_max: Longest event loop stall the heartbeat observed, in seconds.
    """

    connects: int = 0
    reconnects: int = 0
    disconnects: int = 0
    failed_attempts: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_dropped: int = 0
    publications_unrouted: int = 0
    sends_interrupted: int = 0
    buffered: int = 0
    buffered_bytes: int = 0
    buffer_dropped: int = 0
    buffer_expired: int = 0
    buffer_replaced: int = 0
    last_close_code: int | None = None
    last_close_reason: str | None = None
    backoff_delay: float = 0.0
    ping_rtt: float | None = None
    heartbeat_timeouts: int = 0
    loop_lag_max: float = 0.0
