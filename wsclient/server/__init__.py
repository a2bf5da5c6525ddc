"""A reference WebSocket server with fault injection, for testing clients.

It backs wsclient's own test suite and is offered to users who want to test
their bots against a server that misbehaves on demand::

    from wsclient.server import serve

    async with serve() as server:  # 127.0.0.1, a free port
        ...  # connect a client to server.url
        await server.abort_all()  # the client sees 1006
        await server.wait_for(lambda c: c.handshakes_completed >= 2)

Run one by hand with ``python -m wsclient.server --port 8765``.

Design
------

The server is written once on anyio, so it runs on whichever event loop is
running (asyncio or trio) and a test exercises the client and the server on
the same backend. Sockets are anyio TCP listeners and streams; the WebSocket
protocol is websockets' Sans-I/O :class:`websockets.server.ServerProtocol`.
Owning the I/O loop instead of using websockets' asyncio or trio servers is
what makes the faults possible: the server can stop reading (stall), drop a
socket with an RST (abort), or answer a handshake with any status, on both
backends with one code path. Everything runs in one task group opened by
:func:`serve`; no task outlives it.

Wire protocol
-------------

Clients send JSON objects in text frames. Known commands:

=================================================  ====================================
Client sends                                       Server answers
=================================================  ====================================
``{"type": "echo", "data": X}``                    ``{"type": "echo", "data": X}``
``{"type": "ping", "id": I}`` (``id`` optional)    ``{"type": "pong", "id": I}``
                                                   (no ``id`` if none was sent)
``{"type": "broadcast", "data": X}``               ``{"type": "broadcast", "data": X}``
                                                   to every open connection, the
                                                   sender included
``{"type": "stream", "count": N, "size": S}``      N messages
                                                   ``{"type": "stream", "seq": i,
                                                   "data": "xxx…"}`` with i from 0
                                                   and S characters of data, as
                                                   fast as the client reads
=================================================  ====================================

- ``data`` is any JSON value; when missing it comes back as ``null``.
- ``stream`` takes integers 0 <= N <= 1,000,000 and 0 <= S <= 1 MiB; other
  values get ``{"type": "error", "error": "<what is wrong>"}``. Stream
  commands on one connection run one after the other; their messages
  interleave with replies to other commands.
- Anything else is echoed back verbatim in the same kind of frame: text that
  is not JSON, JSON that is not an object with a known ``type``, and binary
  frames. Fragmented messages are echoed as one frame.
- Replies are re-serialized compactly (``{"type":"echo","data":1}``): compare
  parsed JSON, not strings.
- WebSocket pings get pongs at once; they are control frames, so neither the
  latency fault nor the outbound queue delays them.
- Text that is not valid UTF-8 closes the connection with 1007; a message
  over ``max_size`` closes it with 1009. Compression is not negotiated.

Faults
------

Methods of :class:`Server`; wait for their effect with
:meth:`~Server.wait_for` on :class:`ServerCounters` rather than sleeping.

=============================  ===============================================
Fault                          What a websockets client sees
=============================  ===============================================
``abort_all()``                open connection: ``ConnectionClosedError``,
                               code 1006, no close frame (the server sends an
                               RST); mid-handshake: the opening handshake
                               fails (EOF or connection reset)
``close_all(code, reason)``    a close frame with that code and reason, then
                               a clean TCP close; mid-handshake: as abort_all
``stall(True)``                silence with TCP open: no pongs, no replies, no
                               handshake responses (``open_timeout`` fires);
                               new TCP connections are still accepted
``refuse_next(n, status, …)``  ``InvalidStatus`` with that status, body and
                               ``Retry-After`` header, n times
``close_after_handshake(c)``   the handshake succeeds, then a close frame
                               with code c arrives at once
``set_latency(s)``             every data message arrives s seconds late;
                               pongs are not delayed
``go_down()``                  open connections as abort_all; new attempts get
                               "connection refused" (``OSError``)
``come_back()``                the same URL works again
leaving ``serve()``            a close frame with 1001 "server shutting down"
=============================  ===============================================
"""

from __future__ import annotations

from ._server import Server as Server, serve as serve
from ._state import ServerCounters as ServerCounters

__all__ = ["Server", "ServerCounters", "serve"]
