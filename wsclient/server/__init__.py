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

TLS
---

Give :func:`serve` a server-side :class:`ssl.SSLContext` with a certificate
loaded (``--certfile``/``--keyfile`` on the command line) and it serves
``wss://``; :attr:`Server.url` then starts with ``wss://``. The TLS layer is
anyio's :class:`~anyio.streams.tls.TLSStream`, so it too runs on asyncio and
trio alike, and every fault below works the same over it (``stall()`` holds
the TLS handshake too).

The URL keeps the host as given to :func:`serve`, because that is the
address actually bound, so the certificate must be issued for that name:
with the default ``127.0.0.1``, it needs that IP address among its subject
alternative names (Python checks IP addresses against them). A certificate
for ``localhost`` only fits ``serve(host="localhost")``, which binds every
address ``localhost`` resolves to; with only ``127.0.0.1`` bound, a client of
``wss://localhost`` may try ``::1`` first and be refused. For tests, trustme
makes a throwaway CA::

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    async with serve(ssl=context) as server:  # server.url is wss://127.0.0.1:…
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        ...  # connect to server.url with ssl=client_context

A client that fails the TLS handshake (it does not trust the certificate,
expects another host name, or speaks plain ``ws://``) is the client's
problem: the server logs it at INFO, never as an error, counts it in
:attr:`ServerCounters.tls_handshakes_failed`, and goes on serving. Like the
HTTP handshake, the TLS handshake has no server-side timeout: the fault
methods and leaving :func:`serve` end a connection stuck in it. After a
clean WebSocket close the server sends a TLS ``close_notify`` (TLS cannot
half-close TCP), then closes TCP.

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
``{"type": "subscribe", "channel": C, …}``         ``subscribed``, the replay, then
                                                   live ``pub`` messages (see
                                                   Channels below)
``{"type": "unsubscribe", "channel": C, …}``       ``unsubscribed``
``{"type": "publish", "channel": C, "data": X}``   ``pub`` to every subscriber of C;
                                                   ``ack`` to the sender if it gave
                                                   an ``id``
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
- Replies to one connection's commands (echoes, pongs, errors, channel
  answers) go out in the order of the commands. Broadcasts and stream
  messages interleave with them.

Channels
--------

A channel is created on first use. It has an ``epoch`` (a random string
naming this incarnation of its history), an ``offset`` (0 when empty; each
publication gets the next one: 1, 2, 3, ...) and a history of the latest
publications, bounded by count (1000) and age (300 s); see
:meth:`Server.configure_history`. C is a non-empty string of at most 200
characters; I (``id``, optional) is any JSON scalar, echoed back in the answer
when it was sent and left out when it was not.

Client to server (``id``, ``since`` and ``msg_id`` are optional)::

    {"type": "subscribe", "channel": C, "id": I, "since": {"epoch": E, "offset": N}}
    {"type": "unsubscribe", "channel": C, "id": I}
    {"type": "publish", "channel": C, "data": X, "id": I, "msg_id": M}

Server to client::

    {"type": "subscribed", "channel": C, "id": I, "epoch": E, "offset": CUR,
     "recovered": true | false | null, "reason": R, "missing": [A, B]}
    {"type": "pub", "channel": C, "epoch": E, "offset": K, "data": X}
    {"type": "unsubscribed", "channel": C, "id": I}
    {"type": "ack", "channel": C, "id": I, "offset": K}       # publish with an id
    {"type": "ack", "channel": C, "id": I, "offset": K, "duplicate": true}
    {"type": "subscribe_error", "channel": C, "id": I, "error": "..."}
    {"type": "unsubscribe_error", "channel": C, "id": I, "error": "..."}
    {"type": "error", "id": I, "error": "..."}                # bad publish

A publish goes, as a ``pub``, to every connection subscribed to C, the
sender included if it is one; ``reason`` and ``missing`` appear only when
they apply.

