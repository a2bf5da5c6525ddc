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
- Publications get the reference server's acks, built by its own wire rules
  (``wsclient.server._wire``: same validation, same JSON): in publisher mode
  the transport's protocol is swapped for a small parser that unmasks each
  frame with websockets' C helper and writes the acks of everything one read
  brought in a single write. A publish is acked, never fanned out (nobody
  subscribes in a benchmark); offsets count up per channel and ``msg_id``
  de-duplicates over the last 10,000, as on the reference server.

Every message from the client is handled in order:

| client sends | server does |
|---|---|
| ``{"cmd": "firehose", "count": N, "size": S}`` | N text messages of S bytes |
| ``{"type": "subscribe", "channel": C, "id": I, "count": N, "size": S}`` | \
``subscribed`` (epoch ``e``, offset 0), then N ``pub`` messages, offsets 1..N, \
``data`` a string of S bytes |
| ``{"type": "unsubscribe", "channel": C, "id": I}`` | ``unsubscribed`` |
| ``{"cmd": "sink", "count": N}`` | ``ready``; reads N messages; ``done`` |
| ``{"cmd": "publisher"}`` | ``ready``; then acks publications fast until \
any other frame comes (that one and what follows go the usual way) |
| ``{"type": "publish", "channel": C, "data": X, "id": I, "msg_id": M}`` | \
``{"type":"ack","channel":C,"id":I,"offset":K}`` as the reference server \
(no ack without ``id``; ``"duplicate":true`` for a ``msg_id`` seen before) |
| anything not starting with ``{`` | echoed as is |
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection, serve

# The reference server's own wire rules, so that acks are exactly its own.
from wsclient.server import _wire
from wsclient.server._channels import DEDUP_WINDOW

from .machine import prepare_server

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

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


def parse_header(buffer: bytearray, position: int) -> tuple[int, int] | None:
    """The header and payload lengths of the frame at ``position``; None
    until the whole frame is in ``buffer``. The header's length includes the
    masking key, if any: the key is its last four bytes."""
    end = len(buffer)
    if end - position < 2:
        return None
    second = buffer[position + 1]
    length = second & 0x7F
    header = 2
    if length == 126:
        if end - position < 4:
            return None
        length = int.from_bytes(buffer[position + 2 : position + 4])
        header = 4
    elif length == 127:
        if end - position < 10:
            return None
        length = int.from_bytes(buffer[position + 2 : position + 10])
        header = 10
    if second & 0x80:
        header += 4  # Masking key.
    if end - position < header + length:
        return None
    return header, length


class FrameReader(asyncio.Protocol):
    """Reads the client's frames in websockets' place, then hands back.

    Installed with ``transport.set_protocol()`` while the client is silent
    (it waits for ``ready``), so that websockets' parser is between two
    frames; once done, whatever follows goes back to websockets, which stays
    the protocol for the closing handshake.
    """

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.buffer = bytearray()
        self.handed_back = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def hand_back(self) -> None:
        ws, rest = self.ws, bytes(self.buffer)
        self.buffer.clear()
        if not self.handed_back:
            self.handed_back = True
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


class Sink(FrameReader):
    """Counts ``count`` client messages from frame headers, then hands back."""

    def __init__(self, ws: ServerConnection, count: int) -> None:
        super().__init__(ws)
        self.remaining = count

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        position = 0
        while self.remaining:
            lengths = parse_header(buffer, position)
            if lengths is None:
                break
            first = buffer[position]
            position += lengths[0] + lengths[1]
            # A data frame with FIN ends a message; control frames do not
            # count (the client sends none while it sends messages).
            if first & 0x80 and first & 0x0F in (0x0, 0x1, 0x2):
                self.remaining -= 1
        del buffer[:position]
        if not self.remaining:
            self.hand_back()


class Publisher(FrameReader):
    """Acks the client's publications until another frame comes, then hands back.

    Each read's acks go out in one write. The first frame that is not a
    well-formed publish in one text frame (the closing handshake, another
    command, a malformed publish) goes back to websockets with what follows,
    and the handler answers it as usual.
    """

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        position = 0
        acks: list[bytes] = []
        while True:
            lengths = parse_header(buffer, position)
            if lengths is None:
                break
            header, length = lengths
            start = position + header
            if buffer[position] != 0x81 or not buffer[position + 1] & 0x80:
                self.handed_back_at(position, acks)
                return
            text = apply_mask(buffer[start : start + length], buffer[start - 4 : start])
            ack = fast_ack(text)
            if ack is None:
                self.handed_back_at(position, acks)
                return
            if ack:
                acks.append(frame(ack))
            position = start + length
        del buffer[:position]
        if acks:
            self.ws.transport.write(b"".join(acks))

    def handed_back_at(self, position: int, acks: list[bytes]) -> None:
        del self.buffer[:position]
        if acks:
            self.ws.transport.write(b"".join(acks))
        self.hand_back()


class Channels:
    """The reference server's offsets and de-duplication, per channel.

    What ``ChannelRegistry.publish`` does, without history and subscribers:
    the offset counts up from 1, and a ``msg_id`` among the channel's last
    :data:`DEDUP_WINDOW` gets its original offset back, as a duplicate.
    """

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}
        self.msg_ids: dict[str, dict[str, int]] = {}

    def publish(self, channel: str, msg_id: str | None) -> tuple[int, bool]:
        """Publish once on ``channel``: its offset, and whether a duplicate."""
        seen = self.msg_ids.setdefault(channel, {})
        if msg_id is not None:
            original = seen.get(msg_id)
            if original is not None:
                return original, True
        offset = self.offsets.get(channel, 0) + 1
        self.offsets[channel] = offset
        if msg_id is not None:
            seen[msg_id] = offset
            if len(seen) > DEDUP_WINDOW:
                del seen[next(iter(seen))]
        return offset, False


