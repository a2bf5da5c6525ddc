"""Sending a message without websockets' ``send_context()`` when nothing is unusual.

websockets' ``send()`` wraps the framing of every message in
``send_context()``, an ``@asynccontextmanager``: an async generator, its
context manager and two coroutines per message, about 2 us, a fifth of the
time it takes to send a small message on asyncio. Its job is the unusual
cases: a connection that is not open, one that expects to close, an error
while framing or writing. For one ``str`` or ``bytes`` on an open
connection, with no fragmented message in progress, what is left of it is:
frame the message (:func:`frame_now`), write, wait for flow control if it
says so, and end the connection if writing fails. Each backend's ``send()``
does that (the writing differs) and hands everything else to websockets' own
``send()``, including a ``str`` that cannot be encoded (a lone surrogate):
websockets then handles that error as it does (logged, the connection ended,
ConnectionClosed raised). Framing itself cannot fail once the text is
encoded, but for a bug in an extension.
"""

from __future__ import annotations

from typing import Any

from websockets.protocol import State

__all__ = ["frame_now"]

_OPEN = State.OPEN


def frame_now(ws: Any, message: Any, text: bool | None) -> bool:
    """Frame ``message`` on websockets' connection ``ws`` as ``send()`` would,
    if it is the common case; the caller then writes it out.

    Returns False, having done nothing, for anything else (not open, a
    fragmented message being sent, ``text=``, another type): the caller then
    awaits websockets' ``send()``.
    """
    protocol = ws.protocol
    if (
        protocol.state is not _OPEN
        or ws.send_in_progress is not None
        or text is not None
    ):
        return False
    kind = type(message)
    if kind is str:
        try:
            data = message.encode()
        except UnicodeEncodeError:
            return False  # websockets' send() deals with it, as it always did.
        protocol.send_text(data)
    elif kind is bytes:
        protocol.send_binary(message)
    else:
        return False
    # After a data frame, an open connection does not expect to close
    # (protocol.close_expected()): send_context() would only write now.
    return True
