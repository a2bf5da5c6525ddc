"""Context lines: other clients on the same firehose, asyncio only.

Not goals: they show how far the whole stack (websockets, and wsclient on
top of it) is from what the machine can do. Each reads the ``recv_client``
firehose, N text messages of S bytes, and is compared with raw websockets
by the same ABBA/BAAB method:

- ``picows``: picows' callback API (``WSListener.on_ws_frame``), each
  payload taken as a ``str`` as ``ws.recv()`` gives it;
- ``aiohttp``: ``await ws.receive()`` on aiohttp's client, likewise a ``str``;
- ``tcp``: an asyncio protocol that does the handshake by hand and then only
  walks the frame headers (no unmasking, no decoding, no copy): the floor.

picows and aiohttp are imported when their block first runs, so that a
missing one costs only its own figures (``pip install -e '.[bench]'``). All
three are asyncio libraries: there is nothing to measure on trio.

As in :mod:`.clients`, each loop is written out in full.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib
import os
import struct
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from websockets.utils import apply_mask

from .clients import Timer, firehose_request

if TYPE_CHECKING:
    from .clients import Backend, BlockFunction, Sample

__all__ = ["CONTEXT_BLOCKS", "missing"]

CLOSE_TIMEOUT = 10.0


def missing(package: str) -> str | None:
    """Why ``package`` cannot be used (not installed, broken), or None."""
    try:
        importlib.import_module(package)
    except ImportError as exc:
        return f"{package} cannot be imported ({exc}); pip install -e '.[bench]'"
    return None


# picows: callbacks, one per frame.


@functools.cache
def _picows_listener() -> type[Any]:
    """The listener class; built on first use, as picows is imported then."""
    from picows import WSListener, WSMsgType

    text = WSMsgType.TEXT

    class FirehoseListener(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.remaining = 0
            self.done: asyncio.Future[None] | None = None

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != text:
                return
            frame.get_payload_as_utf8_text()
            self.remaining -= 1
            if self.remaining == 0 and self.done is not None:
                self.done.set_result(None)

    return FirehoseListener


async def picows_recv(backend: Backend, url: str, count: int, size: int) -> Sample:
    from picows import WSCloseCode, WSMsgType, ws_connect

    transport, listener = await ws_connect(_picows_listener(), url)
    try:
        request = firehose_request(count, size).encode()
        listener.remaining = count
        listener.done = asyncio.get_running_loop().create_future()
        timer = Timer()
        transport.send(WSMsgType.TEXT, request)
        await listener.done
        return timer.stop()
    finally:
        transport.send_close(WSCloseCode.OK)
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await transport.wait_disconnected()


# aiohttp: await ws.receive().


async def aiohttp_recv(backend: Backend, url: str, count: int, size: int) -> Sample:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url) as ws,
    ):
        request = firehose_request(count, size)
        timer = Timer()
        await ws.send_str(request)
        received = 0
        while received < count:
            await ws.receive()
            received += 1
        return timer.stop()


# A raw TCP reader: the handshake by hand, then frame headers only.


class FrameCounter(asyncio.Protocol):
    """Does the opening handshake, then counts the server's frames.

    The server's frames are unmasked, final and of one kind (the firehose):
    each header says how far the next one is, and payloads are skipped
    without being copied, even across reads.
    """

    def __init__(self, host: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.response = b""
        self.remaining = 0
        self.skip = 0
        """Payload bytes of the current frame still to come."""
        self.partial = b""
        """The start of a header cut by the end of a read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.response += data
            if b"\r\n\r\n" in self.response:
                head, _, rest = self.response.partition(b"\r\n\r\n")
                if head.startswith(b"HTTP/1.1 101 "):
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(ConnectionError(head.decode()))
                if rest:
                    self.data_received(rest)
            return
        if self.partial:
            data, self.partial = self.partial + data, b""
        end = len(data)
        position = self.skip
        if position > end:
            self.skip -= end
            return
        remaining = self.remaining
        if position:
            remaining -= 1  # The frame cut by the previous read ended.
        while position < end:
            if end - position < 2:
                break
            length = data[position + 1] & 0x7F
            if length < 126:
                position += 2 + length
            elif length == 126:
                if end - position < 4:
                    break
                position += 4 + int.from_bytes(data[position + 2 : position + 4])
            else:
                if end - position < 10:
                    break
                position += 10 + int.from_bytes(data[position + 2 : position + 10])
            if position > end:
                break  # Its payload goes on in the next read.
            remaining -= 1
        if position > end:
            self.skip = position - end
        else:
            self.skip = 0
            self.partial = data[position:]
        self.remaining = remaining
        if remaining <= 0 and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.opened, self.done):
            if not future.done():
                future.set_exception(exc or ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, text: str) -> None:
        """Send one masked text frame (client frames must be masked)."""
        self._send(0x1, text.encode())

    def send_close(self) -> None:
        self._send(0x8, struct.pack("!H", 1000))

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        self.transport.write(header + mask + apply_mask(payload, mask))


async def tcp_recv(backend: Backend, url: str, count: int, size: int) -> Sample:
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    transport, reader = await loop.create_connection(
        lambda: FrameCounter(parts.netloc), parts.hostname, parts.port
    )
    try:
        await reader.opened
        reader.remaining = count
        timer = Timer()
        reader.send_text(firehose_request(count, size))
        await reader.done
        return timer.stop()
    finally:
        # The closing handshake: the server answers and closes TCP.
        reader.send_close()
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await reader.closed
        transport.close()


CONTEXT_BLOCKS: dict[str, dict[str, BlockFunction]] = {
    "recv_client": {"picows": picows_recv, "aiohttp": aiohttp_recv, "tcp": tcp_recv},
}
"""The other clients' blocks, by kind of figure (asyncio only)."""