CHANNELS = Channels()

# The reference server's strict decoder (no NaN, no Infinity).
_STRICT_DECODE = _wire._DECODER.decode


def acknowledge(command: _wire.Publish) -> bytes | None:
    """Publish ``command``; the reference server's ack (None without ``id``)."""
    offset, duplicate = CHANNELS.publish(command.channel, command.msg_id)
    if not command.tag:
        return None
    # "duplicate" only when true, as the reference server does.
    fields = {"duplicate": True} if duplicate else {}
    return _wire.channel_reply(
        "ack", command.channel, command.tag, offset=offset, **fields
    )


def fast_ack(text: bytes) -> bytes | None:
    """:func:`acknowledge` for the common case, in a third of the time.

    The same checks as the reference server (``_wire.interpret``) and the
    same JSON, written out: the generic path took as long as the fastest
    client's own work per publication. Anything else returns None, for
    :func:`publish` to answer it exactly (an error, an echo...).

    Returns:
        The ack; ``b""`` for a publish without ``id`` (no ack); None when
        ``text`` is not a well-formed publish.
    """
    try:
        request = _STRICT_DECODE(text.decode())
    except (ValueError, RecursionError):
        return None  # Includes UnicodeDecodeError; see _wire.interpret.
    if type(request) is not dict or request.get("type") != "publish":
        return None
    channel, msg_id = request.get("channel"), request.get("msg_id")
    if (
        _wire.channel_problem(channel) is not None
        or "data" not in request
        or (msg_id is not None and _wire.msg_id_problem(msg_id) is not None)
    ):
        return None
    assert isinstance(channel, str)  # checked by channel_problem()
    if "id" not in request:
        CHANNELS.publish(channel, msg_id)
        return b""
    request_id = request["id"]
    if not (request_id is None or isinstance(request_id, str | int | float | bool)):
        return None
    offset, duplicate = CHANNELS.publish(channel, msg_id)
    # Exactly _wire.channel_reply("ack", channel, {"id": I}, offset=K).
    ack = (
        f'{{"type":"ack","channel":{_wire.dumps(channel)},'
        f'"id":{_wire.dumps(request_id)},"offset":{offset}'
    )
    return (ack + (',"duplicate":true}' if duplicate else "}")).encode()


async def sink(ws: ServerConnection, count: int) -> None:
    counter = Sink(ws, count)
    ws.transport.set_protocol(counter)
    await ws.send('{"type": "ready"}')
    await counter.done
    await ws.send('{"type": "done"}')


async def publisher(ws: ServerConnection) -> None:
    """Ack publications on the fast path until another frame comes."""
    reader = Publisher(ws)
    ws.transport.set_protocol(reader)
    await ws.send('{"type": "ready"}')
    await reader.done


async def publish(ws: ServerConnection, message: str) -> None:
    """A publish that came the usual way: the reference server's answer."""
    action = _wire.interpret(message)
    if isinstance(action, _wire.Publish):
        ack = acknowledge(action)
        if ack is not None:
            await ws.send(ack.decode())
    elif isinstance(action, _wire.Reply):
        await ws.send(action.text)  # A malformed publish.


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
        elif command == "publisher":
            await publisher(ws)
        elif command == "publish":
            await publish(ws, message)
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
    prepare_server(__doc__.splitlines()[0])
    asyncio.run(serve_until_stdin_closes())


if __name__ == "__main__":
    main()
