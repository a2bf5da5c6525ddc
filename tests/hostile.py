"""Hostile and broken WebSocket servers, for tests that the client survives them.

Each server is a raw TCP listener on 127.0.0.1 (an ephemeral port) that runs
one *behaviour* per accepted connection. Behaviours use websockets' Sans-I/O
:class:`~websockets.server.ServerProtocol` when they want a real handshake
(and a real closing handshake afterwards), then misbehave by writing raw
bytes: frames the protocol would never produce, handshakes that never end.
Everything runs on the backend under test through anyio.

A behaviour gets a :class:`Peer` and returns when it is done; the server then
closes the TCP connection. A client that hangs up mid-behaviour is expected
(the client is the one under test): those errors are swallowed. Any other
error in a behaviour is a bug in the test server, reported when the server
exits.
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import anyio
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import CLOSED, OPEN
from websockets.server import ServerProtocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine

    from anyio.abc import SocketStream
    from websockets.protocol import Event

__all__ = [
    "EVIL_REASON",
    "Behaviour",
    "HostileServer",
    "Peer",
    "bomb_frame",
    "hostile_server",
    "raw_frame",
]

EVIL_REASON: Final = "\x1b[31mEVIL\r\nFAKE LOG LINE\x00\x07\x1b]0;pwned\x07"
"""A close reason made to forge log lines and drive terminals (ANSI escapes)."""

MAX_REQUEST: Final = 64 * 1024
"""The most bytes a raw behaviour reads while waiting for the HTTP request."""

_LOST: Final = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
)
"""What a stream raises when the client hung up: expected, not a failure."""

Behaviour = Callable[["Peer"], Awaitable[None]]
"""What the server does with one accepted connection."""


# Frames built by hand: what a well-behaved protocol object would refuse to send.


def raw_frame(
    opcode: int, payload: bytes, *, rsv1: bool = False, fin: bool = True
) -> bytes:
    """One unmasked (server-to-client) frame, header and payload."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


