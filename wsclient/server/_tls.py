"""TLS for the reference server: anyio's :class:`~anyio.streams.tls.TLSStream`.

Each connection wraps its own accepted socket, in its own task, rather than
going through :class:`~anyio.streams.tls.TLSListener`, for three reasons:

- the connection is registered before the TLS handshake, so that
  :meth:`~wsclient.server.Server.abort_all`, ``close_all()``, ``go_down()``
  and leaving ``serve()`` reach a client stuck in it, as they reach one stuck
  in the HTTP handshake;
- the stall fault holds the TLS handshake too: a stalled ``wss://`` server
  answers nothing, as a stalled ``ws://`` one does;
- a failed handshake is the client's problem (it does not trust the
  certificate, it expected another host name, it spoke plain HTTP): the
  server logs it at INFO and counts it in
  :attr:`~wsclient.server.ServerCounters.tls_handshakes_failed`, where
  ``TLSListener`` would log an ERROR with a traceback.

The streams use ``standard_compatible=False``: a client that closes TCP
without a TLS ``close_notify`` is an ordinary end of stream, not an error.
On a clean close the server still sends ``close_notify``
(:func:`say_goodbye`), as websockets' own servers do.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Final

import anyio
from anyio.streams.tls import TLSStream

if TYPE_CHECKING:
    from anyio.abc import AnyByteStream

    from ._state import CounterBoard

logger = logging.getLogger("wsclient.server")

HANDSHAKE_ERRORS: Final = (
    # ssl.SSLError is an OSError: an alert from the client (unknown CA, bad
    # certificate), or bytes that are not TLS at all.
    OSError,
    # The client closed or reset the connection during the handshake.
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)
"""What :meth:`TLSStream.wrap` raises when the client fails the handshake."""


def check_context(context: object) -> ssl.SSLContext | None:
    """Return ``context`` if it can serve TLS; raise TypeError/ValueError otherwise."""
    if context is None:
        return None
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(
            f"ssl must be an ssl.SSLContext or None, got {type(context).__name__}"
        )
    if context.protocol is ssl.PROTOCOL_TLS_CLIENT:
        # Otherwise every handshake would fail, one log line at a time.
        raise ValueError(
            "ssl must be a server-side context: create it with "
            "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), "
            "then call load_cert_chain()"
        )
    return context


def context_from_files(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """Build a server context from PEM files, for the command line.

    Raises:
        OSError: If a file cannot be read, or (as :exc:`ssl.SSLError`) if it
            holds no valid certificate or key, or the key does not match.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


async def start(
    stream: AnyByteStream, context: ssl.SSLContext, counters: CounterBoard
) -> TLSStream | None:
    """Do the server side of the TLS handshake.

    There is no timeout, as for the HTTP handshake that follows: the fault
    methods and leaving ``serve()`` end a connection stuck in it.

    Returns:
        The encrypted stream, or None if the client failed the handshake,
        which is logged at INFO and counted; the caller closes ``stream``.
    """
    try:
        return await TLSStream.wrap(
            stream, server_side=True, ssl_context=context, standard_compatible=False
        )
    except HANDSHAKE_ERRORS as exc:
        logger.info("TLS handshake failed: %s", describe(exc))
        counters.tls_handshake_failed()
        return None


async def say_goodbye(stream: TLSStream, lock: anyio.Lock, timeout: float) -> None:
    """Send ``close_notify`` and wait up to ``timeout`` for the client's.

    TLS cannot half-close, so this is the TLS counterpart of the FIN that
    the server sends after the WebSocket closing handshake over plain TCP.
    ``lock`` is the connection's send lock: a close frame still going out
    must not interleave with the ``close_notify`` record. Errors mean that
    the client is gone already, which is what this waits for anyway.
    """
    with anyio.move_on_after(timeout):
        async with lock:
            try:
                await stream.unwrap()
            except HANDSHAKE_ERRORS:
                pass


def describe(exc: BaseException) -> str:
    """Say why a handshake failed, from the exception or the one it wraps."""
    if isinstance(exc, anyio.EndOfStream):
        # Typically a client that does not trust the certificate: Python's
        # clients hang up without sending an alert that would say so.
        return "the client closed the connection (does it trust the certificate?)"
    cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else exc
    if cause is None:
        return "the connection broke"
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
