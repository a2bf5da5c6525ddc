"""One server connection: socket I/O around websockets' Sans-I/O ServerProtocol.

Four tasks share the connection, all in one task group inside one cancel
scope (:attr:`Connection._scope`), so that aborting a connection is one
``cancel()``:

- the **reader** feeds bytes to the protocol, writes what the protocol wants
  to send at once (handshake response, pongs, close frames), and turns
  complete messages into actions; replies to commands go to the mailbox;
- the **pump** moves the mailbox (replies, subscribe answers, replays and
  channel publications, in the order they were posted: see ``_mailbox.py``)
  into the outbound queue;
- the **writer** drains the outbound queue of data messages, honouring the
  latency fault, so that a slow client blocks the queue, not the reader: the
  reader keeps answering pings and close frames while a big stream or a
  long replay is going out;
- the **streamer** runs ``stream`` commands one after the other, feeding the
  outbound queue at the pace the client reads.

Every write goes through :meth:`Connection._flush_locked` under one lock,
which keeps bytes on the wire in the order the protocol produced them.

On a server given ``ssl=``, the reader first does the TLS handshake (see
``_tls.py``); everything after it is the same over the encrypted stream.
"""

from __future__ import annotations

import logging
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import CLOSED, CONNECTING, OPEN, SEND_EOF
from websockets.server import ServerProtocol

from .._secrets import RedactingLogger
from . import _auth, _tls, _wire
from ._mailbox import Mailbox

if TYPE_CHECKING:
    from anyio.abc import ByteStream, SocketStream, TaskGroup
    from websockets.protocol import Event

    from ._state import ServerState

logger = logging.getLogger("wsclient.server")

# Tests run with tokens in URLs, headers and first messages: the server's
# DEBUG log redacts them as the client's does (what it receives, here).
_PROTOCOL_LOGGER = RedactingLogger(logger, secret_frames="<")

CLOSE_TIMEOUT: Final = 1.0
"""Seconds to wait for the closing handshake before dropping the TCP connection."""

OUTBOX_SIZE: Final = 16
"""Data messages queued per connection before senders wait (backpressure).

Like websockets' ``max_queue`` default; with ``max_size`` and
:data:`MAILBOX_SIZE` it bounds the memory that a client that sends without
reading can pin: about 32 MiB with the defaults."""

MAILBOX_SIZE: Final = 16
"""Replies and publications queued in the mailbox before producers wait.

A subscribe's replay may go over it once (see ``_mailbox.py``)."""

STREAM_JOBS: Final = 8
"""``stream`` commands queued per connection before the reader waits."""

WRITE_BATCH_BYTES: Final = 64 * 1024
"""Queued messages already due are written together, up to about this size."""

_CONNECTION_LOST = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    due: float  # anyio.current_time() at which the latency fault lets it go
    text: bool
    payload: bytes


