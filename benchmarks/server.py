"""The benchmark server: a fast firehose, sink and echo on websockets' asyncio server.

Run as ``python -m benchmarks.server [--cpu N]``: it binds 127.0.0.1 on a free
port, prints ``PORT <n>`` on stdout, and serves until stdin closes (the parent
process exits or closes the pipe). It must be faster than any client it
measures, or every ratio would come out at 1.0: so the handshake, commands and
the closing handshake go through websockets, but bulk traffic does not.

- Firehose and publications are framed here (unmasked server frames are a
  header and the payload) and written to the transport in large chunks, with
  websockets' own flow control (``drain()``). Nothing else writes meanwhile:
  keepalive is off and the client only sends once it has read everything.
- The sink counts the client's frames by parsing their headers only (no
  unmasking, no decoding), with the transport's protocol swapped for a small
  counter, then hands the transport back to websockets.

Every message from the client is handled in order:

| client sends | server does |
|---|---|
| ``{"cmd": "firehose", "count": N, "size": S}`` | N text messages of S bytes |
| ``{"type": "subscribe", "channel": C, "id": I, "count": N, "size": S}`` | \
``subscribed`` (epoch ``e``, offset 0), then N ``pub`` messages, offsets 1..N, \
``data`` a string of S bytes |
| ``{"type": "unsubscribe", "channel": C, "id": I}`` | ``unsubscribed`` |
| ``{"cmd": "sink", "count": N}`` | ``ready``; reads N messages; ``done`` |
| anything not starting with ``{`` | echoed as is |
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection, serve

from .machine import tune_malloc

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["frame", "main", "publication"]

CHUNK = 256 * 1024
"""Bytes of frames written per transport.write(), then drain()."""

EPOCH = "e"


def frame_header(length: int, opcode: int = 0x1) -> bytes:
    """The header of an unmasked, final frame (a text frame by default)."""
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, length)
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked, final frame carrying ``payload``."""
    return frame_header(len(payload), opcode) + payload


def firehose_chunks(count: int, size: int) -> Iterator[list[bytes]]:
    """``count`` identical text frames of ``size`` bytes, about CHUNK at a time."""
    one = frame(b"x" * size)
    per_chunk = max(1, CHUNK // len(one))
    full, rest = divmod(count, per_chunk)
    chunk = one * per_chunk
    for _ in range(full):
        yield [chunk]
    if rest:
        yield [one * rest]


def publication(channel: str, offset: int, size: int) -> str:
    """One ``pub`` message, as :func:`publication_chunks` frames them."""
    fields = {"type": "pub", "channel": channel, "epoch": EPOCH}
    return json.dumps({**fields, "offset": offset, "data": "x" * size})


def publication_chunks(channel: str, count: int, size: int) -> Iterator[list[bytes]]:
    """``pub`` messages with offsets 1..count, about CHUNK at a time.

    Each message is pieces of bytes around the same data object, joined
    once per chunk: the server copies a large payload once, as it writes it.
    """
    prefix = json.dumps({"type": "pub", "channel": channel, "epoch": EPOCH})[:-1]
    head = f'{prefix}, "offset": '.encode()
    tail = f', "data": {json.dumps("x" * size)}}}'.encode()
    fixed = len(head) + len(tail)
    pieces: list[bytes] = []
    pending = 0
    for offset in range(1, count + 1):
        number = str(offset).encode()
        length = fixed + len(number)
        pieces += (frame_header(length), head, number, tail)
        pending += length
        if pending >= CHUNK:
            yield pieces
            pieces = []
            pending = 0
    if pieces:
        yield pieces


async def write_chunks(ws: ServerConnection, chunks: Iterator[list[bytes]]) -> None:
    """Write pre-framed data straight to the transport, with flow control."""
    transport = ws.transport
    for pieces in chunks:
        transport.write(b"".join(pieces))
        await ws.drain()


class Sink(asyncio.Protocol):
    """Counts ``count`` client messages from frame headers, then hands back.

    Installed with ``transport.set_protocol()`` while the client is silent
    (it waits for ``ready``), so that websockets' parser is between two
    frames; once the last frame is counted, whatever follows goes back to
    websockets, which stays the protocol for the closing handshake.
    """

    def __init__(self, ws: ServerConnection, count: int) -> None:
        self.ws = ws
        self.remaining = count
        self.buffer = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        position, end = 0, len(buffer)
        while self.remaining:
            if end - position < 2:
                break
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if end - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4])
                header = 4
            elif length == 127:
                if end - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10])
                header = 10
            if second & 0x80:
                header += 4  # Masking key.
            if end - position < header + length:
                break
            position += header + length
            # A data frame with FIN ends a message; control frames do not
            # count (the client sends none while it sends messages).
            if first & 0x80 and first & 0x0F in (0x0, 0x1, 0x2):
                self.remaining -= 1
        del buffer[:position]
        if not self.remaining:
            self.hand_back()

    def hand_back(self) -> None:
        ws, rest = self.ws, bytes(self.buffer)
        self.buffer.clear()
        ws.transport.set_protocol(ws)
        if rest:
            ws.data_received(rest)
        if not self.done.done():
            self.done.set_result(None)

    def eof_received(self) -> None:
        self.hand_back()
        self.ws.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.hand_back()
        self.ws.connection_lost(exc)

    def pause_writing(self) -> None:
        self.ws.pause_writing()

    def resume_writing(self) -> None:
        self.ws.resume_writing()


async def sink(ws: ServerConnection, count: int) -> None:
    counter = Sink(ws, count)
    ws.transport.set_protocol(counter)
    await ws.send('{"type": "ready"}')
    await counter.done
    await ws.send('{"type": "done"}')


async def handler(ws: ServerConnection) -> None:
    async for message in ws:
        if not isinstance(message, str) or not message.startswith("{"):
            await ws.send(message)  # Echo.
            continue
        request: dict[str, Any] = json.loads(message)
        command = request.get("cmd") or request.get("type")
        if command == "firehose":
            await write_chunks(ws, firehose_chunks(request["count"], request["size"]))
        elif command == "subscribe":
            channel = request["channel"]
            answer = {"type": "subscribed", "channel": channel, "id": request["id"]}
            await ws.send(json.dumps({**answer, "epoch": EPOCH, "offset": 0}))
            chunks = publication_chunks(channel, request["count"], request["size"])
            await write_chunks(ws, chunks)
        elif command == "unsubscribe":
            answer = {"type": "unsubscribed", "channel": request["channel"]}
            await ws.send(json.dumps({**answer, "id": request["id"]}))
        elif command == "sink":
            await sink(ws, request["count"])
        else:
            await ws.send(json.dumps({"type": "error", "error": "unknown command"}))


async def serve_until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    async with serve(
        handler,
        "127.0.0.1",
        0,
        compression=None,
        ping_interval=None,
        max_size=None,
        max_queue=None,
        # Buffer well ahead of the client, so that a moment off the CPU does
        # not leave it waiting for data.
        write_limit=4 * 2**20,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        # Serve until the parent closes our stdin (or dies): never orphaned.
        await loop.run_in_executor(None, sys.stdin.buffer.read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    if not args.no_malloc_tuning:
        tune_malloc()
    asyncio.run(serve_until_stdin_closes())


if __name__ == "__main__":
    main()