@functools.cache
def bomb_frame(mebibytes: int = 200) -> bytes:
    """A permessage-deflate binary frame that inflates to ``mebibytes`` of zeros.

    Compressed in 1 MiB chunks (the zeros never exist at once), with the
    trailing ``00 00 ff ff`` of the sync flush stripped as RFC 7692 requires,
    and RSV1 set. About 200 KiB for 200 MiB; built once per test session.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(mebibytes)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    payload = b"".join(parts)
    assert payload.endswith(b"\x00\x00\xff\xff")
    return raw_frame(Opcode.BINARY, payload[:-4], rsv1=True)


class Peer:
    """One accepted TCP connection, as a behaviour drives it.

    Attributes:
        index: 0 for the first connection the server accepted, then 1, 2...
        protocol: websockets' Sans-I/O server protocol, for the handshake and
            the closing handshake.
        close_received: The close frame the client sent, once it arrived.
        messages: Data messages received from the client, decoded if text.
    """

    def __init__(self, stream: SocketStream, index: int, compression: bool) -> None:
        self.stream = stream
        self.index = index
        extensions = [ServerPerMessageDeflateFactory()] if compression else None
        self.protocol = ServerProtocol(extensions=extensions, max_size=None)
        self.close_received: Close | None = None
        self.messages: list[str | bytes] = []
        self.sent = 0
        """Data frames a flood wrote so far."""
        self._lock = anyio.Lock()

    # Handshakes.

    async def read_request(self) -> bytes:
        """Read the client's HTTP request, without parsing it; return it."""
        request = b""
        while b"\r\n\r\n" not in request:
            request += await self.stream.receive()
            assert len(request) < MAX_REQUEST, "the client sent an endless request"
        return request

    async def handshake(self) -> None:
        """Accept the client's opening handshake with websockets' protocol."""
        protocol = self.protocol
        events: list[Event] = []
        while not events:
            protocol.receive_data(await self.stream.receive())
            events = protocol.events_received()
        (request,) = events
        assert isinstance(request, Request)
        protocol.send_response(protocol.accept(request))
        await self.flush()
        assert protocol.state is OPEN, protocol.handshake_exc

    # Writing.

    async def flush(self) -> None:
        """Write what the protocol wants to send (responses, pongs, close)."""
        async with self._lock:
            await self._write_pending()

    async def send_raw(self, data: bytes, *, ignore_close: bool = False) -> bool:
        """Write raw bytes between frames; False once the connection closes.

        With ``ignore_close``, write even after the closing handshake began,
        as a server that ignores the client's close frame would.
        """
        async with self._lock:
            if self.protocol.state is not OPEN and not ignore_close:
                return False
            await self.stream.send(data)
            return True

    async def send_text(self, text: str) -> None:
        """Send a well-formed text message (dropped once closing)."""
        async with self._lock:
            if self.protocol.state is OPEN:
                self.protocol.send_text(text.encode())
            await self._write_pending()

    async def send_json(self, value: Any) -> None:
        """Send a JSON text message."""
        await self.send_text(json.dumps(value))

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with any reason, control characters too."""
        async with self._lock:
            if self.protocol.state is OPEN:
                self.protocol.send_close(code, reason)
            await self._write_pending()

    async def flood(
        self, frames: Iterable[bytes], *, ignore_close: bool = False
    ) -> None:
        """Write ``frames`` as fast as the client lets us; count them in ``sent``."""
        for frame in frames:
            if not await self.send_raw(frame, ignore_close=ignore_close):
                return
            self.sent += 1

    async def _write_pending(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await self.stream.send(data)
            else:  # The protocol wants the TCP connection half-closed.
                await self.stream.send_eof()

    # Reading.

    async def serve(
        self, on_message: Callable[[Peer, str | bytes], Awaitable[None]] | None = None
    ) -> None:
        """Read until the connection closes: answer pings and the closing handshake.

        Records the client's close frame and data messages; ``on_message``
        is called for each data message.
        """
        protocol = self.protocol
        while protocol.state is not CLOSED:
            try:
                data = await self.stream.receive()
            except _LOST:
                data = b""
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                assert isinstance(event, Frame)
                await self._received(event, on_message)
            try:
                await self.flush()
            except _LOST:
                return
            if not data:
                return

    async def _received(
        self,
        frame: Frame,
        on_message: Callable[[Peer, str | bytes], Awaitable[None]] | None,
    ) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.close_received = Close.parse(frame.data)
        elif frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            assert frame.fin, "the client fragmented a small message"
            data = bytes(frame.data)
            message = data.decode() if frame.opcode is Opcode.TEXT else data
            self.messages.append(message)
            if on_message is not None:
                await on_message(self, message)


class HostileServer:
    """A listener that runs a behaviour on each connection; see :func:`hostile_server`.

    Attributes:
        accepted: When each connection was accepted (``anyio.current_time()``).
        peers: Every connection accepted, in order.
    """

    def __init__(self, port: int, behaviour: Behaviour, compression: bool) -> None:
        self.port = port
        self.accepted: list[float] = []
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self._behaviour = behaviour
        self._compression = compression
        self._changed = anyio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def wait_for(self, predicate: Callable[[HostileServer], bool]) -> None:
        """Wait until ``predicate(server)`` holds (checked on every change)."""
        while not predicate(self):
            await self._changed.wait()

    def notify(self) -> None:
        """Wake :meth:`wait_for`: a behaviour changed something it looks at."""
        self._changed.set()
        self._changed = anyio.Event()

    async def handle(self, stream: SocketStream) -> None:
        peer = Peer(stream, len(self.peers), self._compression)
        self.peers.append(peer)
        self.accepted.append(anyio.current_time())
        self.notify()
        try:
            async with stream:
                await self._behaviour(peer)
        except Exception as exc:
            if not _hung_up(exc):
                self.errors.append(exc)
        finally:
            self.notify()


def _hung_up(exc: BaseException) -> bool:
    """Whether ``exc`` only says that the client closed the connection."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_hung_up(e) for e in exc.exceptions)
    return isinstance(exc, _LOST)