The subscribe answer comes before any replayed publication. CUR is the
channel's latest offset when the subscription began and FIRST the oldest
offset still in history (CUR + 1 if none); live publications (offset > CUR)
follow the replay:

- no ``since``: ``"recovered": null``, no replay;
- same epoch, FIRST - 1 <= N <= CUR: ``"recovered": true``, N + 1 .. CUR
  replayed (nothing when N == CUR, e.g. N == 0 on an empty channel);
- same epoch, N < FIRST - 1 (gone by size or age): ``"recovered": false,
  "reason": "truncated", "missing": [N + 1, FIRST - 1]``, FIRST .. CUR
  replayed;
- same epoch, N > CUR: ``"recovered": false, "reason": "future"``, no replay;
- another epoch: ``"recovered": false, "reason": "epoch"``, no replay: the
  client cannot know what it missed.

- Errors fail closed: nothing changes. A malformed subscribe (``channel``,
  ``id``, or ``since`` not an object with a str ``epoch`` and an integer
  ``offset`` from 0 to 2**53) or one for a channel that this connection
  already holds gets ``{"type": "subscribe_error", "channel": C, "id": I,
  "error": "..."}``, ``"already subscribed"`` for the latter (counted in
  :attr:`ServerCounters.duplicate_subscribes`). An unsubscribe that is
  malformed or for a channel not held gets ``{"type": "unsubscribe_error",
  ...}``, ``"not subscribed"`` for the latter. A malformed publish (``data``
  is required, ``msg_id`` is a str of 1 to 200 characters) gets ``{"type":
  "error", "id": I, "error": "..."}``. The ``*_error`` replies echo
  ``channel`` as sent, valid or not.
- ``msg_id`` de-duplicates: a publish whose ``msg_id`` was accepted on that
  channel before (among the last 10,000) is not published again, and its
  ack is ``{"type": "ack", "id": I, "channel": C, "offset": K,
  "duplicate": true}`` with the original offset K.
- Ordering: each subscriber gets a channel's publications in offset order,
  and around the resume point nothing is lost, repeated or reordered, even
  while publications race the subscribe. After ``unsubscribed``, no ``pub``
  for C comes until the connection subscribes to C again.
- Backpressure: a publish waits until every subscriber of the channel has
  room in its queue (16 messages), so a client that reads slowly slows down
  that channel's publishers, whether they are clients or
  :meth:`Server.publish`; nobody is dropped. A subscribe's replay does not
  block the reader: pings and close frames are still answered.

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
``come_back()``                the same URL works again; channels, epochs
                               and history are kept
``lose_history()``             every channel gets a new epoch, an empty
                               history and offset 0 (a restart that lost its
                               memory); resumes get ``"reason": "epoch"``
``expire_history(s)``          publications at least s seconds old are
                               dropped, as the TTL would; resumes from before
                               them get ``"reason": "truncated"``
leaving ``serve()``            a close frame with 1001 "server shutting down"
``redirect_next(n, location)`` the next ``n`` handshakes get a redirect (307
                               by default) to ``location``
=============================  ===============================================

Authentication
--------------

``Server.require_auth(token)`` makes every new handshake present the token,
as ``Authorization: Bearer <token>`` or ``?token=<token>``, or get 401;
``require_auth(token, via="message")`` accepts the handshake and requires a
first message ``{"type": "auth", "token": T, "id": I}``, answered
``{"type": "authenticated", "id": I}``, or ``{"type": "auth_error", "id": I,
"error": "..."}`` and a close with code 4001. ``Server.requests`` lists the
last 100 handshake requests (path and headers, as received). The server's
DEBUG log redacts tokens as the client's does.
"""

from __future__ import annotations

from ._auth import SeenRequest as SeenRequest
from ._channels import ChannelInfo as ChannelInfo
from ._server import Server as Server, serve as serve
from ._state import ServerCounters as ServerCounters

__all__ = ["ChannelInfo", "SeenRequest", "Server", "ServerCounters", "serve"]