class Connection:
    """Serve one accepted TCP connection until it closes or is aborted.

    The server registers the connection before :meth:`run` starts, so that
    the fault methods reach connections still in the opening handshake.
    """

    def __init__(self, stream: SocketStream, state: ServerState) -> None:
        self._stream: ByteStream = stream  # a TLSStream after the TLS handshake
        self._state = state
        self._protocol = ServerProtocol(
            max_size=state.max_size, logger=_PROTOCOL_LOGGER
        )
        self._scope = anyio.CancelScope()
        self._send_lock = anyio.Lock()
        self._outbox_in, self._outbox = anyio.create_memory_object_stream[_Outgoing](
            OUTBOX_SIZE
        )
        self._jobs_in, self._jobs = anyio.create_memory_object_stream[_wire.StreamJob](
            STREAM_JOBS
        )
        self._mailbox = Mailbox(MAILBOX_SIZE)
        self._fragments: list[bytes] = []
        self._fragments_text = False
        self._exempt = False  # close() lets the closing handshake through a stall
        self._reset = False  # abort() wants an RST rather than a FIN
        self._closed = anyio.Event()
        self._goodbye = anyio.CancelScope()  # around close_notify; abort() cancels
        self._task_group: TaskGroup | None = None
        self._auth: _auth.Auth | None = None  # Set until authenticated.

    @property
    def is_open(self) -> bool:
        """True once the handshake succeeded and until a close frame goes out."""
        return self._protocol.state is OPEN

    async def run(self) -> None:
        """Serve the connection; return once the TCP connection is closed.

        Errors are logged, never raised: a broken or hostile client must not
        take the server down.
        """
        try:
            with self._scope:
                if not await self._start_tls():
                    return
                async with anyio.create_task_group() as task_group:
                    self._task_group = task_group
                    await self._read_loop()
                    task_group.cancel_scope.cancel()
        except Exception:
            logger.error("connection failed", exc_info=True)
        finally:
            self._state.connections.discard(self)
            # Unsubscribe before closing the mailbox, which releases the
            # publishers waiting for room in it.
            self._state.pubsub.drop(self._mailbox)
            self._mailbox.close()
            for channel in (self._outbox_in, self._outbox, self._jobs_in, self._jobs):
                channel.close()  # releases broadcasters waiting for room
            with anyio.CancelScope(shield=True):
                await self._close_tcp()
            self._state.counters.connection_closed()
            self._closed.set()

    async def enqueue(self, text: bool, payload: bytes) -> bool:
        """Queue a data message; wait while the queue is full.

        Returns:
            False if the connection is not open, so the message was dropped.
        """
        if not self.is_open:
            return False
        due = anyio.current_time() + self._state.latency
        try:
            await self._outbox_in.send(_Outgoing(due, text, payload))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake and wait until the TCP connection is closed.

        A connection still in the opening handshake cannot get a close frame:
        it is aborted instead. This overrides a stall for this connection.
        """
        self._exempt = True
        self._state.stall.poke()
        if self._protocol.state is CONNECTING:
            self.abort()
        else:
            self._expect_close()  # bounds the wait for the lock, too
            async with self._send_lock:
                if self._protocol.state is OPEN:
                    self._protocol.send_close(code, reason)
                    await self._flush_locked()
        await self._closed.wait()

    def abort(self) -> None:
        """Drop the connection with an RST and no close frame; do not wait."""
        self._reset = True
        self._scope.cancel()
        self._goodbye.cancel()

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await self._closed.wait()

    # Private methods: the reader.

    async def _authenticate(self, text: str) -> None:
        """The first message under ``via="message"``: accept it or close."""
        assert self._auth is not None
        reply, ok = _auth.check_message(text, self._auth)
        if ok:
            self._auth = None
            await self._reply(reply.encode())
            return
        self._state.counters.auth_failed()
        # Written here rather than queued, so that the refusal goes out
        # before the close frame.
        async with self._send_lock:
            if self._protocol.state is OPEN:
                self._protocol.send_text(reply.encode())
                self._protocol.send_close(_auth.AUTH_CLOSE_CODE, "unauthorized")
                if await self._flush_locked():
                    self._state.counters.messages_sent(1)
        self._expect_close()

    async def _start_tls(self) -> bool:
        """Wrap the socket in TLS if the server has a context; False if that failed."""
        context = self._state.ssl_context
        if context is None:
            return True
        await self._pass_stall()
        stream = await _tls.start(self._stream, context, self._state.counters)
        if stream is None:
            return False
        self._stream = stream
        return True

    async def _read_loop(self) -> None:
        protocol = self._protocol
        while protocol.state is not CLOSED:
            await self._pass_stall()
            try:
                data = await self._stream.receive()
            except (*_CONNECTION_LOST, anyio.EndOfStream):
                data = b""  # anyio never returns b"": it raises EndOfStream
            await self._pass_stall()
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            # Always write after receive_data(): pongs and close frames the
            # protocol answered by itself wait in data_to_send().
            await self._flush()
            if protocol.close_expected():
                self._expect_close()
            for event in protocol.events_received():
                await self._handle_event(event)

    async def _handle_event(self, event: Event) -> None:
        if isinstance(event, Request):
            await self._respond(event)
        elif isinstance(event, Frame):
            await self._handle_frame(event)

    async def _respond(self, request: Request) -> None:
        state = self._state
        state.requests.append(_auth.seen(request))
        refusal = state.take_refusal()
        auth = state.auth
        if refusal is not None:
            response = refusal.response()
        elif auth is not None and auth.refuses(request):
            state.counters.auth_failed()
            response = _auth.unauthorized()
        else:
            response = self._protocol.accept(request)
            # Under via="message", the first message must authenticate.
            self._auth = auth if auth is not None and auth.via == "message" else None
        self._protocol.send_response(response)
        await self._flush()
        if response.status_code != 101:
            if 300 <= response.status_code < 400:
                state.counters.redirected()
            else:
                state.counters.handshake_refused()
            self._expect_close()
            return
        self._state.counters.handshake_completed()
        assert self._task_group is not None
        self._task_group.start_soon(self._write_loop)
        self._task_group.start_soon(self._pump_loop)
        self._task_group.start_soon(self._stream_loop)
        # close_all() may have sent a close frame while the 101 went out.
        mode = self._state.close_after_handshake
        if mode is not None and self._protocol.state is OPEN:
            code, reason = mode
            self._protocol.send_close(code, reason)
            await self._flush()
            self._expect_close()

    async def _handle_frame(self, frame: Frame) -> None:
        # The protocol answers control frames itself and enforces the order of
        # fragments and max_size, so only reassembly is left to do here.
        if frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            self._fragments = [bytes(frame.data)]
            self._fragments_text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            if frame.opcode is Opcode.PING:
                self._state.counters.ping_received()
            return
        if frame.fin:
            payload, self._fragments = b"".join(self._fragments), []
            self._state.counters.message_received()
            await self._handle_message(self._fragments_text, payload)

    async def _handle_message(self, text: bool, payload: bytes) -> None:
        if self._auth is not None:
            await self._authenticate(payload.decode(errors="replace") if text else "")
            return
        if not text:
            await self._reply(payload, text=False)
            return
        try:
            action = _wire.interpret(payload.decode())
        except UnicodeDecodeError:
            # The Sans-I/O protocol leaves UTF-8 validation to the application.
            self._protocol.fail(1007, "invalid UTF-8 in a text message")
            await self._flush()
            self._expect_close()
            return
        if action is None:
            await self._reply(payload)
        elif isinstance(action, _wire.Reply):
            await self._reply(action.text.encode())
        elif isinstance(action, _wire.Broadcast):
            await self._state.broadcast(True, action.text.encode())
        elif isinstance(action, _wire.StreamJob):
            try:
                await self._jobs_in.send(action)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        else:
            await self._state.pubsub.execute(action, self._mailbox)

    async def _reply(self, payload: bytes, *, text: bool = True) -> None:
        # Through the mailbox, like channel answers, so that replies go out in
        # the order of the commands whatever their kind.
        await self._mailbox.wait_room()
        self._mailbox.post(payload, text)

    # Private methods: the writer, the pump and the streamer.

    async def _write_loop(self) -> None:
        held: _Outgoing | None = None
        while True:
            item = held if held is not None else await self._outbox.receive()
            held = None
            delay = item.due - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
            async with self._send_lock:
                sent = 0
                size = 0
                while self._protocol.state is OPEN:
                    # Messages queued after a close frame went out are dropped.
                    if item.text:
                        self._protocol.send_text(item.payload)
                    else:
                        self._protocol.send_binary(item.payload)
                    sent += 1
                    size += len(item.payload)
                    if size >= WRITE_BATCH_BYTES:
                        break
                    try:
                        item = self._outbox.receive_nowait()
                    except anyio.WouldBlock:
                        break
                    if item.due > anyio.current_time():
                        held = item
                        break
                if sent and await self._flush_locked():
                    self._state.counters.messages_sent(sent)

    async def _pump_loop(self) -> None:
        try:
            while True:
                text, payload = await self._mailbox.get()
                if not await self.enqueue(text, payload):
                    return
        except anyio.EndOfStream:
            return
        finally:
            # Nothing will drain it any more: release the waiting producers.
            self._mailbox.close()

    async def _stream_loop(self) -> None:
        async for job in self._jobs:
            data = "x" * job.size
            for seq in range(job.count):
                message = _wire.stream_message(seq, data).encode()
                if not await self.enqueue(True, message):
                    return

    # Private methods: I/O helpers.

    async def _pass_stall(self) -> None:
        await self._state.stall.wait(lambda: self._exempt)

    async def _flush(self) -> None:
        async with self._send_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> bool:
        """Write what the protocol produced; return False if the connection is lost."""
        await self._pass_stall()
        try:
            for data in self._protocol.data_to_send():
                if data != SEND_EOF:
                    await self._stream.send(data)
                elif isinstance(self._stream, TLSStream):
                    # TLS cannot half-close, so end the connection, as
                    # websockets does over TLS; _close_tcp() says goodbye.
                    self._scope.cancel()
                else:
                    await self._stream.send_eof()
        except _CONNECTION_LOST:
            # Nothing more can go out; the reader cannot make progress either.
            self._scope.cancel()
            return False
        return True

    def _expect_close(self) -> None:
        # The closing handshake gets CLOSE_TIMEOUT; after that, cancelling the
        # scope drops the TCP connection, like websockets' close_timeout.
        deadline = anyio.current_time() + CLOSE_TIMEOUT
        self._scope.deadline = min(self._scope.deadline, deadline)

    def _ended_cleanly(self) -> bool:
        # Whether TLS gets its close_notify: not after an abort (an RST is the
        # point), nor after a closing handshake that timed out (the client is
        # unresponsive: do not wait for it twice), nor while stalled.
        protocol = self._protocol
        done = protocol.eof_sent or protocol.state is CLOSED
        stalled = self._state.stall.stalled and not self._exempt
        return done and not self._reset and not stalled

    async def _close_tcp(self) -> None:
        if isinstance(self._stream, TLSStream) and self._ended_cleanly():
            with self._goodbye:
                await _tls.say_goodbye(self._stream, self._send_lock, CLOSE_TIMEOUT)
        if self._reset:
            # SO_LINGER with a zero timeout makes close() send an RST: the
            # client learns at once that the connection is gone (1006).
            raw_socket = self._stream.extra(SocketAttribute.raw_socket)
            try:
                raw_socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            except OSError:
                pass  # already reset by the peer: there is nothing to linger on
        try:
            await self._stream.aclose()
        except OSError:
            pass