@asynccontextmanager
async def hostile_server(
    behaviour: Behaviour, *, compression: bool = False
) -> AsyncIterator[HostileServer]:
    """Run a hostile server on 127.0.0.1 and an ephemeral port.

    Args:
        behaviour: What to do with each accepted connection.
        compression: Negotiate permessage-deflate when the behaviour calls
            :meth:`Peer.handshake`.

    Raises:
        AssertionError: At exit, if a behaviour failed other than because
            the client hung up (a bug in the test server).
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = HostileServer(port, behaviour, compression)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle, tg)
        yield server
        tg.cancel_scope.cancel()
    assert server.errors == [], server.errors


# Behaviours.


async def echo(peer: Peer, message: str | bytes) -> None:
    """Send a text message back, as a well-behaved server would."""
    if isinstance(message, str):
        await peer.send_text(message)


def first_then_echo(misbehave: Callable[[Peer], Awaitable[None]]) -> Behaviour:
    """Misbehave on the first connection only; serve an echo on the next ones.

    After misbehaving, the first connection is still served properly (pongs,
    and the closing handshake the client starts), so that what the client
    reports comes from its own decision, not from a lost TCP connection.
    """

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        if peer.index == 0:
            await misbehave(peer)
            await peer.serve()
        else:
            await peer.serve(echo)

    return behaviour


def huge_header(total: int = 10 << 20) -> Behaviour:
    """Answer 101, then a header line of ``total`` bytes that never ends."""
    chunk = b"a" * (64 * 1024)

    async def behaviour(peer: Peer) -> None:
        await peer.read_request()
        await peer.stream.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nX-Big: "
        )
        for _ in range(total // len(chunk)):
            await peer.stream.send(chunk)
            peer.sent += len(chunk)

    return behaviour


def endless_headers(total: int = 10 << 20) -> Behaviour:
    """Answer 101, then short header lines, ``total`` bytes of them, no blank line."""
    lines = b"".join(b"X-Filler-%05d: x\r\n" % i for i in range(200))

    async def behaviour(peer: Peer) -> None:
        await peer.read_request()
        await peer.stream.send(b"HTTP/1.1 101 Switching Protocols\r\n")
        for _ in range(total // len(lines)):
            await peer.stream.send(lines)
            peer.sent += len(lines)

    return behaviour


def trickle(interval: float) -> Behaviour:
    """Answer the handshake one byte every ``interval`` seconds."""
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )

    async def behaviour(peer: Peer) -> None:
        await peer.read_request()
        for byte in response:
            await peer.stream.send(bytes([byte]))
            peer.sent += 1
            await anyio.sleep(interval)  # Slowness is the point.

    return behaviour


def flood(frames: Callable[[], Iterable[bytes]], *, deaf: bool = False) -> Behaviour:
    """Write ``frames()`` as fast as the client reads.

    A polite flood serves the protocol meanwhile and stops at the client's
    close frame. A ``deaf`` one never reads: it answers no ping and no close
    frame and goes on flooding until done or the client hangs up.
    """

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        if deaf:
            await peer.flood(frames(), ignore_close=True)
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.serve)
            await peer.flood(frames())

    return behaviour


def pub(channel: str, data: Any) -> bytes:
    """A reference-protocol publication without a position, as a raw frame."""
    message = json.dumps({"type": "pub", "channel": channel, "data": data})
    return raw_frame(Opcode.TEXT, message.encode())


def channel_server(
    after_subscribe: Callable[[Peer], Coroutine[Any, Any, None]],
) -> Behaviour:
    """Speak enough of the reference protocol; misbehave once subscribed.

    Accepts every subscribe (a channel without positions), then runs
    ``after_subscribe(peer)`` in a task. Answers ``{"type": "probe"}`` with a
    publication of ``"probe"`` on channel ``"c"``, to show the client still
    works.
    """

    async def behaviour(peer: Peer) -> None:
        await peer.handshake()
        async with anyio.create_task_group() as tg:

            async def on_message(peer: Peer, message: str | bytes) -> None:
                request = json.loads(message)
                if request["type"] == "subscribe":
                    await peer.send_json(
                        {
                            "type": "subscribed",
                            "id": request["id"],
                            "channel": request["channel"],
                        }
                    )
                    tg.start_soon(after_subscribe, peer)
                elif request["type"] == "probe":
                    await peer.send_raw(pub("c", "probe"))

            await peer.serve(on_message)
            tg.cancel_scope.cancel()

    return behaviour
